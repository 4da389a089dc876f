//! Names between the containers of a user-defined network, without a resident DNS server:
//! each member's /etc/hosts (a file of cleat's, bind-mounted into the container) ends with a
//! section that lists the network's containers by name and alias, rewritten in place whenever
//! one joins or leaves. Resolvers read /etc/hosts afresh for every lookup, so a change is seen
//! at once; programs that cache what they resolved see it as they would a DNS change.
//!
//! ```text
//! # cleat network backend: its containers
//! 10.90.0.2    db    postgres
//! 10.90.0.3    web
//! # cleat network backend: end
//! ```

use std::io::{self, Seek, Write};
use std::net::IpAddr;
use std::path::Path;

/// A container of a network: its addresses there and the names it is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub addresses: Vec<IpAddr>,
    pub names: Vec<String>,
}

fn begin(network: &str) -> String {
    format!("# cleat network {network}: its containers")
}

fn end(network: &str) -> String {
    format!("# cleat network {network}: end")
}

/// The section of /etc/hosts for `network`'s `members` (sorted by address).
pub fn section(network: &str, members: &[Member]) -> String {
    let mut lines: Vec<(IpAddr, String)> = members
        .iter()
        .flat_map(|m| {
            m.addresses
                .iter()
                .map(|a| (*a, m.names.join("\t")))
                .collect::<Vec<_>>()
        })
        .filter(|(_, names)| !names.is_empty())
        .collect();
    lines.sort();
    let mut out = begin(network);
    out.push('\n');
    for (addr, names) in lines {
        out.push_str(&format!("{addr}\t{names}\n"));
    }
    out.push_str(&end(network));
    out.push('\n');
    out
}

/// `hosts` with its section for `network` replaced by `section` (appended if it had none;
/// removed if `section` is empty). Everything else is kept as it was.
pub fn with_section(hosts: &str, network: &str, section: &str) -> String {
    let (begin, end) = (begin(network), end(network));
    let mut out = String::with_capacity(hosts.len() + section.len());
    let mut inside = false;
    let mut placed = false;
    for line in hosts.lines() {
        if line == begin {
            inside = true;
            continue;
        }
        if inside {
            if line == end {
                inside = false;
                out.push_str(section);
                placed = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !placed {
        out.push_str(section);
    }
    out
}

/// Rewrites `path` in place: the container sees the file through a bind mount of this very
/// inode, which a rename would leave behind. The new text is written over the old before the
/// file is cut to its length, so a reader never finds it empty.
pub fn rewrite_in_place(path: &Path, text: &str) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.seek(io::SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())?;
    file.set_len(text.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(addr: &str, names: &[&str]) -> Member {
        Member {
            addresses: vec![addr.parse().unwrap()],
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_section_is_added_replaced_and_kept_apart_from_the_rest() {
        let base = "127.0.0.1\tlocalhost\n10.90.0.3\tabc123\n";
        let one = section("backend", &[member("10.90.0.3", &["web"])]);
        let hosts = with_section(base, "backend", &one);
        assert_eq!(
            hosts,
            "127.0.0.1\tlocalhost\n10.90.0.3\tabc123\n\
             # cleat network backend: its containers\n10.90.0.3\tweb\n\
             # cleat network backend: end\n"
        );
        let two = section(
            "backend",
            &[
                member("10.90.0.3", &["web"]),
                member("10.90.0.2", &["db", "postgres"]),
            ],
        );
        let hosts = with_section(&hosts, "backend", &two);
        assert_eq!(
            hosts,
            "127.0.0.1\tlocalhost\n10.90.0.3\tabc123\n\
             # cleat network backend: its containers\n\
             10.90.0.2\tdb\tpostgres\n10.90.0.3\tweb\n\
             # cleat network backend: end\n"
        );
        // A line added after the section (by hand, or --add-host) stays.
        let edited = format!("{hosts}192.0.2.1\textra\n");
        let again = with_section(&edited, "backend", &one);
        assert!(again.ends_with("192.0.2.1\textra\n"), "{again}");
        assert_eq!(again.matches("its containers").count(), 1, "{again}");
        // Another network's section is not this one's.
        let other = with_section(&again, "front", &section("front", &[]));
        assert_eq!(with_section(&other, "backend", &one), other);
    }

    #[test]
    fn rewriting_keeps_the_inode_and_the_length_right() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("cleat-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts");
        std::fs::write(&path, "a long first version of the file\n").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        rewrite_in_place(&path, "short\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short\n");
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        assert!(rewrite_in_place(&dir.join("missing"), "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
