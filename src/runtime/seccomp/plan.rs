//! What the filter decides, system call by system call, for one host and container: the rules
//! of a profile that apply, resolved to numbers and grouped by system call.
//!
//! The choices here are runc's (Docker's runtime), so that a profile means the same thing
//! under cleat:
//!
//! - a rule whose action is the default action is left out (it cannot change the outcome);
//! - a rule comparing the same argument twice stands for one rule per comparison (runc's
//!   reading, which Docker's own profiles rely on); otherwise all its comparisons must hold;
//! - system call numbers above the highest one the applicable rules name fail with `ENOSYS`
//!   rather than the default error, unless the default action lets calls through: a call
//!   newer than the profile is "not implemented", so programs fall back to an older one, as
//!   glibc does when `clone3` fails with `ENOSYS`.
//!
//! For one system call, argument-dependent rules are tried first, in profile order, and the
//! first whose comparisons all hold decides; then the first rule without comparisons; then
//! the default action.

use std::collections::BTreeMap;

use seccompiler::SeccompAction;

use super::profile::{ArgCheck, Host, Profile, Rule};
use super::syscalls::Arch;

/// The decisions of a filter for one architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub arch: Arch,
    pub default_action: SeccompAction,
    /// By system call number, ascending. Numbers not listed get the default action.
    pub syscalls: BTreeMap<u32, Decision>,
    /// Numbers above this one fail with `ENOSYS`.
    pub enosys_above: Option<u32>,
}

/// What happens to one system call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Tried in order: the first whose comparisons all hold decides.
    pub conditional: Vec<(Vec<ArgCheck>, SeccompAction)>,
    /// When no conditional rule matched; `None`: the default action.
    pub otherwise: Option<SeccompAction>,
}

impl Plan {
    /// Resolves the rules of `profile` that apply to `host`. Names the architecture lacks are
    /// skipped (profiles are checked for names no architecture has when they are loaded).
    pub fn new(profile: &Profile, host: &Host) -> Plan {
        let arch = host.arch;
        let mut syscalls: BTreeMap<u32, Decision> = BTreeMap::new();
        let mut highest: Option<u32> = None;
        for rule in profile.rules_for(host) {
            for number in rule.names.iter().filter_map(|name| arch.number(name)) {
                highest = highest.max(Some(number));
                if rule.action != profile.default_action {
                    add_rule(syscalls.entry(number).or_default(), rule);
                }
            }
        }
        let enosys_above = highest.filter(|_| !lets_calls_through(&profile.default_action));
        Plan {
            arch,
            default_action: profile.default_action.clone(),
            syscalls,
            enosys_above,
        }
    }
}

fn add_rule(decision: &mut Decision, rule: &Rule) {
    if rule.args.is_empty() {
        decision
            .otherwise
            .get_or_insert_with(|| rule.action.clone());
    } else if compares_an_argument_twice(&rule.args) {
        for check in &rule.args {
            decision
                .conditional
                .push((vec![check.clone()], rule.action.clone()));
        }
    } else {
        decision
            .conditional
            .push((rule.args.clone(), rule.action.clone()));
    }
}

fn compares_an_argument_twice(args: &[ArgCheck]) -> bool {
    args.iter()
        .enumerate()
        .any(|(i, a)| args[..i].iter().any(|b| b.index == a.index))
}

/// runc's "allow" actions: with one of these as the default, unknown calls stay unknown.
fn lets_calls_through(action: &SeccompAction) -> bool {
    matches!(
        action,
        SeccompAction::Allow | SeccompAction::Log | SeccompAction::Trace(_)
    )
}

#[cfg(test)]
mod tests {
    use caps::CapsHashSet;
    use seccompiler::SeccompCmpOp;

    use super::super::profile::{KernelVersion, Scope};
    use super::*;

    fn rule(names: &[&'static str], action: SeccompAction, args: Vec<ArgCheck>) -> Rule {
        Rule {
            names: names.iter().map(|&n| n.into()).collect(),
            action,
            args,
            includes: Scope::default(),
            excludes: Scope::default(),
        }
    }

    fn check(index: u8, op: SeccompCmpOp, value: u64) -> ArgCheck {
        ArgCheck { index, op, value }
    }

    fn plan(default_action: SeccompAction, rules: Vec<Rule>) -> Plan {
        let caps = CapsHashSet::new();
        let host = Host {
            arch: Arch::X86_64,
            caps: &caps,
            kernel: KernelVersion { major: 6, minor: 1 },
        };
        Plan::new(
            &Profile {
                default_action,
                rules,
            },
            &host,
        )
    }

    const EPERM: SeccompAction = SeccompAction::Errno(libc::EPERM as u32);

    #[test]
    fn groups_rules_by_number() {
        let p = plan(
            EPERM,
            vec![
                rule(&["read", "write", "chown32"], SeccompAction::Allow, vec![]),
                rule(
                    &["socket"],
                    SeccompAction::Allow,
                    vec![check(0, SeccompCmpOp::Lt, 38)],
                ),
                rule(
                    &["socket"],
                    SeccompAction::Allow,
                    vec![check(0, SeccompCmpOp::Eq, 39)],
                ),
                rule(&["getpid"], EPERM, vec![]),
                rule(&["read"], SeccompAction::Errno(25), vec![]),
            ],
        );
        assert_eq!(
            p.syscalls.keys().copied().collect::<Vec<_>>(),
            [0, 1, 41],
            "chown32 skipped"
        );
        assert_eq!(
            p.syscalls[&0].otherwise,
            Some(SeccompAction::Allow),
            "first rule wins"
        );
        assert_eq!(p.syscalls[&41].conditional.len(), 2);
        assert_eq!(p.syscalls[&41].otherwise, None);
        assert_eq!(
            p.enosys_above,
            Some(41),
            "getpid (39) counts for the highest number"
        );
    }

    #[test]
    fn repeated_argument_means_either() {
        let both = vec![check(0, SeccompCmpOp::Eq, 1), check(1, SeccompCmpOp::Eq, 2)];
        let p = plan(
            EPERM,
            vec![rule(&["kill"], SeccompAction::Allow, both.clone())],
        );
        assert_eq!(p.syscalls[&62].conditional, [(both, SeccompAction::Allow)]);

        let twice = vec![check(0, SeccompCmpOp::Eq, 1), check(0, SeccompCmpOp::Eq, 2)];
        let p = plan(
            EPERM,
            vec![rule(&["kill"], SeccompAction::Allow, twice.clone())],
        );
        assert_eq!(
            p.syscalls[&62].conditional,
            [
                (vec![twice[0].clone()], SeccompAction::Allow),
                (vec![twice[1].clone()], SeccompAction::Allow)
            ]
        );
    }

    #[test]
    fn no_enosys_when_calls_go_through() {
        let rules = || vec![rule(&["getppid"], SeccompAction::Errno(25), vec![])];
        assert_eq!(plan(SeccompAction::Allow, rules()).enosys_above, None);
        assert_eq!(plan(SeccompAction::Log, rules()).enosys_above, None);
        assert_eq!(
            plan(SeccompAction::KillProcess, rules()).enosys_above,
            Some(110)
        );
        assert_eq!(plan(EPERM, vec![]).enosys_above, None, "no names, no stub");
    }
}
