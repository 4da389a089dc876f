//! `cleat exec`: a command in a running container (ad-hoc or declared), in its namespaces,
//! root, cgroup and restrictions, with its environment and user unless told otherwise; plain
//! stdio, `-i`, and a real pseudo-terminal with `-t`; and the refusals.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::host::{
    CLEAT, Case, GRACEFUL, Output, PROBE, expect_active, expect_journal, expect_stopped, host,
    main_pid, probe_binary, wait_until,
};
use crate::inside::{assert_sealed_copy, installed_cleat, watch_reports};
use crate::pty::Term;

const SECOND: Duration = Duration::from_secs(1);

/// `cleat run -d FLAGS --name NAME --rootfs BUSYBOX /bin/graceful`, running.
#[track_caller]
fn running(c: &Case, flags: &[&str]) -> i32 {
    let mut all = vec!["-d"];
    all.extend_from_slice(flags);
    c.run(&all, &[GRACEFUL]).ok();
    let unit = c.adhoc_unit();
    expect_active(&unit);
    let pid = main_pid(&unit);
    assert!(pid > 0, "{unit} has no main process");
    pid
}

/// `cleat exec ARGS...`.
fn exec(args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    host().cleat(&all)
}

/// The fields of a /proc/PID/status text.
fn status_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// /proc/PID/FILE of a process of the test host, as the test host sees it.
#[track_caller]
fn proc_file(pid: i32, file: &str) -> String {
    let out = host().exec(&["cat", &format!("/proc/{pid}/{file}")]);
    out.ok();
    out.stdout
}

/// The PIDs (as the test host sees them) in the unit's own control group.
fn cgroup_procs(unit: &str) -> Vec<i32> {
    let cg = host().prop(unit, "ControlGroup");
    assert!(!cg.is_empty(), "{unit} has no control group");
    let out = host().exec(&["cat", &format!("/sys/fs/cgroup{cg}/cgroup.procs")]);
    out.ok();
    out.stdout
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The processes in the unit's control group other than its main process and the payload's
/// passing `sleep 0.1` (GRACEFUL's loop, zombies included): PID and command line (words
/// joined by spaces).
fn other_procs(unit: &str, main: i32) -> Vec<(i32, String)> {
    cgroup_procs(unit)
        .into_iter()
        .filter(|p| *p != main)
        .filter_map(|p| {
            let out = host().exec(&["cat", &format!("/proc/{p}/cmdline")]);
            let cmdline = out.stdout.trim_end_matches('\0').replace('\0', " ");
            // An empty command line: a zombie (the loop's last sleep, not yet reaped).
            let passing = cmdline.is_empty() || cmdline == "sleep 0.1";
            (out.success() && !passing).then_some((p, cmdline))
        })
        .collect()
}

/// Waits until the unit's other processes (see `other_procs`) are exactly `cmdlines`.
#[track_caller]
fn expect_others(unit: &str, main: i32, cmdlines: &[&str]) -> Vec<(i32, String)> {
    let mut procs = Vec::new();
    let ok = wait_until(10 * SECOND, || {
        procs = other_procs(unit, main);
        let mut seen: Vec<&str> = procs.iter().map(|(_, c)| c.as_str()).collect();
        seen.sort();
        let mut want = cmdlines.to_vec();
        want.sort();
        seen == want
    });
    assert!(
        ok,
        "{unit}'s control group holds {procs:?}, expected {cmdlines:?}"
    );
    procs
}

/// `cleat exec ARGS...` started in the background (not waited for), output to files in the
/// test's state directory: for processes the test watches while they run.
struct Background {
    child: Child,
    out: std::path::PathBuf,
}

impl Background {
    fn start(label: &str, args: &[&str]) -> Background {
        let h = host();
        let out = h.state.join(format!("{label}.out"));
        let file = std::fs::File::create(&out).expect("creating the output file");
        let mut argv = vec![CLEAT, "exec"];
        argv.extend_from_slice(args);
        let mut cmd = h.command(&argv);
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("spawning cleat exec");
        Background { child, out }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The host PID of the cleat process (nsenter's child).
    fn cleat_pid(&self) -> Option<i32> {
        let id = self.child.id();
        std::fs::read_to_string(format!("/proc/{id}/task/{id}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Its exit status once it exited within `timeout` (`None` if a signal ended it).
    fn wait(&mut self, timeout: Duration) -> Result<Option<i32>, String> {
        let mut status = None;
        if wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        }) {
            Ok(status.and_then(|s| s.code()))
        } else {
            Err(self.output())
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's process group; the child is not reaped yet.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.out);
    }
}

// ---------------------------------------------------------------------------------------------
// Where it runs

#[test]
fn exec_runs_in_the_containers_namespaces_root_and_pid_namespace() {
    let c = Case::new("exec-ns");
    let pid = running(&c, &["--hostname", "exec-host"]);

    let out = exec(&[&c.name, "sh", "-c", "echo out; echo err >&2; exit 5"]);
    out.code_is(5);
    assert_eq!(out.stdout, "out\n", "{out}");
    assert_eq!(out.stderr, "err\n", "{out}");

    exec(&[&c.name, "hostname"]).ok().says("exec-host");
    // Its PID 1 is the container's, and its own PID is another in that namespace.
    let out = exec(&[
        &c.name,
        "sh",
        "-c",
        "tr '\\0' ' ' </proc/1/cmdline; echo; echo $$",
    ]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].contains(GRACEFUL),
        "PID 1 is not the payload:\n{out}"
    );
    let own: i32 = lines[1].trim().parse().expect("a PID");
    assert!(own > 1, "{out}");
    // The container's files (the busybox root's passwd), not the host's.
    exec(&[&c.name, "cat", "/etc/passwd"])
        .ok()
        .says("app:x:1000:1000");
    exec(&[&c.name, "test", "-e", CLEAT]).code_is(1);
    // Every namespace is the main process's.
    for ns in ["mnt", "pid", "uts", "ipc", "net", "cgroup"] {
        let inside = exec(&[&c.name, "readlink", &format!("/proc/self/ns/{ns}")]);
        inside.ok();
        let outside = host().exec(&["readlink", &format!("/proc/{pid}/ns/{ns}")]);
        outside.ok();
        assert_eq!(
            inside.stdout.trim(),
            outside.stdout.trim(),
            "namespace {ns}"
        );
    }
    // A process killed by a signal: 128 + its number, as a shell says.
    exec(&[&c.name, "sh", "-c", "kill -9 $$"]).code_is(137);
}

#[test]
fn exec_into_a_container_with_init_on_the_hosts_network() {
    let c = Case::new("exec-init");
    running(&c, &["--init", "--network", "host"]);
    // PID 1 is cleat's init (its main process), the payload its child; both are found.
    let out = exec(&[
        &c.name,
        "sh",
        "-c",
        "cat /proc/1/comm; tr '\\0' ' ' </proc/2/cmdline",
    ]);
    out.ok();
    assert!(out.stdout.contains(GRACEFUL), "{out}");
    // The network namespace is the test host's own, as the container's.
    let inside = exec(&[&c.name, "readlink", "/proc/self/ns/net"]);
    inside.ok();
    assert_eq!(inside.stdout.trim(), crate::inside::host_ns("net"));
}

#[test]
fn exec_into_a_declared_container_uses_the_settings_of_its_start() {
    let h = host();
    let c = Case::new("exec-decl");
    let unit = c.declared_unit();
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\nenv = {{ MODE = \"one\" }}\n",
        c.rootfs()
    ));
    h.systemctl(&["start", &unit]).ok();
    expect_active(&unit);
    let out = exec(&[
        &c.name,
        "sh",
        "-c",
        "echo mode=$MODE; tr '\\0' ' ' </proc/1/cmdline",
    ]);
    out.ok();
    assert!(out.stdout.contains("mode=one"), "{out}");
    assert!(out.stdout.contains(GRACEFUL), "{out}");

    // An edited definition is for the next start; exec keeps to the running one's.
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"{GRACEFUL}\"]\nenv = {{ MODE = \"two\" }}\n",
        c.rootfs()
    ));
    exec(&[&c.name, "sh", "-c", "echo mode=$MODE"])
        .ok()
        .says("mode=one");
    h.systemctl(&["restart", &unit]).ok();
    expect_active(&unit);
    exec(&[&c.name, "sh", "-c", "echo mode=$MODE"])
        .ok()
        .says("mode=two");
    // In the unit's control group (the declared unit's, not a transient one).
    let mut bg = Background::start("exec-decl", &[&c.name, "sleep", "1000"]);
    let main = main_pid(&unit);
    assert!(cgroup_procs(&unit).contains(&main));
    expect_others(&unit, main, &["sleep 1000"]);
    h.systemctl(&["stop", &unit]).ok();
    assert_eq!(bg.wait(10 * SECOND), Ok(Some(137)));
}

#[test]
fn exec_joins_the_units_cgroup_and_stops_with_the_container() {
    let c = Case::new("exec-cg");
    let unit = c.adhoc_unit();
    let main = running(&c, &[]);
    let mut bg = Background::start("exec-cg", &[&c.name, "sleep", "1000"]);
    let other = expect_others(&unit, main, &["sleep 1000"])[0].0;
    // Its control group, from its own /proc (the test host's view): the unit's.
    let cg = proc_file(other, "cgroup");
    assert!(
        cg.trim_end().ends_with(&format!("/{unit}")),
        "PID {other} in {cg}"
    );
    // systemd knows it as one of the unit's: its status lists the process.
    let st = host().systemctl(&["status", &unit]);
    assert!(st.stdout.contains("sleep 1000"), "{st}");

    // The container stops: the process goes with it, and cleat reports the SIGKILL.
    host().cleat(&["stop", &c.name]).ok();
    expect_stopped(&unit, 10 * SECOND);
    assert_eq!(bg.wait(10 * SECOND), Ok(Some(137)));
    assert!(
        host().exec(&["test", "-e", &format!("/proc/{other}")]).code == Some(1),
        "PID {other} still exists"
    );
}

#[test]
fn exec_passes_signals_on() {
    let c = Case::new("exec-sig");
    running(&c, &[]);
    let mut bg = Background::start(
        "exec-sig",
        &[
            &c.name,
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    assert!(
        wait_until(10 * SECOND, || bg.output().contains("ready")),
        "{}",
        bg.output()
    );
    let cleat = bg.cleat_pid().expect("the cleat process");
    // SAFETY: kill(2) on a process of this test (nsenter's child, which nsenter has not
    // reaped: it is still running, as the output says).
    assert_eq!(unsafe { libc::kill(cleat, libc::SIGTERM) }, 0);
    assert_eq!(bg.wait(10 * SECOND), Ok(Some(7)), "{}", bg.output());
    assert!(bg.output().contains("got-term"), "{}", bg.output());
}

// ---------------------------------------------------------------------------------------------
// Restrictions

const RESTRICTIONS: &[&str] = &[
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
];

/// Asserts that `cleat exec NAME cat /proc/self/status` (and limits) show what the container's
/// main process has.
#[track_caller]
fn same_restrictions_as_main(name: &str, pid: i32) -> BTreeMap<String, String> {
    let main = status_fields(&proc_file(pid, "status"));
    let out = exec(&[name, "cat", "/proc/self/status"]);
    out.ok();
    let mine = status_fields(&out.stdout);
    for field in RESTRICTIONS {
        assert_eq!(
            mine.get(*field),
            main.get(*field),
            "{field}: exec'd process vs main process"
        );
    }
    let out = exec(&[name, "cat", "/proc/self/limits"]);
    out.ok();
    assert_eq!(out.stdout, proc_file(pid, "limits"), "resource limits");
    mine
}

#[test]
fn exec_has_the_containers_capabilities_seccomp_and_limits() {
    let c = Case::new("exec-caps");
    let pid = running(&c, &[]);
    let mine = same_restrictions_as_main(&c.name, pid);
    // Docker's default set: 14 capabilities (0xa80425fb), a filter, no no_new_privs.
    assert_eq!(mine["CapEff"], "00000000a80425fb", "{mine:?}");
    assert_eq!(mine["CapInh"], "0000000000000000", "{mine:?}");
    assert_eq!(mine["Seccomp"], "2", "{mine:?}");
    assert_eq!(mine["NoNewPrivs"], "0", "{mine:?}");

    let n = c.another("exec-caps2");
    let mut flags = vec!["-d", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"];
    flags.extend([
        "--security-opt",
        "no-new-privileges",
        "--ulimit",
        "nofile=123:456",
    ]);
    flags.extend(["--name", &n, "--rootfs", c.rootfs(), GRACEFUL]);
    let mut argv = vec!["run"];
    argv.extend(flags);
    host().cleat(&argv).ok();
    let unit = crate::host::adhoc_unit(&n);
    expect_active(&unit);
    let mine = same_restrictions_as_main(&n, main_pid(&unit));
    assert_eq!(
        mine["CapEff"], "0000000000000400",
        "NET_BIND_SERVICE only: {mine:?}"
    );
    assert_eq!(mine["CapBnd"], "0000000000000400", "{mine:?}");
    assert_eq!(mine["NoNewPrivs"], "1", "{mine:?}");
    exec(&[&n, "sh", "-c", "ulimit -n; ulimit -Hn"])
        .ok()
        .says("123\n456");

    let n = c.another("exec-caps3");
    let argv = [
        "run",
        "-d",
        "--security-opt",
        "seccomp=unconfined",
        "--name",
        &n,
        "--rootfs",
        c.rootfs(),
        GRACEFUL,
    ];
    host().cleat(&argv).ok();
    let unit = crate::host::adhoc_unit(&n);
    expect_active(&unit);
    let mine = same_restrictions_as_main(&n, main_pid(&unit));
    assert_eq!(mine["Seccomp"], "0", "{mine:?}");
}

// ---------------------------------------------------------------------------------------------
// User, directory, environment, input

#[test]
fn exec_user_workdir_and_environment() {
    let h = host();
    let c = Case::new("exec-env");
    running(&c, &["-w", "/tmp", "-e", "FROM_RUN=run", "-e", "KEEP=kept"]);

    // The container's by default.
    let out = exec(&[
        &c.name,
        "sh",
        "-c",
        "id -u; pwd; echo $FROM_RUN $KEEP $HOME",
    ]);
    out.ok();
    assert_eq!(out.stdout, "0\n/tmp\nrun kept /root\n", "{out}");

    // A user of the image, with its groups and home, and no capabilities left.
    let out = exec(&[
        "-u",
        "app",
        &c.name,
        "sh",
        "-c",
        "id; echo $HOME; grep CapEff /proc/self/status",
    ]);
    out.ok();
    assert!(out.stdout.contains("uid=1000(app) gid=1000(app)"), "{out}");
    assert!(out.stdout.contains("50(staff)"), "{out}");
    assert!(out.stdout.contains("/home/app"), "{out}");
    assert!(out.stdout.contains("0000000000000000"), "{out}");
    // A number need not exist in passwd; user:group.
    exec(&["-u", "4242", &c.name, "id", "-u"]).ok().says("4242");
    exec(&["-u", "app:staff", &c.name, "id", "-g"])
        .ok()
        .says("50");

    exec(&["-w", "/bin", &c.name, "pwd"]).ok().says("/bin");

    let file = format!("/tmp/{}.env", c.name);
    h.write_file(
        &file,
        "# a comment\nFROM_FILE=file\nFROM_RUN=file\nBOTH=file\n",
    );
    let out = exec(&[
        "--env-file",
        &file,
        "-e",
        "BOTH=flag",
        "-e",
        "NEW=1",
        &c.name,
        "sh",
        "-c",
        "echo $FROM_FILE $FROM_RUN $BOTH $NEW $KEEP; echo term=${TERM:-unset}",
    ]);
    h.remove(&file);
    out.ok();
    assert_eq!(out.stdout, "file file flag 1 kept\nterm=unset\n", "{out}");
}

#[test]
fn exec_input_only_with_dash_i() {
    let c = Case::new("exec-stdin");
    running(&c, &[]);
    let cmd = format!("echo hi | {CLEAT} exec -i {} cat", c.name);
    let out = host().sh(&cmd);
    out.ok();
    assert_eq!(out.stdout, "hi\n", "{out}");
    // Without -i the process reads nothing (/dev/null), and ends.
    let cmd = format!("echo hi | {CLEAT} exec {} cat; echo status=$?", c.name);
    let out = host().sh(&cmd);
    out.ok();
    assert_eq!(out.stdout, "status=0\n", "{out}");
}

// ---------------------------------------------------------------------------------------------
// A terminal

/// `cleat exec -it NAME sh` on a real pseudo-terminal of 24×80.
fn terminal(name: &str, extra: &[&str]) -> Term {
    let mut argv = vec![CLEAT, "exec", "-it"];
    argv.extend_from_slice(extra);
    argv.extend([name, "sh"]);
    Term::spawn_command(host().command(&argv), 24, 80)
}

#[test]
fn exec_with_a_terminal() {
    let c = Case::new("exec-tty");
    running(&c, &[]);
    let mut t = terminal(&c.name, &[]);
    let wait = 10 * SECOND;
    t.send_bytes(b"tty; stty size; echo TERM=$TERM; echo done-1\r");
    let seen = t.expect("\r\ndone-1", wait);
    // A terminal of the container's own devpts, of the outer terminal's size.
    assert!(seen.contains("/dev/pts/0"), "{seen}");
    assert!(seen.contains("24 80"), "{seen}");
    assert!(seen.contains("TERM=xterm"), "{seen}");

    t.resize(40, 132);
    // The size follows (SIGWINCH to cleat, passed on to the container's terminal).
    let mut last = String::new();
    let followed = wait_until(wait, || {
        t.send_bytes(b"stty size; echo done-2\r");
        last = t.expect("\r\ndone-2", wait);
        last.contains("40 132")
    });
    assert!(followed, "stty size after the resize:\n{last}");

    // Keys reach it as keys: Ctrl-C interrupts the foreground command, not cleat.
    t.send_bytes(b"sleep 30\r");
    std::thread::sleep(Duration::from_millis(300));
    t.send_bytes(b"\x03");
    t.send_bytes(b"echo after-interrupt\r");
    t.expect("\r\nafter-interrupt", wait);

    t.send_bytes(b"exit 3\r");
    assert_eq!(t.wait(wait), 3, "{}", t.transcript());
}

/// CPU time (user + system, in clock ticks) of a process on the host.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|n| n.parse::<u64>().ok()).sum())
}

#[test]
fn exec_with_a_terminal_the_process_no_longer_uses() {
    let c = Case::new("exec-tty-closed");
    running(&c, &[]);
    let argv = [
        CLEAT,
        "exec",
        "-it",
        &c.name,
        "sh",
        "-c",
        "echo closing; exec </dev/null >/dev/null 2>&1; sleep 2; exit 4",
    ];
    let mut t = Term::spawn_command(host().command(&argv), 24, 80);
    t.expect("closing", 10 * SECOND);
    let nsenter = t.pid();
    let cleat: u32 = std::fs::read_to_string(format!("/proc/{nsenter}/task/{nsenter}/children"))
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .expect("the cleat process");
    let before = cpu_ticks(cleat);
    std::thread::sleep(Duration::from_millis(1500));
    let spent = cpu_ticks(cleat) - before;
    // cleat waits for the process without a terminal to relay, it does not spin.
    assert!(spent < 20, "cleat used {spent} ticks of CPU in 1.5 s");
    assert_eq!(t.wait(10 * SECOND), 4, "{}", t.transcript());
}

#[test]
fn exec_detach_keys_leave_the_process_running() {
    let c = Case::new("exec-detach");
    let unit = c.adhoc_unit();
    let main = running(&c, &[]);
    let mut t = terminal(&c.name, &["--detach-keys", "ctrl-a,x"]);
    let wait = 10 * SECOND;
    t.send_bytes(b"echo attached\r");
    t.expect("\r\nattached", wait);
    t.send_bytes(b"\x01x");
    assert_eq!(t.wait(wait), 0, "{}", t.transcript());
    // The shell goes on in the container (with its terminal kept open for it).
    expect_others(&unit, main, &["sh"]);
    std::thread::sleep(Duration::from_millis(500));
    expect_others(&unit, main, &["sh"]);
    // cleat left one small process of its own behind (outside the container), which holds the
    // terminal for the shell.
    let keeper = format!("exec -it --detach-keys ctrl-a,x {} sh", c.name);
    let count = || {
        let out = host().exec(&["pgrep", "-c", "-f", &keeper]);
        out.stdout.trim().parse::<u32>().unwrap_or(0)
    };
    assert_eq!(count(), 1, "the process holding the terminal");
    // Until the container stops: then the shell goes, and that process with it.
    host().cleat(&["stop", &c.name]).ok();
    expect_stopped(&unit, 10 * SECOND);
    assert!(
        wait_until(10 * SECOND, || count() == 0),
        "a cleat process stayed after the container stopped"
    );
}

// ---------------------------------------------------------------------------------------------
// The caller's terminal, without -t

/// The descriptors in `dir` (a /proc/PID/fd directory, as this test process sees it) that
/// are open on the terminal `tty` (see `Term::slave_id`).
fn on_terminal(dir: &Path, tty: (u64, u64)) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            // Followed: the file the descriptor is open on.
            std::fs::metadata(e.path())
                .is_ok_and(|m| m.file_type().is_char_device() && (m.dev(), m.rdev()) == tty)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The unit's processes that hold a descriptor on the terminal `tty`: `PID: fds (cmdline)`.
fn unit_on_terminal(unit: &str, tty: (u64, u64)) -> Vec<String> {
    cgroup_procs(unit)
        .into_iter()
        .filter_map(|p| {
            let fds = on_terminal(&host().path(&format!("/proc/{p}/fd")), tty);
            (!fds.is_empty()).then(|| {
                let cmdline = host().exec(&["cat", &format!("/proc/{p}/cmdline")]).stdout;
                format!("{p}: fds {fds:?} ({})", cmdline.replace('\0', " "))
            })
        })
        .collect()
}

/// What a security review reproduced: a process that `cleat exec` (no -t) leaves behind in
/// the container kept the administrator's terminal, and read what was typed at the host's
/// shell afterwards. cleat now gives the process pipes of its own where its input or output is
/// a terminal.
#[test]
fn exec_never_hands_the_callers_terminal_to_the_container() {
    let c = Case::new("exec-tty-keep");
    let unit = c.adhoc_unit();
    running(&c, &[]);
    let leave_behind = "(sleep 1; head -c 8 <&3 >/tmp/stolen; touch /tmp/tried; sleep 30) \
                        3>&1 >/dev/null 2>&1 &";
    // The administrator's shell runs cleat exec, then waits on the same terminal.
    let argv = [
        "sh",
        "-c",
        "\"$@\"; echo exec-status=$?; sleep 5",
        "sh",
        CLEAT,
        "exec",
        &c.name,
        "sh",
        "-c",
        leave_behind,
    ];
    let mut t = Term::spawn_command(host().command(&argv), 24, 80);
    let tty = t.slave_id();
    // The check finds a process that does hold the terminal: nsenter, running that shell.
    let own = on_terminal(Path::new(&format!("/proc/{}/fd", t.pid())), tty);
    assert_eq!(own, ["0", "1", "2"], "the check does not see the terminal");
    t.expect("exec-status=0", 10 * SECOND);
    // Typed at the host's shell after cleat exec returned.
    t.send("stolen!!\r");
    let tried = wait_until(10 * SECOND, || {
        exec(&[&c.name, "test", "-e", "/tmp/tried"]).code == Some(0)
    });
    assert!(tried, "the process left behind never got to read");
    // It runs on (its `sleep 30`), and holds nothing of the terminal.
    let holders = unit_on_terminal(&unit, tty);
    assert!(
        holders.is_empty(),
        "processes of the container hold the caller's terminal: {holders:?}"
    );
    let stolen = exec(&[&c.name, "cat", "/tmp/stolen"]);
    stolen.ok();
    assert_eq!(stolen.stdout, "", "what was typed reached the container");
    assert_eq!(t.wait(10 * SECOND), 0, "{}", t.transcript());
}

/// On a terminal, without -t: the output (both streams), the exit status, and with -i the
/// keys typed, line by line, and the end of input (Ctrl-D), all through cleat.
#[test]
fn exec_output_input_and_status_with_a_terminal_on_the_client_side() {
    let c = Case::new("exec-tty-client");
    let unit = c.adhoc_unit();
    let main = running(&c, &[]);
    let argv = [
        CLEAT,
        "exec",
        &c.name,
        "sh",
        "-c",
        "echo out-1; echo err-1 >&2; tty; exit 5",
    ];
    let mut t = Term::spawn_command(host().command(&argv), 24, 80);
    assert_eq!(t.wait(10 * SECOND), 5, "{}", t.transcript());
    let shown = t.transcript();
    for needle in ["out-1", "err-1", "not a tty"] {
        assert!(shown.contains(needle), "{needle:?} not shown:\n{shown}");
    }

    let argv = [
        CLEAT,
        "exec",
        "-i",
        &c.name,
        "sh",
        "-c",
        "read line; echo got:$line; tty; exec cat",
    ];
    let mut t = Term::spawn_command(host().command(&argv), 24, 80);
    let tty = t.slave_id();
    let wait = 10 * SECOND;
    t.send("typed\r");
    t.expect("got:typed", wait);
    t.expect("not a tty", wait);
    expect_others(&unit, main, &["cat"]);
    let holders = unit_on_terminal(&unit, tty);
    assert!(holders.is_empty(), "{holders:?}");
    t.send("more\r");
    // The terminal's echo, then cat's copy.
    t.expect("more", wait);
    t.expect("more", wait);
    // Ctrl-D at the start of a line: the end of cleat's input, passed on as the end of the
    // process's.
    t.send_bytes(b"\x04");
    assert_eq!(t.wait(wait), 0, "{}", t.transcript());

    // A process that writes without end keeps cleat busy copying, not deaf: Ctrl-C reaches
    // it (SIGINT, passed on), and cleat ends with it.
    let argv = [CLEAT, "exec", &c.name, "yes"];
    let mut t = Term::spawn_command(host().command(&argv), 24, 80);
    t.expect("y\r\ny\r\ny", wait);
    t.send_bytes(b"\x03");
    assert_eq!(t.wait(wait), 130);
}

// ---------------------------------------------------------------------------------------------
// cleat's binary, out of a tracer's reach

/// The variable with which cleat's sealed copy learns where the original binary is.
pub const SEALED_MARKER: &str = "_CLEAT_SEALED_FROM";

/// A container with CAP_SYS_PTRACE may open /proc/PID/exe of any of its processes, non-dumpable
/// or not. A process of `cleat exec` runs cleat's code inside the container between its fork
/// and its exec: it must run from a sealed copy, so that a watcher catching it (and holding it
/// stopped) gets no handle on the host's binary, and nothing it can write.
#[test]
fn exec_gives_a_tracer_in_the_container_no_handle_on_cleats_binary() {
    let c = Case::new("exec-exe");
    let unit = c.adhoc_unit();
    let _ = probe_binary();
    c.run(
        &["-d", "--cap-add", "SYS_PTRACE"],
        &[PROBE, "watch-exe", "60000", "1000"],
    )
    .ok();
    expect_journal(&unit, "\"watch\":\"ready\"");
    let installed = installed_cleat();
    // The copy learns the original's path from a variable that nothing it starts ever sees
    // (not even through `-e NAME`, which takes the value from cleat's environment).
    let out = exec(&["-e", SEALED_MARKER, &c.name, "env"]);
    out.ok();
    assert!(!out.stdout.contains(SEALED_MARKER), "{out}");
    let caught = |reports: &[serde_json::Value]| {
        reports
            .iter()
            .find(|r| r["watch"] == "exe" && r["foreign"] == true)
            .cloned()
    };
    let mut report = None;
    // The watcher may miss a process (it runs for a moment only): until it catches one.
    for _ in 0..30 {
        let before = watch_reports(&unit).len();
        exec(&[&c.name, "true"]).ok();
        // Its line: a catch (once the watcher has tried again after the process ended), a miss.
        wait_until(10 * SECOND, || watch_reports(&unit).len() > before);
        report = caught(&watch_reports(&unit));
        if report.is_some() {
            break;
        }
    }
    let Some(r) = report else {
        panic!(
            "the watcher never caught a process of cleat exec before its exec:\n{}",
            host().journal(&unit)
        )
    };
    assert_sealed_copy(&r, installed);
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[test]
fn exec_refuses_unknown_and_stopped_containers() {
    let h = host();
    let c = Case::new("exec-bad");
    exec(&[&c.name, "true"])
        .fails()
        .says(&format!("no such container: {}", c.name))
        .reads_clean();

    // Created, never started.
    let created = c.another("exec-created");
    h.cleat(&["create", "--name", &created, "--rootfs", c.rootfs(), "true"])
        .ok();
    exec(&[&created, "true"])
        .fails()
        .says(&format!("container {created} is not running"))
        .reads_clean();

    // Ran and exited.
    let exited = c.another("exec-exited");
    h.cleat(&["run", "--name", &exited, "--rootfs", c.rootfs(), "true"])
        .ok();
    exec(&[&exited, "true"])
        .fails()
        .says(&format!("container {exited} is not running"));

    // A declared container that is not started.
    let declared = c.another("exec-decl-off");
    h.write_file(
        &format!("/etc/cleat/containers/{declared}.toml"),
        &format!("rootfs = \"{}\"\ncommand = [\"true\"]\n", c.rootfs()),
    );
    exec(&[&declared, "true"])
        .fails()
        .says(&format!("container {declared} is not running"));
}

#[test]
fn exec_refuses_what_it_cannot_run_and_leaves_nothing_behind() {
    let c = Case::new("exec-fail");
    let unit = c.adhoc_unit();
    let main = running(&c, &[]);

    exec(&["-u", "ghost", &c.name, "true"])
        .code_is(126)
        .says("unable to find user ghost")
        .reads_clean();
    exec(&[&c.name, "no-such-command"])
        .code_is(127)
        .says("no-such-command")
        .says("not found");
    exec(&[&c.name, "/etc/passwd"])
        .code_is(126)
        .says("permission denied");
    exec(&["-w", "/no/such/dir", &c.name, "true"])
        .code_is(126)
        .says("working directory /no/such/dir")
        .reads_clean();
    exec(&["-w", "relative", &c.name, "true"])
        .fails()
        .says("must be an absolute path");
    exec(&["-e", "=x", &c.name, "true"])
        .fails()
        .says("invalid variable");
    exec(&["--env-file", "/no/such.env", &c.name, "true"])
        .fails()
        .says("/no/such.env");
    exec(&["--detach-keys", "ctrl-", &c.name, "true"])
        .fails()
        .says("invalid detach key");

    // Nothing started, nothing stays: the unit's cgroup has its main process only, and the
    // container runs on.
    assert_eq!(other_procs(&unit, main), []);
    assert_eq!(host().prop(&unit, "ActiveState"), "active");
    exec(&[&c.name, "true"]).ok();
}
