//! Reading a profile in Docker's JSON format (`docker run --security-opt seccomp=FILE`): the
//! OCI `LinuxSeccomp` fields plus Docker's `archMap`, `name` and `includes`/`excludes`.
//!
//! Everything is checked before a container starts: actions, comparisons, architectures,
//! capability names, and that every system call name exists on some Linux architecture.
//! Fields Docker ignores (`comment`, unknown keys) are ignored here too.

use std::path::Path;

use caps::Capability;
use seccompiler::{SeccompAction, SeccompCmpOp};
use serde::Deserialize;

use super::SeccompError;
use super::profile::{ArgCheck, KernelVersion, Profile, Rule, Scope};
use super::syscalls;

/// libseccomp's architecture names, as `architectures` and `archMap` use them.
const SECCOMP_ARCHES: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// Docker's (Go's) architecture names, as `includes.arches` and `excludes.arches` use them.
const DOCKER_ARCHES: &[&str] = &[
    "x86",
    "amd64",
    "x32",
    "arm",
    "arm64",
    "loong64",
    "mips",
    "mipsel",
    "mips64",
    "mipsel64",
    "mips64n32",
    "mipsel64n32",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv64",
    "s390",
    "s390x",
];

/// The highest value `SECCOMP_RET_ERRNO` can return (`MAX_ERRNO`).
const MAX_ERRNO: u32 = 4095;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonProfile {
    default_action: Option<String>,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<JsonArchMap>>,
    syscalls: Option<Vec<JsonSyscall>>,
    flags: Option<Vec<String>>,
    listener_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArchMap {
    architecture: String,
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSyscall {
    name: Option<String>,
    names: Option<Vec<String>>,
    action: String,
    errno_ret: Option<u32>,
    args: Option<Vec<JsonArg>>,
    includes: Option<JsonScope>,
    excludes: Option<JsonScope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonScope {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

/// Reads and checks the profile at `path`.
pub fn load(path: &Path) -> Result<Profile, SeccompError> {
    let text = std::fs::read(path).map_err(|source| SeccompError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and checks a profile; `path` names it in errors.
pub fn parse(text: &[u8], path: &Path) -> Result<Profile, SeccompError> {
    let json: JsonProfile = serde_json::from_slice(text).map_err(|e| SeccompError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: without_position(&e),
    })?;
    Checker {
        profile: path.display().to_string(),
    }
    .profile(json)
}

/// serde_json's message without its trailing " at line L column C", which the error repeats.
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message,
    }
}

/// Turns the JSON form into a [`Profile`], naming the profile in every error.
struct Checker {
    profile: String,
}

impl Checker {
    fn profile(&self, json: JsonProfile) -> Result<Profile, SeccompError> {
        self.unsupported_features(&json)?;
        self.architectures(&json)?;
        let Some(default_name) = &json.default_action else {
            return Err(self.invalid(
                "defaultAction",
                "missing (the action for calls no rule names)",
            ));
        };
        let default_action = self.action(default_name, json.default_errno_ret, "defaultAction")?;
        let rules = json
            .syscalls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, syscall)| self.rule(i, syscall))
            .collect::<Result<_, _>>()?;
        Ok(Profile {
            default_action,
            rules,
        })
    }

    fn unsupported_features(&self, json: &JsonProfile) -> Result<(), SeccompError> {
        if let Some(flags) = json.flags.as_ref().filter(|f| !f.is_empty()) {
            let problem = format!("filter flags are not supported ({})", flags.join(", "));
            return Err(self.invalid("flags", &problem));
        }
        if json.listener_path.as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(self.invalid(
                "listenerPath",
                "seccomp agents (SCMP_ACT_NOTIFY) are not supported",
            ));
        }
        Ok(())
    }

    /// Checks `architectures` and `archMap`. They only add compat ABIs to Docker's filter (the
    /// native one is always filtered), which cleat does not filter: see the module docs.
    fn architectures(&self, json: &JsonProfile) -> Result<(), SeccompError> {
        let listed = json.architectures.as_deref().unwrap_or_default();
        let mapped = json.arch_map.as_deref().unwrap_or_default();
        if !listed.is_empty() && !mapped.is_empty() {
            return Err(self.invalid(
                "archMap",
                "use either 'architectures' or 'archMap', not both",
            ));
        }
        for (i, arch) in listed.iter().enumerate() {
            self.seccomp_arch(arch, &format!("architectures[{i}]"))?;
        }
        for (i, map) in mapped.iter().enumerate() {
            self.seccomp_arch(&map.architecture, &format!("archMap[{i}].architecture"))?;
            for (j, sub) in map.sub_architectures.iter().flatten().enumerate() {
                self.seccomp_arch(sub, &format!("archMap[{i}].subArchitectures[{j}]"))?;
            }
        }
        Ok(())
    }

    fn seccomp_arch(&self, arch: &str, at: &str) -> Result<(), SeccompError> {
        if SECCOMP_ARCHES.contains(&arch) {
            return Ok(());
        }
        Err(self.unknown_arch(
            at,
            arch,
            "libseccomp's names: SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64, …",
        ))
    }

    fn rule(&self, i: usize, json: JsonSyscall) -> Result<Rule, SeccompError> {
        let name = json.name.filter(|name| !name.is_empty());
        let names = match (name, json.names) {
            (Some(_), Some(names)) if !names.is_empty() => {
                return Err(self.invalid(
                    &format!("syscalls[{i}]"),
                    "use either 'name' or 'names', not both",
                ));
            }
            (Some(name), _) => vec![name],
            (None, names) => names.unwrap_or_default(),
        };
        let at = rule_location(i, &names);
        if names.is_empty() {
            return Err(self.invalid(&at, "no system call named ('name' or 'names')"));
        }
        if let Some(name) = names.iter().find(|name| !syscalls::exists_anywhere(name)) {
            return Err(SeccompError::UnknownSyscall {
                profile: self.profile.clone(),
                at,
                name: name.clone(),
            });
        }
        let action = self.action(&json.action, json.errno_ret, &at)?;
        let args = json
            .args
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(j, arg)| self.arg_check(arg, &format!("{at} args[{j}]")))
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            names: names.into_iter().map(Into::into).collect(),
            action,
            args,
            includes: self.scope(json.includes, &format!("{at} includes"))?,
            excludes: self.scope(json.excludes, &format!("{at} excludes"))?,
        })
    }

    fn action(
        &self,
        name: &str,
        errno_ret: Option<u32>,
        at: &str,
    ) -> Result<SeccompAction, SeccompError> {
        let action = match name {
            "SCMP_ACT_ALLOW" => SeccompAction::Allow,
            "SCMP_ACT_ERRNO" => {
                SeccompAction::Errno(self.returned(errno_ret, "errno", MAX_ERRNO, at)?)
            }
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
            "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
            "SCMP_ACT_TRAP" => SeccompAction::Trap,
            "SCMP_ACT_LOG" => SeccompAction::Log,
            "SCMP_ACT_TRACE" => {
                SeccompAction::Trace(self.returned(errno_ret, "trace value", 0xffff, at)?)
            }
            "SCMP_ACT_NOTIFY" => {
                return Err(self.invalid(
                    at,
                    "SCMP_ACT_NOTIFY needs a seccomp agent, which cleat does not support",
                ));
            }
            other => {
                return Err(SeccompError::UnknownAction {
                    profile: self.profile.clone(),
                    at: at.to_string(),
                    action: other.to_string(),
                });
            }
        };
        let returns_a_value = matches!(action, SeccompAction::Errno(_) | SeccompAction::Trace(_));
        if errno_ret.is_some() && !returns_a_value {
            return Err(self.invalid(
                at,
                &format!("an errno return value does not apply to {name}"),
            ));
        }
        Ok(action)
    }

    /// The value an `SCMP_ACT_ERRNO` or `SCMP_ACT_TRACE` returns: `EPERM` unless given.
    fn returned(
        &self,
        value: Option<u32>,
        what: &str,
        max: u32,
        at: &str,
    ) -> Result<u32, SeccompError> {
        let value = value.unwrap_or(libc::EPERM as u32);
        if value > max {
            return Err(self.invalid(at, &format!("{what} {value} is out of range (0 to {max})")));
        }
        Ok(value)
    }

    fn arg_check(&self, arg: &JsonArg, at: &str) -> Result<ArgCheck, SeccompError> {
        let index = u8::try_from(arg.index)
            .ok()
            .filter(|&index| index <= 5)
            .ok_or_else(|| {
                self.invalid(
                    at,
                    &format!(
                        "argument index {} (system calls have arguments 0 to 5)",
                        arg.index
                    ),
                )
            })?;
        // As in libseccomp, MASKED_EQ takes the mask from `value` and compares with `valueTwo`.
        let (op, value) = match arg.op.as_str() {
            "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, arg.value),
            "SCMP_CMP_NE" => (SeccompCmpOp::Ne, arg.value),
            "SCMP_CMP_LT" => (SeccompCmpOp::Lt, arg.value),
            "SCMP_CMP_LE" => (SeccompCmpOp::Le, arg.value),
            "SCMP_CMP_GT" => (SeccompCmpOp::Gt, arg.value),
            "SCMP_CMP_GE" => (SeccompCmpOp::Ge, arg.value),
            "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(arg.value), arg.value_two),
            other => {
                return Err(SeccompError::UnknownOp {
                    profile: self.profile.clone(),
                    at: at.to_string(),
                    op: other.to_string(),
                });
            }
        };
        Ok(ArgCheck { index, op, value })
    }

    fn scope(&self, json: Option<JsonScope>, at: &str) -> Result<Scope, SeccompError> {
        let Some(json) = json else {
            return Ok(Scope::default());
        };
        let caps = json
            .caps
            .unwrap_or_default()
            .iter()
            .map(|name| {
                name.parse::<Capability>()
                    .map_err(|_| self.invalid(at, &format!("unknown capability {name:?}")))
            })
            .collect::<Result<_, _>>()?;
        let arches = json.arches.unwrap_or_default();
        if let Some(arch) = arches
            .iter()
            .find(|arch| !DOCKER_ARCHES.contains(&arch.as_str()))
        {
            return Err(self.unknown_arch(
                at,
                arch,
                "Docker's names: amd64, arm64, x86, x32, arm, s390x, …",
            ));
        }
        let min_kernel = match json.min_kernel {
            None => None,
            Some(text) => Some(strict_kernel_version(&text).ok_or_else(|| {
                self.invalid(
                    at,
                    &format!("minKernel {text:?} is not a MAJOR.MINOR version"),
                )
            })?),
        };
        Ok(Scope {
            caps,
            arches: arches.into_iter().map(Into::into).collect(),
            min_kernel,
        })
    }

    fn invalid(&self, at: &str, problem: &str) -> SeccompError {
        SeccompError::Invalid {
            profile: self.profile.clone(),
            at: at.to_string(),
            problem: problem.to_string(),
        }
    }

    fn unknown_arch(&self, at: &str, arch: &str, expected: &'static str) -> SeccompError {
        SeccompError::UnknownArch {
            profile: self.profile.clone(),
            at: at.to_string(),
            arch: arch.to_string(),
            expected,
        }
    }
}

/// `syscalls[3] (mount, umount2, …)`: where a rule is, for messages.
fn rule_location(i: usize, names: &[String]) -> String {
    let mut shown = names
        .iter()
        .take(3)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 3 {
        shown.push_str(", …");
    }
    format!("syscalls[{i}] ({shown})")
}

fn strict_kernel_version(text: &str) -> Option<KernelVersion> {
    let (major, minor) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor))
        .then(|| KernelVersion::parse(text))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Profile, SeccompError> {
        parse(text.as_bytes(), Path::new("/etc/p.json"))
    }

    fn error(text: &str) -> SeccompError {
        parse_str(text).unwrap_err()
    }

    const EPERM: u32 = libc::EPERM as u32;

    #[test]
    fn a_full_profile() {
        let profile = parse_str(
            r#"{
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 38,
                "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                            {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": null}],
                "syscalls": [
                    {"names": ["read", "write", "chown32"], "action": "SCMP_ACT_ALLOW", "comment": "ignored"},
                    {"name": "getppid", "action": "SCMP_ACT_ERRNO", "errnoRet": 25},
                    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                     "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
                    {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                    {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
                    {"names": ["kill"], "action": "SCMP_ACT_KILL"},
                    {"names": ["tkill"], "action": "SCMP_ACT_KILL_PROCESS"},
                    {"names": ["tgkill"], "action": "SCMP_ACT_TRAP"},
                    {"names": ["uname"], "action": "SCMP_ACT_LOG"},
                    {"names": ["getpid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                    {"names": ["gettid"], "action": "SCMP_ACT_ERRNO",
                     "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_NE"}, {"index": 2, "value": 6, "op": "SCMP_CMP_LT"},
                              {"index": 3, "value": 7, "op": "SCMP_CMP_LE"}, {"index": 4, "value": 8, "op": "SCMP_CMP_GT"},
                              {"index": 5, "value": 9, "op": "SCMP_CMP_GE"}, {"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}]}
                ],
                "unknownField": true
            }"#,
        )
        .unwrap();
        assert_eq!(profile.default_action, SeccompAction::Errno(38));
        let r = &profile.rules;
        assert_eq!(r.len(), 11);
        assert_eq!(r[0].names, ["read", "write", "chown32"]);
        assert_eq!(
            (r[1].names.as_slice(), &r[1].action),
            (&["getppid".into()][..], &SeccompAction::Errno(25))
        );
        assert_eq!(
            r[2].args,
            [ArgCheck {
                index: 0,
                op: SeccompCmpOp::MaskedEq(2114060288),
                value: 0
            }]
        );
        assert_eq!(r[2].excludes.caps, [Capability::CAP_SYS_ADMIN]);
        assert_eq!(r[2].excludes.arches, ["s390", "s390x"]);
        assert_eq!(
            r[3].includes.min_kernel,
            Some(KernelVersion { major: 4, minor: 8 })
        );
        assert_eq!(r[4].includes.arches, ["amd64", "x32"]);
        let actions: Vec<_> = r[5..10].iter().map(|rule| rule.action.clone()).collect();
        assert_eq!(
            actions,
            [
                SeccompAction::KillThread,
                SeccompAction::KillProcess,
                SeccompAction::Trap,
                SeccompAction::Log,
                SeccompAction::Trace(7)
            ]
        );
        let ops: Vec<_> = r[10]
            .args
            .iter()
            .map(|a| (a.index, a.op.clone(), a.value))
            .collect();
        assert_eq!(
            ops,
            [
                (1, SeccompCmpOp::Ne, 5),
                (2, SeccompCmpOp::Lt, 6),
                (3, SeccompCmpOp::Le, 7),
                (4, SeccompCmpOp::Gt, 8),
                (5, SeccompCmpOp::Ge, 9),
                (0, SeccompCmpOp::Eq, 10)
            ]
        );
        assert_eq!(
            r[10].action,
            SeccompAction::Errno(EPERM),
            "errno defaults to EPERM"
        );
    }

    #[test]
    fn defaults() {
        let p = parse_str(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_AARCH64"]}"#,
        )
        .unwrap();
        assert_eq!(p.default_action, SeccompAction::Errno(EPERM));
        assert!(p.rules.is_empty());
        let p = parse_str(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": null, "flags": []}"#)
            .unwrap();
        assert_eq!(p.default_action, SeccompAction::Allow);
    }

    #[test]
    fn json_errors_have_a_position() {
        let e = error("{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [\n}");
        let SeccompError::Json { line, column, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!((*line, *column), (4, 1));
        assert!(
            e.to_string()
                .starts_with("seccomp profile /etc/p.json: invalid JSON at line 4, column 1: "),
            "{e}"
        );
        let e = error(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1}]}"#,
        );
        assert!(matches!(e, SeccompError::Json { line: 1, .. }), "{e:?}");
        let e = error(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]}"#);
        assert!(e.to_string().contains("missing field `action`"), "{e}");
    }

    #[test]
    fn unknown_action() {
        let e = error(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount", "umount2"], "action": "SCMP_ACT_DENY", "errnoRet": 1}]}"#,
        );
        assert!(
            matches!(&e, SeccompError::UnknownAction { action, .. } if action == "SCMP_ACT_DENY"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "seccomp profile /etc/p.json: syscalls[0] (mount, umount2): unknown action \"SCMP_ACT_DENY\" \
             (known: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_THREAD, \
             SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_LOG, SCMP_ACT_TRACE)"
        );
        let e = error(r#"{"defaultAction": "allow"}"#);
        assert!(
            matches!(&e, SeccompError::UnknownAction { at, .. } if at == "defaultAction"),
            "{e:?}"
        );
        let e = error(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#);
        assert!(e.to_string().contains("seccomp agent"), "{e}");
    }

    #[test]
    fn unknown_op() {
        let e = error(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 1, "op": "SCMP_CMP_BETWEEN"}]}]}"#,
        );
        assert!(
            matches!(&e, SeccompError::UnknownOp { op, at, .. } if op == "SCMP_CMP_BETWEEN" && at == "syscalls[0] (socket) args[1]"),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("(known: SCMP_CMP_EQ, SCMP_CMP_NE,"),
            "{e}"
        );
    }

    #[test]
    fn unknown_arch() {
        let e = error(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]}"#,
        );
        assert!(
            matches!(&e, SeccompError::UnknownArch { arch, at, .. } if arch == "SCMP_ARCH_Z80" && at == "architectures[1]"),
            "{e:?}"
        );
        let e = error(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["i386"]}]}"#,
        );
        assert!(
            matches!(&e, SeccompError::UnknownArch { at, .. } if at == "archMap[0].subArchitectures[0]"),
            "{e:?}"
        );
        let e = error(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["x86_64"]}}]}"#,
        );
        assert_eq!(
            e.to_string(),
            "seccomp profile /etc/p.json: syscalls[0] (arch_prctl) includes: unknown architecture \"x86_64\" \
             (expected Docker's names: amd64, arm64, x86, x32, arm, s390x, …)"
        );
        let e = error(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
        );
        assert!(
            e.to_string()
                .contains("either 'architectures' or 'archMap'"),
            "{e}"
        );
    }

    #[test]
    fn system_call_names() {
        let e = error(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "raed"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(
            matches!(&e, SeccompError::UnknownSyscall { name, .. } if name == "raed"),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("\"raed\" is not a system call on any Linux architecture"),
            "{e}"
        );
        let e = error(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(e.to_string().contains("either 'name' or 'names'"), "{e}");
        let e = error(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(
            e.to_string()
                .contains("syscalls[0] (): no system call named"),
            "{e}"
        );
    }

    #[test]
    fn other_mistakes() {
        let cases = [
            (r#"{"syscalls": []}"#, "defaultAction: missing"),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}"#,
                "does not apply to SCMP_ACT_ALLOW",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}"#,
                "errno 5000 is out of range",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 70000}"#,
                "trace value 70000 is out of range",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}"#,
                "flags are not supported",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/agent.sock"}"#,
                "seccomp agents",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
                "argument index 6",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMN"]}}]}"#,
                "syscalls[0] (mount) includes: unknown capability \"CAP_SYS_ADMN\"",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "4.8.1"}}]}"#,
                "minKernel \"4.8.1\" is not a MAJOR.MINOR version",
            ),
        ];
        for (text, expected) in cases {
            let e = error(text);
            assert!(matches!(e, SeccompError::Invalid { .. }), "{e:?}");
            assert!(
                e.to_string().contains(expected),
                "{e} (expected {expected:?})"
            );
        }
    }

    #[test]
    fn unreadable_file() {
        let e = load(Path::new("/nonexistent/profile.json")).unwrap_err();
        let SeccompError::Read { path, source } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (path.as_path(), source.kind()),
            (
                Path::new("/nonexistent/profile.json"),
                std::io::ErrorKind::NotFound
            )
        );
        assert_eq!(
            e.to_string(),
            "cannot read seccomp profile /nonexistent/profile.json: No such file or directory (os error 2)"
        );
        let e = load(Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("Is a directory"), "{e}");
    }

    #[test]
    fn long_name_lists_are_shortened() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(rule_location(2, &names), "syscalls[2] (a, b, c, …)");
    }
}
