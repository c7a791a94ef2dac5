//! Sockets and stream servers: type conversion over `greenthread_runtime::net`.
//!
//! Failures are returned as negative errno numbers (the front end builds
//! Node-style errors with `code`); waits complete through the hub's inbox,
//! drained by [`NativeNet::drain`].

use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use greenthread_runtime::net::{
    parse_addr, Conn, Handler, Net, Server, TryRecv, ENTRY_WIDTH, MAX_DELIVERY,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::hub::NativeHub;

/// `tryRecv` found nothing to return yet.
const NOTHING_YET: i32 = 1;

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

fn port(port: u32) -> Result<u16> {
    u16::try_from(port)
        .map_err(|_| Error::new(Status::InvalidArg, format!("port {port} is out of range")))
}

fn status(result: std::result::Result<(), i32>) -> i32 {
    result.err().unwrap_or(0)
}

/// The socket side of one hub.
#[napi]
pub struct NativeNet {
    net: Arc<Net>,
}

#[napi]
impl NativeNet {
    #[napi(constructor, catch_unwind)]
    pub fn new(hub: &NativeHub) -> Self {
        NativeNet {
            net: Arc::new(Net::new(hub.remote())),
        }
    }

    /// Moves completed results into `meta` (4 f64s each: wait id, status,
    /// offset, length) and `bytes`; returns how many.
    #[napi(catch_unwind)]
    pub fn drain(&self, mut meta: Float64ArraySlice, mut bytes: Uint8ArraySlice) -> u32 {
        // SAFETY: both typed arrays are owned by the JS caller, alive for this
        // synchronous call, and nothing else reads or writes them meanwhile.
        let (meta, bytes) = unsafe { (meta.as_mut(), bytes.as_mut()) };
        self.net.inbox.drain(meta, bytes) as u32
    }

    /// Starts connecting to an IP literal; `wait_id` completes with the outcome.
    #[napi(catch_unwind)]
    pub fn connect(
        &self,
        host: String,
        port_number: u32,
        wait_id: u32,
    ) -> Result<Either<NativeSocket, i32>> {
        let addr = parse_addr(&host, port(port_number)?).ok_or_else(|| {
            Error::new(Status::InvalidArg, format!("{host:?} is not an IP address"))
        })?;
        Ok(match Conn::connect(addr, wait_id, &self.net) {
            Ok(conn) => Either::A(NativeSocket { conn }),
            Err(status) => Either::B(status),
        })
    }

    /// Binds and listens. `handler`: "front", "echo" or "upper".
    #[napi(catch_unwind)]
    pub fn listen(
        &self,
        host: String,
        port_number: u32,
        backlog: u32,
        handler: String,
    ) -> Result<Either<NativeServer, i32>> {
        let addr = parse_addr(&host, port(port_number)?).ok_or_else(|| {
            Error::new(Status::InvalidArg, format!("{host:?} is not an IP address"))
        })?;
        let handler = match handler.as_str() {
            "front" => Handler::Front,
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

/// Protocol constants, so the TypeScript side never restates them.
#[napi(catch_unwind)]
pub fn net_protocol() -> std::collections::HashMap<String, u32> {
    [
        ("ENTRY_WIDTH", ENTRY_WIDTH as u32),
        ("MAX_DELIVERY", MAX_DELIVERY as u32),
        ("NOTHING_YET", NOTHING_YET as u32),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[napi]
pub struct NativeSocket {
    conn: Arc<Conn>,
}

#[napi]
impl NativeSocket {
    /// Bytes read ahead (an empty Buffer at EOF), or a number: `NOTHING_YET`
    /// or `-errno`.
    #[napi(catch_unwind)]
    pub fn try_recv(&self, max: u32) -> Either<Buffer, i32> {
        match self.conn.try_recv(max as usize) {
            TryRecv::Data(data) => Either::A(data.into()),
            TryRecv::Eof => Either::A(Vec::new().into()),
            TryRecv::Error(status) => Either::B(status),
            TryRecv::Empty => Either::B(NOTHING_YET),
        }
    }

    /// 0, or `-errno` if the wait could not be registered.
    #[napi(catch_unwind)]
    pub fn recv_wait(&self, wait_id: u32, max: u32) -> i32 {
        status(self.conn.recv_wait(wait_id, max as usize))
    }

    #[napi(catch_unwind)]
    pub fn cancel_recv(&self) -> bool {
        self.conn.cancel_recv()
    }

    /// Queues a copy of `data`, writing at once what the kernel takes;
    /// returns the bytes queued and not yet written, or `-errno` of an
    /// earlier write failure.
    #[napi(catch_unwind)]
    pub fn send(&self, data: &[u8]) -> i64 {
        match self.conn.send(data) {
            Ok(queued) => queued as i64,
            Err(status) => i64::from(status),
        }
    }

    /// `wait_id` completes once at most `threshold` bytes are queued; 0 or
    /// `-errno` if the wait could not be registered.
    #[napi(catch_unwind)]
    pub fn drain_wait(&self, wait_id: u32, threshold: u32) -> i32 {
        status(self.conn.drain_wait(wait_id, threshold as usize))
    }

    #[napi(catch_unwind)]
    pub fn cancel_drain(&self, wait_id: u32) -> bool {
        self.conn.cancel_drain(wait_id)
    }

    /// `how`: 0 read, 1 write, 2 both.
    #[napi(catch_unwind)]
    pub fn shutdown(&self, how: u32) -> i32 {
        let how = match how {
            0 => Shutdown::Read,
            1 => Shutdown::Write,
            _ => Shutdown::Both,
        };
        status(self.conn.shutdown(how))
    }

    /// Closes; queued bytes are still written. Returns how many are queued.
    #[napi(catch_unwind)]
    pub fn close(&self) -> u32 {
        self.conn.close() as u32
    }

    /// `wait_id` completes once the socket is really closed.
    #[napi(catch_unwind)]
    pub fn close_wait(&self, wait_id: u32) {
        self.conn.close_wait(wait_id);
    }

    #[napi(catch_unwind)]
    pub fn local_address(&self) -> Option<SocketAddress> {
        self.conn.local_addr().map(address)
    }

    #[napi(catch_unwind)]
    pub fn remote_address(&self) -> Option<SocketAddress> {
        self.conn.peer_addr().map(address)
    }
}

impl Drop for NativeSocket {
    fn drop(&mut self) {
        // Collected without close(): release the connection.
        self.conn.close();
    }
}

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

    /// 0, or `-errno` (`-EBADF` once closed).
    #[napi(catch_unwind)]
    pub fn accept_wait(&self, wait_id: u32) -> i32 {
        status(self.server.accept_wait(wait_id))
    }

    #[napi(catch_unwind)]
    pub fn cancel_accept(&self) -> bool {
        self.server.cancel_accept()
    }

    #[napi(catch_unwind)]
    pub fn take_accepted(&self) -> Vec<NativeSocket> {
        self.server
            .take_accepted()
            .into_iter()
            .map(|conn| NativeSocket { conn })
            .collect()
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
