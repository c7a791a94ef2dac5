//! Sockets and servers against plain blocking std clients on loopback.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::Hub;

fn net() -> Arc<Net> {
    Arc::new(Net::new(Hub::without_alarm().remote()))
}

fn loopback() -> SocketAddr {
    parse_addr("127.0.0.1", 0).unwrap()
}

/// Drains `inbox` until the entry of `wait_id` arrives (2 s at most).
fn completion(inbox: &Inbox, wait_id: u32) -> (i32, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut meta = [0.0; 64 * ENTRY_WIDTH];
    let mut bytes = vec![0u8; MAX_DELIVERY];
    loop {
        let n = inbox.drain(&mut meta, &mut bytes);
        for e in meta[..n * ENTRY_WIDTH].chunks_exact(ENTRY_WIDTH) {
            if e[0] as u32 == wait_id {
                let (at, len) = (e[2] as usize, e[3] as usize);
                return (e[1] as i32, bytes[at..at + len].to_vec());
            }
        }
        assert!(
            Instant::now() < deadline,
            "no completion for wait {wait_id}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn client(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
}

/// A front-end server with one accepted connection (accept wait 1) and its client.
fn accepted() -> (Arc<Net>, Arc<Server>, TcpStream, Arc<Conn>) {
    let net = net();
    let server = Server::bind(loopback(), 16, Handler::Front, net.clone()).unwrap();
    let c = client(&server);
    server.accept_wait(1).unwrap();
    completion(&net.inbox, 1);
    let conn = server.take_accepted().pop().unwrap();
    (net, server, c, conn)
}

#[test]
fn upper_server_echoes_upper_cased_and_closes_at_eof() {
    let server = Server::bind(loopback(), 16, Handler::Upper, net()).unwrap();
    let mut c = client(&server);
    c.write_all(b"Thread-1 say hello").unwrap();
    let mut reply = [0u8; 18];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"THREAD-1 SAY HELLO");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.read(&mut reply).unwrap(), 0);
    server.close(None);
}

#[test]
fn data_and_eof_arriving_together_are_both_seen() {
    // The end comes with the data's edge: after the short read the reader
    // must not wait for an edge that will never come.
    for handler in [Handler::Echo, Handler::Front] {
        let net = net();
        let server = Server::bind(loopback(), 16, handler, net.clone()).unwrap();
        for round in 0..20 {
            let mut c = client(&server);
            c.write_all(b"last words").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            if handler == Handler::Echo {
                let mut got = Vec::new();
                c.read_to_end(&mut got).unwrap();
                assert_eq!(got, b"last words", "round {round}");
                continue;
            }
            let wait = 10 * round + 1;
            server.accept_wait(wait).unwrap();
            completion(&net.inbox, wait);
            let conn = server.take_accepted().pop().unwrap();
            let mut got = Vec::new();
            for k in 1..10 {
                conn.recv_wait(wait + k, 1024).unwrap();
                let (status, data) = completion(&net.inbox, wait + k);
                assert_eq!(status, 0);
                if data.is_empty() {
                    break;
                }
                got.extend(data);
            }
            assert_eq!(got, b"last words", "round {round}");
            conn.close();
        }
        server.close(None);
    }
}

#[test]
fn killing_builtin_connections_ends_them_and_completes_idle_waits() {
    let net = net();
    let server = Server::bind(loopback(), 16, Handler::Echo, net.clone()).unwrap();
    let mut c = client(&server);
    c.write_all(b"x").unwrap();
    c.read_exact(&mut [0u8; 1]).unwrap();
    server.close(Some(1));
    assert_eq!(completion(&net.inbox, 1).0, 0);
    assert_eq!(server.live_connections(), 1);
    server.idle_wait(2);
    server.kill_connections();
    assert_eq!(completion(&net.inbox, 2).0, 0);
    assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
}

#[test]
fn front_connections_round_trip_through_the_inbox() {
    let net = net();
    let server = Server::bind(loopback(), 16, Handler::Front, net.clone()).unwrap();
    let mut c = client(&server);
    server.accept_wait(1).unwrap();
    assert_eq!(completion(&net.inbox, 1).0, 0);
    let conn = server.take_accepted().pop().unwrap();
    assert_eq!(conn.peer_addr(), c.local_addr().ok());
    conn.recv_wait(2, 1024).unwrap();
    c.write_all(b"ping").unwrap();
    assert_eq!(completion(&net.inbox, 2), (0, b"ping".to_vec()));
    // Written at once: nothing stays queued.
    assert_eq!(conn.send(b"pong"), Ok(0));
    conn.drain_wait(3, 0).unwrap();
    assert_eq!(completion(&net.inbox, 3).0, 0);
    let mut reply = [0u8; 4];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"pong");
    drop(c);
    conn.recv_wait(4, 1024).unwrap();
    assert_eq!(completion(&net.inbox, 4), (0, Vec::new()));
    conn.close();
    server.close(None);
}

#[test]
fn shutting_down_writing_waits_for_the_queue_and_refuses_later_sends() {
    let (_net, server, mut c, conn) = accepted();
    let big = vec![7u8; 4 << 20];
    assert!(
        conn.send(&big).unwrap() > 0,
        "4 MiB cannot all be in the kernel before the client reads"
    );
    conn.shutdown(Shutdown::Write).unwrap();
    assert_eq!(conn.send(b"too late"), Err(-libc::EPIPE));
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, big);
    conn.close();
    server.close(None);
}

#[test]
fn closing_writes_out_the_queue_before_closing_the_socket() {
    let (net, server, mut c, conn) = accepted();
    let big = vec![7u8; 4 << 20];
    assert!(conn.send(&big).unwrap() > 0);
    assert!(
        conn.close() > 0,
        "4 MiB cannot all be in the kernel before the client reads"
    );
    conn.close_wait(2);
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), big.len());
    assert_eq!(completion(&net.inbox, 2).0, 0);
    server.close(None);
}

#[test]
fn sends_behind_a_full_kernel_buffer_arrive_whole_and_in_order() {
    let (net, server, mut c, conn) = accepted();
    let mut expected = Vec::new();
    for i in 0..8u32 {
        let small = i.to_le_bytes();
        let big: Vec<u8> = (0..(1 << 20) + i).map(|b| (b % 251) as u8).collect();
        for part in [&small[..], &big[..], &small[..]] {
            conn.send(part).unwrap();
            expected.extend_from_slice(part);
        }
    }
    // The coroutine writes the rest as the client reads.
    conn.drain_wait(2, 0).unwrap();
    let mut got = vec![0u8; expected.len()];
    c.read_exact(&mut got).unwrap();
    assert!(got == expected, "the bytes arrived out of order");
    assert_eq!(completion(&net.inbox, 2).0, 0);
    conn.close();
    server.close(None);
}

#[test]
fn bytes_arriving_after_a_cancelled_recv_go_to_the_next_one() {
    let (_net, server, mut c, conn) = accepted();
    conn.recv_wait(2, 1024).unwrap();
    assert!(conn.cancel_recv());
    c.write_all(b"late").unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let data = loop {
        match conn.try_recv(1024) {
            TryRecv::Data(d) => break d,
            TryRecv::Empty if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            _ => panic!("the late bytes were lost"),
        }
    };
    assert_eq!(data, b"late");
    conn.close();
    server.close(None);
}

#[test]
fn connect_reports_refusal_and_close_fails_pending_waits() {
    let net = net();
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _conn = Conn::connect(free_port, 1, &net).unwrap();
    assert_eq!(completion(&net.inbox, 1).0, -libc::ECONNREFUSED);

    let server = Server::bind(loopback(), 16, Handler::Echo, net.clone()).unwrap();
    let conn = Conn::connect(server.local_addr(), 2, &net).unwrap();
    assert_eq!(completion(&net.inbox, 2).0, 0);
    conn.recv_wait(3, 16).unwrap();
    conn.close();
    assert_eq!(completion(&net.inbox, 3).0, -libc::EBADF);
    assert!(matches!(conn.try_recv(16), TryRecv::Error(s) if s == -libc::EBADF));
    server.close(None);
}
