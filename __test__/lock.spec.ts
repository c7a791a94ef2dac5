/** Semaphores and locks, the same suite in the async and the sync mode (see _modes.ts). */
import test from 'ava'

import { RLock, Semaphore, sleep, spawn } from '../index'
import * as sync from '../sync'
import { both } from './_modes'

both('Semaphore(2) admits two holders; the third waits until a release', function* (t, m) {
  const s = new m.Semaphore(2)
  t.is(s.value, 2)
  t.true(yield s.acquire())
  t.true(yield s.acquire())
  t.true(s.locked())
  let third = false
  const g = m.go(function* () {
    third = yield s.acquire()
  })
  yield m.sleep(10)
  t.false(third)
  s.release()
  yield g.join()
  t.true(third)
  t.is(s.value, 0)
})

both('acquire() waiters are served in FIFO order', function* (t, m) {
  const s = new m.Semaphore(0)
  const order: string[] = []
  const gs = ['a', 'b', 'c'].map((name) =>
    m.go(function* () {
      yield s.acquire()
      order.push(name)
    }),
  )
  yield m.sleep(0)
  s.release()
  s.release()
  s.release()
  yield m.joinall(gs)
  t.deepEqual(order, ['a', 'b', 'c'])
})

both('a release hands the permit to the waiter: a later acquire cannot barge in', function* (t, m) {
  const s = new m.Semaphore(1)
  yield s.acquire()
  const waiter = m.spawn(() => s.acquire())
  yield m.sleep(0)
  s.release()
  t.false(yield s.acquire({ blocking: false }))
  t.true(yield waiter.get())
  t.true(s.locked())
})

both('acquire() returns false when timeoutMs expires, and at once with blocking: false', function* (t, m) {
  const s = new m.Semaphore(0)
  const start = Date.now()
  t.false(yield s.acquire({ timeoutMs: 30 }))
  t.true(Date.now() - start >= 25, `gave up after ${Date.now() - start} ms`)
  t.false(yield s.acquire({ blocking: false }))
  s.release()
  t.true(yield s.acquire({ blocking: false }))
})

both('an acquire() whose timer fires in the turn the permit is handed to it keeps the permit', function* (t, m) {
  const lock = new m.Lock()
  yield lock.acquire()
  // The waiter's 0 ms timer and the releaser's yield end in the same hub
  // turn, the releaser first: it hands the permit over after the timer fired.
  const waiter = m.spawn(() => lock.acquire({ timeoutMs: 0 }))
  const releaser = m.go(function* () {
    yield m.sleep(0)
    lock.release()
  })
  yield releaser.join()
  t.true(yield waiter.get())
  t.true(lock.locked())
  lock.release()
  t.false(lock.locked())
})

both('tryAcquire() takes a free permit without waiting and never jumps the line', function* (t, m) {
  const s = new m.Semaphore(1)
  t.true(s.tryAcquire())
  t.false(s.tryAcquire())
  const waiter = m.spawn(() => s.acquire())
  yield m.sleep(0)
  s.release()
  t.false(s.tryAcquire(), 'the released permit belongs to the waiter')
  t.true(yield waiter.get())
})

both('RLock.tryAcquire() takes a free lock, or one more level of its own, without waiting; never one another greenlet holds', function* (t, m) {
  const lock = new m.RLock()
  t.true(lock.tryAcquire())
  t.true(lock.tryAcquire(), 'reentrant')
  const other = m.spawn(() => lock.tryAcquire())
  t.false(yield other.get())
  lock.release()
  t.true(lock.locked(), 'one level left')
  lock.release()
  t.false(lock.locked())
  const holder = m.spawn(() => lock.tryAcquire())
  t.true(yield holder.get())
  t.false(lock.tryAcquire(), 'held by the (dead) greenlet that took it')
})

both('BoundedSemaphore throws when released more often than acquired', function* (t, m) {
  const s = new m.BoundedSemaphore(2)
  yield s.acquire()
  s.release()
  t.throws(() => s.release(), { message: /BoundedSemaphore released more times than it was acquired/ })
  t.is(s.value, 2)
  const plain = new m.Semaphore(1)
  plain.release()
  t.is(plain.value, 2)
})

both('a release past the bound throws while the permit released before waits in a woken waiter, as gevent counts it until taken', function* (t, m) {
  const lock = new m.Lock()
  yield lock.acquire()
  let inside = 0
  let maxInside = 0
  const gs = ['b', 'c'].map(() =>
    m.go(function* () {
      yield lock.acquire()
      maxInside = Math.max(maxInside, ++inside)
      yield m.sleep(5)
      inside--
      lock.release()
    }),
  )
  yield m.sleep(1)
  lock.release()
  // b holds the lock now, though it has not run yet: a second release is one too many.
  t.throws(() => lock.release(), { message: /Lock released more times than it was acquired/ })
  yield m.joinall(gs, { raiseError: true })
  t.is(maxInside, 1)
  t.false(lock.locked())
  const s = new m.BoundedSemaphore(1)
  yield s.acquire()
  const waiter = m.spawn(() => s.acquire())
  yield m.sleep(1)
  s.release()
  t.throws(() => s.release(), { message: /BoundedSemaphore released more times than it was acquired/ })
  t.true(yield waiter.get())
  s.release()
  t.is(s.value, 1)
})

both('Lock keeps a critical section with waits inside it to one greenlet at a time', function* (t, m) {
  const lock = new m.Lock()
  let inside = 0
  let maxInside = 0
  const gs = Array.from({ length: 5 }, () =>
    m.go(function* () {
      for (let i = 0; i < 3; i++) {
        yield lock.acquire()
        try {
          maxInside = Math.max(maxInside, ++inside)
          yield m.sleep(1)
          inside--
        } finally {
          lock.release()
        }
      }
    }),
  )
  yield m.joinall(gs, { raiseError: true })
  t.is(maxInside, 1)
  t.false(lock.locked())
  t.throws(() => lock.release(), { message: /Lock released more times than it was acquired/ })
})

both('RLock can be acquired again by its holder and is released after as many releases', function* (t, m) {
  const r = new m.RLock()
  const holder = m.go(function* () {
    t.true(yield r.acquire())
    t.true(yield r.acquire())
    yield m.sleep(10)
    r.release()
    yield m.sleep(10)
    r.release()
  })
  yield m.sleep(0)
  let otherGotIt = false
  const other = m.go(function* () {
    yield r.acquire()
    otherGotIt = true
    r.release()
  })
  yield m.sleep(15)
  t.false(otherGotIt, 'one release of two must not free the lock')
  yield m.joinall([holder, other])
  t.true(otherGotIt)
  t.false(r.locked())
})

both('RLock.release() throws unless the current greenlet holds it', function* (t, m) {
  const r = new m.RLock()
  t.throws(() => r.release(), { message: /does not hold/ })
  const checked = new m.Event()
  const holder = m.go(function* () {
    yield r.acquire()
    yield checked.wait()
    r.release()
  })
  yield m.sleep(0)
  const intruder = m.spawn(() => r.release())
  yield* m.throws(t, () => intruder.get(), { message: /does not hold/ })
  t.false(yield r.acquire({ blocking: false }))
  checked.set()
  yield holder.join()
  t.true(yield r.acquire({ blocking: false }))
  r.release()
})

both('RLock passes to waiting greenlets in FIFO order', function* (t, m) {
  const r = new m.RLock()
  yield r.acquire()
  const order: string[] = []
  const gs = ['a', 'b', 'c'].map((name) =>
    m.go(function* () {
      yield r.acquire()
      order.push(name)
      yield m.sleep(1)
      r.release()
    }),
  )
  yield m.sleep(0)
  r.release()
  yield m.joinall(gs)
  t.deepEqual(order, ['a', 'b', 'c'])
})

both('killing a greenlet waiting in acquire() raises GreenletExit in it and the lock still works', function* (t, m) {
  const lock = new m.Lock()
  yield lock.acquire()
  let caught: unknown
  const g = m.go(function* () {
    try {
      yield lock.acquire()
    } catch (err) {
      caught = err
    }
  })
  yield m.sleep(0)
  yield g.kill()
  t.true(caught instanceof m.GreenletExit)
  lock.release()
  t.true(yield lock.acquire({ timeoutMs: 1_000 }))
  lock.release()
})

both('a permit handed to a waiter killed before it ran passes to the next waiter', function* (t, m) {
  const s = new m.Semaphore(0)
  const victim = m.spawn(() => s.acquire())
  const next = m.spawn(() => s.acquire())
  yield m.sleep(0)
  s.release()
  yield victim.kill()
  t.true(yield next.get())
  t.is(s.value, 0)

  // With nobody else waiting, the permit goes back to the counter.
  const lone = m.spawn(() => s.acquire())
  yield m.sleep(0)
  s.release()
  yield lone.kill()
  t.is(s.value, 1)
})

both('an RLock handed to a waiter killed before it ran passes to the next waiter', function* (t, m) {
  const r = new m.RLock()
  yield r.acquire()
  const victim = m.spawn(() => r.acquire())
  const next = m.go(function* () {
    yield r.acquire()
    r.release()
    return 'got it'
  })
  yield m.sleep(0)
  r.release()
  yield victim.kill()
  t.is(yield next.get(), 'got it')
  t.false(r.locked())
})

both('guard() holds the lock until the end of a using block', function* (t, m) {
  const lock = new m.Lock()
  {
    using _ = yield lock.guard()
    t.true(lock.locked())
  }
  t.false(lock.locked())
  const r = new m.RLock()
  try {
    using _outer = yield r.guard()
    using _inner = yield r.guard()
    throw new Error('leaves the block')
  } catch {
    t.false(r.locked())
  }
})

both("guard({ timeoutMs }) raises the mode's Timeout if not acquired in time; disposing twice releases once", function* (t, m) {
  const s = new m.Semaphore(2)
  const first: Disposable = yield s.guard()
  const g = m.go(function* () {
    yield s.acquire()
    return yield s.guard({ timeoutMs: 10 })
  })
  yield* m.throws(t, () => g.get(), { instanceOf: m.Timeout })
  t.is(s.value, 0)
  first[Symbol.dispose]()
  first[Symbol.dispose]()
  t.is(s.value, 1)
})

both('bad arguments raise errors that name them', function* (t, m) {
  t.throws(() => new m.Semaphore(-1), { instanceOf: RangeError, message: /value must be a non-negative integer/ })
  t.throws(() => new m.Semaphore('2' as any), { instanceOf: TypeError, message: /value/ })
  const s = new m.Semaphore(0)
  yield* m.throws(t, () => s.acquire({ timeoutMs: -1 }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
  yield* m.throws(t, () => s.guard(7 as any), { instanceOf: TypeError, message: /options must be an options object/ })
})

// Mode-specific behaviour.

test.serial('async: locks work outside any greenlet, where all code counts as one RLock owner', async (t) => {
  const s = new Semaphore(0)
  spawn(async () => {
    await sleep(5)
    s.release()
  })
  t.true(await s.acquire({ timeoutMs: 5_000 }))
  const r = new RLock()
  t.true(await r.acquire())
  t.true(await r.acquire({ blocking: false }), 'reentrant for the code outside greenlets')
  t.false(await spawn(() => r.acquire({ blocking: false })).get(), 'a greenlet is another owner')
  r.release()
  r.release()
  t.false(r.locked())
})

test.serial('sync: `using _ = lock.guard()` blocks until acquired and releases at the end of the block', async (t) => {
  await sync.run(() => {
    const lock = new sync.Lock()
    const order: string[] = []
    const other = sync.spawn(() => {
      using _ = lock.guard()
      order.push('other in')
      sync.sleep(10)
      order.push('other out')
    })
    sync.sleep(0)
    t.true(lock.locked())
    {
      using _ = lock.guard()
      order.push('main in')
      t.true(lock.locked())
    }
    t.false(lock.locked())
    other.get()
    t.deepEqual(order, ['other in', 'other out', 'main in'])

    const r = new sync.RLock()
    {
      using _outer = r.guard()
      using _inner = r.guard({ timeoutMs: 0 })
      t.true(r.locked())
    }
    t.false(r.locked())
  })
})

test.serial('sync: a blocking acquire outside sync greenlets throws an Error naming it; tryAcquire and release work anywhere', async (t) => {
  const s = new sync.Semaphore(1)
  t.true(s.acquire(), 'a free permit needs no wait')
  t.throws(() => s.acquire(), { message: /Semaphore\.acquire\(\) blocks, and only code running in a sync greenlet can block/ })
  t.throws(() => s.guard(), { message: /Semaphore\.guard\(\) blocks/ })
  t.false(s.acquire({ blocking: false }))
  t.false(s.tryAcquire())
  s.release()
  t.is(s.value, 1, 'the refused waits left nothing behind')
  t.true(s.tryAcquire())
  s.release()

  const r = new sync.RLock()
  const holder = sync.spawn(() => {
    r.acquire()
    sync.sleep(10_000)
  })
  await sync.run(() => sync.sleep(0))
  t.throws(() => r.acquire(), { message: /RLock\.acquire\(\) blocks/ })
  t.throws(() => r.guard(), { message: /RLock\.guard\(\) blocks/ })
  t.false(r.acquire({ blocking: false }))
  t.throws(() => r.release(), { message: /does not hold/ })
  await sync.run(() => holder.kill())
})

both('acquire({ signal }) and guard({ signal }) stop waiting when the signal aborts; the permit goes to the next waiter', function* (t, m) {
  const lock = new m.Lock()
  t.true(yield lock.acquire())
  const controller = new AbortController()
  const reason = new Error('gave up')
  const aborted = m.spawn(() => lock.acquire({ signal: controller.signal }))
  const guarded = m.spawn(() => lock.guard({ signal: controller.signal }))
  const next = m.spawn(() => lock.acquire())
  yield m.sleep(0)
  controller.abort(reason)
  t.is(yield* m.throws(t, () => aborted.get()), reason)
  t.is(yield* m.throws(t, () => guarded.get()), reason)
  lock.release()
  t.true(yield next.get())
  t.true(lock.locked(), 'held by the next waiter, not by the aborted ones')
  lock.release()
  t.false(lock.locked())
})
