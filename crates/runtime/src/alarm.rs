//! One clock thread per hub that sleeps until the hub's earliest deadline,
//! then wakes the front end once. Expired timers are collected by the hub on
//! the front end's thread when it flushes, so every timer that expired by then
//! is delivered in that one batch: one wake-up per batch, not per timer.
//!
//! This is a plain thread with a condvar rather than a `may` coroutine:
//! `may`'s timer thread groups timers by interval and only re-evaluates its
//! sleep when a new interval list appears, so a short `park_timeout` added to
//! an existing, emptied list was seen never to return (0.7 ms, may 0.3.51).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// Asks the front end to flush the hub soon. Called from the clock thread; it
/// must be cheap and must not block (a Node threadsafe function, a futex...).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

const CLOCK_STACK_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Clock {
    /// The deadline the thread is sleeping towards; `None` when idle.
    armed: Option<Instant>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    clock: Mutex<Clock>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Clock> {
        // The critical sections cannot panic, so a poisoned lock still holds
        // a consistent value.
        self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct Alarm {
    shared: Arc<Shared>,
}

impl Alarm {
    /// Starts the clock thread (fails if the OS has no thread to give).
    pub(crate) fn new(wake: Wake) -> std::io::Result<Alarm> {
        let shared = Arc::new(Shared::default());
        let inner = shared.clone();
        std::thread::Builder::new()
            .name("greenthread-clock".into())
            .stack_size(CLOCK_STACK_BYTES)
            .spawn(move || run(&inner, &wake))?;
        Ok(Alarm { shared })
    }

    /// Makes sure a wake-up happens no later than `deadline`. An alarm armed
    /// for an earlier time is kept: when it fires, the hub re-arms for the
    /// next deadline it still has.
    pub(crate) fn arm(&self, deadline: Instant) {
        let mut clock = self.shared.lock();
        if clock.armed.is_none_or(|current| deadline < current) {
            clock.armed = Some(deadline);
            drop(clock);
            self.shared.changed.notify_one();
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_one();
    }
}

fn run(shared: &Shared, wake: &Wake) {
    let mut clock = shared.lock();
    while !clock.closed {
        match clock.armed {
            None => {
                clock = shared
                    .changed
                    .wait(clock)
                    .unwrap_or_else(|e| e.into_inner())
            }
            Some(deadline) => {
                let now = Instant::now();
                if deadline <= now {
                    clock.armed = None;
                    drop(clock);
                    wake();
                    clock = shared.lock();
                } else {
                    clock = shared
                        .changed
                        .wait_timeout(clock, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}
