//! Echo load generator: `--clients` loopback connections, each with one
//! `--size`-byte message in flight (the seeds' "client-N say hello K",
//! padded), expecting it back upper-cased (or as is with `--expect echo`).
//! One thread, one level-triggered epoll set, so that it costs as little CPU
//! as a client can: the server under test should be the bottleneck.
//!
//! It runs `--warmup` seconds unmeasured, then `--seconds` measured, then
//! stops by itself (closing every connection) and prints one JSON line:
//! messages, msgs/s, latency percentiles in microseconds, errors. A hard
//! deadline of twice the run time plus 5 s ends it even if the server stalls.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

struct Options {
    addr: SocketAddr,
    clients: usize,
    size: usize,
    seconds: f64,
    warmup: f64,
    upper: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --port P [--host 127.0.0.1] [--clients 500] [--size 32] [--seconds 5] [--warmup 1] [--expect upper|echo]"
    );
    std::process::exit(2)
}

fn number<T: std::str::FromStr>(value: &str) -> T {
    value.parse().unwrap_or_else(|_| usage())
}

fn parse_options() -> Options {
    let mut host = "127.0.0.1".to_string();
    let mut port: Option<u16> = None;
    let mut o = Options {
        addr: "127.0.0.1:0".parse().unwrap(),
        clients: 500,
        size: 32,
        seconds: 5.0,
        warmup: 1.0,
        upper: true,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else { usage() };
        match flag.as_str() {
            "--host" => host = value.clone(),
            "--port" => port = Some(number(value)),
            "--clients" => o.clients = number(value),
            "--size" => o.size = number(value),
            "--seconds" => o.seconds = number(value),
            "--warmup" => o.warmup = number(value),
            "--expect" => o.upper = value == "upper",
            _ => usage(),
        }
    }
    let Some(port) = port else { usage() };
    o.addr = format!("{host}:{port}").parse().unwrap_or_else(|_| usage());
    if o.clients == 0
        || o.size == 0
        || o.size > 1024
        || o.seconds.is_nan()
        || o.seconds <= 0.0
        || o.warmup.is_nan()
        || o.warmup < 0.0
    {
        usage();
    }
    o
}

struct Client {
    stream: TcpStream,
    message: Vec<u8>,
    expected: Vec<u8>,
    received: Vec<u8>,
    sent_at: Instant,
    counter: u64,
    id: usize,
    done: bool,
}

impl Client {
    fn compose(&mut self, size: usize, upper: bool) {
        let mut text = format!("client-{} say hello {}", self.id, self.counter).into_bytes();
        text.resize(size, b'.');
        self.expected = if upper {
            text.to_ascii_uppercase()
        } else {
            text.clone()
        };
        self.message = text;
        self.received.clear();
    }

    fn send(&mut self) -> io::Result<()> {
        self.sent_at = Instant::now();
        // A message far smaller than an empty send buffer goes out whole.
        (&self.stream).write_all(&self.message)
    }
}

/// Microsecond latency histogram up to 1 s, then one overflow bucket.
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Histogram {
    const MAX_US: usize = 1_000_000;

    fn new() -> Histogram {
        Histogram {
            buckets: vec![0; Self::MAX_US + 1],
            count: 0,
        }
    }

    fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as usize).min(Self::MAX_US);
        self.buckets[us] += 1;
        self.count += 1;
    }

    fn percentile(&self, p: f64) -> usize {
        let target = ((self.count as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (us, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return us;
            }
        }
        Self::MAX_US
    }
}

fn epoll_add(epfd: RawFd, fd: RawFd, token: usize) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token as u64,
    };
    // SAFETY: both fds are open; `event` is a valid epoll_event.
    if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// The report on stdout is this tool's output, read by bench/echo.ts.
#[allow(clippy::print_stdout)]
fn main() {
    let o = parse_options();
    // SAFETY: plain syscall; the result is checked.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        eprintln!("loadgen: epoll_create1: {}", io::Error::last_os_error());
        std::process::exit(1);
    }
    let mut clients = Vec::with_capacity(o.clients);
    for id in 0..o.clients {
        let stream = TcpStream::connect(o.addr).unwrap_or_else(|e| {
            eprintln!("loadgen: connect {}: {e}", o.addr);
            std::process::exit(1)
        });
        stream.set_nodelay(true).ok();
        stream.set_nonblocking(true).expect("set_nonblocking");
        epoll_add(epfd, stream.as_raw_fd(), id).expect("epoll_ctl");
        let mut c = Client {
            stream,
            message: Vec::new(),
            expected: Vec::new(),
            received: Vec::with_capacity(o.size),
            sent_at: Instant::now(),
            counter: 0,
            id,
            done: false,
        };
        c.compose(o.size, o.upper);
        clients.push(c);
    }

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(o.warmup);
    let end = measure_from + Duration::from_secs_f64(o.seconds);
    let hard_deadline = end + Duration::from_secs_f64(o.warmup + o.seconds + 5.0);
    let mut histogram = Histogram::new();
    let mut errors = 0u64;
    let mut active = o.clients;
    for c in &mut clients {
        if c.send().is_err() {
            errors += 1;
            c.done = true;
            active -= 1;
        }
    }

    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = [0u8; 4096];
    while active > 0 && Instant::now() < hard_deadline {
        // SAFETY: `events` is a valid buffer of its length.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, 100) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            eprintln!("loadgen: epoll_wait: {}", io::Error::last_os_error());
            break;
        }
        let now = Instant::now();
        for event in &events[..n as usize] {
            let c = &mut clients[event.u64 as usize];
            if c.done {
                continue;
            }
            let want = c.expected.len() - c.received.len();
            match io::Read::read(&mut &c.stream, &mut buf[..want]) {
                Ok(0) | Err(_) => {
                    // EOF or reset: the server dropped us.
                    errors += 1;
                    c.done = true;
                    active -= 1;
                    continue;
                }
                Ok(k) => c.received.extend_from_slice(&buf[..k]),
            }
            if c.received.len() < c.expected.len() {
                continue;
            }
            if c.received != c.expected {
                errors += 1;
            }
            if c.sent_at >= measure_from && now <= end {
                histogram.record(now - c.sent_at);
            }
            if now >= end {
                c.done = true;
                active -= 1;
                continue;
            }
            c.counter += 1;
            c.compose(o.size, o.upper);
            if c.send().is_err() {
                errors += 1;
                c.done = true;
                active -= 1;
            }
        }
    }
    let unfinished = active;
    drop(clients);
    // SAFETY: closing our own epoll fd.
    unsafe { libc::close(epfd) };

    let msgs = histogram.count;
    println!(
        "{{\"clients\":{},\"size\":{},\"seconds\":{},\"msgs\":{},\"msgs_per_sec\":{:.0},\"p50_us\":{},\"p99_us\":{},\"errors\":{},\"unfinished\":{}}}",
        o.clients,
        o.size,
        o.seconds,
        msgs,
        msgs as f64 / o.seconds,
        histogram.percentile(0.50),
        histogram.percentile(0.99),
        errors,
        unfinished
    );
}
