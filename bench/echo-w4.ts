/**
 * W4 side by side: every echo server of bench/echo.ts at several client
 * counts, interleaved rounds, one Markdown table per client count with the
 * median round's msgs/s, latency, the server's CPU time per message, and the
 * ratios the sockets issue sets (JS handler vs Node net, native 'upper' vs C
 * epoll, the sync-mode seed server vs the seed's gevent server).
 *
 *   node dist/bench/echo-w4.js [--rounds 3] [--seconds 3] [--clients 50,500,5000] [--servers js,native,sync,node,c,gevent]
 *
 * Pinning as bench/echo.ts (GREENTHREAD_BENCH_PIN=0 for unpinned runs);
 * the gevent server needs GEVENT_PYTHON or the bench's venv (see _setup.ts).
 */
import { execFileSync } from 'node:child_process'
import path from 'node:path'

import { pinning, setupPython } from './_setup'

type Row = { case: string; msgs_per_sec: number; p50_us: number; p99_us: number; errors: number; unfinished: number; cpu_us_per_msg?: number }

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : process.argv[i + 1]
}

const rounds = Number(option('rounds', '3'))
const seconds = Number(option('seconds', '3'))
const clientCounts = option('clients', '50,500,5000').split(',').map(Number)
let servers = option('servers', 'js,native,sync,node,c,gevent').split(',')

const labels: Record<string, string> = {
  js: 'greenthread StreamServer, JS handler',
  native: "greenthread StreamServer, native 'upper'",
  sync: 'greenthread/sync StreamServer, sync handler',
  node: 'Node net',
  c: 'C epoll (cc -O2)',
  gevent: 'gevent (the seed server, CPython)',
}
const ratios: Array<[string, string, string]> = [
  ['js', 'node', 'JS handler vs Node net'],
  ['native', 'c', "native 'upper' vs C epoll"],
  ['sync', 'gevent', 'sync-mode seed server vs gevent'],
  ['node', 'c', 'Node net vs C epoll'],
]

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function run(server: string, clients: number): Row {
  const env = { ...process.env }
  if (server === 'gevent' && env.GEVENT_PYTHON === undefined) env.GEVENT_PYTHON = python
  // Thousands of connections take a while to open: a longer warm-up.
  const warmup = clients >= 5000 ? '3' : '1'
  const out = execFileSync(
    process.execPath,
    [path.join(__dirname, 'echo.js'), server, '--clients', String(clients), '--seconds', String(seconds), '--warmup', warmup],
    { encoding: 'utf8', env, timeout: (4 * seconds + 120) * 1000, stdio: ['ignore', 'pipe', 'inherit'] },
  )
  return JSON.parse(out.trim().split('\n').pop()!) as Row
}

let python: string | undefined
if (servers.includes('gevent')) {
  const found = setupPython((line) => process.stderr.write(`${line}\n`))
  python = found.python
  if (python === undefined) {
    process.stderr.write(`no gevent server: ${found.reason}\n`)
    servers = servers.filter((s) => s !== 'gevent')
  }
}

const pins = pinning()
const results = new Map<string, Row[]>()
for (let r = 0; r < rounds; r++) {
  for (const clients of clientCounts) {
    // Rotated per round, so that no server always runs first.
    const order = servers.map((_, i) => servers[(i + r) % servers.length])
    for (const server of order) {
      const key = `${server}@${clients}`
      let row: Row
      try {
        row = run(server, clients)
      } catch (err) {
        process.stderr.write(`round ${r + 1} ${key}: failed: ${(err as Error).message.split('\n')[0]}\n`)
        continue
      }
      results.set(key, [...(results.get(key) ?? []), row])
      process.stderr.write(`round ${r + 1}/${rounds} ${key}: ${row.msgs_per_sec} msgs/s, p99 ${(row.p99_us / 1000).toFixed(2)} ms, ${row.cpu_us_per_msg ?? '?'} us/msg\n`)
    }
  }
}

const where = pins.pinned ? `servers on CPU ${pins.serverCpus}, load generator on CPU ${pins.loadCpus}` : `unpinned (${pins.reason ?? 'GREENTHREAD_BENCH_PIN=0'})`
console.log(`\nW4 echo, Node ${process.version}, ${seconds} s per run, median of ${rounds} interleaved rounds, ${where}\n`)
for (const clients of clientCounts) {
  console.log(`${clients.toLocaleString('en')} clients:\n`)
  console.log('| server | msgs/s | p50 | p99 | CPU per msg | errors | all rounds (msgs/s) |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- |')
  const medians = new Map<string, number>()
  for (const server of servers) {
    const rows = results.get(`${server}@${clients}`)
    if (rows === undefined || rows.length === 0) continue
    const m = [...rows].sort((a, b) => a.msgs_per_sec - b.msgs_per_sec)[Math.floor(rows.length / 2)]
    medians.set(server, m.msgs_per_sec)
    const cpu = rows.map((x) => x.cpu_us_per_msg).filter((x): x is number => x !== undefined)
    const errors = rows.reduce((n, x) => n + x.errors + x.unfinished, 0)
    console.log(
      `| ${labels[server]} | ${m.msgs_per_sec} | ${(m.p50_us / 1000).toFixed(2)} ms | ${(m.p99_us / 1000).toFixed(2)} ms | ${cpu.length > 0 ? `${median(cpu).toFixed(2)} us` : '-'} | ${errors} | ${rows.map((x) => x.msgs_per_sec).join(', ')} |`,
    )
  }
  console.log('')
  for (const [ours, peer, what] of ratios) {
    const a = medians.get(ours)
    const b = medians.get(peer)
    if (a !== undefined && b !== undefined) console.log(`- ${what}: ${(a / b).toFixed(2)}x`)
  }
  console.log('')
}
