//! IP forwarding, which a bridge network needs (containers' traffic is routed through the
//! host) and which a host may have off on purpose. cleat turns it on only when a container
//! joins a bridge network, records what it found, and puts that back when the last of its
//! bridges goes: a host where no container runs is as cleat found it.
//!
//! The kernel decides forwarding by the interface a packet comes in on, and traffic to and
//! from containers comes in on the bridges and on whatever uplinks the host has, so the
//! switch is the namespace-wide one (`net.ipv4.ip_forward`, and for IPv6 networks
//! `net.ipv6.conf.all.forwarding`), as Docker and Podman use it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The switches, as paths under /proc/sys.
const IPV4: &str = "net/ipv4/ip_forward";
const IPV6: &str = "net/ipv6/conf/all/forwarding";

/// What cleat changed: each switch it turned on, with the value it found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// (path under /proc/sys, value found).
    pub changed: Vec<(String, String)>,
}

/// Forwarding switches of one network namespace, with cleat's record of them.
pub struct Forwarding {
    /// /proc/sys, or a directory standing for it in tests.
    sys: PathBuf,
    /// The record (in /run: a reboot resets both the switches and the record).
    record: PathBuf,
}

impl Forwarding {
    pub fn system() -> Forwarding {
        Forwarding {
            sys: PathBuf::from("/proc/sys"),
            record: PathBuf::from("/run/cleat/forwarding.json"),
        }
    }

    pub fn at(sys: impl Into<PathBuf>, record: impl Into<PathBuf>) -> Forwarding {
        Forwarding {
            sys: sys.into(),
            record: record.into(),
        }
    }

    fn read_record(&self) -> io::Result<Record> {
        match fs::read(&self.record) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(e),
        }
    }

    fn write_record(&self, record: &Record) -> io::Result<()> {
        if let Some(dir) = self.record.parent() {
            fs::create_dir_all(dir)?;
        }
        let tmp = self.record.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
        fs::rename(&tmp, &self.record)
    }

    /// Serialises the changes of concurrent starts and stops (held until dropped).
    fn lock(&self) -> io::Result<fs::File> {
        if let Some(dir) = self.record.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.record.with_extension("lock"))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(file)
    }

    /// Turns forwarding on for IPv4 (and IPv6 with `ipv6`) where it is off, recording the
    /// value found the first time cleat changes a switch.
    pub fn enable(&self, ipv6: bool) -> io::Result<()> {
        let _lock = self.lock()?;
        let mut record = self.read_record()?;
        let mut switches = vec![IPV4];
        if ipv6 {
            switches.push(IPV6);
        }
        for switch in switches {
            let path = self.sys.join(switch);
            let value = read_switch(&path)?;
            if value == "1" {
                continue;
            }
            if !record.changed.iter().any(|(s, _)| s == switch) {
                record.changed.push((switch.to_owned(), value));
                // Recorded before the change: a crash between the two leaves a record of a
                // switch still off, which restoring handles.
                self.write_record(&record)?;
            }
            fs::write(&path, "1").map_err(at(&path))?;
        }
        Ok(())
    }

    /// Puts back what [`enable`](Self::enable) changed, and forgets it: for when the last of
    /// cleat's bridges is gone.
    pub fn restore(&self) -> io::Result<Record> {
        self.restore_unless(|| false)
    }

    /// [`restore`](Self::restore), unless `in_use` says (asked under the lock that `enable`
    /// takes too) that a network is in use again: a start that joins a network after the
    /// check enables forwarding after the restore.
    pub fn restore_unless(&self, in_use: impl FnOnce() -> bool) -> io::Result<Record> {
        let _lock = self.lock()?;
        if in_use() {
            return Ok(Record::default());
        }
        let record = self.read_record()?;
        for (switch, value) in &record.changed {
            let path = self.sys.join(switch);
            fs::write(&path, value).map_err(at(&path))?;
        }
        match fs::remove_file(&self.record) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(record)
    }
}

fn read_switch(path: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(path)
        .map_err(at(path))?
        .trim()
        .to_owned())
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(label: &str) -> Scratch {
            let dir = std::env::temp_dir()
                .join(format!("cleat-forwarding-{}-{label}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            for (switch, value) in [(IPV4, "0"), (IPV6, "1")] {
                let path = dir.join("sys").join(switch);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, format!("{value}\n")).unwrap();
            }
            Scratch(dir)
        }

        fn forwarding(&self) -> Forwarding {
            Forwarding::at(self.0.join("sys"), self.0.join("run/forwarding.json"))
        }

        fn switch(&self, switch: &str) -> String {
            read_switch(&self.0.join("sys").join(switch)).unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn turned_on_recorded_and_put_back() {
        let s = Scratch::new("cycle");
        let f = s.forwarding();
        f.enable(true).unwrap();
        assert_eq!(s.switch(IPV4), "1");
        assert_eq!(s.switch(IPV6), "1");
        // Again: the record keeps the value first found, not the 1 cleat set.
        f.enable(false).unwrap();
        let record = f.restore().unwrap();
        assert_eq!(record.changed, [(IPV4.to_owned(), "0".to_owned())]);
        assert_eq!(s.switch(IPV4), "0");
        assert_eq!(s.switch(IPV6), "1", "it was on before: left alone");
        // Nothing recorded: nothing to restore.
        assert_eq!(f.restore().unwrap(), Record::default());
        assert_eq!(s.switch(IPV4), "0");
    }

    #[test]
    fn a_host_that_forwards_already_is_left_alone() {
        let s = Scratch::new("on");
        fs::write(s.0.join("sys").join(IPV4), "1\n").unwrap();
        let f = s.forwarding();
        f.enable(true).unwrap();
        assert_eq!(f.restore().unwrap(), Record::default());
        assert_eq!(s.switch(IPV4), "1");
    }

    /// The real switches, in a network namespace of the test's own.
    #[test]
    fn the_kernels_switches() {
        if !super::super::testing::can_run(false) {
            return;
        }
        let record = std::env::temp_dir().join(format!(
            "cleat-forwarding-{}-kernel.json",
            std::process::id()
        ));
        let in_child = record.clone();
        super::super::testing::in_own_network_namespace(move || {
            let f = Forwarding::at("/proc/sys", &in_child);
            let switch = Path::new("/proc/sys/net/ipv4/ip_forward");
            assert_eq!(read_switch(switch).unwrap(), "0");
            f.enable(false).unwrap();
            assert_eq!(read_switch(switch).unwrap(), "1");
            f.restore().unwrap();
            assert_eq!(read_switch(switch).unwrap(), "0");
        });
        let _ = fs::remove_file(&record);
        let _ = fs::remove_file(record.with_extension("lock"));
    }
}
