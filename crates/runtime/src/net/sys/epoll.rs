//! Linux: one epoll set, edge-triggered.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{last_status, Interest};

/// Readiness bits of `may`'s `wait_io` saying the peer hung up or the socket
/// failed. Edge-triggered: reported once, so a reader that sees them must
/// read on to the end rather than stop at a short read.
pub const MAY_HANG_UP: usize = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as usize;

/// Most events taken by one [`Poller::wait`].
const CAPACITY: usize = 1024;

pub struct Poller {
    fd: OwnedFd,
}

impl Poller {
    pub fn new() -> std::io::Result<Poller> {
        // SAFETY: plain syscall; the fd is owned from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(Poller {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The fd that is readable while events are pending (what libuv watches).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Watches `fd`, edge-triggered; its events carry `token`.
    pub fn add(&self, fd: RawFd, token: u64, interest: Interest) -> Result<(), i32> {
        let mut bits = libc::EPOLLIN | libc::EPOLLET;
        if interest == Interest::ReadWrite {
            bits |= libc::EPOLLOUT | libc::EPOLLRDHUP;
        }
        let mut event = libc::epoll_event {
            events: bits as u32,
            u64: token,
        };
        // SAFETY: `event` is valid for the call.
        let r = unsafe { libc::epoll_ctl(self.fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if r < 0 {
            Err(last_status())
        } else {
            Ok(())
        }
    }

    /// Stops watching `fd` (closing it does too).
    pub fn delete(&self, fd: RawFd) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL; an fd not in the
        // set is an error we have no use for.
        unsafe { libc::epoll_ctl(self.fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
    }

    /// Takes the pending events, waiting at most `timeout_ms` (0: none).
    pub fn wait(&self, events: &mut Events, timeout_ms: i32) -> Result<(), i32> {
        events.list.clear();
        // SAFETY: the buffer has room for `CAPACITY` events; the kernel
        // writes `n` of them, which then become the length.
        let n = unsafe {
            libc::epoll_wait(
                self.fd(),
                events.list.as_mut_ptr(),
                CAPACITY as libc::c_int,
                timeout_ms,
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
    list: Vec<libc::epoll_event>,
}

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
        let e = self.list[i];
        let bits = e.events as libc::c_int;
        Event {
            token: e.u64,
            readable: bits & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR)
                != 0,
            writable: bits & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) != 0,
            hang_up: bits & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) != 0,
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
