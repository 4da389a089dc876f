//! A seccomp profile as cleat holds it, whatever it came from (Docker's JSON or the built-in
//! default): a default action, and rules that give an action to named system calls, some only
//! for certain argument values, capabilities, architectures or kernels.
//!
//! The model is Docker's, so its semantics are Docker's: a rule's `includes` must all hold and
//! none of its `excludes` may hold for the rule to be part of a container's filter.

use std::borrow::Cow;

use caps::{Capability, CapsHashSet};
use seccompiler::{SeccompAction, SeccompCmpOp};

use super::syscalls::Arch;

/// A whole profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// What a system call that no rule matches gets.
    pub default_action: SeccompAction,
    /// In profile order, which matters when several rules name the same system call.
    pub rules: Vec<Rule>,
}

/// One entry of a profile's `syscalls`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// System call names; names the filtered architecture lacks are skipped.
    pub names: Vec<Cow<'static, str>>,
    pub action: SeccompAction,
    /// All must hold for the rule to match (none: the rule matches every call).
    pub args: Vec<ArgCheck>,
    /// The rule is used only if everything listed here holds.
    pub includes: Scope,
    /// The rule is dropped if anything listed here holds.
    pub excludes: Scope,
}

/// A comparison of one system call argument (all 64 bits of `seccomp_data.args[index]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgCheck {
    /// 0 to 5.
    pub index: u8,
    /// For `MaskedEq(mask)`: `args[index] & mask == value`.
    pub op: SeccompCmpOp,
    pub value: u64,
}

/// Conditions on the container a rule may depend on (Docker's `includes`/`excludes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Capabilities of the container (its bounding set).
    pub caps: Vec<Capability>,
    /// Architectures, by Docker's (Go's) names: `amd64`, `arm64`, `x32`, `s390x`…
    pub arches: Vec<Cow<'static, str>>,
    /// The running kernel is at least this version.
    pub min_kernel: Option<KernelVersion>,
}

/// A kernel's `major.minor`, the precision Docker's `minKernel` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl KernelVersion {
    /// Reads `major.minor` from the start of a version or release string (`6.1`,
    /// `6.18.44-fc-v669`).
    pub fn parse(text: &str) -> Option<KernelVersion> {
        let mut parts = text.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor_digits: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some(KernelVersion {
            major,
            minor: minor_digits.parse().ok()?,
        })
    }

    /// The running kernel's version, from `uname(2)`.
    pub fn running() -> Option<KernelVersion> {
        let uname = rustix::system::uname();
        KernelVersion::parse(uname.release().to_str().ok()?)
    }
}

/// What a profile is resolved against: the machine and the container.
#[derive(Debug, Clone, Copy)]
pub struct Host<'a> {
    pub arch: Arch,
    /// The container's final capability set.
    pub caps: &'a CapsHashSet,
    pub kernel: KernelVersion,
}

impl Scope {
    /// Docker's reading of `includes`: every condition given holds.
    fn all_hold(&self, host: &Host) -> bool {
        (self.arches.is_empty() || self.names_arch(host.arch))
            && self.caps.iter().all(|cap| host.caps.contains(cap))
            && self.min_kernel.is_none_or(|version| host.kernel >= version)
    }

    /// Docker's reading of `excludes`: some condition given holds.
    fn any_holds(&self, host: &Host) -> bool {
        self.names_arch(host.arch)
            || self.caps.iter().any(|cap| host.caps.contains(cap))
            || self
                .min_kernel
                .is_some_and(|version| host.kernel >= version)
    }

    fn names_arch(&self, arch: Arch) -> bool {
        self.arches.iter().any(|name| name == arch.docker_name())
    }
}

impl Rule {
    /// Whether the rule is part of the filter for this host and container.
    pub fn applies_to(&self, host: &Host) -> bool {
        self.includes.all_hold(host) && !self.excludes.any_holds(host)
    }
}

impl Profile {
    /// The rules that are part of the filter for this host and container, in profile order.
    pub fn rules_for<'p>(&'p self, host: &Host<'p>) -> impl Iterator<Item = &'p Rule> {
        let host = *host;
        self.rules.iter().filter(move |rule| rule.applies_to(&host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(includes: Scope, excludes: Scope) -> Rule {
        Rule {
            names: vec!["mount".into()],
            action: SeccompAction::Allow,
            args: vec![],
            includes,
            excludes,
        }
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(
            KernelVersion::parse("4.8"),
            Some(KernelVersion { major: 4, minor: 8 })
        );
        assert_eq!(
            KernelVersion::parse("6.18.44-fc-v669"),
            Some(KernelVersion {
                major: 6,
                minor: 18
            })
        );
        assert_eq!(
            KernelVersion::parse("5.10-rc1"),
            Some(KernelVersion {
                major: 5,
                minor: 10
            })
        );
        assert!(KernelVersion::parse("6").is_none() && KernelVersion::parse("x.1").is_none());
        assert!(KernelVersion::parse("4.").is_none());
        assert!(KernelVersion::running().is_some());
        assert!(
            KernelVersion {
                major: 4,
                minor: 10
            } > KernelVersion { major: 4, minor: 8 }
        );
    }

    #[test]
    fn includes_and_excludes_follow_docker() {
        let admin: CapsHashSet = [Capability::CAP_SYS_ADMIN].into_iter().collect();
        let none = CapsHashSet::new();
        let kernel = KernelVersion { major: 5, minor: 4 };
        let host = |caps| Host {
            arch: Arch::X86_64,
            caps,
            kernel,
        };
        let caps = |c: &[Capability]| Scope {
            caps: c.to_vec(),
            ..Scope::default()
        };
        let arches = |a: &[&'static str]| Scope {
            arches: a.iter().map(|&n| Cow::Borrowed(n)).collect(),
            ..Scope::default()
        };
        let since = |major, minor| Scope {
            min_kernel: Some(KernelVersion { major, minor }),
            ..Scope::default()
        };

        let needs_admin = rule(caps(&[Capability::CAP_SYS_ADMIN]), Scope::default());
        assert!(needs_admin.applies_to(&host(&admin)) && !needs_admin.applies_to(&host(&none)));
        let both = rule(
            caps(&[Capability::CAP_SYS_ADMIN, Capability::CAP_SYS_BOOT]),
            Scope::default(),
        );
        assert!(
            !both.applies_to(&host(&admin)),
            "includes.caps: all are needed"
        );
        let unless_admin = rule(
            Scope::default(),
            caps(&[Capability::CAP_SYS_BOOT, Capability::CAP_SYS_ADMIN]),
        );
        assert!(!unless_admin.applies_to(&host(&admin)) && unless_admin.applies_to(&host(&none)));

        let amd64 = rule(arches(&["amd64", "x32"]), Scope::default());
        assert!(amd64.applies_to(&host(&none)));
        let arm = rule(arches(&["arm", "arm64"]), Scope::default());
        assert!(!arm.applies_to(&host(&none)));
        let not_s390 = rule(Scope::default(), arches(&["s390", "s390x"]));
        assert!(not_s390.applies_to(&host(&none)));
        let not_amd64 = rule(Scope::default(), arches(&["amd64"]));
        assert!(!not_amd64.applies_to(&host(&none)));

        assert!(rule(since(4, 8), Scope::default()).applies_to(&host(&none)));
        assert!(!rule(since(5, 5), Scope::default()).applies_to(&host(&none)));
        assert!(!rule(Scope::default(), since(5, 4)).applies_to(&host(&none)));
        assert!(rule(Scope::default(), since(6, 0)).applies_to(&host(&none)));
    }
}
