//! The flusher of one hub: a coroutine that writes the queued sends of every
//! listed connection, so that the front end wakes one worker per turn rather
//! than one per send.
//!
//! The front end lists connections as it queues sends ([`Flusher::list`],
//! no wake-up) and calls [`Flusher::kick`] once at the end of its turn. The
//! flusher writes each listed connection until its queue is empty or the
//! kernel buffer is full (the connection's own coroutine finishes that one
//! when it becomes writable), then publishes all completions with one
//! wake-up of the front end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use may::coroutine::Coroutine;

use super::{go, Conn, Inbox};

pub struct Flusher {
    listed: Mutex<Vec<Arc<Conn>>>,
    stopped: AtomicBool,
    coroutine: Mutex<Option<Coroutine>>,
}

impl Flusher {
    pub(crate) fn start(inbox: Arc<Inbox>) -> Arc<Flusher> {
        let flusher = Arc::new(Flusher {
            listed: Mutex::default(),
            stopped: AtomicBool::new(false),
            coroutine: Mutex::default(),
        });
        let running = flusher.clone();
        // SAFETY: the loop parks through `may::coroutine::park`, writes with
        // non-blocking sends under short locks, uses no thread-local storage
        // and only heap buffers.
        let handle = unsafe { go(move || running.run(&inbox)) };
        *flusher.coroutine.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle.coroutine().clone());
        flusher
    }

    /// Lists a connection with queued sends (done by [`Conn::send`]).
    pub(crate) fn list(&self, conn: Arc<Conn>) {
        self.listed.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
    }

    /// Wakes the flusher if any connection is listed.
    pub fn kick(&self) {
        if self.listed.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            return;
        }
        self.unpark();
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.unpark();
    }

    fn unpark(&self) {
        if let Some(co) = &*self.coroutine.lock().unwrap_or_else(|e| e.into_inner()) {
            co.unpark();
        }
    }

    fn run(&self, inbox: &Inbox) {
        let mut batch = Vec::new();
        let mut woken = Vec::new();
        while !self.stopped.load(Ordering::Acquire) {
            may::coroutine::park();
            loop {
                std::mem::swap(&mut batch, &mut *self.listed.lock().unwrap_or_else(|e| e.into_inner()));
                if batch.is_empty() {
                    break;
                }
                for conn in batch.drain(..) {
                    conn.flush(&mut woken);
                }
            }
            inbox.wake(woken.drain(..));
        }
    }
}
