//! The baton: the exclusive right to run, handed directly from one OS thread
//! to another.
//!
//! Sync greenlets are OS threads that share one JS isolate; exactly one of
//! them may run at a time. Each thread owns one [`Baton`], its wake-up word.
//! Passing control is [`Baton::give`] on the target's baton followed by
//! [`Baton::take`] on one's own: the giver stops running the moment it gives,
//! and runs again only when somebody gives its baton back.
//!
//! # Waiting
//! A waiter first spins for a short while (a thread woken from the kernel
//! takes ~10 µs on a small VM, far more than a switch should), then sleeps in
//! the kernel (`std::thread::park`, a futex on Linux). The spin is adaptive
//! and bounded so that an idle process never burns a core:
//! - [`Expect::Long`] waits (a timed sleep) never spin;
//! - [`Expect::Soon`] waits spin for at most [`MAX_SPIN`], and only while this
//!   baton's recent waits were short: an exponential average of how long the
//!   giver took, measured from the give itself (so a wait that slept in the
//!   kernel does not count the wake-up, which would keep a thread that slept
//!   once from ever spinning again); a thread whose waits are long stops
//!   spinning after a few;
//! - [`Baton::prepare`] lets whoever knows that a thread is next (the hub
//!   walking its ready batch) wake that thread early, so that the kernel
//!   wake-up overlaps with the current holder's work; the woken thread waits
//!   for at most [`PREPARED_SPIN`], yielding the CPU between checks (so it
//!   never keeps the holder off a core), and then sleeps again.
//! - On a single CPU (the process's affinity, or its cgroup quota) neither
//!   helps: the thread the waiter waits for cannot run while it spins, and an
//!   early wake-up only adds a context switch. There waiters sleep at once
//!   and `prepare` does nothing.
//!
//! # Invariants
//! - At most one `give` is outstanding per baton: the protocol (exactly one
//!   holder, who gives exactly once before taking) guarantees it.
//! - Only the owner thread calls [`Baton::take`]; anyone may call `give` and
//!   `prepare`.
//! - Everything the giver wrote before `give` happens-before everything the
//!   taker does after `take` returns (release/acquire on the word).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Longest spin of an [`Expect::Soon`] wait before sleeping in the kernel.
pub const MAX_SPIN: Duration = Duration::from_micros(100);
/// Longest wait of a thread woken early by [`Baton::prepare`] before it
/// sleeps again.
pub const PREPARED_SPIN: Duration = Duration::from_micros(300);

/// Nobody gave, the owner is not asleep.
const EMPTY: u32 = 0;
/// The baton was given and not taken yet.
const GIVEN: u32 = 1;
/// The owner sleeps in the kernel and must be unparked.
const SLEEPING: u32 = 2;
/// The owner was unparked early and spins: the baton is coming.
const PREPARED: u32 = 3;

/// Spin iterations between two reads of the clock.
const SPINS_PER_CLOCK_READ: u32 = 64;
/// Waits longer than this count as this long in the average.
const WAIT_CAP_NS: u32 = 1_000_000;

/// How soon a waiter expects the baton back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Probably within microseconds (a switch, a yield): spin adaptively.
    Soon,
    /// Not for a while (a timed sleep, a new thread waiting for work): sleep
    /// in the kernel at once.
    Long,
}

/// One thread's wake-up word. See the module documentation.
pub struct Baton {
    word: AtomicU32,
    owner: Thread,
    /// When the baton was last given, in nanoseconds since [`epoch`].
    given_at_ns: AtomicU64,
    /// Exponential average (weight 1/4) of how long this baton's waits
    /// lasted until the give, capped at [`WAIT_CAP_NS`]. Written by the
    /// owner only.
    average_wait_ns: AtomicU32,
}

/// The clock of `given_at_ns`: nanoseconds since the first use.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Whether this process may run on more than one CPU (read once).
fn multicore() -> bool {
    static MULTICORE: OnceLock<bool> = OnceLock::new();
    *MULTICORE.get_or_init(|| thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// How long a wait spins before sleeping: only an [`Expect::Soon`] wait on
/// more than one CPU whose recent waits were short.
fn spin_limit(expect: Expect, average_wait: Duration, multicore: bool) -> Duration {
    if expect == Expect::Soon && multicore && average_wait <= MAX_SPIN {
        MAX_SPIN
    } else {
        Duration::ZERO
    }
}

fn nanos_since_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

impl Baton {
    /// A baton owned by the calling thread.
    pub fn for_current_thread() -> Baton {
        Baton::for_thread(thread::current())
    }

    /// A baton owned by `owner` (for instance a thread just spawned, from
    /// its `JoinHandle`).
    pub fn for_thread(owner: Thread) -> Baton {
        Baton {
            word: AtomicU32::new(EMPTY),
            owner,
            given_at_ns: AtomicU64::new(0),
            average_wait_ns: AtomicU32::new(0),
        }
    }

    /// Hands the baton to its owner, waking it if it sleeps.
    pub fn give(&self) {
        // Published by the swap below (release), read after it (acquire).
        self.given_at_ns
            .store(nanos_since_epoch(Instant::now()), Ordering::Relaxed);
        if self.word.swap(GIVEN, Ordering::AcqRel) != EMPTY {
            // SLEEPING or PREPARED: unparking a thread that is not parked
            // only leaves a token, which `take` tolerates.
            self.owner.unpark();
        }
    }

    /// Tells a sleeping owner that the baton is coming soon, so that it wakes
    /// up now and spins. Does nothing if the owner is not asleep.
    pub fn prepare(&self) {
        if multicore()
            && self
                .word
                .compare_exchange(SLEEPING, PREPARED, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.owner.unpark();
        }
    }

    /// Blocks the owner until the baton is given (returns at once if it
    /// already was). Must be called by the owner thread only.
    pub fn take(&self, expect: Expect) {
        debug_assert_eq!(
            thread::current().id(),
            self.owner.id(),
            "Baton::take called by a thread that does not own it"
        );
        let start = Instant::now();
        let average = Duration::from_nanos(self.average_wait_ns.load(Ordering::Relaxed).into());
        let spin = spin_limit(expect, average, multicore());
        if !self.spin_until_given(start, spin) {
            self.sleep_until_given();
        }
        // Only the owner moves the word away from GIVEN.
        self.word.store(EMPTY, Ordering::Relaxed);
        let given_at = self.given_at_ns.load(Ordering::Relaxed);
        self.learn(Duration::from_nanos(
            given_at.saturating_sub(nanos_since_epoch(start)),
        ));
    }

    /// Spins until the baton is given or `limit` has passed since `start`.
    fn spin_until_given(&self, start: Instant, limit: Duration) -> bool {
        if limit.is_zero() {
            return self.word.load(Ordering::Acquire) == GIVEN;
        }
        loop {
            for _ in 0..SPINS_PER_CLOCK_READ {
                if self.word.load(Ordering::Acquire) == GIVEN {
                    return true;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= limit {
                return false;
            }
        }
    }

    /// Waits for the baton by yielding the CPU between checks, until `limit`
    /// has passed since `start`. For a thread woken early by `prepare`:
    /// busy-spinning there was measured to be harmful on a 2-vCPU VM, where
    /// the woken thread can preempt the very holder it waits for.
    fn yield_until_given(&self, start: Instant, limit: Duration) -> bool {
        loop {
            if self.word.load(Ordering::Acquire) == GIVEN {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            thread::yield_now();
        }
    }

    fn sleep_until_given(&self) {
        loop {
            match self
                .word
                .compare_exchange(EMPTY, SLEEPING, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) | Err(SLEEPING) => thread::park(),
                Err(GIVEN) => return,
                Err(_) => {
                    // PREPARED: woken early, the giver is about to give.
                    if self.yield_until_given(Instant::now(), PREPARED_SPIN) {
                        return;
                    }
                    // Not yet: sleep again, unless it was given meanwhile.
                    if let Err(GIVEN) = self.word.compare_exchange(
                        PREPARED,
                        SLEEPING,
                        Ordering::Acquire,
                        Ordering::Acquire,
                    ) {
                        return;
                    }
                }
            }
        }
    }

    fn learn(&self, waited: Duration) {
        let waited = u32::try_from(waited.as_nanos())
            .unwrap_or(u32::MAX)
            .min(WAIT_CAP_NS);
        let average = self.average_wait_ns.load(Ordering::Relaxed);
        let next = (u64::from(average) * 3 + u64::from(waited)) / 4;
        // Both operands are capped at WAIT_CAP_NS, so this fits.
        self.average_wait_ns.store(next as u32, Ordering::Relaxed);
    }
}

/// Gives `to` and blocks until `me` is given back: a direct transfer of
/// control. `me` must be owned by the calling thread.
pub fn hand_over(me: &Baton, to: &Baton, expect: Expect) {
    to.give();
    me.take(expect);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;

    /// A thread with its own baton, reporting the baton back to the test.
    fn spawn_owner(
        body: impl FnOnce(Arc<Baton>) + Send + 'static,
    ) -> (Arc<Baton>, thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            let baton = Arc::new(Baton::for_current_thread());
            tx.send(baton.clone()).unwrap();
            body(baton);
        });
        (rx.recv().unwrap(), handle)
    }

    #[test]
    fn ping_pong_alternates_strictly() {
        const ROUNDS: u32 = 20_000;
        let main = Arc::new(Baton::for_current_thread());
        let counter = Arc::new(AtomicU32::new(0));
        let (main2, counter2) = (main.clone(), counter.clone());
        let (peer, handle) = spawn_owner(move |me| {
            for i in 0..ROUNDS {
                me.take(Expect::Soon);
                // Only the baton holder touches the counter: no lost update.
                assert_eq!(counter2.load(Ordering::Relaxed), 2 * i + 1);
                counter2.store(2 * i + 2, Ordering::Relaxed);
                main2.give();
            }
        });
        for i in 0..ROUNDS {
            assert_eq!(counter.load(Ordering::Relaxed), 2 * i);
            counter.store(2 * i + 1, Ordering::Relaxed);
            hand_over(&main, &peer, Expect::Soon);
        }
        handle.join().unwrap();
        assert_eq!(counter.load(Ordering::Relaxed), 2 * ROUNDS);
    }

    #[test]
    fn give_before_take_is_not_lost() {
        let (baton, handle) = spawn_owner(|me| {
            thread::sleep(Duration::from_millis(20));
            me.take(Expect::Long);
        });
        baton.give();
        handle.join().unwrap();
    }

    #[test]
    fn sleeping_owner_is_woken_by_give_and_prepare_then_give() {
        let (done_tx, done_rx) = mpsc::channel();
        let (baton, handle) = spawn_owner(move |me| {
            me.take(Expect::Long);
            done_tx.send(1).unwrap();
            me.take(Expect::Long);
            done_tx.send(2).unwrap();
        });
        thread::sleep(Duration::from_millis(20));
        baton.give();
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
        thread::sleep(Duration::from_millis(20));
        baton.prepare();
        // Longer than PREPARED_SPIN: the owner must go back to sleep and
        // still wake for the give.
        thread::sleep(Duration::from_millis(5));
        assert!(
            done_rx.try_recv().is_err(),
            "prepare alone must not hand over the baton"
        );
        baton.give();
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(5)).unwrap(), 2);
        handle.join().unwrap();
    }

    #[test]
    fn long_waits_stop_the_spinning() {
        let baton = Baton::for_current_thread();
        for _ in 0..8 {
            baton.learn(Duration::from_millis(5));
        }
        assert!(
            u64::from(baton.average_wait_ns.load(Ordering::Relaxed)) > MAX_SPIN.as_nanos() as u64
        );
        for _ in 0..32 {
            baton.learn(Duration::from_nanos(500));
        }
        assert!(
            u64::from(baton.average_wait_ns.load(Ordering::Relaxed)) <= MAX_SPIN.as_nanos() as u64
        );
    }

    #[test]
    fn only_short_waits_on_more_than_one_cpu_spin() {
        let short = Duration::from_micros(5);
        assert_eq!(spin_limit(Expect::Soon, short, true), MAX_SPIN);
        // Recent waits were long: sleep at once.
        assert_eq!(spin_limit(Expect::Soon, MAX_SPIN * 2, true), Duration::ZERO);
        assert_eq!(spin_limit(Expect::Long, short, true), Duration::ZERO);
        // One CPU: the giver cannot run while the waiter spins.
        assert_eq!(spin_limit(Expect::Soon, short, false), Duration::ZERO);
        assert_eq!(
            spin_limit(Expect::Soon, Duration::ZERO, false),
            Duration::ZERO
        );
    }
}
