import test from 'ava'

import { GreenletExit, Timeout, joinall, sleep, spawn } from '../index'
import { BoundedSemaphore, Event, Lock, RLock, Semaphore } from '../index'

// The hub is process-wide: ordering tests must not share turns with other tests.
const serial = test.serial

serial('Semaphore(2) admits two holders; the third waits until a release', async (t) => {
  const s = new Semaphore(2)
  t.is(s.value, 2)
  t.true(await s.acquire())
  t.true(await s.acquire())
  t.true(s.locked())
  let third = false
  const g = spawn(async () => {
    third = await s.acquire()
  })
  await sleep(10)
  t.false(third)
  s.release()
  await g.join()
  t.true(third)
  t.is(s.value, 0)
})

serial('acquire() waiters are served in FIFO order', async (t) => {
  const s = new Semaphore(0)
  const order: string[] = []
  const gs = ['a', 'b', 'c'].map((name) =>
    spawn(async () => {
      await s.acquire()
      order.push(name)
    }),
  )
  await sleep(0)
  s.release()
  s.release()
  s.release()
  await joinall(gs)
  t.deepEqual(order, ['a', 'b', 'c'])
})

serial('a release hands the permit to the waiter: a later acquire cannot barge in', async (t) => {
  const s = new Semaphore(1)
  await s.acquire()
  const waiter = spawn(() => s.acquire())
  await sleep(0)
  s.release()
  t.false(await s.acquire({ blocking: false }))
  t.true(await waiter.get())
  t.true(s.locked())
})

serial('acquire() resolves false when timeoutMs expires, and at once with blocking: false', async (t) => {
  const s = new Semaphore(0)
  const start = Date.now()
  t.false(await s.acquire({ timeoutMs: 30 }))
  t.true(Date.now() - start >= 25, `gave up after ${Date.now() - start} ms`)
  t.false(await s.acquire({ blocking: false }))
  s.release()
  t.true(await s.acquire({ blocking: false }))
})

serial('an acquire() whose timer fires in the turn the permit is handed to it keeps the permit', async (t) => {
  const lock = new Lock()
  await lock.acquire()
  // The waiter's 0 ms timer and the releaser's yield end in the same hub
  // turn, the releaser first: it hands the permit over after the timer fired.
  const waiter = spawn(() => lock.acquire({ timeoutMs: 0 }))
  const releaser = spawn(async () => {
    await sleep(0)
    lock.release()
  })
  await releaser.join()
  t.true(await waiter.get())
  t.true(lock.locked())
  lock.release()
  t.false(lock.locked())
})

serial('tryAcquire() takes a free permit synchronously and never jumps the line', async (t) => {
  const s = new Semaphore(1)
  t.true(s.tryAcquire())
  t.false(s.tryAcquire())
  const waiter = spawn(() => s.acquire())
  await sleep(0)
  s.release()
  t.false(s.tryAcquire(), 'the released permit belongs to the waiter')
  t.true(await waiter.get())
})

serial('BoundedSemaphore throws when released more often than acquired', async (t) => {
  const s = new BoundedSemaphore(2)
  await s.acquire()
  s.release()
  t.throws(() => s.release(), { message: /BoundedSemaphore released more times than it was acquired/ })
  t.is(s.value, 2)
  const plain = new Semaphore(1)
  plain.release()
  t.is(plain.value, 2)
})

serial('Lock keeps a critical section with awaits inside it to one greenlet at a time', async (t) => {
  const lock = new Lock()
  let inside = 0
  let maxInside = 0
  const gs = Array.from({ length: 5 }, () =>
    spawn(async () => {
      for (let i = 0; i < 3; i++) {
        await lock.acquire()
        try {
          maxInside = Math.max(maxInside, ++inside)
          await sleep(1)
          inside--
        } finally {
          lock.release()
        }
      }
    }),
  )
  await joinall(gs, { raiseError: true })
  t.is(maxInside, 1)
  t.false(lock.locked())
  t.throws(() => lock.release(), { message: /Lock released more times than it was acquired/ })
})

serial('RLock can be acquired again by its holder and is released after as many releases', async (t) => {
  const r = new RLock()
  const holder = spawn(async () => {
    t.true(await r.acquire())
    t.true(await r.acquire())
    await sleep(10)
    r.release()
    await sleep(10)
    r.release()
  })
  await sleep(0)
  let otherGotIt = false
  const other = spawn(async () => {
    await r.acquire()
    otherGotIt = true
    r.release()
  })
  await sleep(15)
  t.false(otherGotIt, 'one release of two must not free the lock')
  await joinall([holder, other])
  t.true(otherGotIt)
  t.false(r.locked())
})

serial('RLock.release() throws unless the current greenlet holds it', async (t) => {
  const r = new RLock()
  t.throws(() => r.release(), { message: /does not hold/ })
  const checked = new Event()
  const holder = spawn(async () => {
    await r.acquire()
    await checked.wait()
    r.release()
  })
  await sleep(0)
  const intruder = spawn(() => r.release())
  await t.throwsAsync(intruder.get(), { message: /does not hold/ })
  t.false(await r.acquire({ blocking: false }))
  checked.set()
  await holder.join()
  t.true(await r.acquire({ blocking: false }))
  r.release()
})

serial('RLock passes to waiting greenlets in FIFO order', async (t) => {
  const r = new RLock()
  await r.acquire()
  const order: string[] = []
  const gs = ['a', 'b', 'c'].map((name) =>
    spawn(async () => {
      await r.acquire()
      order.push(name)
      await sleep(1)
      r.release()
    }),
  )
  await sleep(0)
  r.release()
  await joinall(gs)
  t.deepEqual(order, ['a', 'b', 'c'])
})

serial('killing a greenlet waiting in acquire() rejects it with GreenletExit and the lock still works', async (t) => {
  const lock = new Lock()
  await lock.acquire()
  let caught: unknown
  const g = spawn(async () => {
    try {
      await lock.acquire()
    } catch (err) {
      caught = err
    }
  })
  await sleep(0)
  await g.kill()
  t.true(caught instanceof GreenletExit)
  lock.release()
  t.true(await lock.acquire({ timeoutMs: 1_000 }))
  lock.release()
})

serial('a permit handed to a waiter killed in the same turn passes to the next waiter', async (t) => {
  const s = new Semaphore(0)
  const victim = spawn(() => s.acquire())
  const next = spawn(() => s.acquire())
  await sleep(0)
  s.release()
  await victim.kill()
  t.true(await next.get())
  t.is(s.value, 0)

  // With nobody else waiting, the permit goes back to the counter.
  const lone = spawn(() => s.acquire())
  await sleep(0)
  s.release()
  await lone.kill()
  t.is(s.value, 1)
})

serial('an RLock handed to a waiter killed in the same turn passes to the next waiter', async (t) => {
  const r = new RLock()
  await r.acquire()
  const victim = spawn(() => r.acquire())
  const next = spawn(async () => {
    await r.acquire()
    r.release()
    return 'got it'
  })
  await sleep(0)
  r.release()
  await victim.kill()
  t.is(await next.get(), 'got it')
  t.false(r.locked())
})

serial('guard() holds the lock until the end of a using block', async (t) => {
  const lock = new Lock()
  {
    using _ = await lock.guard()
    t.true(lock.locked())
  }
  t.false(lock.locked())
  const r = new RLock()
  try {
    using _outer = await r.guard()
    using _inner = await r.guard()
    throw new Error('leaves the block')
  } catch {
    t.false(r.locked())
  }
})

serial('guard({ timeoutMs }) rejects with Timeout if not acquired in time; disposing twice releases once', async (t) => {
  const s = new Semaphore(2)
  const first = await s.guard()
  await t.throwsAsync(
    spawn(async () => {
      await s.acquire()
      return s.guard({ timeoutMs: 10 })
    }).get(),
    { instanceOf: Timeout },
  )
  t.is(s.value, 0)
  first[Symbol.dispose]()
  first[Symbol.dispose]()
  t.is(s.value, 1)
})

serial('bad arguments are rejected with errors that name them', async (t) => {
  t.throws(() => new Semaphore(-1), { instanceOf: RangeError, message: /value must be a non-negative integer/ })
  t.throws(() => new Semaphore('2' as any), { instanceOf: TypeError, message: /value/ })
  const s = new Semaphore(0)
  await t.throwsAsync(s.acquire({ timeoutMs: -1 }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
  await t.throwsAsync(s.guard(7 as any), { instanceOf: TypeError, message: /options must be an options object/ })
})
