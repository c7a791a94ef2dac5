//! The built-in handlers: serve one connection entirely in a coroutine,
//! the seeds' `talk(conn)` loop — recv up to 1024 bytes, send them back (as
//! they are, or upper-cased), close at EOF or on any error.
//!
//! Reads and writes are non-blocking calls on the stream's fd; the coroutine
//! waits through `wait_io` only when the socket has nothing to read (a short
//! read proves that: a later arrival raises a new edge) or its send buffer is
//! full. The server's kill flag is checked after every wake-up.

use std::os::fd::AsRawFd;

use may::io::WaitIo;
use may::net::TcpStream;

use super::{Server, HANG_UP};

/// The seeds' `conn.recv(1024)`.
const RECV_BYTES: usize = 1024;

pub(crate) fn serve(stream: &TcpStream, upper: bool, server: &Server) {
    let fd = stream.as_raw_fd();
    let mut buf = [0u8; RECV_BYTES];
    // Once the peer's hang-up was signalled (once: edge-triggered), read on
    // to the end rather than wait after a short read.
    let mut hung_up = false;
    while !server.killing() {
        // SAFETY: `stream` owns the open fd for this whole call; `buf` is
        // writable for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            let data = &mut buf[..n as usize];
            if upper {
                data.make_ascii_uppercase();
            }
            if !send_all(stream, data, server) {
                return;
            }
            if data.len() < RECV_BYTES && !hung_up {
                hung_up |= stream.wait_io() & HANG_UP != 0;
            }
        } else if n == 0 {
            return;
        } else {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => hung_up |= stream.wait_io() & HANG_UP != 0,
                _ => return,
            }
        }
    }
}

/// Writes all of `data`; `false` on an error or a kill.
fn send_all(stream: &TcpStream, mut data: &[u8], server: &Server) -> bool {
    let fd = stream.as_raw_fd();
    while !data.is_empty() {
        // SAFETY: as in `serve`; `data` is readable for its length.
        let n = unsafe {
            libc::send(
                fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            data = &data[n as usize..];
            continue;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => {
                stream.wait_io();
                if server.killing() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}
