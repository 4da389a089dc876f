//! Address leases on a network: one file per leased address in the network's lease directory
//! (under /run, so a reboot frees everything, as it stops every container):
//!
//! ```text
//! /run/cleat/networks/NAME/leases/
//!   lock              flock(2)ed by every change, so concurrent starts never share an address
//!   10.89.0.2         "web\n": the container holding 10.89.0.2
//!   fd00:c1ea::2      "web\n" (IPv6 in its canonical form)
//! ```
//!
//! A lease is created with `O_EXCL` under its final name, then its owner written into it. A
//! crash between the two leaves an empty lease, which counts as owned by nobody, and any
//! lease whose owner is gone is reclaimed by the next allocation: a container that dies
//! without releasing its address (SIGKILL, a power cut inside a long-lived /run) never leaks
//! it for good.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::cidr::Subnet;

/// The lock file in a lease directory.
const LOCK: &str = "lock";

/// What went wrong with an address lease.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("address {addr} is not in the network's subnet {subnet}")]
    OutsideSubnet { addr: IpAddr, subnet: Subnet },
    #[error("address {addr} is the {what} of {subnet}; a container cannot use it")]
    NotAHost {
        addr: IpAddr,
        subnet: Subnet,
        /// "network address" or "broadcast address".
        what: &'static str,
    },
    #[error("address {addr} is reserved on {subnet} (for the network's gateway)")]
    Reserved { addr: IpAddr, subnet: Subnet },
    #[error("address {addr} is already in use by container {owner}")]
    InUse { addr: IpAddr, owner: String },
    #[error("no free address left in {subnet}")]
    Exhausted { subnet: Subnet },
    /// An owner that cannot be written into a lease and read back.
    #[error("invalid lease owner {0:?}")]
    BadOwner(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> IpamError {
    let path = path.into();
    move |source| IpamError::Io { path, source }
}

/// The leases of one network, in one directory.
#[derive(Debug, Clone)]
pub struct Leases {
    dir: PathBuf,
}

/// One lease file, as found.
#[derive(Debug)]
struct Lease {
    addr: IpAddr,
    /// The container holding it; empty if the file could not be read (nobody's).
    owner: String,
    /// The file, by the name it was found under.
    path: PathBuf,
}

impl Leases {
    /// The leases in `dir` (created on the first allocation).
    pub fn new(dir: impl Into<PathBuf>) -> Leases {
        Leases { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Leases an address in `subnet` to `owner` and returns it.
    ///
    /// - An owner that already holds an address in `subnet` gets it again (a restart keeps
    ///   its address), unless it `wanted` another one: then it moves there.
    /// - Leases of owners `is_alive` says are gone are reclaimed first (`owner` itself is
    ///   never asked: it is the one starting). `is_alive` should say whether a container may
    ///   still use its address, and is asked once per owner.
    /// - `wanted` (a static `--ip`) must be a host address of `subnet`, not `reserved`, and
    ///   not leased to anyone else.
    /// - Otherwise, the lowest free host address that is not `reserved` (the gateway).
    pub fn allocate(
        &self,
        subnet: &Subnet,
        reserved: &[IpAddr],
        owner: &str,
        wanted: Option<IpAddr>,
        is_alive: impl Fn(&str) -> bool,
    ) -> Result<IpAddr, IpamError> {
        check_owner(owner)?;
        if let Some(addr) = wanted {
            check_wanted(subnet, reserved, addr)?;
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_err(&self.dir))?;
        let _lock = self.lock(FlockOperation::LockExclusive)?;
        let leases = self.read()?;

        let mine: Vec<(IpAddr, PathBuf)> = leases
            .iter()
            .filter(|l| l.owner == owner && subnet.contains(l.addr))
            .map(|l| (l.addr, l.path.clone()))
            .collect();
        // `read` sorts by address: the first is the lowest.
        match (wanted, mine.first()) {
            (None, Some(&(held, _))) => return Ok(held),
            (Some(addr), _) if mine.iter().any(|(a, _)| *a == addr) => return Ok(addr),
            _ => {}
        }

        let mut alive = HashMap::new();
        let mut kept = Vec::with_capacity(leases.len());
        for lease in leases {
            if lease.owner == owner || owner_alive(&lease.owner, &is_alive, &mut alive) {
                kept.push(lease);
            } else {
                remove_lease(&lease.path)?;
            }
        }

        let addr = match wanted {
            Some(addr) => {
                if let Some(holder) = kept.into_iter().find(|l| l.addr == addr) {
                    return Err(IpamError::InUse {
                        addr,
                        owner: holder.owner,
                    });
                }
                addr
            }
            None => {
                let taken: HashSet<IpAddr> = kept.iter().map(|l| l.addr).collect();
                lowest_free(subnet, reserved, &taken)
                    .ok_or(IpamError::Exhausted { subnet: *subnet })?
            }
        };
        self.write_lease(addr, owner)?;
        // The owner moved to its `wanted` address: its old one is free.
        for (_, old) in mine {
            remove_lease(&old)?;
        }
        Ok(addr)
    }

    /// Releases every address `owner` holds, and returns them.
    pub fn release(&self, owner: &str) -> Result<Vec<IpAddr>, IpamError> {
        self.remove_where(|lease_owner| lease_owner == owner)
            .map(|removed| removed.into_iter().map(|(addr, _)| addr).collect())
    }

    /// Every lease: the address and its owner (empty if the lease could not be read), by
    /// address.
    pub fn list(&self) -> Result<Vec<(IpAddr, String)>, IpamError> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        // Shared: an allocation in progress is seen whole or not at all.
        let _lock = self.lock(FlockOperation::LockShared)?;
        Ok(self
            .read()?
            .into_iter()
            .map(|l| (l.addr, l.owner))
            .collect())
    }

    /// Removes the leases of owners `is_alive` says are gone (and the unreadable ones), and
    /// returns them (`cleat network prune`).
    pub fn reclaim(
        &self,
        is_alive: impl Fn(&str) -> bool,
    ) -> Result<Vec<(IpAddr, String)>, IpamError> {
        let mut alive = HashMap::new();
        self.remove_where(|owner| !owner_alive(owner, &is_alive, &mut alive))
    }

    /// Removes, under the lock, the leases whose owner `doomed` picks; returns them.
    fn remove_where(
        &self,
        mut doomed: impl FnMut(&str) -> bool,
    ) -> Result<Vec<(IpAddr, String)>, IpamError> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        let _lock = self.lock(FlockOperation::LockExclusive)?;
        let mut removed = Vec::new();
        for lease in self.read()? {
            if doomed(&lease.owner) {
                remove_lease(&lease.path)?;
                removed.push((lease.addr, lease.owner));
            }
        }
        Ok(removed)
    }

    /// The lock, held until the file is dropped (or the process dies). The lock file is
    /// never removed, so the file locked is always the one others lock.
    fn lock(&self, operation: FlockOperation) -> Result<File, IpamError> {
        let path = self.dir.join(LOCK);
        let fd = rustix::fs::open(
            &path,
            OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err(&path)(e.into()))?;
        loop {
            match rustix::fs::flock(&fd, operation) {
                Ok(()) => return Ok(File::from(fd)),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(io_err(&path)(e.into())),
            }
        }
    }

    /// Every lease in the directory, by address. Files whose names are not addresses (the
    /// lock) are not leases.
    fn read(&self) -> Result<Vec<Lease>, IpamError> {
        let entries = fs::read_dir(&self.dir).map_err(io_err(&self.dir))?;
        let mut leases = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            let Some(addr) = name.to_str().and_then(|n| n.parse::<IpAddr>().ok()) else {
                continue;
            };
            let path = entry.path();
            leases.push(Lease {
                addr,
                owner: read_owner(&path),
                path,
            });
        }
        leases.sort_by_key(|l| l.addr);
        Ok(leases)
    }

    fn write_lease(&self, addr: IpAddr, owner: &str) -> Result<(), IpamError> {
        let path = self.dir.join(addr.to_string());
        let fd = rustix::fs::open(
            &path,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err(&path)(e.into()))?;
        File::from(fd)
            .write_all(format!("{owner}\n").as_bytes())
            .map_err(|e| {
                // Not left behind half written (though a crash here would be harmless).
                let _ = fs::remove_file(&path);
                io_err(&path)(e)
            })
    }
}

/// An owner is written as one line, and the empty owner means "nobody".
fn check_owner(owner: &str) -> Result<(), IpamError> {
    if owner.is_empty() || owner.contains(['\n', '\0']) {
        return Err(IpamError::BadOwner(owner.to_owned()));
    }
    Ok(())
}

/// Whether `addr` may be asked for at all on `subnet`.
fn check_wanted(subnet: &Subnet, reserved: &[IpAddr], addr: IpAddr) -> Result<(), IpamError> {
    let subnet = *subnet;
    if !subnet.contains(addr) {
        return Err(IpamError::OutsideSubnet { addr, subnet });
    }
    let what = if addr < subnet.first_host() {
        Some("network address")
    } else if addr > subnet.last_host() {
        Some("broadcast address")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(IpamError::NotAHost { addr, subnet, what });
    }
    if reserved.contains(&addr) {
        return Err(IpamError::Reserved { addr, subnet });
    }
    Ok(())
}

/// The lowest host address of `subnet` that is neither `reserved` nor `taken`. Only as many
/// addresses are tried as there are reserved and taken ones, plus one: a /64 is no slower
/// than a /24.
fn lowest_free(subnet: &Subnet, reserved: &[IpAddr], taken: &HashSet<IpAddr>) -> Option<IpAddr> {
    let last = subnet.last_host();
    // 1 where the network address is not a host address, else 0.
    let start = u128::from(subnet.first_host() != subnet.network());
    (start..=u128::MAX)
        .map_while(|n| subnet.host(n))
        .take_while(|a| *a <= last)
        .find(|a| !reserved.contains(a) && !taken.contains(a))
}

/// Whether a lease's owner is still there, asking `is_alive` once per owner. Nobody (an
/// unreadable lease) never is.
fn owner_alive(
    owner: &str,
    is_alive: &impl Fn(&str) -> bool,
    cache: &mut HashMap<String, bool>,
) -> bool {
    if owner.is_empty() {
        return false;
    }
    if let Some(&known) = cache.get(owner) {
        return known;
    }
    let alive = is_alive(owner);
    cache.insert(owner.to_owned(), alive);
    alive
}

/// The owner a lease names, or "" (nobody) if it cannot be read: a lease a crash left
/// empty, or damaged.
fn read_owner(path: &Path) -> String {
    let mut content = String::new();
    let read = File::open(path).and_then(|mut f| f.read_to_string(&mut content));
    match (read, content.strip_suffix('\n')) {
        (Ok(_), Some(owner)) if !owner.contains('\n') => owner.to_owned(),
        _ => String::new(),
    }
}

fn remove_lease(path: &Path) -> Result<(), IpamError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(label: &str) -> Leases {
        let dir = std::env::temp_dir().join(format!("cleat-ipam-{}-{label}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Leases::new(dir.join("leases"))
    }

    fn cleanup(leases: &Leases) {
        fs::remove_dir_all(leases.dir().parent().unwrap()).unwrap();
    }

    fn net(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn alive(_: &str) -> bool {
        true
    }

    fn owners(leases: &Leases) -> Vec<(String, String)> {
        leases
            .list()
            .unwrap()
            .into_iter()
            .map(|(a, o)| (a.to_string(), o))
            .collect()
    }

    fn pair(addr: &str, owner: &str) -> (String, String) {
        (addr.to_owned(), owner.to_owned())
    }

    #[test]
    fn allocates_in_order_skipping_the_gateway() {
        let leases = scratch("order");
        let subnet = net("10.89.0.0/24");
        let gateway = [ip("10.89.0.1")];
        for (owner, want) in [("a", "10.89.0.2"), ("b", "10.89.0.3"), ("c", "10.89.0.4")] {
            let got = leases
                .allocate(&subnet, &gateway, owner, None, alive)
                .unwrap();
            assert_eq!(got, ip(want));
        }
        // A hole is filled first.
        assert_eq!(leases.release("b").unwrap(), [ip("10.89.0.3")]);
        let got = leases
            .allocate(&subnet, &gateway, "d", None, alive)
            .unwrap();
        assert_eq!(got, ip("10.89.0.3"));
        assert_eq!(
            owners(&leases),
            [
                pair("10.89.0.2", "a"),
                pair("10.89.0.3", "d"),
                pair("10.89.0.4", "c")
            ]
        );
        let mode = fs::metadata(leases.dir()).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            fs::read_to_string(leases.dir().join("10.89.0.2")).unwrap(),
            "a\n"
        );
        cleanup(&leases);
    }

    #[test]
    fn reallocation_is_idempotent() {
        let leases = scratch("again");
        let subnet = net("10.89.0.0/24");
        let gateway = [ip("10.89.0.1")];
        let first = leases
            .allocate(&subnet, &gateway, "web", None, alive)
            .unwrap();
        leases
            .allocate(&subnet, &gateway, "db", None, alive)
            .unwrap();
        // The owner itself is never asked whether it is alive: it is the one starting.
        let again = leases
            .allocate(&subnet, &gateway, "web", None, |o| o != "web")
            .unwrap();
        assert_eq!(first, again);
        let same = leases
            .allocate(&subnet, &gateway, "web", Some(first), alive)
            .unwrap();
        assert_eq!(first, same);
        assert_eq!(leases.list().unwrap().len(), 2);
        cleanup(&leases);
    }

    #[test]
    fn static_addresses() {
        let leases = scratch("static");
        let subnet = net("10.89.0.0/24");
        let gateway = [ip("10.89.0.1")];
        let got = leases
            .allocate(&subnet, &gateway, "web", Some(ip("10.89.0.50")), alive)
            .unwrap();
        assert_eq!(got, ip("10.89.0.50"));

        let err = |wanted: &str| {
            leases
                .allocate(&subnet, &gateway, "other", Some(ip(wanted)), alive)
                .unwrap_err()
        };
        let e = err("10.90.0.5");
        assert!(matches!(e, IpamError::OutsideSubnet { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "address 10.90.0.5 is not in the network's subnet 10.89.0.0/24"
        );
        let e = err("fd00::5");
        assert!(matches!(e, IpamError::OutsideSubnet { .. }), "{e}");
        let e = err("10.89.0.0");
        assert!(e.to_string().contains("is the network address of"), "{e}");
        let e = err("10.89.0.255");
        assert!(e.to_string().contains("is the broadcast address of"), "{e}");
        let e = err("10.89.0.1");
        assert!(matches!(e, IpamError::Reserved { .. }), "{e}");
        let e = err("10.89.0.50");
        assert_eq!(
            e.to_string(),
            "address 10.89.0.50 is already in use by container web"
        );
        // Dynamic allocation does not hand out the static address.
        let next = leases
            .allocate(&subnet, &gateway, "x", None, alive)
            .unwrap();
        assert_eq!(next, ip("10.89.0.2"));

        // Held by a dead owner: reclaimed.
        let got = leases
            .allocate(&subnet, &gateway, "other", Some(ip("10.89.0.50")), |o| {
                o != "web"
            })
            .unwrap();
        assert_eq!(got, ip("10.89.0.50"));
        assert_eq!(
            owners(&leases),
            [pair("10.89.0.2", "x"), pair("10.89.0.50", "other")]
        );

        // An owner asking for another address moves there.
        let got = leases
            .allocate(&subnet, &gateway, "other", Some(ip("10.89.0.60")), alive)
            .unwrap();
        assert_eq!(got, ip("10.89.0.60"));
        assert_eq!(
            owners(&leases),
            [pair("10.89.0.2", "x"), pair("10.89.0.60", "other")]
        );
        cleanup(&leases);
    }

    #[test]
    fn exhaustion_on_a_slash_30() {
        let leases = scratch("full");
        let subnet = net("10.0.0.0/30");
        let gateway = [ip("10.0.0.1")];
        let got = leases
            .allocate(&subnet, &gateway, "a", None, alive)
            .unwrap();
        assert_eq!(got, ip("10.0.0.2"));
        let e = leases
            .allocate(&subnet, &gateway, "b", None, alive)
            .unwrap_err();
        assert!(matches!(e, IpamError::Exhausted { .. }), "{e}");
        assert_eq!(e.to_string(), "no free address left in 10.0.0.0/30");
        // Once "a" is gone, its address is reclaimed for "b".
        let got = leases
            .allocate(&subnet, &gateway, "b", None, |o| o != "a")
            .unwrap();
        assert_eq!(got, ip("10.0.0.2"));
        cleanup(&leases);
    }

    #[test]
    fn release_and_reclaim() {
        let leases = scratch("release");
        assert!(leases.release("nobody").unwrap().is_empty());
        assert!(leases.list().unwrap().is_empty());
        assert!(leases.reclaim(|_| false).unwrap().is_empty());
        assert!(!leases.dir().exists(), "reading creates nothing");

        let v4 = net("10.89.0.0/24");
        let v6 = net("fd00:c1ea::/64");
        for owner in ["a", "b", "c"] {
            leases.allocate(&v4, &[], owner, None, alive).unwrap();
        }
        leases.allocate(&v6, &[], "a", None, alive).unwrap();
        assert_eq!(
            leases.release("a").unwrap(),
            [ip("10.89.0.1"), ip("fd00:c1ea::1")]
        );
        assert!(leases.release("a").unwrap().is_empty());

        // A lease a crash left empty, one damaged, and files that are not leases.
        fs::write(leases.dir().join("10.89.0.9"), "").unwrap();
        fs::write(leases.dir().join("10.89.0.10"), "two\nlines\n").unwrap();
        fs::write(leases.dir().join(".tmp-1"), "x\n").unwrap();
        fs::write(leases.dir().join("not-an-address"), "x\n").unwrap();
        assert_eq!(
            owners(&leases),
            [
                pair("10.89.0.2", "b"),
                pair("10.89.0.3", "c"),
                pair("10.89.0.9", ""),
                pair("10.89.0.10", ""),
            ]
        );
        let asked = std::cell::RefCell::new(Vec::new());
        let reclaimed = leases
            .reclaim(|o| {
                asked.borrow_mut().push(o.to_owned());
                o == "b"
            })
            .unwrap();
        assert_eq!(
            reclaimed,
            [
                (ip("10.89.0.3"), "c".to_owned()),
                (ip("10.89.0.9"), String::new()),
                (ip("10.89.0.10"), String::new()),
            ]
        );
        assert_eq!(*asked.borrow(), ["b", "c"], "nobody is not asked about");
        assert_eq!(owners(&leases), [pair("10.89.0.2", "b")]);
        assert!(leases.dir().join("not-an-address").exists());
        assert!(leases.dir().join(LOCK).exists());
        cleanup(&leases);
    }

    #[test]
    fn bad_owners_are_refused() {
        let leases = scratch("owner");
        let subnet = net("10.89.0.0/24");
        for owner in ["", "a\nb"] {
            let e = leases
                .allocate(&subnet, &[], owner, None, alive)
                .unwrap_err();
            assert!(matches!(e, IpamError::BadOwner(_)), "{e}");
        }
        assert!(!leases.dir().exists());
    }

    #[test]
    fn ipv6_allocation() {
        let leases = scratch("v6");
        let subnet = net("fd00:c1ea::/64");
        let gateway = [ip("fd00:c1ea::1")];
        let a = leases
            .allocate(&subnet, &gateway, "a", None, alive)
            .unwrap();
        let b = leases
            .allocate(&subnet, &gateway, "b", None, alive)
            .unwrap();
        assert_eq!((a, b), (ip("fd00:c1ea::2"), ip("fd00:c1ea::3")));
        assert!(leases.dir().join("fd00:c1ea::2").exists());
        let e = leases
            .allocate(&subnet, &gateway, "c", Some(ip("fd00:c1ea::")), alive)
            .unwrap_err();
        assert!(matches!(e, IpamError::NotAHost { .. }), "{e}");
        // The last address is a host address in IPv6.
        let last = ip("fd00:c1ea::ffff:ffff:ffff:ffff");
        let got = leases
            .allocate(&subnet, &gateway, "c", Some(last), alive)
            .unwrap();
        assert_eq!(got, last);
        // A lease in another subnet of the network is not the owner's lease in this one.
        let v4 = net("10.89.0.0/24");
        let got = leases.allocate(&v4, &[], "a", None, alive).unwrap();
        assert_eq!(got, ip("10.89.0.1"));
        assert_eq!(leases.list().unwrap().len(), 4);
        cleanup(&leases);
    }

    #[test]
    fn concurrent_allocations_get_distinct_addresses() {
        let leases = scratch("race");
        let subnet = net("10.89.0.0/24");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let leases = leases.clone();
                std::thread::spawn(move || {
                    let owner = format!("c{i}");
                    leases
                        .allocate(&subnet, &[ip("10.89.0.1")], &owner, None, alive)
                        .unwrap()
                })
            })
            .collect();
        let got: BTreeSet<IpAddr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(got.len(), 8);
        let expected: BTreeSet<IpAddr> = (2..10).map(|n| subnet.host(n).unwrap()).collect();
        assert_eq!(got, expected);
        assert_eq!(leases.list().unwrap().len(), 8);
        cleanup(&leases);
    }
}
