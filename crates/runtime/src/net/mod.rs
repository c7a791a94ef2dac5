//! Cooperative TCP sockets and stream servers on the `may` runtime.
//!
//! Every socket is served by one `may` coroutine that owns the
//! [`may::net::TcpStream`] and waits on its readiness (edge-triggered epoll,
//! one selector per worker). The front end (the JS thread) performs no
//! socket I/O but its own writes, and is never woken per packet:
//!
//! - **Completions** (a recv's bytes, a sendall written, a connect, an accept)
//!   are appended to the [`Inbox`] of the front end's hub and the waiting id
//!   is unparked through the hub's [`Remote`](crate::Remote), which wakes the
//!   front end once per batch. The front end copies every completed result
//!   out with one [`Inbox::drain`] per hub turn.
//! - **Reads** run ahead: a socket's coroutine reads whatever arrives, up to
//!   [`READ_AHEAD`] bytes, so registering a recv never wakes a worker.
//! - **Writes** are made by the sender, on its own thread, as it queues them
//!   (non-blocking, outside the socket's lock): a message costs no hand-off
//!   to a runtime thread. Only a write that meets a full kernel buffer is
//!   left to the socket's own coroutine, resumed when it becomes writable.
//! - [`Server`] accepts in a coroutine and either hands connections to the
//!   front end ([`Handler::Front`]) or serves them entirely in Rust with a
//!   built-in handler ([`Handler::Echo`], [`Handler::Upper`]).
//!
//! # Invariants
//! - A completion is in the inbox before its operation stops being
//!   cancellable: it is pushed under the lock of its socket (or server), the
//!   same lock a cancel takes. So a cancel that finds nothing to cancel knows
//!   the result is in the inbox and can be drained, and data read for a recv
//!   that timed out is never lost.
//! - The fd of a socket is used by other threads only under its lock, or by
//!   the one writer that holds its `writing` flag, and only while its
//!   coroutine has not closed it; the coroutine closes it under the lock, and
//!   never while a write is under way.
//! - Lock order: socket or server, then inbox, then the hub's remote.
//!
//! Errors travel as negative errno values (`status < 0`), so the front end
//! builds its own error objects with the usual codes.

mod builtin;
mod conn;
mod inbox;
mod listener;
mod server;
pub mod state;
pub mod sys;
#[cfg(test)]
mod tests;

pub use conn::{Conn, TryRecv};
pub use inbox::{Inbox, ENTRY_WIDTH};
pub use listener::parse_addr;
pub use server::{Handler, Server};

use std::sync::Arc;

/// Bytes a socket reads ahead of the front end's recvs before it pauses.
pub const READ_AHEAD: usize = 64 * 1024;

/// Largest recv result delivered at once, whatever the caller asked for.
pub const MAX_DELIVERY: usize = 256 * 1024;

/// The socket side of one hub: where completions go.
pub struct Net {
    pub inbox: Arc<Inbox>,
}

impl Net {
    pub fn new(remote: crate::Remote) -> Net {
        Net {
            inbox: Arc::new(Inbox::new(remote)),
        }
    }
}

/// Spawns a runtime coroutine (starting the runtime first if needed).
///
/// # Safety
/// `f` runs on a `may` coroutine, which may migrate between worker threads
/// at each wait and has a small fixed stack: it must not keep references to
/// thread-local storage across a wait, must not block its thread for long,
/// and must fit in [`runtime`](crate::runtime)'s coroutine stack (no large
/// stack buffers, no deep recursion, no name resolution).
/// Dropping the returned handle detaches the coroutine. Fails, dropping
/// `f`, if the runtime cannot start.
pub(crate) unsafe fn go<F: FnOnce() + Send + 'static>(
    f: F,
) -> std::io::Result<may::coroutine::JoinHandle<()>> {
    crate::runtime::ensure_started()?;
    // SAFETY: the caller upholds the coroutine contract above.
    Ok(unsafe { may::coroutine::spawn(f) })
}

/// `-errno` of an I/O error; errors without an OS code become `-EIO`.
pub(crate) fn status_of(err: &std::io::Error) -> i32 {
    -err.raw_os_error().unwrap_or(libc::EIO)
}

pub(crate) use sys::last_status;
