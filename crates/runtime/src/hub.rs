//! The native half of the hub: timers and completions from other threads.
//!
//! The scheduler itself (greenlet records, run queue, joins, parents, kills)
//! lives on the JS thread, in `src/hub.ts`: async greenlets run there, and a
//! boundary crossing per event would cost more than the event. What only a
//! native side does well stays here:
//! - **timers**: a deadline heap and a clock thread ([`Alarm`]) that wakes the
//!   front end once per batch of expired timers, even while its event loop
//!   has nothing else to do;
//! - **completions from other threads** (sockets, executors, the sync-mode
//!   baton): [`Remote`] queues the ids of waits to end and wakes the front
//!   end once per batch.
//!
//! The front end hands timer commands over in one buffer per turn
//! ([`Hub::flush`]) and receives, in the same call, what has happened since:
//! completed waits first, in the order they completed, then expired timers
//! in deadline order.
//!
//! Timers are keyed by what the front end chooses: `src/hub.ts` names each
//! by a slot it reuses, with the slot's serial as the epoch.
//!
//! # Invariants
//! - A timer key has at most one live timer: adding one replaces the previous
//!   (its epoch names which use of the key it belongs to).
//! - An entry leaves the heap lazily: a cancelled timer stays until it
//!   expires or the heap is compacted, but is never delivered.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::alarm::{Alarm, Wake};
use crate::timers::Timers;

/// Ids are small sequential integers chosen by the front end; SipHash's
/// resistance to chosen keys buys nothing here and costs most of a lookup.
/// A multiplicative (Fibonacci) hash spreads sequential ids well.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// One instruction from the front end, applied in order by [`Hub::flush`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    /// Start the timer of wait `epoch` of `id`, due at `due`.
    AddTimer { id: u32, epoch: u32, due: Due },
    /// Forget the timer of `id`, if any.
    CancelTimer { id: u32 },
}

/// What a flush reports: a wait completed by another thread, or a timer
/// that expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Completed { id: u32 },
    Expired { id: u32, epoch: u32 },
}

/// Wire format: commands travel as quads of f64 `[op, id, a, b]` so that the
/// front end can write them into one typed array without allocating.
pub mod wire {
    /// `[ADD_TIMER, id, deadline, epoch]`, the deadline on the front end's clock.
    pub const ADD_TIMER: u8 = 1;
    /// `[CANCEL_TIMER, id, 0, 0]`.
    pub const CANCEL_TIMER: u8 = 2;
    /// f64s per command.
    pub const COMMAND_WIDTH: usize = 4;
    /// f64s of the header of the output buffer: events written, more events
    /// pending (1) or not (0), the next deadline in ms from now (-1: none).
    pub const OUT_HEADER: usize = 4;
    /// f64s per event: id, then the timer's epoch or [`COMPLETED`].
    pub const EVENT_WIDTH: usize = 2;
    /// The second field of a completion event.
    pub const COMPLETED: f64 = -1.0;
}

/// When a timer is due, in milliseconds from the flush that applies it.
///
/// Front ends write deadlines on their own clock, so that a timer counts from
/// the call and not from the flush; one written before a long busy stretch is
/// already overdue when applied (negative). Overdue timers keep their real
/// deadlines, so they still expire in deadline order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Due(pub f64);

impl Due {
    fn instant(self, now: Instant) -> Instant {
        let offset = Duration::from_secs_f64(self.0.abs().min(1e12) / 1000.0);
        if self.0 >= 0.0 {
            now + offset
        } else {
            now.checked_sub(offset).unwrap_or(now)
        }
    }
}

fn u32_from(x: f64, what: &str) -> Result<u32, String> {
    if x >= 0.0 && x <= u32::MAX as f64 && x.fract() == 0.0 {
        Ok(x as u32)
    } else {
        Err(format!("invalid {what} {x} in hub command"))
    }
}

impl Command {
    /// Decodes one `[op, id, a, b]` quad; `now` is the front end's clock in
    /// milliseconds, the one its deadlines are written in.
    pub fn decode(quad: &[f64], now: f64) -> Result<Command, String> {
        let &[op, id, a, b] = quad else {
            return Err("hub command must have 4 fields".into());
        };
        let id = u32_from(id, "wait id")?;
        Ok(match op as u8 {
            wire::ADD_TIMER if a.is_finite() => Command::AddTimer {
                id,
                epoch: u32_from(b, "epoch")?,
                due: Due(a - now),
            },
            wire::CANCEL_TIMER => Command::CancelTimer { id },
            _ => return Err(format!("unknown hub command {op} (or bad deadline {a})")),
        })
    }
}

/// Counts of what a flush delivered and what is still pending.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FlushStats {
    pub delivered: usize,
    /// Events are left for the next flush (the output was full).
    pub more: bool,
    /// Time to the earliest live timer.
    pub next_deadline: Option<Duration>,
}

/// A thread-safe handle for ending waits from other threads (I/O and
/// executor completions). Completions are queued and reported, in order, by
/// the next [`Hub::flush`]; the front end is woken once per batch.
///
/// Use it only for waits whose id is never reused (transient waits), so that
/// a completion arriving after its wait was interrupted wakes nobody.
#[derive(Clone)]
pub struct Remote {
    inbox: Arc<Mutex<Vec<u32>>>,
    wake: Option<Wake>,
}

impl Remote {
    pub fn unpark(&self, id: u32) {
        self.unpark_all(std::iter::once(id));
    }

    /// Ends several waits with a single wake-up of the front end.
    pub fn unpark_all(&self, ids: impl IntoIterator<Item = u32>) {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = inbox.is_empty();
        inbox.extend(ids);
        let wake_needed = was_empty && !inbox.is_empty();
        drop(inbox);
        if wake_needed {
            if let Some(wake) = &self.wake {
                wake();
            }
        }
    }
}

pub struct Hub {
    timers: Timers,
    /// The epoch of each id's live timer.
    live: IdMap<u32>,
    remote: Remote,
    alarm: Option<Alarm>,
}

/// Rebuild the timer heap when stale entries outnumber live ones by this much.
const STALE_TIMER_SLACK: usize = 4096;

impl Hub {
    /// A hub whose expired timers and completions are announced through
    /// `wake`. Its clock is a thread of its own: the `may` runtime starts
    /// only with the first socket.
    pub fn new(wake: Wake) -> std::io::Result<Hub> {
        let mut hub = Hub::without_alarm();
        hub.remote.wake = Some(wake.clone());
        hub.alarm = Some(Alarm::new(wake)?);
        Ok(hub)
    }

    /// A hub that never wakes anyone: the caller polls [`Hub::flush`]
    /// (tests, or a front end with its own clock).
    pub fn without_alarm() -> Hub {
        Hub {
            timers: Timers::default(),
            live: IdMap::default(),
            remote: Remote {
                inbox: Arc::default(),
                wake: None,
            },
            alarm: None,
        }
    }

    /// A handle other threads use to end waits of this hub.
    pub fn remote(&self) -> Remote {
        self.remote.clone()
    }

    /// Applies `commands`, then reports up to `max_events` events: the
    /// completions queued by other threads, then the timers expired by now.
    pub fn flush(
        &mut self,
        commands: impl IntoIterator<Item = Command>,
        max_events: usize,
        out: &mut impl FnMut(Event),
    ) -> FlushStats {
        let now = Instant::now();
        for command in commands {
            match command {
                Command::AddTimer { id, epoch, due } => {
                    self.live.insert(id, epoch);
                    self.timers.insert(due.instant(now), id, epoch);
                }
                Command::CancelTimer { id } => {
                    self.live.remove(&id);
                }
            }
        }
        let mut delivered = 0;
        let mut more = false;
        {
            let mut inbox = self.remote.inbox.lock().unwrap_or_else(|e| e.into_inner());
            let take = inbox.len().min(max_events);
            for id in inbox.drain(..take) {
                out(Event::Completed { id });
            }
            delivered += take;
            more |= !inbox.is_empty();
        }
        let now = Instant::now();
        while delivered < max_events {
            let Some(entry) = self.timers.pop_expired(now) else {
                break;
            };
            if self.live.get(&entry.id) != Some(&entry.epoch) {
                continue;
            }
            self.live.remove(&entry.id);
            out(Event::Expired {
                id: entry.id,
                epoch: entry.epoch,
            });
            delivered += 1;
        }
        self.compact_timers();
        let live = &self.live;
        let next = self
            .timers
            .next_live_deadline(|e| live.get(&e.id) == Some(&e.epoch));
        more |= next.is_some_and(|deadline| deadline <= now);
        if let (Some(alarm), Some(deadline)) = (&self.alarm, next) {
            // Cheap when nothing changed: the alarm only wakes its thread when
            // the deadline is earlier than the one it sleeps towards.
            alarm.arm(deadline);
        }
        FlushStats {
            delivered,
            more,
            next_deadline: next.map(|deadline| deadline.saturating_duration_since(now)),
        }
    }

    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.live.len() + STALE_TIMER_SLACK {
            return;
        }
        let live = &self.live;
        self.timers.retain(|e| live.get(&e.id) == Some(&e.epoch));
    }

    /// Timers not yet expired or cancelled.
    pub fn live_timers(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flush(hub: &mut Hub, cmds: &[Command]) -> Vec<Event> {
        let mut out = Vec::new();
        hub.flush(cmds.iter().copied(), usize::MAX, &mut |e| out.push(e));
        out
    }

    fn add(id: u32, epoch: u32, ms: f64) -> Command {
        Command::AddTimer {
            id,
            epoch,
            due: Due(ms),
        }
    }

    #[test]
    fn timers_expire_in_deadline_order_then_fifo() {
        let mut hub = Hub::without_alarm();
        assert!(
            flush(
                &mut hub,
                &[add(1, 0, 5.0), add(2, 0, -3.0), add(3, 0, -3.0)]
            )
            .len()
                == 2
        );
        std::thread::sleep(Duration::from_millis(8));
        assert_eq!(
            flush(&mut hub, &[]),
            vec![Event::Expired { id: 1, epoch: 0 }]
        );
        let mut hub = Hub::without_alarm();
        assert_eq!(
            flush(
                &mut hub,
                &[add(4, 0, -1.0), add(2, 0, -3.0), add(3, 0, -3.0)]
            ),
            vec![
                Event::Expired { id: 2, epoch: 0 },
                Event::Expired { id: 3, epoch: 0 },
                Event::Expired { id: 4, epoch: 0 },
            ]
        );
        assert_eq!(hub.live_timers(), 0);
    }

    #[test]
    fn a_cancelled_or_replaced_timer_is_never_delivered() {
        let mut hub = Hub::without_alarm();
        flush(&mut hub, &[add(1, 0, 1.0), add(2, 0, 1.0)]);
        flush(&mut hub, &[Command::CancelTimer { id: 1 }, add(2, 1, 1.0)]);
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(
            flush(&mut hub, &[]),
            vec![Event::Expired { id: 2, epoch: 1 }]
        );
    }

    #[test]
    fn the_next_deadline_is_a_live_timers_not_a_cancelled_ones() {
        let mut hub = Hub::without_alarm();
        let mut stats = |cmds: &[Command]| hub.flush(cmds.iter().copied(), usize::MAX, &mut |_| {});
        let early = stats(&[add(1, 0, 5.0), Command::CancelTimer { id: 1 }]);
        assert!(
            early.next_deadline.is_none(),
            "only a cancelled timer: the clock sleeps"
        );
        let later = stats(&[
            add(2, 0, 10.0),
            add(3, 0, 1_000.0),
            Command::CancelTimer { id: 2 },
        ]);
        let next = later.next_deadline.expect("a live timer");
        assert!(
            next > Duration::from_millis(500),
            "{next:?}: the cancelled 10 ms timer is skipped"
        );
    }

    #[test]
    fn output_is_bounded_and_the_rest_comes_next_time() {
        let mut hub = Hub::without_alarm();
        hub.remote().unpark_all([7, 8]);
        let mut out = Vec::new();
        let cmds = [add(1, 0, -1.0), add(2, 0, -1.0)];
        let stats = hub.flush(cmds, 3, &mut |e| out.push(e));
        assert_eq!(
            out,
            vec![
                Event::Completed { id: 7 },
                Event::Completed { id: 8 },
                Event::Expired { id: 1, epoch: 0 },
            ]
        );
        assert!(stats.more);
        assert_eq!(
            flush(&mut hub, &[]),
            vec![Event::Expired { id: 2, epoch: 0 }]
        );
    }

    #[test]
    fn completions_from_other_threads_arrive_in_order() {
        let mut hub = Hub::without_alarm();
        let remote = hub.remote();
        std::thread::spawn(move || remote.unpark_all([8, 7, 99]))
            .join()
            .unwrap();
        assert_eq!(
            flush(&mut hub, &[]),
            vec![
                Event::Completed { id: 8 },
                Event::Completed { id: 7 },
                Event::Completed { id: 99 },
            ]
        );
    }

    #[test]
    fn stale_entries_are_compacted() {
        let mut hub = Hub::without_alarm();
        let n = (STALE_TIMER_SLACK + 10) as u32;
        let adds: Vec<_> = (0..n).map(|id| add(id, 0, 60_000.0)).collect();
        flush(&mut hub, &adds);
        let cancels: Vec<_> = (0..n).map(|id| Command::CancelTimer { id }).collect();
        flush(&mut hub, &cancels);
        assert_eq!(hub.timers.len(), 0);
    }

    #[test]
    fn decode_rejects_unknown_ops_and_bad_ids() {
        assert!(Command::decode(&[99.0, 1.0, 0.0, 0.0], 0.0).is_err());
        assert!(Command::decode(&[1.0, -1.0, 0.0, 0.0], 0.0).is_err());
        assert!(Command::decode(&[1.0, 1.0, f64::NAN, 0.0], 0.0).is_err());
        // Deadlines are absolute: one already past expires at once.
        assert_eq!(
            Command::decode(&[wire::ADD_TIMER as f64, 7.0, 120.0, 3.0], 100.0),
            Ok(add(7, 3, 20.0))
        );
        assert_eq!(
            Command::decode(&[wire::ADD_TIMER as f64, 7.0, 90.0, 0.0], 100.0),
            Ok(add(7, 0, -10.0))
        );
    }
}

#[cfg(test)]
mod alarm_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn alarm_wakes_the_front_end_once_timers_expire() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = wakes.clone();
        let mut hub = Hub::new(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap();
        let mut out = Vec::new();
        let cmds = [
            Command::AddTimer {
                id: 1,
                epoch: 0,
                due: Due(10.0),
            },
            Command::AddTimer {
                id: 2,
                epoch: 0,
                due: Due(10.0),
            },
        ];
        hub.flush(cmds, usize::MAX, &mut |e| out.push(e));
        let deadline = Instant::now() + Duration::from_secs(2);
        while wakes.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "one wake-up for the batch");
        out.clear();
        hub.flush([], usize::MAX, &mut |e| out.push(e));
        assert_eq!(out.len(), 2);
    }
}
