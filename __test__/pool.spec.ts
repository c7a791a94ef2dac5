/** Groups and pools, the same suite in the async and the sync mode (see _modes.ts). */
import test from 'ava'

import { Pool, sleep, spawn } from '../index'
import * as sync from '../sync'
import { both } from './_modes'

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as any).then === 'function'
}

/**
 * Counts how many calls of the wrapped function run at the same time. A
 * call runs until its result settles: at once for a sync greenlet's call,
 * which has blocked, or when the Promise an async call returns settles.
 */
function concurrencyProbe<T, R>(fn: (item: T) => R): { fn: (item: T) => R; max: () => number; calls: () => number } {
  let running = 0
  let max = 0
  let calls = 0
  return {
    fn: (item: T): R => {
      calls++
      max = Math.max(max, ++running)
      let result: R
      try {
        result = fn(item)
      } catch (err) {
        running--
        throw err
      }
      if (isThenable(result)) {
        return Promise.resolve(result).finally(() => {
          running--
        }) as R
      }
      running--
      return result
    },
    max: () => max,
    calls: () => calls,
  }
}

both('Group.spawn() tracks greenlets until they finish, and join() waits for all of them', function* (t, m) {
  const group = new m.Group()
  const done: number[] = []
  for (const ms of [20, 5, 10]) {
    group.spawn(
      m.fn(function* () {
        yield m.sleep(ms)
        done.push(ms)
      }),
    )
  }
  t.is(group.length, 3)
  t.true(yield group.join())
  t.deepEqual(done, [5, 10, 20])
  t.is(group.length, 0)
  t.true(yield group.join())
  t.false(group.full())
  t.is(group.free(), Infinity)
})

both('Group.join({ timeoutMs }) returns false while members still run', function* (t, m) {
  const group = new m.Group()
  const g = group.spawn(() => m.sleep(200))
  t.false(yield group.join({ timeoutMs: 10 }))
  t.true(group.has(g))
  yield group.kill()
  t.is(group.length, 0)
})

both('join({ raiseError: true }) raises a member failure, also one that failed before the join', function* (t, m) {
  const group = new m.Group()
  const boom = new Error('boom')
  group.spawn(
    m.fn(function* () {
      yield m.sleep(5)
      throw boom
    }),
  )
  group.spawn(() => m.sleep(30))
  t.is(yield* m.throws(t, () => group.join({ raiseError: true })), boom)

  const early = new Error('early')
  group.spawn(() => {
    throw early
  })
  yield m.sleep(10)
  t.is(group.length, 1)
  t.is(yield* m.throws(t, () => group.join({ raiseError: true })), early)
  t.true(yield group.join({ raiseError: true }), 'a failure is raised once')
})

both('Group.kill() kills every member and waits for them to die', function* (t, m) {
  const group = new m.Group()
  const gs = [group.spawn(() => m.sleep(10_000)), group.spawn(() => m.sleep(10_000))]
  yield m.sleep(0)
  yield group.kill()
  t.true(gs.every((g) => g.dead))
  t.is(group.length, 0)
})

both('add() tracks an existing greenlet and discard() stops tracking without killing', function* (t, m) {
  const group = new m.Group()
  const g = m.spawn(() => m.sleep(20))
  group.add(g)
  group.add(g)
  t.is(group.length, 1)
  t.deepEqual([...group], [g])
  group.discard(g)
  t.is(group.length, 0)
  t.false(g.dead)
  t.true(yield group.join({ timeoutMs: 0 }))
  yield g.join()
  group.add(g)
  t.is(group.length, 0, 'a finished greenlet is not added')
})

both('Pool.spawn() waits for a free slot when the pool is full; free() and full() report the slots', function* (t, m) {
  const pool = new m.Pool(2)
  t.is(pool.size, 2)
  t.is(pool.free(), 2)
  const a = yield pool.spawn(() => m.sleep(30))
  yield pool.spawn(() => m.sleep(60))
  t.true(pool.full())
  t.is(pool.free(), 0)
  const start = Date.now()
  const c = yield pool.spawn(() => m.sleep(1))
  t.true(a.dead, 'the third spawn waited for the first member to finish')
  t.true(Date.now() - start >= 20, `waited ${Date.now() - start} ms`)
  t.true(pool.has(c))
  t.true(yield pool.join())
  t.is(pool.free(), 2)
})

both('Pool.add() waits for a slot, and discard() frees one', function* (t, m) {
  const pool = new m.Pool(1)
  const first = yield pool.spawn(() => m.sleep(10_000))
  const outsider = m.spawn(() => m.sleep(10))
  const adding = m.spawn(() => pool.add(outsider))
  yield m.sleep(0)
  t.false(pool.has(outsider))
  pool.discard(first)
  yield adding.join()
  t.true(pool.has(outsider))
  yield pool.join()
  t.is(pool.free(), 1)
  yield first.kill()
})

both('killing a greenlet waiting in Pool.spawn() raises GreenletExit in it and no slot is lost', function* (t, m) {
  const pool = new m.Pool(1)
  const busy = yield pool.spawn(() => m.sleep(10_000))
  let caught: unknown
  const waiter = m.go(function* () {
    try {
      yield pool.spawn(() => 'never')
    } catch (err) {
      caught = err
    }
  })
  yield m.sleep(0)
  yield waiter.kill()
  t.true(caught instanceof m.GreenletExit)
  t.is(pool.length, 1)

  // A slot freed just before its waiter is killed, before it ran, goes back to the pool.
  const victim = m.spawn(() => pool.spawn(() => 'never either'))
  yield m.sleep(0)
  pool.discard(busy)
  yield victim.kill()
  t.is(pool.free(), 1)
  t.is(pool.length, 0)
  yield busy.kill()
})

both('Pool.map() never runs more than size calls at once and returns the results in input order', function* (t, m) {
  const pool = new m.Pool(3)
  const probe = concurrencyProbe(
    m.fn(function* (n: number) {
      yield m.sleep((n * 7) % 5)
      return n * n
    }),
  )
  const input = Array.from({ length: 30 }, (_, i) => i)
  t.deepEqual(yield pool.map(probe.fn, input), input.map((n) => n * n))
  t.is(probe.max(), 3)
  t.is(pool.length, 0)
})

both('map() takes an async iterable input', function* (t, m) {
  async function* letters(): AsyncGenerator<string> {
    for (const c of 'abc') {
      await sleep(1)
      yield c
    }
  }
  t.deepEqual(yield new m.Pool(2).map(async (c: string) => c.toUpperCase(), letters()), ['A', 'B', 'C'])
  t.deepEqual(yield new m.Group().map((n: number) => n + 1, [1, 2, 3]), [2, 3, 4])
})

both('map() raises the first failure and kills the calls still running', function* (t, m) {
  const pool = new m.Pool(4)
  const boom = new Error('item 2 failed')
  let completed = 0
  const mapped = m.fn(function* (n: number) {
    if (n === 2) {
      yield m.sleep(5)
      throw boom
    }
    yield m.sleep(200)
    completed++
    return n
  })
  t.is(yield* m.throws(t, () => pool.map(mapped, [0, 1, 2, 3, 4, 5, 6, 7])), boom)
  t.true(yield pool.join({ timeoutMs: 5_000 }))
  t.is(completed, 0)
  t.true(yield pool.join({ raiseError: true }), 'the map raised the failure already')
})

both('a map whose calls are killed from outside (pool.kill) fails with GreenletExit instead of returning nothing', function* (t, m) {
  const pool = new m.Pool(2)
  // The map runs in a greenlet of its own (a sync map blocks its caller), and
  // checks its error there: a greenlet ending with GreenletExit exits normally.
  const mapping = m.go(function* () {
    return yield* m.throws(t, () => pool.map(() => m.sleep(10_000), [1, 2, 3, 4]), { instanceOf: m.GreenletExit })
  })
  yield m.sleep(10)
  t.is(pool.length, 2)
  yield pool.kill()
  t.true((yield mapping.get()) instanceof m.GreenletExit)
  t.true(yield pool.join({ timeoutMs: 5_000 }))
})

both('an input that throws fails the iteration with its error', function* (t, m) {
  const bad = new Error('input broke')
  function* input(): Generator<number> {
    yield 1
    throw bad
  }
  t.is(yield* m.throws(t, () => new m.Pool(2).map(async (n: number) => n, input())), bad)
})

both('Group.map() runs every call at once', function* (t, m) {
  const probe = concurrencyProbe(
    m.fn(function* (n: number) {
      yield m.sleep(5)
      return n
    }),
  )
  t.deepEqual(yield new m.Group().map(probe.fn, [1, 2, 3, 4, 5]), [1, 2, 3, 4, 5])
  t.is(probe.max(), 5)
})

both('members are greenlets: spawn() passes arguments and parents them to the spawner', function* (t, m) {
  const pool = new m.Pool(1)
  const g = yield pool.spawn((a: number, b: number) => a + b, 2, 3)
  t.true(g instanceof m.Greenlet)
  t.is(yield g.get(), 5)
  const parent = m.spawn(() => new m.Group().spawn(() => 0))
  const child = yield parent.get()
  t.true(child instanceof m.Greenlet)
  t.is(child.parent, parent)
})

both('bad arguments raise errors that name them', function* (t, m) {
  t.throws(() => new m.Pool(0), { instanceOf: RangeError, message: /size must be a positive integer/ })
  t.throws(() => new m.Pool('4' as any), { instanceOf: TypeError, message: /size/ })
  const pool = new m.Pool(1)
  yield* m.throws(t, () => pool.spawn('fn' as any), { instanceOf: TypeError, message: /fn must be a function/ })
  t.is(pool.free(), 1, 'a refused spawn takes no slot')
  yield* m.throws(t, () => pool.add({} as any), { instanceOf: TypeError, message: /greenlet must be a Greenlet/ })
  t.throws(() => new m.Group().add(null as any), { instanceOf: TypeError, message: /greenlet/ })
  yield* m.throws(t, () => pool.map((x: number) => x, 42 as any), { instanceOf: TypeError, message: /iterable must be an iterable/ })
  yield* m.throws(t, () => pool.join({ timeoutMs: -1 }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
})

// Mode-specific behaviour: imap and imapUnordered are async iterables in the
// async mode, plain Generators that block for each result in the sync mode.

test('async: imap() and imapUnordered() with bad arguments never throw at the call: the first next() rejects', async (t) => {
  const pool = new Pool(1)
  for (const method of ['imap', 'imapUnordered'] as const) {
    const badFn = pool[method](null as any, [1])
    await t.throwsAsync(badFn.next(), { instanceOf: TypeError, message: /fn must be a function/ })
    const badInput = pool[method]((x: number) => x, 42 as any)
    await t.throwsAsync(badInput.next(), { instanceOf: TypeError, message: /iterable must be an iterable/ })
  }
})

test('sync: imap() with a bad function throws at the call, as a plain generator', (t) => {
  const pool = new sync.Pool(1)
  t.throws(() => pool.imap(null as any, [1]), { instanceOf: TypeError, message: /fn must be a function/ })
})

test.serial('async: imap() yields in input order and imapUnordered() in finish order, both within size', async (t) => {
  const delays = [200, 25, 125, 1, 75, 50] // 24 ms apart at least: finish order holds on a loaded machine
  const ordered = concurrencyProbe(async (ms: number) => {
    await sleep(ms)
    return ms
  })
  const pool = new Pool(2)
  const inOrder: number[] = []
  for await (const ms of pool.imap(ordered.fn, delays)) inOrder.push(ms)
  t.deepEqual(inOrder, delays)
  t.is(ordered.max(), 2)

  const unordered = concurrencyProbe(async (ms: number) => {
    await sleep(ms)
    return ms
  })
  const wide = new Pool(6)
  const asFinished: number[] = []
  for await (const ms of wide.imapUnordered(unordered.fn, delays)) asFinished.push(ms)
  t.deepEqual(asFinished, [...delays].sort((a, b) => a - b))
  t.is(unordered.max(), 6)

  const narrow = concurrencyProbe(async (ms: number) => {
    await sleep(ms)
    return ms
  })
  const results: number[] = []
  for await (const ms of new Pool(2).imapUnordered(narrow.fn, delays)) results.push(ms)
  t.deepEqual([...results].sort((a, b) => a - b), [...delays].sort((a, b) => a - b))
  t.is(narrow.max(), 2)
})

test.serial('sync: imap() yields in input order and imapUnordered() in finish order, both within size', async (t) => {
  await sync.run(() => {
    const delays = [200, 25, 125, 1, 75, 50] // 24 ms apart at least: finish order holds on a loaded machine
    const ordered = concurrencyProbe((ms: number) => {
      sync.sleep(ms)
      return ms
    })
    const pool = new sync.Pool(2)
    const inOrder: number[] = []
    for (const ms of pool.imap(ordered.fn, delays)) inOrder.push(ms)
    t.deepEqual(inOrder, delays)
    t.is(ordered.max(), 2)

    const unordered = concurrencyProbe((ms: number) => {
      sync.sleep(ms)
      return ms
    })
    const wide = new sync.Pool(6)
    const asFinished: number[] = []
    for (const ms of wide.imapUnordered(unordered.fn, delays)) asFinished.push(ms)
    t.deepEqual(asFinished, [...delays].sort((a, b) => a - b))
    t.is(unordered.max(), 6)

    const narrow = concurrencyProbe((ms: number) => {
      sync.sleep(ms)
      return ms
    })
    const results = [...new sync.Pool(2).imapUnordered(narrow.fn, delays)]
    t.deepEqual([...results].sort((a, b) => a - b), [...delays].sort((a, b) => a - b))
    t.is(narrow.max(), 2)
  })
})

test.serial('async: imap() reads an endless input lazily, and break stops the input and kills running calls', async (t) => {
  const pool = new Pool(2)
  let pulled = 0
  function* naturals(): Generator<number> {
    for (let n = 0; ; n++) {
      pulled++
      yield n
    }
  }
  let finished = 0
  const got: number[] = []
  for await (const n of pool.imap(async (n: number) => {
    await sleep(n % 2 === 0 ? 1 : 50)
    finished++
    return n
  }, naturals())) {
    got.push(n)
    if (got.length === 3) break
  }
  t.deepEqual(got, [0, 1, 2])
  t.true(pulled <= 3 + 2 + 2, `pulled ${pulled} items for 3 results with 2 slots`)
  t.true(await pool.join({ timeoutMs: 5_000 }))
  await sleep(60)
  const finishedAfterBreak = finished
  await sleep(60)
  t.is(finished, finishedAfterBreak, 'no call runs on after the break')
})

test.serial('sync: imap() reads an endless input lazily, and break stops the input and kills running calls', async (t) => {
  await sync.run(() => {
    const pool = new sync.Pool(2)
    let pulled = 0
    function* naturals(): Generator<number> {
      for (let n = 0; ; n++) {
        pulled++
        yield n
      }
    }
    let finished = 0
    const got: number[] = []
    for (const n of pool.imap((n: number) => {
      sync.sleep(n % 2 === 0 ? 1 : 50)
      finished++
      return n
    }, naturals())) {
      got.push(n)
      if (got.length === 3) break
    }
    t.deepEqual(got, [0, 1, 2])
    t.true(pulled <= 3 + 2 + 2, `pulled ${pulled} items for 3 results with 2 slots`)
    t.true(pool.join({ timeoutMs: 5_000 }))
    sync.sleep(60)
    const finishedAfterBreak = finished
    sync.sleep(60)
    t.is(finished, finishedAfterBreak, 'no call runs on after the break')
  })
})

test.serial('async: killing the greenlet that consumes imapUnordered() kills its running calls', async (t) => {
  const pool = new Pool(3)
  let completed = 0
  const consumer = spawn(async () => {
    for await (const _ of pool.imapUnordered(async () => {
      await sleep(10_000)
      completed++
    }, [1, 2, 3, 4, 5])) {
      // never reached
    }
  })
  await sleep(10)
  t.is(pool.length, 3)
  await consumer.kill()
  t.true(await pool.join({ timeoutMs: 5_000 }))
  t.is(completed, 0)
})

test.serial('sync: killing the greenlet that consumes imapUnordered() kills its running calls', async (t) => {
  await sync.run(() => {
    const pool = new sync.Pool(3)
    let completed = 0
    const consumer = sync.spawn(() => {
      for (const _ of pool.imapUnordered(() => {
        sync.sleep(10_000)
        completed++
      }, [1, 2, 3, 4, 5])) {
        // never reached
      }
    })
    sync.sleep(10)
    t.is(pool.length, 3)
    consumer.kill()
    t.true(pool.join({ timeoutMs: 5_000 }))
    t.is(completed, 0)
  })
})

test.serial('sync: map() and imap() take an async iterable input, and the calls may return Promises', async (t) => {
  async function* slowly<T>(items: T[]): AsyncGenerator<T> {
    for (const item of items) {
      await sleep(1)
      yield item
    }
  }
  await sync.run(() => {
    const pool = new sync.Pool(2)
    t.deepEqual(
      pool.map((n: number) => {
        sync.sleep(1)
        return n * 10
      }, slowly([1, 2, 3])),
      [10, 20, 30],
    )
    t.deepEqual([...pool.imap(async (c: string) => c.toUpperCase(), slowly(['x', 'y']))], ['X', 'Y'])
  })
})

test.serial('sync: blocking group calls outside sync greenlets throw an Error naming them; the others work anywhere', async (t) => {
  const pool = new sync.Pool(1)
  const member = pool.spawn(() => sync.sleep(10_000)) // a free slot needs no wait
  t.true(member instanceof sync.Greenlet)
  t.throws(() => pool.spawn(() => 'no slot'), { message: /Pool\.spawn\(\) blocks, and only code running in a sync greenlet can block/ })
  t.throws(() => pool.add(sync.spawn(() => 0)), { message: /Pool\.add\(\) blocks/ })
  t.throws(() => pool.join(), { message: /Group\.join\(\) blocks/ })
  t.throws(() => pool.map((n: number) => n, [1]), { message: /Group\.map\(\) blocks/ })
  t.is(pool.length, 1, 'the refused calls left nothing behind')
  const group = new sync.Group()
  const g = group.spawn(() => 'spawned from outside')
  t.true(group.has(g))
  pool.kill({ block: false })
  await sync.run(() => {
    t.true(pool.join({ timeoutMs: 5_000 }))
    t.is(g.get(), 'spawned from outside')
    t.true(group.join())
  })
})

both('join({ signal }) stops waiting when the signal aborts; the members run on', function* (t, m) {
  const group = new m.Group()
  const member = group.spawn(() => m.sleep(30))
  const controller = new AbortController()
  const joiner = m.spawn(() => group.join({ signal: controller.signal }))
  const raising = m.spawn(() => group.join({ signal: controller.signal, raiseError: true }))
  yield m.sleep(0)
  controller.abort()
  t.is((yield* m.throws(t, () => joiner.get())).name, 'AbortError')
  t.is((yield* m.throws(t, () => raising.get())).name, 'AbortError')
  t.false(member.dead)
  t.true(yield group.join())
})
