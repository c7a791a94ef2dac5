//! The state of one TCP connection, apart from what drives it: bytes read and
//! not yet taken ([`Reader`]), bytes not yet taken by the kernel
//! ([`Writer`]), and the I/O that moves them, all non-blocking.
//!
//! Two drivers own a [`ConnState`] each and decide when to call it:
//! - the front end's reactor ([`Reactor`](super::Reactor)), on the JS
//!   thread, for connections whose bytes go to JS;
//! - a built-in handler's `may` coroutine ([`builtin`](super::builtin)), on
//!   the runtime's workers, for connections served without JS.
//!
//! A driver tells the state what the poller reported ([`Reader::readiness`],
//! then [`Writer::flush`] when writable); the state never waits.
//!
//! # Invariants
//! - Single owner: no locks. The driver owns the fd (and closes it); the
//!   state only uses it.
//! - Edge-triggered readiness: `readable` is set by a report and cleared
//!   only by evidence that the socket is drained (a short read, `EAGAIN`,
//!   the end). Reading stops early only when enough is buffered; the socket
//!   then stays `readable`, and the driver reads again when more is wanted,
//!   without waiting for an edge that will not come.
//! - After a hang-up report, a short read proves nothing (the end may follow
//!   the data in the same edge): reads go on to the end or `EAGAIN`.
//! - Bytes are taken in order, exactly once; bytes given back
//!   ([`Reader::unshift`]) come first again.
//! - The end is reported once as an error, then as EOF.
//! - Queued bytes are written in order, before any later send. After a write
//!   error the queue is dropped and every later send fails with that error.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use super::sys;

/// Spare room ensured before each read.
pub const READ_CHUNK: usize = 16 * 1024;

/// Most bytes asked of one read, when more are wanted.
const MAX_READ: usize = 256 * 1024;

/// An emptied read buffer larger than this is released, so that a large
/// frame does not pin its memory to an idle connection.
const KEEP_CAPACITY: usize = 4 * READ_CHUNK;

/// A queued chunk smaller than this takes later sends into itself.
const COALESCE: usize = 64 * 1024;

/// One connection: its fd and both directions.
pub struct ConnState {
    pub fd: RawFd,
    pub rx: Reader,
    pub tx: Writer,
}

impl ConnState {
    /// A connection on `fd`, which the caller owns and keeps open.
    pub fn new(fd: RawFd) -> ConnState {
        ConnState {
            fd,
            rx: Reader::default(),
            tx: Writer::default(),
        }
    }
}

/// Bytes read and not yet taken: `buf[pos..]`, then the end of the stream.
pub struct Reader {
    buf: Vec<u8>,
    pos: usize,
    /// `None` while the stream goes on; then `0` (EOF) or `-errno`.
    end: Option<i32>,
    /// The socket may hold bytes (or the end) not read yet.
    readable: bool,
    /// The peer hung up (or the socket failed): read on to the end.
    hung_up: bool,
}

impl Default for Reader {
    fn default() -> Reader {
        Reader {
            buf: Vec::new(),
            pos: 0,
            end: None,
            // Bytes may have arrived before the poller watched the socket: the
            // first read finds out (EAGAIN if not).
            readable: true,
            hung_up: false,
        }
    }
}

impl Reader {
    /// What the poller reported: the socket is readable, and maybe hung up.
    pub fn readiness(&mut self, readable: bool, hang_up: bool) {
        self.readable |= readable || hang_up;
        self.hung_up |= hang_up;
    }

    /// The socket may have more to read than what is buffered.
    pub fn may_read(&self) -> bool {
        self.readable && self.end.is_none()
    }

    /// Bytes buffered.
    pub fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffered bytes, oldest first.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Takes up to `max` buffered bytes (mutable: a handler may rewrite them
    /// in place before sending them on).
    pub fn take_mut(&mut self, max: usize) -> &mut [u8] {
        let n = self.len().min(max);
        let from = self.pos;
        self.pos += n;
        &mut self.buf[from..from + n]
    }

    /// Drops the first `n` buffered bytes (taken by copying [`Reader::bytes`]).
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.pos += n;
    }

    /// The end once reached, bytes buffered or not: `Some(0)` at EOF,
    /// `Some(-errno)` for an error.
    pub fn end(&self) -> Option<i32> {
        self.end
    }

    /// [`Reader::end`], reporting an error once (EOF after that).
    pub fn end_status(&mut self) -> Option<i32> {
        let end = self.end?;
        self.end = Some(0);
        Some(end)
    }

    /// The stream has ended (bytes may still be buffered).
    pub fn ended(&self) -> bool {
        self.end.is_some()
    }

    /// Puts back bytes taken but not used (they come first again), and an
    /// end that was reported but not seen (`end`: 0 for none or EOF).
    pub fn unshift(&mut self, data: &[u8], end: i32) {
        if end < 0 {
            self.end = Some(end);
        }
        if data.is_empty() {
            return;
        }
        if self.pos >= data.len() {
            self.pos -= data.len();
            self.buf[self.pos..self.pos + data.len()].copy_from_slice(data);
        } else {
            let mut buf = Vec::with_capacity(data.len() + self.len());
            buf.extend_from_slice(data);
            buf.extend_from_slice(self.bytes());
            self.buf = buf;
            self.pos = 0;
        }
    }

    /// The length of the first line within `max` bytes (its `\n` included).
    pub fn line(&self, max: usize) -> Option<usize> {
        let bytes = self.bytes();
        let within = &bytes[..bytes.len().min(max)];
        within.iter().position(|&b| b == b'\n').map(|at| at + 1)
    }

    /// Reads what the socket has until `want` bytes are buffered, the socket
    /// is drained, or the stream ends. Returns whether it read anything (or
    /// the end).
    pub fn fill(&mut self, fd: RawFd, want: usize) -> bool {
        let mut progress = false;
        while self.readable && self.end.is_none() && self.len() < want {
            let chunk = READ_CHUNK.max((want - self.len()).min(MAX_READ));
            self.make_room(chunk);
            match sys::recv_into(fd, &mut self.buf, chunk) {
                Ok(0) => {
                    self.end = Some(0);
                    self.readable = false;
                    progress = true;
                }
                Ok(n) => {
                    progress = true;
                    // A short read drained the socket: a later arrival raises
                    // a new edge. Not after a hang-up: its edge is spent.
                    if n < chunk && !self.hung_up {
                        self.readable = false;
                    }
                }
                Err(s) if s == -libc::EINTR => {}
                Err(s) if s == -libc::EAGAIN => self.readable = false,
                Err(s) => {
                    self.end = Some(s);
                    self.readable = false;
                    progress = true;
                }
            }
        }
        progress
    }

    /// Ensures `chunk` bytes of spare capacity, reusing taken room first.
    fn make_room(&mut self, chunk: usize) {
        if self.pos == self.buf.len() {
            if self.buf.capacity() > KEEP_CAPACITY.max(chunk) {
                self.buf = Vec::new();
            }
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.buf.capacity() - self.buf.len() < chunk {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(chunk);
    }
}

/// Bytes handed over and not yet taken by the kernel.
#[derive(Default)]
pub struct Writer {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the first chunk already written.
    written: usize,
    /// Bytes of `chunks` not written yet.
    queued: usize,
    error: Option<i32>,
    /// Writing was shut down: sends are refused.
    shut: bool,
    /// ...but the socket's shutdown waits for the queue to be written.
    shut_pending: bool,
}

impl Writer {
    /// Bytes queued, not yet in the kernel.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The error that ended writing, if any.
    pub fn error(&self) -> Option<i32> {
        self.error
    }

    /// Writes `data` at once as far as the kernel takes it (when nothing is
    /// queued ahead of it), then queues the rest while the queue holds at
    /// most `limit` bytes. Returns how many bytes of `data` were taken
    /// (written or queued), or the error of a write that failed here (which
    /// then fails every later call too); a queued write that fails later
    /// fails the next call.
    pub fn send(&mut self, fd: RawFd, data: &[u8], limit: usize) -> Result<usize, i32> {
        if let Some(status) = self.error {
            return Err(status);
        }
        if self.shut {
            return Err(-libc::EPIPE);
        }
        let mut taken = 0;
        if self.chunks.is_empty() {
            while taken < data.len() {
                match sys::send(fd, &data[taken..]) {
                    Ok(n) => taken += n,
                    Err(s) if s == -libc::EINTR => {}
                    Err(s) if s == -libc::EAGAIN => break,
                    Err(s) => {
                        // This call fails, as the socket's later ones will:
                        // its bytes did not all go out.
                        self.fail(s);
                        return Err(s);
                    }
                }
            }
        }
        let rest = &data[taken..];
        let n = rest.len().min(limit.saturating_sub(self.queued));
        if n > 0 {
            match self.chunks.back_mut() {
                Some(last) if last.len() < COALESCE => last.extend_from_slice(&rest[..n]),
                _ => self.chunks.push_back(rest[..n].to_vec()),
            }
            self.queued += n;
            taken += n;
        }
        Ok(taken)
    }

    /// Writes the queue until it is empty or the kernel buffer is full; then
    /// carries out a shutdown that waited for it. Returns whether anything
    /// changed (bytes written, or an error).
    pub fn flush(&mut self, fd: RawFd) -> bool {
        let mut progress = false;
        while let Some(front) = self.chunks.front() {
            match sys::send(fd, &front[self.written..]) {
                Ok(n) => {
                    progress = true;
                    self.written += n;
                    self.queued -= n;
                    if self.written == front.len() {
                        self.chunks.pop_front();
                        self.written = 0;
                    }
                }
                Err(s) if s == -libc::EINTR => {}
                Err(s) if s == -libc::EAGAIN => break,
                Err(s) => {
                    self.fail(s);
                    progress = true;
                    break;
                }
            }
        }
        if self.chunks.is_empty() && std::mem::take(&mut self.shut_pending) {
            // The queue is out (or lost): the shutdown can go; its failure
            // (the peer is gone) changes nothing.
            let _ = shutdown(fd, libc::SHUT_WR);
        }
        progress
    }

    /// Refuses later sends and shuts down writing once the queue is written.
    pub fn shut_down(&mut self, fd: RawFd) -> Result<(), i32> {
        self.shut = true;
        if self.chunks.is_empty() {
            shutdown(fd, libc::SHUT_WR)
        } else {
            self.shut_pending = true;
            Ok(())
        }
    }

    fn fail(&mut self, status: i32) {
        self.error = Some(status);
        self.chunks.clear();
        self.written = 0;
        self.queued = 0;
    }
}

/// `shutdown(2)`; `how` is `libc::SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
pub fn shutdown(fd: RawFd, how: libc::c_int) -> Result<(), i32> {
    // SAFETY: plain syscall on an fd the caller keeps open.
    if unsafe { libc::shutdown(fd, how) } < 0 {
        Err(sys::last_status())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn reads_stop_once_enough_is_buffered_and_resume_without_an_edge() {
        let (mut a, b) = pair();
        a.write_all(&vec![1u8; 3 * READ_CHUNK]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut conn = ConnState::new(b.as_raw_fd());
        assert!(conn.rx.fill(conn.fd, 1));
        assert_eq!(conn.rx.len(), READ_CHUNK, "one chunk read: enough for now");
        assert!(conn.rx.may_read(), "the socket may hold more");
        conn.rx.fill(conn.fd, 3 * READ_CHUNK);
        assert_eq!(conn.rx.len(), 3 * READ_CHUNK);
        a.write_all(b"\nend").unwrap();
        drop(a);
        std::thread::sleep(std::time::Duration::from_millis(20));
        conn.rx.readiness(true, true);
        conn.rx.fill(conn.fd, usize::MAX);
        assert!(conn.rx.ended());
        assert_eq!(conn.rx.line(usize::MAX), Some(3 * READ_CHUNK + 1));
        let taken = conn.rx.take_mut(3 * READ_CHUNK + 1).len();
        conn.rx.unshift(&[9, 9], 0);
        assert_eq!(conn.rx.len(), 5);
        assert_eq!(&conn.rx.bytes()[..2], &[9, 9]);
        assert_eq!(taken, 3 * READ_CHUNK + 1);
        conn.rx.consume(5);
        assert_eq!(conn.rx.end_status(), Some(0));
        conn.rx.unshift(&[], -libc::ECONNRESET);
        assert_eq!(conn.rx.end_status(), Some(-libc::ECONNRESET));
        assert_eq!(conn.rx.end_status(), Some(0), "an error is reported once");
    }

    #[test]
    fn a_send_to_a_peer_that_reset_fails_at_that_call_and_after() {
        let (a, b) = pair();
        let mut conn = ConnState::new(b.as_raw_fd());
        // Closing with unread data makes the kernel reset the connection.
        conn.tx.send(conn.fd, b"unread", 1024).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(a);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            conn.tx.send(conn.fd, b"important", 1024),
            Err(-libc::ECONNRESET)
        );
        assert!(conn.tx.send(conn.fd, b"later", 1024).is_err());
    }

    #[test]
    fn sends_queue_what_the_kernel_refuses_up_to_the_limit_and_flush_in_order() {
        let (mut a, b) = pair();
        let mut conn = ConnState::new(b.as_raw_fd());
        let big: Vec<u8> = (0..(8 << 20)).map(|i| (i % 251) as u8).collect();
        let taken = conn.tx.send(conn.fd, &big, 64 * 1024).unwrap();
        assert!(taken < big.len(), "8 MiB cannot all be taken");
        assert!(conn.tx.queued() <= 64 * 1024);
        let mut got = Vec::new();
        let mut sent = taken;
        let mut buf = vec![0u8; 1 << 16];
        while got.len() < big.len() {
            let n = a.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            conn.tx.flush(conn.fd);
            if sent < big.len() {
                sent += conn.tx.send(conn.fd, &big[sent..], 64 * 1024).unwrap();
            }
        }
        assert!(got == big, "bytes arrived out of order");
    }
}
