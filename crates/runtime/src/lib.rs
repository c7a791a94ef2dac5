//! The greenthread runtime: pure Rust, no Node types.
//!
//! - [`hub`]: the greenlet table, parent links, run queue, timers, joins and
//!   kills that both the async (Promise) mode and the sync (baton) mode share.
//!   Front ends talk to it in batches of [`hub::Command`]s and receive batches
//!   of [`hub::Ready`] entries, so a boundary crossing is paid per batch, not
//!   per event.
//! - [`runtime`]: lazy start of the `may` coroutine scheduler (work-stealing
//!   workers, epoll/kqueue reactor) and its configuration.
//! - [`net`]: cooperative sockets and stream servers as `may` coroutines;
//!   completions reach the front end in batches through a per-hub inbox, and
//!   built-in handlers (`echo`, `upper`) serve connections without JS.
//! - [`baton`]: the exclusive right to run JS, handed directly between OS
//!   threads (sync mode): a per-thread wake word with an adaptive short spin.
//! - [`executor`]: the executors' task queue: a global injector, per-worker
//!   stealable deques, per-task states (queued, running, cancelled) and
//!   batched completions with one wake-up of the front end per batch.
//! - [`parent`]: a child process that dies with its parent (executor
//!   children).
//! - A clock thread per hub turns the earliest pending deadline into one
//!   wake-up of the front end per batch of expired timers.

mod alarm;
pub mod baton;
pub mod executor;
pub mod hub;
pub mod net;
pub mod parent;
pub mod runtime;
mod timers;

pub use alarm::Wake;
pub use hub::{Command, Hub, Outcome, Ready, Remote};
