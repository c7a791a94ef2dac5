//! Deadline heap with lazy cancellation.
//!
//! Cancelling never searches the heap: each entry carries the epoch of the
//! wait it belongs to, and the hub ignores an expired entry whose epoch no
//! longer matches the greenlet's current wait.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    pub deadline: Instant,
    /// Insertion order, so equal deadlines expire first-in first-out.
    pub seq: u64,
    pub id: u32,
    pub epoch: u32,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<TimerEntry>>,
    seq: u64,
}

impl Timers {
    pub fn insert(&mut self, deadline: Instant, id: u32, epoch: u32) {
        self.seq += 1;
        self.heap.push(Reverse(TimerEntry {
            deadline,
            seq: self.seq,
            id,
            epoch,
        }));
    }

    pub fn pop_expired(&mut self, now: Instant) -> Option<TimerEntry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.deadline <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// The earliest deadline of an entry `live` accepts; the stale entries
    /// before it are dropped, so that the clock is not woken for them.
    pub fn next_live_deadline(&mut self, live: impl Fn(&TimerEntry) -> bool) -> Option<Instant> {
        while let Some(Reverse(e)) = self.heap.peek() {
            if live(e) {
                return Some(e.deadline);
            }
            self.heap.pop();
        }
        None
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

impl Timers {
    /// Drops the entries `keep` rejects (stale ones), in O(n).
    pub fn retain(&mut self, mut keep: impl FnMut(&TimerEntry) -> bool) {
        self.heap.retain(|Reverse(e)| keep(e));
    }
}
