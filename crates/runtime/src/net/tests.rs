//! Servers, built-in handlers and the front end's reactor against plain
//! blocking std clients on loopback.

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
    let server = Server::bind(loopback(), 16, Handler::Echo, net()).unwrap();
    for round in 0..20 {
        let mut c = client(&server);
        c.write_all(b"last words").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words", "round {round}");
    }
    server.close(None);
    let (mut reactor, listener, _c, _conn) = reactor_pair();
    let addr = reactor.listener_addr(listener).unwrap();
    for round in 0..20 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"last words").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let wait = 10 + round;
        if reactor.accept_wait(listener, wait) == Ok(false) {
            poll_until(&mut reactor, |p| p.waits.contains(&(wait, 0)));
        }
        let conn = reactor.take_accepted(listener).pop().unwrap();
        let mut got = Vec::new();
        loop {
            let data = match reactor.recv(conn, Frame::Any(1024)).unwrap() {
                Recv::Bytes(data) => data,
                Recv::Waiting => {
                    let data = poll_until(&mut reactor, |p| !p.recvs.is_empty()).recvs[0]
                        .2
                        .clone();
                    // A recv of any bytes may stay armed (ARMED): withdraw it.
                    reactor.cancel_recv(conn);
                    data
                }
                Recv::Failed(status) => panic!("failed with {status}"),
            };
            if data.is_empty() {
                break;
            }
            got.extend(data);
        }
        assert_eq!(got, b"last words", "round {round}");
        reactor.close(conn);
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
fn builtin_replies_that_fill_the_send_buffer_arrive_whole_and_in_order() {
    let server = Server::bind(loopback(), 16, Handler::Upper, net()).unwrap();
    let c = client(&server);
    let data: Vec<u8> = (0..(4u32 << 20)).map(|i| b'a' + (i % 26) as u8).collect();
    let mut writer = c.try_clone().unwrap();
    let sent = data.clone();
    // The client writes everything before reading: the server's replies
    // fill its send buffer, and it must stop reading until they are out.
    let writing = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut got = vec![0u8; data.len()];
    let mut reader = c;
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    reader.read_exact(&mut got).unwrap();
    writing.join().unwrap();
    assert!(
        got == data.to_ascii_uppercase(),
        "the replies arrived out of order"
    );
    server.close(None);
}

// --- The front end's reactor ---

use super::wire::*;

/// What polls handed over: wait completions, recv deliveries by slot.
#[derive(Default)]
struct Polled {
    waits: Vec<(u32, i32)>,
    recvs: Vec<(u32, i32, Vec<u8>)>,
}

/// Polls `reactor` until `done(&polled)` holds (2 s at most).
fn poll_until(reactor: &mut Reactor, done: impl Fn(&Polled) -> bool) -> Polled {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut meta = vec![0.0; POLL_HEADER + 64 * POLL_ENTRY_WIDTH];
    let mut bytes = vec![0u8; 1 << 20];
    let mut polled = Polled::default();
    loop {
        assert!(Instant::now() < deadline, "nothing came");
        reactor.poll(&mut meta, &mut bytes).unwrap();
        for i in 0..meta[0] as usize {
            let e = &meta[POLL_HEADER + i * POLL_ENTRY_WIDTH..][..POLL_ENTRY_WIDTH];
            let (key, status) = (e[1] as u32, e[2] as i32);
            if e[0] == KIND_WAIT {
                polled.waits.push((key, status));
            } else {
                let (at, len) = (e[3] as usize, e[4] as usize);
                polled
                    .recvs
                    .push((key, status, bytes[at..at + len].to_vec()));
            }
        }
        if done(&polled) {
            return polled;
        }
        if meta[1] as u32 & MORE == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A reactor listening on loopback, one accepted connection and its client.
fn reactor_pair() -> (Reactor, Token, TcpStream, Token) {
    let mut reactor = Reactor::new().unwrap();
    let listener = reactor.listen(loopback(), 16).unwrap();
    let addr = reactor.listener_addr(listener).unwrap();
    let client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(reactor.accept_wait(listener, 1), Ok(false));
    poll_until(&mut reactor, |p| p.waits.contains(&(1, 0)));
    let conn = reactor.take_accepted(listener).pop().unwrap();
    assert_eq!(reactor.peer_addr(conn), client.local_addr().ok());
    (reactor, listener, client, conn)
}

#[test]
fn reactor_delivers_bytes_to_an_armed_recv_and_takes_them_at_once_when_buffered() {
    let (mut reactor, _listener, mut c, conn) = reactor_pair();
    assert_eq!(reactor.recv(conn, Frame::Any(1024)), Ok(Recv::Waiting));
    assert_eq!(
        reactor.recv(conn, Frame::Any(1024)),
        Err(-libc::EALREADY),
        "one recv at a time"
    );
    c.write_all(b"ping").unwrap();
    let p = poll_until(&mut reactor, |p| !p.recvs.is_empty());
    assert_eq!(
        p.recvs,
        vec![(conn.index, ARMED, b"ping".to_vec())],
        "drained: the recv stays armed"
    );
    assert_eq!(reactor.recv(conn, Frame::Any(1024)), Err(-libc::EALREADY));
    reactor.cancel_recv(conn);
    assert_eq!(reactor.send(conn, b"pong"), Ok(4));
    let mut reply = [0u8; 4];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"pong");
    c.write_all(b"abcdef").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // The edge is seen by a poll; the bytes stay in the kernel until a recv.
    assert!(poll_until(&mut reactor, |_| true).recvs.is_empty());
    assert_eq!(
        reactor.recv(conn, Frame::Any(4)),
        Ok(Recv::Bytes(b"abcd".to_vec()))
    );
    assert_eq!(
        reactor.recv(conn, Frame::Any(4)),
        Ok(Recv::Bytes(b"ef".to_vec()))
    );
    drop(c);
    assert_eq!(reactor.recv(conn, Frame::Any(4)), Ok(Recv::Waiting));
    let p = poll_until(&mut reactor, |p| !p.recvs.is_empty());
    assert_eq!(p.recvs, vec![(conn.index, 0, Vec::new())], "EOF");
    assert_eq!(
        reactor.recv(conn, Frame::Any(4)),
        Ok(Recv::Bytes(Vec::new()))
    );
    assert_eq!(reactor.close(conn), 0);
    assert_eq!(reactor.recv(conn, Frame::Any(4)), Err(-libc::EBADF));
}

#[test]
fn reactor_frames_lines_and_exact_counts_across_reads_and_at_eof() {
    let (mut reactor, _listener, mut c, conn) = reactor_pair();
    assert_eq!(reactor.recv(conn, Frame::Line(100)), Ok(Recv::Waiting));
    c.write_all(b"first ").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let p = poll_until(&mut reactor, |_| true);
    assert!(p.recvs.is_empty(), "no line yet");
    c.write_all(b"line\nsecond").unwrap();
    let p = poll_until(&mut reactor, |p| !p.recvs.is_empty());
    assert_eq!(p.recvs, vec![(conn.index, 0, b"first line\n".to_vec())]);
    assert_eq!(
        reactor.recv(conn, Frame::Line(3)),
        Ok(Recv::Bytes(b"sec".to_vec())),
        "a line longer than the limit comes in pieces"
    );
    assert_eq!(reactor.recv(conn, Frame::Exactly(5)), Ok(Recv::Waiting));
    c.write_all(b"45678").unwrap();
    let p = poll_until(&mut reactor, |p| !p.recvs.is_empty());
    assert_eq!(p.recvs, vec![(conn.index, 0, b"ond45".to_vec())]);
    c.write_all(b"9").unwrap();
    drop(c);
    assert_eq!(reactor.recv(conn, Frame::Line(100)), Ok(Recv::Waiting));
    let p = poll_until(&mut reactor, |p| !p.recvs.is_empty());
    assert_eq!(
        p.recvs,
        vec![(conn.index, 0, b"6789".to_vec())],
        "the rest at EOF"
    );
    assert_eq!(
        reactor.recv(conn, Frame::Exactly(3)),
        Ok(Recv::Bytes(Vec::new()))
    );
}

#[test]
fn reactor_give_back_puts_delivered_bytes_first_again() {
    let (mut reactor, _listener, mut c, conn) = reactor_pair();
    assert_eq!(reactor.recv(conn, Frame::Any(1024)), Ok(Recv::Waiting));
    c.write_all(b"late").unwrap();
    let p = poll_until(&mut reactor, |p| !p.recvs.is_empty());
    reactor.give_back(conn, &p.recvs[0].2, 0);
    c.write_all(b"r").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    poll_until(&mut reactor, |_| true);
    assert_eq!(
        reactor.recv(conn, Frame::Exactly(5)),
        Ok(Recv::Bytes(b"later".to_vec()))
    );
    assert_eq!(reactor.recv(conn, Frame::Any(8)), Ok(Recv::Waiting));
    reactor.cancel_recv(conn);
    c.write_all(b"kept").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    poll_until(&mut reactor, |_| true);
    assert_eq!(
        reactor.recv(conn, Frame::Any(8)),
        Ok(Recv::Bytes(b"kept".to_vec()))
    );
}

#[test]
fn reactor_sends_wait_for_room_and_closing_writes_out_the_queue() {
    let (mut reactor, _listener, mut c, conn) = reactor_pair();
    let big: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
    let mut sent = reactor.send(conn, &big).unwrap();
    assert!(sent < big.len(), "8 MiB cannot all be taken at once");
    assert!(reactor.queued(conn) <= SEND_QUEUE_LIMIT);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.read_to_end(&mut got).unwrap();
        got
    });
    let mut wait = 10;
    while sent < big.len() {
        wait += 1;
        if !reactor.drain_wait(conn, wait, 0).unwrap() {
            poll_until(&mut reactor, |p| p.waits.contains(&(wait, 0)));
        }
        sent += reactor.send(conn, &big[sent..]).unwrap();
    }
    let queued = reactor.close(conn);
    if queued > 0 {
        assert!(!reactor.close_wait(conn, 99));
        poll_until(&mut reactor, |p| p.waits.contains(&(99, 0)));
    }
    assert!(
        reader.join().unwrap() == big,
        "the bytes arrived out of order"
    );
}

#[test]
fn reactor_connects_reports_refusal_and_closing_a_listener_fails_its_accept_wait() {
    let mut reactor = Reactor::new().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    match reactor.connect(free, 1) {
        Err(status) => assert_eq!(status, -libc::ECONNREFUSED),
        Ok(refused) => {
            poll_until(&mut reactor, |p| {
                p.waits.contains(&(1, -libc::ECONNREFUSED))
            });
            assert_eq!(reactor.send(refused, b"x"), Err(-libc::EBADF));
            reactor.close(refused);
        }
    }
    let listener = reactor.listen(loopback(), 16).unwrap();
    let addr = reactor.listener_addr(listener).unwrap();
    let client = reactor.connect(addr, 2).unwrap();
    assert_eq!(reactor.send(client, b"x"), Err(-libc::ENOTCONN));
    assert_eq!(reactor.accept_wait(listener, 3), Ok(false));
    let p = poll_until(&mut reactor, |p| {
        p.waits.contains(&(2, 0)) && p.waits.contains(&(3, 0))
    });
    assert_eq!(p.waits.len(), 2);
    let served = reactor.take_accepted(listener).pop().unwrap();
    assert_eq!(reactor.send(client, b"hi"), Ok(2));
    // Read at once if the bytes are there already (a new socket may hold
    // bytes that came before it was watched), else delivered by a poll.
    if reactor.recv(served, Frame::Exactly(2)) != Ok(Recv::Bytes(b"hi".to_vec())) {
        let p = poll_until(&mut reactor, |p| !p.recvs.is_empty());
        assert_eq!(p.recvs, vec![(served.index, 0, b"hi".to_vec())]);
    }
    assert_eq!(reactor.accept_wait(listener, 4), Ok(false));
    reactor.close_listener(listener);
    poll_until(&mut reactor, |p| p.waits.contains(&(4, -libc::EBADF)));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the port is free"
    );
}

#[test]
fn reactor_reports_a_reset_to_an_armed_recv_once_then_eof() {
    let (mut reactor, _listener, c, conn) = reactor_pair();
    assert_eq!(reactor.recv(conn, Frame::Any(16)), Ok(Recv::Waiting));
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    let p = poll_until(&mut reactor, |p| !p.recvs.is_empty());
    assert_eq!(p.recvs, vec![(conn.index, -libc::ECONNRESET, Vec::new())]);
    assert_eq!(
        reactor.recv(conn, Frame::Any(16)),
        Ok(Recv::Bytes(Vec::new()))
    );
}
