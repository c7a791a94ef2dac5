//! The native side of `greenthread/sync`: OS threads that share the main V8
//! isolate and pass a baton, so that exactly one of them runs JS at a time.
//!
//! # Model
//! - Threads are numbered by *slot*. Slot 0 is the main thread (Node's);
//!   slots 1.. are greenlet threads, created on demand by [`acquire`], back
//!   in the idle pool when their greenlet has finished, never destroyed.
//! - The thread that holds the baton also holds the V8 lock. It passes both
//!   with [`switch_to`] (and blocks until given them back) or, when its
//!   greenlet finishes, by returning the next slot from the JS runner.
//! - Who runs next is decided by the JS side (the hub's ready batch, a
//!   `switch()` target, a finishing greenlet's parent). This module only
//!   moves the baton and the V8 lock; the V8 calls live in `shim/locker.cc`.
//!
//! # Invariants
//! - Only the baton holder calls into this module's hand-over functions
//!   (they are called from JS, and only the holder runs JS), so the slot
//!   table and the idle pool never see contention; they are locked only to
//!   satisfy Rust.
//! - A slot is never freed: `&'static Slot` references stay valid forever.
//! - A greenlet thread touches V8 only between being given the baton and
//!   giving it away.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Mutex, OnceLock, RwLock};
use std::thread;

use greenthread_runtime::baton::{hand_over, Baton, Expect};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Greenlet thread stacks, as large as the main thread's usual one. The shim
/// gives JS as much of it as on the main thread (V8's default `--stack-size`,
/// 984 KiB) and leaves the rest below the JS limit for V8's own recursion
/// (its parsers and compilers do not always check the stack). Untouched
/// pages cost no memory, only address space.
const STACK_BYTES: usize = 8 * 1024 * 1024;

// The V8 shim (shim/locker.cc). Contracts of each call:
extern "C" {
    /// `NODE_MODULE_VERSION` of the headers the shim was built with. Always safe.
    fn greenthread_shim_node_abi() -> c_int;
    /// Only on the main thread, inside a napi call that received `runner`
    /// and `drain`; `err` points to `err_len` writable bytes. 0 on success.
    fn greenthread_shim_install(
        runner: napi::sys::napi_value,
        drain: napi::sys::napi_value,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    /// Only by the baton holder, from inside a JS call, after a successful
    /// install; `handoff(data)` must not touch V8, and must return only
    /// once this thread holds the baton again.
    fn greenthread_shim_switch(
        on_main_thread: c_int,
        handoff: extern "C" fn(*mut c_void),
        data: *mut c_void,
    ) -> c_int;
    /// Only on a greenlet thread that holds the baton, after a successful
    /// install. Returns the slot to give the baton to, still holding it.
    fn greenthread_shim_run() -> c_int;
    /// Always safe: bytes of JS stack left to a greenlet thread, -1 off its
    /// own stack (a WebAssembly JSPI stack), `isize::MAX` on other threads.
    fn greenthread_shim_stack_room() -> isize;
    /// Always safe: sets SIGPROF to be ignored if it is at its default action.
    fn greenthread_shim_ignore_stray_sigprof();
}

struct Slot {
    index: u32,
    baton: Baton,
}

struct World {
    slots: RwLock<Vec<&'static Slot>>,
    idle: Mutex<Vec<u32>>,
    /// Most greenlet threads this process may create (`MAX_THREADS_ENV`).
    max_threads: Option<usize>,
}

/// Caps the greenlet threads of a process. Each thread also takes a
/// process id, and `kernel.pid_max` is often 32768 for the whole machine:
/// a cap keeps a runaway program from starving every other process.
const MAX_THREADS_ENV: &str = "GREENTHREAD_SYNC_MAX_THREADS";

static WORLD: OnceLock<World> = OnceLock::new();

thread_local! {
    /// The slot of the calling thread, once it has one.
    static MY_SLOT: Cell<Option<&'static Slot>> = const { Cell::new(None) };
}

fn world() -> Result<&'static World> {
    WORLD.get().ok_or_else(|| {
        Error::new(
            Status::GenericFailure,
            "greenthread/sync: native side not installed",
        )
    })
}

impl World {
    fn slot(&self, index: u32) -> Option<&'static Slot> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index as usize)
            .copied()
    }

    /// A new greenlet thread, waiting for its first greenlet.
    fn spawn_thread(&'static self) -> std::io::Result<u32> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        if self.max_threads.is_some_and(|max| slots.len() > max) {
            return Err(std::io::Error::other(format!("{MAX_THREADS_ENV} reached")));
        }
        let index = slots.len() as u32;
        // The new thread reads its slot under the read lock, so it waits
        // until this write lock is released with the slot in place.
        let handle = thread::Builder::new()
            .name("greenlet".into())
            .stack_size(STACK_BYTES)
            .spawn(move || self.serve(index))?;
        let slot = Box::leak(Box::new(Slot {
            index,
            baton: Baton::for_thread(handle.thread().clone()),
        }));
        slots.push(slot);
        Ok(index)
    }

    /// Body of a greenlet thread: run one greenlet per assignment, forever.
    fn serve(&self, index: u32) {
        let Some(me) = self.slot(index) else { return };
        MY_SLOT.with(|s| s.set(Some(me)));
        loop {
            me.baton.take(Expect::Long);
            // SAFETY: this thread was given the baton, so no other thread
            // runs V8; install() ran before any slot existed.
            let next = unsafe { greenthread_shim_run() };
            // Idle before the baton leaves: whoever gets it may acquire this
            // thread at once (a give before the take above is kept).
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(me.index);
            // A bad slot from JS cannot happen; main is the safe fallback.
            let next = u32::try_from(next).ok().and_then(|n| self.slot(n));
            next.or_else(|| self.slot(0))
                .expect("slot 0 exists")
                .baton
                .give();
        }
    }
}

struct Handoff {
    me: &'static Slot,
    to: &'static Slot,
    expect: Expect,
}

extern "C" fn handoff(data: *mut c_void) {
    // SAFETY: `data` is the `Handoff` that `switch_to` keeps alive across
    // the shim call that invokes this.
    let h = unsafe { &*(data as *const Handoff) };
    hand_over(&h.me.baton, &h.to.baton, h.expect);
}

/// Sets up the world on the main thread. `runner()` is called on a greenlet
/// thread each time it starts a greenlet and returns the slot that gets the
/// baton when that greenlet is done; `drain` is a JS function that does
/// nothing (calling it services pending V8 interrupts). `node_abi` is the
/// running Node's `process.versions.modules`; a binary built for another
/// ABI refuses to install.
#[napi(catch_unwind)]
pub fn install(runner: Function, drain: Function, node_abi: u32) -> Result<()> {
    // SAFETY: a pure function of the compiled headers.
    let built_for = unsafe { greenthread_shim_node_abi() } as u32;
    if built_for != node_abi {
        return Err(Error::new(
            Status::GenericFailure,
            format!("built for Node ABI {built_for}, running Node ABI {node_abi}"),
        ));
    }
    if WORLD.get().is_some() {
        return Err(Error::new(
            Status::GenericFailure,
            "already installed in this process",
        ));
    }
    // The JS loader checks it first, for a RangeError; empty counts as unset.
    let max_threads = match std::env::var(MAX_THREADS_ENV) {
        Ok(v) if v.trim().is_empty() => None,
        Ok(v) => Some(
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    Error::new(
                        Status::InvalidArg,
                        format!("{MAX_THREADS_ENV} must be a positive integer, got {v:?}"),
                    )
                })?,
        ),
        Err(_) => None,
    };
    let mut err = [0 as c_char; 256];
    // SAFETY: called on the JS thread inside a napi call, so the napi_values
    // are live handles; `err` outlives the call and its length is passed.
    let rc =
        unsafe { greenthread_shim_install(runner.raw(), drain.raw(), err.as_mut_ptr(), err.len()) };
    if rc != 0 {
        // SAFETY: the shim wrote a NUL-terminated message into `err`.
        let message = unsafe { CStr::from_ptr(err.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        return Err(Error::new(Status::GenericFailure, message));
    }
    let main: &'static Slot = Box::leak(Box::new(Slot {
        index: 0,
        baton: Baton::for_current_thread(),
    }));
    MY_SLOT.with(|s| s.set(Some(main)));
    let _ = WORLD.set(World {
        slots: RwLock::new(vec![main]),
        idle: Mutex::default(),
        max_threads,
    });
    Ok(())
}

/// A greenlet thread for a new greenlet: an idle one from the pool, or a new
/// one. The caller must give it the baton (`switch_to`, or by returning its
/// slot from the runner) after setting up what the runner will start.
#[napi(catch_unwind)]
pub fn acquire() -> Result<u32> {
    let world = world()?;
    let mut idle = world.idle.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(index) = idle.pop() {
        // Greenlets tend to be started in bursts: wake the thread that the
        // next acquire gets, so that its kernel wake-up overlaps with this
        // greenlet's start (it goes back to sleep if nobody comes).
        if let Some(next) = idle.last().and_then(|&n| world.slot(n)) {
            next.baton.prepare();
        }
        return Ok(index);
    }
    drop(idle);
    world.spawn_thread().map_err(|e| {
        Error::new(
            Status::GenericFailure,
            format!("cannot start a thread for a new greenlet ({e}): each live sync greenlet needs one OS thread"),
        )
    })
}

/// Gives the baton (and the V8 lock) to `slot` and blocks the calling thread
/// until it is given back. `expect_long` says the caller will not be resumed
/// for a while (a timed sleep), so it sleeps at once instead of spinning.
/// Returns false, without switching, if servicing V8 interrupts raised an
/// exception (pending for the caller).
#[napi(catch_unwind)]
pub fn switch_to(slot: u32, expect_long: bool) -> Result<bool> {
    let world = world()?;
    let me = MY_SLOT.with(Cell::get).ok_or_else(|| {
        Error::new(
            Status::GenericFailure,
            "switch_to called on a thread that is not a greenlet thread",
        )
    })?;
    let to = world
        .slot(slot)
        .filter(|to| to.index != me.index)
        .ok_or_else(|| {
            Error::new(
                Status::InvalidArg,
                format!("invalid switch target slot {slot}"),
            )
        })?;
    let mut h = Handoff {
        me,
        to,
        expect: if expect_long {
            Expect::Long
        } else {
            Expect::Soon
        },
    };
    // SAFETY: called by the baton holder from JS (it holds the V8 lock);
    // `h` lives across the call, and `handoff` touches no V8.
    let rc = unsafe {
        greenthread_shim_switch(
            c_int::from(me.index == 0),
            handoff,
            (&mut h as *mut Handoff).cast(),
        )
    };
    Ok(rc == 0)
}

/// Wakes the thread of `slot` early because it is about to be given the
/// baton, so that its kernel wake-up overlaps with the current holder's work.
#[napi(catch_unwind)]
pub fn prepare(slot: u32) -> Result<()> {
    if let Some(to) = world()?.slot(slot) {
        to.baton.prepare();
    }
    Ok(())
}

/// Bytes of JS stack left to the calling greenlet thread; -1 when it runs on
/// a stack not its own (a WebAssembly JSPI stack: blocking there would mix
/// two threads' stack switching, which V8 keeps per isolate); a very large
/// number on other threads. Lets a blocking call refuse before it starts.
#[napi(catch_unwind)]
pub fn stack_room() -> f64 {
    // SAFETY: reads thread-locals and the address of a local only.
    (unsafe { greenthread_shim_stack_room() }) as f64
}

/// Thread counts, for benchmarks and diagnostics.
#[napi(object)]
pub struct ThreadStats {
    /// Greenlet threads ever created (slots other than main).
    pub threads: u32,
    /// Of which idle in the pool now.
    pub idle: u32,
}

#[napi(catch_unwind)]
pub fn thread_stats() -> Result<ThreadStats> {
    let world = world()?;
    let threads = world.slots.read().unwrap_or_else(|e| e.into_inner()).len() as u32 - 1;
    let idle = world.idle.lock().unwrap_or_else(|e| e.into_inner()).len() as u32;
    Ok(ThreadStats { threads, idle })
}

/// Before a CPU profile starts: SIGPROF back at its default action (a
/// `process.on('SIGPROF')` listener removed) is set to be ignored again, so
/// that the profile may stop on another thread (see the shim's rule 7).
#[napi(catch_unwind)]
pub fn ignore_stray_sigprof() {
    // SAFETY: reads and sets a signal disposition; touches no V8 state.
    unsafe { greenthread_shim_ignore_stray_sigprof() }
}
