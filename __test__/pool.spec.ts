import test from 'ava'

import { Greenlet, GreenletExit, sleep, spawn } from '../index'
import { Group, Pool } from '../index'

// The hub is process-wide: ordering tests must not share turns with other tests.
const serial = test.serial

/** Counts how many calls of the wrapped function run at the same time. */
function concurrencyProbe<T, R>(fn: (item: T) => Promise<R>): { fn: (item: T) => Promise<R>; max: () => number; calls: () => number } {
  let running = 0
  let max = 0
  let calls = 0
  return {
    fn: async (item: T) => {
      calls++
      max = Math.max(max, ++running)
      try {
        return await fn(item)
      } finally {
        running--
      }
    },
    max: () => max,
    calls: () => calls,
  }
}

serial('Group.spawn() tracks greenlets until they finish, and join() waits for all of them', async (t) => {
  const group = new Group()
  const done: number[] = []
  for (const ms of [20, 5, 10]) {
    group.spawn(async () => {
      await sleep(ms)
      done.push(ms)
    })
  }
  t.is(group.length, 3)
  t.true(await group.join())
  t.deepEqual(done, [5, 10, 20])
  t.is(group.length, 0)
  t.true(await group.join())
  t.false(group.full())
  t.is(group.free(), Infinity)
})

serial('Group.join({ timeoutMs }) resolves false while members still run', async (t) => {
  const group = new Group()
  const g = group.spawn(() => sleep(200))
  t.false(await group.join({ timeoutMs: 10 }))
  t.true(group.has(g))
  await group.kill()
  t.is(group.length, 0)
})

serial('join({ raiseError: true }) rejects with a member failure, also one that failed before the join', async (t) => {
  const group = new Group()
  const boom = new Error('boom')
  group.spawn(async () => {
    await sleep(5)
    throw boom
  })
  group.spawn(() => sleep(30))
  t.is(await t.throwsAsync(group.join({ raiseError: true })), boom)

  const early = new Error('early')
  group.spawn(async () => {
    throw early
  })
  await sleep(10)
  t.is(group.length, 1)
  t.is(await t.throwsAsync(group.join({ raiseError: true })), early)
  t.true(await group.join({ raiseError: true }), 'a failure is raised once')
})

serial('Group.kill() kills every member and waits for them to die', async (t) => {
  const group = new Group()
  const gs = [group.spawn(() => sleep(10_000)), group.spawn(() => sleep(10_000))]
  await sleep(0)
  await group.kill()
  t.true(gs.every((g) => g.dead))
  t.is(group.length, 0)
})

serial('add() tracks an existing greenlet and discard() stops tracking without killing', async (t) => {
  const group = new Group()
  const g = spawn(() => sleep(20))
  group.add(g)
  group.add(g)
  t.is(group.length, 1)
  t.deepEqual([...group], [g])
  group.discard(g)
  t.is(group.length, 0)
  t.false(g.dead)
  t.true(await group.join({ timeoutMs: 0 }))
  await g.join()
  group.add(g)
  t.is(group.length, 0, 'a finished greenlet is not added')
})

serial('Pool.spawn() waits for a free slot when the pool is full; free() and full() report the slots', async (t) => {
  const pool = new Pool(2)
  t.is(pool.size, 2)
  t.is(pool.free(), 2)
  const a = await pool.spawn(() => sleep(30))
  await pool.spawn(() => sleep(60))
  t.true(pool.full())
  t.is(pool.free(), 0)
  const start = Date.now()
  const c = await pool.spawn(() => sleep(1))
  t.true(a.dead, 'the third spawn waited for the first member to finish')
  t.true(Date.now() - start >= 20, `waited ${Date.now() - start} ms`)
  t.true(pool.has(c))
  t.true(await pool.join())
  t.is(pool.free(), 2)
})

serial('Pool.add() waits for a slot, and discard() frees one', async (t) => {
  const pool = new Pool(1)
  const first = await pool.spawn(() => sleep(10_000))
  const outsider = spawn(() => sleep(10))
  const adding = spawn(() => pool.add(outsider))
  await sleep(0)
  t.false(pool.has(outsider))
  pool.discard(first)
  await adding.join()
  t.true(pool.has(outsider))
  await pool.join()
  t.is(pool.free(), 1)
  await first.kill()
})

serial('killing a greenlet waiting in Pool.spawn() rejects with GreenletExit and no slot is lost', async (t) => {
  const pool = new Pool(1)
  const busy = await pool.spawn(() => sleep(10_000))
  let caught: unknown
  const waiter = spawn(async () => {
    try {
      await pool.spawn(() => 'never')
    } catch (err) {
      caught = err
    }
  })
  await sleep(0)
  await waiter.kill()
  t.true(caught instanceof GreenletExit)
  t.is(pool.length, 1)

  // A slot freed in the turn its waiter is killed goes back to the pool.
  const victim = spawn(() => pool.spawn(() => 'never either'))
  await sleep(0)
  pool.discard(busy)
  await victim.kill()
  t.is(pool.free(), 1)
  t.is(pool.length, 0)
  await busy.kill()
})

serial('Pool.map() never runs more than size calls at once and resolves in input order', async (t) => {
  const pool = new Pool(3)
  const probe = concurrencyProbe(async (n: number) => {
    await sleep((n * 7) % 5)
    return n * n
  })
  const input = Array.from({ length: 30 }, (_, i) => i)
  t.deepEqual(await pool.map(probe.fn, input), input.map((n) => n * n))
  t.is(probe.max(), 3)
  t.is(pool.length, 0)
})

serial('imap() yields in input order and imapUnordered() in finish order, both within size', async (t) => {
  const delays = [40, 5, 25, 1, 15, 10]
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

serial('imap() reads an endless input lazily, and break stops the input and kills running calls', async (t) => {
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

serial('map() takes an async iterable input', async (t) => {
  async function* letters(): AsyncGenerator<string> {
    for (const c of 'abc') {
      await sleep(1)
      yield c
    }
  }
  t.deepEqual(await new Pool(2).map(async (c: string) => c.toUpperCase(), letters()), ['A', 'B', 'C'])
  t.deepEqual(await new Group().map((n: number) => n + 1, [1, 2, 3]), [2, 3, 4])
})

serial('map() rejects with the first failure and kills the calls still running', async (t) => {
  const pool = new Pool(4)
  const boom = new Error('item 2 failed')
  let completed = 0
  const mapping = pool.map(async (n: number) => {
    if (n === 2) {
      await sleep(5)
      throw boom
    }
    await sleep(200)
    completed++
    return n
  }, [0, 1, 2, 3, 4, 5, 6, 7])
  t.is(await t.throwsAsync(mapping), boom)
  t.true(await pool.join({ timeoutMs: 5_000 }))
  t.is(completed, 0)
  t.true(await pool.join({ raiseError: true }), 'the map raised the failure already')
})

serial('killing the greenlet that consumes imapUnordered() kills its running calls', async (t) => {
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

serial('a map whose calls are killed from outside (pool.kill) fails with GreenletExit instead of yielding nothing', async (t) => {
  const pool = new Pool(2)
  const mapping = pool.map(() => sleep(10_000), [1, 2, 3, 4])
  await sleep(10)
  await pool.kill()
  await t.throwsAsync(mapping, { instanceOf: GreenletExit })
  t.true(await pool.join({ timeoutMs: 5_000 }))
})

serial('an input that throws fails the iteration with its error', async (t) => {
  const bad = new Error('input broke')
  function* input(): Generator<number> {
    yield 1
    throw bad
  }
  t.is(await t.throwsAsync(new Pool(2).map(async (n: number) => n, input())), bad)
})

serial('Group.map() runs every call at once', async (t) => {
  const probe = concurrencyProbe(async (n: number) => {
    await sleep(5)
    return n
  })
  t.deepEqual(await new Group().map(probe.fn, [1, 2, 3, 4, 5]), [1, 2, 3, 4, 5])
  t.is(probe.max(), 5)
})

serial('members are greenlets: spawn() passes arguments and parents them to the spawner', async (t) => {
  const pool = new Pool(1)
  const g = await pool.spawn(async (a: number, b: number) => a + b, 2, 3)
  t.true(g instanceof Greenlet)
  t.is(await g.get(), 5)
  const parent = spawn(() => new Group().spawn(() => 0))
  const child = await parent.get()
  t.is(child.parent, parent)
})

serial('bad arguments are rejected with errors that name them', async (t) => {
  t.throws(() => new Pool(0), { instanceOf: RangeError, message: /size must be a positive integer/ })
  t.throws(() => new Pool('4' as any), { instanceOf: TypeError, message: /size/ })
  const pool = new Pool(1)
  await t.throwsAsync(pool.spawn('fn' as any), { instanceOf: TypeError, message: /fn must be a function/ })
  t.is(pool.free(), 1, 'a rejected spawn takes no slot')
  await t.throwsAsync(pool.add({} as any), { instanceOf: TypeError, message: /greenlet must be a Greenlet/ })
  t.throws(() => new Group().add(null as any), { instanceOf: TypeError, message: /greenlet/ })
  t.throws(() => pool.imap(null as any, [1]), { instanceOf: TypeError, message: /fn must be a function/ })
  await t.throwsAsync(pool.map((x: number) => x, 42 as any), { instanceOf: TypeError, message: /iterable must be an iterable/ })
  await t.throwsAsync(pool.join({ timeoutMs: -1 }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
})
