//! macOS and FreeBSD: one kqueue, each socket with a read and a write
//! filter, both `EV_CLEAR` (edge-triggered, as the epoll version).
//! Untested here: written against the kqueue man page, built by CI.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{last_status, Interest};

/// Flags of `may`'s `wait_io` (kqueue event flags) saying the peer hung up
/// or the socket failed. Reported once: read on to the end.
pub const MAY_HANG_UP: usize = (libc::EV_EOF | libc::EV_ERROR) as usize;

/// Most events taken by one [`Poller::wait`].
const CAPACITY: usize = 1024;

pub struct Poller {
    fd: OwnedFd,
}

fn change(fd: RawFd, filter: i16, flags: u16, token: u64) -> libc::kevent {
    // SAFETY: kevent is plain data; zero is a valid value of every field.
    let mut k: libc::kevent = unsafe { std::mem::zeroed() };
    k.ident = fd as libc::uintptr_t;
    k.filter = filter;
    k.flags = flags;
    k.udata = token as usize as *mut libc::c_void;
    k
}

impl Poller {
    pub fn new() -> std::io::Result<Poller> {
        // SAFETY: plain syscall; the fd is owned from here on.
        let fd = unsafe { libc::kqueue() };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above; close-on-exec like the epoll version.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(Poller {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The fd that is readable while events are pending (what libuv watches).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn apply(&self, changes: &[libc::kevent]) -> Result<(), i32> {
        // SAFETY: `changes` is valid for its length; no events are read back.
        let r = unsafe {
            libc::kevent(
                self.fd(),
                changes.as_ptr(),
                changes.len() as libc::c_int,
                std::ptr::null_mut(),
                0,
                std::ptr::null(),
            )
        };
        if r < 0 {
            Err(last_status())
        } else {
            Ok(())
        }
    }

    /// Watches `fd`, edge-triggered; its events carry `token`.
    pub fn add(&self, fd: RawFd, token: u64, interest: Interest) -> Result<(), i32> {
        let flags = libc::EV_ADD | libc::EV_CLEAR;
        let read = change(fd, libc::EVFILT_READ, flags, token);
        match interest {
            Interest::Read => self.apply(&[read]),
            Interest::ReadWrite => {
                self.apply(&[read, change(fd, libc::EVFILT_WRITE, flags, token)])
            }
        }
    }

    /// Stops watching `fd` (closing it does too).
    pub fn delete(&self, fd: RawFd) {
        for filter in [libc::EVFILT_READ, libc::EVFILT_WRITE] {
            // A filter that was never added is an error we have no use for.
            let _ = self.apply(&[change(fd, filter, libc::EV_DELETE, 0)]);
        }
    }

    /// Takes the pending events, waiting at most `timeout_ms` (0: none).
    pub fn wait(&self, events: &mut Events, timeout_ms: i32) -> Result<(), i32> {
        events.list.clear();
        let timeout = libc::timespec {
            tv_sec: (timeout_ms / 1000) as libc::time_t,
            tv_nsec: ((timeout_ms % 1000) * 1_000_000) as libc::c_long,
        };
        // SAFETY: the buffer has room for `CAPACITY` events; the kernel
        // writes `n` of them, which then become the length.
        let n = unsafe {
            libc::kevent(
                self.fd(),
                std::ptr::null(),
                0,
                events.list.as_mut_ptr(),
                CAPACITY as libc::c_int,
                if timeout_ms < 0 {
                    std::ptr::null()
                } else {
                    &timeout
                },
            )
        };
        if n < 0 {
            let status = last_status();
            return if status == -libc::EINTR {
                Ok(())
            } else {
                Err(status)
            };
        }
        // SAFETY: the kernel initialized the first `n` entries.
        unsafe { events.list.set_len(n as usize) };
        Ok(())
    }
}

/// The events of one [`Poller::wait`].
pub struct Events {
    list: Vec<libc::kevent>,
}

// SAFETY: a kevent's `udata` pointer carries a token number here and is never
// dereferenced; the list is plain data, owned by whoever owns the poller.
unsafe impl Send for Events {}

impl Default for Events {
    fn default() -> Events {
        Events {
            list: Vec::with_capacity(CAPACITY),
        }
    }
}

impl Events {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last wait filled the buffer (more may be pending).
    pub fn full(&self) -> bool {
        self.list.len() == CAPACITY
    }

    pub fn get(&self, i: usize) -> Event {
        let k = &self.list[i];
        let failed = k.flags & (libc::EV_EOF | libc::EV_ERROR) != 0;
        Event {
            token: k.udata as usize as u64,
            readable: k.filter == libc::EVFILT_READ || failed,
            writable: k.filter == libc::EVFILT_WRITE || failed,
            hang_up: failed,
        }
    }
}

/// One readiness report.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub token: u64,
    /// Bytes (or the end, or an error) to read; for a listener, connections.
    pub readable: bool,
    /// Room to write, or a connect that finished (or failed).
    pub writable: bool,
    /// The peer hung up or the socket failed: read on to the end.
    pub hang_up: bool,
}
