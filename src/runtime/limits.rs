//! `--ulimit`: the `setrlimit` limits the payload starts with. Limits are planned in cleat
//! (clamped to what the process may set: never above the current hard limit, since raising it
//! needs CAP_SYS_RESOURCE and would fail the start) and set in the container's first process.

use rustix::process::{Resource, Rlimit};

use crate::spec::{Spec, Ulimit};

/// One limit to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub name: &'static str,
    pub resource: Resource,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Every resource, by Docker's name.
pub const RESOURCES: &[(&str, Resource)] = &[
    ("as", Resource::As),
    ("core", Resource::Core),
    ("cpu", Resource::Cpu),
    ("data", Resource::Data),
    ("fsize", Resource::Fsize),
    ("locks", Resource::Locks),
    ("memlock", Resource::Memlock),
    ("msgqueue", Resource::Msgqueue),
    ("nice", Resource::Nice),
    ("nofile", Resource::Nofile),
    ("nproc", Resource::Nproc),
    ("rss", Resource::Rss),
    ("rtprio", Resource::Rtprio),
    ("rttime", Resource::Rttime),
    ("sigpending", Resource::Sigpending),
    ("stack", Resource::Stack),
];

/// `a <= b`, with `None` as infinity.
fn at_most(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (_, None) => a,
        (None, Some(b)) => Some(b),
        (Some(a), Some(b)) => Some(a.min(b)),
    }
}

/// Plans the spec's limits against the current hard limits (`current` gives them, as
/// `getrlimit` would). Returns the limits and a warning for each one that had to be lowered.
pub fn plan(spec: &Spec, current: impl Fn(Resource) -> Rlimit) -> (Vec<Limit>, Vec<String>) {
    let mut limits = Vec::new();
    let mut warnings = Vec::new();
    for (name, wanted) in &spec.ulimits {
        let Some(&(name, resource)) = RESOURCES.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let Ulimit { soft, hard } = *wanted;
        let ceiling = current(resource).maximum;
        let hard_now = at_most(hard, ceiling);
        let soft_now = at_most(soft, hard_now);
        if hard_now != hard {
            let show = |v: Option<u64>| {
                v.map(|n| n.to_string())
                    .unwrap_or_else(|| "unlimited".into())
            };
            warnings.push(format!(
                "ulimit {name}: hard limit {} is above the current hard limit {}; using {}",
                show(hard),
                show(ceiling),
                show(hard_now)
            ));
        }
        limits.push(Limit {
            name,
            resource,
            soft: soft_now,
            hard: hard_now,
        });
    }
    (limits, warnings)
}

/// Sets the limits on the calling process.
pub fn apply(limits: &[Limit]) -> Result<(), String> {
    for l in limits {
        rustix::process::setrlimit(
            l.resource,
            Rlimit {
                current: l.soft,
                maximum: l.hard,
            },
        )
        .map_err(|e| format!("setting ulimit {}: {e}", l.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Source;

    #[test]
    fn limits_are_clamped_to_the_current_hard_limit() {
        let mut spec = Spec::new("c".parse().unwrap(), Source::Rootfs("/r".into()));
        spec.ulimits
            .insert("nofile".into(), "1024:100000".parse().unwrap());
        spec.ulimits.insert("core".into(), "0".parse().unwrap());
        spec.ulimits
            .insert("nproc".into(), "unlimited".parse().unwrap());
        let current = |r: Resource| Rlimit {
            current: Some(1),
            maximum: if r == Resource::Nofile || r == Resource::Nproc {
                Some(20000)
            } else {
                None
            },
        };
        let (limits, warnings) = plan(&spec, current);
        let by = |n: &str| limits.iter().find(|l| l.name == n).copied().unwrap();
        assert_eq!(
            (by("nofile").soft, by("nofile").hard),
            (Some(1024), Some(20000))
        );
        assert_eq!((by("core").soft, by("core").hard), (Some(0), Some(0)));
        assert_eq!(
            (by("nproc").soft, by("nproc").hard),
            (Some(20000), Some(20000))
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("nofile") || warnings[1].contains("nofile"));
    }
}
