//! Measures the hub alone on the W1 command pattern: spawn, yield, die, join.
//!
//!   cargo run --release -p greenthread-runtime --example hub_throughput
use std::time::Instant;

use greenthread_runtime::hub::{Command, Hub};

fn main() {
    const N: u32 = 100_000;
    let mut hub = Hub::without_alarm();
    let mut delivered = 0usize;
    let mut count = |_| delivered += 1;
    let start = Instant::now();
    hub.flush(
        (1..=N).map(|id| Command::Spawn { id, delay: None }),
        usize::MAX,
        &mut count,
    );
    let joins = std::iter::once(Command::JoinWait {
        id: N + 1,
        count: N,
        timeout: None,
        raise_error: false,
    })
    .chain((1..=N).map(|target| Command::Join {
        waiter: N + 1,
        target,
    }));
    hub.flush(
        (1..=N).map(|id| Command::Yield { id }).chain(joins),
        usize::MAX,
        &mut count,
    );
    hub.flush(
        (1..=N).map(|id| Command::Die { id, failed: false }),
        usize::MAX,
        &mut count,
    );
    let elapsed = start.elapsed();
    println!(
        "{N} greenlets, {} commands, {delivered} resumed: {:?} ({:.0} ns per command)",
        4 * N + 1,
        elapsed,
        elapsed.as_nanos() as f64 / f64::from(4 * N + 1)
    );
}
