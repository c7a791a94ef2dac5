//! The front end's reactor: the sockets whose bytes go to JS (connected
//! clients, the connections of servers with JS handlers, in either mode),
//! driven by the JS thread itself.
//!
//! One poller (epoll or kqueue, see [`sys`](super::sys)) watches every such
//! socket and listener, edge-triggered. Its own fd is watched by Node's event
//! loop (`uv_poll`, in the bindings), so when anything is ready the loop calls
//! JS once, and JS calls [`Reactor::poll`]: one native call reads every ready
//! socket whose recv waits and hands back a batch of deliveries and
//! completions. Sends are made at once by the caller ([`Reactor::send`]); a
//! write that meets a full kernel buffer is queued (up to
//! [`SEND_QUEUE_LIMIT`] bytes) and written on the socket's writable edges.
//! No other thread is involved: no locks around sockets, no hand-off.
//!
//! Framing is done here, so that JS hears of a socket only when its recv can
//! complete: [`Frame::Any`] (what is there, at most `n` bytes),
//! [`Frame::Exactly`] (`n` bytes, or fewer at EOF) and [`Frame::Line`]
//! (through the next `\n`, at most `n` bytes).
//!
//! # Invariants
//! - Every call comes from the thread that runs JS (the main thread, or a
//!   sync greenlet's thread holding the baton): the owner serializes them.
//! - Completions are produced only by [`Reactor::poll`] (readiness events);
//!   a call made by JS returns its own outcome. So a wait that JS registers
//!   is never completed behind its back between two JS statements.
//! - A recv is armed only when its frame is not complete yet; once it is, the
//!   socket is queued for delivery and disarmed at delivery. Bytes not
//!   delivered stay in the socket's buffer, in order.
//! - A slot's generation changes when it is freed: a stale token (a socket
//!   closed, its slot reused) reaches nothing.

use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd};

use socket2::{Domain, Socket, Type};

use super::state::{self, ConnState};
use super::sys::{self, Events, Interest, Poller};
use super::{listener, status_of, MAX_DELIVERY};
use wire::*;

/// Bytes a socket may queue beyond what the kernel took; a sender waits for
/// room past that ([`Reactor::send`] takes only what fits).
pub const SEND_QUEUE_LIMIT: usize = 64 * 1024;

/// The layout of [`Reactor::poll`]'s output, named once for both sides.
pub mod wire {
    /// `f64`s at the start of a poll's output: entries, flags.
    pub const POLL_HEADER: usize = 2;
    /// `f64`s per poll entry: kind, key, status, offset, length.
    pub const POLL_ENTRY_WIDTH: usize = 5;
    /// Entry kind: a wait (`key`: its id) completed with `status`.
    pub const KIND_WAIT: f64 = 0.0;
    /// Entry kind: the recv of the socket in slot `key` completed: `status` 0
    /// with `length` bytes at `offset` (none: EOF), [`TAKE`] (the bytes are to be
    /// taken with [`take_bytes`](super::Reactor::take_bytes)), or `-errno`.
    pub const KIND_RECV: f64 = 1.0;
    /// Recv status: the frame is too large for the batch buffer.
    pub const TAKE: i32 = 1;
    /// Recv status: bytes delivered as with 0, and the recv (any bytes, the
    /// same `n`) stays armed: the socket is drained, its next bytes come with
    /// a poll, and the front end's next such recv need not call in.
    pub const ARMED: i32 = 2;
    /// Poll flag: more is pending, call again.
    pub const MORE: u32 = 1;
    /// Poll flag: a listener is out of descriptors; poll again in a while.
    pub const ACCEPT_STALLED: u32 = 2;
}

/// Frames larger than this are taken separately, not copied into the batch.
const TAKE_OVER: usize = 64 * 1024;

/// What a recv waits for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Frame {
    /// Whatever is there, at most `n` bytes (at least one).
    Any(usize),
    /// Exactly `n` bytes; fewer only if the stream ends first.
    Exactly(usize),
    /// Through the next `\n`, at most `n` bytes; what is left at the end.
    Line(usize),
}

impl Frame {
    /// Frame kinds as the front end names them: 0 any, 1 exactly, 2 line.
    pub fn from_kind(kind: u32, n: usize) -> Option<Frame> {
        match kind {
            0 => Some(Frame::Any(n.max(1))),
            1 => Some(Frame::Exactly(n)),
            2 => Some(Frame::Line(n.max(1))),
            _ => None,
        }
    }

    /// Bytes to have buffered before looking again.
    fn want(self) -> usize {
        match self {
            Frame::Any(_) => 1,
            Frame::Exactly(n) | Frame::Line(n) => n,
        }
    }
}

/// What a recv found.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv {
    /// The frame's bytes (empty at EOF).
    Bytes(Vec<u8>),
    /// `-errno`: the stream failed (reported once; EOF after).
    Failed(i32),
    /// Not complete: the recv is armed, its frame comes with a poll.
    Waiting,
}

/// How a frame completes, from what is buffered.
enum Outcome {
    /// The first `n` buffered bytes (0 with the stream ended: EOF).
    Bytes(usize),
    Failed(i32),
}

/// Names a socket or listener: its slot and the slot's generation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Token {
    pub index: u32,
    generation: u32,
}

impl Token {
    /// The token of slot `index` in its generation `generation`.
    pub fn new(index: u32, generation: u32) -> Token {
        Token { index, generation }
    }

    pub fn generation(self) -> u32 {
        self.generation
    }

    fn key(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    fn from_key(key: u64) -> Token {
        Token {
            index: key as u32,
            generation: (key >> 32) as u32,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Connecting; the wait id completes when it succeeds or fails.
    Connecting(u32),
    /// The connect failed (the front end closes it).
    Failed,
    Open,
    /// Closed by the front end: writing out its queue, then the fd closes.
    Closing,
}

struct Sock {
    socket: Socket,
    conn: ConnState,
    phase: Phase,
    /// Both ends, known once connected (and kept: a closed socket forgets them).
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    /// The recv waiting for its frame.
    recv: Option<Frame>,
    /// In the reactor's `ready` queue.
    ready: bool,
    /// Waits for the queue to fall to a threshold: wait id, threshold.
    drain_waits: Vec<(u32, usize)>,
    /// Waits for the fd to be closed, once closing.
    close_waits: Vec<u32>,
}

struct Listen {
    socket: Socket,
    /// Accepted, not yet taken by the front end.
    accepted: Vec<Token>,
    accept_wait: Option<u32>,
    /// Accepting ran out of descriptors (or memory): the pending connection
    /// stays in the backlog and no new edge will announce it.
    stalled: bool,
}

enum Item {
    Vacant,
    Socket(Box<Sock>),
    Listener(Box<Listen>),
}

struct Slot {
    generation: u32,
    item: Item,
}

pub struct Reactor {
    poller: Poller,
    events: Events,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Wait completions not yet handed over: wait id, status.
    done: VecDeque<(u32, i32)>,
    /// Sockets whose armed recv can complete.
    ready: VecDeque<Token>,
    /// Listeners to retry accepting on.
    stalled: Vec<Token>,
    /// Waits for every socket's queue to be written out ([`Reactor::flush_wait`]).
    flush_waits: Vec<u32>,
}

/// Where a poll writes its entries.
struct Out<'a> {
    meta: &'a mut [f64],
    bytes: &'a mut [u8],
    entries: usize,
    used: usize,
}

impl Out<'_> {
    fn has_room(&self) -> bool {
        POLL_HEADER + (self.entries + 1) * POLL_ENTRY_WIDTH <= self.meta.len()
    }

    fn push(&mut self, kind: f64, key: u32, status: i32, offset: usize, len: usize) {
        let at = POLL_HEADER + self.entries * POLL_ENTRY_WIDTH;
        self.meta[at..at + POLL_ENTRY_WIDTH].copy_from_slice(&[
            kind,
            f64::from(key),
            f64::from(status),
            offset as f64,
            len as f64,
        ]);
        self.entries += 1;
    }
}

impl Reactor {
    pub fn new() -> std::io::Result<Reactor> {
        Ok(Reactor {
            poller: Poller::new()?,
            events: Events::default(),
            slots: Vec::new(),
            free: Vec::new(),
            done: VecDeque::new(),
            flush_waits: Vec::new(),
            ready: VecDeque::new(),
            stalled: Vec::new(),
        })
    }

    /// The poller's fd: readable while events are pending.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.poller.fd()
    }

    fn insert(&mut self, item: Item) -> Token {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    item: Item::Vacant,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.item = item;
        Token {
            index,
            generation: slot.generation,
        }
    }

    /// Frees the slot of `token`, dropping (and so closing) what it held.
    fn remove(&mut self, token: Token) {
        let slot = &mut self.slots[token.index as usize];
        match std::mem::replace(&mut slot.item, Item::Vacant) {
            Item::Socket(s) => self.poller.delete(s.socket.as_raw_fd()),
            Item::Listener(l) => self.poller.delete(l.socket.as_raw_fd()),
            Item::Vacant => return,
        }
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(token.index);
    }

    fn sock(&mut self, token: Token) -> Option<&mut Sock> {
        match self.slots.get_mut(token.index as usize) {
            Some(Slot {
                generation,
                item: Item::Socket(s),
            }) if *generation == token.generation => Some(s),
            _ => None,
        }
    }

    /// The socket of `token` while the front end may use it.
    fn open(&mut self, token: Token) -> Result<&mut Sock, i32> {
        let sock = self.sock(token).ok_or(-libc::EBADF)?;
        match sock.phase {
            Phase::Open => Ok(sock),
            Phase::Connecting(_) => Err(-libc::ENOTCONN),
            Phase::Failed | Phase::Closing => Err(-libc::EBADF),
        }
    }

    fn listen_slot(&mut self, token: Token) -> Option<&mut Listen> {
        match self.slots.get_mut(token.index as usize) {
            Some(Slot {
                generation,
                item: Item::Listener(l),
            }) if *generation == token.generation => Some(l),
            _ => None,
        }
    }

    fn add_socket(&mut self, socket: Socket, phase: Phase) -> Result<Token, i32> {
        sys::prepare(socket.as_raw_fd());
        let mut sock = Box::new(Sock {
            conn: ConnState::new(socket.as_raw_fd()),
            socket,
            phase,
            local: None,
            peer: None,
            recv: None,
            ready: false,
            drain_waits: Vec::new(),
            close_waits: Vec::new(),
        });
        if phase == Phase::Open {
            sock.learn_addresses();
        }
        let fd = sock.socket.as_raw_fd();
        let token = self.insert(Item::Socket(sock));
        if let Err(status) = self.poller.add(fd, token.key(), Interest::ReadWrite) {
            self.remove(token);
            return Err(status);
        }
        Ok(token)
    }

    // --- Clients ---

    /// Starts connecting to `addr`; `wait_id` completes (through a poll) with
    /// the outcome.
    pub fn connect(&mut self, addr: SocketAddr, wait_id: u32) -> Result<Token, i32> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .map_err(|e| status_of(&e))?;
        socket.set_nonblocking(true).map_err(|e| status_of(&e))?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(status_of(&e)),
        }
        // Registering a connected (or failed) socket reports it writable at
        // once: the outcome comes with the next poll either way.
        self.add_socket(socket, Phase::Connecting(wait_id))
    }

    fn finish_connect(sock: &mut Sock, wait_id: u32, done: &mut VecDeque<(u32, i32)>) {
        let status = match sock.socket.take_error() {
            Ok(Some(e)) | Err(e) => status_of(&e),
            // Readiness without an error and without a peer: still connecting.
            Ok(None) if sock.socket.peer_addr().is_err() => return,
            Ok(None) => 0,
        };
        sock.phase = if status == 0 {
            sock.learn_addresses();
            Phase::Open
        } else {
            Phase::Failed
        };
        done.push_back((wait_id, status));
    }

    // --- Servers ---

    /// Binds and listens.
    pub fn listen(&mut self, addr: SocketAddr, backlog: u32) -> Result<Token, i32> {
        let socket = listener::socket(addr, backlog)?;
        socket.set_nonblocking(true).map_err(|e| status_of(&e))?;
        let fd = socket.as_raw_fd();
        let token = self.insert(Item::Listener(Box::new(Listen {
            socket,
            accepted: Vec::new(),
            accept_wait: None,
            stalled: false,
        })));
        if let Err(status) = self.poller.add(fd, token.key(), Interest::Read) {
            self.remove(token);
            return Err(status);
        }
        Ok(token)
    }

    pub fn listener_addr(&mut self, token: Token) -> Option<SocketAddr> {
        let l = self.listen_slot(token)?;
        l.socket.local_addr().ok()?.as_socket()
    }

    /// Completes `wait_id` (through a poll) once connections are accepted.
    /// `Ok(true)`: some are waiting already, take them now.
    pub fn accept_wait(&mut self, token: Token, wait_id: u32) -> Result<bool, i32> {
        let l = self.listen_slot(token).ok_or(-libc::EBADF)?;
        if !l.accepted.is_empty() {
            return Ok(true);
        }
        if l.accept_wait.is_some() {
            return Err(-libc::EALREADY);
        }
        l.accept_wait = Some(wait_id);
        Ok(false)
    }

    /// Withdraws the accept wait; `false` if there was none.
    pub fn cancel_accept(&mut self, token: Token) -> bool {
        self.listen_slot(token)
            .and_then(|l| l.accept_wait.take())
            .is_some()
    }

    /// The connections accepted since the last call.
    pub fn take_accepted(&mut self, token: Token) -> Vec<Token> {
        self.listen_slot(token)
            .map(|l| std::mem::take(&mut l.accepted))
            .unwrap_or_default()
    }

    /// Closes the listener now: its accept wait fails with `EBADF` (at the
    /// next poll); connections accepted and not taken are closed.
    pub fn close_listener(&mut self, token: Token) {
        let Some(l) = self.listen_slot(token) else {
            return;
        };
        let (untaken, wait) = (std::mem::take(&mut l.accepted), l.accept_wait.take());
        if let Some(id) = wait {
            self.done.push_back((id, -libc::EBADF));
        }
        self.remove(token);
        for conn in untaken {
            self.close(conn);
        }
    }

    fn accept(&mut self, token: Token) {
        let Some(l) = self.listen_slot(token) else {
            return;
        };
        let fd = l.socket.as_raw_fd();
        l.stalled = false;
        let mut accepted = Vec::new();
        let mut stalled = false;
        loop {
            match sys::accept(fd) {
                Ok(conn) => accepted.push(conn),
                Err(s) if s == -libc::EAGAIN => break,
                // The connection failed before we took it: next one.
                Err(s)
                    if [libc::EINTR, libc::ECONNABORTED, libc::EPROTO, libc::EPERM]
                        .contains(&-s) => {}
                // Out of descriptors or memory: the connection stays in the
                // backlog, and the edge is spent; retry after a pause.
                Err(_) => {
                    stalled = true;
                    break;
                }
            }
        }
        let mut tokens = Vec::with_capacity(accepted.len());
        for conn in accepted {
            // SAFETY: `accept` returned this fd, owned by nobody else.
            let socket = unsafe { Socket::from_raw_fd(conn) };
            if let Ok(t) = self.add_socket(socket, Phase::Open) {
                tokens.push(t);
            }
        }
        let Some(l) = self.listen_slot(token) else {
            return;
        };
        l.stalled = stalled;
        l.accepted.extend(tokens);
        let wait = if l.accepted.is_empty() {
            None
        } else {
            l.accept_wait.take()
        };
        if let Some(id) = wait {
            self.done.push_back((id, 0));
        }
        if stalled {
            self.stalled.push(token);
        }
    }

    // --- Connections ---

    pub fn local_addr(&mut self, token: Token) -> Option<SocketAddr> {
        self.sock(token)?.local
    }

    pub fn peer_addr(&mut self, token: Token) -> Option<SocketAddr> {
        self.sock(token)?.peer
    }

    /// Takes `frame` if it is complete (reading the socket if it may hold
    /// more), else arms the recv: its frame comes with a later poll.
    pub fn recv(&mut self, token: Token, frame: Frame) -> Result<Recv, i32> {
        let sock = self.open(token)?;
        if sock.recv.is_some() {
            return Err(-libc::EALREADY);
        }
        Ok(match sock.complete(frame) {
            Some(Outcome::Bytes(n)) => {
                let data = sock.conn.rx.bytes()[..n].to_vec();
                sock.conn.rx.consume(n);
                Recv::Bytes(data)
            }
            Some(Outcome::Failed(status)) => {
                sock.conn.rx.end_status();
                Recv::Failed(status)
            }
            None => {
                sock.recv = Some(frame);
                Recv::Waiting
            }
        })
    }

    /// Withdraws the armed recv (its bytes stay buffered for the next one).
    pub fn cancel_recv(&mut self, token: Token) {
        if let Some(sock) = self.sock(token) {
            sock.recv = None;
        }
    }

    /// Takes the first `n` buffered bytes: a frame a poll announced with
    /// [`TAKE`].
    pub fn take_bytes(&mut self, token: Token, n: usize) -> Vec<u8> {
        let Some(sock) = self.sock(token) else {
            return Vec::new();
        };
        let n = n.min(sock.conn.rx.len());
        let data = sock.conn.rx.bytes()[..n].to_vec();
        sock.conn.rx.consume(n);
        data
    }

    /// Puts back what a recv delivered but its caller did not take (it was
    /// interrupted meanwhile): bytes, or an error status. Disarms the recv.
    pub fn give_back(&mut self, token: Token, data: &[u8], status: i32) {
        if let Some(sock) = self.sock(token) {
            sock.recv = None;
            sock.conn.rx.unshift(data, status);
        }
    }

    /// Writes at once what the kernel takes and queues what fits in
    /// [`SEND_QUEUE_LIMIT`]; returns how many bytes of `data` that was (the
    /// caller waits for room before sending the rest), or `-errno` of an
    /// earlier write failure.
    pub fn send(&mut self, token: Token, data: &[u8]) -> Result<usize, i32> {
        let sock = self.open(token)?;
        sock.conn.tx.send(sock.conn.fd, data, SEND_QUEUE_LIMIT)
    }

    /// Bytes queued, not yet in the kernel.
    pub fn queued(&mut self, token: Token) -> usize {
        self.sock(token).map_or(0, |s| s.conn.tx.queued())
    }

    /// Completes `wait_id` (through a poll) once at most `threshold` bytes
    /// are queued: `Ok(true)` if that is so already.
    pub fn drain_wait(
        &mut self,
        token: Token,
        wait_id: u32,
        threshold: usize,
    ) -> Result<bool, i32> {
        let sock = self.open(token)?;
        if let Some(status) = sock.conn.tx.error() {
            return Err(status);
        }
        if sock.conn.tx.queued() <= threshold {
            return Ok(true);
        }
        sock.drain_waits.push((wait_id, threshold));
        Ok(false)
    }

    /// Withdraws a drain wait; `false` if it is not there.
    pub fn cancel_drain(&mut self, token: Token, wait_id: u32) -> bool {
        let Some(sock) = self.sock(token) else {
            return false;
        };
        let before = sock.drain_waits.len();
        sock.drain_waits.retain(|&(id, _)| id != wait_id);
        sock.drain_waits.len() != before
    }

    /// Shuts down reading now; writing once the queue is written (later
    /// sends fail with `EPIPE`).
    pub fn shutdown(&mut self, token: Token, how: Shutdown) -> Result<(), i32> {
        let sock = self.open(token)?;
        let fd = sock.conn.fd;
        if how != Shutdown::Write {
            state::shutdown(fd, libc::SHUT_RD)?;
        }
        if how != Shutdown::Read {
            sock.conn.tx.shut_down(fd)?;
        }
        Ok(())
    }

    /// Closes the connection: its recv and drain waits are dropped (the
    /// front end ends them itself); queued bytes are still written, then the
    /// fd closes. Returns the bytes still queued. Idempotent.
    pub fn close(&mut self, token: Token) -> usize {
        let Some(sock) = self.sock(token) else {
            return 0;
        };
        sock.recv = None;
        sock.drain_waits.clear();
        let queued = sock.conn.tx.queued();
        if sock.phase == Phase::Closing {
            return queued;
        }
        if queued == 0 || sock.phase != Phase::Open {
            self.remove(token);
            return 0;
        }
        sock.phase = Phase::Closing;
        queued
    }

    /// Closes a socket still writing out its queue after `close` (a peer
    /// that stopped reading), dropping what is unwritten: its fd is released.
    pub fn abandon(&mut self, token: Token) {
        if self.sock(token).is_some() {
            self.remove(token);
        }
    }

    /// Completes `wait_id` (through a poll) once the fd is closed: `true` if
    /// it is already.
    pub fn close_wait(&mut self, token: Token, wait_id: u32) -> bool {
        match self.sock(token) {
            Some(sock) => {
                sock.close_waits.push(wait_id);
                false
            }
            None => true,
        }
    }

    /// Completes `wait_id` (through a poll) once no open socket has bytes
    /// queued (written out, or failed): `true` if none has now. The front
    /// end keeps the process alive meanwhile, so that bytes a resolved
    /// sendall took are not lost when it would otherwise exit.
    pub fn flush_wait(&mut self, wait_id: u32) -> bool {
        if !self.any_queued() {
            return true;
        }
        self.flush_waits.push(wait_id);
        false
    }

    /// Whether an open socket has bytes queued (not failed).
    pub fn any_queued(&self) -> bool {
        self.slots.iter().any(|slot| match &slot.item {
            Item::Socket(sock) => sock.conn.tx.queued() > 0 && sock.conn.tx.error().is_none(),
            _ => false,
        })
    }

    /// A queue was written out (or failed, or its socket went): the flush waits end if it was the last.
    fn check_flushed(&mut self) {
        if self.flush_waits.is_empty() || self.any_queued() {
            return;
        }
        for id in std::mem::take(&mut self.flush_waits) {
            self.done.push_back((id, 0));
        }
    }

    // --- Polling ---

    /// Hands the front end what is ready: wait completions and recv
    /// deliveries, reading every socket reported ready. `meta` gets a header
    /// (entries, flags: [`MORE`], [`ACCEPT_STALLED`]) and
    /// [`POLL_ENTRY_WIDTH`] `f64`s per entry (kind, key, status, offset,
    /// length); `bytes` the delivered bytes. Never waits.
    pub fn poll(&mut self, meta: &mut [f64], bytes: &mut [u8]) -> Result<(), i32> {
        let mut out = Out {
            meta,
            bytes,
            entries: 0,
            used: 0,
        };
        let mut waited = false;
        let mut events_full = false;
        loop {
            self.emit(&mut out);
            if !out.has_room() || !self.done.is_empty() || !self.ready.is_empty() || waited {
                break;
            }
            for token in std::mem::take(&mut self.stalled) {
                self.accept(token);
            }
            self.poller.wait(&mut self.events, 0)?;
            waited = true;
            events_full = self.events.full();
            for i in 0..self.events.len() {
                let event = self.events.get(i);
                self.handle(event);
            }
            self.check_flushed();
        }
        let mut flags = 0;
        if !self.done.is_empty() || !self.ready.is_empty() || events_full {
            flags |= MORE;
        }
        if !self.stalled.is_empty() {
            flags |= ACCEPT_STALLED;
        }
        out.meta[0] = out.entries as f64;
        out.meta[1] = f64::from(flags);
        Ok(())
    }

    /// Moves pending completions and deliveries into `out`, while it has room.
    fn emit(&mut self, out: &mut Out<'_>) {
        while out.has_room() {
            let Some((id, status)) = self.done.pop_front() else {
                break;
            };
            out.push(KIND_WAIT, id, status, 0, 0);
        }
        while out.has_room() {
            let Some(&token) = self.ready.front() else {
                break;
            };
            if !self.deliver(token, out) {
                break;
            }
            self.ready.pop_front();
        }
    }

    /// Delivers the armed recv of `token`; `false` if the bytes do not fit
    /// in `out` (retried at the next poll).
    fn deliver(&mut self, token: Token, out: &mut Out<'_>) -> bool {
        let Some(sock) = self.sock(token) else {
            return true;
        };
        sock.ready = false;
        let Some(frame) = sock.recv else {
            return true;
        };
        match sock.outcome(frame) {
            None => {}
            Some(Outcome::Failed(status)) => {
                sock.recv = None;
                sock.conn.rx.end_status();
                out.push(KIND_RECV, token.index, status, 0, 0);
            }
            Some(Outcome::Bytes(n)) if n > TAKE_OVER => {
                sock.recv = None;
                out.push(KIND_RECV, token.index, TAKE, 0, n);
            }
            Some(Outcome::Bytes(n)) => {
                if out.used + n > out.bytes.len() {
                    sock.ready = true;
                    return false;
                }
                let at = out.used;
                out.bytes[at..at + n].copy_from_slice(&sock.conn.rx.bytes()[..n]);
                sock.conn.rx.consume(n);
                out.used += n;
                // A recv of whatever comes stays armed while the socket is
                // drained (its next bytes raise an edge): a request/response
                // loop then arms once, not once per message.
                let rx = &sock.conn.rx;
                let armed = matches!(frame, Frame::Any(_))
                    && n > 0
                    && rx.is_empty()
                    && !rx.may_read()
                    && !rx.ended();
                if !armed {
                    sock.recv = None;
                }
                out.push(KIND_RECV, token.index, if armed { ARMED } else { 0 }, at, n);
            }
        }
        true
    }

    fn handle(&mut self, event: sys::Event) {
        let token = Token::from_key(event.token);
        let done = &mut self.done;
        let Some(slot) = self.slots.get_mut(token.index as usize) else {
            return;
        };
        if slot.generation != token.generation {
            return;
        }
        let sock = match &mut slot.item {
            Item::Socket(sock) => sock,
            Item::Listener(_) => return self.accept(token),
            Item::Vacant => return,
        };
        sock.conn.rx.readiness(event.readable, event.hang_up);
        if let Phase::Connecting(wait_id) = sock.phase {
            if !(event.writable || event.hang_up) {
                return;
            }
            Reactor::finish_connect(sock, wait_id, done);
        }
        if event.writable && sock.conn.tx.queued() > 0 {
            sock.conn.tx.flush(sock.conn.fd);
            sock.drained(done);
            if sock.phase == Phase::Closing
                && (sock.conn.tx.queued() == 0 || sock.conn.tx.error().is_some())
            {
                for id in std::mem::take(&mut sock.close_waits) {
                    done.push_back((id, 0));
                }
                return self.remove(token);
            }
        }
        if let Some(frame) = sock.recv {
            if !sock.ready && sock.complete(frame).is_some() {
                sock.ready = true;
                self.ready.push_back(token);
            }
        }
    }
}

impl Sock {
    fn learn_addresses(&mut self) {
        self.local = self.socket.local_addr().ok().and_then(|a| a.as_socket());
        self.peer = self.socket.peer_addr().ok().and_then(|a| a.as_socket());
    }

    /// How `frame` completes from the buffered bytes, reading first if the
    /// socket may hold more; `None` if it cannot complete yet.
    fn complete(&mut self, frame: Frame) -> Option<Outcome> {
        if let Some(outcome) = self.outcome(frame) {
            return Some(outcome);
        }
        if self.conn.rx.may_read() && self.conn.rx.fill(self.conn.fd, frame.want()) {
            return self.outcome(frame);
        }
        None
    }

    /// How `frame` completes from what is buffered now (nothing is taken:
    /// the caller takes the bytes, or the error with `end_status`).
    fn outcome(&self, frame: Frame) -> Option<Outcome> {
        let rx = &self.conn.rx;
        let buffered = rx.len();
        let n = match frame {
            Frame::Any(max) if buffered > 0 => Some(buffered.min(max).min(MAX_DELIVERY)),
            Frame::Exactly(n) if buffered >= n => Some(n),
            Frame::Line(max) => rx.line(max).or((buffered >= max).then_some(max)),
            _ => None,
        };
        if let Some(n) = n {
            return Some(Outcome::Bytes(n));
        }
        // Once the stream has ended: an error first (bytes stay buffered for
        // the next recv), else what is left, then EOF.
        match rx.end()? {
            status if status < 0 => Some(Outcome::Failed(status)),
            _ => Some(Outcome::Bytes(buffered)),
        }
    }

    /// Completes the drain waits the queue now satisfies (or fails them).
    fn drained(&mut self, done: &mut VecDeque<(u32, i32)>) {
        let (queued, error) = (self.conn.tx.queued(), self.conn.tx.error());
        self.drain_waits.retain(|&(id, threshold)| match error {
            Some(status) => {
                done.push_back((id, status));
                false
            }
            None if queued <= threshold => {
                done.push_back((id, 0));
                false
            }
            None => true,
        });
    }
}
