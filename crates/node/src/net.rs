//! Sockets and stream servers: type conversion over `greenthread_runtime::net`.
//!
//! Sockets whose bytes go to JS live in the env's [`Reactor`], driven on the
//! JS thread: Node's loop watches the reactor's poller fd (`uv_poll`, see
//! [`crate::uv`]) and calls the `onReady` function given to [`NativeNet`],
//! which calls [`NativeNet::poll`]. Built-in handlers run on the runtime's
//! `may` workers ([`NativeServer`]); their waits complete through the hub's
//! inbox, drained by [`NativeNet::drain`].
//!
//! Failures are returned as negative errno numbers (the front end builds
//! Node-style errors with `code`).

use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use greenthread_runtime::net::{
    parse_addr, wire, Frame, Handler, Net, Reactor, Recv, Server, Token, ENTRY_WIDTH, MAX_DELIVERY,
    SEND_QUEUE_LIMIT,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::hub::NativeHub;

/// A recv armed (its frame comes with a poll), or a wait registered.
const WAITING: i32 = 1;
/// A wait that needs no waiting: it is satisfied already.
const DONE: i32 = 1;

#[napi(object)]
pub struct SocketAddress {
    pub address: String,
    pub family: String,
    pub port: u32,
}

fn address(addr: SocketAddr) -> SocketAddress {
    SocketAddress {
        address: addr.ip().to_string(),
        family: if addr.is_ipv4() { "IPv4" } else { "IPv6" }.to_string(),
        port: u32::from(addr.port()),
    }
}

fn socket_addr(host: &str, port_number: u32) -> Result<SocketAddr> {
    let port = u16::try_from(port_number).map_err(|_| {
        Error::new(
            Status::InvalidArg,
            format!("port {port_number} is out of range"),
        )
    })?;
    parse_addr(host, port)
        .ok_or_else(|| Error::new(Status::InvalidArg, format!("{host:?} is not an IP address")))
}

fn status(result: std::result::Result<(), i32>) -> i32 {
    result.err().unwrap_or(0)
}

/// `DONE`, 0 (registered) or `-errno`.
fn wait_status(result: std::result::Result<bool, i32>) -> i32 {
    match result {
        Ok(true) => DONE,
        Ok(false) => 0,
        Err(status) => status,
    }
}

/// The env's reactor, shared by its sockets. Every call comes from the
/// thread running JS, so the lock is never contended; it makes the sharing
/// sound whichever thread that is (a sync greenlet's, holding the baton).
#[derive(Clone)]
pub(crate) struct Shared(pub(crate) Arc<Mutex<Reactor>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Reactor> {
        // No reactor call panics between two consistent states.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The socket side of one hub.
#[napi]
pub struct NativeNet {
    net: Arc<Net>,
    reactor: Shared,
}

#[napi]
impl NativeNet {
    /// `onReady` is called (without arguments, from Node's loop) whenever
    /// sockets are ready: it should call `poll` until no `MORE` is flagged.
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, hub: &NativeHub, on_ready: Function<(), ()>) -> Result<Self> {
        let reactor = Reactor::new().map_err(|e| {
            Error::new(
                Status::GenericFailure,
                format!("greenthread: cannot create the socket poller: {e}"),
            )
        })?;
        let fd = reactor.fd();
        let reactor = Shared(Arc::new(Mutex::new(reactor)));
        crate::uv::watch(&env, fd, reactor.0.clone(), &on_ready, "greenthread.net")?;
        Ok(NativeNet {
            net: Arc::new(Net::new(hub.remote())),
            reactor,
        })
    }

    /// Moves the built-in servers' completed waits into `meta` (4 f64s each:
    /// wait id, status, offset, length) and `bytes`; returns how many.
    #[napi(catch_unwind)]
    pub fn drain(&self, mut meta: Float64ArraySlice, mut bytes: Uint8ArraySlice) -> u32 {
        // SAFETY: both typed arrays are owned by the JS caller, alive for this
        // synchronous call, and nothing else reads or writes them meanwhile.
        let (meta, bytes) = unsafe { (meta.as_mut(), bytes.as_mut()) };
        self.net.inbox.drain(meta, bytes) as u32
    }

    /// Whether an open socket has bytes queued.
    #[napi(catch_unwind)]
    pub fn has_queued(&self) -> bool {
        self.reactor.lock().any_queued()
    }

    /// `wait_id` completes once no open socket has bytes queued: `DONE` if none has.
    #[napi(catch_unwind)]
    pub fn flush_wait(&self, wait_id: u32) -> i32 {
        if self.reactor.lock().flush_wait(wait_id) {
            DONE
        } else {
            0
        }
    }

    /// Reads every ready socket: writes the header (entries, flags) and the
    /// entries into `meta`, the delivered bytes into `bytes` (see the
    /// runtime's `reactor::wire`). 0, or `-errno` if polling failed.
    #[napi(catch_unwind)]
    pub fn poll(&self, mut meta: Float64ArraySlice, mut bytes: Uint8ArraySlice) -> Result<i32> {
        // SAFETY: as in `drain`.
        let (meta, bytes) = unsafe { (meta.as_mut(), bytes.as_mut()) };
        if meta.len() < wire::POLL_HEADER + wire::POLL_ENTRY_WIDTH {
            return Err(Error::new(
                Status::InvalidArg,
                "meta has no room for an entry",
            ));
        }
        Ok(status(self.reactor.lock().poll(meta, bytes)))
    }

    /// Starts connecting to an IP literal; `wait_id` completes with the outcome.
    #[napi(catch_unwind)]
    pub fn connect(
        &self,
        host: String,
        port_number: u32,
        wait_id: u32,
    ) -> Result<Either<NativeSocket, i32>> {
        let addr = socket_addr(&host, port_number)?;
        Ok(match self.reactor.lock().connect(addr, wait_id) {
            Ok(token) => Either::A(NativeSocket::new(&self.reactor, token)),
            Err(status) => Either::B(status),
        })
    }

    /// Binds and listens for a JS handler: connections come to JS.
    #[napi(catch_unwind)]
    pub fn listen(
        &self,
        host: String,
        port_number: u32,
        backlog: u32,
    ) -> Result<Either<NativeListener, i32>> {
        let addr = socket_addr(&host, port_number)?;
        Ok(match self.reactor.lock().listen(addr, backlog) {
            Ok(token) => Either::A(NativeListener {
                reactor: self.reactor.clone(),
                token,
            }),
            Err(status) => Either::B(status),
        })
    }

    /// Binds and serves with a built-in handler ("echo" or "upper") on the
    /// runtime's workers.
    #[napi(catch_unwind)]
    pub fn serve(
        &self,
        host: String,
        port_number: u32,
        backlog: u32,
        handler: String,
    ) -> Result<Either<NativeServer, i32>> {
        let addr = socket_addr(&host, port_number)?;
        let handler = match handler.as_str() {
            "echo" => Handler::Echo,
            "upper" => Handler::Upper,
            other => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("unknown handler {other:?}"),
                ))
            }
        };
        Ok(
            match Server::bind(addr, backlog, handler, self.net.clone()) {
                Ok(server) => Either::A(NativeServer { server }),
                Err(status) => Either::B(status),
            },
        )
    }
}

/// `send(slot, generation, data)` for the sockets of `net`: as
/// `NativeSocket.send`, without napi-rs's bookkeeping of every call on a
/// class instance (a receiver unwrap and a borrow registered in a global
/// table), which costs as much as the rest of a small send's user time.
#[napi(
    catch_unwind,
    ts_return_type = "(slot: number, generation: number, data: Uint8Array) => number"
)]
pub fn send_function<'env>(env: &'env Env, net: &NativeNet) -> Result<Unknown<'env>> {
    crate::hot::send_function(env, net.reactor.0.clone())
}

/// Protocol constants, so the TypeScript side never restates them.
#[napi(catch_unwind)]
pub fn net_protocol() -> std::collections::HashMap<String, u32> {
    [
        ("ENTRY_WIDTH", ENTRY_WIDTH as u32),
        ("MAX_DELIVERY", MAX_DELIVERY as u32),
        ("POLL_HEADER", wire::POLL_HEADER as u32),
        ("POLL_ENTRY_WIDTH", wire::POLL_ENTRY_WIDTH as u32),
        ("KIND_WAIT", wire::KIND_WAIT as u32),
        ("KIND_RECV", wire::KIND_RECV as u32),
        ("TAKE", wire::TAKE as u32),
        ("ARMED", wire::ARMED as u32),
        ("MORE", wire::MORE),
        ("ACCEPT_STALLED", wire::ACCEPT_STALLED),
        ("WAITING", WAITING as u32),
        ("DONE", DONE as u32),
        ("SEND_QUEUE_LIMIT", SEND_QUEUE_LIMIT as u32),
        ("FRAME_ANY", 0),
        ("FRAME_EXACTLY", 1),
        ("FRAME_LINE", 2),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A connection in the reactor.
#[napi]
pub struct NativeSocket {
    reactor: Shared,
    token: Token,
}

impl NativeSocket {
    fn new(reactor: &Shared, token: Token) -> NativeSocket {
        NativeSocket {
            reactor: reactor.clone(),
            token,
        }
    }

    fn reactor(&self) -> MutexGuard<'_, Reactor> {
        self.reactor.lock()
    }
}

#[napi]
impl NativeSocket {
    /// Its slot: the key of its recv deliveries in a poll.
    #[napi(getter)]
    pub fn slot(&self) -> u32 {
        self.token.index
    }

    /// Its slot's generation: with `slot`, what `sendFunction`'s send takes.
    #[napi(getter)]
    pub fn generation(&self) -> u32 {
        self.token.generation()
    }

    /// The frame (`kind`: 0 any, at most `n` bytes; 1 exactly `n`; 2 a line
    /// of at most `n`) if it is complete: its bytes (fewer than asked, or
    /// none, at the end of the stream); else `WAITING` (the recv is armed)
    /// or `-errno`.
    #[napi(catch_unwind)]
    pub fn recv(&self, kind: u32, n: u32) -> Result<Either<Buffer, i32>> {
        let frame = Frame::from_kind(kind, n as usize)
            .ok_or_else(|| Error::new(Status::InvalidArg, format!("unknown frame kind {kind}")))?;
        Ok(match self.reactor().recv(self.token, frame) {
            Ok(Recv::Bytes(data)) => Either::A(data.into()),
            Ok(Recv::Failed(status)) | Err(status) => Either::B(status),
            Ok(Recv::Waiting) => Either::B(WAITING),
        })
    }

    /// Disarms the recv (bytes stay for the next one).
    #[napi(catch_unwind)]
    pub fn cancel_recv(&self) {
        self.reactor().cancel_recv(self.token);
    }

    /// The bytes of a delivery announced with `TAKE`.
    #[napi(catch_unwind)]
    pub fn take_bytes(&self, n: u32) -> Buffer {
        self.reactor().take_bytes(self.token, n as usize).into()
    }

    /// Puts back a delivery its recv did not take: bytes (first again), or
    /// an error `status` (< 0). Disarms the recv.
    #[napi(catch_unwind)]
    pub fn give_back(&self, data: &[u8], status: i32) {
        self.reactor().give_back(self.token, data, status);
    }

    /// Bytes queued, not yet in the kernel.
    #[napi(catch_unwind)]
    pub fn queued(&self) -> u32 {
        self.reactor().queued(self.token) as u32
    }

    /// `wait_id` completes once at most `threshold` bytes are queued: `DONE`
    /// if that is so now, 0 if registered, or `-errno`.
    #[napi(catch_unwind)]
    pub fn drain_wait(&self, wait_id: u32, threshold: u32) -> i32 {
        wait_status(
            self.reactor()
                .drain_wait(self.token, wait_id, threshold as usize),
        )
    }

    #[napi(catch_unwind)]
    pub fn cancel_drain(&self, wait_id: u32) -> bool {
        self.reactor().cancel_drain(self.token, wait_id)
    }

    /// `how`: 0 read, 1 write, 2 both.
    #[napi(catch_unwind)]
    pub fn shutdown(&self, how: u32) -> i32 {
        let how = match how {
            0 => Shutdown::Read,
            1 => Shutdown::Write,
            _ => Shutdown::Both,
        };
        status(self.reactor().shutdown(self.token, how))
    }

    /// Closes; queued bytes are still written. Returns how many are queued.
    #[napi(catch_unwind)]
    pub fn close(&self) -> u32 {
        self.reactor().close(self.token) as u32
    }

    /// After `close`: closes now, dropping the queue still unwritten.
    #[napi(catch_unwind)]
    pub fn abandon(&self) {
        self.reactor().abandon(self.token)
    }

    /// `wait_id` completes once the socket is really closed: `DONE` if it is.
    #[napi(catch_unwind)]
    pub fn close_wait(&self, wait_id: u32) -> i32 {
        if self.reactor().close_wait(self.token, wait_id) {
            DONE
        } else {
            0
        }
    }

    #[napi(catch_unwind)]
    pub fn local_address(&self) -> Option<SocketAddress> {
        self.reactor().local_addr(self.token).map(address)
    }

    #[napi(catch_unwind)]
    pub fn remote_address(&self) -> Option<SocketAddress> {
        self.reactor().peer_addr(self.token).map(address)
    }
}

impl Drop for NativeSocket {
    fn drop(&mut self) {
        // Collected without close(): release the connection.
        self.reactor().close(self.token);
    }
}

/// A listener in the reactor, for a JS handler.
#[napi]
pub struct NativeListener {
    reactor: Shared,
    token: Token,
}

#[napi]
impl NativeListener {
    #[napi(catch_unwind)]
    pub fn address(&self) -> Option<SocketAddress> {
        self.reactor.lock().listener_addr(self.token).map(address)
    }

    /// `wait_id` completes once connections are accepted: `DONE` if some
    /// are waiting now, 0 if registered, `-EBADF` once closed.
    #[napi(catch_unwind)]
    pub fn accept_wait(&self, wait_id: u32) -> i32 {
        wait_status(self.reactor.lock().accept_wait(self.token, wait_id))
    }

    #[napi(catch_unwind)]
    pub fn cancel_accept(&self) -> bool {
        self.reactor.lock().cancel_accept(self.token)
    }

    /// The connections accepted since the last call.
    #[napi(catch_unwind)]
    pub fn take_accepted(&self) -> Vec<NativeSocket> {
        let accepted = self.reactor.lock().take_accepted(self.token);
        accepted
            .into_iter()
            .map(|token| NativeSocket::new(&self.reactor, token))
            .collect()
    }

    /// Stops listening now (the port is free); the accept wait fails with
    /// `EBADF` at the next poll.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.reactor.lock().close_listener(self.token);
    }
}

impl Drop for NativeListener {
    fn drop(&mut self) {
        // Collected without stop(): stop listening.
        self.reactor.lock().close_listener(self.token);
    }
}

/// A server with a built-in handler, on the runtime's workers.
#[napi]
pub struct NativeServer {
    server: Arc<Server>,
}

#[napi]
impl NativeServer {
    #[napi(catch_unwind)]
    pub fn address(&self) -> SocketAddress {
        address(self.server.local_addr())
    }

    /// Stops accepting; `wait_id` (if any) completes once the listener is closed.
    #[napi(catch_unwind)]
    pub fn close(&self, wait_id: Option<u32>) {
        self.server.close(wait_id);
    }

    #[napi(catch_unwind)]
    pub fn live_connections(&self) -> u32 {
        self.server.live_connections() as u32
    }

    #[napi(catch_unwind)]
    pub fn idle_wait(&self, wait_id: u32) {
        self.server.idle_wait(wait_id);
    }

    #[napi(catch_unwind)]
    pub fn cancel_idle(&self, wait_id: u32) -> bool {
        self.server.cancel_idle(wait_id)
    }

    #[napi(catch_unwind)]
    pub fn kill_connections(&self) {
        self.server.kill_connections();
    }
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        // Collected without stop(): stop accepting.
        self.server.close(None);
    }
}
