//! A TCP connection driven by the front end: one coroutine per connection
//! connects it (outgoing), reads ahead, finishes writes that met a full
//! kernel buffer, and closes it.
//!
//! The front end's calls ([`Conn::try_recv`], [`Conn::recv_wait`],
//! [`Conn::send`], [`Conn::close`]...) never wait. Only [`Conn::send`]
//! performs I/O: it writes at once on the caller's thread when no write is
//! under way (non-blocking, like libuv's `uv_try_write`), which spares a
//! hand-off to a runtime thread per message. The coroutine waits on the
//! socket's readiness or on its waker ([`Conn::close`], a read-ahead that
//! must resume).
//!
//! # Invariants
//! - At most one recv waits at a time; its result, or the error that ends
//!   it, is pushed to the inbox under this lock ([`Inbox`] invariants).
//! - Bytes read are delivered in order, exactly once: to the waiting recv, or
//!   kept in `rbuf` until the next one.
//! - Sends are queued (write-behind, like a larger kernel send buffer) and
//!   written in order; `queued` counts the bytes not yet in the kernel, and a
//!   drain wait completes once it is at most its threshold. After a write
//!   error the queue is dropped, drain waits fail and later sends fail with
//!   that error.
//! - Closing keeps the queue: the coroutine writes it out, then closes the
//!   fd and completes the close waits.
//! - No system call is made under the lock, so the front end never waits
//!   for one: the coroutine alone reads (into its own buffer) and closes;
//!   one writer at a time (`writing`: a sender or the coroutine) writes,
//!   until the queue is empty or the kernel buffer is full. After a full
//!   buffer the queue is the coroutine's, resumed by the writable edge;
//!   senders only append to a queue that is not empty.
//! - The coroutine closes the fd only once closed and no write is under way;
//!   `fd_open` turns false under the lock before it does, and `shutdown`
//!   uses the fd only under the lock while `fd_open` holds.

use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use may::io::{WaitIo, WaitIoWaker};
use may::net::TcpStream;
use socket2::{Domain, SockRef, Socket, Type};

use super::sys::{self, MAY_HANG_UP};
use super::{go, last_status, status_of, Inbox, Net, MAX_DELIVERY, READ_AHEAD};

/// Spare room ensured before each read.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Connecting; the wait id is completed when it succeeds or fails.
    Connecting(u32),
    Open,
    Closed,
}

struct Chunk {
    /// Shared with the writer, which writes it outside the lock.
    data: Arc<Vec<u8>>,
    written: usize,
}

struct State {
    phase: Phase,
    fd_open: bool,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    /// Bytes read and not yet delivered: `rbuf[rpos..]`.
    rbuf: Vec<u8>,
    rpos: usize,
    /// `None` while the read side is open; then `0` (EOF) or `-errno`. An
    /// error is reported once, then reads see EOF.
    read_end: Option<i32>,
    /// The recv waiting for data: wait id, most bytes wanted.
    recv_wait: Option<(u32, usize)>,
    /// The coroutine stopped reading because `READ_AHEAD` bytes are waiting.
    read_paused: bool,
    out: VecDeque<Chunk>,
    /// Bytes of `out` not written yet.
    queued: usize,
    /// Waits for `queued` to fall to a threshold: wait id, threshold.
    drain_waits: Vec<(u32, usize)>,
    /// Waits for the fd to be closed once closing.
    close_waits: Vec<u32>,
    /// A writer (a sender or the coroutine) owns the write side.
    writing: bool,
    /// Someone found `writing` set: the writer must try once more before
    /// letting go, since the readiness edge that sent them is spent.
    write_again: bool,
    write_error: Option<i32>,
    /// Writing was shut down by the front end: sends are refused.
    write_shut: bool,
    /// ...but the socket's shutdown waits for the queue to be written.
    write_shut_pending: bool,
}

/// What [`Conn::try_recv`] found.
pub enum TryRecv {
    Data(Vec<u8>),
    Eof,
    /// `-errno`.
    Error(i32),
    /// Nothing yet: wait with [`Conn::recv_wait`].
    Empty,
}

pub struct Conn {
    fd: RawFd,
    state: Mutex<State>,
    waker: WaitIoWaker,
    inbox: Arc<Inbox>,
}

impl Conn {
    fn new(stream: &TcpStream, phase: Phase, net: &Net) -> Arc<Conn> {
        Arc::new(Conn {
            fd: stream.as_raw_fd(),
            state: Mutex::new(State {
                phase,
                fd_open: true,
                local: stream.local_addr().ok(),
                peer: stream.peer_addr().ok(),
                rbuf: Vec::new(),
                rpos: 0,
                read_end: None,
                recv_wait: None,
                read_paused: false,
                out: VecDeque::new(),
                queued: 0,
                drain_waits: Vec::new(),
                close_waits: Vec::new(),
                writing: false,
                write_again: false,
                write_shut: false,
                write_shut_pending: false,
                write_error: None,
            }),
            waker: stream.waker(),
            inbox: net.inbox.clone(),
        })
    }

    /// Serves a connection accepted by a server.
    pub fn accepted(stream: TcpStream, net: &Net) -> Arc<Conn> {
        let conn = Conn::new(&stream, Phase::Open, net);
        let serving = conn.clone();
        // SAFETY: `run` does non-blocking I/O and short lock sections, waits
        // only through `wait_io`, keeps its buffers on the heap, touches no
        // thread-local storage.
        // Accepted by a runtime coroutine: the runtime is running, and a
        // failure would only drop the stream (closing the connection).
        drop(unsafe { go(move || serving.run(stream, None)) });
        conn
    }

    /// Starts connecting to `addr`; `wait_id` is completed with the outcome.
    pub fn connect(addr: SocketAddr, wait_id: u32, net: &Net) -> Result<Arc<Conn>, i32> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .map_err(|e| status_of(&e))?;
        sys::prepare(socket.as_raw_fd());
        // SAFETY: the fd comes from `into_raw_fd` of a socket we own; the
        // stream takes over its ownership (and makes it non-blocking).
        let stream = unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) };
        let conn = Conn::new(&stream, Phase::Connecting(wait_id), net);
        let serving = conn.clone();
        // SAFETY: as in `accepted`.
        drop(unsafe { go(move || serving.run(stream, Some(addr))) }.map_err(|e| status_of(&e))?);
        Ok(conn)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No critical section can panic between two consistent states.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.lock().local
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.lock().peer
    }

    /// Takes up to `max` bytes read ahead, or the end of the stream.
    pub fn try_recv(&self, max: usize) -> TryRecv {
        let mut st = self.lock();
        if let Err(status) = st.check_open() {
            return TryRecv::Error(status);
        }
        if st.recv_wait.is_some() {
            return TryRecv::Error(-libc::EALREADY);
        }
        let buffered = st.rbuf.len() - st.rpos;
        let result = if buffered > 0 {
            let n = buffered.min(max).min(MAX_DELIVERY);
            let data = st.rbuf[st.rpos..st.rpos + n].to_vec();
            st.rpos += n;
            TryRecv::Data(data)
        } else {
            match st.read_end {
                None => TryRecv::Empty,
                Some(0) => TryRecv::Eof,
                Some(status) => {
                    st.read_end = Some(0);
                    TryRecv::Error(status)
                }
            }
        };
        self.resume_reading(&mut st);
        result
    }

    /// Waits for up to `max` bytes: `wait_id` is completed with them, with
    /// an empty result at EOF, or with `-errno`.
    pub fn recv_wait(&self, wait_id: u32, max: usize) -> Result<(), i32> {
        let mut st = self.lock();
        st.check_open()?;
        if st.recv_wait.is_some() {
            return Err(-libc::EALREADY);
        }
        st.recv_wait = Some((wait_id, max.max(1)));
        let mut woken = Vec::new();
        self.deliver(&mut st, &mut woken);
        self.resume_reading(&mut st);
        drop(st);
        self.inbox.wake(woken);
        Ok(())
    }

    /// Withdraws the waiting recv. `false` if there was none: its result is
    /// in the inbox already.
    pub fn cancel_recv(&self) -> bool {
        self.lock().recv_wait.take().is_some()
    }

    /// Queues a copy of `data` and, if the queue was empty and nobody is
    /// writing, writes it at once on this thread until the kernel buffer is
    /// full. Returns the bytes still queued (or `-errno` of an earlier write
    /// failure; a failure of this write is reported by the next call).
    pub fn send(&self, data: &[u8]) -> Result<usize, i32> {
        let mut st = self.lock();
        st.check_open()?;
        if let Some(status) = st.write_error {
            return Err(status);
        }
        if st.write_shut {
            return Err(-libc::EPIPE);
        }
        if data.is_empty() {
            return Ok(st.queued);
        }
        // A queue left over means the kernel buffer was full: the coroutine
        // writes on when the socket becomes writable.
        let idle = st.out.is_empty() && !st.writing;
        st.out.push_back(Chunk {
            data: Arc::new(data.to_vec()),
            written: 0,
        });
        st.queued += data.len();
        if !idle {
            return Ok(st.queued);
        }
        drop(st);
        let mut woken = Vec::new();
        let queued = self.write_out(&mut woken);
        self.inbox.wake(woken);
        Ok(queued)
    }

    /// Completes `wait_id` once at most `threshold` bytes are queued (0 or
    /// `-errno` if writing fails or the connection is closed first).
    pub fn drain_wait(&self, wait_id: u32, threshold: usize) -> Result<(), i32> {
        let mut st = self.lock();
        st.check_open()?;
        if let Some(status) = st.write_error {
            return Err(status);
        }
        if st.queued <= threshold {
            self.inbox.complete(wait_id, 0, &[]);
        } else {
            st.drain_waits.push((wait_id, threshold));
        }
        Ok(())
    }

    /// Withdraws a drain wait; `false` if it has completed.
    pub fn cancel_drain(&self, wait_id: u32) -> bool {
        let mut st = self.lock();
        let before = st.drain_waits.len();
        st.drain_waits.retain(|&(id, _)| id != wait_id);
        st.drain_waits.len() != before
    }

    /// Shuts down reading now; shuts down writing once the queued bytes are
    /// written (later sends fail with `EPIPE`).
    pub fn shutdown(&self, how: Shutdown) -> Result<(), i32> {
        let mut st = self.lock();
        st.check_open()?;
        if !st.fd_open {
            return Err(-libc::EBADF);
        }
        if how != Shutdown::Write {
            self.shutdown_now(&st, Shutdown::Read)?;
        }
        if how != Shutdown::Read {
            st.write_shut = true;
            if st.out.is_empty() && !st.writing {
                self.shutdown_now(&st, Shutdown::Write)?;
            } else {
                st.write_shut_pending = true;
            }
        }
        Ok(())
    }

    /// Called under the lock, with `fd_open` checked.
    fn shutdown_now(&self, st: &State, how: Shutdown) -> Result<(), i32> {
        debug_assert!(st.fd_open);
        // SAFETY: the fd is open while `fd_open` holds, and the caller holds
        // the lock that the coroutine takes to close it.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        SockRef::from(&fd).shutdown(how).map_err(|e| status_of(&e))
    }

    /// Closes the connection: pending recv and drain waits fail with
    /// `EBADF`; queued bytes are still written, then the coroutine closes the
    /// fd. Returns the bytes still queued. Idempotent.
    pub fn close(&self) -> usize {
        let mut st = self.lock();
        if st.phase == Phase::Closed {
            return st.queued;
        }
        let connecting = match st.phase {
            Phase::Connecting(id) => Some(id),
            _ => None,
        };
        st.phase = Phase::Closed;
        let mut failed: Vec<(u32, i32)> = st
            .drain_waits
            .drain(..)
            .map(|(id, _)| (id, -libc::EBADF))
            .collect();
        failed.extend(st.recv_wait.take().map(|(id, _)| (id, -libc::EBADF)));
        failed.extend(connecting.map(|id| (id, -libc::ECANCELED)));
        self.inbox.push_all(&failed);
        let queued = st.queued;
        drop(st);
        self.inbox.wake(failed.iter().map(|&(id, _)| id));
        self.waker.wakeup();
        queued
    }

    /// Completes `wait_id` once the fd is closed (after `close`, once the
    /// queue is written or writing failed).
    pub fn close_wait(&self, wait_id: u32) {
        let mut st = self.lock();
        if st.fd_open {
            st.close_waits.push(wait_id);
        } else {
            self.inbox.complete(wait_id, 0, &[]);
        }
    }

    /// Writes queued chunks, outside the lock, until none is left or the
    /// kernel buffer is full; senders and the coroutine both call it, and
    /// whoever finds a write under way leaves it to that writer. Returns the
    /// bytes still queued.
    fn write_out(&self, woken: &mut Vec<u32>) -> usize {
        let mut st = self.lock();
        if st.writing {
            st.write_again = true;
            return st.queued;
        }
        if !st.fd_open || matches!(st.phase, Phase::Connecting(_)) || st.out.is_empty() {
            return st.queued;
        }
        st.writing = true;
        st.write_again = false;
        while let Some(front) = st.out.front() {
            let (data, from) = (front.data.clone(), front.written);
            drop(st);
            // The fd stays open while `writing` is set (the coroutine closes
            // it only after).
            let (n, status) = match sys::send(self.fd, &data[from..]) {
                Ok(n) => (n as isize, 0),
                Err(status) => (-1, status),
            };
            st = self.lock();
            if n >= 0 {
                // Only the writer removes chunks, so the front is still `data`.
                let front = st
                    .out
                    .front_mut()
                    .expect("the writer's chunk is still queued");
                front.written += n as usize;
                if front.written == front.data.len() {
                    st.out.pop_front();
                }
                st.queued -= n as usize;
                continue;
            }
            if status == -libc::EINTR
                || (status == -libc::EAGAIN && std::mem::take(&mut st.write_again))
            {
                continue;
            }
            if status != -libc::EAGAIN {
                st.write_error = Some(status);
                st.out.clear();
                st.queued = 0;
            }
            // On EAGAIN the coroutine resumes when the socket is writable.
            break;
        }
        st.writing = false;
        if st.write_shut_pending && (st.out.is_empty() || st.write_error.is_some()) {
            st.write_shut_pending = false;
            // The queue is out (or lost): the deferred shutdown can go; its
            // failure (the peer is gone) changes nothing.
            let _ = self.shutdown_now(&st, Shutdown::Write);
        }
        let (queued, error) = (st.queued, st.write_error);
        let mut done = Vec::new();
        st.drain_waits.retain(|&(id, threshold)| match error {
            Some(status) => {
                done.push((id, status));
                false
            }
            None if queued <= threshold => {
                done.push((id, 0));
                false
            }
            None => true,
        });
        self.inbox.push_all(&done);
        woken.extend(done.iter().map(|&(id, _)| id));
        if st.phase == Phase::Closed && (st.out.is_empty() || st.write_error.is_some()) {
            // The coroutine waits for the queue to be out to close the fd.
            // Not before: a queue the peer does not read would wake it over
            // and over (it waits for writability then).
            self.waker.wakeup();
        }
        queued
    }

    /// Reads what the socket has into `chunk`, outside the lock, up to
    /// `room` bytes. Returns the end of the stream if it was reached, and
    /// whether reading stopped only for lack of room (the socket may hold
    /// more, and no new edge will announce it). After a hang-up was
    /// signalled, reads on to the end: its edge is spent.
    fn read_ahead(&self, chunk: &mut Vec<u8>, room: usize, hung_up: bool) -> (Option<i32>, bool) {
        chunk.clear();
        while chunk.len() < room {
            if chunk.capacity() == chunk.len() {
                chunk.reserve(READ_CHUNK);
            }
            let len = chunk.len();
            let spare = (chunk.capacity() - len).min(room - len);
            // SAFETY: only this coroutine reads or closes the fd; the spare
            // capacity is writable for `spare` bytes and only the `n` bytes
            // received are added to the length.
            let n = unsafe {
                let n = libc::recv(
                    self.fd,
                    chunk.as_mut_ptr().add(len).cast(),
                    spare,
                    libc::MSG_DONTWAIT,
                );
                if n > 0 {
                    chunk.set_len(len + n as usize);
                }
                n
            };
            if n > 0 {
                // A short read emptied the socket of data: a later arrival
                // raises a new edge, so no EAGAIN probe is needed, unless the
                // end (or an error) already came with the edge we woke for.
                if (n as usize) < spare && !hung_up {
                    return (None, false);
                }
            } else if n == 0 {
                return (Some(0), false);
            } else {
                match last_status() {
                    s if s == -libc::EINTR => {}
                    s if s == -libc::EAGAIN => return (None, false),
                    s => return (Some(s), false),
                }
            }
        }
        (None, true)
    }

    /// Moves what was read into the buffer, pausing the read-ahead when full.
    fn take_read(st: &mut State, chunk: &[u8], end: Option<i32>) {
        if !chunk.is_empty() {
            if st.rpos == st.rbuf.len() {
                st.rbuf.clear();
                st.rpos = 0;
            } else if st.rpos > st.rbuf.len() / 2 {
                let rpos = st.rpos;
                st.rbuf.drain(..rpos);
                st.rpos = 0;
            }
            st.rbuf.extend_from_slice(chunk);
        }
        if end.is_some() && st.read_end.is_none() {
            st.read_end = end;
        }
    }

    /// Completes the waiting recv if there is anything to give it.
    fn deliver(&self, st: &mut State, woken: &mut Vec<u32>) {
        let Some((wait_id, max)) = st.recv_wait else {
            return;
        };
        let buffered = st.rbuf.len() - st.rpos;
        if buffered > 0 {
            let n = buffered.min(max).min(MAX_DELIVERY);
            self.inbox.push(wait_id, 0, &st.rbuf[st.rpos..st.rpos + n]);
            st.rpos += n;
        } else if let Some(end) = st.read_end {
            self.inbox.push(wait_id, end, &[]);
            st.read_end = Some(0);
        } else {
            return;
        }
        st.recv_wait = None;
        woken.push(wait_id);
    }

    /// Restarts a paused read-ahead once the front end has taken enough.
    fn resume_reading(&self, st: &mut State) {
        if st.read_paused && st.rbuf.len() - st.rpos < READ_AHEAD {
            st.read_paused = false;
            self.waker.wakeup();
        }
    }

    /// The coroutine: connect if asked, then read, write and wait until
    /// closed.
    fn run(&self, stream: TcpStream, connect_to: Option<SocketAddr>) {
        if let Some(addr) = connect_to {
            if !self.finish_connect(&stream, addr) {
                self.lock().fd_open = false;
                return;
            }
        }
        let mut woken = Vec::new();
        let mut chunk = Vec::new();
        // The peer hung up or failed: epoll said so once (edge-triggered).
        let mut hung_up = false;
        loop {
            let mut st = self.lock();
            if st.phase == Phase::Closed {
                if !st.writing && st.out.is_empty() {
                    st.fd_open = false;
                    let waits = std::mem::take(&mut st.close_waits);
                    self.inbox
                        .push_all(&waits.iter().map(|&id| (id, 0)).collect::<Vec<_>>());
                    drop(st);
                    self.inbox.wake(waits);
                    break;
                }
                // Write out what is queued; the writer wakes us when done.
                drop(st);
                self.write_out(&mut woken);
                self.inbox.wake(woken.drain(..));
                stream.wait_io();
                continue;
            }
            let buffered = st.rbuf.len() - st.rpos;
            let room = if st.read_end.is_none() {
                READ_AHEAD.saturating_sub(buffered)
            } else {
                0
            };
            st.read_paused = st.read_end.is_none() && room == 0;
            drop(st);
            let mut unread = false;
            if room > 0 {
                let (end, out_of_room) = self.read_ahead(&mut chunk, room, hung_up);
                let mut st = self.lock();
                Conn::take_read(&mut st, &chunk, end);
                self.deliver(&mut st, &mut woken);
                // The socket may hold more: read on at once if a delivery made
                // room, else pause until the front end takes bytes (whose
                // `resume_reading` wakes us).
                let full = st.rbuf.len() - st.rpos >= READ_AHEAD;
                unread = out_of_room && !full;
                st.read_paused = out_of_room && full;
            }
            self.write_out(&mut woken);
            self.inbox.wake(woken.drain(..));
            if !unread {
                hung_up |= stream.wait_io() & MAY_HANG_UP != 0;
            }
        }
        drop(stream);
    }

    /// Connects the stream; completes the connect wait. `false` if the
    /// connection failed or was closed meanwhile.
    fn finish_connect(&self, stream: &TcpStream, addr: SocketAddr) -> bool {
        let sock = SockRef::from(stream.inner());
        let mut outcome = match sock.connect(&addr.into()) {
            Ok(()) => Some(0),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => None,
            Err(e) => Some(status_of(&e)),
        };
        while outcome.is_none() {
            stream.wait_io();
            if self.lock().phase == Phase::Closed {
                return false;
            }
            outcome = match sock.take_error() {
                Ok(Some(e)) | Err(e) => Some(status_of(&e)),
                // Readiness without an error and a peer means "still connecting".
                Ok(None) => stream.peer_addr().ok().map(|_| 0),
            };
        }
        let status = outcome.unwrap_or(-libc::EIO);
        let mut st = self.lock();
        let Phase::Connecting(wait_id) = st.phase else {
            return false;
        };
        if status == 0 {
            st.phase = Phase::Open;
            st.local = stream.local_addr().ok();
            st.peer = stream.peer_addr().ok();
        } else {
            st.phase = Phase::Closed;
        }
        self.inbox.complete(wait_id, status, &[]);
        status == 0
    }
}

impl State {
    fn check_open(&self) -> Result<(), i32> {
        match self.phase {
            Phase::Open => Ok(()),
            Phase::Connecting(_) => Err(-libc::ENOTCONN),
            Phase::Closed => Err(-libc::EBADF),
        }
    }
}
