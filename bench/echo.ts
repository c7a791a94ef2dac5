/**
 * W4: echo servers under 500 loopback clients, one 32-byte message in flight
 * each, upper-cased echo (the seeds' server and clients). Compares, in the
 * same run:
 *   - greenthread StreamServer with a JS handler (the seeds' talk(conn))
 *   - greenthread StreamServer with the native 'upper' handler
 *   - both again with the runtime's workers reduced to leave one core to the
 *     load generator (the default is one worker per core)
 *   - Node `net` (socket.on('data') -> socket.write)
 *   - a C epoll server (bench/c/echo_epoll.c, built here with cc -O2)
 * The load comes from crates/loadgen (one Rust thread, epoll), a separate
 * process that stops by itself. Servers run one at a time, each in its own
 * process, for several interleaved rounds; the table shows the median round.
 *
 *   - greenthread/sync StreamServer: talk(conn) without await, one sync
 *     greenlet (OS thread) per connection
 *
 *   node dist/bench/echo.js [rounds=3] [seconds=5] [ids=all, comma-separated: js,native,...,sync,node,c]
 *
 * GREENTHREAD_BENCH_PIN=1 (Linux, taskset) pins every server to the last
 * core and the load generator to the others, so that each server has the
 * same CPU whatever its thread count, and none competes with the load.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { availableParallelism } from 'node:os'
import path from 'node:path'

type Load = { msgs_per_sec: number; p50_us: number; p99_us: number; errors: number; unfinished: number }

const root = path.resolve(__dirname, '..', '..')
const target = path.join(root, 'target')
const loadgen = path.join(target, 'release', 'loadgen')
const cServer = path.join(target, 'echo_epoll')
const nodeServer = path.join(__dirname, 'echo-server.js')

/** Leaves the other cores to the load generator: on a 2-core machine, one. */
const sparedWorkers = String(Math.max(1, availableParallelism() - 1))

/** With GREENTHREAD_BENCH_PIN=1: the core of the servers, and those of the load generator. */
const pinned = process.env.GREENTHREAD_BENCH_PIN === '1'
const serverCpus = String(availableParallelism() - 1)
const loadCpus = availableParallelism() > 1 ? `0-${availableParallelism() - 2}` : '0'

/** `command args`, run under `taskset -c cpus` when pinning. */
function onCpus(cpus: string, command: string, args: string[]): [string, string[]] {
  return pinned ? ['taskset', ['-c', cpus, command, ...args]] : [command, args]
}

const servers: Array<{ id: string; label: string; command: string; args: string[]; env?: Record<string, string> }> = [
  { id: 'js', label: 'greenthread StreamServer, JS handler', command: process.execPath, args: [nodeServer, 'js'] },
  { id: 'native', label: "greenthread StreamServer, native 'upper'", command: process.execPath, args: [nodeServer, 'native'] },
  {
    id: 'native-spared',
    label: `greenthread StreamServer, native 'upper', ${sparedWorkers} worker(s)`,
    command: process.execPath,
    args: [nodeServer, 'native'],
    env: { GREENTHREAD_WORKERS: sparedWorkers },
  },
  {
    id: 'js-spared',
    label: `greenthread StreamServer, JS handler, ${sparedWorkers} worker(s)`,
    command: process.execPath,
    args: [nodeServer, 'js'],
    env: { GREENTHREAD_WORKERS: sparedWorkers },
  },
  {
    id: 'sync',
    label: 'greenthread/sync StreamServer, sync-mode JS handler (a thread per connection)',
    command: process.execPath,
    args: [nodeServer, 'sync'],
    env: { GREENTHREAD_SYNC_MAX_THREADS: '1000' },
  },
  { id: 'node', label: 'Node net', command: process.execPath, args: [nodeServer, 'node'] },
  // The seed's own gevent server, where a Python with gevent is named
  // (e.g. GEVENT_PYTHON=/tmp/venv/bin/python after `pip install gevent`).
  ...(process.env.GEVENT_PYTHON
    ? [{ id: 'gevent', label: 'gevent (the seed server, CPython)', command: process.env.GEVENT_PYTHON, args: [path.join(root, 'bench', 'gevent_echo_server.py'), '0'] }]
    : []),
  { id: 'c', label: 'C epoll (cc -O2)', command: cServer, args: [] },
]

const comparisons: Array<{ ours: string; peer: string; target?: number; what: string }> = [
  { ours: 'js', peer: 'node', target: 1.3, what: 'JS handler vs Node net' },
  { ours: 'sync', peer: 'node', what: 'sync-mode JS handler vs Node net' },
  { ours: 'js-spared', peer: 'node', target: 1.3, what: `JS handler (${sparedWorkers} worker(s)) vs Node net` },
  { ours: 'native', peer: 'c', target: 0.95, what: "native 'upper' vs C epoll" },
  { ours: 'native-spared', peer: 'c', target: 0.95, what: `native 'upper' (${sparedWorkers} worker(s)) vs C epoll` },
  // What a single-threaded server without a language runtime reaches next to
  // Node here: a ceiling for the JS handler's target on this machine.
  { ours: 'c', peer: 'node', what: 'C epoll vs Node net' },
]

function build(): void {
  execFileSync('cargo', ['build', '--quiet', '--release', '-p', 'greenthread-loadgen'], { cwd: root, stdio: 'inherit' })
  execFileSync('cc', ['-O2', '-o', cServer, path.join(root, 'bench', 'c', 'echo_epoll.c')], { stdio: 'inherit' })
}

/** Starts a server and resolves with its port once it prints "listening PORT". */
function startServer(
  command: string,
  args: string[],
  env: Record<string, string> | undefined,
  maxSeconds: number,
): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const [program, programArgs] = onCpus(serverCpus, command, [...args, String(maxSeconds)])
    const child = spawn(program, programArgs, {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    })
    let out = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${command} ${args.join(' ')} did not start listening`))
    }, 10_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const m = /listening (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({ child, port: Number(m[1]) })
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${command} exited with ${code} before listening`))
    })
  })
}

function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000)
    child.once('exit', () => {
      clearTimeout(kill)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

async function measure(server: (typeof servers)[number], seconds: number): Promise<Load> {
  const { child, port } = await startServer(server.command, server.args, server.env, seconds + 60)
  try {
    const [program, args] = onCpus(loadCpus, loadgen, [
      '--port',
      String(port),
      '--clients',
      '500',
      '--size',
      '32',
      '--seconds',
      String(seconds),
      '--warmup',
      '1',
    ])
    const out = execFileSync(program, args, { encoding: 'utf8', timeout: (2 * seconds + 30) * 1000 })
    return JSON.parse(out.trim().split('\n').pop()!) as Load
  } finally {
    await stopServer(child)
  }
}

function median(rows: Load[]): Load {
  return [...rows].sort((a, b) => a.msgs_per_sec - b.msgs_per_sec)[Math.floor(rows.length / 2)]
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3)
  const seconds = Number(process.argv[3] ?? 5)
  const ids = process.argv[4]?.split(',')
  const unknown = ids?.filter((id) => !servers.some((s) => s.id === id)) ?? []
  if (unknown.length > 0) throw new Error(`unknown server ids: ${unknown.join(', ')} (known: ${servers.map((s) => s.id).join(', ')})`)
  const selected = servers.filter((s) => ids === undefined || ids.includes(s.id))
  // GREENTHREAD_BENCH_NO_BUILD=1: use the loadgen and C server already built.
  if (!process.env.GREENTHREAD_BENCH_NO_BUILD) build()
  const results = new Map<string, Load[]>()
  for (let r = 0; r < rounds; r++) {
    for (const server of selected) {
      const load = await measure(server, seconds)
      results.set(server.id, [...(results.get(server.id) ?? []), load])
      process.stderr.write(`round ${r + 1}/${rounds} ${server.id}: ${load.msgs_per_sec} msgs/s\n`)
    }
  }
  const where = pinned ? `; servers pinned to CPU ${serverCpus}, load generator to CPU ${loadCpus}` : ''
  console.log(`\nW4 echo: 500 clients x 1 message of 32 bytes in flight, upper-cased, ${seconds} s, median of ${rounds} rounds${where}\n`)
  console.log('| server | msgs/s | p50 | p99 | errors | all rounds (msgs/s) |')
  console.log('| --- | ---: | ---: | ---: | ---: | --- |')
  const medians = new Map<string, Load>()
  for (const server of selected) {
    const rows = results.get(server.id)!
    const m = median(rows)
    medians.set(server.id, m)
    const errors = rows.reduce((n, x) => n + x.errors + x.unfinished, 0)
    const all = rows.map((x) => x.msgs_per_sec).join(', ')
    console.log(`| ${server.label} | ${m.msgs_per_sec} | ${(m.p50_us / 1000).toFixed(2)} ms | ${(m.p99_us / 1000).toFixed(2)} ms | ${errors} | ${all} |`)
  }
  console.log('')
  for (const c of comparisons) {
    if (!medians.has(c.ours) || !medians.has(c.peer)) continue
    const ratio = medians.get(c.ours)!.msgs_per_sec / medians.get(c.peer)!.msgs_per_sec
    const verdict = c.target === undefined ? '' : ` (target >= ${c.target}x: ${ratio >= c.target ? 'met' : 'NOT met'})`
    console.log(`- ${c.what}: ${ratio.toFixed(2)}x${verdict}`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
