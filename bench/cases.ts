/**
 * Every case `npm run bench` knows: {workload, name, ours or a peer,
 * command}. Each command runs one case in a fresh process and prints one
 * JSON line with at least `ops` and `ms` (see core.ts, primitives.ts,
 * executors.ts, echo.ts, python_peers.py). The workloads carry the targets
 * from the issues.
 */
import { availableParallelism } from 'node:os'
import * as path from 'node:path'

import { root } from './_setup'

/** How a case's JSON line becomes one number, higher is better. */
export type Metric =
  /** ops per second */
  | 'rate'
  /** the ideal wall time over the measured one (W5b: 1 = no overhead) */
  | 'efficiency'

/** How the terminal and BENCHMARKS.md show a case's value. */
export type Display = 'rate' | 'ms' | 'nsPerOp' | 'xIdeal'

/**
 * What runs a case: `node` cases run on every Node under test; `python` and
 * `native` cases do not depend on Node and run once per round (their
 * numbers are paired with every Node's).
 */
export type Runtime = 'node' | 'python' | 'native'

export interface Case {
  /** Unique and stable: results and ratios refer to it. */
  id: string
  workload: string
  label: string
  ours: boolean
  runtime: Runtime
  /** Part of `--quick`. */
  quick: boolean
  /** [script or program, args] given the Node and Python to use. */
  command: (ctx: CommandContext) => { command: string; args: string[] }
  timeoutMs?: number
}

export interface CommandContext {
  node: string
  python?: string
  quick: boolean
}

/**
 * A target from the issues, as a threshold on a case's score:
 * - `ratio`: score(ours) / score(ref) >= min (paired per round)
 * - `absolute`: score(ours) >= min
 * `text` and `measure` show it the way the issue wrote it.
 */
export interface Target {
  id: string
  workload: string
  ours: string
  ref?: string
  min: number
  text: string
  issue: string
  /** How the measured value is shown next to the target. */
  measure: 'throughput' | 'wall' | 'nsPerOp' | 'xIdeal' | 'rss'
}

export interface Workload {
  id: string
  title: string
  /** Short description of the work and of each peer, for BENCHMARKS.md. */
  description: string
  metric: Metric
  display: Display
  /** The peer that ratios are paired against. */
  reference: string
  quick: boolean
}

const dist = (file: string) => path.join(root, 'dist', 'bench', file)
const pythonScript = path.join(root, 'bench', 'python_peers.py')

function nodeCase(script: string, ...args: string[]): Case['command'] {
  return (ctx) => ({ command: ctx.node, args: [dist(script), ...args] })
}

function pythonCase(...args: string[]): Case['command'] {
  return (ctx) => ({ command: ctx.python ?? 'python3', args: [pythonScript, ...args] })
}

/** Echo cases run bench/echo.js (server + load generator) on the main Node. */
function echoCase(server: string, clients: number, workers?: number): Case['command'] {
  return (ctx) => {
    const seconds = ctx.quick ? ['--seconds', '1', '--warmup', '0.5'] : ['--seconds', '2', '--warmup', '1']
    const w = workers === undefined ? [] : ['--workers', String(workers)]
    return { command: ctx.node, args: [dist('echo.js'), server, '--clients', String(clients), ...seconds, ...w] }
  }
}

export const workloads: Workload[] = []
export const cases: Case[] = []
export const targets: Target[] = []

function workload(w: Workload, list: Array<Omit<Case, 'workload'>>): void {
  workloads.push(w)
  for (const c of list) cases.push({ ...c, workload: w.id })
}

const k = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`)

// W1 at 100k (the target's size), then 10k and 1M for scaling.
for (const n of [100_000, 10_000, 1_000_000]) {
  const id = `W1-${k(n)}`
  const main = n === 100_000
  workload(
    {
      id,
      title: `W1 spawn+join, ${n.toLocaleString('en')} greenlets`,
      description: `${n.toLocaleString('en')} tasks that each yield once, all joined. Peers: async functions awaiting \`setImmediate\` + \`Promise.all\` (also with an AsyncLocalStorage store entered, the tax greenthread's getcurrent() puts on every Promise on Node 20/22); Effect fibers (\`Effect.forkChild(Effect.yieldNow)\`, \`Fiber.joinAll\`); gevent (\`spawn(gevent.sleep, 0)\`, \`joinall\`); the floor: a bare scheduler giving each task the AsyncLocalStorage context getcurrent() needs and nothing else (bench/core.ts \`floorFanOut\`), the least any greenlet can cost here.`,
      metric: 'rate',
      display: 'rate',
      reference: `w1-bare@${k(n)}`,
      quick: main,
    },
    [
      { id: `w1-greenthread@${k(n)}`, label: 'greenthread spawn + joinall', ours: true, runtime: 'node', quick: main, command: nodeCase('core.js', 'w1-greenthread', String(n)) },
      { id: `w1-bare@${k(n)}`, label: 'async/await + Promise.all', ours: false, runtime: 'node', quick: main, command: nodeCase('core.js', 'w1-bare-promises', String(n)) },
      ...(n === 1_000_000
        ? []
        : [{ id: `w1-bare-als@${k(n)}`, label: 'async/await + Promise.all, ALS on', ours: false, runtime: 'node' as const, quick: main, command: nodeCase('core.js', 'w1-bare-promises+als', String(n)) }]),
      { id: `w1-effect@${k(n)}`, label: 'Effect fibers (fork/join)', ours: false, runtime: 'node', quick: main, command: nodeCase('core.js', 'w1-effect', String(n)) },
      { id: `w1-floor@${k(n)}`, label: 'floor: bare scheduler, a context per task', ours: false, runtime: 'node', quick: main, command: nodeCase('core.js', 'w1-floor', String(n)) },
      // 100k gevent greenlets take ~3 s and 800 MB here; 1M would dominate the run.
      ...(n === 1_000_000
        ? []
        : [{ id: `w1-gevent@${k(n)}`, label: 'gevent (CPython)', ours: false, runtime: 'python' as const, quick: main, command: pythonCase('w1-gevent', String(n)) }]),
    ],
  )
}
targets.push(
  { id: 'w1-throughput', workload: 'W1-100k', ours: 'w1-greenthread@100k', ref: 'w1-bare@100k', min: 1, text: '>= 1.0x throughput of async/await', issue: '#13', measure: 'throughput' },
  { id: 'w1-rss', workload: 'W1-100k', ours: 'w1-greenthread@100k', ref: 'w1-bare@100k', min: 1 / 1.3, text: '<= 1.3x peak RSS of async/await', issue: '#13', measure: 'rss' },
)

workload(
  {
    id: 'W2',
    title: 'W2 switch ping-pong',
    description:
      'Control handed back and forth between two coroutines: 1,000,000 transfers with async `switch()`, 100,000 between two sync greenlets (greenthread/sync, OS threads handing a baton). Peers: two async functions handing a value through fresh Promises (also with ALS on); two generators driven by a trampoline (one `next()` per transfer, plain JS); the seeds\' Python `greenlet` switch.',
    metric: 'rate',
    display: 'nsPerOp',
    reference: 'w2-bare',
    quick: true,
  },
  [
    { id: 'w2-greenthread', label: 'greenthread switch() (async)', ours: true, runtime: 'node', quick: true, command: nodeCase('core.js', 'w2-greenthread-switch') },
    { id: 'w2-greenthread-sync', label: 'greenthread/sync switch() (sync)', ours: true, runtime: 'node', quick: true, command: nodeCase('core.js', 'w2-greenthread-sync-switch') },
    { id: 'w2-bare', label: 'async/await Promise ping-pong', ours: false, runtime: 'node', quick: true, command: nodeCase('core.js', 'w2-bare-promise-pingpong') },
    { id: 'w2-bare-als', label: 'async/await Promise ping-pong, ALS on', ours: false, runtime: 'node', quick: true, command: nodeCase('core.js', 'w2-bare-promise-pingpong+als') },
    { id: 'w2-generators', label: 'generators + trampoline', ours: false, runtime: 'node', quick: true, command: nodeCase('core.js', 'w2-generators') },
    { id: 'w2-greenlet', label: 'Python greenlet switch', ours: false, runtime: 'python', quick: true, command: pythonCase('w2-greenlet') },
  ],
)
targets.push(
  { id: 'w2-wall', workload: 'W2', ours: 'w2-greenthread', ref: 'w2-bare', min: 1, text: '<= 1.0x wall of async/await', issue: '#13', measure: 'wall' },
  // 2 us per switch = 500,000 switches/s.
  { id: 'w2-sync-switch', workload: 'W2', ours: 'w2-greenthread-sync', min: 500_000, text: '<= 2 us per sync switch', issue: '#3', measure: 'nsPerOp' },
)

workload(
  {
    id: 'W3',
    title: 'W3 sleep fan-out, 100,000 x sleep(10 ms)',
    description: '100,000 tasks each sleeping 10 ms, all joined (wall time). Peers: `new Promise(r => setTimeout(r, 10))` + `Promise.all` (also with ALS on); Effect fibers each `Effect.sleep(10)`; gevent `spawn(gevent.sleep, 0.01)`; the floor (a bare scheduler with a context per task, as in W1).',
    metric: 'rate',
    display: 'ms',
    reference: 'w3-settimeout',
    quick: true,
  },
  [
    { id: 'w3-greenthread', label: 'greenthread spawn(sleep(10))', ours: true, runtime: 'node', quick: true, command: nodeCase('core.js', 'w3-greenthread-sleep') },
    { id: 'w3-settimeout', label: 'setTimeout Promises + Promise.all', ours: false, runtime: 'node', quick: true, command: nodeCase('core.js', 'w3-settimeout-promises') },
    { id: 'w3-settimeout-als', label: 'setTimeout Promises, ALS on', ours: false, runtime: 'node', quick: true, command: nodeCase('core.js', 'w3-settimeout-promises+als') },
    { id: 'w3-effect', label: 'Effect fibers (Effect.sleep)', ours: false, runtime: 'node', quick: true, command: nodeCase('core.js', 'w3-effect-sleep') },
    { id: 'w3-floor', label: 'floor: bare scheduler, a context per task', ours: false, runtime: 'node', quick: true, command: nodeCase('core.js', 'w3-floor') },
    { id: 'w3-gevent', label: 'gevent (CPython)', ours: false, runtime: 'python', quick: true, command: pythonCase('w3-gevent') },
  ],
)
targets.push(
  { id: 'w3-wall', workload: 'W3', ours: 'w3-greenthread', ref: 'w3-settimeout', min: 1, text: '<= 1.0x wall of setTimeout Promises', issue: '#13', measure: 'wall' },
  { id: 'w3-rss', workload: 'W3', ours: 'w3-greenthread', ref: 'w3-settimeout', min: 1 / 1.3, text: '<= 1.3x peak RSS of setTimeout Promises', issue: '#13', measure: 'rss' },
)

for (const clients of [500, 50, 5000]) {
  const main = clients === 500
  const id = `W4-${clients}`
  workload(
    {
      id,
      title: `W4 echo server, ${clients.toLocaleString('en')} clients`,
      description: `${clients.toLocaleString('en')} loopback clients (bench/c/loadgen.c, one epoll thread, its own CPU when taskset is there), one 32-byte message in flight each, echoed upper-cased (the seeds' talk(conn)); msgs/s. Servers: greenthread StreamServer with the JS handler, with the native 'upper' handler, greenthread/sync (a sync greenlet, an OS thread, per connection); Node \`net\`; the seeds' gevent server; a C epoll server (cc -O2), the limit.`,
      metric: 'rate',
      display: 'rate',
      reference: `w4-node@${clients}`,
      quick: main,
    },
    [
      { id: `w4-js@${clients}`, label: 'greenthread, JS handler', ours: true, runtime: 'node', quick: main, command: echoCase('js', clients) },
      { id: `w4-native@${clients}`, label: `greenthread, native 'upper'${main ? ` (default: ${availableParallelism()} workers)` : ''}`, ours: true, runtime: 'node', quick: main, command: echoCase('native', clients) },
      // The default is one worker per core: with 2 CPUs, the 2-worker case is `native`.
      ...(main
        ? [1, 2].filter((workers) => workers !== availableParallelism()).map((workers) => ({
            id: `w4-native-${workers}w@${clients}`,
            label: `greenthread, native 'upper', ${workers} worker${workers > 1 ? 's' : ''}`,
            ours: true,
            runtime: 'node' as const,
            quick: false,
            command: echoCase('native', clients, workers),
          }))
        : []),
      { id: `w4-sync@${clients}`, label: 'greenthread/sync, sync handler', ours: true, runtime: 'node', quick: main, command: echoCase('sync', clients) },
      { id: `w4-node@${clients}`, label: 'Node net', ours: false, runtime: 'node', quick: main, command: echoCase('node', clients) },
      { id: `w4-gevent@${clients}`, label: 'gevent (the seed server, CPython)', ours: false, runtime: 'python', quick: main, command: echoCase('gevent', clients) },
      { id: `w4-c@${clients}`, label: 'C epoll (the limit)', ours: false, runtime: 'native', quick: main, command: echoCase('c', clients) },
    ],
  )
}
targets.push(
  { id: 'w4-js', workload: 'W4-500', ours: 'w4-js@500', ref: 'w4-node@500', min: 1.3, text: '>= 1.3x Node net (JS handler, 500 clients)', issue: '#4', measure: 'throughput' },
  { id: 'w4-native', workload: 'W4-500', ours: 'w4-native@500', ref: 'w4-c@500', min: 0.95, text: ">= 0.95x C epoll (native 'upper', 500 clients)", issue: '#4', measure: 'throughput' },
)

const pools: Array<{ pool: string; label: string; ours: boolean; python?: boolean }> = [
  { pool: 'thread', label: 'greenthread ThreadPoolExecutor', ours: true },
  { pool: 'process', label: 'greenthread ProcessPoolExecutor', ours: true },
  { pool: 'piscina', label: 'piscina', ours: false },
  { pool: 'tinypool', label: 'tinypool', ours: false },
  { pool: 'workerpool', label: 'workerpool', ours: false },
  { pool: 'thread', label: 'concurrent.futures threads (CPython)', ours: false, python: true },
  { pool: 'process', label: 'concurrent.futures processes (CPython)', ours: false, python: true },
]
for (const workers of [2, 1]) {
  const main = workers === 2
  const suffix = main ? '' : '-1w'
  const w = `${workers} worker${workers > 1 ? 's' : ''}`
  // One worker: ours and the reference peer only (how cost grows with cores).
  const selected = main ? pools : pools.filter((p) => p.ours || p.pool === 'piscina')
  for (const [wl, title, description] of [
    ['W5a', `W5a tiny executor tasks, 20,000 x (x*x), ${w}`, `20,000 tasks of \`x * x\` submitted at once, completion counted in done callbacks (\`.then\` for the peers); tasks/s. Every pool has ${w} and is warmed up first. The seeds' concurrent.futures program (\`submit(...).add_done_callback(...)\`) runs the same on CPython.`],
    ['W5b', `W5b CPU tasks, 200 x fib(27), ${w}`, `200 x fib(27) (CPython: fib(22), about as long), ${w}; shown as wall time over the ideal (200 x one task's time on the main thread, measured right before the run, / workers): 1.00x is no overhead.`],
  ] as const) {
    workload(
      {
        id: `${wl}${suffix}`,
        title,
        description,
        metric: wl === 'W5a' ? 'rate' : 'efficiency',
        display: wl === 'W5a' ? 'rate' : 'xIdeal',
        reference: `${wl.toLowerCase()}-piscina${suffix}`,
        quick: main,
      },
      selected.map((p) => ({
        id: `${wl.toLowerCase()}-${p.python ? `cf-${p.pool}` : p.pool}${suffix}`,
        label: p.label,
        ours: p.ours,
        runtime: p.python ? ('python' as const) : ('node' as const),
        quick: main,
        command: p.python ? pythonCase(`${wl.toLowerCase()}-cf-${p.pool}`, String(workers)) : nodeCase('executors.js', p.pool, wl.toLowerCase(), String(workers)),
      })),
    )
  }
}
targets.push(
  { id: 'w5a-thread', workload: 'W5a', ours: 'w5a-thread', ref: 'w5a-piscina', min: 5, text: '>= 5x piscina tasks/s (ThreadPoolExecutor)', issue: '#5', measure: 'throughput' },
  { id: 'w5a-process', workload: 'W5a', ours: 'w5a-process', ref: 'w5a-piscina', min: 5, text: '>= 5x piscina tasks/s (ProcessPoolExecutor)', issue: '#5', measure: 'throughput' },
  { id: 'w5b-thread', workload: 'W5b', ours: 'w5b-thread', min: 1 / 1.05, text: '<= 1.05x ideal wall (ThreadPoolExecutor)', issue: '#5', measure: 'xIdeal' },
  { id: 'w5b-process', workload: 'W5b', ours: 'w5b-process', min: 1 / 1.05, text: '<= 1.05x ideal wall (ProcessPoolExecutor)', issue: '#5', measure: 'xIdeal' },
)

for (const [id, title, description, prefix] of [
  ['handoff', 'Queue hand-off, 100,000 round trips', "An item goes to a consumer and a reply comes back before the next. Ours: `putNowait` + `await get()` ping-pong between two greenlets over two Queues (and the same with blocking calls in sync greenlets). Peers: `await limit(fn)` with p-limit(1) (also with ALS on), `await queue.add(fn)` with p-queue (concurrency 1), two Effect fibers over two `Queue.unbounded`, gevent's `Queue` between two greenlets.", 'pingpong'],
  ['map', 'Bounded map, 100,000 items, 100 at once', 'An async function over 100,000 items, at most 100 at once, all results collected. Ours: `Pool(100).imapUnordered` (and sync mode). Peers: p-limit(100) (also with ALS on), p-queue (concurrency 100), `Effect.forEach` (concurrency 100), gevent `Pool(100).imap_unordered`.', 'map'],
] as const) {
  workload({ id, title, description, metric: 'rate', display: 'rate', reference: `${id}-p-limit`, quick: true }, [
    { id: `${id}-greenthread`, label: id === 'map' ? 'greenthread Pool.imapUnordered' : 'greenthread Queue', ours: true, runtime: 'node', quick: true, command: nodeCase('primitives.js', `${prefix}-greenthread`) },
    { id: `${id}-greenthread-sync`, label: id === 'map' ? 'greenthread/sync Pool.imapUnordered' : 'greenthread/sync Queue', ours: true, runtime: 'node', quick: true, command: nodeCase('primitives.js', `${prefix}-greenthread/sync`) },
    { id: `${id}-p-limit`, label: 'p-limit', ours: false, runtime: 'node', quick: true, command: nodeCase('primitives.js', `${prefix}-p-limit`) },
    { id: `${id}-p-limit-als`, label: 'p-limit, ALS on', ours: false, runtime: 'node', quick: true, command: nodeCase('primitives.js', `${prefix}-p-limit+ALS`) },
    { id: `${id}-p-queue`, label: 'p-queue', ours: false, runtime: 'node', quick: true, command: nodeCase('primitives.js', `${prefix}-p-queue`) },
    { id: `${id}-effect`, label: id === 'map' ? 'Effect.forEach' : 'Effect Queue', ours: false, runtime: 'node', quick: true, command: nodeCase('primitives.js', `${prefix}-effect`) },
    { id: `${id}-gevent`, label: id === 'map' ? 'gevent Pool.imap_unordered' : 'gevent Queue', ours: false, runtime: 'python', quick: true, command: pythonCase(`${prefix}-gevent`) },
  ])
  targets.push({ id: `${id}-p-limit`, workload: id, ours: `${id}-greenthread`, ref: `${id}-p-limit`, min: 1, text: '>= 1x p-limit throughput', issue: '#6', measure: 'throughput' })
}

/** The order of the report: the targets' sizes first, the scaling ones after. */
export const workloadOrder = ['W1-100k', 'W2', 'W3', 'W4-500', 'W5a', 'W5b', 'handoff', 'map', 'W1-10k', 'W1-1M', 'W4-50', 'W4-5000', 'W5a-1w', 'W5b-1w']
workloads.sort((a, b) => workloadOrder.indexOf(a.id) - workloadOrder.indexOf(b.id))
