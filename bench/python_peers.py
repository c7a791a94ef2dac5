"""Python peers of `npm run bench` (bench/run.ts): the seeds' own gevent,
greenlet and concurrent.futures programs (shared/seeds/00*.txt), scaled up
to the benchmark's workloads. One case per process, one JSON line.

usage: python python_peers.py CASE [N_OR_WORKERS]

- w1-gevent [N]: N greenlets (default 100,000) each gevent.sleep(0), joinall
  (the seeds' spawn/joinall of play and eat).
- w2-greenlet: 1,000,000 transfers between two greenlets switching to each
  other (seed 003's greenlet test1/test2).
- w3-gevent: 100,000 greenlets each gevent.sleep(0.01), joinall.
- pingpong-gevent: 100,000 round trips over two gevent.queue.Queue between
  two greenlets (put / get each way).
- map-gevent: gevent.pool.Pool(100).imap_unordered over 100,000 items.
- w5a-cf-thread|w5a-cf-process [WORKERS]: 20,000 tiny tasks (x * x) through
  concurrent.futures' ThreadPoolExecutor / ProcessPoolExecutor (seed 001:
  pool.submit(task, i).add_done_callback(call_back)), warmed up first.
- w5b-cf-thread|w5b-cf-process [WORKERS]: 200 x fib(22), which takes about
  what fib(27) takes in V8, with the ideal (200 x one fib(22) here /
  workers) measured right before the run.
"""
import json
import resource
import sys
import threading
import time

TINY_TASKS = 20_000
FIB_TASKS = 200
FIB_N = 22
ITEMS = 100_000


def square(x):
    return x * x


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def timed(ops, body):
    start = time.perf_counter()
    body()
    return {"ops": ops, "ms": (time.perf_counter() - start) * 1000}


def w1_gevent(n):
    import gevent

    def body():
        gevent.joinall([gevent.spawn(gevent.sleep, 0) for _ in range(n)])

    return timed(n, body)


def w2_greenlet(_):
    from greenlet import greenlet

    transfers = 1_000_000
    rounds = transfers // 2

    def ping():
        v = 0
        for _ in range(rounds):
            v = gr_pong.switch(v + 1)
        return v

    def pong(v):
        while True:
            v = gr_ping.switch(v + 1)

    gr_ping = greenlet(ping)
    gr_pong = greenlet(pong)
    out = {}

    def body():
        out["last"] = gr_ping.switch()

    r = timed(transfers, body)
    if out["last"] != transfers:
        raise RuntimeError("ping-pong ended at %r" % out["last"])
    return r


def w3_gevent(_):
    import gevent

    def body():
        gevent.joinall([gevent.spawn(gevent.sleep, 0.01) for _ in range(ITEMS)])

    return timed(ITEMS, body)


def pingpong_gevent(_):
    import gevent
    from gevent.queue import Queue

    ping, pong = Queue(), Queue()
    total = {"sum": 0}

    def echo():
        while True:
            x = ping.get()
            if x < 0:
                return
            pong.put(x * 2)

    def driver():
        for i in range(ITEMS):
            ping.put(i)
            total["sum"] += pong.get()
        ping.put(-1)

    r = timed(ITEMS, lambda: gevent.joinall([gevent.spawn(echo), gevent.spawn(driver)], raise_error=True))
    if total["sum"] != ITEMS * (ITEMS - 1):
        raise RuntimeError("wrong result %d" % total["sum"])
    return r


def map_gevent(_):
    from gevent.pool import Pool

    total = {"sum": 0}

    def body():
        pool = Pool(100)
        for r in pool.imap_unordered(lambda x: x * 2, range(ITEMS)):
            total["sum"] += r

    r = timed(ITEMS, body)
    if total["sum"] != ITEMS * (ITEMS - 1):
        raise RuntimeError("wrong result %d" % total["sum"])
    return r


def run_pool(pool, fn, count, arg):
    """Submits count tasks, counts completions in done callbacks, waits for the last."""
    done = threading.Event()
    state = {"n": 0}
    lock = threading.Lock()

    def call_back(_future):
        with lock:
            state["n"] += 1
            if state["n"] == count:
                done.set()

    for i in range(count):
        pool.submit(fn, arg(i)).add_done_callback(call_back)
    done.wait()


def executor(kind, workload, workers):
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    pool = (ThreadPoolExecutor if kind == "thread" else ProcessPoolExecutor)(workers)
    run_pool(pool, square, 2_000, lambda i: i)  # warm-up: every worker started
    run_pool(pool, fib, 4 * workers, lambda i: 15)
    if workload == "w5a":
        r = timed(TINY_TASKS, lambda: run_pool(pool, square, TINY_TASKS, lambda i: i))
    else:
        for _ in range(3):
            fib(FIB_N)
        runs = []
        for _ in range(9):
            t0 = time.perf_counter()
            fib(FIB_N)
            runs.append((time.perf_counter() - t0) * 1000)
        single = sorted(runs)[len(runs) // 2]
        r = timed(FIB_TASKS, lambda: run_pool(pool, fib, FIB_TASKS, lambda i: FIB_N))
        r.update(singleMs=single, idealMs=FIB_TASKS * single / workers)
    pool.shutdown()
    r["workers"] = workers
    return r


CASES = {
    "w1-gevent": w1_gevent,
    "w2-greenlet": w2_greenlet,
    "w3-gevent": w3_gevent,
    "pingpong-gevent": pingpong_gevent,
    "map-gevent": map_gevent,
}


def main():
    name = sys.argv[1]
    arg = int(sys.argv[2]) if len(sys.argv) > 2 else None
    if name in CASES:
        r = CASES[name](arg if arg is not None else ITEMS)
    elif name.startswith(("w5a-cf-", "w5b-cf-")):
        r = executor(name.split("-")[2], name[:3], arg or 2)
    else:
        sys.stderr.write("unknown case %s\n" % name)
        sys.exit(2)
    r["case"] = name
    r["maxRssKiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
