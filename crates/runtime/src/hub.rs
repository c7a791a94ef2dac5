//! The hub: greenlet table, parent links, run queue, timers, joins and kills.
//!
//! The hub is a state machine owned by one front-end thread (the JS thread).
//! The front end never calls it per event: it appends [`Command`]s to a buffer
//! and hands the whole buffer to [`Hub::flush`], which applies them in order,
//! collects expired timers, and returns the run queue as [`Ready`] entries.
//! Resuming a ready greenlet is the front end's business: settle a Promise in
//! async mode, pass the baton to its thread in sync mode. Nothing here knows
//! which.
//!
//! # States
//! A record is `Created` (joined before it started), `Scheduled` (start
//! pending on a timer), `Ready` (in the run
//! queue with the [`Outcome`] it will be resumed with), `Running` (from the
//! hub's view: it may be executing or awaiting something foreign) or `Parked`
//! (suspended in a hub wait, possibly with a timer).
//!
//! # Invariants
//! - An id is in the run queue at most once (`queued`).
//! - Every wait gets a new `epoch`; timers and join registrations carry the
//!   epoch they were made for and are ignored once it has passed, so
//!   cancelling is O(1) and never searches.
//! - `live_timers` counts records whose current wait has a timer: the front
//!   end keeps its process alive exactly while this is non-zero.
//!
//! Ids are chosen by the front end (it needs them synchronously); a command
//! naming an unknown id for a wait creates a *transient* record, used by code
//! that waits outside any greenlet. Transient records vanish once resumed.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::alarm::{Alarm, Wake};
use crate::timers::Timers;

/// No parent: the greenlet returns to the hub when it finishes.
pub const NO_PARENT: u32 = 0;

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

/// How a ready greenlet is to be resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// Run the greenlet's function for the first time.
    Start = 1,
    /// Its wait ended normally: `yield` came round, an unpark, a join, a
    /// switch back from a finished child.
    Wake = 2,
    /// The timer of its wait (or its sleep) expired.
    Timer = 3,
    /// An exception (kill, Timeout) is to be raised at its wait.
    Interrupt = 4,
}

/// One instruction from the front end, applied in order by [`Hub::flush`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    /// Register a greenlet; it starts after `delay` (now if `None`).
    Spawn { id: u32, delay: Option<Due> },
    /// Go to the back of the run queue (`sleep(0)`).
    Yield { id: u32 },
    /// Suspend until unparked, interrupted, or the timeout expires.
    Park { id: u32, timeout: Option<Due> },
    /// Suspend in a `switch()`; a finishing child resumes it with `Wake`.
    ParkSwitch { id: u32 },
    /// End a park with `Wake` (ignored unless parked).
    Unpark { id: u32 },
    /// The front end resumed or started `id` directly (a switch): it is
    /// running now, and returns to `parent` when it finishes.
    Resumed { id: u32, parent: u32 },
    /// `id` now returns to `parent` when it finishes (the front end checked
    /// that this makes no cycle).
    SetParent { id: u32, parent: u32 },
    /// Suspend until `count` of the greenlets named by the following `Join`
    /// commands have died (or, with `raise_error`, one of them failed).
    JoinWait {
        id: u32,
        count: u32,
        timeout: Option<Due>,
        raise_error: bool,
    },
    /// Register `waiter` (which just issued `JoinWait`) with `target`.
    Join { waiter: u32, target: u32 },
    /// `id` finished; `failed` if it raised.
    Die { id: u32, failed: bool },
    /// Raise an exception at the current or next wait of `id`.
    Interrupt { id: u32 },
    /// Forget a transient record (a cancelled alarm).
    Discard { id: u32 },
}

/// Wire format: commands travel as quads of f64 `[op, id, a, b]` so that the
/// front end can write them into one typed array without allocating.
pub mod wire {
    pub const SPAWN: u8 = 1;
    pub const YIELD: u8 = 2;
    pub const PARK: u8 = 3;
    pub const PARK_SWITCH: u8 = 4;
    pub const UNPARK: u8 = 5;
    pub const RESUMED: u8 = 6;
    pub const JOIN_WAIT: u8 = 7;
    pub const JOIN_WAIT_RAISE: u8 = 8;
    pub const JOIN: u8 = 9;
    pub const DIE: u8 = 10;
    pub const INTERRUPT: u8 = 11;
    pub const DISCARD: u8 = 12;
    pub const SET_PARENT: u8 = 13;
    /// f64s per command.
    pub const COMMAND_WIDTH: usize = 4;
    /// f64s of the header of the output buffer: delivered, still queued,
    /// live timers.
    pub const OUT_HEADER: usize = 4;
    /// f64s per ready entry: id, outcome.
    pub const READY_WIDTH: usize = 2;
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

/// A deadline on the front end's clock as a [`Due`]; `now` is that clock's
/// reading at the flush. Negative deadlines mean "no timeout".
fn due(deadline: f64, now: f64) -> Option<Due> {
    (deadline >= 0.0).then_some(Due(deadline - now))
}

fn id_from(x: f64) -> Result<u32, String> {
    if x >= 0.0 && x <= u32::MAX as f64 && x.fract() == 0.0 {
        Ok(x as u32)
    } else {
        Err(format!("invalid greenlet id {x} in hub command"))
    }
}

impl Command {
    /// Decodes one `[op, id, a, b]` quad; `now` is the front end's clock in
    /// milliseconds, the one its deadlines are written in.
    pub fn decode(quad: &[f64], now: f64) -> Result<Command, String> {
        let &[op, id, a, b] = quad else {
            return Err("hub command must have 4 fields".into());
        };
        let id = id_from(id)?;
        Ok(match op as u8 {
            wire::SPAWN => Command::Spawn {
                id,
                delay: (a > 0.0).then_some(Due(a - now)),
            },
            wire::YIELD => Command::Yield { id },
            wire::PARK => Command::Park {
                id,
                timeout: due(a, now),
            },
            wire::PARK_SWITCH => Command::ParkSwitch { id },
            wire::UNPARK => Command::Unpark { id },
            wire::RESUMED => Command::Resumed {
                id,
                parent: id_from(a)?,
            },
            wire::JOIN_WAIT | wire::JOIN_WAIT_RAISE => Command::JoinWait {
                id,
                count: id_from(a)?,
                timeout: due(b, now),
                raise_error: op as u8 == wire::JOIN_WAIT_RAISE,
            },
            wire::JOIN => Command::Join {
                waiter: id,
                target: id_from(a)?,
            },
            wire::SET_PARENT => Command::SetParent {
                id,
                parent: id_from(a)?,
            },
            wire::DIE => Command::Die {
                id,
                failed: a != 0.0,
            },
            wire::INTERRUPT => Command::Interrupt { id },
            wire::DISCARD => Command::Discard { id },
            _ => return Err(format!("unknown hub command {op}")),
        })
    }
}

/// A greenlet to resume, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    pub id: u32,
    pub outcome: Outcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Created,
    Scheduled,
    Ready(Outcome),
    Running,
    Parked,
}

struct JoinWait {
    remaining: u32,
    raise_error: bool,
}

struct Record {
    state: State,
    epoch: u32,
    queued: bool,
    has_timer: bool,
    interrupt_pending: bool,
    in_switch: bool,
    transient: bool,
    parent: u32,
    joiners: Vec<(u32, u32)>,
    join_wait: Option<JoinWait>,
}

impl Record {
    fn new(state: State, transient: bool, parent: u32) -> Record {
        Record {
            state,
            epoch: 0,
            queued: false,
            has_timer: false,
            interrupt_pending: false,
            in_switch: false,
            transient,
            parent,
            joiners: Vec::new(),
            join_wait: None,
        }
    }
}

/// Counts of what a flush delivered and what is still pending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub delivered: usize,
    pub still_queued: usize,
    pub live_timers: usize,
}

/// A thread-safe handle for ending parks from other threads (I/O and
/// executor completions). Unparks are queued and applied, in order, at the
/// start of the next [`Hub::flush`]; the front end is woken once per batch.
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

    /// Ends several parks with a single wake-up of the front end.
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
    records: IdMap<Record>,
    remote: Remote,
    run_queue: VecDeque<u32>,
    timers: Timers,
    live_timers: usize,
    alarm: Option<Alarm>,
}

/// Rebuild the timer heap when stale entries outnumber live ones by this much.
const STALE_TIMER_SLACK: usize = 4096;

impl Hub {
    /// A hub whose expired timers are announced through `wake`. Starts the
    /// runtime if it is not running yet (and fails if it cannot).
    pub fn new(wake: Wake) -> std::io::Result<Hub> {
        crate::runtime::ensure_started()?;
        let mut hub = Hub::without_alarm();
        hub.remote.wake = Some(wake.clone());
        hub.alarm = Some(Alarm::new(wake));
        Ok(hub)
    }

    /// A hub that never wakes anyone: the caller polls [`Hub::flush`]
    /// (tests, or a front end with its own clock).
    pub fn without_alarm() -> Hub {
        Hub {
            records: IdMap::default(),
            remote: Remote {
                inbox: Arc::default(),
                wake: None,
            },
            run_queue: VecDeque::new(),
            timers: Timers::default(),
            live_timers: 0,
            alarm: None,
        }
    }

    /// A handle other threads use to end parks of this hub.
    pub fn remote(&self) -> Remote {
        self.remote.clone()
    }

    /// Applies `commands`, collects expired timers, and moves up to
    /// `max_ready` entries of the run queue into `out`.
    pub fn flush(
        &mut self,
        commands: impl IntoIterator<Item = Command>,
        max_ready: usize,
        out: &mut impl FnMut(Ready),
    ) -> FlushStats {
        let now = Instant::now();
        // The turn's own commands first: a completion may arrive before the
        // PARK of the wait it ends has been flushed, and must still find it.
        for command in commands {
            self.apply(command, now);
        }
        let remote_unparks =
            std::mem::take(&mut *self.remote.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        for id in remote_unparks {
            self.apply(Command::Unpark { id }, now);
        }
        self.expire_timers(Instant::now());
        let mut delivered = 0;
        while delivered < max_ready {
            let Some(id) = self.run_queue.pop_front() else {
                break;
            };
            let Some(record) = self.records.get_mut(&id) else {
                continue;
            };
            record.queued = false;
            let State::Ready(outcome) = record.state else {
                continue;
            };
            record.state = State::Running;
            if record.transient {
                self.records.remove(&id);
            }
            out(Ready { id, outcome });
            delivered += 1;
        }
        self.compact_timers();
        self.rearm();
        FlushStats {
            delivered,
            still_queued: self.run_queue.len(),
            live_timers: self.live_timers,
        }
    }

    fn apply(&mut self, command: Command, now: Instant) {
        match command {
            Command::Spawn { id, delay } => {
                // Keeps the joiners of a placeholder made by an earlier `Join`.
                self.records
                    .entry(id)
                    .or_insert_with(|| Record::new(State::Created, false, NO_PARENT))
                    .state = State::Scheduled;
                match delay {
                    Some(delay) => self.start_timer(id, now, delay),
                    None => self.make_ready(id, Outcome::Start),
                }
            }
            Command::Yield { id } => {
                self.begin_wait(id);
                if !self.deliver_pending_interrupt(id) {
                    self.make_ready(id, Outcome::Wake);
                }
            }
            Command::Park { id, timeout } => {
                self.begin_wait(id);
                if !self.deliver_pending_interrupt(id) {
                    self.park(id, now, timeout);
                }
            }
            Command::ParkSwitch { id } => {
                self.begin_wait(id);
                if !self.deliver_pending_interrupt(id) {
                    self.park(id, now, None);
                    if let Some(r) = self.records.get_mut(&id) {
                        r.in_switch = true;
                    }
                }
            }
            Command::Unpark { id } => {
                if self.state(id) == Some(State::Parked) {
                    self.end_wait(id);
                    self.make_ready(id, Outcome::Wake);
                }
            }
            Command::Resumed { id, parent } => match self.records.get_mut(&id) {
                Some(r) => {
                    if r.parent == NO_PARENT {
                        r.parent = parent;
                    }
                    if r.state == State::Created {
                        r.state = State::Running;
                    } else if let State::Ready(
                        outcome @ (Outcome::Wake | Outcome::Timer | Outcome::Interrupt),
                    ) = r.state
                    {
                        // Resumed directly while its resumption was queued:
                        // that resumption is void (the flush skips records
                        // that are not Ready), but an interrupt must still
                        // reach the next wait.
                        r.state = State::Running;
                        r.interrupt_pending |= outcome == Outcome::Interrupt;
                    } else if r.state == State::Parked {
                        self.end_wait(id);
                        if let Some(r) = self.records.get_mut(&id) {
                            r.state = State::Running;
                        }
                    }
                }
                None => {
                    self.records
                        .insert(id, Record::new(State::Running, false, parent));
                }
            },
            Command::JoinWait {
                id,
                count,
                timeout,
                raise_error,
            } => {
                self.begin_wait(id);
                if !self.deliver_pending_interrupt(id) {
                    self.park(id, now, timeout);
                    if let Some(r) = self.records.get_mut(&id) {
                        r.join_wait = Some(JoinWait {
                            remaining: count.max(1),
                            raise_error,
                        });
                    }
                }
            }
            Command::Join { waiter, target } => {
                let Some(w) = self.records.get(&waiter) else {
                    return;
                };
                if w.state != State::Parked || w.join_wait.is_none() {
                    return;
                }
                let epoch = w.epoch;
                // The front end only joins greenlets that have not died, so an
                // unknown target has not started yet: wait for it in a placeholder.
                self.records
                    .entry(target)
                    .or_insert_with(|| Record::new(State::Created, false, NO_PARENT))
                    .joiners
                    .push((waiter, epoch));
            }
            Command::SetParent { id, parent } => {
                if let Some(r) = self.records.get_mut(&id) {
                    r.parent = parent;
                }
            }
            Command::Die { id, failed } => {
                let Some(record) = self.records.remove(&id) else {
                    return;
                };
                if record.has_timer {
                    self.live_timers -= 1;
                }
                for (waiter, epoch) in record.joiners {
                    self.joined(waiter, epoch, failed);
                }
                if record.parent != NO_PARENT {
                    if let Some(p) = self.records.get(&record.parent) {
                        if p.state == State::Parked && p.in_switch {
                            self.end_wait(record.parent);
                            self.make_ready(record.parent, Outcome::Wake);
                        }
                    }
                }
            }
            Command::Interrupt { id } => match self.state(id) {
                Some(State::Parked | State::Scheduled) => {
                    self.end_wait(id);
                    self.make_ready(id, Outcome::Interrupt);
                }
                Some(State::Ready(_)) => {
                    if let Some(r) = self.records.get_mut(&id) {
                        r.state = State::Ready(Outcome::Interrupt);
                    }
                }
                Some(State::Running) => {
                    if let Some(r) = self.records.get_mut(&id) {
                        r.interrupt_pending = true;
                    }
                }
                Some(State::Created) | None => {}
            },
            Command::Discard { id } => {
                if self.records.get(&id).is_some_and(|r| r.transient) {
                    self.end_wait(id);
                    self.records.remove(&id);
                }
            }
        }
    }

    fn state(&self, id: u32) -> Option<State> {
        self.records.get(&id).map(|r| r.state)
    }

    /// Starts a new wait for `id` (creating a transient record if the id is
    /// unknown) and invalidates whatever the previous wait registered.
    fn begin_wait(&mut self, id: u32) {
        self.records
            .entry(id)
            .or_insert_with(|| Record::new(State::Running, true, NO_PARENT));
        self.end_wait(id);
    }

    /// Ends the current wait of `id`: new epoch, timer released.
    fn end_wait(&mut self, id: u32) {
        if let Some(r) = self.records.get_mut(&id) {
            r.epoch = r.epoch.wrapping_add(1);
            r.join_wait = None;
            r.in_switch = false;
            if r.has_timer {
                r.has_timer = false;
                self.live_timers -= 1;
            }
        }
    }

    fn deliver_pending_interrupt(&mut self, id: u32) -> bool {
        let pending = self
            .records
            .get_mut(&id)
            .is_some_and(|r| std::mem::take(&mut r.interrupt_pending));
        if pending {
            self.make_ready(id, Outcome::Interrupt);
        }
        pending
    }

    fn park(&mut self, id: u32, now: Instant, timeout: Option<Due>) {
        if let Some(r) = self.records.get_mut(&id) {
            r.state = State::Parked;
        }
        if let Some(timeout) = timeout {
            self.start_timer(id, now, timeout);
        }
    }

    fn start_timer(&mut self, id: u32, now: Instant, due: Due) {
        if let Some(r) = self.records.get_mut(&id) {
            r.has_timer = true;
            self.live_timers += 1;
            self.timers.insert(due.instant(now), id, r.epoch);
        }
    }

    fn make_ready(&mut self, id: u32, outcome: Outcome) {
        if let Some(r) = self.records.get_mut(&id) {
            if r.state == State::Ready(Outcome::Interrupt) {
                return;
            }
            r.state = State::Ready(outcome);
            if !r.queued {
                r.queued = true;
                self.run_queue.push_back(id);
            }
        }
    }

    fn joined(&mut self, waiter: u32, epoch: u32, failed: bool) {
        let Some(w) = self.records.get_mut(&waiter) else {
            return;
        };
        if w.epoch != epoch || w.state != State::Parked {
            return;
        }
        let Some(join) = w.join_wait.as_mut() else {
            return;
        };
        join.remaining = if failed && join.raise_error {
            0
        } else {
            join.remaining.saturating_sub(1)
        };
        if join.remaining == 0 {
            self.end_wait(waiter);
            self.make_ready(waiter, Outcome::Wake);
        }
    }

    fn expire_timers(&mut self, now: Instant) {
        while let Some(entry) = self.timers.pop_expired(now) {
            let Some(r) = self.records.get_mut(&entry.id) else {
                continue;
            };
            if r.epoch != entry.epoch || !r.has_timer {
                continue;
            }
            let outcome = match r.state {
                State::Scheduled => Outcome::Start,
                State::Parked => Outcome::Timer,
                _ => continue,
            };
            self.end_wait(entry.id);
            self.make_ready(entry.id, outcome);
        }
    }

    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.live_timers + STALE_TIMER_SLACK {
            return;
        }
        let records = &self.records;
        self.timers.retain(|e| {
            records
                .get(&e.id)
                .is_some_and(|r| r.has_timer && r.epoch == e.epoch)
        });
    }

    fn rearm(&mut self) {
        // Cheap when nothing changed: the alarm only wakes its coroutine when
        // the deadline is earlier than the one it sleeps towards (or it is
        // idle because it just fired).
        if let (Some(alarm), Some(deadline)) = (&self.alarm, self.timers.next_deadline()) {
            alarm.arm(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flush(hub: &mut Hub, cmds: &[Command]) -> Vec<(u32, Outcome)> {
        let mut out = Vec::new();
        hub.flush(cmds.iter().copied(), usize::MAX, &mut |r| {
            out.push((r.id, r.outcome))
        });
        out
    }

    #[test]
    fn spawned_greenlets_start_in_order_and_yield_round_robin() {
        let mut hub = Hub::without_alarm();
        let started = flush(
            &mut hub,
            &[
                Command::Spawn { id: 1, delay: None },
                Command::Spawn { id: 2, delay: None },
            ],
        );
        assert_eq!(started, vec![(1, Outcome::Start), (2, Outcome::Start)]);
        let woke = flush(
            &mut hub,
            &[Command::Yield { id: 2 }, Command::Yield { id: 1 }],
        );
        assert_eq!(woke, vec![(2, Outcome::Wake), (1, Outcome::Wake)]);
    }

    #[test]
    fn timers_fire_in_deadline_order_and_stale_timers_are_ignored() {
        let mut hub = Hub::without_alarm();
        flush(
            &mut hub,
            &[
                Command::Spawn { id: 1, delay: None },
                Command::Spawn { id: 2, delay: None },
            ],
        );
        let ms = |n: f64| Some(Due(n));
        flush(
            &mut hub,
            &[
                Command::Park {
                    id: 1,
                    timeout: ms(20.0),
                },
                Command::Park {
                    id: 2,
                    timeout: ms(5.0),
                },
            ],
        );
        // Unpark 1 early: its timer must not fire later.
        assert_eq!(
            flush(&mut hub, &[Command::Unpark { id: 1 }]),
            vec![(1, Outcome::Wake)]
        );
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(flush(&mut hub, &[]), vec![(2, Outcome::Timer)]);
        assert_eq!(hub.live_timers, 0);
    }

    #[test]
    fn overdue_timers_expire_in_deadline_order_not_command_order() {
        let mut hub = Hub::without_alarm();
        flush(
            &mut hub,
            &[
                Command::Spawn { id: 1, delay: None },
                Command::Spawn { id: 2, delay: None },
            ],
        );
        // Both written long before this flush: 1 was due 5 ms ago, 2 was due 30 ms ago.
        let parks = [
            Command::Park {
                id: 1,
                timeout: Some(Due(-5.0)),
            },
            Command::Park {
                id: 2,
                timeout: Some(Due(-30.0)),
            },
        ];
        assert_eq!(
            flush(&mut hub, &parks),
            vec![(2, Outcome::Timer), (1, Outcome::Timer)]
        );
    }

    #[test]
    fn interrupt_reaches_parked_running_and_unstarted_greenlets() {
        let mut hub = Hub::without_alarm();
        flush(
            &mut hub,
            &[
                Command::Spawn { id: 1, delay: None },
                Command::Spawn { id: 2, delay: None },
            ],
        );
        flush(
            &mut hub,
            &[Command::Park {
                id: 1,
                timeout: None,
            }],
        );
        assert_eq!(
            flush(&mut hub, &[Command::Interrupt { id: 1 }]),
            vec![(1, Outcome::Interrupt)]
        );
        // 2 is running: the interrupt waits for its next wait.
        assert!(flush(&mut hub, &[Command::Interrupt { id: 2 }]).is_empty());
        assert_eq!(
            flush(
                &mut hub,
                &[Command::Park {
                    id: 2,
                    timeout: None
                }]
            ),
            vec![(2, Outcome::Interrupt)]
        );
        // Not started yet (delayed start): interrupted instead of started.
        let out = flush(
            &mut hub,
            &[
                Command::Spawn {
                    id: 3,
                    delay: Some(Due(60_000.0)),
                },
                Command::Interrupt { id: 3 },
            ],
        );
        assert_eq!(out, vec![(3, Outcome::Interrupt)]);
        assert_eq!(hub.live_timers, 0);
    }

    #[test]
    fn join_wait_counts_deaths_and_raise_error_wakes_on_first_failure() {
        let mut hub = Hub::without_alarm();
        flush(
            &mut hub,
            &[1, 2, 3].map(|id| Command::Spawn { id, delay: None }),
        );
        let wait = [
            Command::JoinWait {
                id: 9,
                count: 2,
                timeout: None,
                raise_error: false,
            },
            Command::Join {
                waiter: 9,
                target: 1,
            },
            Command::Join {
                waiter: 9,
                target: 2,
            },
        ];
        assert!(flush(&mut hub, &wait).is_empty());
        assert!(flush(
            &mut hub,
            &[Command::Die {
                id: 1,
                failed: false
            }]
        )
        .is_empty());
        assert_eq!(
            flush(
                &mut hub,
                &[Command::Die {
                    id: 2,
                    failed: false
                }]
            ),
            vec![(9, Outcome::Wake)]
        );
        // The transient waiter is gone once resumed.
        assert!(!hub.records.contains_key(&9));

        let wait = [
            Command::JoinWait {
                id: 10,
                count: 1,
                timeout: None,
                raise_error: true,
            },
            Command::Join {
                waiter: 10,
                target: 3,
            },
        ];
        flush(&mut hub, &wait);
        assert_eq!(
            flush(
                &mut hub,
                &[Command::Die {
                    id: 3,
                    failed: true
                }]
            ),
            vec![(10, Outcome::Wake)]
        );
    }

    #[test]
    fn joining_an_unstarted_greenlet_waits_for_its_death() {
        let mut hub = Hub::without_alarm();
        let wait = [
            Command::JoinWait {
                id: 9,
                count: 1,
                timeout: None,
                raise_error: false,
            },
            Command::Join {
                waiter: 9,
                target: 5,
            },
        ];
        assert!(flush(&mut hub, &wait).is_empty());
        assert_eq!(
            flush(&mut hub, &[Command::Spawn { id: 5, delay: None }]),
            vec![(5, Outcome::Start)]
        );
        assert_eq!(
            flush(
                &mut hub,
                &[Command::Die {
                    id: 5,
                    failed: false
                }]
            ),
            vec![(9, Outcome::Wake)]
        );
    }

    #[test]
    fn finishing_child_resumes_parent_waiting_in_switch() {
        let mut hub = Hub::without_alarm();
        flush(
            &mut hub,
            &[Command::Resumed {
                id: 1,
                parent: NO_PARENT,
            }],
        );
        flush(
            &mut hub,
            &[
                Command::ParkSwitch { id: 1 },
                Command::Resumed { id: 2, parent: 1 },
            ],
        );
        assert_eq!(
            flush(
                &mut hub,
                &[Command::Die {
                    id: 2,
                    failed: false
                }]
            ),
            vec![(1, Outcome::Wake)]
        );
    }

    #[test]
    fn a_reassigned_parent_is_the_one_a_finishing_child_resumes() {
        let mut hub = Hub::without_alarm();
        flush(
            &mut hub,
            &[
                Command::Resumed {
                    id: 1,
                    parent: NO_PARENT,
                },
                Command::Resumed {
                    id: 3,
                    parent: NO_PARENT,
                },
            ],
        );
        flush(
            &mut hub,
            &[
                Command::ParkSwitch { id: 1 },
                Command::ParkSwitch { id: 3 },
                Command::Resumed { id: 2, parent: 1 },
                Command::SetParent { id: 2, parent: 3 },
            ],
        );
        assert_eq!(
            flush(
                &mut hub,
                &[Command::Die {
                    id: 2,
                    failed: false
                }]
            ),
            vec![(3, Outcome::Wake)]
        );
    }

    #[test]
    fn resuming_directly_voids_a_queued_resumption_but_keeps_its_interrupt() {
        let mut hub = Hub::without_alarm();
        flush(
            &mut hub,
            &[
                Command::Resumed {
                    id: 1,
                    parent: NO_PARENT,
                },
                Command::Resumed {
                    id: 2,
                    parent: NO_PARENT,
                },
            ],
        );
        // Both wait in switch(); 1 is woken, 2 interrupted, and both are
        // switched to directly before that reaches the front end.
        let cmds = [
            Command::ParkSwitch { id: 1 },
            Command::ParkSwitch { id: 2 },
            Command::Unpark { id: 1 },
            Command::Interrupt { id: 2 },
        ];
        let mut hub_out = Vec::new();
        hub.flush(cmds, 0, &mut |r| hub_out.push(r));
        assert!(hub_out.is_empty(), "nothing delivered yet");
        let resumed = [
            Command::Resumed { id: 1, parent: 0 },
            Command::Resumed { id: 2, parent: 0 },
        ];
        assert!(
            flush(&mut hub, &resumed).is_empty(),
            "the queued resumptions are void"
        );
        assert!(flush(
            &mut hub,
            &[Command::Park {
                id: 1,
                timeout: None
            }]
        )
        .is_empty());
        assert_eq!(
            flush(
                &mut hub,
                &[Command::Park {
                    id: 2,
                    timeout: None
                }]
            ),
            vec![(2, Outcome::Interrupt)]
        );
    }

    #[test]
    fn remote_unparks_apply_at_the_next_flush_and_ignore_ended_waits() {
        let mut hub = Hub::without_alarm();
        let remote = hub.remote();
        flush(
            &mut hub,
            &[
                Command::Park {
                    id: 7,
                    timeout: None,
                },
                Command::Park {
                    id: 8,
                    timeout: None,
                },
            ],
        );
        std::thread::spawn(move || remote.unpark_all([8, 7, 99]))
            .join()
            .unwrap();
        assert_eq!(
            flush(&mut hub, &[]),
            vec![(8, Outcome::Wake), (7, Outcome::Wake)]
        );
    }

    #[test]
    fn a_completion_that_overtakes_its_park_still_ends_the_wait() {
        let mut hub = Hub::without_alarm();
        hub.remote().unpark(5);
        assert_eq!(
            flush(
                &mut hub,
                &[Command::Park {
                    id: 5,
                    timeout: None
                }]
            ),
            vec![(5, Outcome::Wake)]
        );
    }

    #[test]
    fn decode_rejects_unknown_ops_and_bad_ids() {
        assert!(Command::decode(&[99.0, 1.0, 0.0, 0.0], 0.0).is_err());
        assert!(Command::decode(&[1.0, -1.0, 0.0, 0.0], 0.0).is_err());
        assert_eq!(
            Command::decode(&[wire::PARK as f64, 7.0, -1.0, 0.0], 5.0),
            Ok(Command::Park {
                id: 7,
                timeout: None
            })
        );
        // Deadlines are absolute: one already past expires at once.
        assert_eq!(
            Command::decode(&[wire::PARK as f64, 7.0, 120.0, 0.0], 100.0),
            Ok(Command::Park {
                id: 7,
                timeout: Some(Due(20.0))
            })
        );
        assert_eq!(
            Command::decode(&[wire::PARK as f64, 7.0, 90.0, 0.0], 100.0),
            Ok(Command::Park {
                id: 7,
                timeout: Some(Due(-10.0))
            })
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
            Command::Spawn { id: 1, delay: None },
            Command::Spawn { id: 2, delay: None },
        ];
        hub.flush(cmds, usize::MAX, &mut |r| out.push(r));
        let parks = [
            Command::Park {
                id: 1,
                timeout: Some(Due(10.0)),
            },
            Command::Park {
                id: 2,
                timeout: Some(Due(10.0)),
            },
        ];
        hub.flush(parks, usize::MAX, &mut |r| out.push(r));
        let deadline = Instant::now() + Duration::from_secs(2);
        while wakes.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "one wake-up for the batch");
        out.clear();
        hub.flush([], usize::MAX, &mut |r| out.push(r));
        assert_eq!(out.len(), 2);
    }
}
