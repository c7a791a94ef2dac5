/** Groups and pools, the same suite in the async and the sync mode (see _modes.ts). */
import test from 'ava'

import { Group, Pool, sleep, spawn } from '../index'
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

both('a Pool\'s size is fixed at construction: assigning it throws rather than reporting a limit it does not keep', function* (t, m) {
  const pool = new m.Pool(1)
  t.throws(() => {
    ;(pool as { size: number }).size = 3
  }, { instanceOf: TypeError })
  t.is(pool.size, 1)
  yield pool.join()
})

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

both("a member's failure nobody looks at is reported, as a plain greenlet's; one that join({ raiseError: true }) raises is not", function* (t, m) {
  const reported: string[] = []
  const original = console.error
  console.error = (...args: unknown[]) => {
    for (const a of args) if (a instanceof Error && a.message.startsWith(`${m.name}:`)) reported.push(a.message)
  }
  try {
    const fail = (what: string) => (): never => {
      throw new Error(`${m.name}: ${what}`)
    }
    new m.Group().spawn(fail('Group.spawn'))
    const pool = new m.Pool(2)
    pool.spawn(fail('Pool.spawn'))
    pool.applyAsync(fail('applyAsync'), [], () => {})
    const added = new m.Greenlet(fail('Group.add'))
    new m.Group().add(added)
    added.start()
    const raising = new m.Group()
    raising.spawn(fail('raised by join'))
    yield* m.throws(t, () => raising.join({ raiseError: true }), { message: /raised by join/ })
    yield m.sleep(20)
  } finally {
    console.error = original
  }
  t.deepEqual(reported.sort(), ['Group.add', 'Group.spawn', 'Pool.spawn', 'applyAsync'].map((what) => `${m.name}: ${what}`))
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

both('Pool.kill() also kills a member that joins during the kill (a spawn that waited for a slot): the pool is empty after it', function* (t, m) {
  const pool = new m.Pool(1)
  yield pool.spawn(() => m.sleep(10_000))
  const spawner = m.go(function* () {
    return yield pool.spawn(() => m.sleep(10_000))
  })
  yield m.sleep(5)
  yield pool.kill()
  t.is(pool.length, 0)
  t.is(pool.free(), 1)
  // It may have run up to its sleep (sync mode) or not at all: either way it is dead.
  const late = (yield spawner.get()) as { dead: boolean }
  t.true(late.dead)
  yield m.sleep(5)
  t.is(pool.length, 0)
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
  t.throws(() => new m.Pool(-1), { instanceOf: RangeError, message: /size must be a non-negative integer/ })
  t.throws(() => new m.Pool(1.5), { instanceOf: RangeError, message: /size must be a non-negative integer/ })
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

test('async: imap options: a bad maxsize rejects the first next() with an error naming it', async (t) => {
  const pool = new Pool(1)
  for (const method of ['imap', 'imapUnordered'] as const) {
    await t.throwsAsync(pool[method]((x: number) => x, [1], { maxsize: 0 }).next(), { instanceOf: RangeError, message: /options\.maxsize/ })
    await t.throwsAsync(pool[method]((x: number) => x, [1], { maxsize: '3' as any }).next(), { instanceOf: TypeError, message: /options\.maxsize/ })
    await t.throwsAsync(pool[method]((x: number) => x, [1], 5 as any).next(), { instanceOf: TypeError, message: /options/ })
  }
})

/** An endless input that counts what was read from it. */
function* counted(read: { n: number }): Generator<number> {
  for (let i = 0; ; i++) {
    read.n++
    yield i
  }
}

test.serial('async: imap({ maxsize }) stops reading the input while maxsize items wait for a slow reader (a Pool or a Group); without it the pool reads on', async (t) => {
  for (const method of ['imap', 'imapUnordered'] as const) {
    for (const group of [new Pool(2), new Group()]) {
      const read = { n: 0 }
      const results: number[] = []
      const it = group[method](async (x: number) => x * 2, counted(read), { maxsize: 3 })
      for (let taken = 1; taken <= 5; taken++) {
        results.push((await it.next()).value as number)
        // A slow reader: the calls finish long before their results are taken.
        await sleep(20)
        t.true(read.n <= taken + 3, `${method} over a ${group.constructor.name}: ${read.n} items read with ${taken} results taken`)
      }
      await it.return!()
      t.deepEqual(method === 'imap' ? results : [...results].sort((a, b) => a - b), [0, 2, 4, 6, 8], method)
    }
  }
  // Below a Pool's size, maxsize bounds the calls at once too.
  const probe = concurrencyProbe(async (x: number) => {
    await sleep(5)
    return x
  })
  const all: number[] = []
  for await (const x of new Pool(10).imap(probe.fn, Array.from({ length: 12 }, (_, i) => i), { maxsize: 2 })) all.push(x)
  t.deepEqual(all, Array.from({ length: 12 }, (_, i) => i))
  t.is(probe.max(), 2)
  // Unbounded, the same slow reader lets the input run far ahead.
  const read = { n: 0 }
  const it = new Pool(2).imap(async (x: number) => x, counted(read))
  await it.next()
  await sleep(20)
  t.true(read.n > 50, `${read.n} items read`)
  await it.return!()
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

test.serial('sync: imap({ maxsize }) stops reading the input while maxsize items wait for a slow reader', async (t) => {
  t.throws(() => new sync.Pool(1).imap((x: number) => x, [1], { maxsize: -1 }), { instanceOf: RangeError, message: /options\.maxsize/ })
  await sync.run(() => {
    const read = { n: 0 }
    const results: number[] = []
    const it = new sync.Pool(2).imap((x: number) => x * 2, counted(read), { maxsize: 3 })
    for (let taken = 1; taken <= 5; taken++) {
      results.push(it.next().value as number)
      sync.sleep(20)
      t.true(read.n <= taken + 3, `${read.n} items read with ${taken} results taken`)
    }
    it.return!()
    t.deepEqual(results, [0, 2, 4, 6, 8])
  })
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

// Restates gevent's src/gevent/tests/test__pool.py TestPoolUnlimit, TestJoinEmpty and test_init_error.
both('new Pool() has no limit, and join() on an empty group or pool returns true at once', function* (t, m) {
  t.true(yield new m.Pool().join())
  t.true(yield new m.Group().join())
  const pool = new m.Pool()
  t.is(pool.size, Infinity)
  t.is(pool.free(), Infinity)
  t.false(pool.full())
  const members = []
  for (let i = 0; i < 20; i++) members.push(yield pool.spawn(() => m.sleep(5)))
  t.is(pool.length, 20)
  t.false(pool.full())
  t.true(yield pool.join())
  t.is(pool.length, 0)
  t.throws(() => new m.Pool(-1), { instanceOf: RangeError, message: /size must be a non-negative integer/ })
})

// Restates gevent's src/gevent/tests/test__pool.py TestPool0.test_wait_full.
both('new Pool(0) is valid: free() is 0, full() is true, and spawn waits', function* (t, m) {
  const pool = new m.Pool(0)
  t.is(pool.size, 0)
  t.is(pool.free(), 0)
  t.true(pool.full())
  yield* m.throws(t, () => pool.spawnWith({ timeoutMs: 10 }, () => 'never'), { instanceOf: m.PoolFull })
  const waiting = m.spawn(() => pool.spawn(() => 'never'))
  yield m.sleep(10)
  t.false(waiting.dead, 'spawn is still waiting for a slot')
  yield waiting.kill()
  t.is(pool.length, 0)
})

// Restates gevent's src/gevent/tests/test__pool.py PoolBasicTests.test_execute_async.
both('the slot is taken at the spawn call: free() drops at once, even where spawn returns a Promise', function* (t, m) {
  const pool = new m.Pool(2)
  const r: number[] = []
  const first = pool.spawn((n: number) => r.push(n), 1)
  t.is(pool.free(), 1)
  yield (yield first).join()
  t.deepEqual(r, [1])
  yield m.sleep(0)
  t.is(pool.free(), 2)
  pool.applyAsync((n: number) => r.push(n), [2])
  t.is(pool.free(), 1)
  pool.applyAsync((n: number) => r.push(n), [3])
  t.is(pool.free(), 0)
  const outside = pool.applyAsync((n: number) => r.push(n), [4]) // full: never waits
  t.false(pool.has(outside))
  t.deepEqual(r, [1])
  yield m.sleep(10)
  t.deepEqual([...r].sort(), [1, 2, 3, 4])
})

// Restates gevent's src/gevent/tests/test__pool.py TestCoroutinePool.test_apply, test_apply_raises and test_reentrant.
both('apply() returns the result of fn(...args) run in a member, raises its exception, and runs in place when called from a member', function* (t, m) {
  const pool = new m.Pool(1)
  t.is(yield pool.apply(() => 'return value'), 'return value')
  t.deepEqual(yield pool.apply((a: number) => ['foo', a], [1]), ['foo', 1])
  const boom = new Error('raised by the call')
  t.is(
    yield* m.throws(t, () =>
      pool.apply(() => {
        throw boom
      }),
    ),
    boom,
  )
  // A member of a full Pool(1) applying again would wait for its own slot: it runs in place.
  t.is(yield pool.apply(pool.apply.bind(pool), [(a: number) => a + 1, [5]] as any), 6)
  const evt = new m.Event()
  pool.applyAsync(() => evt.set())
  t.true(yield evt.wait({ timeoutMs: 5_000 }))
  yield* m.throws(t, () => pool.apply('fn' as any), { instanceOf: TypeError, message: /fn must be a function/ })
  yield* m.throws(t, () => pool.apply(() => 0, 5 as any), { instanceOf: TypeError, message: /args must be an array/ })
  t.true(yield pool.join())
})

// Restates gevent's src/gevent/tests/test__pool.py TestCoroutinePool.test_multiple_coros, test_async_callback and test_apply_async.
both('applyAsync() returns a greenlet at once, and calls the callback with the result in a new greenlet', function* (t, m) {
  const results: string[] = []
  const evt = new m.Event()
  const pool = new m.Pool(2)
  const done = yield pool.spawn(
    m.fn(function* () {
      results.push('cons1')
      yield evt.wait()
      results.push('cons2')
    }),
  )
  pool.applyAsync(
    m.fn(function* () {
      yield m.sleep(1)
      results.push('prod')
      evt.set()
    }),
  )
  yield done.get()
  t.deepEqual(results, ['cons1', 'prod', 'cons2'])

  const got: number[] = []
  const res = pool.applyAsync(
    m.fn(function* (x: number, ms: number) {
      yield m.sleep(ms)
      return x * x
    }),
    [7, 10],
    (v: number) => got.push(v),
  )
  t.true(res instanceof m.Greenlet)
  t.is(yield res.get(), 49)
  yield m.sleep(0) // lets the callback run
  t.deepEqual(got, [49])
  const failing = pool.applyAsync(
    () => {
      throw new Error('no callback for a failure')
    },
    [],
    (v: unknown) => got.push(v as number),
  )
  yield failing.join()
  yield m.sleep(0)
  t.deepEqual(got, [49])
  t.throws(() => pool.applyAsync(() => 0, [], 'cb' as any), { instanceOf: TypeError, message: /callback must be a function/ })
})

// Restates gevent's src/gevent/tests/test__pool.py TestPool.test_terminate (map_async) and GroupMappingMixin.map_async.
both('mapAsync() returns a greenlet running map(), and calls the callback with the results', function* (t, m) {
  const pool = new m.Pool(2)
  let called: number[] | undefined
  const g = pool.mapAsync((n: number) => n * 2, [1, 2, 3], (results: number[]) => {
    called = results
  })
  t.true(g instanceof m.Greenlet)
  t.false(pool.has(g))
  t.deepEqual(yield g.get(), [2, 4, 6])
  t.deepEqual(called, [2, 4, 6])
  const boom = new Error('boom')
  const failing = pool.mapAsync(
    (n: number) => {
      if (n === 2) throw boom
      return n
    },
    [1, 2, 3],
  )
  t.is(yield* m.throws(t, () => failing.get()), boom)
  t.throws(() => pool.mapAsync((n: number) => n, 42 as any), { instanceOf: TypeError, message: /iterable must be an iterable/ })
})

// Restates gevent's src/gevent/tests/test__pool.py PoolBasicTests.test_add_method_non_blocking and test_add_method_timeout.
both('spawnWith({ block: false }) and add(g, { block: false }) raise PoolFull on a full pool, as does an expired timeoutMs', function* (t, m) {
  const pool = new m.Pool(1)
  const first = yield pool.spawnWith({ block: false }, () => m.sleep(10_000))
  t.true(pool.has(first))
  t.true(pool.full())
  const err = yield* m.throws(t, () => pool.spawnWith({ block: false }, () => 'never'), { instanceOf: m.PoolFull })
  t.true(err instanceof m.QueueFull, 'PoolFull is a QueueFull, as in gevent')
  const second = m.spawn(() => m.sleep(10_000))
  yield* m.throws(t, () => pool.add(second, { block: false }), { instanceOf: m.PoolFull })
  const start = Date.now()
  yield* m.throws(t, () => pool.add(second, { timeoutMs: 20 }), { instanceOf: m.PoolFull })
  t.true(Date.now() - start >= 15, `gave up after ${Date.now() - start} ms`)
  t.is(pool.length, 1)
  t.is(pool.free(), 0)
  yield* m.throws(t, () => pool.spawnWith({ timeoutMs: -1 }, () => 0), { instanceOf: RangeError, message: /options\.timeoutMs/ })
  yield* m.throws(t, () => pool.spawnWith(5 as any, () => 0), { instanceOf: TypeError, message: /options must be an options object/ })
  yield second.kill()
  yield pool.kill()
  t.is(pool.free(), 1)
  const g = yield pool.spawnWith({ block: false }, (a: number, b: number) => a * b, 6, 7)
  t.is(yield g.get(), 42)
  t.is(new m.Group().spawnWith({ block: false }, () => 'groups are never full').constructor, m.Greenlet)
})

function failOnZero(x: number): number {
  if (x === 0) throw new RangeError('division by zero')
  return 1 / x
}

// gevent's IMap is a greenlet started at its creation: the calls run while
// the caller does other work before it reads the first result.
both('imap() and imapUnordered() start their calls at once, not at the first next()', function* (t, m) {
  for (const method of ['imap', 'imapUnordered'] as const) {
    const started: number[] = []
    const pool = new m.Pool(2)
    const it = pool[method]((x: number) => {
      started.push(x)
      return x * 10
    }, [1, 2, 3])
    t.deepEqual(started, [], 'not in the call itself')
    yield m.sleep(20)
    t.deepEqual(started, [1, 2, 3], `${method}: all ran before the first next()`)
    const got: number[] = []
    for (let r = yield it.next(); !r.done; r = yield it.next()) got.push(r.value as number)
    t.deepEqual(got.sort((a, b) => a - b), [10, 20, 30])
  }
})

// Restates gevent's src/gevent/tests/test__pool.py TestErrorInHandler.test_imap and test_imap_unordered.
both('imap() and imapUnordered(): a failing call raises at its position, and the iteration goes on with the rest', function* (t, m) {
  for (const method of ['imap', 'imapUnordered'] as const) {
    const pool = new m.Pool(1)
    const it = pool[method](failOnZero, [1, 0, 2])
    t.deepEqual(yield it.next(), { done: false, value: 1 })
    yield* m.throws(t, () => it.next(), { instanceOf: RangeError, message: /division by zero/ })
    t.deepEqual(yield it.next(), { done: false, value: 0.5 })
    t.deepEqual(yield it.next(), { done: true, value: undefined })
    t.deepEqual(yield it.next(), { done: true, value: undefined })
    t.true(yield pool.join({ raiseError: true }), 'the failure raised by the iterator is not raised again by join')
  }
  // map() still fails fast.
  yield* m.throws(t, () => new m.Pool(1).map(failOnZero, [1, 0, 2]), { instanceOf: RangeError })
})

// Restates gevent's src/gevent/tests/test__pool.py TestErrorInIterator.test_unordered.
both('imap(): an input that throws raises after the results of the items read before it, then the iteration ends', function* (t, m) {
  const bad = new Error('input broke')
  function* input(): Generator<number> {
    yield 1
    yield 2
    throw bad
  }
  const ordered = new m.Pool(3).imap((x: number) => x * 10, input())
  t.deepEqual(yield ordered.next(), { done: false, value: 10 })
  t.deepEqual(yield ordered.next(), { done: false, value: 20 })
  t.is(yield* m.throws(t, () => ordered.next()), bad)
  t.deepEqual(yield ordered.next(), { done: true, value: undefined })
  // In finish order too, after the results of the calls still running when it failed: a
  // `for await` that leaves at the error (killing what runs) has seen every result before it.
  const unordered = new m.Pool(3).imapUnordered(
    m.fn(function* (x: number) {
      yield m.sleep(1)
      return x * 10
    }),
    input(),
  )
  const first = [(yield unordered.next()).value, (yield unordered.next()).value]
  t.deepEqual(first.sort(), [10, 20])
  t.is(yield* m.throws(t, () => unordered.next()), bad)
  t.deepEqual(yield unordered.next(), { done: true, value: undefined })
})

both('imap(): return() after a failure stops the input and kills the calls still running', function* (t, m) {
  const pool = new m.Pool(2)
  let completed = 0
  const it = pool.imap(
    m.fn(function* (n: number) {
      if (n === 0) throw new Error('first fails')
      yield m.sleep(10_000)
      completed++
      return n
    }),
    [0, 1, 2, 3],
  )
  yield* m.throws(t, () => it.next(), { message: /first fails/ })
  yield m.sleep(5)
  t.is(pool.length, 2, 'the iteration went on after the failure')
  t.deepEqual(yield it.return(), { done: true, value: undefined })
  t.true(yield pool.join({ timeoutMs: 5_000 }))
  t.is(completed, 0)
  t.deepEqual(yield it.next(), { done: true, value: undefined })
})
