/**
 * Coordination primitives against p-limit and p-queue, each case in its own
 * process (greenthread turns on AsyncLocalStorage, which would tax the peers'
 * promises too), several rounds interleaved, medians printed as a table.
 *
 *   node dist/bench/primitives.js [rounds]      the table
 *   node dist/bench/primitives.js --case <name> one JSON line
 *
 * Workloads:
 * - hand-off round trip: 100,000 items go to a consumer and a reply comes
 *   back before the next. Ours: put/get ping-pong between two greenlets over
 *   two Queues. Peers: `await limit(fn)` with p-limit(1), `await queue.add(fn)`
 *   with p-queue (concurrency 1): their one-item-at-a-time hand-off.
 * - bounded map: an async function over 100,000 items, at most 100 at once,
 *   all results collected. Ours: Pool(100).imapUnordered. Peers: p-limit(100)
 *   and p-queue (concurrency 100).
 *
 * Also measured: the same workloads in greenthread/sync (blocking calls in
 * sync greenlets), and p-limit with an AsyncLocalStorage active, the tax
 * that greenthread's getcurrent() puts on every Promise of the process
 * (Node 20's AsyncLocalStorage runs on promise hooks).
 */
import { execFileSync } from 'node:child_process'

import { AsyncLocalStorage } from 'node:async_hooks'

import { joinall, spawn } from '../index'
import { Pool } from '../src/pool'
import { Queue } from '../src/queue'

const ITEMS = 100_000
const CONCURRENCY = 100

// tsc turns import() into require(), which cannot load the ESM-only peers.
const dynamicImport = new Function('s', 'return import(s)') as (specifier: string) => Promise<any>

type Result = { ops: number; ms: number }

async function timed(ops: number, body: () => Promise<void>): Promise<Result> {
  const start = performance.now()
  await body()
  return { ops, ms: performance.now() - start }
}

const double = async (x: number): Promise<number> => x * 2

function* range(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i
}

function check(sum: number): void {
  // Every item was processed exactly once: sum of 2i for i < ITEMS.
  if (sum !== ITEMS * (ITEMS - 1)) throw new Error(`wrong result: ${sum}`)
}

async function pingPongPLimit(): Promise<Result> {
  const pLimit = (await dynamicImport('p-limit')).default
  return timed(ITEMS, async () => {
    const limit = pLimit(1)
    let sum = 0
    for (let i = 0; i < ITEMS; i++) sum += await limit(double, i)
    check(sum)
  })
}

async function mapPLimit(): Promise<Result> {
  const pLimit = (await dynamicImport('p-limit')).default
  return timed(ITEMS, async () => {
    const limit = pLimit(CONCURRENCY)
    const results: number[] = await Promise.all(Array.from(range(ITEMS), (i) => limit(double, i)))
    check(results.reduce((a, b) => a + b, 0))
  })
}

/** Runs `body` with an AsyncLocalStorage store active, as greenthread's greenlets have one. */
function withAsyncLocalStorage(body: () => Promise<Result>): Promise<Result> {
  return new AsyncLocalStorage<object>().run({}, body)
}

const cases: Record<string, () => Promise<Result>> = {
  'pingpong-greenthread': () =>
    timed(ITEMS, async () => {
      const ping = new Queue<number>()
      const pong = new Queue<number>()
      let sum = 0
      const echo = spawn(async () => {
        for (;;) {
          const x = await ping.get()
          if (x < 0) return
          pong.putNowait(x * 2)
        }
      })
      const driver = spawn(async () => {
        for (let i = 0; i < ITEMS; i++) {
          ping.putNowait(i)
          sum += await pong.get()
        }
        ping.putNowait(-1)
      })
      await joinall([echo, driver], { raiseError: true })
      check(sum)
    }),
  'pingpong-greenthread/sync': async () => {
    const sync = await import('../sync')
    return timed(ITEMS, () =>
      sync.run(() => {
        const ping = new sync.Queue<number>()
        const pong = new sync.Queue<number>()
        let sum = 0
        const echo = sync.spawn(() => {
          for (let x = ping.get(); x >= 0; x = ping.get()) pong.putNowait(x * 2)
        })
        for (let i = 0; i < ITEMS; i++) {
          ping.putNowait(i)
          sum += pong.get()
        }
        ping.putNowait(-1)
        echo.join()
        check(sum)
      }),
    )
  },
  'pingpong-p-limit': () => pingPongPLimit(),
  'pingpong-p-limit+ALS': () => withAsyncLocalStorage(pingPongPLimit),
  'pingpong-p-queue': async () => {
    const PQueue = (await dynamicImport('p-queue')).default
    return timed(ITEMS, async () => {
      const queue = new PQueue({ concurrency: 1 })
      let sum = 0
      for (let i = 0; i < ITEMS; i++) sum += await queue.add(() => double(i))
      check(sum)
    })
  },

  'map-greenthread': () =>
    timed(ITEMS, async () => {
      const pool = new Pool(CONCURRENCY)
      let sum = 0
      for await (const r of pool.imapUnordered(double, range(ITEMS))) sum += r
      check(sum)
    }),
  'map-greenthread/sync': async () => {
    const sync = await import('../sync')
    return timed(ITEMS, () =>
      sync.run(() => {
        const pool = new sync.Pool(CONCURRENCY)
        let sum = 0
        for (const r of pool.imapUnordered((x: number) => x * 2, range(ITEMS))) sum += r
        check(sum)
      }),
    )
  },
  'map-p-limit': () => mapPLimit(),
  'map-p-limit+ALS': () => withAsyncLocalStorage(mapPLimit),
  'map-p-queue': async () => {
    const PQueue = (await dynamicImport('p-queue')).default
    return timed(ITEMS, async () => {
      const queue = new PQueue({ concurrency: CONCURRENCY })
      let sum = 0
      for (const i of range(ITEMS)) void queue.add(() => double(i)).then((r: number) => (sum += r))
      await queue.onIdle()
      check(sum)
    })
  },
}

const workloads = [
  { title: `hand-off round trip, ${ITEMS.toLocaleString('en')} items`, prefix: 'pingpong' },
  { title: `bounded map, ${ITEMS.toLocaleString('en')} items, ${CONCURRENCY} at once`, prefix: 'map' },
]
const libraries = ['greenthread', 'greenthread/sync', 'p-limit', 'p-queue', 'p-limit+ALS']

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function runCase(name: string): Result {
  const out = execFileSync(process.execPath, [__filename, '--case', name], { encoding: 'utf8', timeout: 300_000 })
  return JSON.parse(out.trim().split('\n').pop()!)
}

async function main(): Promise<void> {
  if (process.argv[2] === '--case') {
    const run = cases[process.argv[3]]
    if (run === undefined) throw new Error(`unknown case ${process.argv[3]}; one of ${Object.keys(cases).join(', ')}`)
    console.log(JSON.stringify(await run()))
    return
  }
  const rounds = Number(process.argv[2] ?? 3)
  const opsPerSec = new Map<string, number[]>()
  for (let r = 0; r < rounds; r++) {
    for (const name of Object.keys(cases)) {
      const { ops, ms } = runCase(name)
      opsPerSec.set(name, [...(opsPerSec.get(name) ?? []), (ops / ms) * 1000])
    }
  }
  const fmt = (x: number) => `${Math.round(x).toLocaleString('en')}/s`
  console.log(`node ${process.version}, ${rounds} rounds, median ops/s; each case in its own process\n`)
  console.log('| workload | greenthread | greenthread/sync | p-limit | p-queue | p-limit, ALS on | ours / p-limit | ours / p-queue | ours / p-limit, ALS on |')
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const w of workloads) {
    const [ours, sync, limit, queue, limitAls] = libraries.map((lib) => median(opsPerSec.get(`${w.prefix}-${lib}`)!))
    const ratio = (x: number) => `${(ours / x).toFixed(2)}x`
    console.log(
      `| ${w.title} | ${fmt(ours)} | ${fmt(sync)} | ${fmt(limit)} | ${fmt(queue)} | ${fmt(limitAls)} | ${ratio(limit)} | ${ratio(queue)} | ${ratio(limitAls)} |`,
    )
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
