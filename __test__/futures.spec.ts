import test from 'ava'

import { CancelledError, Future, GreenletExit, InvalidStateError, ThreadPoolExecutor, Timeout, TimeoutError, asCompleted, sleep, spawn, wait } from '../index'

// One pool, one test at a time: timings are overlaps with wide margins.
const serial = test.serial
const pool = new ThreadPoolExecutor({ maxWorkers: 2 })

test.after.always(() => pool.shutdown({ cancelFutures: true }))

async function delayed<T>(ms: number, value: T): Promise<T> {
  await new Promise((resolve) => setTimeout(resolve, ms))
  return value
}

async function failing(ms: number, message: string): Promise<never> {
  await new Promise((resolve) => setTimeout(resolve, ms))
  throw new Error(message)
}

/** A pool of one busy worker, so that what is submitted next stays queued. */
async function busyPool(ms = 1_000): Promise<{ busy: ThreadPoolExecutor; blocker: Future<string> }> {
  const busy = new ThreadPoolExecutor({ maxWorkers: 1 })
  const blocker = busy.submit(delayed<string>, ms, 'blocker')
  while (!blocker.running()) await new Promise((r) => setTimeout(r, 5))
  return { busy, blocker }
}

serial('a Future is not a thenable: awaiting it yields the Future itself', async (t) => {
  const f = pool.submit(() => 1)
  t.false('then' in f)
  t.is(await (f as unknown as Promise<unknown>), f)
  t.is(await f.result(), 1)
})

serial('done callbacks run in the order added, with the future, once it is done', async (t) => {
  const f = pool.submit(delayed<number>, 50, 7)
  const calls: string[] = []
  f.addDoneCallback((g) => calls.push(`a:${g === f}:${g.done()}`))
  f.addDoneCallback(() => calls.push('b'))
  f.addDoneCallback(() => calls.push('c'))
  t.deepEqual(calls, [])
  await f.result()
  t.deepEqual(calls, ['a:true:true', 'b', 'c'])
})

serial('a done callback added to a done future runs at once', async (t) => {
  const f = pool.submit(() => 'x')
  await f.result()
  let called: Future<string> | undefined
  f.addDoneCallback((g) => {
    called = g
  })
  t.is(called, f)
  t.throws(() => f.addDoneCallback('nope' as any), { instanceOf: TypeError, message: /^fn must be a function/ })
})

serial('a throwing done callback is reported as a warning and neither stops the others nor breaks the pool', async (t) => {
  const warnings: Error[] = []
  const onWarning = (w: Error): void => {
    warnings.push(w)
  }
  process.on('warning', onWarning)
  try {
    const f = pool.submit(() => 1)
    const calls: number[] = []
    f.addDoneCallback(() => calls.push(1))
    f.addDoneCallback(() => {
      throw new Error('callback bug')
    })
    f.addDoneCallback(() => calls.push(3))
    await f.result()
    t.deepEqual(calls, [1, 3])
    await new Promise((r) => setImmediate(r))
    const w = warnings.find((x) => x.name === 'FutureCallbackError')
    t.truthy(w)
    t.is((w!.cause as Error).message, 'callback bug')
    t.is(await pool.submit(() => 2).result(), 2)
  } finally {
    process.off('warning', onWarning)
  }
})

serial('cancel() before the task runs cancels it; a running or finished task cannot be cancelled', async (t) => {
  const { busy, blocker } = await busyPool()
  const queued = busy.submit(() => 'never')
  let seen: Future<string> | undefined
  queued.addDoneCallback((f) => {
    seen = f
  })
  t.false(queued.running())
  t.true(queued.cancel())
  t.is(seen, queued, 'callbacks run on cancel')
  t.true(queued.cancelled())
  t.true(queued.done())
  t.true(queued.cancel(), 'cancelling again still reports cancelled')
  await t.throwsAsync(queued.result(), { instanceOf: CancelledError })
  await t.throwsAsync(queued.exception(), { instanceOf: CancelledError })
  t.true(blocker.running())
  t.false(blocker.cancel())
  t.false(blocker.cancelled())
  t.is(await blocker.result(), 'blocker')
  t.false(blocker.running())
  t.false(blocker.cancel())
  // Cancelled before it even reached the Rust queue (same turn as submit).
  const early = busy.submit(() => 'never')
  t.true(early.cancel())
  t.is(await busy.submit(() => 'after').result(), 'after')
  await busy.shutdown()
})

serial('result() and exception() reject with TimeoutError when not done in time, and succeed later', async (t) => {
  const f = pool.submit(delayed<string>, 1_500, 'late')
  const started = performance.now()
  await t.throwsAsync(f.result({ timeoutMs: 50 }), { instanceOf: TimeoutError })
  t.true(performance.now() - started < 1_400, 'gave up before the task finished')
  await t.throwsAsync(f.exception({ timeoutMs: 0 }), { instanceOf: TimeoutError })
  t.false(f.done())
  t.is(await f.result({ timeoutMs: 10_000 }), 'late')
  t.is(await f.result({ timeoutMs: 0 }), 'late', 'a done future needs no time')
  await t.throwsAsync(f.result({ timeoutMs: -1 }), { instanceOf: RangeError, message: /options.timeoutMs/ })
})

serial('exception() resolves with the exception, or null after success', async (t) => {
  const bad = pool.submit(failing, 10, 'boom')
  const err = await bad.exception()
  t.is((err as Error).message, 'boom')
  await t.throwsAsync(bad.result(), { is: err as Error })
  t.is(await pool.submit(() => 0).exception(), null)
})

serial('wait ALL_COMPLETED returns when every future is done', async (t) => {
  const fs = [pool.submit(delayed<number>, 20, 1), pool.submit(delayed<number>, 80, 2)]
  const { done, notDone } = await wait(fs)
  t.is(done.size, 2)
  t.is(notDone.size, 0)
})

test('wait() of no futures returns at once, whatever returnWhen says (as CPython)', async (t) => {
  for (const returnWhen of ['FIRST_COMPLETED', 'FIRST_EXCEPTION', 'ALL_COMPLETED'] as const) {
    const { done, notDone } = await wait([], { returnWhen })
    t.is(done.size + notDone.size, 0)
    // With a limit too: it is not waited out.
    const started = performance.now()
    await wait([], { returnWhen, timeoutMs: 5_000 })
    t.true(performance.now() - started < 2_500, returnWhen)
  }
})

serial('wait FIRST_COMPLETED returns once one future is done', async (t) => {
  const fast = pool.submit(delayed<string>, 10, 'fast')
  const slow = pool.submit(delayed<string>, 2_000, 'slow')
  const { done, notDone } = await wait([fast, slow], { returnWhen: 'FIRST_COMPLETED' })
  t.deepEqual([...done], [fast])
  t.deepEqual([...notDone], [slow])
  t.is(await slow.result(), 'slow')
})

serial('wait FIRST_EXCEPTION returns on the first failure, or when all are done', async (t) => {
  const ok = pool.submit(delayed<number>, 10, 1)
  const bad = pool.submit(failing, 40, 'x')
  const slow = pool.submit(delayed<number>, 2_000, 3)
  const r = await wait([ok, bad, slow], { returnWhen: 'FIRST_EXCEPTION' })
  t.true(r.done.has(bad))
  t.true(r.notDone.has(slow))
  const r2 = await wait([pool.submit(() => 1), pool.submit(() => 2)], { returnWhen: 'FIRST_EXCEPTION' })
  t.is(r2.done.size, 2)
  await slow.result()
})

serial('wait with timeoutMs returns what is done when the time runs out', async (t) => {
  const slow = pool.submit(delayed<number>, 1_000, 1)
  const quick = pool.submit(() => 2)
  await quick.result()
  const { done, notDone } = await wait([slow, quick], { timeoutMs: 50 })
  t.deepEqual([...done], [quick])
  t.deepEqual([...notDone], [slow])
  await t.throwsAsync(wait([slow], { returnWhen: 'SOMETIMES' as any }), { instanceOf: RangeError, message: /options.returnWhen/ })
  await t.throwsAsync(wait([1 as any]), { instanceOf: TypeError, message: /fs\[0\] must be a Future/ })
  await slow.result()
})

serial('asCompleted yields done futures first, then the rest in completion order', async (t) => {
  const done = pool.submit(() => 'done')
  await done.result()
  const slow = pool.submit(delayed<string>, 300, 'slow')
  const fast = pool.submit(delayed<string>, 30, 'fast')
  const order: string[] = []
  for await (const f of asCompleted([slow, fast, done, fast])) order.push(await f.result())
  t.deepEqual(order, ['done', 'fast', 'slow'])
})

serial('asCompleted throws TimeoutError once timeoutMs have passed with futures unfinished', async (t) => {
  const slow = pool.submit(delayed<string>, 1_000, 'slow')
  const fast = pool.submit(delayed<string>, 10, 'fast')
  const got: string[] = []
  const err = await t.throwsAsync(
    (async () => {
      for await (const f of asCompleted([slow, fast], { timeoutMs: 200 })) got.push(await f.result())
    })(),
    { instanceOf: TimeoutError },
  )
  t.regex(err!.message, /1 \(of 2\) futures unfinished/)
  t.deepEqual(got, ['fast'])
  await slow.result()
})

serial('the error classes carry their names and hierarchy', (t) => {
  t.is(new CancelledError().name, 'CancelledError')
  t.is(new TimeoutError().name, 'TimeoutError')
  t.true(new CancelledError() instanceof Error)
})

// CPython Lib/test/test_concurrent_futures/test_future.py (FutureTests:
// test_set_running_or_notify_cancel, test_result_with_success,
// test_exception_with_success, test_set_result/set_exception twice,
// test_done_callback_*): a Future user code makes and settles.
test('a standalone Future: running, then set; InvalidStateError when set twice; cancel only before running', async (t) => {
  const f = new Future<number>()
  t.false(f.done())
  t.false(f.running())
  const seen: string[] = []
  f.addDoneCallback((done) => seen.push(`done ${done.done()}`))
  t.true(f.setRunningOrNotifyCancel())
  t.true(f.running())
  t.false(f.cancel(), 'a running future cannot be cancelled')
  t.throws(() => f.setRunningOrNotifyCancel(), { instanceOf: InvalidStateError })
  f.setResult(42)
  t.true(f.done())
  t.is(await f.result(), 42)
  t.is(await f.exception(), null)
  t.deepEqual(seen, ['done true'])
  t.throws(() => f.setResult(1), { instanceOf: InvalidStateError })
  t.throws(() => f.setException(new Error('late')), { instanceOf: InvalidStateError })

  const failed = new Future<number>()
  failed.setException(new Error('boom'))
  await t.throwsAsync(failed.result(), { message: 'boom' })

  const cancelled = new Future<number>()
  t.true(cancelled.cancel())
  t.false(cancelled.setRunningOrNotifyCancel(), 'the cancellation is noticed')
  // Once, as CPython's (a second call is an executor's bug: RuntimeError there).
  t.throws(() => cancelled.setRunningOrNotifyCancel(), { instanceOf: InvalidStateError, message: /noticed already/ })
  await t.throwsAsync(cancelled.result(), { instanceOf: CancelledError })
})

test('standalone Futures work with wait() and asCompleted(), next to an executor future', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  const mine = new Future<string>()
  const theirs = pool.submit(() => 'from a worker')
  setTimeout(() => mine.setResult('set by hand'), 30)
  const order: string[] = []
  for await (const f of asCompleted([mine, theirs], { timeoutMs: 5000 })) order.push(await f.result())
  t.deepEqual(order.sort(), ['from a worker', 'set by hand'])
  const pending = new Future<number>()
  const { done, notDone } = await wait([mine, pending], { timeoutMs: 20 })
  t.deepEqual([...done], [mine])
  t.deepEqual([...notDone], [pending])
  t.throws(() => theirs.setResult('x'), { instanceOf: InvalidStateError, message: /its executor settles it/ })
  await pool.shutdown()
})

// gevent raises a kill or a Timeout once, at the wait it interrupts.
test('a kill or Timeout that interrupts a wait for Futures is raised there once, not again at the next wait', async (t) => {
  const waits: Record<string, () => Promise<unknown>> = {
    'result()': () => new Future().result(),
    'exception()': () => new Future().exception(),
    'wait()': () => wait([new Future()]),
    asCompleted: async () => {
      for await (const _ of asCompleted([new Future()]));
    },
  }
  for (const [name, first] of Object.entries(waits)) {
    for (const how of ['kill', 'timeout']) {
      const events: string[] = []
      const g = spawn(async () => {
        const timeout = how === 'timeout' ? Timeout.startNew(20) : undefined
        try {
          await first()
        } catch (err) {
          events.push((err as Error).name)
        } finally {
          timeout?.cancel()
        }
        await sleep(10)
        events.push('next wait ok')
      })
      if (how === 'kill') {
        await sleep(20)
        await g.kill()
      } else {
        await g.join()
      }
      t.deepEqual(events, [how === 'kill' ? GreenletExit.name : Timeout.name, 'next wait ok'], `${how} in ${name}`)
    }
  }
})


// Python's wait() costs O(n) over n futures; rescanning them all as each
// finishes cost O(n^2) (7 s for 40,000), blocking the event loop.
test('wait() and asCompleted() look at each future a bounded number of times, however many there are', async (t) => {
  let looks = 0
  class Counted<T> extends Future<T> {
    override done(): boolean {
      looks++
      return super.done()
    }
  }
  const n = 2000
  for (const returnWhen of ['ALL_COMPLETED', 'FIRST_EXCEPTION'] as const) {
    const fs = Array.from({ length: n }, () => new Counted<number>())
    looks = 0
    const waited = wait(fs, { returnWhen })
    await sleep(1)
    fs.forEach((f, i) => f.setResult(i))
    const { done, notDone } = await waited
    t.is(done.size, n)
    t.is(notDone.size, 0)
    t.true(looks < 10 * n, `${returnWhen}: ${looks} looks at ${n} futures`)
  }
  const fs = Array.from({ length: n }, () => new Counted<number>())
  looks = 0
  let yielded = 0
  const iterating = (async () => {
    for await (const _ of asCompleted(fs)) yielded++
  })()
  await sleep(1)
  fs.forEach((f, i) => f.setResult(i))
  await iterating
  t.is(yielded, n)
  t.true(looks < 10 * n, `asCompleted: ${looks} looks`)
})

test('a kill reaches the next wait of a greenlet whose Future.result() lost a race and was left pending', async (t) => {
  for (const rival of ['sleep', 'future'] as const) {
    const losing = new Future<string>()
    const winning = new Future<string>()
    const events: string[] = []
    const g = spawn(async () => {
      try {
        const won = rival === 'sleep' ? sleep(5).then(() => 'slept') : winning.result()
        events.push(`got ${await Promise.race([losing.result(), won])}`)
        // A foreign await: the kill comes here, while the lost result() still waits.
        await new Promise((resolve) => setTimeout(resolve, 40))
        await sleep(2000)
        events.push('slept on')
      } catch (err) {
        events.push(`raised ${(err as Error).name}`)
      }
    })
    await sleep(1)
    if (rival === 'future') winning.setResult('won')
    await sleep(15)
    await g.kill(new GreenletExit(), { timeoutMs: 1000 })
    t.deepEqual(events, [`got ${rival === 'sleep' ? 'slept' : 'won'}`, 'raised GreenletExit'], rival)
    losing.cancel()
  }
})

test('a kill reaches a greenlet that loops on Future.result() of futures settled at once, between two of those waits', async (t) => {
  let iterations = 0
  const g = spawn(async () => {
    for (;;) {
      const f = new Future<number>()
      setImmediate(() => f.setResult(iterations))
      await f.result()
      iterations++
    }
  })
  // It loops for a while first (under load 30 ms may not see one round).
  while (iterations < 3) await sleep(1)
  const killed = await Promise.race([g.kill().then(() => 'killed'), new Promise((resolve) => setTimeout(resolve, 3000, 'kill() pending after 3 s')).then(String)])
  t.is(killed, 'killed')
  t.true(g.dead)
  t.true(g.successful(), 'it died of the GreenletExit')
})

test('after a Future.result() lost a race and was left pending, a kill at a later lone Future.result() is raised there once', async (t) => {
  const losing = new Future<string>()
  const later = new Future<string>()
  const events: string[] = []
  const g = spawn(async () => {
    events.push(`got ${await Promise.race([losing.result(), sleep(5).then(() => 'slept')])}`)
    try {
      await later.result()
    } catch (err) {
      events.push(`raised ${(err as Error).name}`)
    } finally {
      // Cleanup that waits: the kill was raised above, once.
      await sleep(1)
      events.push('cleaned up')
    }
  })
  // Once past the race it is in later.result() (under load a fixed sleep may end first).
  while (events.length === 0) await sleep(1)
  await g.kill(new GreenletExit(), { timeoutMs: 3000 })
  t.deepEqual(events, ['got slept', 'raised GreenletExit', 'cleaned up'])
  losing.cancel()
  later.cancel()
})
