/** Event and AsyncResult, the same suite in the async and the sync mode (see _modes.ts). */
import test from 'ava'

import { Event, sleep, spawn } from '../index'
import * as sync from '../sync'
import { both } from './_modes'

both('Event.wait() returns true at once when the flag is already set', function* (t, m) {
  const e = new m.Event()
  t.false(e.isSet())
  e.set()
  t.true(e.isSet())
  t.true(yield e.wait())
  t.true(yield e.wait({ timeoutMs: 0 }))
})

both('Event.set() wakes every waiter, in the order they began waiting', function* (t, m) {
  const e = new m.Event()
  const woke: string[] = []
  const gs = ['a', 'b', 'c'].map((name) =>
    m.go(function* () {
      t.true(yield e.wait())
      woke.push(name)
    }),
  )
  yield m.sleep(0)
  t.deepEqual(woke, [])
  e.set()
  for (const g of gs) yield g.get()
  t.deepEqual(woke, ['a', 'b', 'c'])
})

both('Event.wait() returns false when timeoutMs expires before set()', function* (t, m) {
  const e = new m.Event()
  const start = Date.now()
  t.false(yield e.wait({ timeoutMs: 50 }))
  t.true(Date.now() - start >= 45, `gave up after ${Date.now() - start} ms`)
  t.false(yield e.wait({ timeoutMs: 0 }))
})

both('a waiter woken by set() returns true even if clear() runs before it does', function* (t, m) {
  const e = new m.Event()
  const g = m.spawn(() => e.wait())
  yield m.sleep(0)
  e.set()
  e.clear()
  t.true(yield g.get())
  t.false(e.isSet())
})

both('after clear(), wait() blocks until the next set()', function* (t, m) {
  const e = new m.Event()
  e.set()
  e.clear()
  t.false(yield e.wait({ timeoutMs: 10 }))
  const g = m.spawn(() => e.wait())
  yield m.sleep(5)
  t.false(g.dead)
  e.set()
  t.true(yield g.get())
})

both('killing a greenlet waiting on an Event raises GreenletExit in its wait; the others still wake', function* (t, m) {
  const e = new m.Event()
  let caught: unknown
  const victim = m.go(function* () {
    try {
      yield e.wait()
    } catch (err) {
      caught = err
      throw err
    }
  })
  const survivor = m.spawn(() => e.wait({ timeoutMs: 5_000 }))
  yield m.sleep(0)
  yield victim.kill()
  t.true(caught instanceof m.GreenletExit)
  e.set()
  t.true(yield survivor.get())
})

// What set() handed cannot go back, so the wait it ended stands (as in gevent, where the kill is a callback
// behind the wake-up): the kill is raised at the next wait.
both('a greenlet killed right after set() woke it, before it ran, returns from its wait and raises the kill at the next one', function* (t, m) {
  const e = new m.Event()
  const seen: unknown[] = []
  const victim = m.go(function* () {
    seen.push(yield e.wait())
    try {
      yield m.sleep(0)
      seen.push('not killed')
    } catch (err) {
      seen.push(err)
    }
  })
  yield m.sleep(0)
  e.set()
  yield victim.kill()
  t.is(seen.length, 2)
  t.is(seen[0], true)
  t.true(seen[1] instanceof m.GreenletExit)
})

both('Event.wait() rejects bad options with errors that name them', function* (t, m) {
  const e = new m.Event()
  yield* m.throws(t, () => e.wait({ timeoutMs: -1 }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
  yield* m.throws(t, () => e.wait({ timeoutMs: 'soon' as any }), { instanceOf: TypeError, message: /options\.timeoutMs/ })
  yield* m.throws(t, () => e.wait(5 as any), { instanceOf: TypeError, message: /options must be an options object/ })
})

both('AsyncResult.get() waits for set() and returns the value, for every waiter', function* (t, m) {
  const r = new m.AsyncResult<number>()
  const gs = [m.spawn(() => r.get()), m.spawn(() => r.get())]
  yield m.sleep(0)
  t.false(r.ready())
  r.set(42)
  t.deepEqual(yield m.all(gs.map((g) => g.get())), [42, 42])
  t.is(yield r.get(), 42)
})

both('AsyncResult.get() raises the exception given to setException()', function* (t, m) {
  const r = new m.AsyncResult<number>()
  const boom = new Error('boom')
  const g = m.spawn(() => r.get())
  yield m.sleep(0)
  r.setException(boom)
  t.is(yield* m.throws(t, () => g.get()), boom)
  t.is(yield* m.throws(t, () => r.get()), boom)
})

both("AsyncResult.get() raises the mode's Timeout when nothing is set in time, and at once with block: false", function* (t, m) {
  const r = new m.AsyncResult()
  yield* m.throws(t, () => r.get({ timeoutMs: 10 }), { instanceOf: m.Timeout })
  yield* m.throws(t, () => r.get({ block: false }), { instanceOf: m.Timeout, message: /not ready/ })
  r.set('late')
  t.is(yield r.get({ block: false }), 'late')
})

both('ready(), successful(), value and exception describe the result; a later set replaces it', function* (t, m) {
  const r = new m.AsyncResult<string>()
  t.false(r.ready())
  t.false(r.successful())
  t.is(r.value, undefined)
  r.set('v')
  t.true(r.ready())
  t.true(r.successful())
  t.is(r.value, 'v')
  t.is(r.exception, undefined)
  const err = new Error('e')
  r.setException(err)
  t.true(r.ready())
  t.false(r.successful())
  t.is(r.value, undefined)
  t.is(r.exception, err)
})

both('AsyncResult.callback as a link callback copies a greenlet value or exception', function* (t, m) {
  const ok = new m.AsyncResult<number>()
  m.spawn(() => 7).link(ok.callback)
  t.is(yield ok.get({ timeoutMs: 5_000 }), 7)

  const failed = new m.AsyncResult<number>()
  const boom = new Error('boom')
  m.spawn(() => {
    throw boom
  }).link(failed.callback)
  t.is(yield* m.throws(t, () => failed.get({ timeoutMs: 5_000 })), boom)

  const copy = new m.AsyncResult<number>()
  copy.callback(ok)
  t.is(copy.value, 7)
})

both('AsyncResult.wait() returns true once set, false on timeout, and never raises the exception', function* (t, m) {
  const r = new m.AsyncResult()
  t.false(yield r.wait({ timeoutMs: 5 }))
  const g = m.spawn(() => r.wait())
  yield m.sleep(0)
  r.setException(new Error('ignored by wait'))
  t.true(yield g.get())
  t.true(yield r.wait())
})

both('killing a greenlet blocked in AsyncResult.get() raises the kill exception in it', function* (t, m) {
  const r = new m.AsyncResult()
  let caught: unknown
  const g = m.go(function* () {
    try {
      yield r.get()
    } catch (err) {
      caught = err
    }
  })
  yield m.sleep(0)
  const reason = new Error('stop waiting')
  yield g.kill(reason)
  t.is(caught, reason)
  r.set(1)
  t.is(yield r.get(), 1)
})

// Mode-specific behaviour.

test.serial('async: Event.wait() works outside any greenlet', async (t) => {
  const e = new Event()
  spawn(async () => {
    await sleep(5)
    e.set()
  })
  t.true(await e.wait({ timeoutMs: 5_000 }))
})

test.serial('sync: a blocking wait outside sync greenlets throws a clear Error; non-blocking calls work anywhere', async (t) => {
  const e = new sync.Event()
  t.throws(() => e.wait(), { message: /Event\.wait\(\) blocks, and only code running in a sync greenlet can block/ })
  e.set()
  t.true(e.wait())
  const q = new sync.Queue<number>()
  q.putNowait(1)
  t.is(q.get(), 1)
  t.throws(() => q.get(), { message: /Queue\.get\(\) blocks/ })
})

test.serial('sync: a sync greenlet wakes an async greenlet through an async Event, and the reverse', async (t) => {
  const fromSync = new Event()
  const fromAsync = new sync.Event()
  const asyncSide = spawn(async () => {
    await fromSync.wait()
    fromAsync.set()
    return 'async woke'
  })
  const syncSide = sync.spawn(() => {
    sync.sleep(5)
    fromSync.set()
    return fromAsync.wait({ timeoutMs: 5_000 })
  })
  t.is(await asyncSide.get(), 'async woke')
  t.true(await sync.run(() => syncSide.get()))
})

both('wait({ signal }) and get({ signal }) stop waiting when the signal aborts', function* (t, m) {
  const e = new m.Event()
  const r = new m.AsyncResult<number>()
  const controller = new AbortController()
  const reason = new Error('stop')
  const waits = [m.spawn(() => e.wait({ signal: controller.signal })), m.spawn(() => r.get({ signal: controller.signal }))]
  const other = m.spawn(() => e.wait())
  yield m.sleep(0)
  controller.abort(reason)
  for (const g of waits) t.is(yield* m.throws(t, () => g.get()), reason)
  t.false(other.dead)
  e.set()
  t.true(yield other.get())
  yield* m.throws(t, () => e.wait({ signal: controller.signal }), { message: /stop/ })
})

// Restates gevent's src/gevent/tests/test__event.py TestEventBasics.test_wait_while_notifying.
both('a wait() that starts while set() is still notifying resumes after the waiters already being notified', function* (t, m) {
  const e = new m.Event()
  const results: number[] = []
  const waitThenAppend = m.fn(function* (n: number) {
    t.true(yield e.wait())
    results.push(n)
  })
  const gs = [m.spawn(waitThenAppend, 1), m.spawn(waitThenAppend, 2)]
  yield m.sleep(0)
  let looped = false
  setImmediate(() => {
    looped = true
  })
  e.set()
  yield waitThenAppend(3)
  t.deepEqual(results, [1, 2, 3])
  t.false(looped, 'no turn of the event loop was needed')
  yield m.joinall(gs)
})

// gevent's AbstractLinkable serves AsyncResult too: src/gevent/tests/test__event.py
// (TestAsyncResult; the notify order of test_wait_while_notifying).
both('AsyncResult: a get() that starts while set() is still notifying resumes after the waiters already being notified', function* (t, m) {
  const r = new m.AsyncResult<string>()
  const results: string[] = []
  const getThenAppend = m.fn(function* (n: number) {
    results.push(`${n}:${yield r.get()}`)
  })
  const gs = [m.spawn(getThenAppend, 1), m.spawn(getThenAppend, 2)]
  yield m.sleep(0)
  let looped = false
  setImmediate(() => {
    looped = true
  })
  r.set('v')
  yield getThenAppend(3)
  t.deepEqual(results, ['1:v', '2:v', '3:v'])
  t.false(looped, 'no turn of the event loop was needed')
  yield m.joinall(gs)
})
