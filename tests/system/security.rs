//! Privilege seen from the inside (issue 4): capability sets (Docker's default,
//! `--cap-add`/`--cap-drop`, a non-root user), the seccomp filter (default, unconfined, a
//! profile file) and `no-new-privileges`.

use crate::host::{Case, host};
use crate::inside::{
    HostTemp, attempts, default_caps, errno, facts, facts_and_attempts, names, ok,
};

// ---------------------------------------------------------------------------------------------
// Capabilities

#[test]
fn root_has_exactly_dockers_default_capabilities() {
    let c = Case::new("caps-default");
    let f = facts(&c.name, &[]);
    assert_eq!(f.int("uid"), 0);
    for set in ["eff", "prm", "bnd"] {
        assert_eq!(f.caps(set), default_caps(), "Cap{set}:\n{}", f.v["caps"]);
    }
    assert!(f.caps("amb").is_empty(), "CapAmb: {}", f.v["caps"]);
    // Docker leaves the inheritable set empty (CVE-2022-24769).
    assert!(f.caps("inh").is_empty(), "CapInh: {}", f.v["caps"]);
}

#[test]
fn cap_drop_all_then_cap_add_one() {
    let c = Case::new("caps-only");
    let f = facts(
        &c.name,
        &["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"],
    );
    for set in ["eff", "prm", "bnd"] {
        assert_eq!(
            f.caps(set),
            names(&["NET_BIND_SERVICE"]),
            "Cap{set}:\n{}",
            f.v["caps"]
        );
    }
    assert!(f.caps("amb").is_empty(), "CapAmb: {}", f.v["caps"]);
}

#[test]
fn cap_add_and_cap_drop_change_the_default_set() {
    let c = Case::new("caps-add");
    let f = facts(&c.name, &["--cap-add", "SYS_ADMIN"]);
    let mut want = default_caps();
    want.insert("SYS_ADMIN".into());
    for set in ["eff", "prm", "bnd"] {
        assert_eq!(f.caps(set), want, "--cap-add SYS_ADMIN, Cap{set}");
    }

    let n = c.another("caps-drop");
    let f = facts(&n, &["--cap-drop", "NET_RAW", "--cap-drop", "CHOWN"]);
    let mut want = default_caps();
    want.remove("NET_RAW");
    want.remove("CHOWN");
    for set in ["eff", "prm", "bnd"] {
        assert_eq!(f.caps(set), want, "--cap-drop NET_RAW CHOWN, Cap{set}");
    }
}

#[test]
fn a_non_root_user_has_no_effective_capabilities() {
    let c = Case::new("caps-user");
    let f = facts(&c.name, &["-u", "1000"]);
    assert_eq!(f.int("uid"), 1000);
    assert!(f.caps("eff").is_empty(), "CapEff: {}", f.v["caps"]);
    assert!(f.caps("prm").is_empty(), "CapPrm: {}", f.v["caps"]);
    assert!(f.caps("amb").is_empty(), "CapAmb: {}", f.v["caps"]);
    assert_eq!(f.caps("bnd"), default_caps(), "CapBnd: {}", f.v["caps"]);
}

// ---------------------------------------------------------------------------------------------
// seccomp

/// System calls Docker's default profile refuses (with EPERM) to a container with the
/// default capabilities, although the kernel itself would allow some of them (keyctl,
/// add_key, unshare of a user namespace).
const BLOCKED: &[&str] = &["keyctl", "add-key", "unshare-user", "unshare-ns", "mount"];

#[test]
fn seccomp_filters_by_default_and_blocked_calls_fail_with_eperm() {
    let c = Case::new("seccomp-default");
    let (f, a) = facts_and_attempts(&c.name, &[], BLOCKED);
    assert_eq!(f.int("seccomp"), 2, "Seccomp (2: filter):\n{}", f.out);
    for action in BLOCKED {
        let r = a.get(action);
        assert!(!ok(r), "{action} worked under the default profile: {r}");
        assert_eq!(errno(r), libc::EPERM, "{action}: {r}");
    }
}

#[test]
fn seccomp_unconfined() {
    let c = Case::new("seccomp-off");
    let flags = ["--security-opt", "seccomp=unconfined"];
    let (f, a) = facts_and_attempts(&c.name, &flags, &["keyctl"]);
    assert_eq!(f.int("seccomp"), 0, "Seccomp:\n{}", f.out);
    // Without the filter the kernel allows it: the EPERM above came from the filter.
    let r = a.get("keyctl");
    assert!(ok(r), "keyctl fails without a filter: {r}");
}

#[test]
fn seccomp_profile_from_a_file() {
    let c = Case::new("seccomp-file");
    let dir = HostTemp::new(&c.name);
    let profile = dir.join("profile.json");
    host().write_file(
        &profile,
        r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  "syscalls": [
    { "names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }
  ]
}
"#,
    );
    let opt = format!("seccomp={profile}");
    let flags = ["--security-opt", opt.as_str()];
    let f = facts(&c.name, &flags);
    assert_eq!(f.int("seccomp"), 2, "Seccomp:\n{}", f.out);
    let n = c.another("seccomp-file-try");
    let a = attempts(&n, &flags, &["getppid", "keyctl"]);
    let r = a.get("getppid");
    assert!(!ok(r), "the profile's rule for getppid is not applied: {r}");
    assert_eq!(errno(r), libc::EPERM, "{r}");
    // The profile replaces the default one: keyctl is allowed by it.
    let r = a.get("keyctl");
    assert!(
        ok(r),
        "keyctl is refused: the default profile is still there? {r}"
    );
}

// ---------------------------------------------------------------------------------------------
// no-new-privileges

#[test]
fn no_new_privileges() {
    let c = Case::new("nnp-default");
    let f = facts(&c.name, &[]);
    assert_eq!(f.int("no_new_privs"), 0, "NoNewPrivs by default");
    let n = c.another("nnp-on");
    let f = facts(&n, &["--security-opt", "no-new-privileges"]);
    assert_eq!(f.int("no_new_privs"), 1, "--security-opt no-new-privileges");
}
