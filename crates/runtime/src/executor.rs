//! The executor queue: where submitted tasks wait and how workers take them.
//!
//! A [`Pool`] is shared by one front end (the thread that submits and settles
//! futures) and its workers (JS worker threads, or the front end's feeders for
//! child processes). Tasks and completions are opaque byte frames; only their
//! headers are read here.
//!
//! - Submission pushes a whole batch into a global [`Injector`].
//! - Each worker owns a [`Slot`] with a local FIFO deque. A take pops the
//!   local deque, else steals from sibling slots (what they hold is older
//!   than anything in the injector), else refills from the injector (up to
//!   twice what it asked for, so that some of what it grabbed stays
//!   stealable). Tasks start in submission order with one worker, and in
//!   about that order with several.
//! - Completions from all workers are appended to one buffer; the front end
//!   is woken once when it goes from empty to non-empty, and takes the whole
//!   buffer with [`Pool::drain`]: one wake-up per batch, never per task.
//!
//! # Frames
//! Task batches, take results and completion batches are sequences of
//! `[id: u32 LE][len: u32 LE][len bytes]`.
//!
//! # Invariants
//! - A task id is in `states` from submission until it completes, is
//!   cancelled, or the pool is purged. A task taken from a deque whose id is
//!   not `Queued` there (it was cancelled) is dropped, never handed out.
//! - Queued → Running happens only in [`Slot::take`], Queued → Held only in
//!   [`Slot::take_held`], Held → Running only in [`Slot::claim`], Queued or
//!   Held → removed only in [`Pool::cancel`] / [`Pool::cancel_queued`] /
//!   [`Pool::abort`], all under the `states` lock: a task is either
//!   cancelled or run, never both, and run by one worker only.
//! - An abort of a task a worker holds marks it `Aborting`; if the worker
//!   gives it back unstarted, [`Slot::give_back`] drops it and reports it
//!   cancelled instead of queueing it again, so an abort is never lost
//!   between workers.
//! - A dropped slot (a worker retired, or died) leaves its local tasks to
//!   the pool's orphans, which every take looks at before anything else:
//!   they left the injector before what is still in it, so a retiring
//!   worker does not send the tasks it had taken behind later ones.
//!
//! # Held tasks (thread workers)
//! A worker that runs in the pool's process takes with [`Slot::take_held`]:
//! its tasks are `Held` by its slot, not yet running, until it
//! [`Slot::claim`]s each right before starting it. A held task can still be
//! cancelled (the claim then fails and the worker skips it), `running()` is
//! false for it, and once its holder has started nothing for
//! [`STEAL_HELD_AFTER`] (a long call blocks it) an idle sibling takes it
//! over (the holder's claim fails too). `held` keeps a held task's payload
//! for that, and is locked after `states`, never alone before it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use crossbeam::deque::{Injector, Steal, Stealer, Worker};

use crate::alarm::Wake;

/// Bytes of a frame header: id and length.
pub const FRAME_HEADER: usize = 8;

/// Cancelled tasks the injector may hold before it is swept (and at least
/// as many as half of what it holds: a sweep costs a pass over it).
const CANCELLED_IN_QUEUE_SLACK: usize = 1024;

/// A holder that has started nothing for this long is taken to be blocked
/// in a long call: idle siblings take its held tasks over.
pub const STEAL_HELD_AFTER: Duration = Duration::from_millis(8);

/// How soon an idle slot looks again when the tasks it could not find are
/// between a sibling's deque and that sibling's states (being taken).
const IN_FLIGHT_RETRY: Duration = Duration::from_millis(1);

/// The payloads of held tasks, and when each holding slot last claimed one.
#[derive(Default)]
struct HeldTasks {
    payloads: HashMap<u32, Box<[u8]>>,
    last_claim: HashMap<u32, Instant>,
}

/// Where a submitted task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// In a deque, cancellable.
    Queued,
    /// Handed to a worker.
    Running,
    /// Handed to a worker, and then aborted: cancelled if given back.
    Aborting,
    /// In the batch of the worker with this slot index, not started: cancellable.
    Held(u32),
}

impl TaskState {
    /// A worker holds it.
    pub fn is_running(self) -> bool {
        matches!(self, TaskState::Running | TaskState::Aborting)
    }
}

/// A malformed frame batch.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct Task {
    id: u32,
    payload: Box<[u8]>,
}

/// Splits a frame batch into `(id, payload)` pairs, validating every length.
pub fn frames(mut bytes: &[u8]) -> impl Iterator<Item = Result<(u32, &[u8]), FrameError>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        if bytes.len() < FRAME_HEADER {
            bytes = &[];
            return Some(Err(FrameError("truncated frame header".into())));
        }
        let id = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        let rest = &bytes[FRAME_HEADER..];
        if rest.len() < len {
            bytes = &[];
            return Some(Err(FrameError(format!(
                "frame {id} claims {len} bytes, {} left",
                rest.len()
            ))));
        }
        let (payload, tail) = rest.split_at(len);
        bytes = tail;
        Some(Ok((id, payload)))
    })
}

fn write_frame(out: &mut Vec<u8>, id: u32, payload: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No critical section here can panic half-way, so a poisoned lock still
    // holds a consistent value.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The queue, task states and completion buffer of one executor.
pub struct Pool {
    id: u32,
    injector: Injector<Task>,
    /// Tasks of dropped slots, oldest (lowest id) first.
    orphans: Mutex<VecDeque<Task>>,
    /// `orphans` is not empty: spares takes the lock when it is.
    has_orphans: AtomicBool,
    /// Tasks cancelled while in the injector since it was last swept: only a
    /// take drops them, and with no worker taking (none started yet, or all
    /// retired idle) their payloads would stay.
    cancelled_in_queue: AtomicUsize,
    stealers: RwLock<Vec<(u32, Stealer<Task>)>>,
    next_slot: AtomicU32,
    states: Mutex<HashMap<u32, TaskState>>,
    held: Mutex<HeldTasks>,
    completions: Mutex<Vec<u8>>,
    definitions: Mutex<HashMap<u32, Arc<[u8]>>>,
    wake: Wake,
}

static NEXT_POOL: AtomicU32 = AtomicU32::new(1);
static REGISTRY: Mutex<Option<HashMap<u32, Weak<Pool>>>> = Mutex::new(None);

impl Pool {
    /// A new pool, registered so that workers on other threads can find it by
    /// [`Pool::id`]. `wake` is called when completions become available.
    pub fn new(wake: Wake) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            id: NEXT_POOL.fetch_add(1, Ordering::Relaxed),
            injector: Injector::new(),
            orphans: Mutex::default(),
            has_orphans: AtomicBool::new(false),
            cancelled_in_queue: AtomicUsize::new(0),
            stealers: RwLock::default(),
            next_slot: AtomicU32::new(1),
            states: Mutex::default(),
            held: Mutex::default(),
            completions: Mutex::default(),
            definitions: Mutex::default(),
            wake,
        });
        lock(&REGISTRY)
            .get_or_insert_with(HashMap::new)
            .insert(pool.id, Arc::downgrade(&pool));
        pool
    }

    /// The live pool registered under `id`.
    pub fn find(id: u32) -> Option<Arc<Pool>> {
        lock(&REGISTRY).as_ref()?.get(&id)?.upgrade()
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Queues every task of a frame batch. Nothing is queued if a frame is
    /// malformed or an id is already in use.
    pub fn submit(&self, batch: &[u8]) -> Result<usize, FrameError> {
        let tasks = frames(batch)
            .map(|f| {
                f.map(|(id, payload)| Task {
                    id,
                    payload: payload.into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        {
            let mut states = lock(&self.states);
            if let Some(t) = tasks.iter().find(|t| states.contains_key(&t.id)) {
                return Err(FrameError(format!("task id {} is already in use", t.id)));
            }
            states.extend(tasks.iter().map(|t| (t.id, TaskState::Queued)));
        }
        let n = tasks.len();
        for task in tasks {
            self.injector.push(task);
        }
        Ok(n)
    }

    /// Cancels a task that has not started (queued or held). False if it
    /// is running, done or unknown.
    pub fn cancel(&self, id: u32) -> bool {
        self.remove_unstarted(&mut lock(&self.states), id)
    }

    /// The task's signal aborted: cancels it if it has not started (true);
    /// if a worker runs it, marks it so that giving it back cancels it
    /// (false). False too if it is done or unknown.
    pub fn abort(&self, id: u32) -> bool {
        let mut states = lock(&self.states);
        if self.remove_unstarted(&mut states, id) {
            return true;
        }
        if states.get(&id) == Some(&TaskState::Running) {
            states.insert(id, TaskState::Aborting);
        }
        false
    }

    /// Forgets `id` if it has not started (queued, or held with its
    /// payload); returns whether it did.
    fn remove_unstarted(&self, states: &mut HashMap<u32, TaskState>, id: u32) -> bool {
        match states.get(&id) {
            Some(TaskState::Queued) => {
                states.remove(&id);
                let cancelled = self.cancelled_in_queue.fetch_add(1, Ordering::Relaxed) + 1;
                if cancelled > CANCELLED_IN_QUEUE_SLACK && cancelled > self.injector.len() / 2 {
                    self.sweep_injector(states);
                }
                true
            }
            Some(TaskState::Held(_)) => {
                states.remove(&id);
                lock(&self.held).payloads.remove(&id);
                true
            }
            _ => false,
        }
    }

    /// Drops the cancelled tasks from the injector, keeping the order of the
    /// rest (a worker taking meanwhile gets older ones first, as ever).
    fn sweep_injector(&self, states: &HashMap<u32, TaskState>) {
        self.cancelled_in_queue.store(0, Ordering::Relaxed);
        let mut kept = Vec::new();
        loop {
            match self.injector.steal() {
                Steal::Success(task) => {
                    if states.get(&task.id) == Some(&TaskState::Queued) {
                        kept.push(task);
                    }
                }
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
        for task in kept {
            self.injector.push(task);
        }
    }

    /// Cancels every task that has not started (queued or held) and
    /// returns their ids.
    pub fn cancel_queued(&self) -> Vec<u32> {
        let mut states = lock(&self.states);
        let ids: Vec<u32> = states
            .iter()
            .filter(|(_, s)| matches!(s, TaskState::Queued | TaskState::Held(_)))
            .map(|(id, _)| *id)
            .collect();
        let mut held = lock(&self.held);
        for id in &ids {
            states.remove(id);
            held.payloads.remove(id);
        }
        drop(held);
        self.sweep_injector(&states);
        ids
    }

    /// Forgets every task (the pool broke): queued ones are never handed out,
    /// completions still in flight are still delivered and ignored by the
    /// front end.
    pub fn purge(&self) {
        let mut states = lock(&self.states);
        states.clear();
        lock(&self.held).payloads.clear();
        drop(states);
        while !matches!(self.injector.steal(), Steal::Empty) {}
        lock(&self.orphans).clear();
        self.has_orphans.store(false, Ordering::Release);
    }

    pub fn state(&self, id: u32) -> Option<TaskState> {
        lock(&self.states).get(&id).copied()
    }

    /// Tasks submitted and not yet completed or cancelled.
    pub fn outstanding(&self) -> usize {
        lock(&self.states).len()
    }

    /// Tasks that have not started: queued, or held in a batch (which an
    /// idle worker takes over from a blocked holder). What a new worker
    /// could run. Counted by a scan, for the rare moment a worker leaves.
    pub fn queued(&self) -> usize {
        lock(&self.states)
            .values()
            .filter(|s| matches!(s, TaskState::Queued | TaskState::Held(_)))
            .count()
    }

    /// Records a batch of completion frames and wakes the front end if it
    /// had nothing to drain.
    pub fn complete(&self, batch: &[u8]) -> Result<usize, FrameError> {
        let ids = frames(batch)
            .map(|f| f.map(|(id, _)| id))
            .collect::<Result<Vec<_>, _>>()?;
        {
            let mut states = lock(&self.states);
            for id in &ids {
                states.remove(id);
            }
        }
        let mut completions = lock(&self.completions);
        let was_empty = completions.is_empty();
        completions.extend_from_slice(batch);
        drop(completions);
        if was_empty && !ids.is_empty() {
            (self.wake)();
        }
        Ok(ids.len())
    }

    /// Every completion frame recorded since the last drain.
    pub fn drain(&self) -> Vec<u8> {
        std::mem::take(&mut *lock(&self.completions))
    }

    /// Stores a definition (a function's source, an export's name) that
    /// workers look up by id.
    pub fn define(&self, id: u32, definition: &[u8]) {
        lock(&self.definitions).insert(id, definition.into());
    }

    pub fn definition(&self, id: u32) -> Option<Arc<[u8]>> {
        lock(&self.definitions).get(&id).cloned()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(registry) = lock(&REGISTRY).as_mut() {
            registry.remove(&self.id);
        }
    }
}

/// One worker's end of a pool: its local deque. Owned by the worker's thread.
pub struct Slot {
    pool: Arc<Pool>,
    index: u32,
    local: Worker<Task>,
}

impl Slot {
    pub fn attach(pool: Arc<Pool>) -> Slot {
        let local = Worker::new_fifo();
        let index = pool.next_slot.fetch_add(1, Ordering::Relaxed);
        pool.stealers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((index, local.stealer()));
        Slot { pool, index, local }
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Takes up to `max` runnable tasks, marks them running and appends them
    /// to `out` as frames. Returns how many were taken.
    pub fn take(&self, max: usize, out: &mut Vec<u8>) -> usize {
        self.take_queued(max, out, false)
    }

    /// Like [`Slot::take`], but the tasks are held, not running, until
    /// claimed one by one (see the module's "Held tasks"). With nothing to
    /// take, takes over the held tasks of a sibling blocked for
    /// [`STEAL_HELD_AFTER`]. Returns how many were taken and, if none were
    /// while a sibling holds some that may become stealable, how soon to
    /// look again.
    pub fn take_held(&self, max: usize, out: &mut Vec<u8>) -> (usize, Option<Duration>) {
        let taken = self.take_queued(max, out, true);
        if taken > 0 {
            return (taken, None);
        }
        self.steal_held(max, out)
    }

    /// Takes up to `max` queued tasks into `out`, marking them running, or
    /// held by this slot. Cancelled tasks are dropped on the way: pops again
    /// until `max` are runnable or the queue is empty.
    fn take_queued(&self, max: usize, out: &mut Vec<u8>, hold: bool) -> usize {
        let mut taken = 0;
        let mut batch = Vec::with_capacity(max.min(1024));
        while taken < max {
            while batch.len() < max - taken {
                match self
                    .local
                    .pop()
                    .or_else(|| self.refill(max - taken - batch.len()))
                {
                    Some(task) => batch.push(task),
                    None => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            let mut states = lock(&self.pool.states);
            let mut held = hold.then(|| lock(&self.pool.held));
            for task in batch.drain(..) {
                if let Some(state @ TaskState::Queued) = states.get_mut(&task.id) {
                    write_frame(out, task.id, &task.payload);
                    taken += 1;
                    match held.as_mut() {
                        Some(held) => {
                            *state = TaskState::Held(self.index);
                            held.payloads.insert(task.id, task.payload);
                        }
                        None => *state = TaskState::Running,
                    }
                }
            }
            // Starting nothing yet counts as starting: a fresh batch is not stolen at once.
            if let Some(held) = held.as_mut() {
                held.last_claim.insert(self.index, Instant::now());
            }
        }
        taken
    }

    /// Takes over up to `max` tasks held by siblings that have started
    /// nothing for [`STEAL_HELD_AFTER`], oldest first.
    fn steal_held(&self, max: usize, out: &mut Vec<u8>) -> (usize, Option<Duration>) {
        let now = Instant::now();
        let mut states = lock(&self.pool.states);
        let mut held = lock(&self.pool.held);
        let mut soonest: Option<Duration> = None;
        let mut stealable: Vec<u32> = Vec::new();
        for (id, state) in states.iter() {
            let holder = match *state {
                TaskState::Held(holder) => holder,
                // Queued, yet nowhere to take from: in a sibling's take
                // between its deque and its states. Held soon: look again.
                TaskState::Queued => {
                    soonest = Some(soonest.map_or(IN_FLIGHT_RETRY, |s| s.min(IN_FLIGHT_RETRY)));
                    continue;
                }
                _ => continue,
            };
            if holder == self.index {
                continue;
            }
            let idle = held
                .last_claim
                .get(&holder)
                .map_or(STEAL_HELD_AFTER, |at| now - *at);
            if idle >= STEAL_HELD_AFTER {
                stealable.push(*id);
            } else {
                let wait = STEAL_HELD_AFTER - idle;
                soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
            }
        }
        if stealable.is_empty() {
            return (0, soonest);
        }
        // Ids grow with submission: the oldest first.
        stealable.sort_unstable();
        stealable.truncate(max);
        for id in &stealable {
            states.insert(*id, TaskState::Held(self.index));
            if let Some(payload) = held.payloads.get(id) {
                write_frame(out, *id, payload);
            }
        }
        held.last_claim.insert(self.index, now);
        (stealable.len(), None)
    }

    /// A held task is about to start: true if this slot still holds it
    /// (it is now running), false if it was cancelled or taken over.
    pub fn claim(&self, id: u32) -> bool {
        let mut states = lock(&self.pool.states);
        match states.get_mut(&id) {
            Some(state @ TaskState::Held(_)) if *state == TaskState::Held(self.index) => {
                *state = TaskState::Running;
                let mut held = lock(&self.pool.held);
                held.payloads.remove(&id);
                held.last_claim.insert(self.index, Instant::now());
                true
            }
            _ => false,
        }
    }

    /// Puts back tasks that [`Slot::take`] handed out and that have not
    /// started (frames as `take` wrote them): they are queued again, in this
    /// slot's deque, ahead of what it still holds, where idle siblings can
    /// steal them. Those aborted meanwhile are dropped instead: returns their
    /// ids, for the caller to report them cancelled.
    pub fn give_back(&self, batch: &[u8]) -> Result<Vec<u32>, FrameError> {
        self.put_back(batch, false)
    }

    /// Like [`Slot::give_back`], for tasks from [`Slot::take_held`]: only
    /// those this slot still holds go back; one cancelled or taken over by a
    /// sibling meanwhile (which may be running it) is left alone.
    pub fn give_back_held(&self, batch: &[u8]) -> Result<Vec<u32>, FrameError> {
        self.put_back(batch, true)
    }

    fn put_back(&self, batch: &[u8], held_only: bool) -> Result<Vec<u32>, FrameError> {
        let tasks = frames(batch)
            .map(|f| {
                f.map(|(id, payload)| Task {
                    id,
                    payload: payload.into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut states = lock(&self.pool.states);
        // They were taken before everything still in this deque: they go
        // back in front of it, so that a slot starts its tasks in submission
        // order (the deque only pushes at the back).
        let queued_after: Vec<Task> = std::iter::from_fn(|| self.local.pop()).collect();
        let mut held = lock(&self.pool.held);
        let mut cancelled = Vec::new();
        for task in tasks {
            match states.get(&task.id) {
                Some(TaskState::Held(holder)) if *holder == self.index => {
                    states.insert(task.id, TaskState::Queued);
                    held.payloads.remove(&task.id);
                    self.local.push(task);
                }
                Some(TaskState::Running) if !held_only => {
                    states.insert(task.id, TaskState::Queued);
                    self.local.push(task);
                }
                Some(TaskState::Aborting) if !held_only => {
                    states.remove(&task.id);
                    cancelled.push(task.id);
                }
                _ => {}
            }
        }
        for task in queued_after {
            self.local.push(task);
        }
        Ok(cancelled)
    }

    /// Pops one task, moving up to `2 * want` into the local deque first:
    /// from a sibling's deque, else from the injector. Siblings come first
    /// because what they hold left the injector before anything still in
    /// it: tasks start in about submission order, as from one shared queue.
    fn refill(&self, want: usize) -> Option<Task> {
        if let Some(task) = self.adopt_orphans(want) {
            return Some(task);
        }
        let stealers = self.pool.stealers.read().unwrap_or_else(|e| e.into_inner());
        for (index, stealer) in stealers.iter() {
            if *index == self.index {
                continue;
            }
            loop {
                match stealer.steal_batch_with_limit_and_pop(&self.local, want.max(1)) {
                    Steal::Success(task) => return Some(task),
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        drop(stealers);
        let limit = want.saturating_mul(2).max(1);
        loop {
            match self
                .pool
                .injector
                .steal_batch_with_limit_and_pop(&self.local, limit)
            {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }
}

impl Slot {
    /// Pops the oldest orphan, moving up to `want` more into the local deque.
    fn adopt_orphans(&self, want: usize) -> Option<Task> {
        if !self.pool.has_orphans.load(Ordering::Acquire) {
            return None;
        }
        let mut orphans = lock(&self.pool.orphans);
        let first = orphans.pop_front();
        for _ in 0..want.saturating_sub(1) {
            match orphans.pop_front() {
                Some(task) => self.local.push(task),
                None => break,
            }
        }
        if orphans.is_empty() {
            self.pool.has_orphans.store(false, Ordering::Release);
        }
        first
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.pool.held).last_claim.remove(&self.index);
        self.pool
            .stealers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(i, _)| *i != self.index);
        let mut orphans = lock(&self.pool.orphans);
        let before = orphans.len();
        orphans.extend(std::iter::from_fn(|| self.local.pop()));
        if orphans.len() > before {
            // Ids grow with submission: two slots' leftovers interleave by age.
            orphans.make_contiguous().sort_unstable_by_key(|t| t.id);
            self.pool.has_orphans.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn batch(tasks: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, payload) in tasks {
            write_frame(&mut out, *id, payload);
        }
        out
    }

    fn ids(frames_bytes: &[u8]) -> Vec<u32> {
        frames(frames_bytes).map(|f| f.unwrap().0).collect()
    }

    fn counting_pool() -> (Arc<Pool>, Arc<AtomicUsize>) {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        (
            Pool::new(Arc::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            })),
            wakes,
        )
    }

    #[test]
    fn tasks_are_taken_in_submission_order_with_their_payloads() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[(1, b"a"), (2, b"bb"), (3, b"")]))
            .unwrap();
        let slot = Slot::attach(pool.clone());
        let mut out = Vec::new();
        assert_eq!(slot.take(10, &mut out), 3);
        let got: Vec<(u32, Vec<u8>)> = frames(&out)
            .map(|f| f.map(|(i, p)| (i, p.to_vec())).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![(1, b"a".to_vec()), (2, b"bb".to_vec()), (3, vec![])]
        );
        assert_eq!(pool.state(2), Some(TaskState::Running));
    }

    #[test]
    fn cancelled_tasks_are_never_handed_out_and_running_ones_cannot_be_cancelled() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[(1, b""), (2, b""), (3, b"")]))
            .unwrap();
        assert!(pool.cancel(2));
        assert!(!pool.cancel(2), "already cancelled");
        let slot = Slot::attach(pool.clone());
        let mut out = Vec::new();
        slot.take(1, &mut out);
        assert!(!pool.cancel(1), "running");
        slot.take(10, &mut out);
        assert_eq!(ids(&out), vec![1, 3]);
        assert!(!pool.cancel(99));
    }

    #[test]
    fn held_tasks_are_not_running_and_stay_cancellable_until_claimed() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[(1, b"a"), (2, b"b"), (3, b"c")]))
            .unwrap();
        let slot = Slot::attach(pool.clone());
        let mut out = Vec::new();
        assert_eq!(slot.take_held(10, &mut out), (3, None));
        assert_eq!(ids(&out), vec![1, 2, 3]);
        assert_eq!(pool.state(1), Some(TaskState::Held(slot.index)));
        assert!(!pool.state(1).unwrap().is_running());
        assert!(slot.claim(1));
        assert_eq!(pool.state(1), Some(TaskState::Running));
        assert!(!pool.cancel(1), "started");
        assert!(pool.cancel(2), "held, not started");
        assert!(!slot.claim(2), "cancelled: the worker skips it");
        assert!(pool.abort(3), "an abort of a held task cancels it at once");
        assert!(!slot.claim(3));
        assert!(lock(&pool.held).payloads.is_empty());
    }

    #[test]
    fn an_idle_slot_takes_over_the_held_tasks_of_a_blocked_sibling() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[(1, b"long"), (2, b"x"), (3, b"y")]))
            .unwrap();
        let busy = Slot::attach(pool.clone());
        let idle = Slot::attach(pool.clone());
        let mut out = Vec::new();
        assert_eq!(busy.take_held(10, &mut out).0, 3);
        assert!(busy.claim(1));
        // Just claimed: not blocked yet, but worth a look once it may be.
        let mut stolen = Vec::new();
        let (taken, retry) = idle.take_held(10, &mut stolen);
        assert_eq!(taken, 0);
        assert!(retry.is_some_and(|d| d <= STEAL_HELD_AFTER));
        std::thread::sleep(STEAL_HELD_AFTER + Duration::from_millis(2));
        assert_eq!(idle.take_held(10, &mut stolen), (2, None));
        let got: Vec<(u32, Vec<u8>)> = frames(&stolen)
            .map(|f| f.map(|(i, p)| (i, p.to_vec())).unwrap())
            .collect();
        assert_eq!(got, vec![(2, b"x".to_vec()), (3, b"y".to_vec())]);
        assert!(!busy.claim(2), "taken over");
        assert!(idle.claim(2));
        // Given back by its holder, a held task is queued again.
        assert_eq!(
            idle.give_back(&batch(&[(3, b"y")])).unwrap(),
            Vec::<u32>::new()
        );
        assert_eq!(pool.state(3), Some(TaskState::Queued));
        assert_eq!(pool.cancel_queued(), vec![3]);
    }

    #[test]
    fn a_holder_gives_back_only_what_it_still_holds() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[(1, b"long"), (2, b"x"), (3, b"y")]))
            .unwrap();
        let busy = Slot::attach(pool.clone());
        let idle = Slot::attach(pool.clone());
        let mut out = Vec::new();
        busy.take_held(10, &mut out);
        assert!(busy.claim(1));
        std::thread::sleep(STEAL_HELD_AFTER + Duration::from_millis(2));
        let mut stolen = Vec::new();
        assert_eq!(idle.take_held(1, &mut stolen).0, 1);
        assert!(idle.claim(2), "running on the idle slot now");
        // The holder, done with its long task, gives back the rest of its batch.
        assert_eq!(
            busy.give_back_held(&batch(&[(2, b"x"), (3, b"y")]))
                .unwrap(),
            Vec::<u32>::new()
        );
        assert_eq!(
            pool.state(2),
            Some(TaskState::Running),
            "left with the slot running it"
        );
        assert_eq!(pool.state(3), Some(TaskState::Queued));
        let mut again = Vec::new();
        assert_eq!(idle.take_held(10, &mut again).0, 1);
        assert_eq!(ids(&again), vec![3], "task 2 is not handed out twice");
    }

    #[test]
    fn cancelled_tasks_do_not_count_against_a_take() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[(1, b""), (2, b""), (3, b"")]))
            .unwrap();
        assert!(pool.cancel(1));
        assert!(pool.cancel(2));
        let slot = Slot::attach(pool.clone());
        let mut out = Vec::new();
        assert_eq!(slot.take(1, &mut out), 1);
        assert_eq!(ids(&out), vec![3]);
    }

    #[test]
    fn given_back_tasks_run_before_those_taken_after_them() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[
            (1, b"a"),
            (2, b"b"),
            (3, b"c"),
            (4, b"d"),
            (5, b"e"),
        ]))
        .unwrap();
        let a = Slot::attach(pool.clone());
        let mut first = Vec::new();
        // Takes 1 and 2, and refills its deque with more behind them.
        assert_eq!(a.take(2, &mut first), 2);
        assert_eq!(ids(&first), vec![1, 2]);
        // 2 did not start: it goes back ahead of 3, 4 and 5.
        let second = &first[FRAME_HEADER + 1..];
        assert!(a.give_back(second).unwrap().is_empty());
        let mut next = Vec::new();
        assert_eq!(a.take(10, &mut next), 4);
        assert_eq!(ids(&next), vec![2, 3, 4, 5]);
    }

    #[test]
    fn given_back_tasks_are_queued_again_and_stealable() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[(1, b"a"), (2, b"b"), (3, b"c")]))
            .unwrap();
        let a = Slot::attach(pool.clone());
        let mut out = Vec::new();
        assert_eq!(a.take(3, &mut out), 3);
        let rest = &out[FRAME_HEADER + 1..];
        assert!(a.give_back(rest).unwrap().is_empty());
        assert_eq!(pool.state(2), Some(TaskState::Queued));
        assert_eq!(pool.state(1), Some(TaskState::Running));
        assert!(pool.cancel(3));
        let b = Slot::attach(pool.clone());
        let mut stolen = Vec::new();
        assert_eq!(b.take(10, &mut stolen), 1);
        assert_eq!(ids(&stolen), vec![2]);
    }

    #[test]
    fn an_abort_cancels_a_queued_task_and_a_held_one_when_it_is_given_back() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d")]))
            .unwrap();
        let a = Slot::attach(pool.clone());
        let mut out = Vec::new();
        assert_eq!(a.take(3, &mut out), 3);
        assert!(pool.abort(4), "queued: cancelled at once");
        assert!(!pool.abort(2), "held by a worker");
        assert_eq!(pool.state(2), Some(TaskState::Aborting));
        assert!(pool.state(2).unwrap().is_running());
        assert!(!pool.cancel(2), "a held task is not cancellable");
        // 2 and 3 did not start: 2 is dropped and reported, 3 is queued again.
        let rest = &out[FRAME_HEADER + 1..];
        assert_eq!(a.give_back(rest).unwrap(), vec![2]);
        assert_eq!(pool.state(2), None);
        assert_eq!(pool.state(3), Some(TaskState::Queued));
        let mut next = Vec::new();
        assert_eq!(a.take(10, &mut next), 1);
        assert_eq!(ids(&next), vec![3]);
        // Aborting what completed, or is unknown, changes nothing.
        pool.complete(&batch(&[(1, b"r")])).unwrap();
        assert!(!pool.abort(1));
        assert!(!pool.abort(99));
        assert_eq!(pool.state(1), None);
    }

    #[test]
    fn a_take_leaves_part_of_its_refill_for_siblings_to_steal() {
        let (pool, _) = counting_pool();
        let tasks: Vec<(u32, &[u8])> = (1..=8).map(|i| (i, &b"x"[..])).collect();
        pool.submit(&batch(&tasks)).unwrap();
        let a = Slot::attach(pool.clone());
        let b = Slot::attach(pool.clone());
        let mut out_a = Vec::new();
        // Asks for 2: refills up to 4 into its deque, keeps 2 there.
        assert_eq!(a.take(2, &mut out_a), 2);
        assert!(!a.local.is_empty());
        let mut out_b = Vec::new();
        assert_eq!(
            b.take(100, &mut out_b),
            6,
            "the injector's rest and a's leftovers"
        );
        assert!(a.local.is_empty());
        let mut all = ids(&out_a);
        all.extend(ids(&out_b));
        all.sort();
        assert_eq!(all, (1..=8).collect::<Vec<_>>());
    }

    #[test]
    fn a_dropped_slot_returns_its_local_tasks_ahead_of_the_queue() {
        let (pool, _) = counting_pool();
        let tasks: Vec<(u32, &[u8])> = (1..=6).map(|i| (i, &b""[..])).collect();
        pool.submit(&batch(&tasks)).unwrap();
        let a = Slot::attach(pool.clone());
        let mut out = Vec::new();
        // Asks for 1: refills 2, so 2 stays in its deque.
        assert_eq!(a.take(1, &mut out), 1);
        assert!(!a.local.is_empty());
        drop(a);
        // A worker that replaces it (maxTasksPerChild) starts 2 next, not 3.
        let b = Slot::attach(pool.clone());
        out.clear();
        assert_eq!(b.take(1, &mut out), 1);
        assert_eq!(ids(&out), vec![2]);
        out.clear();
        assert_eq!(b.take(10, &mut out), 4);
        assert_eq!(ids(&out), vec![3, 4, 5, 6]);
    }

    #[test]
    fn tasks_cancelled_with_no_worker_taking_do_not_stay_in_the_queue() {
        let (pool, _) = counting_pool();
        let n = 3 * CANCELLED_IN_QUEUE_SLACK as u32;
        let tasks: Vec<(u32, &[u8])> = (1..=n).map(|i| (i, &[0u8; 100][..])).collect();
        pool.submit(&batch(&tasks)).unwrap();
        // Two of every three are cancelled before any worker exists: more than half of what waits.
        for id in (1..=n).filter(|id| id % 3 != 0) {
            assert!(pool.cancel(id));
        }
        assert!(
            pool.injector.len() < n as usize,
            "swept: {} left of {n}",
            pool.injector.len()
        );
        let slot = Slot::attach(pool.clone());
        let mut out = Vec::new();
        assert_eq!(slot.take(n as usize, &mut out), n as usize / 3);
        assert_eq!(ids(&out), (3..=n).step_by(3).collect::<Vec<_>>());
        // Cancelling all that wait empties the queue at once.
        pool.submit(&batch(&[(n + 1, b"x"), (n + 2, b"y")]))
            .unwrap();
        let mut cancelled = pool.cancel_queued();
        cancelled.sort();
        assert_eq!(cancelled, vec![n + 1, n + 2]);
        assert_eq!(pool.injector.len(), 0);
    }

    #[test]
    fn orphans_of_two_slots_are_taken_oldest_first_and_purged_with_the_pool() {
        let (pool, _) = counting_pool();
        let tasks: Vec<(u32, &[u8])> = (1..=8).map(|i| (i, &b""[..])).collect();
        pool.submit(&batch(&tasks)).unwrap();
        let a = Slot::attach(pool.clone());
        let b = Slot::attach(pool.clone());
        let mut out = Vec::new();
        assert_eq!(a.take(2, &mut out), 2); // 1, 2; holds 3, 4
        assert_eq!(b.take(1, &mut out), 1); // steals from a first
        drop(b);
        drop(a);
        let c = Slot::attach(pool.clone());
        let mut next = Vec::new();
        assert_eq!(c.take(10, &mut next), 5);
        let taken = ids(&next);
        let mut sorted = taken.clone();
        sorted.sort();
        assert_eq!(taken, sorted, "in submission order");
        let all: Vec<u32> = ids(&out).into_iter().chain(taken).collect();
        assert_eq!(all.len(), 8);
        // A purge forgets orphans too.
        pool.submit(&batch(&[(20, b""), (21, b"")])).unwrap();
        let d = Slot::attach(pool.clone());
        let mut one = Vec::new();
        assert_eq!(d.take(1, &mut one), 1);
        drop(d);
        pool.purge();
        let e = Slot::attach(pool.clone());
        one.clear();
        assert_eq!(e.take(10, &mut one), 0);
    }

    #[test]
    fn completions_wake_once_per_batch_until_drained() {
        let (pool, wakes) = counting_pool();
        pool.submit(&batch(&[(1, b""), (2, b""), (3, b"")]))
            .unwrap();
        let slot = Slot::attach(pool.clone());
        let mut out = Vec::new();
        slot.take(3, &mut out);
        pool.complete(&batch(&[(1, b"r1"), (2, b"r2")])).unwrap();
        pool.complete(&batch(&[(3, b"r3")])).unwrap();
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(ids(&pool.drain()), vec![1, 2, 3]);
        assert_eq!(pool.outstanding(), 0);
        assert!(pool.drain().is_empty());
    }

    #[test]
    fn queued_counts_tasks_no_worker_holds() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[(1, b""), (2, b""), (3, b"")]))
            .unwrap();
        assert_eq!(pool.queued(), 3);
        let slot = Slot::attach(pool.clone());
        let mut out = Vec::new();
        slot.take(2, &mut out);
        assert_eq!(pool.queued(), 1);
        let held = batch(&[(2, b"")]);
        slot.give_back(&held).unwrap();
        assert_eq!(pool.queued(), 2);
        assert!(pool.cancel(3));
        assert_eq!(pool.queued(), 1);
    }

    #[test]
    fn cancel_queued_and_purge_leave_nothing_to_take() {
        let (pool, _) = counting_pool();
        pool.submit(&batch(&[(1, b""), (2, b""), (3, b"")]))
            .unwrap();
        let slot = Slot::attach(pool.clone());
        let mut out = Vec::new();
        slot.take(1, &mut out);
        let mut cancelled = pool.cancel_queued();
        cancelled.sort();
        assert_eq!(cancelled, vec![2, 3]);
        assert_eq!(slot.take(10, &mut out), 0);
        pool.submit(&batch(&[(4, b"")])).unwrap();
        pool.purge();
        assert_eq!(pool.outstanding(), 0);
        assert_eq!(slot.take(10, &mut out), 0);
    }

    #[test]
    fn malformed_batches_and_reused_ids_are_rejected_whole() {
        let (pool, _) = counting_pool();
        assert!(pool.submit(&[1, 0, 0, 0, 9, 0, 0, 0, 1]).is_err());
        pool.submit(&batch(&[(1, b"")])).unwrap();
        assert!(pool.submit(&batch(&[(2, b""), (1, b"")])).is_err());
        assert_eq!(pool.outstanding(), 1);
    }

    #[test]
    fn workers_on_other_threads_find_the_pool_and_share_the_work() {
        let (pool, _) = counting_pool();
        let tasks: Vec<(u32, &[u8])> = (0..10_000).map(|i| (i, &b"t"[..])).collect();
        pool.submit(&batch(&tasks)).unwrap();
        let id = pool.id();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    let slot = Slot::attach(Pool::find(id).unwrap());
                    let mut taken = Vec::new();
                    loop {
                        let mut out = Vec::new();
                        if slot.take(7, &mut out) == 0 {
                            break;
                        }
                        taken.extend(ids(&out));
                        slot.pool().complete(&out).unwrap();
                    }
                    taken
                })
            })
            .collect();
        let mut all: Vec<u32> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        assert_eq!(all, (0..10_000).collect::<Vec<_>>());
        assert_eq!(ids(&pool.drain()).len(), 10_000);
        drop(pool);
        assert!(Pool::find(id).is_none());
    }
}
