//! Interactive containers (issue 6): `run -it` on a terminal the container's init holds,
//! detaching and `attach`, foreground runs with separate streams, Ctrl-C, `-i` pipes, and
//! `logs -f` that ends with the container. Driven through a real pseudo-terminal.

use std::time::Duration;

use crate::host::{CLEAT, Case, expect_active, expect_stopped, host, ps_entry, wait_until};
use crate::pty::Term;

const T: Duration = Duration::from_secs(20);

fn run_argv<'a>(c: &'a Case, flags: &[&'a str], payload: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![CLEAT, "run"];
    argv.extend_from_slice(flags);
    argv.extend_from_slice(&["--name", &c.name, "--rootfs", c.rootfs()]);
    argv.extend_from_slice(payload);
    argv
}

#[test]
fn run_it_gives_a_terminal_with_editing_signals_and_sizes() {
    let c = Case::new("tty-run");
    let mut t = Term::spawn(&run_argv(&c, &["-it"], &["sh"]), 30, 100);
    t.expect("# ", T);
    // The terminal is the container's own, of the size of ours from the start.
    t.send("tty; stty size; echo TERM=$TERM pid=$$\r");
    t.expect("/dev/pts/0", T);
    t.expect("30 100", T);
    // The shell is the container's PID 1, as without a terminal.
    t.expect("TERM=xterm pid=1", T);
    // Window size changes reach it.
    t.resize(41, 123);
    t.send("stty size\r");
    t.expect("41 123", T);
    // Line editing happens in the container's terminal: a backspace takes the X back.
    t.send("echo abX\x7fc\r");
    t.expect("\nabc\r\n", T);
    // Ctrl-C reaches the foreground program, not cleat.
    t.send("sleep 100\r");
    std::thread::sleep(Duration::from_millis(300));
    t.send("\x03");
    t.send("echo after-$((20+3))\r");
    t.expect("after-23", T);
    // /dev/console is the same terminal.
    t.send("echo to-console >/dev/console\r");
    t.expect("to-console", T);
    t.send("exit 7\r");
    assert_eq!(t.wait(T), 7, "{}", t.transcript());
    let e = ps_entry(&c.name, true).expect("the exited container is listed");
    assert_eq!(e["state"], "exited", "{e}");
    // What the terminal showed is in the journal too, as lines.
    let logs = host().cleat(&["logs", &c.name]);
    logs.ok().says("after-23");
    assert!(
        !logs.stdout.contains("\r\n"),
        "lines end with carriage returns in the logs:\n{logs}"
    );
}

#[test]
fn detach_leaves_it_running_and_attach_reconnects() {
    let h = host();
    let c = Case::new("tty-detach");
    let unit = c.adhoc_unit();
    let mut t = Term::spawn(&run_argv(&c, &["-it"], &["sh"]), 24, 80);
    t.expect("# ", T);
    t.send("echo one-$((0+1))\r");
    t.expect("one-1", T);
    // Ctrl-P Ctrl-Q: cleat leaves, the container stays.
    t.send("\x10\x11");
    assert_eq!(t.wait(T), 0, "{}", t.transcript());
    expect_active(&unit);

    let mut a = Term::spawn(&[CLEAT, "attach", &c.name], 50, 132);
    a.send("stty size; echo two-$((1+1))\r");
    a.expect("50 132", T);
    a.expect("two-2", T);
    a.send("\x10\x11");
    assert_eq!(a.wait(T), 0, "{}", a.transcript());

    // Other detach keys, Docker's syntax.
    let mut b = Term::spawn(
        &[CLEAT, "attach", "--detach-keys", "ctrl-a,d", &c.name],
        24,
        80,
    );
    b.send("echo three\r");
    b.expect("three", T);
    b.send("\x01d");
    assert_eq!(b.wait(T), 0, "{}", b.transcript());
    expect_active(&unit);

    // Attached when the shell exits: attach ends with its status.
    let mut d = Term::spawn(&[CLEAT, "attach", &c.name], 24, 80);
    d.send("exit 3\r");
    assert_eq!(d.wait(T), 3, "{}", d.transcript());
    expect_stopped(&unit, T);
    let _ = h;
}

#[test]
fn a_declared_container_with_a_terminal() {
    let h = host();
    let c = Case::new("tty-decl");
    let unit = c.declared_unit();
    c.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"sh\"]\ntty = true\ninteractive = true\n",
        c.rootfs()
    ));
    h.daemon_reload();
    // The unit lasts until cleat has passed the terminal's last output on.
    assert_eq!(h.prop(&unit, "ExitType"), "cgroup");
    h.systemctl(&["start", &unit]).ok();
    expect_active(&unit);
    let mut a = Term::spawn(&[CLEAT, "attach", &c.name], 24, 80);
    a.send("echo declared-$((2*3))\r");
    a.expect("declared-6", T);
    a.send("\x10\x11");
    assert_eq!(a.wait(T), 0, "{}", a.transcript());
    // Its terminal's output is in the unit's journal.
    assert!(
        wait_until(Duration::from_secs(5), || h
            .journal(&unit)
            .contains("declared-6")),
        "{}",
        h.journal(&unit)
    );
    h.systemctl(&["stop", &unit]).ok();
}

#[test]
fn without_i_the_terminal_only_shows() {
    let c = Case::new("tty-watch");
    let mut t = Term::spawn(
        &run_argv(
            &c,
            &["-t"],
            &[
                "sh",
                "-c",
                "echo waiting; read -t 3 x; echo \"got:[$x]\"; exit 5",
            ],
        ),
        24,
        80,
    );
    t.expect("waiting", T);
    t.send("typed\r");
    t.expect("got:[]", T);
    assert_eq!(t.wait(T), 5, "{}", t.transcript());
}

/// What a terminal shows just before its payload exits is all there, in the client and in the
/// journal: the unit lasts until cleat has passed it on (ExitType=cgroup).
#[test]
fn the_last_output_of_a_terminal_is_never_lost() {
    let h = host();
    let c = Case::new("tty-tail");
    let mut t = Term::spawn(
        &run_argv(&c, &["-t"], &["sh", "-c", "seq 1 5000; echo THE-END"]),
        24,
        80,
    );
    t.expect("\r\n4999\r\n5000\r\nTHE-END", T);
    assert_eq!(t.wait(T), 0, "{}", t.transcript());
    let logs = h.cleat(&["logs", &c.name]);
    logs.ok();
    let lines: Vec<&str> = logs.stdout.lines().collect();
    let tail = &logs.stdout[logs.stdout.len().saturating_sub(200)..];
    // (Fewer lines than journald's rate limit, 10000 in 30 s by default.)
    assert_eq!(lines.len(), 5001, "{tail}");
    assert_eq!(lines.last(), Some(&"THE-END"));
}

/// The terminal outlives what the payload does with its own descriptors, and signals meant
/// for the container: cleat's process beside it ignores `systemctl kill`.
#[test]
fn the_terminal_survives_closed_stdio_and_systemctl_kill() {
    let h = host();
    let c = Case::new("tty-hold");
    let unit = c.adhoc_unit();
    c.run(
        &["-dit"],
        &[
            "sh",
            "-c",
            "exec </dev/null >/dev/null 2>&1; sleep 1; echo later >/dev/console; \
             exec sh </dev/console >/dev/console 2>&1",
        ],
    )
    .ok();
    let said_later = || h.cleat(&["logs", &c.name]).stdout.contains("later");
    assert!(
        wait_until(Duration::from_secs(10), said_later),
        "{}",
        h.journal(&unit)
    );
    h.systemctl(&["kill", "-s", "HUP", &unit]).ok();
    h.systemctl(&["kill", "-s", "TERM", "--kill-whom=all", &unit])
        .ok();
    std::thread::sleep(Duration::from_millis(300));
    expect_active(&unit);
    let mut a = Term::spawn(&[CLEAT, "attach", &c.name], 24, 80);
    a.send("echo still-$((3*3))\r");
    a.expect("still-9", T);
    a.send("exit 0\r");
    assert_eq!(a.wait(T), 0, "{}", a.transcript());
    expect_stopped(&unit, T);
}

/// A pipeline's reader that stops reading ends the container as it would end a program:
/// SIGPIPE.
#[test]
fn a_reader_that_goes_away_ends_a_foreground_run() {
    let h = host();
    let c = Case::new("fg-sigpipe");
    let out = h.sh_timeout(
        &format!(
            "{CLEAT} run --rm --name {} --rootfs {} yes | head -2",
            c.name,
            c.rootfs()
        ),
        Duration::from_secs(20),
    );
    out.ok();
    assert_eq!(out.stdout, "y\ny\n", "{out}");
}

/// With -i on a terminal, the container reads what is typed, but through a pipe of cleat's:
/// the terminal itself never goes into the container.
#[test]
fn i_on_a_terminal_gives_the_container_a_pipe() {
    let c = Case::new("fg-i-tty");
    let mut t = Term::spawn(
        &run_argv(
            &c,
            &["-i", "--rm"],
            &["sh", "-c", "readlink /proc/self/fd/0; cat; echo done"],
        ),
        24,
        80,
    );
    t.expect("pipe:", T);
    t.send("hello there\r");
    t.expect("hello there", T);
    t.send("\x04");
    t.expect("done", T);
    assert_eq!(t.wait(T), 0, "{}", t.transcript());
}

#[test]
fn foreground_run_keeps_stdout_and_stderr_apart() {
    let h = host();
    let c = Case::new("fg-streams");
    let out = c.run(
        &["--rm"],
        &["sh", "-c", "echo to-out; echo to-err >&2; exit 3"],
    );
    out.code_is(3);
    assert_eq!(out.stdout, "to-out\n", "{out}");
    assert!(out.stderr.contains("to-err"), "{out}");
    assert!(!out.stdout.contains("to-err"), "{out}");
    // --rm: gone.
    assert!(ps_entry(&c.name, true).is_none());
    // Byte for byte, both ways: binary data through -i and stdout, a pipeline's member.
    let n = c.another("fg-binary");
    let busybox = format!("{}/bin/busybox", c.rootfs());
    let out = h.sh(&format!(
        "{CLEAT} run -i --rm --name {n} --rootfs {} cat <{busybox} | cmp - {busybox} && echo same",
        c.rootfs()
    ));
    out.ok();
    assert_eq!(out.stdout, "same\n", "{out}");
}

#[test]
fn i_pipes_stdin_and_without_it_stdin_is_empty() {
    let h = host();
    let c = Case::new("fg-stdin");
    let n2 = c.another("fg-nostdin");
    let cmd = format!(
        "printf 'line one\\nline two\\n' | {CLEAT} run -i --rm --name {} --rootfs {} cat",
        c.name,
        c.rootfs()
    );
    let out = h.sh(&cmd);
    out.ok();
    assert_eq!(out.stdout, "line one\nline two\n", "{out}");
    let cmd = format!(
        "printf 'ignored\\n' | {CLEAT} run --rm --name {n2} --rootfs {} cat",
        c.rootfs()
    );
    let out = h.sh(&cmd);
    out.ok();
    assert_eq!(out.stdout, "", "{out}");
}

#[test]
fn ctrl_c_reaches_the_container_and_repeated_stops_it() {
    let c = Case::new("fg-ctrlc");
    // A payload that handles SIGINT ends as it chooses.
    let mut t = Term::spawn(
        &run_argv(
            &c,
            &["--rm"],
            &[
                "sh",
                "-c",
                "trap 'echo got-int; exit 4' INT; echo ready; while :; do sleep 0.1; done",
            ],
        ),
        24,
        80,
    );
    t.expect("ready", T);
    t.send("\x03");
    t.expect("got-int", T);
    assert_eq!(t.wait(T), 4, "{}", t.transcript());

    // As PID 1 without handlers, sleep ignores SIGINT and its stop signal: the second Ctrl-C
    // stops the container, a third kills it.
    let n = c.another("fg-ctrlc-stop");
    let argv = [
        CLEAT,
        "run",
        "--stop-timeout",
        "30",
        "--name",
        &n,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        "echo ready; exec sleep 1000",
    ];
    let mut t = Term::spawn(&argv, 24, 80);
    t.expect("ready", T);
    t.send("\x03");
    std::thread::sleep(Duration::from_millis(300));
    t.send("\x03");
    t.expect("Ctrl-C again", T);
    t.send("\x03");
    assert_eq!(t.wait(T), 137, "{}", t.transcript());
}

#[test]
fn logs_follow_ends_when_the_container_stops() {
    let h = host();
    let c = Case::new("logs-follow");
    c.run(
        &["-d"],
        &["sh", "-c", "echo first; sleep 2; echo second; echo last"],
    )
    .ok();
    let out = h.cleat_timeout(&["logs", "-f", &c.name], Duration::from_secs(20));
    out.ok();
    assert_eq!(out.stdout, "first\nsecond\nlast\n", "{out}");
    // -n with -f: the last lines, then the end.
    let out = h.cleat_timeout(&["logs", "-f", "-n", "1", &c.name], Duration::from_secs(20));
    out.ok();
    assert_eq!(out.stdout, "last\n", "{out}");
    // Timestamps, Docker's order: time first.
    let out = h.cleat(&["logs", "-t", &c.name]);
    out.ok();
    assert!(
        out.stdout
            .lines()
            .all(|l| l.len() > 20 && l.as_bytes()[4] == b'-'),
        "{out}"
    );
}

#[test]
fn terminal_bad_input() {
    let h = host();
    let c = Case::new("tty-bad");
    // Attach to a container without a terminal.
    c.run(&["-d"], &["sleep", "100"]).ok();
    h.cleat(&["attach", &c.name])
        .fails()
        .says("has no terminal");
    h.cleat(&["stop", "-t", "1", &c.name]).ok();
    // ... to a stopped one, and an unknown one.
    h.cleat(&["attach", &c.name]).fails().says("is not running");
    h.cleat(&["attach", "t-no-such-container"])
        .fails()
        .says("no such container");
    // -it without a terminal on stdin; bad detach keys: Docker's 125, nothing created.
    let n = c.another("tty-bad-notty");
    let out = h.cleat(&["run", "-it", "--name", &n, "--rootfs", c.rootfs(), "sh"]);
    out.code_is(125).says("not a TTY");
    assert!(ps_entry(&n, true).is_none());
    let out = h.cleat(&[
        "run",
        "--detach-keys",
        "ctrl-1",
        "--name",
        &n,
        "--rootfs",
        c.rootfs(),
        "true",
    ]);
    out.code_is(125).says("invalid detach key");
    assert!(ps_entry(&n, true).is_none());
}

/// `create -it` then `start -ai`, and `start -a` of a declared container: Docker's way back
/// into a container that is not running.
#[test]
fn start_attach_and_interactive() {
    let h = host();
    let c = Case::new("start-ai");
    h.cleat(&[
        "create",
        "-it",
        "--name",
        &c.name,
        "--rootfs",
        c.rootfs(),
        "sh",
    ])
    .ok();
    let mut t = Term::spawn(&[CLEAT, "start", "-ai", &c.name], 30, 90);
    t.expect("# ", T);
    t.send("stty size; echo started-$((5*5))\r");
    t.expect("30 90", T);
    t.expect("started-25", T);
    t.send("exit 6\r");
    assert_eq!(t.wait(T), 6, "{}", t.transcript());
    // Again: the same container, a new run.
    let mut t = Term::spawn(&[CLEAT, "start", "-ai", &c.name], 24, 80);
    t.expect("# ", T);
    t.send("echo again-$((1+1))\r");
    t.expect("again-2", T);
    t.send("\x10\x11");
    assert_eq!(t.wait(T), 0, "{}", t.transcript());
    expect_active(&c.adhoc_unit());
    h.cleat(&["rm", "-f", &c.name]).ok();

    // Without a terminal: the output here, then the exit status.
    let n = c.another("start-a");
    h.cleat(&[
        "create",
        "--name",
        &n,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        "echo out; echo err >&2; exit 4",
    ])
    .ok();
    let out = h.cleat(&["start", "-a", &n]);
    out.code_is(4);
    assert_eq!(out.stdout, "out\n", "{out}");
    assert!(out.stderr.contains("err"), "{out}");

    // A declared container: its output from the journal, from the start on.
    let d = Case::new("start-a-decl");
    d.declare(&format!(
        "rootfs = \"{}\"\ncommand = [\"sh\", \"-c\", \"echo declared-out; exit 3\"]\n",
        d.rootfs()
    ));
    let out = h.cleat(&["start", "-a", &d.name]);
    out.code_is(3);
    assert!(out.stdout.contains("declared-out"), "{out}");
    // -a takes one container.
    h.cleat(&["start", "-a", &n, &d.name])
        .fails()
        .says("only one");
}
