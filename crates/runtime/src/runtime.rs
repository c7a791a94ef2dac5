//! Lazy start and configuration of the `may` scheduler.
//!
//! `may` reads its configuration when its scheduler starts, on the first
//! coroutine spawn. [`configure`] is therefore only accepted before
//! [`ensure_started`] has run once; afterwards it reports
//! [`ConfigError::AlreadyStarted`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Stack size of runtime coroutines: they run small Rust loops, never JS.
const COROUTINE_STACK_BYTES: usize = 64 * 1024;

static STARTED: AtomicBool = AtomicBool::new(false);
static WORKERS: AtomicUsize = AtomicUsize::new(0);
static START_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    AlreadyStarted,
    ZeroWorkers,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::AlreadyStarted => f.write_str(
                "the runtime has already started; configure() must run before first use",
            ),
            ConfigError::ZeroWorkers => f.write_str("workers must be at least 1"),
        }
    }
}

/// Default worker count: one per CPU core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Sets the worker count used when the runtime starts.
pub fn configure(workers: usize) -> Result<(), ConfigError> {
    if workers == 0 {
        return Err(ConfigError::ZeroWorkers);
    }
    let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if STARTED.load(Ordering::Acquire) {
        return Err(ConfigError::AlreadyStarted);
    }
    WORKERS.store(workers, Ordering::Release);
    Ok(())
}

pub fn is_started() -> bool {
    STARTED.load(Ordering::Acquire)
}

/// Worker count in force (configured, or the default if not configured).
pub fn workers() -> usize {
    match WORKERS.load(Ordering::Acquire) {
        0 => default_workers(),
        n => n,
    }
}

/// Applies the configuration to `may` exactly once, before its first spawn.
pub fn ensure_started() {
    if STARTED.load(Ordering::Acquire) {
        return;
    }
    let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !STARTED.load(Ordering::Acquire) {
        may::config()
            .set_workers(workers())
            .set_stack_size(COROUTINE_STACK_BYTES);
        STARTED.store(true, Ordering::Release);
    }
}
