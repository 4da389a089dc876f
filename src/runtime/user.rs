//! Who the payload runs as: `user[:group]` resolved against the container's own /etc/passwd
//! and /etc/group, by name or number, with Docker's (runc's) rules for the cases in between.

use std::fmt;

/// One /etc/passwd entry (the fields cleat needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One /etc/group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The container's user database (either file may be missing: an empty list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDb {
    pub passwd: Vec<PasswdEntry>,
    pub groups: Vec<GroupEntry>,
}

/// The resolved identity of the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// HOME, from the passwd entry when there is one.
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in the container's /etc/passwd")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in the container's /etc/group")]
    NoGroup(String),
    #[error("invalid user {0:?}: expected NAME, UID, NAME:GROUP or UID:GID")]
    Syntax(String),
}

impl UserDb {
    /// The database from a container's /etc/passwd and /etc/group as `read` gets them (`None`:
    /// the file is missing, and its list is empty). A failed read is returned with its path.
    pub fn read_with<E>(
        read: impl Fn(&str) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<UserDb, (&'static str, E)> {
        let text = |path: &'static str| -> Result<String, (&'static str, E)> {
            let bytes = read(path).map_err(|e| (path, e))?;
            Ok(bytes
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default())
        };
        Ok(UserDb {
            passwd: parse_passwd(&text("/etc/passwd")?),
            groups: parse_group(&text("/etc/group")?),
        })
    }
}

/// `--group-add`: supplementary groups by number, or by name from the container's /etc/group.
pub fn extra_groups(names: &[String], db: &UserDb) -> Result<Vec<u32>, UserError> {
    names
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(gid) => Ok(gid),
            Err(_) => db
                .groups
                .iter()
                .find(|e| e.name == *g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::NoGroup(g.clone())),
        })
        .collect()
}

/// Parses /etc/passwd; malformed lines are skipped, as libc does.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_owned(),
            })
        })
        .collect()
}

/// Parses /etc/group; malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

impl fmt::Display for Ids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uid={} gid={} groups={:?}",
            self.uid, self.gid, self.groups
        )
    }
}

/// Resolves `spec` (`""` means root) the way runc's `GetExecUser` does for Docker:
/// - a user name must exist in passwd; a number need not (then gid 0 and HOME `/`);
/// - an explicit group (name or number) sets the primary group, and no supplementary ones;
/// - otherwise the primary group is the passwd entry's, and the supplementary groups are
///   those that list the user's name as a member.
pub fn resolve(spec: &str, db: &UserDb) -> Result<Ids, UserError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if group_part == Some("") || spec.matches(':').count() > 1 {
        return Err(UserError::Syntax(spec.to_owned()));
    }
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => db
            .passwd
            .iter()
            .find(|e| e.uid == uid)
            .cloned()
            .or(Some(PasswdEntry {
                name: String::new(),
                uid,
                gid: 0,
                home: "/".into(),
            })),
        Err(_) => db.passwd.iter().find(|e| e.name == user_part).cloned(),
    }
    .ok_or_else(|| UserError::NoUser(user_part.to_owned()))?;

    let mut ids = Ids {
        uid: entry.uid,
        gid: entry.gid,
        groups: Vec::new(),
        home: entry.home.clone(),
    };
    if ids.home.is_empty() {
        ids.home = "/".into();
    }
    match group_part {
        Some(g) => {
            ids.gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => db
                    .groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| UserError::NoGroup(g.to_owned()))?,
            };
        }
        None if !entry.name.is_empty() => {
            ids.groups = db
                .groups
                .iter()
                .filter(|g| g.members.contains(&entry.name))
                .map(|g| g.gid)
                .collect();
            ids.groups.dedup();
        }
        None => {}
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> UserDb {
        UserDb {
            passwd: parse_passwd(
                "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
            ),
            groups: parse_group(
                "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\naudio:x:29:app\nnogroup:x:65534:\n",
            ),
        }
    }

    #[test]
    fn parses_and_skips_garbage() {
        let db = db();
        assert_eq!(db.passwd.len(), 3);
        assert_eq!(db.groups[2].members, ["app", "other"]);
    }

    #[test]
    fn root_by_default() {
        let ids = resolve("", &db()).unwrap();
        assert_eq!((ids.uid, ids.gid, ids.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn name_gets_primary_and_supplementary_groups() {
        let ids = resolve("app", &db()).unwrap();
        assert_eq!((ids.uid, ids.gid), (1000, 1000));
        assert_eq!(ids.groups, [50, 29]);
        assert_eq!(ids.home, "/home/app");
    }

    #[test]
    fn explicit_group_replaces_primary_and_drops_supplementary() {
        let ids = resolve("app:staff", &db()).unwrap();
        assert_eq!((ids.uid, ids.gid), (1000, 50));
        assert!(ids.groups.is_empty());
        assert_eq!(resolve("app:7", &db()).unwrap().gid, 7);
    }

    #[test]
    fn unknown_numbers_are_allowed_unknown_names_are_not() {
        let ids = resolve("4242", &db()).unwrap();
        assert_eq!((ids.uid, ids.gid, ids.home.as_str()), (4242, 0, "/"));
        assert_eq!(resolve("1000", &db()).unwrap().home, "/home/app");
        assert_eq!(
            resolve("ghost", &db()),
            Err(UserError::NoUser("ghost".into()))
        );
        assert_eq!(
            resolve("app:ghosts", &db()),
            Err(UserError::NoGroup("ghosts".into()))
        );
        assert!(matches!(resolve("app:", &db()), Err(UserError::Syntax(_))));
        assert!(matches!(resolve("a:b:c", &db()), Err(UserError::Syntax(_))));
        assert_eq!(resolve("4242", &UserDb::default()).unwrap().uid, 4242);
    }
}
