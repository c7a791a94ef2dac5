//! The operating system's side of the sockets, chosen in one place (as
//! `may`'s `io/sys`): the readiness poller (epoll on Linux, kqueue on macOS
//! and FreeBSD) and the socket calls whose flags differ between them.
//!
//! Every call here is non-blocking and returns `-errno` on failure.

use std::os::fd::RawFd;

#[cfg(target_os = "linux")]
#[path = "epoll.rs"]
mod poller;

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
#[path = "kqueue.rs"]
mod poller;

pub use poller::{Event, Events, Poller, MAY_HANG_UP};

/// What a socket is watched for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Interest {
    /// A listener: incoming connections.
    Read,
    /// A connection: bytes in, room to write, the peer's hang-up.
    ReadWrite,
}

/// The errno of the last failed libc call, as a status.
pub(crate) fn last_status() -> i32 {
    -std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `send(2)` without blocking and without `SIGPIPE` (Linux: `MSG_NOSIGNAL`;
/// elsewhere the socket has `SO_NOSIGPIPE`, see [`prepare`]). The bytes
/// written, or `-errno`.
pub fn send(fd: RawFd, data: &[u8]) -> Result<usize, i32> {
    #[cfg(target_os = "linux")]
    const FLAGS: libc::c_int = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    #[cfg(not(target_os = "linux"))]
    const FLAGS: libc::c_int = libc::MSG_DONTWAIT;
    // SAFETY: `data` is readable for its length; a bad fd is an error return.
    let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), FLAGS) };
    if n < 0 {
        Err(last_status())
    } else {
        Ok(n as usize)
    }
}

/// `recv(2)` without blocking into the spare capacity of `buf`, at most
/// `max` bytes; the bytes received (0 at EOF) are added to its length.
pub fn recv_into(fd: RawFd, buf: &mut Vec<u8>, max: usize) -> Result<usize, i32> {
    let len = buf.len();
    let room = (buf.capacity() - len).min(max);
    // SAFETY: the spare capacity is writable for `room` bytes, and only the
    // `n` bytes received are added to the length.
    unsafe {
        let n = libc::recv(
            fd,
            buf.as_mut_ptr().add(len).cast(),
            room,
            libc::MSG_DONTWAIT,
        );
        if n < 0 {
            return Err(last_status());
        }
        buf.set_len(len + n as usize);
        Ok(n as usize)
    }
}

/// Sets what every connection gets: no Nagle delay (replies are small and
/// latency matters more than packet count) and, where `send` has no
/// `MSG_NOSIGNAL`, no `SIGPIPE`.
pub fn prepare(fd: RawFd) {
    let on: libc::c_int = 1;
    let set = |level, name| {
        // SAFETY: `on` is a valid c_int for the call; failure changes nothing
        // we rely on for correctness (a bad fd fails later, visibly).
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    };
    set(libc::IPPROTO_TCP, libc::TCP_NODELAY);
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    set(libc::SOL_SOCKET, libc::SO_NOSIGPIPE);
}

/// Accepts one pending connection, non-blocking and close-on-exec.
pub fn accept(listener: RawFd) -> Result<RawFd, i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: null address pointers are allowed; the fd is returned owned.
        let fd = unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            Err(last_status())
        } else {
            Ok(fd)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: as above; the flags are set before anyone else sees the fd.
        unsafe {
            let fd = libc::accept(listener, std::ptr::null_mut(), std::ptr::null_mut());
            if fd < 0 {
                return Err(last_status());
            }
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            Ok(fd)
        }
    }
}
