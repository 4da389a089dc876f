//! The shared test host: one private systemd per run of this test binary, booted on first use
//! by `tests/testhost/testhost.sh` (see /work/shared/TESTHOST.md), with cleat installed into
//! it and a busybox root file system for containers.
//!
//! Teardown is guaranteed three ways:
//! - a `libc::atexit` handler SIGKILLs the `unshare` process (which kills systemd and every
//!   process of the namespace), waits for systemd to be gone, removes the cgroup2 directories
//!   the host created (deepest first, `rmdir` only) and the state directory;
//! - the `unshare` process is spawned from a thread that never exits, with
//!   `PR_SET_PDEATHSIG(SIGKILL)`, so that it dies with the test process even when no exit
//!   handler runs (SIGKILL, Ctrl-C, abort);
//! - every boot first removes what earlier killed runs left behind: cgroup directories
//!   `/sys/fs/cgroup/unified/cleat-testhost.*` holding no process and state directories
//!   `target/testhost/<pid>` whose test process is gone.
//!
//! Every command run by the helpers is bounded in time, and is killed (its whole process
//! group) when the bound is exceeded.

#![allow(dead_code)]

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Where cleat is installed inside the test host.
pub const CLEAT: &str = "/usr/local/bin/cleat";

/// Default bound for one command run inside the test host.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
const CGROUP_ROOT: &str = "/sys/fs/cgroup/unified";
const CGROUP_PREFIX: &str = "cleat-testhost.";

/// Payload: prints `ready`, exits 0 on SIGTERM.
pub const GRACEFUL: &str = "/bin/graceful";
/// Payload: prints `ready`, ignores SIGTERM and SIGINT (only SIGKILL ends it).
pub const STUBBORN: &str = "/bin/stubborn";
/// Payload: prints `NAME=value` (or `NAME=<unset>`) for each argument, then `ready`, then
/// waits, exiting 0 on SIGTERM.
pub const SHOW_ENV: &str = "/bin/show-env";
/// The probe (`tests/probe`, see `probe_binary`), inside the busybox root file system.
pub const PROBE: &str = "/bin/probe";
/// Where `probe_volume()` puts the probe in a container (from an image, for example).
pub const PROBE_MOUNT: &str = "/probe";

pub struct Host {
    /// Host PID of the `unshare` process (our child).
    pub unshare_pid: i32,
    /// Host PID of the private systemd (PID 1 inside).
    pub systemd_pid: i32,
    /// State directory, the same path inside and outside the namespace.
    pub state: PathBuf,
    /// The busybox root file system, the same path inside and outside.
    pub rootfs: String,
    /// How long booting (not counting the install) took.
    pub boot_time: Duration,
    seq: AtomicUsize,
    reload: Mutex<()>,
}

static HOST: OnceLock<Result<Host, String>> = OnceLock::new();

/// The shared test host, booted on first use. Panics (in every test that asks) if it could
/// not be booted.
pub fn host() -> &'static Host {
    match HOST.get_or_init(Host::boot) {
        Ok(h) => h,
        Err(e) => panic!("the test host could not be booted:\n{e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Teardown

#[derive(Default)]
struct Teardown {
    unshare_pid: Option<i32>,
    /// PID and start time (field 22 of /proc/PID/stat), to never mistake a recycled PID.
    systemd: Option<(i32, u64)>,
    cgroup: Option<PathBuf>,
    state: Option<PathBuf>,
}

static TEARDOWN: Mutex<Teardown> = Mutex::new(Teardown {
    unshare_pid: None,
    systemd: None,
    cgroup: None,
    state: None,
});
static UNSHARE_EXITED: AtomicBool = AtomicBool::new(false);

extern "C" fn teardown_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let t = match TEARDOWN.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        teardown(&t);
    });
}

fn teardown(t: &Teardown) {
    if let Some(pid) = t.unshare_pid {
        // Our own child, never reaped before the process exits (see `spawn_boot`): the PID
        // cannot have been recycled.
        // SAFETY: kill(2) with a valid signal number has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    if let Some((pid, start)) = t.systemd {
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_alive(pid, Some(start)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if process_alive(pid, Some(start)) {
            eprintln!("testhost: systemd (pid {pid}) still alive after SIGKILL; leaving cgroups");
            return;
        }
    }
    if let Some(cg) = &t.cgroup {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match remove_cgroup_tree(cg) {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    eprintln!("testhost: could not remove {}: {e}", cg.display());
                    break;
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    if let Some(state) = &t.state {
        if let Err(e) = fs::remove_dir_all(state) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("testhost: could not remove {}: {e}", state.display());
            }
        }
    }
}

/// Whether `pid` exists and is not a zombie (and, if given, started at `start`).
fn process_alive(pid: i32, start: Option<u64>) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return false;
    }
    match start {
        Some(s) => fields.get(19).and_then(|f| f.parse::<u64>().ok()) == Some(s),
        None => true,
    }
}

fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// All directories of a cgroup tree, deepest first.
fn cgroup_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
    walk(root, &mut out);
    out
}

fn cgroup_tree_has_processes(root: &Path) -> bool {
    cgroup_dirs(root).iter().any(|d| {
        fs::read_to_string(d.join("cgroup.procs"))
            .map(|s| !s.trim().is_empty())
            // Unreadable: assume busy, never remove what we cannot see.
            .unwrap_or(true)
    })
}

/// Removes a cgroup tree with `rmdir` only, deepest first.
fn remove_cgroup_tree(root: &Path) -> io::Result<()> {
    if !root.exists() {
        return Ok(());
    }
    for d in cgroup_dirs(root) {
        match fs::remove_dir(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", d.display()))),
        }
    }
    Ok(())
}

/// Removes the leftovers of earlier runs that were killed before their exit handler ran.
fn remove_stale(testhost_dir: &Path) {
    if let Ok(rd) = fs::read_dir(CGROUP_ROOT) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(CGROUP_PREFIX) else {
                continue;
            };
            // The suffix is the PID of the boot script, which becomes `unshare`: while it
            // lives, the directory may be in use (or about to be), whatever it holds now.
            if pid.parse::<i32>().is_ok_and(|p| process_alive(p, None)) {
                continue;
            }
            let path = e.path();
            if cgroup_tree_has_processes(&path) {
                continue;
            }
            match remove_cgroup_tree(&path) {
                Ok(()) => eprintln!("testhost: removed stale {}", path.display()),
                Err(e) => eprintln!("testhost: could not remove stale {}: {e}", path.display()),
            }
        }
    }
    if let Ok(rd) = fs::read_dir(testhost_dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(pid) = name.parse::<i32>() else {
                continue;
            };
            if process_alive(pid, None) {
                continue;
            }
            if let Ok(cg) = fs::read_to_string(e.path().join("cgroup")) {
                if Path::new(cg.trim()).exists() {
                    continue; // its cgroup is still there (busy): leave it alone
                }
            }
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Boot

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target directory: the parent of the profile directory holding the binaries.
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_cleat"));
    bin.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Spawns `testhost.sh boot STATE` from a thread that lives as long as the process, so that
/// `PR_SET_PDEATHSIG` (which fires when the *thread* that forked exits) only fires when the
/// test process itself dies. Returns the PID of the `unshare` process.
fn spawn_boot(state: &Path) -> Result<i32, String> {
    let log = fs::File::create(state.join("boot.log")).map_err(|e| format!("boot.log: {e}"))?;
    let log2 = log.try_clone().map_err(|e| format!("boot.log: {e}"))?;
    let script = repo_root().join("tests/testhost/testhost.sh");
    let state = state.to_path_buf();
    let (tx, rx) = mpsc::channel::<Result<i32, String>>();
    thread::Builder::new()
        .name("testhost-parent".into())
        .spawn(move || {
            // SAFETY: getpid(2) has no preconditions.
            let parent = unsafe { libc::getpid() };
            let mut cmd = Command::new(&script);
            cmd.arg("boot")
                .arg(&state)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid,
            // setsid) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(
                        libc::PR_SET_PDEATHSIG,
                        libc::SIGKILL as libc::c_ulong,
                        0,
                        0,
                        0,
                    ) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                    // The parent may have died before the prctl: then nobody would kill us.
                    if libc::getppid() != parent {
                        return Err(io::Error::other("the test process is gone"));
                    }
                    // Out of the terminal's process group: Ctrl-C reaches the test process
                    // only, whose death then kills us through PDEATHSIG.
                    libc::setsid();
                    Ok(())
                });
            }
            match cmd.spawn() {
                Ok(child) => {
                    let pid = child.id() as i32;
                    let _ = tx.send(Ok(pid));
                    drop(child);
                    // Wait for it without reaping it (WNOWAIT): until this process exits the
                    // PID stays ours (a zombie at worst), so the teardown's kill() can never
                    // hit a recycled PID.
                    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
                    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                    // SAFETY: `info` is a valid, writable siginfo_t.
                    unsafe {
                        libc::waitid(
                            libc::P_PID,
                            pid as libc::id_t,
                            &mut info,
                            libc::WEXITED | libc::WNOWAIT,
                        )
                    };
                    UNSHARE_EXITED.store(true, Ordering::SeqCst);
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("spawning {}: {e}", script.display())));
                }
            }
            loop {
                thread::park();
            }
        })
        .map_err(|e| format!("spawning the testhost-parent thread: {e}"))?;
    rx.recv()
        .map_err(|_| "the testhost-parent thread died".to_string())?
}

impl Host {
    fn boot() -> Result<Host, String> {
        let t0 = Instant::now();
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("the system tests boot a private systemd: run them as root".into());
        }
        let testhost_dir = target_dir().join("testhost");
        remove_stale(&testhost_dir);
        let state = testhost_dir.join(std::process::id().to_string());
        for private in ["/tmp", "/run", "/var/tmp"] {
            if state.starts_with(private) {
                return Err(format!(
                    "state directory {} would be hidden inside the test host ({private} is \
                     private there); use a target directory outside {private}",
                    state.display()
                ));
            }
        }
        let _ = fs::remove_dir_all(&state);
        fs::create_dir_all(state.join("out")).map_err(|e| format!("{}: {e}", state.display()))?;
        let rootfs = state.join("rootfs-busybox");
        build_rootfs(&rootfs).map_err(|e| format!("building {}: {e}", rootfs.display()))?;

        // From here on, whatever happens, the exit handler cleans up.
        {
            let mut t = TEARDOWN.lock().unwrap_or_else(|p| p.into_inner());
            t.state = Some(state.clone());
        }
        // SAFETY: registering a plain extern "C" function with no arguments.
        if unsafe { libc::atexit(teardown_at_exit) } != 0 {
            return Err("atexit() failed".into());
        }

        let boot_log = || fs::read_to_string(state.join("boot.log")).unwrap_or_default();
        let unshare_pid = spawn_boot(&state)?;
        {
            // The boot script names the cgroup after its own PID, which unshare inherits.
            let mut t = TEARDOWN.lock().unwrap_or_else(|p| p.into_inner());
            t.unshare_pid = Some(unshare_pid);
            t.cgroup = Some(Path::new(CGROUP_ROOT).join(format!("{CGROUP_PREFIX}{unshare_pid}")));
        }

        // systemd is the only child of unshare.
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let systemd_pid = loop {
            // Until the boot script has exec'd unshare, its children are its helpers.
            let is_unshare = fs::read_to_string(format!("/proc/{unshare_pid}/comm"))
                .is_ok_and(|c| c.trim() == "unshare");
            let children = if is_unshare {
                fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children"))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            if let Some(pid) = children
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
            {
                break pid;
            }
            if UNSHARE_EXITED.load(Ordering::SeqCst) || Instant::now() > deadline {
                return Err(format!(
                    "testhost.sh boot exited or started no systemd; boot.log:\n{}",
                    boot_log()
                ));
            }
            thread::sleep(Duration::from_millis(5));
        };
        let start = start_time(systemd_pid).unwrap_or(0);
        TEARDOWN.lock().unwrap_or_else(|p| p.into_inner()).systemd = Some((systemd_pid, start));

        let host = Host {
            unshare_pid,
            systemd_pid,
            state: state.clone(),
            rootfs: rootfs.to_string_lossy().into_owned(),
            boot_time: Duration::ZERO,
            seq: AtomicUsize::new(0),
            reload: Mutex::new(()),
        };
        // Wait for the boot to finish.
        let mut last = String::new();
        loop {
            let out = host.exec_timeout(
                &["systemctl", "is-system-running", "--wait"],
                Duration::from_secs(10),
            );
            let s = out.stdout.trim().to_string();
            if s == "running" || s == "degraded" {
                break;
            }
            last = out.to_string();
            if !process_alive(systemd_pid, Some(start)) || Instant::now() > deadline {
                return Err(format!(
                    "systemd did not finish booting within {BOOT_TIMEOUT:?}; last check:\n{last}\n\
                     boot.log:\n{}",
                    boot_log()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = last;
        let boot_time = t0.elapsed();

        // Install cleat as an administrator would: `make install` (into a staging directory on
        // the host), then copy it into the namespace's private /usr/local.
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_cleat"))
            .parent()
            .ok_or("no directory for CARGO_BIN_EXE_cleat")?
            .to_path_buf();
        let stage = state.join("stage");
        let mut make = Command::new("make");
        make.current_dir(repo_root())
            .arg("--no-print-directory")
            .arg("install")
            .arg(format!("DESTDIR={}", stage.display()))
            .arg("PREFIX=/usr/local")
            .arg(format!("BIN_DIR={}", bin_dir.display()));
        let out = host.run(make, Duration::from_secs(120));
        if !out.success() {
            return Err(format!("make install failed:\n{out}"));
        }
        let out = host.sh(&format!(
            "cp -a '{}/usr/local/.' /usr/local/ && mkdir -p /etc/cleat/containers \
             /run/cleat/containers /usr/lib/cleat/containers && systemctl daemon-reload",
            stage.display()
        ));
        if !out.success() {
            return Err(format!(
                "installing cleat into the test host failed:\n{out}"
            ));
        }
        eprintln!(
            "testhost: systemd pid {systemd_pid} booted in {:?} (ready with cleat in {:?}), \
             state {}",
            boot_time,
            t0.elapsed(),
            state.display()
        );
        Ok(Host { boot_time, ..host })
    }

    // -----------------------------------------------------------------------------------------
    // Running commands

    /// Runs a host-side command, bounded by `timeout` (its whole process group is SIGKILLed
    /// when it is exceeded), with stdout and stderr captured through files (so a stray
    /// background process holding them open can never block us).
    pub fn run(&self, mut cmd: Command, timeout: Duration) -> Output {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let out_path = self.state.join("out").join(format!("{n}.out"));
        let err_path = self.state.join("out").join(format!("{n}.err"));
        let desc = describe(&cmd);
        let files = fs::File::create(&out_path).and_then(|o| Ok((o, fs::File::create(&err_path)?)));
        let (o, e) = match files {
            Ok(f) => f,
            Err(e) => return Output::error(desc, format!("creating output files: {e}")),
        };
        cmd.stdin(Stdio::null())
            .stdout(o)
            .stderr(e)
            .process_group(0);
        let start = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Output::error(desc, format!("spawn: {e}")),
        };
        let mut timed_out = false;
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) => {}
                Err(_) => break None,
            }
            if start.elapsed() >= timeout {
                timed_out = true;
                // SAFETY: kill(2) on our child's process group.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                break child.wait().ok();
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        let elapsed = start.elapsed();
        // Whatever is left in the group (a background process of a shell command) goes too.
        // SAFETY: as above.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let read = |p: &Path| {
            let s = fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned());
            let _ = fs::remove_file(p);
            s.unwrap_or_default()
        };
        use std::os::unix::process::ExitStatusExt;
        Output {
            cmd: desc,
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            stdout: read(&out_path),
            stderr: read(&err_path),
            elapsed,
            timed_out,
        }
    }

    /// A command that runs inside the test host (all its namespaces), with a clean
    /// environment.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.systemd_pid.to_string())
            .arg("-a")
            .arg("--")
            .args(argv)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .env("SYSTEMD_PAGER", "")
            .env("SYSTEMD_COLORS", "0")
            .env("TERM", "dumb");
        cmd
    }

    /// Runs `argv` inside the test host.
    pub fn exec(&self, argv: &[&str]) -> Output {
        self.exec_timeout(argv, CMD_TIMEOUT)
    }

    pub fn exec_timeout(&self, argv: &[&str], timeout: Duration) -> Output {
        self.run(self.command(argv), timeout)
    }

    /// Runs `sh -c CMD` inside the test host.
    pub fn sh(&self, cmd: &str) -> Output {
        self.sh_timeout(cmd, CMD_TIMEOUT)
    }

    pub fn sh_timeout(&self, cmd: &str, timeout: Duration) -> Output {
        self.exec_timeout(&["sh", "-c", cmd], timeout)
    }

    /// Runs the installed `cleat ARGS` inside the test host.
    pub fn cleat(&self, args: &[&str]) -> Output {
        self.cleat_timeout(args, CMD_TIMEOUT)
    }

    pub fn cleat_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        let mut argv = vec![CLEAT];
        argv.extend_from_slice(args);
        self.exec_timeout(&argv, timeout)
    }

    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut argv = vec!["systemctl", "--no-pager"];
        argv.extend_from_slice(args);
        self.exec(&argv)
    }

    /// `systemctl daemon-reload`, which must succeed. Reloads are serialised among tests.
    pub fn daemon_reload(&self) {
        let _guard = self.hold_reloads();
        self.systemctl(&["daemon-reload"]).ok();
    }

    /// Keeps other tests from reloading systemd (and so from running the generator) while
    /// the guard lives: for a test that needs the generator's view to stay stale, and for
    /// `systemctl enable|disable`, which reload by themselves.
    pub fn hold_reloads(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reload.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One property of a unit (`systemctl show -p NAME --value UNIT`).
    pub fn prop(&self, unit: &str, name: &str) -> String {
        let out = self.systemctl(&["show", "-p", name, "--value", unit]);
        out.stdout.trim().to_string()
    }

    /// The unit's journal, message text only.
    pub fn journal(&self, unit: &str) -> String {
        self.exec(&["journalctl", "--no-pager", "-o", "cat", "-u", unit])
            .stdout
    }

    /// Waits until the unit's journal contains `needle`; returns the journal.
    pub fn wait_journal(
        &self,
        unit: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let mut last = String::new();
        if wait_until(timeout, || {
            last = self.journal(unit);
            last.contains(needle)
        }) {
            Ok(last)
        } else {
            Err(last)
        }
    }

    /// The path, on the host, of `inside` (an absolute path inside the test host).
    pub fn path(&self, inside: &str) -> PathBuf {
        assert!(inside.starts_with('/'), "not absolute: {inside}");
        PathBuf::from(format!("/proc/{}/root{inside}", self.systemd_pid))
    }

    /// Writes a file inside the test host atomically (temporary file + rename in the same
    /// directory, so that a concurrent daemon-reload never reads half of it), creating parent
    /// directories.
    pub fn write_file(&self, inside: &str, contents: &str) {
        let path = self.path(inside);
        let dir = path.parent().expect("a parent directory");
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", dir.display()));
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let tmp = dir.join(format!(".#cleat-test.{n}.tmp"));
        fs::write(&tmp, contents).unwrap_or_else(|e| panic!("writing {inside}: {e}"));
        fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("renaming to {inside}: {e}"));
    }

    pub fn exists(&self, inside: &str) -> bool {
        fs::symlink_metadata(self.path(inside)).is_ok()
    }

    pub fn remove(&self, inside: &str) {
        let p = self.path(inside);
        let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
    }

    /// Diagnostics for units: status and the last journal lines.
    pub fn diagnose(&self, units: &[String]) -> String {
        let mut s = String::new();
        for u in units {
            let state = self.prop(u, "ActiveState");
            let journal = self.journal(u);
            let never_ran = journal.trim().is_empty() || journal.contains("-- No entries --");
            if state == "inactive" && never_ran {
                s.push_str(&format!("=== {u}: inactive, no journal\n"));
                continue;
            }
            let st = self.systemctl(&["status", "-l", "--lines=0", u]);
            s.push_str(&format!(
                "=== systemctl status {u}\n{}{}",
                st.stdout, st.stderr
            ));
            let j = self.exec(&[
                "journalctl",
                "--no-pager",
                "-o",
                "short-precise",
                "-n",
                "60",
                "-u",
                u,
            ]);
            s.push_str(&format!("=== journalctl -u {u}\n{}{}", j.stdout, j.stderr));
        }
        s
    }
}

/// Polls `cond` every 50 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$;&|<>()\\*".contains(c)) {
            s.push_str(&format!(" '{}'", a.replace('\'', r"'\''")));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Results

/// What a command did.
#[derive(Debug, Clone)]
pub struct Output {
    pub cmd: String,
    /// Exit status, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// It was still running at its deadline and was killed.
    pub timed_out: bool,
}

impl Output {
    fn error(cmd: String, msg: String) -> Output {
        Output {
            cmd,
            code: None,
            signal: None,
            stdout: String::new(),
            stderr: msg,
            elapsed: Duration::ZERO,
            timed_out: false,
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout then stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Lowercased stdout + stderr, for case-insensitive phrase checks.
    pub fn all_lower(&self) -> String {
        self.all().to_lowercase()
    }

    /// Panics (showing the command and its output) unless it exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// Panics unless it exited with exactly `code`.
    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit status {code}:\n{self}"
        );
        self
    }

    /// Panics unless it exited (not killed, not timed out) with a non-zero status.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a non-zero exit status:\n{self}"
        );
        self
    }

    /// Panics unless stdout + stderr contain `needle`, case-insensitively.
    #[track_caller]
    pub fn says(&self, needle: &str) -> &Self {
        assert!(
            self.all_lower().contains(&needle.to_lowercase()),
            "expected the output to contain {needle:?}:\n{self}"
        );
        self
    }

    /// Panics if the output shows Rust internals instead of a message for people: `Debug`
    /// renderings such as `Name("x")` or `Some(..)`, or a panic.
    #[track_caller]
    pub fn reads_clean(&self) -> &Self {
        let text = self.all();
        for bad in [
            "Name(\"",
            "Some(",
            "Ok(",
            "Err(",
            "PathBuf",
            "panicked at",
            "RUST_BACKTRACE",
        ] {
            assert!(
                !text.contains(bad),
                "the message shows {bad:?}, not meant for people:\n{self}"
            );
        }
        self
    }

    /// The last non-empty line of stdout, trimmed.
    pub fn last_line(&self) -> &str {
        self.stdout
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("")
    }

    /// stdout parsed as JSON (panics with the output if it is not).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.cmd)?;
        match (self.code, self.signal, self.timed_out) {
            (_, _, true) => writeln!(f, "[killed: still running after {:?}]", self.elapsed)?,
            (Some(c), _, _) => writeln!(f, "[exit status {c} after {:?}]", self.elapsed)?,
            (None, Some(s), _) => writeln!(f, "[killed by signal {s} after {:?}]", self.elapsed)?,
            (None, None, _) => writeln!(f, "[did not run]")?,
        }
        writeln!(f, "--- stdout\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr\n{}", self.stderr.trim_end())
    }
}

// ---------------------------------------------------------------------------------------------
// Per-test context

static NAME_SEQ: AtomicUsize = AtomicUsize::new(0);

/// One test's containers: unique names, cleanup at the end, and diagnostics (status and
/// journal of every unit it touched) when the test fails.
pub struct Case {
    /// The test's main container name, `t-<label>-<n>`.
    pub name: String,
    names: Mutex<Vec<String>>,
}

impl Case {
    pub fn new(label: &str) -> Case {
        let _ = host();
        let name = unique_name(label);
        Case {
            names: Mutex::new(vec![name.clone()]),
            name,
        }
    }

    /// Another unique name, also cleaned up (and diagnosed) at the end.
    pub fn another(&self, label: &str) -> String {
        let n = unique_name(label);
        self.adopt(&n);
        n
    }

    /// Registers a name the test did not choose (e.g. one generated by `cleat run`).
    pub fn adopt(&self, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_string());
    }

    pub fn rootfs(&self) -> &'static str {
        &host().rootfs
    }

    /// `cleat-NAME.service`, the transient unit of an ad-hoc container.
    pub fn adhoc_unit(&self) -> String {
        adhoc_unit(&self.name)
    }

    /// `container@NAME.service`, the unit of a declared container.
    pub fn declared_unit(&self) -> String {
        declared_unit(&self.name)
    }

    /// `cleat run FLAGS --name NAME --rootfs ROOTFS PAYLOAD...` for this case's container.
    pub fn run(&self, flags: &[&str], payload: &[&str]) -> Output {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--name", &self.name, "--rootfs", self.rootfs()]);
        args.extend_from_slice(payload);
        host().cleat(&args)
    }

    /// Writes `/etc/cleat/containers/NAME.toml` (the `etc` directory).
    pub fn declare(&self, toml: &str) -> String {
        let path = format!("/etc/cleat/containers/{}.toml", self.name);
        host().write_file(&path, toml);
        path
    }
}

pub fn unique_name(label: &str) -> String {
    format!("t-{label}-{}", NAME_SEQ.fetch_add(1, Ordering::SeqCst))
}

pub fn adhoc_unit(name: &str) -> String {
    format!("cleat-{name}.service")
}

pub fn declared_unit(name: &str) -> String {
    format!("container@{name}.service")
}

impl Drop for Case {
    fn drop(&mut self) {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(Ok(h)) = HOST.get() else { return };
        let units: Vec<String> = names
            .iter()
            .flat_map(|n| [adhoc_unit(n), declared_unit(n)])
            .collect();
        if thread::panicking() {
            let ps = h.cleat(&["ps", "-a"]);
            eprintln!(
                "\n##### diagnostics for {}\n{}=== cleat ps -a\n{}{}",
                names.join(", "),
                h.diagnose(&units),
                ps.stdout,
                ps.stderr
            );
        }
        let mut script = String::new();
        let list = units.join(" ");
        script.push_str(&format!(
            "systemctl disable -q --no-reload {list} 2>/dev/null; systemctl kill -s KILL {list} 2>/dev/null; \
             systemctl stop {list} 2>/dev/null; "
        ));
        for n in &names {
            script.push_str(&format!("{CLEAT} rm -f {n} >/dev/null 2>&1; "));
            for dir in ["/etc", "/run", "/usr/lib"] {
                script.push_str(&format!(
                    "rm -rf {dir}/cleat/containers/{n}.toml {dir}/cleat/containers/{n}.toml.d; "
                ));
            }
        }
        script.push_str(&format!("systemctl reset-failed {list} 2>/dev/null; true"));
        let out = h.sh_timeout(&script, Duration::from_secs(20));
        if !out.success() {
            eprintln!("cleanup of {} failed:\n{out}", names.join(", "));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The busybox root file system

fn build_rootfs(root: &Path) -> io::Result<()> {
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app", "run", "usr/bin", "var/tmp",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::set_permissions(root.join("var/tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::set_permissions(root.join("root"), fs::Permissions::from_mode(0o700))?;
    std::os::unix::fs::chown(root.join("home/app"), Some(1000), Some(1000))?;

    fs::copy("/bin/busybox", root.join("bin/busybox"))?;
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;
    let list = Command::new("/bin/busybox").arg("--list").output()?;
    if !list.status.success() {
        return Err(io::Error::other("busybox --list failed"));
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", root.join("bin").join(applet))?;
    }
    symlink("../../bin/busybox", root.join("usr/bin/env"))?;
    // A static sd_notify sender, for payloads that report their own readiness.
    let source = repo_root().join("tests/testhost/sd-notify.c");
    let cc = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(root.join("bin/sd-notify"))
        .arg(&source)
        .output()?;
    if !cc.status.success() {
        return Err(io::Error::other(format!(
            "compiling {}: {}",
            source.display(),
            String::from_utf8_lossy(&cc.stderr)
        )));
    }

    // The probe, for the tests from the inside. A failed build does not fail the boot: the
    // tests that need the probe report it (`probe_binary`).
    match probe_build() {
        Ok(bin) => {
            fs::copy(bin, root.join("bin/probe"))?;
            fs::set_permissions(root.join("bin/probe"), fs::Permissions::from_mode(0o755))?;
        }
        Err(e) => eprintln!("testhost: no probe in the busybox root file system: {e}"),
    }
    // Hostile content, for the escape tests: symlinks that climb out of the root.
    symlink("/../../../etc/hostname", root.join("escape"))?;
    symlink("../../../../../../tmp", root.join("escape-dir"))?;

    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         app:x:1000:1000:app:/home/app:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(
        root.join("etc/group"),
        "root:x:0:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n",
    )?;
    fs::write(root.join("etc/hostname"), "busybox\n")?;

    let scripts: &[(&str, &str)] = &[
        (
            "graceful",
            "#!/bin/sh\n\
             # Exits 0 on SIGTERM.\n\
             trap 'echo graceful: got TERM; exit 0' TERM\n\
             echo ready\n\
             while :; do sleep 0.1; done\n",
        ),
        (
            "stubborn",
            "#!/bin/sh\n\
             # Ignores SIGTERM and SIGINT: only SIGKILL ends it.\n\
             trap '' TERM INT\n\
             echo ready\n\
             while :; do sleep 0.1; done\n",
        ),
        (
            "show-env",
            "#!/bin/sh\n\
             # Prints NAME=value (or NAME=<unset>) for each argument, then waits for SIGTERM.\n\
             for v in \"$@\"; do\n\
             \x20 line=$(env | grep \"^$v=\") && echo \"$line\" || echo \"$v=<unset>\"\n\
             done\n\
             trap 'exit 0' TERM\n\
             echo ready\n\
             while :; do sleep 0.1; done\n",
        ),
    ];
    for (name, body) in scripts {
        let p = root.join("bin").join(name);
        fs::write(&p, body)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The probe

static PROBE_BUILD: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Bound for building the probe (a cold build compiles libc: a few seconds).
const PROBE_BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// The probe binary on the host, which is also its path inside the test host; built once
/// per run. Panics with the build's output if it could not be built.
pub fn probe_binary() -> &'static Path {
    match probe_build() {
        Ok(p) => p,
        Err(e) => panic!("the probe could not be built:\n{e}"),
    }
}

/// `HOST_PATH:/probe:ro`: the `-v` value that puts the probe into any container.
pub fn probe_volume() -> String {
    format!("{}:{PROBE_MOUNT}:ro", probe_binary().display())
}

fn probe_build() -> Result<&'static Path, &'static String> {
    PROBE_BUILD.get_or_init(build_probe).as_deref()
}

/// Builds `tests/probe` (its own crate, not part of this one's build) as a static binary
/// into `target/probe`, bounded in time, and checks that it needs no dynamic loader.
fn build_probe() -> Result<PathBuf, String> {
    let t0 = Instant::now();
    // The host's own target, named explicitly so that RUSTFLAGS (static linking) apply to
    // the probe only, not to build scripts.
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    let target = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or("rustc -vV names no host target")?;
    let target = target.as_str();
    let target_dir = target_dir().join("probe");
    fs::create_dir_all(&target_dir).map_err(|e| format!("{}: {e}", target_dir.display()))?;
    let log_path = target_dir.join("build.log");
    let log = fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--locked", "--quiet"])
        .args(["--target", target])
        .arg("--manifest-path")
        .arg(repo_root().join("tests/probe/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C relocation-model=static",
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| format!("spawning cargo: {e}"))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if t0.elapsed() < PROBE_BUILD_TIMEOUT => {
                thread::sleep(Duration::from_millis(20))
            }
            Ok(None) | Err(_) => {
                // SAFETY: kill(2) on our child's process group.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(format!(
                    "cargo build of tests/probe did not finish within {PROBE_BUILD_TIMEOUT:?}"
                ));
            }
        }
    };
    let output = fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "cargo build of tests/probe failed ({status}):\n{output}"
        ));
    }
    let bin = target_dir.join(target).join("release/probe");
    if !elf_is_static(&bin)? {
        return Err(format!(
            "{} asks for a dynamic loader (PT_INTERP): not static",
            bin.display()
        ));
    }
    eprintln!("testhost: probe built in {:?}", t0.elapsed());
    Ok(bin)
}

/// Whether an ELF64 little-endian executable has no program interpreter (a static binary;
/// `ldd` says "not a dynamic executable").
fn elf_is_static(path: &Path) -> Result<bool, String> {
    let b = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = || {
        format!(
            "{} is not an ELF64 little-endian executable",
            path.display()
        )
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| {
        b.get(o..o + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
    };
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let phoff = u64_at(0x20).ok_or_else(bad)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(bad)?;
    let phnum = u16_at(0x38).ok_or_else(bad)?;
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let p_type = b
            .get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(bad)?;
        if p_type == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Helpers for product tests

/// `cleat ps [-a] --format json`, which must succeed and print a JSON array.
#[track_caller]
pub fn ps_json(all: bool) -> Vec<serde_json::Value> {
    let mut args = vec!["ps"];
    if all {
        args.push("-a");
    }
    args.extend(["--format", "json"]);
    let out = host().cleat(&args);
    out.ok();
    match out.json() {
        serde_json::Value::Array(v) => v,
        other => panic!("cleat ps --format json did not print an array: {other}\n{out}"),
    }
}

/// The entry for `name` in `cleat ps [-a] --format json`.
#[track_caller]
pub fn ps_entry(name: &str, all: bool) -> Option<serde_json::Value> {
    ps_json(all).into_iter().find(|e| e["name"] == name)
}

/// The unit's MainPID (0 when it has none).
pub fn main_pid(unit: &str) -> i32 {
    host().prop(unit, "MainPID").parse().unwrap_or(0)
}

/// Waits until the unit's ActiveState is one of `states`; returns the last state seen.
pub fn wait_state(unit: &str, states: &[&str], timeout: Duration) -> Result<String, String> {
    let mut last = String::new();
    if wait_until(timeout, || {
        last = host().prop(unit, "ActiveState");
        states.contains(&last.as_str())
    }) {
        Ok(last)
    } else {
        Err(last)
    }
}

/// Panics unless the unit becomes active within 10 s.
#[track_caller]
pub fn expect_active(unit: &str) {
    if let Err(last) = wait_state(unit, &["active"], Duration::from_secs(10)) {
        panic!("{unit} did not become active (ActiveState={last})");
    }
}

/// Panics unless the unit stops (inactive or failed) within `timeout`; returns which.
#[track_caller]
pub fn expect_stopped(unit: &str, timeout: Duration) -> String {
    match wait_state(unit, &["inactive", "failed"], timeout) {
        Ok(s) => s,
        Err(last) => panic!("{unit} did not stop within {timeout:?} (ActiveState={last})"),
    }
}

/// Panics unless the unit's journal shows `needle` within 10 s; returns the journal.
#[track_caller]
pub fn expect_journal(unit: &str, needle: &str) -> String {
    match host().wait_journal(unit, needle, Duration::from_secs(10)) {
        Ok(j) => j,
        Err(j) => panic!("journalctl -u {unit} does not show {needle:?}:\n{j}"),
    }
}
