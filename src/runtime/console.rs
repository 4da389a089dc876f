//! A container's terminal, held by cleat's init (`tty = true`): the init keeps the master side
//! of the container's pseudo-terminal for as long as the container runs, copies what the
//! terminal shows to the unit's journal and to every attached client, and passes clients'
//! keys and window sizes to the terminal. The init is the unit's main process, so it outlives
//! the payload by exactly as long as it takes to pass on the terminal's last output: nothing
//! is lost when a program prints and exits at once.
//!
//! Clients (`cleat run -it`, `cleat attach`) talk to it over a Unix stream socket: from the
//! init they receive the terminal's raw output; to it they send frames of one kind byte, a
//! big-endian 16-bit length and the payload: [`INPUT`] (keys) or [`RESIZE`] (rows and columns,
//! 16 bits each).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, SocketFlags};

/// A frame of keys typed by a client.
pub const INPUT: u8 = b'i';
/// A frame with the client's window size.
pub const RESIZE: u8 = b'w';

/// Set in a unit's environment by `cleat run` in the foreground: the unit's stdout and stderr
/// are the caller's, and the init passes the container's output to them and to the journal.
pub const RELAY_ENV: &str = "CLEAT_RELAY_OUTPUT";

/// Frames carry at most this much.
const MAX_FRAME: usize = u16::MAX as usize;
/// Keys the terminal has not taken yet: beyond this, clients are not read until it catches up.
const MAX_PENDING_INPUT: usize = 64 * 1024;
/// How long the last output may wait for an attach client at the end.
const CLIENT_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The terminal's size before any client says otherwise.
pub const DEFAULT_SIZE: (u16, u16) = (24, 80);

/// Encodes one frame (data longer than a frame holds is split over several).
pub fn frames(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 3);
    for chunk in data.chunks(MAX_FRAME) {
        out.push(kind);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// The frame announcing a window size.
pub fn resize_frame(rows: u16, cols: u16) -> Vec<u8> {
    let mut size = rows.to_be_bytes().to_vec();
    size.extend_from_slice(&cols.to_be_bytes());
    frames(RESIZE, &size)
}

/// A decoded frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Input(Vec<u8>),
    Resize(u16, u16),
}

/// Collects a client's bytes and yields whole frames.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame; `Err` for a frame of an unknown kind or a malformed size (the
    /// client is then dropped).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, BadFrame> {
        let [kind, hi, lo, ..] = self.buf[..] else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if self.buf.len() < 3 + len {
            return Ok(None);
        }
        let body: Vec<u8> = self.buf.drain(..3 + len).skip(3).collect();
        match (kind, &body[..]) {
            (INPUT, _) => Ok(Some(Frame::Input(body))),
            (RESIZE, [r1, r2, c1, c2]) => Ok(Some(Frame::Resize(
                u16::from_be_bytes([*r1, *r2]),
                u16::from_be_bytes([*c1, *c2]),
            ))),
            _ => Err(BadFrame(kind)),
        }
    }
}

/// A frame cleat does not understand (its kind byte).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a malformed frame of kind {0:#x} from a terminal client")]
pub struct BadFrame(pub u8);

/// Turns the terminal's CR LF line ends into LF for the journal (which would otherwise keep
/// a carriage return at the end of every line, and show such lines as binary data).
#[derive(Debug, Default)]
pub struct JournalText {
    held_cr: bool,
}

impl JournalText {
    pub fn convert(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 1);
        for &b in data {
            if self.held_cr {
                self.held_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                self.held_cr = true;
            } else {
                out.push(b);
            }
        }
        out
    }
}

/// What cleat holds for the container's terminal.
pub struct Console {
    pub master: OwnedFd,
    /// Where `cleat attach` connects.
    pub listener: OwnedFd,
    /// A client connected before the container started (`cleat run -it`): it gets every byte,
    /// at its own pace (the container waits for it, as for a program's own terminal).
    pub first_client: Option<OwnedFd>,
    /// Whether clients' keys reach the terminal.
    pub interactive: bool,
    /// A pidfd of the container's main process: the terminal is held until it has ended.
    pub main: OwnedFd,
}

struct Client {
    id: u64,
    fd: OwnedFd,
    frames: FrameReader,
    /// Output it has not taken yet (attach clients; the first client is written to in full).
    queue: Vec<u8>,
    first: bool,
}

/// An attach client that falls this far behind is dropped rather than slowing the others.
const MAX_CLIENT_QUEUE: usize = 1024 * 1024;
/// After the main process has ended, how long the terminal's last output may take to come
/// (other processes of the container are being killed meanwhile).
const FINAL_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Holds the container's terminal until its main process has ended: passes what it shows on
/// (journal, clients) and clients' keys and sizes in; then passes on what it still had, and
/// returns. cleat keeps a descriptor of the terminal itself, so that a payload that closes
/// its own (and later writes to /dev/console) does not end the terminal.
pub fn serve(console: Console) {
    let Console {
        master,
        listener,
        first_client,
        interactive,
        main,
    } = console;
    let _ = set_nonblocking(master.as_fd());
    let _ = set_nonblocking(listener.as_fd());
    let own_slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        rustix::pty::OpenptFlags::RDWR
            | rustix::pty::OpenptFlags::NOCTTY
            | rustix::pty::OpenptFlags::CLOEXEC,
    )
    .ok();
    let mut relay = Relay {
        master,
        interactive,
        clients: Vec::new(),
        pending: Vec::new(),
        journal: JournalText::default(),
        next_id: 0,
    };
    if let Some(fd) = first_client {
        relay.add_client(fd, true);
    }
    loop {
        let reading_clients = relay.pending.len() < MAX_PENDING_INPUT;
        let mut master_events = PollFlags::IN;
        if !relay.pending.is_empty() {
            master_events |= PollFlags::OUT;
        }
        let mut fds = vec![
            PollFd::new(&main, PollFlags::IN),
            PollFd::new(&listener, PollFlags::IN),
            PollFd::new(&relay.master, master_events),
        ];
        for c in &relay.clients {
            let mut events = PollFlags::empty();
            if reading_clients {
                events |= PollFlags::IN;
            }
            if !c.queue.is_empty() {
                events |= PollFlags::OUT;
            }
            fds.push(PollFd::new(&c.fd, events));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => return,
        }
        let revents: Vec<PollFlags> = fds.iter().map(|f| f.revents()).collect();
        drop(fds);
        // By identity: passing output on may drop clients, which moves the others.
        let ready: Vec<(u64, PollFlags)> = relay
            .clients
            .iter()
            .zip(&revents[3..])
            .filter(|(_, r)| !r.is_empty())
            .map(|(c, r)| (c.id, *r))
            .collect();
        if revents[2].intersects(PollFlags::OUT) {
            relay.write_input();
        }
        if revents[2].intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            relay.read_output();
        }
        if revents[1].intersects(PollFlags::IN) {
            if let Ok(fd) = rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) {
                relay.add_client(fd, false);
            }
        }
        for (id, r) in ready {
            if r.intersects(PollFlags::OUT) {
                relay.flush_client(id);
            }
            if r.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                if let Some(i) = relay.clients.iter().position(|c| c.id == id) {
                    relay.read_client(i);
                }
            }
        }
        if revents[0].intersects(PollFlags::IN) {
            // The main process has ended. Once nothing has the terminal open, reading it gives
            // what is left and then EIO (the kernel delivers what was in flight first).
            drop(own_slave);
            relay.drain(FINAL_DRAIN);
            for c in &mut relay.clients {
                let queue = std::mem::take(&mut c.queue);
                let _ = write_all_waiting(c.fd.as_fd(), &queue, Some(CLIENT_SEND_TIMEOUT));
            }
            return;
        }
    }
}

struct Relay {
    master: OwnedFd,
    interactive: bool,
    clients: Vec<Client>,
    pending: Vec<u8>,
    journal: JournalText,
    next_id: u64,
}

impl Relay {
    fn add_client(&mut self, fd: OwnedFd, first: bool) {
        let _ = set_nonblocking(fd.as_fd());
        self.next_id += 1;
        self.clients.push(Client {
            id: self.next_id,
            fd,
            frames: FrameReader::default(),
            queue: Vec::new(),
            first,
        });
    }

    /// Drops a client; it sees the end of its connection (other descriptors of the socket,
    /// such as the unit's standard input that systemd keeps, do not hold it open).
    fn drop_client(&mut self, i: usize) {
        let c = self.clients.swap_remove(i);
        let _ = rustix::net::shutdown(&c.fd, rustix::net::Shutdown::Both);
    }

    /// Reads what the terminal shows and passes it on; false when there is nothing now, or
    /// nothing more (EIO: no process has the terminal open).
    fn read_output(&mut self) -> bool {
        let mut buf = [0u8; 32 * 1024];
        match rustix::io::read(&self.master, &mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.show(&buf[..n]);
                true
            }
            Err(_) => false,
        }
    }

    /// Passes on what the terminal still has, until it reports that no process has it open,
    /// or `limit` has passed.
    fn drain(&mut self, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        let mut buf = [0u8; 32 * 1024];
        loop {
            match rustix::io::read(&self.master, &mut buf) {
                Ok(0) => return,
                Ok(n) => self.show(&buf[..n]),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return;
                    }
                    let mut pfd = [PollFd::new(&self.master, PollFlags::IN)];
                    let timeout = rustix::event::Timespec {
                        tv_sec: left.as_secs() as i64,
                        tv_nsec: i64::from(left.subsec_nanos()),
                    };
                    if let Ok(0) = rustix::event::poll(&mut pfd, Some(&timeout)) {
                        return;
                    }
                }
                // EIO: every process has closed it, and everything was read.
                Err(_) => return,
            }
        }
    }

    fn show(&mut self, data: &[u8]) {
        // The journal: the unit's standard output, inherited from cleat.
        let text = self.journal.convert(data);
        let _ = write_all_waiting(rustix::stdio::stdout(), &text, None);
        let mut i = 0;
        while i < self.clients.len() {
            let c = &mut self.clients[i];
            let keep = if c.first {
                // At its pace: the container's output waits for the person it runs for.
                write_all_waiting(c.fd.as_fd(), data, None).is_ok()
            } else {
                c.queue.extend_from_slice(data);
                send_some(c.fd.as_fd(), &mut c.queue).is_ok() && c.queue.len() <= MAX_CLIENT_QUEUE
            };
            if keep {
                i += 1;
            } else {
                self.drop_client(i);
            }
        }
    }

    /// Sends what an attach client has queued, as far as it takes it now.
    fn flush_client(&mut self, id: u64) {
        if let Some(i) = self.clients.iter().position(|c| c.id == id) {
            let c = &mut self.clients[i];
            if send_some(c.fd.as_fd(), &mut c.queue).is_err() {
                self.drop_client(i);
            }
        }
    }

    fn write_input(&mut self) {
        match rustix::io::write(&self.master, &self.pending) {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(_) => self.pending.clear(),
        }
    }

    fn read_client(&mut self, i: usize) {
        let mut buf = [0u8; 16 * 1024];
        let n = match rustix::net::recv(&self.clients[i].fd, &mut buf, RecvFlags::DONTWAIT) {
            Ok((0, _)) => {
                self.drop_client(i);
                return;
            }
            Ok((n, _)) => n,
            Err(Errno::AGAIN | Errno::INTR) => return,
            Err(_) => {
                self.drop_client(i);
                return;
            }
        };
        self.clients[i].frames.push(&buf[..n]);
        loop {
            match self.clients[i].frames.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Input(keys))) => {
                    if self.interactive {
                        self.pending.extend_from_slice(&keys);
                    }
                }
                Ok(Some(Frame::Resize(rows, cols))) => {
                    let _ = super::pty::set_size(&self.master, rows, cols);
                }
                Err(_) => {
                    self.drop_client(i);
                    return;
                }
            }
        }
        if !self.pending.is_empty() {
            self.write_input();
        }
    }
}

/// Sends as much of `queue` as the socket takes without waiting, and removes it from the
/// queue.
fn send_some(fd: BorrowedFd<'_>, queue: &mut Vec<u8>) -> io::Result<()> {
    while !queue.is_empty() {
        match rustix::net::send(fd, queue, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                queue.drain(..n);
            }
            Err(Errno::AGAIN) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A foreground run's output: the payload's stdout and stderr come through pipes, and cleat
/// (the unit's `ExecStart=` process, which stays for this) passes them to the caller's (the
/// unit's stdout and stderr were given by `cleat run`) and to the journal, in which the
/// container's output belongs as much as for a container in the background. The unit has
/// `ExitType=cgroup`, so it does not count as stopped before this has passed on the last of
/// it; the payload stays the container's PID 1 and the unit's main process.
pub struct Streams {
    /// Read ends of the payload's stdout and stderr.
    pub from_payload: [OwnedFd; 2],
    /// The caller's stdout and stderr.
    pub to_caller: [OwnedFd; 2],
    /// Journal streams for the two.
    pub to_journal: [OwnedFd; 2],
}

/// Passes the payload's output on until no process has its pipes open any more (the
/// container has ended). When the caller stops reading one of them (`cleat run … | head`),
/// that pipe is closed, so the payload gets SIGPIPE as it would in a shell pipeline; the
/// journal has everything up to there.
pub fn pass_on_streams(streams: Streams) {
    let Streams {
        from_payload,
        to_caller,
        to_journal,
    } = streams;
    let mut from_payload = from_payload.map(Some);
    let mut buf = vec![0u8; 64 * 1024];
    while from_payload.iter().any(Option::is_some) {
        let mut fds = Vec::new();
        let mut which = Vec::new();
        for (i, fd) in from_payload.iter().enumerate() {
            if let Some(fd) = fd {
                fds.push(PollFd::new(fd, PollFlags::IN));
                which.push(i);
            }
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => return,
        }
        let ready: Vec<usize> = which
            .iter()
            .zip(fds.iter())
            .filter(|(_, f)| !f.revents().is_empty())
            .map(|(i, _)| *i)
            .collect();
        drop(fds);
        for i in ready {
            let Some(pipe) = &from_payload[i] else {
                continue;
            };
            match rustix::io::read(pipe, &mut buf) {
                Ok(0) => from_payload[i] = None,
                Ok(n) => {
                    let _ = write_all_waiting(to_journal[i].as_fd(), &buf[..n], None);
                    if write_all_waiting(to_caller[i].as_fd(), &buf[..n], None).is_err() {
                        from_payload[i] = None;
                    }
                }
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(_) => from_payload[i] = None,
            }
        }
    }
}

/// Opens a stream to journald for the unit's output, as systemd does for
/// `StandardOutput=journal` (journald knows the unit by the connecting process, which is in
/// the unit's cgroup): lines at `priority`, tagged `identifier`.
pub fn journal_stream(identifier: &str, priority: u8) -> io::Result<OwnedFd> {
    let sock = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = rustix::net::SocketAddrUnix::new("/run/systemd/journal/stdout")?;
    rustix::net::connect(&sock, &addr)?;
    // identifier, unit ID, priority, level prefix (`<N>` at the start of a line sets its
    // priority, as systemd's own streams do by default), forward to syslog, kmsg, console.
    let header = format!("{identifier}\n\n{priority}\n1\n0\n0\n0\n");
    write_all_waiting(sock.as_fd(), header.as_bytes(), None)?;
    rustix::net::shutdown(&sock, rustix::net::Shutdown::Read)?;
    Ok(sock)
}

/// Writes everything, waiting while the other side is full: for as long as it takes, or at
/// most `limit` at a time.
fn write_all_waiting(
    fd: BorrowedFd<'_>,
    mut data: &[u8],
    limit: Option<std::time::Duration>,
) -> io::Result<()> {
    let socket = is_socket(fd);
    while !data.is_empty() {
        let result = if socket {
            rustix::net::send(fd, data, SendFlags::NOSIGNAL)
        } else {
            rustix::io::write(fd, data)
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let mut pfd = [PollFd::new(&fd, PollFlags::OUT)];
                let timeout = limit.map(|l| rustix::event::Timespec {
                    tv_sec: l.as_secs() as i64,
                    tv_nsec: i64::from(l.subsec_nanos()),
                });
                match rustix::event::poll(&mut pfd, timeout.as_ref()) {
                    Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether `fd` is a socket (`cleat run -it`'s connection, given as a unit's stdin, is one).
pub fn is_socket(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
    })
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut bytes = frames(INPUT, b"ls\r");
        bytes.extend(resize_frame(40, 132));
        // Nothing to say, no frame.
        assert!(frames(INPUT, b"").is_empty());
        let mut r = FrameReader::default();
        let mut got = Vec::new();
        for b in bytes {
            r.push(&[b]);
            while let Some(f) = r.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            [Frame::Input(b"ls\r".to_vec()), Frame::Resize(40, 132)]
        );
        let big = vec![7u8; MAX_FRAME + 10];
        let mut r = FrameReader::default();
        r.push(&frames(INPUT, &big));
        let mut total = 0;
        while let Some(Frame::Input(d)) = r.next_frame().unwrap() {
            total += d.len();
        }
        assert_eq!(total, big.len());
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut r = FrameReader::default();
        r.push(&[b'x', 0, 0]);
        assert!(r.next_frame().is_err());
        let mut r = FrameReader::default();
        r.push(&[RESIZE, 0, 3, 1, 2, 3]);
        assert!(r.next_frame().is_err());
    }

    #[test]
    fn journal_text_drops_carriage_returns_before_newlines() {
        let mut j = JournalText::default();
        assert_eq!(j.convert(b"a\r\nb\r"), b"a\nb");
        assert_eq!(j.convert(b"\nc\rd"), b"\nc\rd");
    }
}
