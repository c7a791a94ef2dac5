import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { MessageChannel, type MessagePort } from 'node:worker_threads'

import test from 'ava'

import {
  BrokenExecutor,
  BrokenProcessPool,
  BrokenThreadPool,
  CancelledError,
  type Future,
  GreenletExit,
  ProcessPoolExecutor,
  TaskQueueFull,
  ThreadPoolExecutor,
  move,
  spawn,
  wait,
} from '../index'

// Pools start real threads and processes on a 2-core machine: one test at a time.
const serial = test.serial
const run = promisify(execFile)
const root = path.join(__dirname, '..', '..')

const moduleDir = fs.mkdtempSync(path.join(os.tmpdir(), 'greenthread-executor-'))
const modulePath = path.join(moduleDir, 'tasks.mjs')
fs.writeFileSync(
  modulePath,
  `export function square(x) { return x * x }
export async function later(ms, v) { await new Promise((r) => setTimeout(r, ms)); return v }
export function init(v) { globalThis.initialized = v }
export const notAFunction = 1
`,
)

/** A module whose import takes a while: tasks from it wait for it in the worker. */
const slowModulePath = path.join(moduleDir, 'slow.mjs')
fs.writeFileSync(
  slowModulePath,
  `await new Promise((r) => setTimeout(r, 300))
export function ready() { return 'ready' }
export function untilAborted(signal) {
  return new Promise((resolve) => {
    const aborted = () => resolve('aborted: ' + signal.reason.message)
    if (signal.aborted) aborted()
    else signal.addEventListener('abort', aborted)
  })
}
`,
)

test.after.always(() => fs.rmSync(moduleDir, { recursive: true, force: true }))

/** Sleeps in the worker, then returns the worker's identity. */
/**
 * Waits until a worker has taken `f` in its batch: a process pool's task is
 * running from then on; a thread worker's is held (not running, cancellable)
 * until it starts, which shows nowhere: a moment is given instead.
 */
async function untilTaken(kind: string, f: { running(): boolean }): Promise<void> {
  if (kind === 'ThreadPoolExecutor') return new Promise((r) => setTimeout(r, 150))
  while (!f.running()) await new Promise((r) => setTimeout(r, 5))
}

async function nap(ms: number): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, ms))
  return `${process.pid}:${require('node:worker_threads').threadId}`
}

function identity(): string {
  return `${process.pid}:${require('node:worker_threads').threadId}`
}

const kinds = [
  { name: 'ThreadPoolExecutor', make: (o?: object) => new ThreadPoolExecutor(o), Broken: BrokenThreadPool },
  { name: 'ProcessPoolExecutor', make: (o?: object) => new ProcessPoolExecutor(o), Broken: BrokenProcessPool },
] as const

for (const kind of kinds) {
  serial(`${kind.name}: submit runs a self-contained function in a worker and resolves with its result`, async (t) => {
    const pool = kind.make({ maxWorkers: 2 })
    const f = pool.submit((a: number, b: number) => a + b, 2, 3)
    t.is(await f.result(), 5)
    t.true(f.done())
    t.false(f.cancelled())
    const where = await pool.submit(identity).result()
    if (kind.name === 'ThreadPoolExecutor') t.not(where, `${process.pid}:0`)
    else t.not(where.split(':')[0], String(process.pid))
    await pool.shutdown()
  })

  serial(`${kind.name}: arguments and results are structured clones`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const input = {
      map: new Map([[1, { deep: [1, 2] }]]),
      date: new Date(12345),
      bytes: new Uint8Array([1, 2, 3]),
      big: 10n ** 20n,
    }
    const echoed = await pool.submit((x: unknown) => x, input).result()
    t.deepEqual(echoed, input)
    const prims = await pool.submit((...xs: unknown[]) => xs, -0, NaN, 'a\ud800b', null, undefined, true, 'é').result()
    t.deepEqual(prims, [-0, NaN, 'a\ud800b', null, undefined, true, 'é'])
    t.true(Object.is((prims as unknown[])[0], -0))
    // An uncloneable argument is a TypeError naming it, with the DataCloneError as cause.
    const refused = t.throws(() => pool.submit((f: unknown) => f, () => 1), { instanceOf: TypeError, message: /^args\[0\] cannot be sent to a worker: / })
    t.is((refused?.cause as Error)?.name, 'DataCloneError')
    const uncloneable = pool.submit(() => () => 1)
    t.is(((await uncloneable.exception()) as Error).name, 'DataCloneError')
    await pool.shutdown()
  })

  serial(`${kind.name}: a task's exception rejects result() with its class, message and properties`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const f = pool.submit((x: number) => {
      throw Object.assign(new RangeError(`bad ${x}`), { code: 'E_BAD' })
    }, 7)
    const err = await t.throwsAsync(f.result(), { instanceOf: RangeError, message: 'bad 7' })
    t.is((err as any).code, 'E_BAD')
    t.is(await f.exception(), err)
    t.is(await pool.submit(() => 1).exception(), null)
    const thrown = pool.submit(() => {
      throw 42
    })
    t.is(await thrown.exception(), 42)
    await pool.shutdown()
  })

  serial(`${kind.name}: an exception's cause and an AggregateError's errors come back too, each rebuilt as it was`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const caused = await pool
      .submit(() => {
        const looped = new Error('looped')
        ;(looped as any).cause = looped
        throw new TypeError('outer', { cause: Object.assign(new RangeError('inner', { cause: looped }), { code: 'E_INNER' }) })
      })
      .exception()
    t.true(caused instanceof TypeError)
    const inner = (caused as Error).cause as Error & { code: string }
    t.true(inner instanceof RangeError)
    t.deepEqual([inner.message, inner.code, (inner.cause as Error).message], ['inner', 'E_INNER', 'looped'])
    t.false(Object.keys(caused as Error).includes('cause'), 'cause stays a non-enumerable own property')
    const aggregate = (await pool.submit(() => Promise.any([Promise.reject(new Error('a')), Promise.reject('b')])).exception()) as AggregateError
    t.true(aggregate instanceof AggregateError)
    t.is((aggregate.errors[0] as Error).message, 'a')
    t.is(aggregate.errors[1], 'b')
    await pool.shutdown()
  })

  serial(`${kind.name}: a function that uses an outer variable fails with a ReferenceError explaining closures`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const outer = 3
    const f = pool.submit((x: number) => x + outer, 1)
    const err = await t.throwsAsync(f.result(), { instanceOf: ReferenceError })
    t.regex(err!.message, /outer is not defined.*without its closure.*arguments/)
    await pool.shutdown()
  })

  serial(`${kind.name}: submit runs exports of options.module by name, from a path or a URL`, async (t) => {
    for (const module of [modulePath, pathToFileURL(modulePath)]) {
      const pool = kind.make({ maxWorkers: 1, module })
      t.is(await pool.submit<number>('square', 9).result(), 81)
      t.is(await pool.submit('later', 5, 'v').result(), 'v')
      await t.throwsAsync(pool.submit('missing').result(), { instanceOf: TypeError, message: /no function export named "missing"/ })
      await t.throwsAsync(pool.submit('notAFunction').result(), { instanceOf: TypeError })
      await pool.shutdown()
    }
  })

  serial(`${kind.name}: maxTasksPerChild replaces workers after that many tasks`, async (t) => {
    const pool = kind.make({ maxWorkers: 1, maxTasksPerChild: 2 })
    const ids: string[] = []
    for (let i = 0; i < 6; i++) ids.push(await pool.submit(identity).result())
    t.is(new Set(ids).size, 3)
    t.is(ids[0], ids[1])
    t.not(ids[1], ids[2])
    // All at once too: every task runs, on workers that each ran at most 2.
    const many = await Promise.all(Array.from({ length: 10 }, () => pool.submit(identity).result()))
    const counts = new Map<string, number>()
    for (const id of many) counts.set(id, (counts.get(id) ?? 0) + 1)
    t.true([...counts.values()].every((n) => n <= 2))
    await pool.shutdown()
  })

  serial(`${kind.name}: with maxTasksPerChild, tasks still start in submission order (a retiring worker's taken tasks go first)`, async (t) => {
    for (const maxWorkers of [1, 2]) {
      const pool = kind.make({ maxWorkers, maxTasksPerChild: 1 })
      const started: number[] = []
      const fs = Array.from({ length: 12 }, (_, i) => pool.submit(async (n: number) => (await new Promise((r) => setTimeout(r, 5)), n), i))
      for (const [i, f] of fs.entries()) f.addDoneCallback(() => started.push(i))
      await wait(fs)
      if (maxWorkers === 1) t.deepEqual(started, Array.from({ length: 12 }, (_, i) => i))
      // Two workers may finish neighbours the other way round, never far apart.
      else t.true(started.every((n, at) => Math.abs(n - at) <= 2), `completion order ${started}`)
      await pool.shutdown()
    }
  })

  serial(`${kind.name}: the initializer runs in each worker before its tasks`, async (t) => {
    const pool = kind.make({
      maxWorkers: 2,
      initializer: (a: number, b: number) => {
        ;(globalThis as any).seed = a + b
      },
      initargs: [20, 22],
    })
    t.is(await pool.submit(() => (globalThis as any).seed).result(), 42)
    await pool.shutdown()
    const byName = kind.make({ maxWorkers: 1, module: modulePath, initializer: 'init', initargs: ['yes'] })
    t.is(await byName.submit(() => (globalThis as any).initialized).result(), 'yes')
    await byName.shutdown()
  })

  serial(`${kind.name}: a failing initializer breaks the pool and settles every pending future`, async (t) => {
    const pool = kind.make({
      maxWorkers: 2,
      initializer: () => {
        throw new Error('no database')
      },
    })
    const fs = Array.from({ length: 5 }, (_, i) => pool.submit((x: number) => x, i))
    for (const f of fs) {
      const err = await t.throwsAsync(f.result(), { instanceOf: kind.Broken })
      t.regex(err!.message, /initializer failed/)
      t.is(((err as Error).cause as Error)?.message, 'no database')
    }
    t.throws(() => pool.submit(() => 1), { instanceOf: kind.Broken })
    await pool.shutdown()
  })

  serial(`${kind.name}: a worker that dies abruptly breaks the pool and settles every pending future`, async (t) => {
    const pool = kind.make({ maxWorkers: 2 })
    t.is(await pool.submit(() => 1).result(), 1)
    const dying = pool.submit(async () => {
      await new Promise((r) => setTimeout(r, 200))
      process.exit(3)
    })
    const slow = Array.from({ length: 4 }, () => pool.submit(nap, 10_000))
    const queued = Array.from({ length: 20 }, (_, i) => pool.submit((x: number) => x, i))
    const all = [dying, ...slow, ...queued]
    const { notDone } = await wait(all, { timeoutMs: 30_000 })
    t.is(notDone.size, 0)
    for (const f of [dying, ...slow]) {
      const err = await f.exception()
      t.true(err instanceof kind.Broken, String(err))
      t.true(err instanceof BrokenExecutor)
    }
    // A queued task either ran before the crash was seen, or failed with it.
    for (const f of queued) {
      const err = await f.exception()
      t.true(err === null || err instanceof kind.Broken, String(err))
    }
    t.throws(() => pool.submit(() => 1), { instanceOf: kind.Broken })
    await pool.shutdown()
  })

  serial(`${kind.name}: shutdown({ cancelFutures }) cancels queued tasks, lets the running one finish, and refuses new ones`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const running = pool.submit(nap, 300)
    while (!running.running()) await new Promise((r) => setTimeout(r, 5))
    const queued = Array.from({ length: 5 }, () => pool.submit(nap, 300))
    await pool.shutdown({ cancelFutures: true })
    t.true(running.done())
    t.false(running.cancelled())
    t.regex(await running.result(), /\d+:\d+/)
    for (const f of queued) t.true(f.cancelled())
    t.throws(() => pool.submit(() => 1), { message: /after shutdown/ })
    await pool.shutdown()
  })

  serial(`${kind.name}: shutdown({ cancelFutures }) after a shutdown({ wait: false }) still cancels the queued tasks`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const running = pool.submit(nap, 300)
    while (!running.running()) await new Promise((r) => setTimeout(r, 5))
    const queued = Array.from({ length: 5 }, () => pool.submit(nap, 300))
    await pool.shutdown({ wait: false })
    await pool.shutdown({ cancelFutures: true })
    t.false(running.cancelled())
    t.true(running.done())
    for (const f of queued) t.true(f.cancelled())
  })

  serial(`${kind.name}: shutdown() waits for queued tasks to run; wait: false returns at once`, async (t) => {
    const pool = kind.make({ maxWorkers: 2 })
    const fs = Array.from({ length: 6 }, () => pool.submit(nap, 50))
    await pool.shutdown()
    t.true(fs.every((f) => f.done() && !f.cancelled()))
    const other = kind.make({ maxWorkers: 1 })
    const f = other.submit(nap, 200)
    await other.shutdown({ wait: false })
    t.false(f.done())
    t.regex(await f.result(), /\d+:\d+/)
  })

  serial(`${kind.name}: aborting a signal cancels a queued task and reaches a running one without killing the worker`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const blocker = new AbortController()
    // Started in the worker (a child's running() may be a task of its batch not started yet, which an abort cancels).
    const started = path.join(os.tmpdir(), `gt-abort-started-${process.pid}-${kind.name}`)
    fs.rmSync(started, { force: true })
    // A signal aborted before the task starts in the worker comes aborted already: no 'abort' event then.
    const running = pool.submitWith(
      { signal: blocker.signal },
      (file: string, signal: AbortSignal) =>
        new Promise((resolve) => {
          require('node:fs').writeFileSync(file, '')
          const aborted = (): void => resolve(`aborted: ${signal.reason.message}`)
          if (signal.aborted) aborted()
          else signal.addEventListener('abort', aborted)
        }),
      started,
    )
    while (!fs.existsSync(started)) await new Promise((r) => setTimeout(r, 5))
    fs.rmSync(started, { force: true })
    const queuedSignal = new AbortController()
    const queued = pool.submitWith({ signal: queuedSignal.signal }, () => 'ran')
    queuedSignal.abort()
    t.true(queued.cancelled())
    await t.throwsAsync(queued.result(), { instanceOf: CancelledError })
    const before = await pool.submitWith({}, identity)
    blocker.abort(new Error('stop'))
    t.is(await running.result(), 'aborted: stop')
    t.is(await before.result(), await pool.submit(identity).result(), 'same worker afterwards')
    const pre = new AbortController()
    pre.abort()
    t.true(pool.submitWith({ signal: pre.signal }, () => 1).cancelled())
    await pool.shutdown()
  })

  serial(`${kind.name}: an abort that comes while the worker still imports the task's module cancels the task`, async (t) => {
    const pool = kind.make({ maxWorkers: 1, module: slowModulePath })
    const abort = new AbortController()
    const task = pool.submitWith({ signal: abort.signal }, 'untilAborted')
    await untilTaken(kind.name, task)
    // The module's import takes 300 ms: the task has not started in the worker yet.
    abort.abort(new Error('stop'))
    await t.throwsAsync(task.result({ timeoutMs: 10_000 }), { instanceOf: CancelledError })
    t.true(task.cancelled())
    // A task that starts after the abort still gets its signal.
    const later = new AbortController()
    const next = pool.submitWith({ signal: later.signal }, 'untilAborted')
    while (!next.running()) await new Promise((r) => setTimeout(r, 5))
    await new Promise((r) => setTimeout(r, 50))
    later.abort(new Error('later'))
    t.is(await next.result({ timeoutMs: 10_000 }), 'aborted: later')
    await pool.shutdown({ wait: false })
  })

  serial(`${kind.name}: aborts at random moments leave no future pending, and each ends one of the ways it may`, async (t) => {
    const pool = kind.make({ maxWorkers: 2 })
    // A small seeded generator: a failure replays the same schedule.
    let seed = 0x2545f491
    const random = (n: number): number => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) % n
    }
    const waitOrAbort = (ms: number, signal: AbortSignal): Promise<string> =>
      new Promise((resolve) => {
        if (signal.aborted) return resolve('aborted')
        const timer = setTimeout(() => resolve('done'), ms)
        signal.addEventListener('abort', () => {
          clearTimeout(timer)
          resolve('aborted')
        })
      })
    const quick = (x: number, _signal: AbortSignal): number => x
    const tasks: { f: Future<unknown>; aborted: () => boolean; sync: boolean }[] = []
    const timers: NodeJS.Timeout[] = []
    for (let round = 0; round < 8; round++) {
      for (let i = 0; i < 50; i++) {
        const controller = new AbortController()
        const sync = random(3) === 0
        // Some aborted at once (still in this turn's submission), some a little later, some never.
        const when = random(4)
        // A task to be aborted waits 60 s unless it is: one whose abort got lost would end 'done' (or time out).
        const ms = when < 3 ? 60_000 : random(4)
        const f = sync ? pool.submitWith({ signal: controller.signal }, quick, i) : pool.submitWith({ signal: controller.signal }, waitOrAbort, ms)
        tasks.push({ f, aborted: () => controller.signal.aborted, sync })
        if (when === 0) controller.abort()
        else if (when < 3) timers.push(setTimeout(() => controller.abort(), random(15)))
      }
      await new Promise((r) => setTimeout(r, random(10)))
    }
    const outcomes = await Promise.all(
      tasks.map(({ f }) =>
        f.result({ timeoutMs: 20_000 }).then(
          (v) => v,
          (err: unknown) => (err instanceof CancelledError ? 'cancelled' : err),
        ),
      ),
    )
    timers.forEach(clearTimeout)
    for (let i = 0; i < tasks.length; i++) {
      const { aborted, sync } = tasks[i]
      const outcome = outcomes[i]
      if (outcome === 'cancelled' || outcome === 'aborted') t.true(aborted(), `task ${i} ended ${outcome} without an abort`)
      else if (sync) t.is(outcome, i % 50, `task ${i}`)
      else t.is(outcome, 'done', `task ${i}`)
    }
    t.true(outcomes.includes('cancelled'))
    await pool.shutdown()
  })

  serial(`${kind.name}: an abort of a task its worker holds behind another cancels it`, async (t) => {
    const pool = kind.make({ maxWorkers: 1, module: slowModulePath })
    // Quick tasks first: the worker's batches grow, so the next two are taken together.
    await Promise.all(Array.from({ length: 63 }, (_, i) => pool.submit((x: number) => x, i).result()))
    const first = pool.submit('ready')
    const abort = new AbortController()
    const held = pool.submitWith({ signal: abort.signal }, (signal: AbortSignal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve('ran'))))
    await untilTaken(kind.name, held)
    // `first` waits for its module (300 ms), `held` behind it in the same batch.
    t.false(first.done())
    // A thread worker claims a task as it starts it: until then it is not running.
    if (kind.name === 'ThreadPoolExecutor') t.false(held.running())
    abort.abort(new Error('stop'))
    await t.throwsAsync(held.result({ timeoutMs: 10_000 }), { instanceOf: CancelledError })
    t.is(await first.result({ timeoutMs: 10_000 }), 'ready')
    t.is(await pool.submit((x: number) => x + 1, 1).result({ timeoutMs: 10_000 }), 2)
    await pool.shutdown({ wait: false })
  })

  serial(`${kind.name}: an executor used without shutdown does not keep the process from exiting`, async (t) => {
    const script = `
      const { ${kind.name} } = require(${JSON.stringify(path.join(root, 'dist/src/executor.js'))})
      const pool = new ${kind.name}({ maxWorkers: 2 })
      pool.submit((x) => x * 2, 21).result().then((v) => console.log('result', v))
    `
    const started = Date.now()
    const { stdout } = await run(process.execPath, ['-e', script], { timeout: 20_000 })
    t.is(stdout.trim(), 'result 42')
    t.true(Date.now() - started < 20_000)
  })

  serial(`${kind.name}: pending futures settle when the process exits with process.exit`, async (t) => {
    const script = `
      const { ${kind.name} } = require(${JSON.stringify(path.join(root, 'dist/src/executor.js'))})
      const pool = new ${kind.name}({ maxWorkers: 1 })
      const f = pool.submit(() => new Promise(() => {}))
      const g = pool.submit(() => 1)
      for (const x of [f, g]) x.addDoneCallback((d) => console.log('settled', d.done(), d.cancelled()))
      setTimeout(() => process.exit(0), 300)
    `
    const { stdout } = await run(process.execPath, ['-e', script], { timeout: 20_000 })
    t.is(stdout.trim(), 'settled true false\nsettled true false')
  })
}

serial('ProcessPoolExecutor: killing a child with SIGKILL breaks the pool and settles every pending future', async (t) => {
  const pool = new ProcessPoolExecutor({ maxWorkers: 2 })
  const pid = Number((await pool.submit(identity).result()).split(':')[0])
  const fs = Array.from({ length: 10 }, () => pool.submit(nap, 1_000))
  await new Promise((r) => setTimeout(r, 100))
  process.kill(pid, 'SIGKILL')
  for (const f of fs) {
    const err = await f.exception({ timeoutMs: 30_000 })
    t.true(err instanceof BrokenProcessPool, String(err))
    t.regex((err as Error).message, /SIGKILL/)
  }
})

serial('ThreadPoolExecutor: an uncaught exception in a worker breaks the pool', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  const f = pool.submit(() => {
    setTimeout(() => {
      throw new Error('escaped')
    })
    return new Promise(() => {})
  })
  const err = await f.exception({ timeoutMs: 30_000 })
  t.true(err instanceof BrokenThreadPool)
  t.is(((err as Error).cause as Error).message, 'escaped')
})

serial('the default maxWorkers is min(32, CPUs + 4) for threads and the CPU count for processes', (t) => {
  t.is(new ThreadPoolExecutor().maxWorkers, Math.min(32, os.availableParallelism() + 4))
  t.is(new ProcessPoolExecutor().maxWorkers, os.availableParallelism())
  t.is(new ThreadPoolExecutor({ maxWorkers: 3 }).maxWorkers, 3)
})

serial('bad options and arguments throw TypeError or RangeError naming the argument', (t) => {
  t.throws(() => new ThreadPoolExecutor({ maxWorkers: 0 }), { instanceOf: RangeError, message: /options.maxWorkers must be a positive integer/ })
  t.throws(() => new ThreadPoolExecutor({ maxWorkers: 1.5 }), { instanceOf: RangeError, message: /options.maxWorkers/ })
  t.throws(() => new ProcessPoolExecutor({ maxWorkers: '2' as any }), { instanceOf: TypeError, message: /options.maxWorkers/ })
  t.throws(() => new ThreadPoolExecutor({ maxTasksPerChild: -1 }), { instanceOf: RangeError, message: /options.maxTasksPerChild/ })
  // Past Node's timer limit a timer fires at once: idle workers would retire after 1 ms.
  for (const Pool of [ThreadPoolExecutor, ProcessPoolExecutor]) {
    t.throws(() => new Pool({ idleTimeout: 2 ** 31 }), { instanceOf: RangeError, message: /options.idleTimeout must be at most 2147483647 ms/ })
  }
  t.throws(() => new ThreadPoolExecutor({ initargs: 1 as any }), { instanceOf: TypeError, message: /options.initargs/ })
  t.throws(() => new ThreadPoolExecutor({ initializer: 5 as any }), { instanceOf: TypeError, message: /options.initializer/ })
  t.throws(() => new ThreadPoolExecutor({ initializer: 'init' }), { instanceOf: TypeError, message: /options.module is not set/ })
  t.throws(() => new ThreadPoolExecutor({ module: 3 as any }), { instanceOf: TypeError, message: /options.module/ })
  t.throws(() => new ThreadPoolExecutor(7 as any), { instanceOf: TypeError, message: /options/ })
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  t.throws(() => pool.submit(42 as any), { instanceOf: TypeError, message: /^fn must be a function or the name/ })
  t.throws(() => pool.submit('square'), { instanceOf: TypeError, message: /options.module is not set/ })
  t.throws(() => pool.submit(Math.max), { instanceOf: TypeError, message: /native or bound/ })
  t.throws(() => pool.submit((() => 1).bind(null)), { instanceOf: TypeError, message: /native or bound/ })
  t.throws(() => pool.map((x: number) => x, 5 as any), { instanceOf: TypeError, message: /iterable must be an iterable/ })
  t.throws(() => pool.map((x: number) => x, [1], { chunksize: 0 }), { instanceOf: RangeError, message: /options.chunksize/ })
  t.throws(() => pool.map((x: number) => x, [1], { buffersize: 0 }), { instanceOf: RangeError, message: /options.buffersize/ })
  t.throws(() => pool.map((x: number) => x, [1], { buffersize: '2' as any }), { instanceOf: TypeError, message: /options.buffersize/ })
  t.throws(() => pool.submitWith({ signal: {} as any }, () => 1), { instanceOf: TypeError, message: /options.signal/ })
})

serial('map yields results in input order, even when later items finish first', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 4 })
  const delays = [120, 10, 80, 0, 40, 5]
  const out: number[] = []
  for await (const v of pool.map(
    async (ms: number) => {
      await new Promise((r) => setTimeout(r, ms))
      return ms
    },
    delays,
  )) {
    out.push(v)
  }
  t.deepEqual(out, delays)
  await pool.shutdown()
})

serial('map with chunksize runs the items in chunks and still yields one result per item in order', async (t) => {
  const pool = new ProcessPoolExecutor({ maxWorkers: 2 })
  const items = Array.from({ length: 25 }, (_, i) => i)
  const out: number[] = []
  for await (const v of pool.map((x: number) => x * x, items, { chunksize: 4 })) out.push(v)
  t.deepEqual(out, items.map((x) => x * x))
  const where: string[] = []
  for await (const w of pool.map((_: number) => `${process.pid}`, [1, 2, 3], { chunksize: 3 })) where.push(w)
  t.is(new Set(where).size, 1, 'one chunk runs in one worker')
  await pool.shutdown()
})

for (const kind of kinds) {
  serial(`${kind.name}: map({ buffersize }) reads an endless input lazily, a few tasks ahead of the results taken, and closes it when left`, async (t) => {
    const pool = kind.make({ maxWorkers: 2 })
    for (const chunksize of [1, 3]) {
      const input = { read: 0, closed: false }
      // Endless as far as a lazy map can tell; read eagerly, it fails the call at once instead of looping forever.
      const endless = function* (): Generator<number> {
        try {
          for (let i = 0; ; i++) {
            if (++input.read > 1000) throw new Error('the input was read far ahead of the results')
            yield i
          }
        } finally {
          input.closed = true
        }
      }
      const out: number[] = []
      for await (const v of pool.map((x: number) => x * 2, endless(), { buffersize: 4, chunksize })) {
        out.push(v)
        // Taken, plus 4 tasks (of chunksize items) submitted ahead, plus the task submitted as this one was taken.
        t.true(input.read <= out.length + 5 * chunksize, `chunksize ${chunksize}: ${input.read} items read with ${out.length} results taken`)
        if (out.length === 10) break
      }
      t.deepEqual(out, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
      t.true(input.closed, 'leaving the loop closes the input')
    }
    // Read lazily, an item that cannot be sent fails the iteration at its turn, after every result before it.
    const got: number[] = []
    const bad = pool.map((x: unknown) => x, [1, 2, 3, () => 4, 5], { buffersize: 1 })
    await t.throwsAsync(
      (async () => {
        for await (const v of bad) got.push(v as number)
      })(),
      { instanceOf: TypeError, message: /iterable\[3\]/ },
    )
    t.deepEqual(got, [1, 2, 3])
    await pool.shutdown()
  })
}

for (const kind of kinds) {
  serial(`${kind.name}: map's timeoutMs cancels the task it timed out waiting for, not started yet, as Python's does`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const busy = pool.submit(() => (Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600), 'busy'))
    await new Promise((resolve) => setTimeout(resolve, 100))
    // The one worker is busy: none of these starts before the map gives up.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'greenthread-map-'))
    const items = [0, 1, 2].map((i) => path.join(dir, String(i)))
    try {
      await t.throwsAsync(
        (async () => {
          for await (const _ of pool.map((file: string) => require('node:fs').writeFileSync(file, ''), items, { timeoutMs: 100 })) void _
        })(),
        { name: 'TimeoutError' },
      )
      t.is(await busy.result(), 'busy')
      await pool.shutdown()
      t.deepEqual(fs.readdirSync(dir), [], 'tasks of the map ran after it gave up')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
}

serial("map throws a task's exception at its position and TimeoutError after timeoutMs", async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 2 })
  const seen: number[] = []
  const failing = pool.map(
    (x: number) => {
      if (x === 2) throw new Error('two')
      return x
    },
    [0, 1, 2, 3],
  )
  await t.throwsAsync(
    (async () => {
      for await (const v of failing) seen.push(v)
    })(),
    { message: 'two' },
  )
  t.deepEqual(seen, [0, 1])
  const slow = pool.map(async (ms: number) => new Promise((r) => setTimeout(() => r(ms), ms)), [1, 1_500], { timeoutMs: 300 })
  const got: unknown[] = []
  // The message names the timeout the caller set (not the time that was left for the item).
  await t.throwsAsync(
    (async () => {
      for await (const v of slow) got.push(v)
    })(),
    { name: 'TimeoutError', message: 'map(): the results were not all done within timeoutMs (300 ms)' },
  )
  t.deepEqual(got, [1])
  // As Python's map: the timeout counts from the call, not from the first
  // next() (from there, the task would be done 150 ms before it).
  const late = pool.map(async (ms: number) => new Promise((r) => setTimeout(() => r(ms), ms)), [550], { timeoutMs: 300 })
  await new Promise((r) => setTimeout(r, 400))
  await t.throwsAsync(late.next(), { name: 'TimeoutError', message: /within timeoutMs \(300 ms\)/ })
  await pool.shutdown({ cancelFutures: true })
})

serial('result() awaited inside a greenlet is interrupted by kill', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  const f: Future<string> = pool.submit(nap, 400)
  const g = spawn(() => f.result())
  await new Promise((r) => setTimeout(r, 50))
  await g.kill()
  t.true(g.dead)
  t.true(g.exception instanceof GreenletExit || g.exception === undefined)
  t.false(f.done(), 'the task itself goes on')
  t.regex(await f.result(), /\d+:\d+/)
  await pool.shutdown()
})

serial('await using shuts the executor down and waits for its tasks', async (t) => {
  let f: Future<string> | undefined
  {
    await using pool = new ThreadPoolExecutor({ maxWorkers: 1 })
    f = pool.submit(nap, 50)
  }
  t.true(f.done())
})

// What piscina users look for (piscina's test/option-validation.ts, maxQueue,
// resourceLimits, utilization): the same on both pools where they apply.

serial('maxQueue: submit past the waiting tasks allowed throws TaskQueueFull; room comes back as tasks finish', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1, maxQueue: 2 })
  const gate = new SharedArrayBuffer(4)
  const held = [0, 1, 2].map(() =>
    pool.submit((sab: SharedArrayBuffer) => {
      Atomics.wait(new Int32Array(sab), 0, 0, 5000)
      return 'ran'
    }, gate),
  )
  const err = t.throws(() => pool.submit(() => 'one too many'), { instanceOf: TaskQueueFull })
  t.regex(err!.message, /2 tasks wait for the 1 workers \(options.maxQueue\)/)
  Atomics.store(new Int32Array(gate), 0, 1)
  Atomics.notify(new Int32Array(gate), 0)
  t.deepEqual(await Promise.all(held.map((f) => f.result())), ['ran', 'ran', 'ran'])
  t.is(await pool.submit(() => 'room again').result(), 'room again')
  t.throws(() => new ThreadPoolExecutor({ maxQueue: -1 }), { instanceOf: RangeError, message: /options.maxQueue/ })
  t.throws(() => new ProcessPoolExecutor({ maxQueue: 'x' as any }), { instanceOf: TypeError, message: /options.maxQueue/ })
  await pool.shutdown()
})

serial('resourceLimits: a thread worker past its heap limit dies and breaks the pool; bad limits are clear errors', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1, resourceLimits: { maxOldGenerationSizeMb: 32 } })
  const hog = pool.submit(() => {
    const keep: unknown[] = []
    for (;;) keep.push(new Array(1e5).fill({ x: keep.length }))
  })
  await t.throwsAsync(hog.result({ timeoutMs: 30_000 }), { instanceOf: BrokenThreadPool })
  t.throws(() => new ThreadPoolExecutor({ resourceLimits: { heapMb: 10 } as any }), { instanceOf: TypeError, message: /options.resourceLimits.heapMb is not a limit/ })
  t.throws(() => new ThreadPoolExecutor({ resourceLimits: { stackSizeMb: -4 } }), { instanceOf: RangeError, message: /options.resourceLimits.stackSizeMb/ })
  // A process pool has no such limits: refused rather than ignored.
  t.throws(() => new ProcessPoolExecutor({ resourceLimits: { maxOldGenerationSizeMb: 64 } } as any), {
    instanceOf: TypeError,
    message: /options.resourceLimits applies to thread workers only/,
  })
  await pool.shutdown()
})

serial('options.module that does not exist is refused at construction, naming where it was looked for', (t) => {
  const err = t.throws(() => new ThreadPoolExecutor({ module: './no-such-tasks.js' }), { instanceOf: TypeError })
  t.regex(err!.message, /options.module names "\.\/no-such-tasks\.js", resolved against .* to .*no-such-tasks\.js, which does not exist/)
})

serial('stats() counts completed, failed, cancelled and pending tasks, and reports latencies', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  t.deepEqual(pool.stats(), { completed: 0, failed: 0, cancelled: 0, pending: 0, workers: 0, latencyMs: null })
  const ok = [1, 2, 3].map((n) => pool.submit((x: number) => x * 2, n))
  const bad = pool.submit(() => {
    throw new Error('no')
  })
  const gate = new SharedArrayBuffer(4)
  const blocker = pool.submit((sab: SharedArrayBuffer) => Atomics.wait(new Int32Array(sab), 0, 0, 5000), gate)
  // Cancelled before it reached a worker (a worker may take queued tasks ahead in a batch).
  const queued = pool.submit(() => 'never')
  t.true(queued.cancel())
  await Promise.all(ok.map((f) => f.result()))
  await t.throwsAsync(bad.result())
  const mid = pool.stats()
  t.is(mid.pending, 1, 'the blocked task')
  t.is(mid.cancelled, 1)
  t.is(mid.workers, 1)
  Atomics.store(new Int32Array(gate), 0, 1)
  Atomics.notify(new Int32Array(gate), 0)
  await blocker.result()
  const end = pool.stats()
  t.is(end.completed, 5)
  t.is(end.failed, 1)
  t.is(end.pending, 0)
  t.true(end.latencyMs !== null && end.latencyMs.p50 > 0 && end.latencyMs.max >= end.latencyMs.p99)
  await pool.shutdown()
})

for (const [name, Pool] of [
  ['ThreadPoolExecutor', ThreadPoolExecutor],
  ['ProcessPoolExecutor', ProcessPoolExecutor],
] as const) {
  serial(`${name}: idleTimeout retires idle workers, and new ones start when work comes`, async (t) => {
    const pool = new Pool({ maxWorkers: 2, idleTimeout: 100 })
    t.deepEqual(await Promise.all([1, 2].map((n) => pool.submit((x: number) => x * 10, n).result())), [10, 20])
    t.true(pool.stats().workers > 0)
    for (let i = 0; i < 100 && pool.stats().workers > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    t.is(pool.stats().workers, 0, 'the idle workers left')
    t.is(await pool.submit(() => 'again').result({ timeoutMs: 10_000 }), 'again')
    t.throws(() => new Pool({ idleTimeout: 0 }), { instanceOf: RangeError, message: /options.idleTimeout/ })
    await pool.shutdown()
  })
}

// transferList and move(): piscina's `run(task, { transferList })` and
// `Piscina.move(value)`, with Node's `postMessage(value, transferList)`
// semantics (a listed ArrayBuffer is detached at the sender and arrives with
// its memory; a listed MessagePort moves).

serial('ThreadPoolExecutor: submitWith({ transferList }) moves the ArrayBuffers to the worker: detached here at submit, the same bytes and views there', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  const buf = new ArrayBuffer(1 << 20)
  new Uint8Array(buf).fill(7)
  const view = new Uint16Array(buf, 8, 4)
  view[0] = 513
  const f = pool.submitWith(
    { transferList: [buf] },
    (b: ArrayBuffer, v: Uint16Array) => ({ length: b.byteLength, last: new Uint8Array(b)[b.byteLength - 1], first: v[0], sameMemory: v.buffer === b }),
    buf,
    view,
  )
  // postMessage's semantics, as piscina's transferList: the sender's buffer and its views are detached at once.
  t.is(buf.byteLength, 0)
  t.is(view.length, 0)
  t.deepEqual(await f.result(), { length: 1 << 20, last: 7, first: 513, sameMemory: true })
  // Many at once, across batches and the worker's given-back tasks: each task gets its own buffer.
  const bufs = Array.from({ length: 40 }, (_, i) => new Uint32Array([i, i * 2]).buffer)
  const futures = bufs.map((b) => pool.submitWith({ transferList: [b] }, (x: ArrayBuffer) => new Uint32Array(x)[0] + new Uint32Array(x)[1], b))
  t.true(bufs.every((b) => b.byteLength === 0))
  t.deepEqual(await Promise.all(futures.map((x) => x.result())), bufs.map((_, i) => i * 3))
  // Not moved unless listed: a plain argument is still a copy.
  const kept = new Uint8Array([1, 2, 3]).buffer
  t.is(await pool.submit((b: ArrayBuffer) => b.byteLength, kept).result(), 3)
  t.is(kept.byteLength, 3)
  await pool.shutdown()
})

serial('ThreadPoolExecutor: a MessagePort in transferList moves to the worker with the messages queued on it', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  const { port1, port2 } = new MessageChannel()
  port1.postMessage(20)
  const f = pool.submitWith(
    { transferList: [port2] },
    (port: MessagePort) =>
      new Promise((resolve) =>
        port.once('message', (n: number) => {
          port.postMessage(n + 1)
          port.close()
          resolve('answered')
        }),
      ),
    port2,
  )
  t.is(await new Promise((resolve) => port1.once('message', resolve)), 21)
  t.is(await f.result(), 'answered')
  port1.close()
  // Unlisted, a port cannot cross (as postMessage without transferList).
  const { port1: lone } = new MessageChannel()
  t.throws(() => pool.submit((p: unknown) => p, lone), { instanceOf: TypeError, message: /^args\[0\] cannot be sent to a worker: .*MessagePort.*options\.transferList/ })
  lone.close()
  await pool.shutdown()
})

for (const kind of kinds) {
  const threads = kind.name === 'ThreadPoolExecutor'
  serial(`${kind.name}: move() marks a whole argument or a task's return value to be moved (Piscina.move)`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    // Piscina.move(value) as what a task returns: a thread worker transfers it back (its buffer is detached there).
    const made = await pool
      .submit((n: number) => {
        // A task sent by source requires from the current directory: here, the package itself.
        const { move } = require('greenthread')
        const bytes = new Uint8Array(n).fill(9)
        ;(globalThis as any).__moved = bytes
        return move(bytes)
      }, 4096)
      .result()
    t.true(made instanceof Uint8Array)
    t.is(made.length, 4096)
    t.is(made[4095], 9)
    const leftInWorker = await pool.submit(() => (globalThis as any).__moved.byteLength).result()
    // A child process copies: its bytes stay there.
    t.is(leftInWorker, threads ? 0 : 4096)
    // Piscina.move(value) as the task's input: the caller's buffer is detached, the task receives the value itself.
    const input = new Float64Array([1.5, 2.5])
    const sum = pool.submit((xs: Float64Array) => xs[0] + xs[1], move(input))
    t.is(input.length, 0)
    t.is(await sum.result(), 4)
    // map: moved items, each task its own, one chunk or many; a chunk's results may be moved too.
    for (const chunksize of [1, 3]) {
      const items = [0, 1, 2, 3].map((i) => move(new Uint8Array([i, 10])))
      const out: number[] = []
      for await (const v of pool.map((b: Uint8Array) => b[0] + b[1], items, { chunksize })) out.push(v)
      t.deepEqual(out, [10, 11, 12, 13])
    }
    const back: number[] = []
    for await (const b of pool.map((n: number) => require('greenthread').move(new ArrayBuffer(n)), [1, 2, 3], { chunksize: 3 })) back.push((b as ArrayBuffer).byteLength)
    t.deepEqual(back, [1, 2, 3])
    // A marker only works as a whole argument: nested, it is refused rather than arriving as {}.
    t.throws(() => pool.submit((o: unknown) => o, { inner: move(new ArrayBuffer(1)) }), { instanceOf: TypeError, message: /^args\[0\] cannot be sent to a worker: .*could not be cloned/ })
    await pool.shutdown()
  })
}

serial('ProcessPoolExecutor: transferList is accepted and copies to the child (detaching the listed buffers all the same); a MessagePort is refused', async (t) => {
  const pool = new ProcessPoolExecutor({ maxWorkers: 1 })
  const buf = new Uint8Array([4, 5, 6]).buffer
  const f = pool.submitWith({ transferList: [buf] }, (b: ArrayBuffer) => [...new Uint8Array(b)], buf)
  // The same contract as a thread pool: the caller gave the buffer away.
  t.is(buf.byteLength, 0)
  t.deepEqual(await f.result(), [4, 5, 6])
  const { port1, port2 } = new MessageChannel()
  t.throws(() => pool.submitWith({ transferList: [port2] }, (p: unknown) => p, port2), {
    instanceOf: TypeError,
    message: /^options\.transferList\[0\] is a MessagePort, which ProcessPoolExecutor cannot send/,
  })
  t.throws(() => pool.submit((p: unknown) => p, move(port2)), { instanceOf: TypeError, message: /^args\[0\] is a MessagePort, which ProcessPoolExecutor cannot send/ })
  port1.close()
  port2.close()
  await pool.shutdown()
})

serial('transferList and move(): bad input is a TypeError naming it, nothing is detached, and the pool goes on', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  const buf = new ArrayBuffer(8)
  const fn = (b: unknown) => b
  // piscina: "transferList argument must be an Array".
  for (const bad of [buf, 'x', 5, { length: 1, 0: buf }, null]) {
    t.throws(() => pool.submitWith({ transferList: bad as any }, fn, buf), { instanceOf: TypeError, message: /^options\.transferList must be an array of ArrayBuffers and MessagePorts/ })
  }
  t.throws(() => pool.submitWith({ transferList: [buf, 5 as any] }, fn, buf), { instanceOf: TypeError, message: /^options\.transferList\[1\] must be an ArrayBuffer or a MessagePort, got number 5/ })
  t.throws(() => pool.submitWith({ transferList: [new Uint8Array(buf) as any] }, fn, buf), { instanceOf: TypeError, message: /^options\.transferList\[0\] .*view \(Uint8Array\): list its \.buffer/ })
  t.throws(() => pool.submitWith({ transferList: [new SharedArrayBuffer(4) as any] }, fn), { instanceOf: TypeError, message: /^options\.transferList\[0\] is a SharedArrayBuffer, which is not moved/ })
  t.throws(() => pool.submitWith({ transferList: [buf, buf] }, fn, buf), { instanceOf: TypeError, message: /^options\.transferList\[1\] is listed twice: it is options\.transferList\[0\] too/ })
  // An uncloneable argument fails the submit before anything moves.
  t.throws(() => pool.submitWith({ transferList: [buf] }, (...xs: unknown[]) => xs.length, buf, () => 1), { instanceOf: TypeError, message: /^args\[1\] cannot be sent/ })
  t.is(buf.byteLength, 8, 'a refused submit moves nothing')
  for (const bad of [5, 'x', {}, null, new SharedArrayBuffer(2)]) t.throws(() => move(bad as any), { instanceOf: TypeError, message: /^value (must be|is a SharedArrayBuffer)/ })
  // Moved once, a buffer has nothing left to move.
  t.is(await pool.submitWith({ transferList: [buf] }, (b: ArrayBuffer) => b.byteLength, buf).result(), 8)
  t.throws(() => pool.submitWith({ transferList: [buf] }, fn), { instanceOf: TypeError, message: /^options\.transferList\[0\] is a detached ArrayBuffer/ })
  t.throws(() => move(buf), { instanceOf: TypeError, message: /^value is a detached ArrayBuffer/ })
  t.is(await pool.submit(() => 'still working').result(), 'still working')
  await pool.shutdown()
})
