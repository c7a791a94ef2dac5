//! TCP sockets and stream servers, with two drivers over one connection
//! state (`state::ConnState`):
//!
//! - **The front end's reactor** ([`Reactor`]) for every socket whose bytes
//!   go to JS: clients made by `connect()`, connections of servers with JS
//!   handlers, in either mode. The JS thread drives it: Node's event loop
//!   watches the reactor's poller fd, and one call ([`Reactor::poll`]) reads
//!   every ready socket whose recv waits and hands back a batch. Sends are
//!   made at once by the caller. No runtime thread is involved, and nothing
//!   crosses threads per message.
//! - **`may` coroutines** on the runtime's workers for what needs no JS: the
//!   built-in handlers of a [`Server`] ([`Handler::Echo`],
//!   [`Handler::Upper`]), one coroutine per connection. Their server's waits
//!   (idle, closed) complete through the hub's [`Inbox`].
//!
//! OS code (epoll or kqueue, the socket calls whose flags differ) is chosen
//! in one place, [`sys`].
//!
//! Errors travel as negative errno values (`status < 0`), so the front end
//! builds its own error objects with the usual codes.

mod builtin;
mod inbox;
mod listener;
mod reactor;
mod server;
mod state;
mod sys;
#[cfg(test)]
mod tests;

pub use inbox::{Inbox, ENTRY_WIDTH};
pub use listener::parse_addr;
pub use reactor::{wire, Frame, Reactor, Recv, Token, SEND_QUEUE_LIMIT};
pub use server::{Handler, Server};

use std::sync::Arc;

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
