//! Lazy start and configuration of the `may` scheduler.
//!
//! `may` reads its configuration when its scheduler starts, on the first
//! coroutine spawn. [`configure`] is therefore only accepted before
//! [`ensure_started`] has run once; afterwards it reports
//! [`ConfigError::AlreadyStarted`].
//!
//! `may` creates its scheduler (an epoll fd and an eventfd per worker) in a
//! `std::sync::Once` and panics if it cannot, which poisons it for the rest
//! of the process. [`ensure_started`] first checks that the descriptors can
//! be had: out of descriptors, it fails with the OS error and can be tried
//! again later; only a failure between that check and the start (a race
//! with other threads opening files) leaves the runtime broken, and then
//! every later start says so.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Stack size of runtime coroutines: they run small Rust loops, never JS.
const COROUTINE_STACK_BYTES: usize = 64 * 1024;

static STARTED: AtomicBool = AtomicBool::new(false);
static WORKERS: AtomicUsize = AtomicUsize::new(0);
static START_LOCK: Mutex<()> = Mutex::new(());
/// Why `may` failed to start, once it has (its scheduler cannot be retried).
static BROKEN: OnceLock<String> = OnceLock::new();
/// Descriptors `may` opens per worker when it starts: an epoll fd and an eventfd.
const FDS_PER_WORKER: usize = 2;

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

/// Applies the configuration to `may` and starts its scheduler, exactly
/// once. Fails with the OS error (EMFILE...) if the scheduler's descriptors
/// cannot be had, leaving the start to a later call.
pub fn ensure_started() -> io::Result<()> {
    if STARTED.load(Ordering::Acquire) {
        return Ok(());
    }
    let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if STARTED.load(Ordering::Acquire) {
        return Ok(());
    }
    if let Some(why) = BROKEN.get() {
        return Err(io::Error::other(why.clone()));
    }
    let workers = workers();
    check_descriptors(workers * FDS_PER_WORKER)?;
    may::config()
        .set_workers(workers)
        .set_stack_size(COROUTINE_STACK_BYTES);
    // SAFETY: the coroutine does nothing; spawning it starts the scheduler.
    match std::panic::catch_unwind(|| drop(unsafe { may::coroutine::spawn(|| {}) })) {
        Ok(()) => {
            STARTED.store(true, Ordering::Release);
            Ok(())
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown cause");
            let why = format!("the runtime failed to start and cannot be restarted: {why}");
            let _ = BROKEN.set(why.clone());
            Err(io::Error::other(why))
        }
    }
}

/// Fails with the OS error unless `count` more descriptors can be opened now.
fn check_descriptors(count: usize) -> io::Result<()> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        held.push(File::open("/dev/null")?);
    }
    Ok(())
}
