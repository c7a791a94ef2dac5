//! The built-in handlers: serve one connection entirely in a `may`
//! coroutine, the seeds' `talk(conn)` loop — take up to 1024 bytes, send
//! them back (as they are, or upper-cased), close at EOF or on any error.
//!
//! The coroutine drives a [`ConnState`] (the connection state the front
//! end's reactor drives too): it reads what the socket has, answers every
//! 1024 bytes of it, and waits through `wait_io` only when the socket is
//! drained (a short read proves that: a later arrival raises a new edge) or
//! its replies fill the kernel's send buffer (then it reads nothing more
//! until they are out). The server's kill flag is checked after every
//! wake-up.

use std::os::fd::AsRawFd;

use may::io::WaitIo;
use may::net::TcpStream;

use super::state::ConnState;
use super::sys::MAY_HANG_UP;
use super::Server;

/// The seeds' `conn.recv(1024)`.
const RECV_BYTES: usize = 1024;

pub(crate) fn serve(stream: &TcpStream, upper: bool, server: &Server) {
    let mut conn = ConnState::new(stream.as_raw_fd());
    while !server.killing() {
        if conn.tx.queued() > 0 {
            conn.tx.flush(conn.fd);
            if conn.tx.queued() > 0 {
                wait(stream, &mut conn);
                continue;
            }
        }
        if conn.tx.error().is_some() {
            return;
        }
        if conn.rx.is_empty() {
            conn.rx.fill(conn.fd, RECV_BYTES);
        }
        if !conn.rx.is_empty() {
            let data = conn.rx.take_mut(RECV_BYTES);
            if upper {
                data.make_ascii_uppercase();
            }
            if conn.tx.send(conn.fd, data, usize::MAX).is_err() {
                return;
            }
        } else if conn.rx.ended() {
            return;
        } else if !conn.rx.may_read() {
            wait(stream, &mut conn);
        }
    }
}

/// Waits for the socket's next readiness edge (or the server's kill).
fn wait(stream: &TcpStream, conn: &mut ConnState) {
    let bits = stream.wait_io();
    conn.rx.readiness(true, bits & MAY_HANG_UP != 0);
}
