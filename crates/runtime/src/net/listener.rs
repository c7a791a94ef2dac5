//! Binding a listening socket, as Node's `net.Server` does: `SO_REUSEADDR`
//! (quick rebinding after a restart) but not `SO_REUSEPORT` (`may`'s own
//! `TcpListener::bind` sets it, which would let a second server bind a busy
//! port instead of failing with `EADDRINUSE`), and the caller's backlog.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};

use may::net::TcpListener;
use socket2::{Domain, Socket, Type};

use super::status_of;

/// Parses an IP literal; `localhost` means the IPv4 loopback and an empty
/// host every IPv4 interface.
pub fn parse_addr(host: &str, port: u16) -> Option<SocketAddr> {
    let ip = match host {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        _ => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

/// A non-blocking listening socket registered with the runtime.
pub(crate) fn bind(addr: SocketAddr, backlog: u32) -> Result<TcpListener, i32> {
    let socket = socket(addr, backlog)?;
    crate::runtime::ensure_started().map_err(|e| status_of(&e))?;
    // SAFETY: the fd comes from `into_raw_fd` of a socket we own; the
    // listener takes over its ownership (and makes it non-blocking).
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// A listening socket bound to `addr`.
pub(crate) fn socket(addr: SocketAddr, backlog: u32) -> Result<Socket, i32> {
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(|e| status_of(&e))?;
    socket.set_reuse_address(true).map_err(|e| status_of(&e))?;
    if addr.is_ipv6() {
        // `::` accepts IPv4 too, like Node.
        socket.set_only_v6(false).map_err(|e| status_of(&e))?;
    }
    socket.bind(&addr.into()).map_err(|e| status_of(&e))?;
    socket
        .listen(backlog.min(i32::MAX as u32) as i32)
        .map_err(|e| status_of(&e))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_a_busy_port_fails_with_eaddrinuse() {
        let first = bind(parse_addr("127.0.0.1", 0).unwrap(), 16).unwrap();
        let port = first.local_addr().unwrap().port();
        let second = bind(parse_addr("127.0.0.1", port).unwrap(), 16);
        assert_eq!(second.err(), Some(-libc::EADDRINUSE));
    }

    #[test]
    fn hosts_are_ip_literals_or_localhost() {
        assert_eq!(
            parse_addr("localhost", 80),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(parse_addr("[::1]", 80), Some("[::1]:80".parse().unwrap()));
        assert_eq!(parse_addr("example.com", 80), None);
    }
}
