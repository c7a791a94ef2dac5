//! The messages an executor's child process sends its parent, written by a
//! thread of their own: a result leaves as its task ends, even while the
//! JS thread is then stuck in a long synchronous task, without a write
//! system call per result when results come fast.
//!
//! Messages are `[type u8][len u32 LE][body]`. The JS thread queues them
//! (a copy into one buffer); the writer thread, woken by the first, lets
//! more gather for a moment ([`GATHER`]) and writes whatever is queued in
//! one go, and sleeps while nothing is. A results message queued while the
//! previous one still waits in the buffer is merged into it (their frames
//! are concatenated), so a fast stream of results still arrives in few
//! messages.

use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes of a message header: type and body length.
const HEADER: usize = 5;
/// Bytes of a results body's head: `[last u8][ms f64 LE]` before its frames.
const RESULTS_HEAD: usize = 9;

#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    /// Offset in `bytes` of a results message that is still open for
    /// merging (not the end of a batch), if it is the last one queued.
    open_results: Option<usize>,
    /// The writer thread waits for bytes.
    idle: bool,
    /// Something queued must not wait for more to gather: the end of a
    /// batch (the parent sends the next one when it reads it), or a
    /// message other than results.
    urgent: bool,
    closed: bool,
    /// The write error that stopped the writer (the parent is gone).
    failed: Option<i32>,
}

struct Shared {
    fd: RawFd,
    results_type: u8,
    queue: Mutex<Queue>,
    more: Condvar,
    drained: Condvar,
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Moves `fd` (the pipe a child inherited from its parent) to a descriptor
/// of its own, close-on-exec, and closes `fd`: a task that closes or reuses
/// the well-known number then cannot cut the channel or receive its bytes,
/// and processes the task spawns do not inherit it (which would keep the
/// parent from seeing the child's end).
pub fn move_to_private_fd(fd: RawFd) -> std::io::Result<RawFd> {
    // SAFETY: fcntl and close on a descriptor number; an invalid one fails with EBADF.
    let private = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, fd + 1) };
    if private < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was valid (it was just duplicated) and is no longer used.
    unsafe { libc::close(fd) };
    Ok(private)
}

/// Writes queued messages to `fd` from its own thread.
pub struct PipeWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl PipeWriter {
    /// A writer for the (possibly non-blocking) socket or pipe `fd`, whose
    /// results messages have type `results_type`.
    pub fn new(fd: RawFd, results_type: u8) -> std::io::Result<PipeWriter> {
        let shared = Arc::new(Shared {
            fd,
            results_type,
            queue: Mutex::default(),
            more: Condvar::new(),
            drained: Condvar::new(),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("greenthread-pipe".into())
            .spawn(move || write_loop(&worker))?;
        Ok(PipeWriter {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a message.
    pub fn message(&self, kind: u8, body: &[u8]) {
        let mut q = lock(&self.shared.queue);
        q.open_results = None;
        push_header(&mut q.bytes, kind, body.len());
        q.bytes.extend_from_slice(body);
        q.urgent = true;
        self.wake(q);
    }

    /// Queues result frames: merged into the results message still queued,
    /// if any; `last` ends the batch, which ran `ms`.
    pub fn results(&self, last: bool, ms: f64, frames: &[u8]) {
        let mut q = lock(&self.shared.queue);
        match q.open_results {
            Some(at) => {
                let len =
                    u32::from_le_bytes(q.bytes[at + 1..at + HEADER].try_into().unwrap()) as usize;
                let len = len + frames.len();
                q.bytes[at + 1..at + HEADER].copy_from_slice(&(len as u32).to_le_bytes());
                q.bytes[at + HEADER] = u8::from(last);
                q.bytes[at + HEADER + 1..at + HEADER + RESULTS_HEAD]
                    .copy_from_slice(&ms.to_le_bytes());
                q.bytes.extend_from_slice(frames);
            }
            None => {
                let at = q.bytes.len();
                push_header(
                    &mut q.bytes,
                    self.shared.results_type,
                    RESULTS_HEAD + frames.len(),
                );
                q.bytes.push(u8::from(last));
                q.bytes.extend_from_slice(&ms.to_le_bytes());
                q.bytes.extend_from_slice(frames);
                q.open_results = Some(at);
            }
        }
        if last {
            q.open_results = None;
            q.urgent = true;
        }
        self.wake(q);
    }

    /// Waits until everything queued is written (or writing failed), and
    /// stops the writer thread.
    pub fn finish(&mut self) {
        {
            let mut q = lock(&self.shared.queue);
            q.closed = true;
            self.shared.more.notify_one();
            while !q.bytes.is_empty() && q.failed.is_none() {
                q = self
                    .shared
                    .drained
                    .wait(q)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn wake(&self, q: MutexGuard<'_, Queue>) {
        if q.idle {
            self.shared.more.notify_one();
        }
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

/// How long the writer lets results gather after the first one wakes it: a
/// fast stream of tiny results then costs a wake-up and a write per this
/// much time, not per result. The end of a batch, or any other message, is
/// written at once.
const GATHER: Duration = Duration::from_micros(50);

fn write_loop(shared: &Shared) {
    let mut writing = Vec::new();
    loop {
        {
            let mut q = lock(&shared.queue);
            if q.bytes.is_empty() && !q.closed {
                while q.bytes.is_empty() && !q.closed {
                    q.idle = true;
                    q = shared.more.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                q.idle = false;
                if !q.closed && !q.urgent {
                    drop(q);
                    std::thread::sleep(GATHER);
                    q = lock(&shared.queue);
                }
            }
            if q.bytes.is_empty() {
                return;
            }
            // Taken: what comes next starts a new message.
            std::mem::swap(&mut writing, &mut q.bytes);
            q.open_results = None;
            q.urgent = false;
        }
        let status = write_all(shared.fd, &writing);
        writing.clear();
        let mut q = lock(&shared.queue);
        if let Err(status) = status {
            q.failed = Some(status);
            q.bytes.clear();
            shared.drained.notify_all();
            return;
        }
        if q.bytes.is_empty() {
            shared.drained.notify_all();
        }
    }
}

/// Writes all of `bytes`, waiting for room when the fd is non-blocking.
fn write_all(fd: RawFd, mut bytes: &[u8]) -> Result<(), i32> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for its length; `fd` stays open while the
        // child runs (it is its pipe to the parent).
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n >= 0 {
            bytes = &bytes[n as usize..];
            continue;
        }
        let err = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if err == libc::EINTR {
            continue;
        }
        if err != libc::EAGAIN && err != libc::EWOULDBLOCK {
            return Err(-err);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, -1) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn messages(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = u32::from_le_bytes(bytes[1..5].try_into().unwrap()) as usize;
            out.push((bytes[0], bytes[HEADER..HEADER + len].to_vec()));
            bytes = &bytes[HEADER + len..];
        }
        out
    }

    fn results_body(last: bool, ms: f64, frames: &[u8]) -> Vec<u8> {
        let mut body = vec![u8::from(last)];
        body.extend_from_slice(&ms.to_le_bytes());
        body.extend_from_slice(frames);
        body
    }

    #[test]
    fn messages_arrive_whole_and_in_order_with_queued_results_merged() {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut writer = PipeWriter::new(a.as_raw_fd(), 8).unwrap();
        writer.message(3, b"ready");
        for i in 0..1000u32 {
            writer.results(false, 0.0, &i.to_le_bytes());
        }
        writer.results(true, 2.5, b"end");
        writer.message(4, b"");
        writer.finish();
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        let msgs = messages(&got);
        assert_eq!(msgs.first(), Some(&(3, b"ready".to_vec())));
        assert_eq!(msgs.last(), Some(&(4, vec![])));
        let results: Vec<&(u8, Vec<u8>)> = msgs.iter().filter(|(t, _)| *t == 8).collect();
        let mut frames = Vec::new();
        for (k, (_, body)) in results.iter().enumerate() {
            let last = k == results.len() - 1;
            assert_eq!(body[0], u8::from(last), "only the batch's end is last");
            if last {
                assert_eq!(f64::from_le_bytes(body[1..9].try_into().unwrap()), 2.5);
            }
            frames.extend_from_slice(&body[RESULTS_HEAD..]);
        }
        let mut expected: Vec<u8> = (0..1000u32).flat_map(|i| i.to_le_bytes()).collect();
        expected.extend_from_slice(b"end");
        assert_eq!(frames, expected);
        assert!(
            results.len() < 1000,
            "fast results were merged: {} messages",
            results.len()
        );
    }

    #[test]
    fn a_result_is_written_while_the_caller_does_something_else() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let writer = PipeWriter::new(a.as_raw_fd(), 8).unwrap();
        writer.results(false, 0.0, b"done");
        // Nothing else is queued, and nobody flushes: it arrives anyway.
        let mut got = vec![0u8; HEADER + RESULTS_HEAD + 4];
        b.read_exact(&mut got).unwrap();
        assert_eq!(messages(&got), vec![(8, results_body(false, 0.0, b"done"))]);
        drop(writer);
    }

    #[test]
    fn a_full_pipe_is_waited_for_and_a_closed_one_stops_the_writer() {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut writer = PipeWriter::new(a.as_raw_fd(), 8).unwrap();
        let big = vec![7u8; 4 << 20];
        writer.message(2, &big);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            got
        });
        writer.finish();
        drop(a);
        let got = reader.join().unwrap();
        assert_eq!(messages(&got), vec![(2, big)]);

        let (c, d) = UnixStream::pair().unwrap();
        drop(d);
        let mut closed = PipeWriter::new(c.as_raw_fd(), 8).unwrap();
        closed.message(2, b"nobody reads this");
        closed.finish();
    }

    #[test]
    fn a_moved_pipe_keeps_working_and_its_old_number_is_closed() {
        use std::os::fd::IntoRawFd;
        let (a, mut b) = UnixStream::pair().unwrap();
        let old = a.into_raw_fd();
        let private = move_to_private_fd(old).unwrap();
        assert!(private > old);
        // SAFETY: fcntl on descriptor numbers.
        assert_eq!(unsafe { libc::fcntl(old, libc::F_GETFD) }, -1);
        assert_eq!(
            unsafe { libc::fcntl(private, libc::F_GETFD) } & libc::FD_CLOEXEC,
            libc::FD_CLOEXEC
        );
        let mut writer = PipeWriter::new(private, 8).unwrap();
        writer.message(3, b"moved");
        writer.finish();
        drop(writer);
        // SAFETY: the test owns `private`; the writer is done with it.
        unsafe { libc::close(private) };
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(messages(&got), vec![(3, b"moved".to_vec())]);
        assert_eq!(
            move_to_private_fd(old).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }
}
