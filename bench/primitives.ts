/**
 * Coordination primitives (Queue hand-off, bounded map) against p-limit,
 * p-queue and Effect, cases of `npm run bench` (bench/run.ts), each in its
 * own process (greenthread turns on AsyncLocalStorage, which would tax the
 * peers' promises too).
 *
 *   node dist/bench/primitives.js <case>      prints one JSON line
 *
 * Workloads:
 * - hand-off round trip: 100,000 items go to a consumer and a reply comes
 *   back before the next. Ours: put/get ping-pong between two greenlets over
 *   two Queues. Peers: `await limit(fn)` with p-limit(1), `await queue.add(fn)`
 *   with p-queue (concurrency 1): their one-item-at-a-time hand-off; two
 *   Effect fibers doing the same put/take ping-pong over two Effect Queues.
 * - bounded map: an async function over 100,000 items, at most 100 at once,
 *   all results collected. Ours: Pool(100).imapUnordered. Peers: p-limit(100),
 *   p-queue (concurrency 100) and Effect.forEach (concurrency 100).
 *
 * Also measured: the same workloads in greenthread/sync (blocking calls in
 * sync greenlets), and p-limit with an AsyncLocalStorage active, the tax
 * that greenthread's getcurrent() puts on every Promise of the process
 * (Node 20's AsyncLocalStorage runs on promise hooks).
 */
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

  'pingpong-effect': async () => {
    const { Effect, Fiber, Queue } = await dynamicImport('effect')
    const program = Effect.gen(function* () {
      const ping = yield* Queue.unbounded()
      const pong = yield* Queue.unbounded()
      const echo = yield* Effect.forkChild(
        Effect.gen(function* () {
          for (;;) {
            const x: number = yield* Queue.take(ping)
            if (x < 0) return
            yield* Queue.offer(pong, x * 2)
          }
        }),
      )
      let sum = 0
      for (let i = 0; i < ITEMS; i++) {
        yield* Queue.offer(ping, i)
        sum += yield* Queue.take(pong)
      }
      yield* Queue.offer(ping, -1)
      yield* Fiber.join(echo)
      check(sum)
    })
    return timed(ITEMS, () => Effect.runPromise(program))
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
  'map-effect': async () => {
    const { Effect } = await dynamicImport('effect')
    const program = Effect.forEach(Array.from(range(ITEMS)), (i: number) => Effect.promise(() => double(i)), {
      concurrency: CONCURRENCY,
    })
    return timed(ITEMS, async () => {
      const results: number[] = await Effect.runPromise(program)
      check(results.reduce((a, b) => a + b, 0))
    })
  },
}

async function main(): Promise<void> {
  // `--case <name>` (the old form) or just `<name>`.
  const name = process.argv[2] === '--case' ? process.argv[3] : process.argv[2]
  const run = cases[name]
  if (run === undefined) throw new Error(`unknown case ${name}; one of ${Object.keys(cases).join(', ')}`)
  const r = await run()
  console.log(JSON.stringify({ case: name, ...r, maxRssKiB: process.resourceUsage().maxRSS }))
  process.exit(0)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
