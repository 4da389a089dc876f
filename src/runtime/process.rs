//! The payload process: argv, environment, working directory, identity and hostname,
//! computed from the spec, the image's defaults and the container's user database with
//! Docker's precedence rules. A plain value; nothing here touches the system.

use std::collections::BTreeMap;

use crate::image::ImageConfig;
use crate::spec::Spec;

use super::user::{self, Ids, UserDb, UserError};

/// Docker's default `PATH`, used when neither the image nor the spec sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything about the payload process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    pub argv: Vec<String>,
    /// `KEY=value` strings, in a stable order.
    pub env: Vec<String>,
    pub cwd: String,
    pub ids: Ids,
    pub hostname: String,
    pub domainname: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no command specified: set `command` or `entrypoint` (or use an image that has one)")]
    NoCommand,
    #[error(transparent)]
    User(#[from] UserError),
    #[error("working directory {0:?} must be an absolute path")]
    RelativeWorkdir(String),
}

/// Docker's rule for ENTRYPOINT and CMD: the spec's entrypoint replaces the image's and then
/// also drops the image's CMD; the spec's command replaces the image's CMD.
pub fn argv(spec: &Spec, image: &ImageConfig) -> Result<Vec<String>, ProcessError> {
    let entrypoint = spec.entrypoint.as_ref().or(image.entrypoint.as_ref());
    let cmd = match (&spec.command, &spec.entrypoint) {
        (Some(cmd), _) => Some(cmd),
        (None, Some(_)) => None,
        (None, None) => image.cmd.as_ref(),
    };
    let argv: Vec<String> = entrypoint
        .into_iter()
        .chain(cmd)
        .flatten()
        .cloned()
        .collect();
    if argv.is_empty() {
        return Err(ProcessError::NoCommand);
    }
    Ok(argv)
}

/// Builds the environment: the image's, then the env files' (in order), then the spec's;
/// `PATH`, `HOSTNAME` and `HOME` filled in as Docker does when nothing set them.
pub fn environment(
    spec: &Spec,
    image: &ImageConfig,
    env_files: &[(String, String)],
    hostname: &str,
    home: &str,
) -> Vec<String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), DEFAULT_PATH.into());
    env.insert("HOSTNAME".into(), hostname.into());
    for kv in &image.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        env.insert(k.into(), v.into());
    }
    for (k, v) in env_files {
        env.insert(k.clone(), v.clone());
    }
    for (k, v) in &spec.env {
        env.insert(k.clone(), v.clone());
    }
    env.entry("HOME".into()).or_insert_with(|| home.into());
    // On a terminal, programs need to know what it understands (Docker's choice).
    if spec.tty == Some(true) {
        env.entry("TERM".into()).or_insert_with(|| "xterm".into());
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The whole plan. `env_files` are the already-read contents of `spec.env_files`.
pub fn plan(
    spec: &Spec,
    image: &ImageConfig,
    users: &UserDb,
    env_files: &[(String, String)],
) -> Result<ProcessPlan, ProcessError> {
    let argv = argv(spec, image)?;
    let mut ids = user::resolve(
        spec.user.as_deref().or(image.user.as_deref()).unwrap_or(""),
        users,
    )?;
    for gid in user::extra_groups(&spec.group_add, users)? {
        if !ids.groups.contains(&gid) {
            ids.groups.push(gid);
        }
    }
    let hostname = spec
        .hostname
        .clone()
        .unwrap_or_else(|| spec.name.default_hostname());
    let cwd = spec
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(ProcessError::RelativeWorkdir(cwd));
    }
    let env = environment(spec, image, env_files, &hostname, &ids.home);
    Ok(ProcessPlan {
        argv,
        env,
        cwd,
        ids,
        hostname,
        domainname: spec.domainname.clone(),
    })
}

/// Parses an env file in Docker's `--env-file` format: `KEY=value` per line, taken
/// literally (no quote processing); blank lines and `#` comments skipped; a bare `KEY`
/// takes the variable from cleat's own environment, or is skipped if unset there.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (line.trim_end(), std::env::var(line.trim_end()).ok()),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("line {}: invalid variable name {key:?}", n + 1));
        }
        if let Some(value) = value {
            out.push((key.to_owned(), value));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Name, Source};

    fn spec() -> Spec {
        Spec::new("web".parse::<Name>().unwrap(), Source::Rootfs("/r".into()))
    }

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into(), "--port=80".into()]),
            env: vec!["PATH=/img/bin".into(), "A=image".into(), "B=image".into()],
            ..ImageConfig::default()
        }
    }

    #[test]
    fn docker_entrypoint_cmd_rules() {
        let mut s = spec();
        assert_eq!(
            argv(&s, &image()).unwrap(),
            ["/entry", "serve", "--port=80"]
        );
        s.command = Some(vec!["debug".into()]);
        assert_eq!(argv(&s, &image()).unwrap(), ["/entry", "debug"]);
        s.command = None;
        s.entrypoint = Some(vec!["/bin/sh".into()]);
        assert_eq!(
            argv(&s, &image()).unwrap(),
            ["/bin/sh"],
            "overriding ENTRYPOINT drops CMD"
        );
        s.entrypoint = Some(vec![]);
        s.command = Some(vec!["ls".into()]);
        assert_eq!(
            argv(&s, &image()).unwrap(),
            ["ls"],
            "an empty entrypoint removes it"
        );
        s.command = Some(vec![]);
        assert!(matches!(argv(&s, &image()), Err(ProcessError::NoCommand)));
        assert!(matches!(
            argv(&spec(), &ImageConfig::default()),
            Err(ProcessError::NoCommand)
        ));
    }

    #[test]
    fn environment_precedence() {
        let mut s = spec();
        s.env.insert("B".into(), "spec".into());
        s.env.insert("C".into(), "spec".into());
        let files = vec![("A".into(), "file".into()), ("C".into(), "file".into())];
        let env = environment(&s, &image(), &files, "web", "/root");
        assert_eq!(
            env,
            [
                "A=file",
                "B=spec",
                "C=spec",
                "HOME=/root",
                "HOSTNAME=web",
                "PATH=/img/bin"
            ]
        );
        let env = environment(&spec(), &ImageConfig::default(), &[], "h", "/");
        assert!(env.contains(&format!("PATH={DEFAULT_PATH}")));
    }

    #[test]
    fn a_terminal_sets_term_unless_something_else_did() {
        let mut s = spec();
        let plain = environment(&s, &image(), &[], "h", "/root");
        assert!(!plain.iter().any(|e| e.starts_with("TERM=")));
        s.tty = Some(true);
        let env = environment(&s, &image(), &[], "h", "/root");
        assert!(env.contains(&"TERM=xterm".to_owned()), "{env:?}");
        s.env.insert("TERM".into(), "vt100".into());
        let env = environment(&s, &image(), &[], "h", "/root");
        assert!(env.contains(&"TERM=vt100".to_owned()), "{env:?}");
    }

    #[test]
    fn env_file_format() {
        let got = parse_env_file("# c\n\nA=1\nB=x=y\n  C=\" quoted \"\nCLEAT_SURELY_UNSET_VAR\n")
            .unwrap();
        assert_eq!(
            got,
            [
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("C".into(), "\" quoted \"".into())
            ]
        );
        assert!(parse_env_file("=x\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn plan_defaults_hostname_and_cwd() {
        let mut s = spec();
        s.command = Some(vec!["true".into()]);
        let p = plan(&s, &ImageConfig::default(), &UserDb::default(), &[]).unwrap();
        assert_eq!(
            (p.hostname.as_str(), p.cwd.as_str(), p.ids.uid),
            ("web", "/", 0)
        );
        s.working_dir = Some("rel".into());
        assert!(matches!(
            plan(&s, &ImageConfig::default(), &UserDb::default(), &[]),
            Err(ProcessError::RelativeWorkdir(_))
        ));
    }
}
