#!/usr/bin/env node
/**
 * Leak check (not part of the test suite): runs each workload at volume and
 * compares the process's resident memory (after forced GCs) and its open
 * file descriptors (/proc/self/fd) before and after.
 *
 *   npx tsc -p tsconfig.json && node --expose-gc bench/leaks.js [scale]
 *
 * `scale` (default 1) multiplies every count: 0.1 for a quick look.
 *
 * Workloads:
 *   - 1,000,000 greenlets spawned and joined (in batches of 10,000)
 *   - 100,000 ThreadPoolExecutor tasks and 100,000 ProcessPoolExecutor tasks
 *     with object arguments and results
 *   - 10,000 connect / round trip / close against a local StreamServer
 *     (JS handler), and 10,000 against a built-in 'echo' one
 *   - 100,000 Timeouts started in greenlets: 90% cancelled, 10% fired
 *
 *   - 200 ThreadPoolExecutors and 50 ProcessPoolExecutors, each used for 20
 *     tasks and shut down: how many are still alive after GC (WeakRefs)
 *
 * A 1% warm-up of every workload first starts each subsystem once (the
 * runtime's threads and reactor hold a few descriptors for good). Then each
 * workload runs three times at full size. The first runs reach the
 * allocators' high-water marks (glibc keeps freed memory in its per-thread
 * arenas, and worker threads' arenas take a run or two to level off; V8
 * keeps pages), which RSS does not give back; the third run, doing the same
 * work again, shows what is actually retained per run. Pass:
 * RSS growth over the third run below 64 MB after GC, the fd count back to
 * at most the baseline + 2 after each run, and (executors) nothing left alive.
 * Exits 1 if any workload fails.
 */
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const G = require(path.join(__dirname, '..', 'dist', 'index.js'))

if (typeof global.gc !== 'function') {
  console.error('run with --expose-gc: node --expose-gc bench/leaks.js')
  process.exit(2)
}

const SCALE = Number(process.argv[2] ?? 1)
const RSS_LIMIT_MB = 64
const FD_SLACK = 2

const sleepReal = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function settle() {
  // Several GCs with turns in between: finalizers (native sockets, workers) run on later turns.
  for (let i = 0; i < 6; i++) {
    global.gc()
    await sleepReal(50)
  }
}

function fdCount() {
  return fs.readdirSync('/proc/self/fd').length
}

async function measure() {
  await settle()
  const m = process.memoryUsage()
  return { rss: m.rss / 2 ** 20, heap: m.heapUsed / 2 ** 20, fds: fdCount() }
}

// ------------------------------------------------------------------ workloads

function identity(x) {
  return x
}

async function spawnJoin(n) {
  const batch = 10_000
  for (let done = 0; done < n; done += batch) {
    const gs = []
    for (let i = 0; i < Math.min(batch, n - done); i++) gs.push(G.spawn(identity, done + i))
    await G.joinall(gs)
    for (const [i, g] of gs.entries()) if (g.value !== done + i) throw new Error(`greenlet ${done + i} returned ${g.value}`)
  }
}

function executorTasks(Kind) {
  return async (n) => {
    const pool = new Kind({ maxWorkers: 2 })
    const batch = 5_000
    try {
      for (let done = 0; done < n; done += batch) {
        const futures = []
        for (let i = 0; i < Math.min(batch, n - done); i++) {
          const arg = { id: done + i, tags: ['a', 'b', 'c'], nested: { when: Date.now(), payload: 'x'.repeat(64) } }
          futures.push(pool.submit((o) => ({ id: o.id, size: o.tags.length + o.nested.payload.length }), arg))
        }
        const { notDone } = await G.wait(futures, { timeoutMs: 120_000 })
        if (notDone.size > 0) throw new Error(`${notDone.size} tasks unfinished`)
        const last = await futures[futures.length - 1].result()
        if (last.size !== 67) throw new Error(`wrong result ${JSON.stringify(last)}`)
      }
    } finally {
      await pool.shutdown()
    }
  }
}

function connectClose(handler) {
  return async (n) => {
    const server = new G.StreamServer({ port: 0 }, handler)
    server.start()
    const port = server.address.port
    const parallel = 20
    let next = 0
    const client = async () => {
      while (next < n) {
        next++
        const sock = await G.connect('127.0.0.1', port, { timeoutMs: 10_000 })
        await sock.sendall('ping')
        const reply = await sock.recvExactly(4)
        if (reply.toString() !== 'ping') throw new Error(`wrong reply ${reply}`)
        sock.close()
      }
    }
    try {
      await Promise.all(Array.from({ length: parallel }, client))
    } finally {
      await server.stop({ timeoutMs: 1000 })
    }
  }
}

async function jsEcho(sock) {
  for (;;) {
    const data = await sock.recv()
    if (data.length === 0) return
    await sock.sendall(data)
  }
}

async function timeouts(n) {
  const batch = 1000
  let fired = 0
  let cancelled = 0
  for (let done = 0; done < n; done += batch) {
    const gs = []
    for (let i = 0; i < Math.min(batch, n - done); i++) {
      const fires = (done + i) % 10 === 0
      gs.push(
        G.spawn(async () => {
          const t = G.Timeout.startNew(fires ? 1 : 60_000)
          try {
            await G.sleep(fires ? 30 : 0)
            cancelled++
          } catch (err) {
            if (err !== t) throw err
            fired++
          } finally {
            t.cancel()
          }
        }),
      )
    }
    await G.joinall(gs, { raiseError: true })
  }
  if (fired + cancelled !== n) throw new Error(`fired ${fired} + cancelled ${cancelled} != ${n}`)
  return `${fired} fired, ${cancelled} cancelled`
}

async function executorChurn(n) {
  const refs = []
  const threads = Math.round(n * 0.8)
  // One function call per pool: an async function's context keeps its last
  // loop variable alive, which would hold the last pool.
  const use = async (i) => {
    const pool = i < threads ? new G.ThreadPoolExecutor({ maxWorkers: 1 }) : new G.ProcessPoolExecutor({ maxWorkers: 1 })
    refs.push(new WeakRef(pool))
    const futures = []
    for (let j = 0; j < 20; j++) futures.push(pool.submit((o) => o.j, { j }))
    await G.wait(futures)
    await pool.shutdown()
  }
  for (let i = 0; i < n; i++) await use(i)
  await settle()
  return { note: `${refs.filter((r) => r.deref() !== undefined).length} of ${n} executors still alive after GC`, left: refs.filter((r) => r.deref() !== undefined).length }
}

const workloads = [
  ['spawn + join', 1_000_000, spawnJoin],
  ['ThreadPoolExecutor tasks (object args)', 100_000, executorTasks(G.ThreadPoolExecutor)],
  ['ProcessPoolExecutor tasks (object args)', 100_000, executorTasks(G.ProcessPoolExecutor)],
  ['connect/round trip/close (JS handler)', 10_000, connectClose(jsEcho)],
  ["connect/round trip/close ('echo')", 10_000, connectClose('echo')],
  ['Timeouts (10% fired)', 100_000, timeouts],
  ['executors created and shut down', 250, executorChurn],
]

// ------------------------------------------------------------------ run

function pad(s, n, right = false) {
  s = String(s)
  return right ? s.padStart(n) : s.padEnd(n)
}

async function main() {
  const rows = []
  const fresh = await measure()
  // Every subsystem once (the runtime's threads and reactor, pools, sockets): their one-time
  // descriptors and memory belong to the baseline, not to the first workload.
  for (const [name, count, run] of workloads) if (name !== 'executors created and shut down') await run(Math.max(1, Math.round(count * SCALE * 0.01)))
  const start = await measure()
  console.log(
    `node ${process.version}, ${require('node:os').cpus().length} CPUs, scale ${SCALE}; fresh process: RSS ${fresh.rss.toFixed(1)} MB, ${fresh.fds} fds;` +
      ` baseline after a 1% warm-up of each workload: RSS ${start.rss.toFixed(1)} MB, ${start.fds} fds`,
  )
  for (const [name, count, run] of workloads) {
    const n = Math.max(1, Math.round(count * SCALE))
    const before = await measure()
    const t0 = performance.now()
    const first = await run(n)
    const seconds = (performance.now() - t0) / 1000
    const mid = await measure()
    const second = await run(n)
    // A third run: the allocator's per-thread arenas (worker threads) keep
    // growing for a run or two without anything leaking; a leak grows at every run.
    const steady = await measure()
    const third = await run(n)
    const after = await measure()
    const grew = after.rss - steady.rss
    const left = (first?.left ?? 0) + (second?.left ?? 0) + (third?.left ?? 0)
    const ok = grew < RSS_LIMIT_MB && mid.fds <= before.fds + FD_SLACK && after.fds <= before.fds + FD_SLACK && left === 0
    const note = [first, second, third].map((x) => (typeof x === 'string' ? x : x?.note)).filter(Boolean).join('; then ')
    rows.push({ name, n, seconds, before, mid, after, grew, ok, note })
    console.log(`  ${name}: ${n} three times, ${seconds.toFixed(1)} s per run${note ? ` (${note})` : ''}`)
  }
  const header = `| workload | count (×3 runs) | s per run | RSS before MB | after 1st run | after 3rd run | RSS Δ 3rd run MB | heap after MB | fds before | fds after 1st / 3rd | result |`
  console.log()
  console.log(header)
  console.log(`|${header.split('|').slice(1, -1).map(() => '---').join('|')}|`)
  const signed = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${r.n.toLocaleString('en-US')} | ${r.seconds.toFixed(1)} | ${r.before.rss.toFixed(1)} | ${r.mid.rss.toFixed(1)} | ${r.after.rss.toFixed(1)} | ${signed(r.grew)} | ${r.after.heap.toFixed(1)} | ${r.before.fds} | ${r.mid.fds} / ${r.after.fds} | ${r.ok ? 'pass' : 'FAIL'} |`,
    )
  }
  const end = await measure()
  console.log()
  console.log(`overall: RSS ${start.rss.toFixed(1)} -> ${end.rss.toFixed(1)} MB, fds ${start.fds} -> ${end.fds}; bounds: RSS growth < ${RSS_LIMIT_MB} MB per workload after GC, fds <= before + ${FD_SLACK}`)
  const failed = rows.filter((r) => !r.ok)
  console.log(failed.length === 0 ? 'PASS' : `FAIL: ${failed.map((r) => r.name).join(', ')}`)
  process.exit(failed.length === 0 ? 0 : 1)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
