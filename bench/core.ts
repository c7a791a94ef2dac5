/**
 * W1-W3 cases of `npm run bench` (bench/run.ts), one case per process so
 * that peak RSS and process-wide costs (AsyncLocalStorage hooks, sync mode's
 * V8 flags) belong to that case alone.
 *
 *   node dist/bench/core.js <case> [tasks]    prints one JSON line
 *
 * - W1 spawn+join: `tasks` (default 100,000) greenlets that each yield once,
 *   joined. Peers: async functions awaiting setImmediate + Promise.all;
 *   Effect fibers (forkChild of Effect.yieldNow, Fiber.joinAll).
 * - W2 switch ping-pong: 1,000,000 transfers of control between two
 *   greenlets (async `switch()`); 100,000 between two sync greenlets
 *   (greenthread/sync). Peers: two async functions handing a value through
 *   fresh Promises; two generators driven by a trampoline (each `next()` a
 *   transfer), the plain-JS coroutine.
 * - W3 sleep fan-out: 100,000 greenlets each sleeping 10 ms. Peers:
 *   setTimeout Promises + Promise.all; Effect fibers each sleeping 10 ms.
 * - `w1-floor`, `w3-floor`: the least any greenlet can cost here (see
 *   `floorFanOut`), next to the peers.
 *
 * `+als` cases run the bare peer in a process where an AsyncLocalStorage
 * store has been entered, as it is with greenthread (getcurrent() must be
 * right after every await): on Node 20 and 22 every Promise then pays the
 * async_hooks promise hooks.
 */
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks'

import { Greenlet, joinall, sleep, spawn } from '../index'

type Result = { ops: number; ms: number }

const W1_TASKS = 100_000
const W2_TRANSFERS = 1_000_000
const W2_SYNC_TRANSFERS = 100_000
const W3_TASKS = 100_000
const W3_SLEEP_MS = 10

// tsc turns import() into require(), which cannot load ESM-only peers on every Node.
const dynamicImport = new Function('s', 'return import(s)') as (specifier: string) => Promise<any>

const setImmediateYield = () => new Promise<void>((resolve) => setImmediate(resolve))
const timeoutSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

async function timed(ops: number, body: () => unknown): Promise<Result> {
  const start = performance.now()
  await body()
  return { ops, ms: performance.now() - start }
}

/** Effect fibers: `count` forked children each running `child`, all joined. */
async function effectForkJoin(count: number, child: (Effect: any) => unknown): Promise<Result> {
  const { Effect, Fiber } = await dynamicImport('effect')
  const program = Effect.gen(function* () {
    const fibers = new Array(count)
    for (let i = 0; i < count; i++) fibers[i] = yield* Effect.forkChild(child(Effect))
    yield* Fiber.joinAll(fibers)
  })
  return timed(count, () => Effect.runPromise(program))
}

/**
 * The floor of W1/W3 on this Node: the least a greenlet can cost where
 * getcurrent() must name it after any await. Each task gets its own
 * AsyncLocalStorage context (one AsyncContextFrame each on Node 24, a Map)
 * and a Promise per wait; a run queue drained once per macrotask; a counter
 * for the join; timers grouped per millisecond. Nothing else: no kill,
 * Timeout, links, names, parents or state, so not a library, a bound.
 */
function floorFanOut(n: number, sleepMs: number): Promise<Result> {
  type Task = { fn: (() => Promise<void>) | undefined; wake: (() => void) | undefined }
  const current = new AsyncLocalStorage<Task>()
  const scope = new AsyncResource('floor')
  let queue: Task[] = []
  let scheduled = false
  const timers = new Map<number, Task[]>()
  const schedule = () => {
    if (!scheduled) {
      scheduled = true
      setImmediate(turn)
    }
  }
  const enterAndRun = (task: Task) => {
    current.enterWith(task)
    const fn = task.fn!
    task.fn = undefined
    void fn().then(finished)
  }
  const turn = () => {
    scheduled = false
    const batch = queue
    queue = []
    for (const task of batch) {
      if (task.fn !== undefined) scope.runInAsyncScope(enterAndRun, undefined, task)
      else task.wake!()
    }
  }
  const sleep = () =>
    new Promise<void>((resolve) => {
      const task = current.getStore()!
      task.wake = resolve
      if (sleepMs === 0) {
        queue.push(task)
        return schedule()
      }
      const at = Math.ceil(performance.now()) + sleepMs
      let due = timers.get(at)
      if (due === undefined) {
        timers.set(at, (due = []))
        setTimeout(() => {
          timers.delete(at)
          queue.push(...due!)
          schedule()
        }, at - performance.now())
      }
      due.push(task)
    })
  let left = n
  let allDone!: () => void
  const finished = () => {
    if (--left === 0) allDone()
  }
  return timed(n, async () => {
    const joined = new Promise<void>((resolve) => (allDone = resolve))
    for (let i = 0; i < n; i++) queue.push({ fn: sleep, wake: undefined })
    schedule()
    await joined
  })
}

const cases: Record<string, (tasks: number) => Promise<Result>> = {
  'w1-greenthread': (n) =>
    timed(n, async () => {
      const gs = new Array<Greenlet>(n)
      for (let i = 0; i < n; i++) gs[i] = spawn(() => sleep(0))
      await joinall(gs)
    }),
  'w1-bare-promises': (n) =>
    timed(n, async () => {
      const ps = new Array<Promise<void>>(n)
      for (let i = 0; i < n; i++) ps[i] = (async () => setImmediateYield())()
      await Promise.all(ps)
    }),
  'w1-effect': (n) => effectForkJoin(n, (Effect) => Effect.yieldNow),
  'w1-floor': (n) => floorFanOut(n, 0),

  'w2-greenthread-switch': () =>
    timed(W2_TRANSFERS, async () => {
      const rounds = W2_TRANSFERS / 2
      const ping: Greenlet = new Greenlet(async () => {
        for (let i = 0; i < rounds; i++) await pong.switch(i)
      })
      const pong: Greenlet = new Greenlet(async () => {
        for (;;) await ping.switch()
      })
      await ping.switch()
    }),
  'w2-greenthread-sync-switch': async () => {
    const sync = await import('../sync')
    return sync.run(() => {
      const rounds = W2_SYNC_TRANSFERS / 2
      let a: InstanceType<typeof sync.Greenlet>, b: InstanceType<typeof sync.Greenlet>
      a = new sync.Greenlet(() => {
        let v = 0
        for (let i = 0; i < rounds; i++) v = b.switch(v + 1) as number
        return v
      })
      b = new sync.Greenlet((v: number) => {
        for (;;) v = a.switch(v + 1) as number
      })
      const start = performance.now()
      const last = a.switch()
      const ms = performance.now() - start
      if (last !== W2_SYNC_TRANSFERS) throw new Error(`ping-pong ended at ${last}`)
      b.kill(undefined, { block: false })
      return { ops: W2_SYNC_TRANSFERS, ms }
    })
  },
  'w2-bare-promise-pingpong': () =>
    timed(W2_TRANSFERS, async () => {
      const rounds = W2_TRANSFERS / 2
      let wakePing: (v: unknown) => void = () => undefined
      let wakePong: (v: unknown) => void = () => undefined
      const pong = (async () => {
        for (let i = 0; i < rounds; i++) {
          await new Promise((resolve) => (wakePong = resolve))
          wakePing(i)
        }
      })()
      for (let i = 0; i < rounds; i++) {
        const back = new Promise((resolve) => (wakePing = resolve))
        wakePong(i)
        await back
      }
      await pong
    }),
  'w2-generators': () =>
    timed(W2_TRANSFERS, () => {
      // Each generator yields [whom to switch to, value]; the trampoline
      // resumes that one with the value: one `next()` per transfer.
      type Coroutine = Generator<[number, number], void, number>
      const rounds = W2_TRANSFERS / 2
      function* ping(): Coroutine {
        let v = 0
        for (let i = 0; i < rounds; i++) v = yield [1, v + 1]
      }
      function* pong(): Coroutine {
        let v = 0
        for (;;) v = yield [0, v + 1]
      }
      const coroutines = [ping(), pong()]
      let current = 0
      let value = 0
      let transfers = 0
      for (;;) {
        const step = coroutines[current].next(value)
        if (step.done) break
        ;[current, value] = step.value
        transfers++
      }
      if (transfers !== W2_TRANSFERS) throw new Error(`${transfers} transfers`)
    }),

  'w3-greenthread-sleep': () =>
    timed(W3_TASKS, async () => {
      const gs = new Array<Greenlet>(W3_TASKS)
      for (let i = 0; i < W3_TASKS; i++) gs[i] = spawn(() => sleep(W3_SLEEP_MS))
      await joinall(gs)
    }),
  'w3-settimeout-promises': () =>
    timed(W3_TASKS, async () => {
      const ps = new Array<Promise<void>>(W3_TASKS)
      for (let i = 0; i < W3_TASKS; i++) ps[i] = (async () => timeoutSleep(W3_SLEEP_MS))()
      await Promise.all(ps)
    }),
  'w3-effect-sleep': () => effectForkJoin(W3_TASKS, (Effect) => Effect.sleep(W3_SLEEP_MS)),
  'w3-floor': () => floorFanOut(W3_TASKS, W3_SLEEP_MS),
}

for (const name of ['w1-bare-promises', 'w2-bare-promise-pingpong', 'w3-settimeout-promises']) {
  const bare = cases[name]
  cases[`${name}+als`] = (n) => {
    new AsyncLocalStorage<number>().enterWith(0)
    return bare(n)
  }
}

export const coreCases = Object.keys(cases)

if (require.main === module) {
  const name = process.argv[2]
  const run = cases[name]
  if (!run) {
    console.error(`unknown case ${name}; one of: ${coreCases.join(', ')}`)
    process.exit(2)
  }
  run(Number(process.argv[3] ?? W1_TASKS)).then(
    (r) => {
      const maxRssKiB = process.resourceUsage().maxRSS
      console.log(JSON.stringify({ case: name, ...r, opsPerSec: (r.ops / r.ms) * 1000, maxRssKiB }))
      // Sync mode and the peers may leave handles behind; the result is out.
      process.exit(0)
    },
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
}
