//! The handshake between cleat and the container's first process, over a `SOCK_SEQPACKET`
//! socket pair (message boundaries for free; close-on-exec, so a successful `execve` shows up
//! on cleat's side as end-of-file).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

/// What one side tells the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Child → parent: the container is set up and waits for `Go`.
    Ready,
    /// Parent → child: exec the payload now.
    Go,
    /// Child → parent: setting up failed; the child exits.
    SetupFailed(String),
    /// Child → parent: the payload could not be exec'd; the child exits with `code`.
    ExecFailed { code: u8, message: String },
}

/// The two ends: `(parent, child)`.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

fn encode(msg: &Message) -> Vec<u8> {
    match msg {
        Message::Ready => b"R".to_vec(),
        Message::Go => b"G".to_vec(),
        Message::SetupFailed(text) => [b"E".as_slice(), text.as_bytes()].concat(),
        Message::ExecFailed { code, message } => {
            [b"X".as_slice(), &[*code], message.as_bytes()].concat()
        }
    }
}

fn decode(buf: &[u8]) -> io::Result<Message> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match buf {
        [b'R'] => Ok(Message::Ready),
        [b'G'] => Ok(Message::Go),
        [b'E', rest @ ..] => Ok(Message::SetupFailed(text(rest))),
        [b'X', code, rest @ ..] => Ok(Message::ExecFailed {
            code: *code,
            message: text(rest),
        }),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "garbled message from the container's first process",
        )),
    }
}

/// Sends `msg` with a descriptor attached (`SCM_RIGHTS`).
pub fn send_with_fd(fd: &OwnedFd, msg: &Message, attached: BorrowedFd<'_>) -> io::Result<()> {
    let bytes = encode(msg);
    let fds = [attached];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        fd,
        &[io::IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// The next message and the descriptor sent with it, if any (see [`recv`]).
pub fn recv_with_fd(fd: &OwnedFd) -> io::Result<(Option<Message>, Option<OwnedFd>)> {
    let mut buf = [0u8; 4096];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        match rustix::net::recvmsg(
            fd,
            &mut [io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(r) => {
                let mut attached = None;
                for message in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(fds) = message {
                        for fd in fds {
                            attached.get_or_insert(fd);
                        }
                    }
                }
                if r.bytes == 0 {
                    return Ok((None, attached));
                }
                return Ok((Some(decode(&buf[..r.bytes])?), attached));
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub fn send(fd: &OwnedFd, msg: &Message) -> io::Result<()> {
    let bytes = encode(msg);
    rustix::net::send(fd, &bytes, SendFlags::NOSIGNAL)?;
    Ok(())
}

/// The next message, or `None` at end-of-file (the other side exec'd or exited).
pub fn recv(fd: &OwnedFd) -> io::Result<Option<Message>> {
    let mut buf = [0u8; 4096];
    loop {
        match rustix::net::recv(fd, &mut buf, RecvFlags::empty()) {
            Ok((0, _)) => return Ok(None),
            Ok((n, _)) => return decode(&buf[..n]).map(Some),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_eof_is_none() {
        let (a, b) = pair().unwrap();
        for msg in [
            Message::Ready,
            Message::Go,
            Message::SetupFailed("mounting proc on /proc: EPERM".into()),
            Message::ExecFailed {
                code: 127,
                message: "not found".into(),
            },
        ] {
            send(&a, &msg).unwrap();
            assert_eq!(recv(&b).unwrap(), Some(msg));
        }
        drop(a);
        assert_eq!(recv(&b).unwrap(), None);
    }
}
