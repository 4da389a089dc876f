//! Capabilities: names, Docker's default set, `--cap-add`/`--cap-drop` resolution (a plain
//! set computation), and applying the result in the container's first process before exec.

use caps::{CapSet, Capability, CapsHashSet};

use crate::spec::value::ValueError;

/// Docker's default capability set for containers (moby's `oci/caps/defaults.go`): what a
/// process in a container may do as root, and nothing else.
pub const DOCKER_DEFAULT: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Every capability this build knows, by canonical name (`CAP_NET_ADMIN`).
pub fn all() -> CapsHashSet {
    caps::all()
}

/// Canonical names of a set, in the kernel's order (for messages and tests).
pub fn names(set: &CapsHashSet) -> Vec<String> {
    let mut caps: Vec<&Capability> = set.iter().collect();
    caps.sort_by_key(|c| c.index());
    caps.into_iter().map(|c| c.to_string()).collect()
}

/// Parses a capability name as Docker accepts it: `NET_ADMIN`, `CAP_NET_ADMIN`, any case.
/// `ALL` is handled by [`resolve`].
pub fn parse(name: &str) -> Result<Capability, ValueError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<Capability>().map_err(|_| {
        let names: Vec<String> = all().iter().map(|c| c.to_string()).collect();
        let hint = crate::spec::load::suggest(&full, names.iter().map(String::as_str))
            .map(|s| format!(" (did you mean {s}?)"))
            .unwrap_or_default();
        ValueError(format!("unknown capability {name:?}{hint}"))
    })
}

/// Checks a `cap-add`/`cap-drop` entry and returns its canonical spelling (`CAP_…` or `ALL`).
pub fn canonical(name: &str) -> Result<String, ValueError> {
    if name.trim().eq_ignore_ascii_case("all") {
        return Ok("ALL".into());
    }
    parse(name).map(|c| c.to_string())
}

/// Docker's rule: start from the default set; `cap-drop` removes (`ALL`: everything), then
/// `cap-add` adds (`ALL`: everything), so `--cap-drop ALL --cap-add NET_BIND_SERVICE` leaves
/// exactly that one.
pub fn resolve(add: &[String], drop: &[String]) -> Result<CapsHashSet, ValueError> {
    let mut set: CapsHashSet = DOCKER_DEFAULT.iter().copied().collect();
    for name in drop {
        if name.eq_ignore_ascii_case("all") {
            set.clear();
        } else {
            set.remove(&parse(name)?);
        }
    }
    for name in add {
        if name.eq_ignore_ascii_case("all") {
            set.extend(all());
        } else {
            set.insert(parse(name)?);
        }
    }
    Ok(set)
}

/// Cuts the bounding set down to `keep`, so that no setuid binary or file capability can
/// bring back more. Needs CAP_SETPCAP: call it before changing user.
///
/// Every capability the running kernel has is dropped (up to /proc/sys/kernel/cap_last_cap),
/// not only those this build knows by name: a newer kernel's would otherwise stay.
pub fn drop_bounding(keep: &CapsHashSet) -> Result<(), String> {
    let keep: std::collections::HashSet<u8> = keep.iter().map(|c| c.index()).collect();
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .unwrap_or(63);
    for index in (0..=last).filter(|i| !keep.contains(i)) {
        match crate::sys::capbset_drop(index) {
            // No such capability on this kernel (only when cap_last_cap was unreadable).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => {
                return Err(format!(
                    "dropping capability {index} from the bounding set: {e}"
                ));
            }
            Ok(()) => {}
        }
    }
    Ok(())
}

/// Sets the process's own capabilities after the change of user, as Docker does: a root
/// payload gets `keep` as its effective and permitted sets; any other user has none (setuid
/// cleared them). The inheritable and ambient sets are always empty, as in Docker since
/// CVE-2022-24769: a program with file capabilities gains nothing it did not have.
pub fn set_process(keep: &CapsHashSet, root: bool) -> Result<(), String> {
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    caps::clear(None, CapSet::Inheritable)
        .map_err(|e| format!("clearing inheritable capabilities: {e}"))?;
    if root {
        // Effective before permitted: it must stay a subset.
        caps::set(None, CapSet::Effective, keep)
            .map_err(|e| format!("setting effective capabilities: {e}"))?;
        caps::set(None, CapSet::Permitted, keep)
            .map_err(|e| format!("setting permitted capabilities: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rules() {
        assert_eq!(resolve(&[], &[]).unwrap().len(), 14);
        let only = resolve(&["net_bind_service".into()], &["ALL".into()]).unwrap();
        assert_eq!(names(&only), ["CAP_NET_BIND_SERVICE"]);
        let more = resolve(&["NET_ADMIN".into()], &["CAP_NET_RAW".into()]).unwrap();
        assert!(
            more.contains(&Capability::CAP_NET_ADMIN) && !more.contains(&Capability::CAP_NET_RAW)
        );
        assert_eq!(resolve(&["ALL".into()], &[]).unwrap(), all());
        let e = resolve(&["NET_ADMN".into()], &[]).unwrap_err().0;
        assert!(e.contains("did you mean CAP_NET_ADMIN"), "{e}");
        assert_eq!(canonical("sys_admin").unwrap(), "CAP_SYS_ADMIN");
        assert_eq!(canonical("all").unwrap(), "ALL");
    }
}
