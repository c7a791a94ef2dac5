//! A server with a built-in handler: a listening socket and the `may`
//! coroutine that accepts on it, on the runtime's workers.
//!
//! Every connection is served by its own coroutine ([`builtin`](super::builtin))
//! and never reaches the front end; the server counts them so that `stop`
//! can wait for them ([`Server::idle_wait`]) and end them
//! ([`Server::kill_connections`]). (Servers with JS handlers live in the
//! front end's [`Reactor`](super::Reactor) instead.)
//!
//! # Invariants
//! - Results of idle and close waits are pushed under the server's lock
//!   ([`Inbox`](super::Inbox) invariants).
//! - The accept coroutine alone closes the listener; `listening` turns false
//!   before, under the lock, so no connection is served after `close`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use may::io::{WaitIo, WaitIoWaker};
use may::net::{TcpListener, TcpStream};

use super::{builtin, go, listener, status_of, sys, Net};

/// Pause after running out of file descriptors (or memory) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How the accepted connections are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// Sends back what it receives (recv up to 1024 bytes, send, close at EOF).
    Echo,
    /// Like `Echo`, upper-casing ASCII letters.
    Upper,
}

#[derive(Default)]
struct State {
    listening: bool,
    listener_closed: bool,
    close_waits: Vec<u32>,
    /// Built-in connections alive, by key, with the wakers that end them.
    live: HashMap<u64, WaitIoWaker>,
    next_key: u64,
    idle_waits: Vec<u32>,
}

pub struct Server {
    local: SocketAddr,
    handler: Handler,
    net: Arc<Net>,
    state: Mutex<State>,
    waker: WaitIoWaker,
    killing: AtomicBool,
}

impl Server {
    /// Binds and starts accepting. Fails with `-errno` (`-EADDRINUSE`...).
    pub fn bind(
        addr: SocketAddr,
        backlog: u32,
        handler: Handler,
        net: Arc<Net>,
    ) -> Result<Arc<Server>, i32> {
        let listener = listener::bind(addr, backlog)?;
        let local = listener.local_addr().map_err(|e| status_of(&e))?;
        let server = Arc::new(Server {
            local,
            handler,
            net,
            state: Mutex::new(State {
                listening: true,
                ..State::default()
            }),
            waker: listener.waker(),
            killing: AtomicBool::new(false),
        });
        let accepting = server.clone();
        // SAFETY: the accept loop does non-blocking accepts under short
        // locks, waits through `wait_io` and `sleep`, and uses no
        // thread-local storage.
        drop(unsafe { go(move || accepting.run(listener)) }.map_err(|e| status_of(&e))?);
        Ok(server)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No critical section can panic between two consistent states.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bound address (with the real port when port 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting. The listener is closed by the accept coroutine;
    /// `wait_id`, if given, is completed once it is. Connections are left
    /// running.
    pub fn close(&self, wait_id: Option<u32>) {
        let mut st = self.lock();
        st.listening = false;
        match wait_id {
            Some(id) if st.listener_closed => {
                drop(st);
                self.net.inbox.complete(id, 0, &[]);
            }
            Some(id) => st.close_waits.push(id),
            None => {}
        }
        self.waker.wakeup();
    }

    /// Built-in connections still being served.
    pub fn live_connections(&self) -> usize {
        self.lock().live.len()
    }

    /// Completes `wait_id` once no built-in connection is being served.
    pub fn idle_wait(&self, wait_id: u32) {
        let mut st = self.lock();
        if st.live.is_empty() {
            self.net.inbox.complete(wait_id, 0, &[]);
        } else {
            st.idle_waits.push(wait_id);
        }
    }

    /// Withdraws an idle wait; `false` if it has completed.
    pub fn cancel_idle(&self, wait_id: u32) -> bool {
        let mut st = self.lock();
        let before = st.idle_waits.len();
        st.idle_waits.retain(|&id| id != wait_id);
        st.idle_waits.len() != before
    }

    /// Ends every built-in connection at its next wait (now, if waiting).
    pub fn kill_connections(&self) {
        self.killing.store(true, Ordering::Release);
        for waker in self.lock().live.values() {
            waker.wakeup();
        }
    }

    pub(crate) fn killing(&self) -> bool {
        self.killing.load(Ordering::Acquire)
    }

    fn run(self: Arc<Self>, listener: TcpListener) {
        while self.lock().listening {
            match listener.inner().accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        listener.wait_io();
                    }
                    // The connection failed before we took it: next one.
                    Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO | libc::EPERM) => {}
                    // Out of descriptors or memory: the pending connection
                    // stays in the backlog (and the edge is spent), so retry
                    // after a pause rather than wait for the next arrival.
                    _ => may::coroutine::sleep(ACCEPT_BACKOFF),
                },
            }
        }
        drop(listener);
        let mut st = self.lock();
        st.listener_closed = true;
        let waits = std::mem::take(&mut st.close_waits);
        self.net
            .inbox
            .push_all(&waits.iter().map(|&id| (id, 0)).collect::<Vec<_>>());
        drop(st);
        self.net.inbox.wake(waits);
    }

    fn admit(self: &Arc<Self>, stream: std::net::TcpStream) {
        sys::prepare(stream.as_raw_fd());
        // SAFETY: the fd comes from `into_raw_fd` of a stream we own; the
        // runtime stream takes over its ownership.
        let stream = unsafe { TcpStream::from_raw_fd(stream.into_raw_fd()) };
        let mut st = self.lock();
        let key = st.next_key;
        st.next_key += 1;
        st.live.insert(key, stream.waker());
        drop(st);
        let server = self.clone();
        let upper = self.handler == Handler::Upper;
        // SAFETY: `builtin::serve` does non-blocking I/O into a heap buffer,
        // waits through `wait_io`, and uses no thread-local storage.
        let serving = unsafe {
            go(move || {
                builtin::serve(&stream, upper, &server);
                drop(stream);
                server.retire(key);
            })
        };
        // The runtime runs this accept loop: it cannot fail to start. Were
        // it to, the connection (dropped with the closure) would just be
        // closed, and stay listed until the server stops.
        drop(serving);
    }

    /// A built-in connection has ended.
    fn retire(&self, key: u64) {
        let mut st = self.lock();
        st.live.remove(&key);
        if !st.live.is_empty() || st.idle_waits.is_empty() {
            return;
        }
        let waits = std::mem::take(&mut st.idle_waits);
        self.net
            .inbox
            .push_all(&waits.iter().map(|&id| (id, 0)).collect::<Vec<_>>());
        drop(st);
        self.net.inbox.wake(waits);
    }
}
