//! The inbox of one hub: completed socket operations waiting for the front
//! end, with their bytes in one arena.
//!
//! Producers (socket and server coroutines, senders) push entries and then
//! unpark the waiting ids through the hub's [`Remote`], which wakes the front
//! end once per batch. The front end copies out every entry that fits its
//! buffers with one [`Inbox::drain`] call.
//!
//! # Invariant
//! An entry is pushed before its id is unparked, so when the front end is
//! resumed for an id, its entry is already here (or already drained).

use std::sync::{Mutex, MutexGuard};

use crate::Remote;

/// f64s per drained entry: wait id, status, byte offset, byte length.
pub const ENTRY_WIDTH: usize = 4;

#[derive(Clone, Copy)]
struct Entry {
    wait_id: u32,
    status: i32,
    len: usize,
}

#[derive(Default)]
struct Pending {
    entries: Vec<Entry>,
    /// The bytes of the entries, in order, back to back.
    bytes: Vec<u8>,
}

pub struct Inbox {
    pending: Mutex<Pending>,
    remote: Remote,
}

impl Inbox {
    pub fn new(remote: Remote) -> Inbox {
        Inbox {
            pending: Mutex::default(),
            remote,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Pushes and drains cannot panic midway, so a poisoned lock still
        // holds a consistent value.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the result of the wait `wait_id`: `status` (>= 0 success,
    /// `-errno` failure) and the bytes it delivers. Does not wake anyone:
    /// call [`Inbox::wake`] once the batch is complete.
    pub fn push(&self, wait_id: u32, status: i32, data: &[u8]) {
        let mut pending = self.lock();
        pending.entries.push(Entry {
            wait_id,
            status,
            len: data.len(),
        });
        pending.bytes.extend_from_slice(data);
    }

    /// Records several data-less results with one lock.
    pub fn push_all(&self, results: &[(u32, i32)]) {
        if results.is_empty() {
            return;
        }
        let mut pending = self.lock();
        pending
            .entries
            .extend(results.iter().map(|&(wait_id, status)| Entry {
                wait_id,
                status,
                len: 0,
            }));
    }

    /// Ends the waits of `ids` (whose results were pushed) with one wake-up.
    pub fn wake(&self, ids: impl IntoIterator<Item = u32>) {
        self.remote.unpark_all(ids);
    }

    /// Pushes one result and wakes its waiter.
    pub fn complete(&self, wait_id: u32, status: i32, data: &[u8]) {
        self.push(wait_id, status, data);
        self.wake([wait_id]);
    }

    /// Moves the oldest entries into the front end's buffers: `meta` gets
    /// [`ENTRY_WIDTH`] f64s per entry (wait id, status, offset into `bytes`,
    /// length), `bytes` their data. Stops at the first entry that does not
    /// fit; returns how many entries were moved.
    pub fn drain(&self, meta: &mut [f64], bytes: &mut [u8]) -> usize {
        let mut pending = self.lock();
        let max_entries = meta.len() / ENTRY_WIDTH;
        let (mut moved, mut used) = (0, 0);
        for entry in &pending.entries {
            if moved == max_entries || used + entry.len > bytes.len() {
                break;
            }
            let slot = &mut meta[moved * ENTRY_WIDTH..(moved + 1) * ENTRY_WIDTH];
            slot[0] = f64::from(entry.wait_id);
            slot[1] = f64::from(entry.status);
            slot[2] = used as f64;
            slot[3] = entry.len as f64;
            used += entry.len;
            moved += 1;
        }
        bytes[..used].copy_from_slice(&pending.bytes[..used]);
        pending.entries.drain(..moved);
        pending.bytes.drain(..used);
        moved
    }

    /// Entries not drained yet.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hub;

    #[test]
    fn drain_moves_entries_in_order_and_keeps_what_does_not_fit() {
        let inbox = Inbox::new(Hub::without_alarm().remote());
        inbox.push(7, 3, b"abc");
        inbox.push_all(&[(8, 0)]);
        inbox.push(9, 5, b"hello");
        let mut meta = [0.0; 3 * ENTRY_WIDTH];
        let mut bytes = [0u8; 6];
        assert_eq!(inbox.drain(&mut meta, &mut bytes), 2);
        assert_eq!(&meta[..8], &[7.0, 3.0, 0.0, 3.0, 8.0, 0.0, 3.0, 0.0]);
        assert_eq!(&bytes[..3], b"abc");
        assert_eq!(inbox.len(), 1);
        let mut bytes = [0u8; 8];
        assert_eq!(inbox.drain(&mut meta, &mut bytes), 1);
        assert_eq!(&meta[..4], &[9.0, 5.0, 0.0, 5.0]);
        assert_eq!(&bytes[..5], b"hello");
        assert!(inbox.is_empty());
    }
}
