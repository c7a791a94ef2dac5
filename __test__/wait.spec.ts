/** waitReady (gevent.wait) and iwait, the same suite in the async and the sync mode (see _modes.ts). */
import test from 'ava'

import { ThreadPoolExecutor, iwait, waitReady } from '../index'
import * as sync from '../sync'
import { both } from './_modes'

// Restates gevent's src/gevent/tests/test__event.py TestWait (and its count / no-timeout variants).
both('waitReady() over Events and AsyncResults returns them as they are set, up to count, within timeoutMs', function* (t, m) {
  const N = 5
  const period = 4
  for (const [count, timeoutMs] of [
    [undefined, 1_000],
    [undefined, undefined],
    [1, 1_000],
    [2, 1_000],
  ] as const) {
    const events = Array.from({ length: N }, () => new m.Event())
    const asyncs = Array.from({ length: N }, () => new m.AsyncResult<number>())
    const toSet = { events: [...events], asyncs: [...asyncs] }
    const sender = m.go(function* () {
      while (toSet.events.length > 0 || toSet.asyncs.length > 0) {
        yield m.sleep(period)
        toSet.events.pop()?.set()
        yield m.sleep(period)
        toSet.asyncs.pop()?.set(1)
      }
    })
    const results: unknown[] = yield m.waitReady([...events, ...asyncs], { count, timeoutMs })
    if (count === undefined) {
      t.true(sender.dead, 'the sender had finished')
      t.is(results.length, 2 * N)
    } else {
      t.false(sender.dead, 'it returned before the sender finished')
      t.is(results.length, count)
      yield sender.kill()
    }
    // Those set first come first: the last Event, then the last AsyncResult...
    t.is(results[0], events[N - 1])
    if (results.length > 1) t.is(results[1], asyncs[N - 1])
  }
})

// Restates gevent's src/gevent/tests/test__event.py TestGeventWaitOnEvent.test_set_during_wait.
both('waitReady() on an Event that was set and cleared waits for the next set()', function* (t, m) {
  const event = new m.Event()
  const waiter = m.go(function* () {
    const setter = m.spawn(() => event.set())
    t.true(yield event.wait())
    t.true(event.isSet())
    yield setter.join()
    event.clear()
    t.false(event.isSet())
    const ready: unknown[] = yield m.waitReady([event], { timeoutMs: 10 })
    t.false(event.isSet())
    t.deepEqual(ready, [])
  })
  yield waiter.get()
})

// Restates gevent's iwait tests (src/gevent/tests/test__iwait.py test_noiter, and the test that
// iwait copes with greenlets finishing while the caller switches away between results).
both('iwait() yields greenlets, Events and AsyncResults as they become ready, those ready already first', function* (t, m) {
  const worker = (i: number | string): number | string => {
    if (i === 2) throw new RangeError(`worker ${i} fails`)
    return i
  }
  const done = m.spawn(worker, 'done')
  yield done.join()
  const workers = [0, 1, 2].map((i) => m.spawn(worker, i))
  workers[2].linkException(() => {}) // looked at: not reported on stderr
  workers.push(done)
  let finished = 0
  const order: unknown[] = []
  const it = m.iwait(workers)
  for (let step = yield it.next(); !step.done; step = yield it.next()) {
    finished++
    order.push(step.value)
    yield m.sleep(5) // the caller switches away between results
  }
  t.is(finished, 4)
  t.is(order[0], done, 'the greenlet finished at the call comes first')
  t.true(workers[2].exception instanceof RangeError, 'a failure is not raised by iwait: look at the greenlet')

  const e1 = new m.Event()
  const e2 = new m.Event()
  const r = new m.AsyncResult()
  // Far apart, so that a loaded machine does not deliver them in one batch.
  const g = m.spawn(() => m.sleep(80))
  m.spawn(
    m.fn(function* () {
      yield m.sleep(1)
      e2.set()
      yield m.sleep(3)
      r.setException(new Error('an exception makes it ready too'))
    }),
  )
  const mixed = m.iwait([e1, e2, r, g])
  t.is((yield mixed.next()).value, e2)
  t.is((yield mixed.next()).value, r)
  t.is((yield mixed.next()).value, g)
  // e1 is never set: leaving early stops watching.
  yield mixed.return(undefined)
  t.deepEqual(yield mixed.next(), { done: true, value: undefined })
})

both('iwait({ timeoutMs }) ends when the time is up; count: 0 waits for nothing', function* (t, m) {
  const never = new m.Event()
  const soon = new m.Event()
  m.spawn(
    m.fn(function* () {
      yield m.sleep(1)
      soon.set()
    }),
  )
  const start = Date.now()
  const got: unknown[] = []
  const it = m.iwait([never, soon], { timeoutMs: 30 })
  for (let step = yield it.next(); !step.done; step = yield it.next()) got.push(step.value)
  t.deepEqual(got, [soon])
  t.true(Date.now() - start >= 25, `gave up after ${Date.now() - start} ms`)
  t.deepEqual(yield m.waitReady([never], { count: 0 }), [])
  t.deepEqual(yield m.waitReady([]), [])
})

both('waitReady() and iwait() reject bad arguments with errors that name them', function* (t, m) {
  yield* m.throws(t, () => m.waitReady(42 as any), { instanceOf: TypeError, message: /objects must be an iterable/ })
  yield* m.throws(t, () => m.waitReady([new m.Event(), {} as any]), { instanceOf: TypeError, message: /objects\[1\] must be a Greenlet/ })
  yield* m.throws(t, () => m.waitReady([], { count: -1 }), { instanceOf: RangeError, message: /options\.count/ })
  yield* m.throws(t, () => m.waitReady([], { timeoutMs: -1 }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
  yield* m.throws(t, () => m.iwait([new m.Event()], { count: 1.5 }).next(), { instanceOf: RangeError, message: /options\.count/ })
})

both('waitReady({ signal }) stops waiting when the signal aborts', function* (t, m) {
  const controller = new AbortController()
  const reason = new Error('stop')
  const waiting = m.spawn(() => m.waitReady([new m.Event()], { signal: controller.signal }))
  yield m.sleep(0)
  controller.abort(reason)
  t.is(yield* m.throws(t, () => waiting.get()), reason)
})

both('iwait({ signal }) fails the next() after an abort that came while the caller was busy between results', function* (t, m) {
  const a = new m.Event()
  const b = new m.Event()
  a.set()
  const controller = new AbortController()
  const reason = new Error('stop')
  const it = m.iwait([a, b], { signal: controller.signal })
  const first = yield it.next()
  t.is(first.value, a)
  controller.abort(reason) // no next() is waiting now
  yield m.sleep(1)
  t.is(yield* m.throws(t, () => it.next()), reason)
})

test.serial('async: waitReady() and iwait() watch executor Futures too', async (t) => {
  await using pool = new ThreadPoolExecutor({ maxWorkers: 2 })
  const slow = pool.submit((ms: number) => new Promise((resolve) => setTimeout(() => resolve(ms), ms)), 50)
  const fast = pool.submit((x: number) => x * 2, 21)
  const ready = await waitReady([slow, fast], { count: 1 })
  t.deepEqual(ready, [fast])
  const order = []
  for await (const f of iwait([slow, fast])) order.push(f)
  t.deepEqual(order, [fast, slow])
  t.is(await slow.result(), 50)
})

test.serial('sync: waitReady() returns at once outside greenlets when nothing needs waiting, and throws when it would block', async (t) => {
  const e = new sync.Event()
  e.set()
  t.deepEqual(sync.waitReady([e]), [e])
  t.throws(() => sync.waitReady([new sync.Event()]), { message: /waitReady\(\) blocks/ })
  t.throws(() => sync.iwait(5 as any), { instanceOf: TypeError, message: /objects must be an iterable/ })
  // An async greenlet is waitable from sync code, and the reverse.
  const g = sync.spawn(() => {
    sync.sleep(5)
    return 'sync done'
  })
  t.deepEqual(await waitReady([g]), [g])
  t.is(g.value, 'sync done')
})
