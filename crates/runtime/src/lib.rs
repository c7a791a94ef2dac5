//! The greenthread runtime: pure Rust, no Node types.
//!
//! - [`hub`]: the native half of the hub: timers (a deadline heap and a clock
//!   thread) and waits completed by other threads. The scheduler itself lives
//!   on the JS thread (`src/hub.ts`); it hands timer commands over in one
//!   buffer per turn and receives expired timers and completions in the same
//!   call, so a boundary crossing is paid per batch, not per event.
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
//! - [`pipe`]: an executor child's messages to its parent, written by a
//!   thread of their own so that results leave as their tasks end.

mod alarm;
pub mod baton;
pub mod executor;
pub mod hub;
pub mod net;
pub mod parent;
pub mod pipe;
pub mod runtime;
mod timers;

pub use alarm::Wake;
pub use hub::{Command, Event, Hub, Remote};
