/** The queues, the same suite in the async and the sync mode (see _modes.ts). */
import { getEventListeners } from 'node:events'

import test from 'ava'

import { Channel, type Greenlet, Queue, QueueEmpty, joinall, sleep, spawn } from '../index'
import * as sync from '../sync'
import { type Body, type Mode, both } from './_modes'

/**
 * gevent's `sleep(0)` in its tests: every other ready greenlet runs up to
 * its next wait. In the async mode a greenlet that the hub resumes in the
 * same turn as the caller interleaves with it at each await (a turn resumes
 * its whole batch at once, src/hub.ts), so there a second turn makes sure
 * it got to its wait.
 */
function* letOthersRun(m: Mode): Body<void> {
  yield m.sleep(0)
  if (m.name === 'async') yield m.sleep(0)
}

/** Runs `call` in a greenlet and records the error its wait raised before re-raising it. */
function spawnRecording<T>(m: Mode, call: () => unknown): { g: Greenlet<T>; caught: () => unknown } {
  let caught: unknown
  const g = m.go<T>(function* () {
    try {
      return yield call()
    } catch (err) {
      caught = err
      throw err
    }
  })
  return { g, caught: () => caught }
}

both('get() returns items in the order they were put', function* (t, m) {
  const q = new m.Queue<number>()
  for (let i = 0; i < 5; i++) yield q.put(i)
  const got = []
  for (let i = 0; i < 5; i++) got.push(yield q.get())
  t.deepEqual(got, [0, 1, 2, 3, 4])
})

both('get() waiters are served in FIFO order', function* (t, m) {
  const q = new m.Queue<string>()
  const getters = ['a', 'b', 'c'].map((name) =>
    m.go(function* () {
      return `${name}:${yield q.get()}`
    }),
  )
  yield m.sleep(0)
  q.putNowait('1')
  q.putNowait('2')
  q.putNowait('3')
  t.deepEqual(yield m.all(getters.map((g) => g.get())), ['a:1', 'b:2', 'c:3'])
  t.true(q.empty())
})

both('a getter that times out leaves the line without disturbing the others', function* (t, m) {
  const q = new m.Queue<string>()
  const first = m.spawn(() => q.get())
  const impatient = m.spawn(() => q.get({ timeoutMs: 10 }))
  const last = m.spawn(() => q.get())
  yield* m.throws(t, () => impatient.get(), { instanceOf: m.QueueEmpty })
  q.putNowait('x')
  q.putNowait('y')
  t.is(yield first.get(), 'x')
  t.is(yield last.get(), 'y')
})

both('put() on a full queue waits for a get() to free a slot; blocked putters go in FIFO order', function* (t, m) {
  const q = new m.Queue<number>({ maxsize: 2 })
  yield q.put(1)
  yield q.put(2)
  t.true(q.full())
  const done: number[] = []
  const putters = [3, 4, 5].map((n) =>
    m.go(function* () {
      yield q.put(n)
      done.push(n)
    }),
  )
  yield m.sleep(10)
  t.deepEqual(done, [])
  t.is(q.qsize(), 2)
  const got = []
  for (let i = 0; i < 5; i++) got.push(yield q.get())
  yield m.joinall(putters)
  t.deepEqual(got, [1, 2, 3, 4, 5])
  t.deepEqual(done, [3, 4, 5])
  t.true(q.empty())
})

both('getNowait() throws QueueEmpty and putNowait() throws QueueFull', function* (t, m) {
  const q = new m.Queue<number>({ maxsize: 1 })
  t.throws(() => q.getNowait(), { instanceOf: m.QueueEmpty })
  q.putNowait(1)
  t.throws(() => q.putNowait(2), { instanceOf: m.QueueFull })
  t.is(q.getNowait(), 1)
})

both('get() raises QueueEmpty and put() raises QueueFull when timeoutMs expires', function* (t, m) {
  const q = new m.Queue<number>({ maxsize: 1 })
  const start = Date.now()
  yield* m.throws(t, () => q.get({ timeoutMs: 30 }), { instanceOf: m.QueueEmpty })
  t.true(Date.now() - start >= 25, `gave up after ${Date.now() - start} ms`)
  yield q.put(1)
  yield* m.throws(t, () => q.put(2, { timeoutMs: 0 }), { instanceOf: m.QueueFull })
  t.is(q.qsize(), 1)
})

both('qsize(), empty(), full() and maxsize describe the queue', function* (t, m) {
  const unbounded = new m.Queue<number>()
  t.is(unbounded.maxsize, Infinity)
  for (let i = 0; i < 1000; i++) unbounded.putNowait(i)
  t.is(unbounded.qsize(), 1000)
  t.false(unbounded.full())
  const q = new m.Queue<number>({ maxsize: 2 })
  t.is(q.maxsize, 2)
  t.true(q.empty())
  q.putNowait(1)
  t.false(q.empty())
  t.false(q.full())
  q.putNowait(2)
  t.true(q.full())
  t.is(q.qsize(), 2)
})

both('the FIFO buffer keeps order across growth and wrap-around', function* (t, m) {
  const q = new m.Queue<number>()
  const expected: number[] = []
  const got: number[] = []
  let next = 0
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 7; i++) {
      q.putNowait(next)
      expected.push(next++)
    }
    for (let i = 0; i < 5; i++) got.push(q.getNowait())
  }
  while (!q.empty()) got.push(q.getNowait())
  t.deepEqual(got, expected)
})

both('killing a greenlet waiting in get() raises GreenletExit in its wait and the queue still works', function* (t, m) {
  const q = new m.Queue<number>()
  const { g, caught } = spawnRecording(m, () => q.get())
  yield m.sleep(0)
  yield g.kill()
  t.true(caught() instanceof m.GreenletExit)
  q.putNowait(1)
  t.is(q.qsize(), 1)
  t.is(yield q.get(), 1)
})

both('an item handed to a getter killed before it ran goes back to the front of the queue', function* (t, m) {
  const q = new m.Queue<number>()
  const { g, caught } = spawnRecording(m, () => q.get())
  yield m.sleep(0)
  // The hand-off and the kill both come before the getter runs again: the kill wins.
  q.putNowait(1)
  q.putNowait(2)
  yield g.kill()
  t.true(caught() instanceof m.GreenletExit)
  t.is(q.qsize(), 2)
  t.is(q.getNowait(), 1)
  t.is(q.getNowait(), 2)
})

both('an item handed to a getter killed before it ran goes to the next getter', function* (t, m) {
  const q = new m.Queue<string>()
  const { g: victim, caught } = spawnRecording(m, () => q.get())
  const next = m.spawn(() => q.get())
  yield m.sleep(0)
  q.putNowait('item')
  yield victim.kill()
  t.true(caught() instanceof m.GreenletExit)
  t.is(yield next.get(), 'item')
  t.true(q.empty())
})

both('a get() whose timer fires in the turn an item is handed to it still receives the item', function* (t, m) {
  const q = new m.Queue<string>()
  // The getter's 0 ms timer and the putter's yield end in the same hub turn,
  // the putter first: it hands the item over after the timer has fired.
  const getter = m.spawn(() => q.get({ timeoutMs: 0 }))
  const putter = m.go(function* () {
    yield m.sleep(0)
    q.putNowait('late')
  })
  yield putter.join()
  t.is(yield getter.get(), 'late')
  t.true(q.empty())
})

both('killing a blocked putter raises GreenletExit in its put and leaves its item out of the queue', function* (t, m) {
  const q = new m.Queue<number>({ maxsize: 1 })
  q.putNowait(1)
  const { g, caught } = spawnRecording(m, () => q.put(2))
  yield m.sleep(0)
  yield g.kill()
  t.true(caught() instanceof m.GreenletExit)
  t.is(q.getNowait(), 1)
  t.true(q.empty())
  q.putNowait(3)
  t.is(q.getNowait(), 3)
})

// gevent: a kill(block=False) is delivered before the queue serves its
// putters again, so a get right after it finds only what was queued.
both('a blocked put killed (or timed out) without waiting is off the line at once: a get in the same turn does not take its item', function* (t, m) {
  const q = new m.Queue<string>({ maxsize: 1 })
  q.putNowait('a')
  const { g, caught } = spawnRecording(m, () => q.put('b'))
  yield m.sleep(0)
  g.kill(undefined, { block: false })
  t.is(q.getNowait(), 'a')
  t.throws(() => q.getNowait(), { instanceOf: m.QueueEmpty })
  yield g.join()
  t.true(caught() instanceof m.GreenletExit)
  t.true(q.empty())

  const ch = new m.Channel<string>()
  const c = spawnRecording(m, () => ch.put('c'))
  yield m.sleep(0)
  c.g.kill(undefined, { block: false })
  t.throws(() => ch.getNowait(), { instanceOf: m.QueueEmpty })
  yield c.g.join()
  t.true(c.caught() instanceof m.GreenletExit)

  // A Timeout that fires in the turn a getter wakes in, before it.
  const timed = new m.Queue<string>({ maxsize: 1 })
  timed.putNowait('x')
  const late = m.go(function* () {
    using _ = m.Timeout.startNew(5)
    yield timed.put('y')
  })
  const taken: string[] = []
  const getter = m.go(function* () {
    yield m.sleep(5)
    try {
      for (;;) taken.push(timed.getNowait())
    } catch (err) {
      if (!(err instanceof m.QueueEmpty)) throw err
    }
  })
  yield m.sleep(0)
  const end = performance.now() + 15
  while (performance.now() < end); // both timers come due before the next poll
  yield getter.join()
  yield late.join()
  t.true(late.exception instanceof m.Timeout)
  t.deepEqual(taken, ['x'])
})

// The put happened: saying it failed would make a caller that retries queue the item twice (gevent: the kill is a
// callback behind the putter's wake-up, raised at its next wait).
both('a put accepted just before its greenlet is killed, before it ran again, succeeds; the kill is raised at the next wait', function* (t, m) {
  const q = new m.Queue<number>({ maxsize: 1 })
  q.putNowait(1)
  const seen: unknown[] = []
  const g = m.go(function* () {
    yield q.put(2)
    seen.push('put')
    try {
      yield m.sleep(0)
      seen.push('not killed')
    } catch (err) {
      seen.push(err)
    }
  })
  yield m.sleep(0)
  t.is(q.getNowait(), 1) // frees the slot: the blocked item moves in
  yield g.kill()
  t.is(seen[0], 'put')
  t.true(seen[1] instanceof m.GreenletExit)
  t.is(q.getNowait(), 2)
  t.true(q.empty())
})

// A caller that retries a put the Timeout interrupted must not deliver twice. The Timeout's alarm, the getter's
// sleep and the put's own timer expire in one hub turn (the main thread is busy meanwhile), in that order.
both('a Timeout that fires in the turn a getter frees room for a blocked put: the item is delivered once, even when the put is retried', function* (t, m) {
  for (const kind of ['queue', 'channel']) {
    const q = kind === 'queue' ? new m.Queue<string>({ maxsize: 1 }) : new m.Channel<string>()
    if (kind === 'queue') q.putNowait('a')
    const seen: string[] = []
    const putter = m.go(function* () {
      setImmediate(() => {
        const end = performance.now() + 60
        while (performance.now() < end); // all three timers come due before the next turn
      })
      const timeout = m.Timeout.startNew(20)
      try {
        yield q.put('b', { timeoutMs: 30 })
        seen.push('put')
      } catch (err) {
        seen.push(err === timeout ? 'put timed out' : String(err))
        yield q.put('b') // tries again
        seen.push('put again')
      } finally {
        timeout.cancel()
      }
    })
    const got: string[] = []
    const getter = m.go(function* () {
      yield m.sleep(25)
      got.push(yield q.get())
      for (;;) got.push(yield q.get({ timeoutMs: 100 }))
    })
    yield putter.join()
    yield getter.join()
    t.true(getter.exception instanceof m.QueueEmpty, `${kind}: ${String(getter.exception)}`)
    t.deepEqual(got, kind === 'queue' ? ['a', 'b'] : ['b'], `${kind}: ${seen}`)
    t.true(seen.join() === 'put' || seen.join() === 'put timed out,put again', `${kind}: ${seen}`)
  }
})

both('a Timeout raised in a greenlet interrupts its get() and loses nothing', function* (t, m) {
  const q = new m.Queue<number>()
  const g = m.go(function* () {
    using _ = m.Timeout.startNew(10)
    return yield q.get()
  })
  yield* m.throws(t, () => g.get(), { instanceOf: m.Timeout })
  q.putNowait(1)
  t.is(q.getNowait(), 1)
})

both('shutdown() raises QueueShutDown in blocked getters and putters, and in later puts', function* (t, m) {
  const empty = new m.Queue<number>()
  const getter = m.spawn(() => empty.get())
  const full = new m.Queue<number>({ maxsize: 1 })
  full.putNowait(1)
  const putter = m.spawn(() => full.put(2))
  yield m.sleep(0)
  empty.shutdown()
  full.shutdown()
  t.true(full.isShutdown())
  yield* m.throws(t, () => getter.get(), { instanceOf: m.QueueShutDown })
  yield* m.throws(t, () => putter.get(), { instanceOf: m.QueueShutDown })
  t.throws(() => full.putNowait(3), { instanceOf: m.QueueShutDown })
  yield* m.throws(t, () => full.put(3), { instanceOf: m.QueueShutDown })
  t.is(yield full.get(), 1)
  t.throws(() => full.getNowait(), { instanceOf: m.QueueShutDown })
})

both('an item handed to a getter killed before it ran is served after shutdown(), not dropped: gets fail only once it is taken', function* (t, m) {
  const q = new m.Queue<string>()
  const results: string[] = []
  const a = m.go(function* () {
    results.push(`a:${yield q.get()}`)
  })
  const b = m.go(function* () {
    try {
      for (;;) results.push(`b:${yield q.get()}`)
    } catch (err) {
      results.push(err instanceof m.QueueShutDown ? 'b:shut down' : `b:${err}`)
    }
  })
  yield m.sleep(1)
  q.putNowait('i') // handed to a
  q.shutdown()
  void a.kill(undefined, { block: false }) // a never takes it: it goes back, to b
  yield m.joinall([a, b])
  t.deepEqual(results, ['b:i', 'b:shut down'])
  t.is(q.qsize(), 0)
})

both('a blocked put whose item a get accepted succeeds even if its signal aborts before it runs: the item is queued once', function* (t, m) {
  const q = new m.Queue<string>({ maxsize: 1 })
  q.putNowait('old')
  const ac = new AbortController()
  const putter = m.go(function* () {
    yield q.put('new', { signal: ac.signal })
    return 'put'
  })
  yield m.sleep(1)
  t.is(q.getNowait(), 'old') // accepts 'new' from the blocked put
  ac.abort(new Error('too late'))
  t.is(yield putter.get(), 'put')
  t.is(q.getNowait(), 'new')
  t.true(q.empty())
})

both('LifoQueue returns the most recent item first', function* (t, m) {
  const q = new m.LifoQueue<number>()
  for (const n of [1, 2, 3]) q.putNowait(n)
  t.deepEqual([yield q.get(), yield q.get(), yield q.get()], [3, 2, 1])
})

both('PriorityQueue returns the smallest item first, equal items in put order', function* (t, m) {
  const q = new m.PriorityQueue<[number, string]>()
  for (const item of [[3, 'c'], [1, 'a1'], [2, 'b'], [1, 'a0'], [0, 'z']] as [number, string][]) q.putNowait(item)
  const got = []
  while (!q.empty()) got.push(yield q.get())
  t.deepEqual(got, [[0, 'z'], [1, 'a0'], [1, 'a1'], [2, 'b'], [3, 'c']])

  const byPriority = new m.PriorityQueue<{ p: number; name: string }>({ compare: (a, b) => a.p - b.p })
  for (const [p, name] of [[2, 'x'], [1, 'y'], [2, 'w'], [1, 'v']] as [number, string][]) byPriority.putNowait({ p, name })
  const names = []
  while (!byPriority.empty()) names.push(byPriority.getNowait().name)
  t.deepEqual(names, ['y', 'v', 'x', 'w'])
})

both('PriorityQueue keeps heap order over many random items', function* (t, m) {
  const q = new m.PriorityQueue<number>()
  const items = Array.from({ length: 500 }, (_, i) => (i * 7919) % 503)
  for (const n of items) q.putNowait(n)
  const got = []
  while (!q.empty()) got.push(q.getNowait())
  t.deepEqual(got, [...items].sort((a, b) => a - b))
})

both('PriorityQueue: a compare that throws fails that put or get and leaves the queue whole', function* (t, m) {
  let poisoned = false
  const q = new m.PriorityQueue<number | string>({
    compare: (a, b) => {
      if (poisoned && (a === 'x' || b === 'x')) throw new Error('cannot compare x')
      return (a as number) - (b as number)
    },
  })
  for (const n of [5, 3, 8, 1, 9, 2, 7]) q.putNowait(n)
  poisoned = true
  t.throws(() => q.putNowait('x'), { message: 'cannot compare x' })
  t.is(q.qsize(), 7)
  const got = []
  while (!q.empty()) got.push(q.getNowait())
  t.deepEqual(got, [1, 2, 3, 5, 7, 8, 9])
  // A get whose sift-down throws keeps every item too.
  poisoned = false
  for (const n of [4, 'x', 6, 1]) q.putNowait(n as number)
  poisoned = true
  t.throws(() => q.getNowait(), { message: 'cannot compare x' })
  t.is(q.qsize(), 4)
  poisoned = false
  const rest = []
  while (!q.empty()) rest.push(q.getNowait())
  // 'x' compares as NaN once allowed, so only membership is defined: nothing was lost.
  t.deepEqual(rest.map(String).sort(), ['1', '4', '6', 'x'])
})

both('PriorityQueue: a blocked put whose item compare refuses fails; the get that made room returns its item', function* (t, m) {
  const q = new m.PriorityQueue<string>({
    maxsize: 2,
    compare: (a, b) => {
      if (a === 'bad' || b === 'bad') throw new Error('cannot compare bad')
      return a < b ? -1 : a > b ? 1 : 0
    },
  })
  q.putNowait('a')
  q.putNowait('c')
  const bad = spawnRecording(m, () => q.put('bad'))
  const good = spawnRecording(m, () => q.put('b'))
  yield* letOthersRun(m)
  t.is(yield q.get(), 'a')
  yield* letOthersRun(m)
  t.is((bad.caught() as Error)?.message, 'cannot compare bad')
  // The room went to the next putter in line.
  t.true(good.g.dead && good.caught() === undefined)
  t.deepEqual([q.getNowait(), q.getNowait()], ['b', 'c'])
  t.true(q.empty())
})

both('PriorityQueue hands an item taken from a killed getter back before its equals', function* (t, m) {
  const q = new m.PriorityQueue<[number, string]>()
  const { g } = spawnRecording(m, () => q.get())
  yield m.sleep(0)
  q.putNowait([1, 'first'])
  q.putNowait([1, 'second'])
  yield g.kill()
  t.deepEqual(q.getNowait(), [1, 'first'])
  t.deepEqual(q.getNowait(), [1, 'second'])
})

both('JoinableQueue.join() waits until taskDone() was called for every item put', function* (t, m) {
  const q = new m.JoinableQueue<number>()
  t.true(yield q.join())
  const processed: number[] = []
  const worker = m.go(function* () {
    for (;;) {
      let item: number
      try {
        item = yield q.get()
      } catch (err) {
        if (err instanceof m.QueueShutDown) return
        throw err
      }
      yield m.sleep(2)
      processed.push(item)
      q.taskDone()
    }
  })
  for (let i = 0; i < 5; i++) yield q.put(i)
  t.true(q.unfinishedTasks > 0)
  t.true(yield q.join({ timeoutMs: 5_000 }))
  t.deepEqual(processed, [0, 1, 2, 3, 4])
  t.is(q.unfinishedTasks, 0)
  q.shutdown()
  yield worker.get()
})

both('JoinableQueue.join() returns false on timeout, and taskDone() too often throws', function* (t, m) {
  const q = new m.JoinableQueue<string>()
  q.putNowait('never done')
  t.false(yield q.join({ timeoutMs: 10 }))
  q.getNowait()
  q.taskDone()
  t.throws(() => q.taskDone(), { message: /taskDone\(\) called more times/ })
})

both('JoinableQueue counts items that blocked putters and channel-style hand-offs bring in', function* (t, m) {
  const q = new m.JoinableQueue<number>({ maxsize: 1 })
  q.putNowait(1)
  const putter = m.spawn(() => q.put(2))
  yield m.sleep(0)
  t.is(q.unfinishedTasks, 1)
  q.getNowait()
  yield putter.join()
  t.is(q.unfinishedTasks, 2)
  const getter = m.spawn(() => {
    q.getNowait()
    return q.get()
  })
  yield m.sleep(0)
  q.putNowait(3) // handed straight to the waiting getter
  t.is(yield getter.get(), 3)
  t.is(q.unfinishedTasks, 3)
})

both('Channel.put() waits until a getter takes the item', function* (t, m) {
  const ch = new m.Channel<string>()
  t.is(ch.maxsize, 0)
  t.is(ch.qsize(), 0)
  t.true(ch.full())
  let delivered = false
  const putter = m.go(function* () {
    yield ch.put('hello')
    delivered = true
  })
  yield m.sleep(10)
  t.false(delivered)
  t.is(yield ch.get(), 'hello')
  yield putter.join()
  t.true(delivered)
})

test('Channel.get({ timeoutMs }) keeps its deadline when putters that called it leave before it runs', async (t) => {
  const ch = new Channel<string>()
  const started = performance.now()
  const getter = spawn(() => ch.get({ timeoutMs: 150 }))
  const putters: Greenlet[] = []
  for (let i = 0; i < 4; i++) {
    await sleep(60)
    putters.push(
      spawn(async () => {
        const leave = new AbortController()
        const put = ch.put(`x${i}`, { signal: leave.signal })
        // Out of line before the getter it called has run.
        leave.abort(new Error('changed my mind'))
        await put.catch(() => undefined)
      }),
    )
  }
  const err = await getter.get().catch((e: unknown) => e)
  const elapsed = performance.now() - started
  t.true(err instanceof QueueEmpty, String(err))
  // Restarted by each putter it was 60 ms * 4 + 150 ms.
  t.true(elapsed < 340, `rejected after ${elapsed.toFixed(0)} ms`)
  await joinall(putters)
})

both('Channel: get() waits for a putter, putNowait() needs a waiting getter, getNowait() a waiting putter', function* (t, m) {
  const ch = new m.Channel<number>()
  t.throws(() => ch.putNowait(1), { instanceOf: m.QueueFull })
  t.throws(() => ch.getNowait(), { instanceOf: m.QueueEmpty })
  const getter = m.spawn(() => ch.get())
  yield m.sleep(0)
  ch.putNowait(1)
  t.is(yield getter.get(), 1)
  const putter = m.spawn(() => ch.put(2))
  yield m.sleep(0)
  t.is(ch.getNowait(), 2)
  yield putter.join()
  yield* m.throws(t, () => ch.put(3, { timeoutMs: 5 }), { instanceOf: m.QueueFull })
})

both('bad arguments raise errors that name them', function* (t, m) {
  t.throws(() => new m.Queue({ maxsize: 0 }), { instanceOf: RangeError, message: /options\.maxsize.*Channel/ })
  t.throws(() => new m.Queue({ maxsize: 1.5 }), { instanceOf: RangeError, message: /options\.maxsize/ })
  t.throws(() => new m.Queue({ maxsize: '3' as any }), { instanceOf: TypeError, message: /options\.maxsize/ })
  t.throws(() => new m.Queue(3 as any), { instanceOf: TypeError, message: /options must be an options object/ })
  t.throws(() => new m.PriorityQueue({ compare: 'asc' as any }), { instanceOf: TypeError, message: /options\.compare/ })
  const q = new m.Queue<number>()
  yield* m.throws(t, () => q.get({ timeoutMs: -5 }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
  yield* m.throws(t, () => q.put(1, { timeoutMs: NaN }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
  t.true(q.empty())
})

// Mode-specific behaviour.

test.serial('async: for await iterates the items, and ends once shutdown() is called and the rest is drained', async (t) => {
  const q = new Queue<number>()
  const seen: number[] = []
  const consumer = spawn(async () => {
    for await (const item of q) seen.push(item)
    return 'ended'
  })
  for (let i = 0; i < 3; i++) {
    await q.put(i)
    await sleep(0)
  }
  q.putNowait(3)
  q.putNowait(4)
  q.shutdown()
  t.is(await consumer.get(), 'ended')
  t.deepEqual(seen, [0, 1, 2, 3, 4])
})

test.serial('async: queues run outside any greenlet too', async (t) => {
  const q = new Queue<number>()
  spawn(async () => {
    await sleep(5)
    await q.put(9)
  })
  t.is(await q.get({ timeoutMs: 5_000 }), 9)
})

test.serial('sync: for-of iterates the items, blocking for each, and ends once shutdown() is called and the rest is drained', async (t) => {
  await sync.run(() => {
    const q = new sync.Queue<number>()
    const seen: number[] = []
    const consumer = sync.spawn(() => {
      for (const item of q) seen.push(item)
      return 'ended'
    })
    for (let i = 0; i < 3; i++) {
      q.put(i)
      sync.sleep(0)
    }
    t.deepEqual(seen, [0, 1, 2], 'each item is taken as it comes')
    q.putNowait(3)
    q.putNowait(4)
    q.shutdown()
    t.is(consumer.get(), 'ended')
    t.deepEqual(seen, [0, 1, 2, 3, 4])

    const drained = new sync.LifoQueue<string>()
    drained.putNowait('a')
    drained.putNowait('b')
    drained.shutdown()
    t.deepEqual([...drained], ['b', 'a'], 'a shut-down queue spreads into its remaining items')
  })
})

test.serial('sync: a blocking queue call outside sync greenlets throws an Error naming it; non-blocking calls work anywhere', async (t) => {
  const q = new sync.Queue<number>({ maxsize: 1 })
  t.throws(() => q.get(), { message: /Queue\.get\(\) blocks, and only code running in a sync greenlet can block/ })
  q.putNowait(1)
  t.throws(() => q.put(2), { message: /Queue\.put\(\) blocks/ })
  t.throws(() => q.putNowait(2), { instanceOf: sync.QueueFull })
  t.is(q.getNowait(), 1)
  t.true(q.empty(), 'the refused calls left nothing behind')
  q.put(3) // there is room: nothing to wait for
  t.is(q.get(), 3)
  t.throws(() => [...q], { message: /Queue iteration blocks/ })
  const jq = new sync.JoinableQueue<string>()
  t.true(jq.join())
  jq.putNowait('task')
  t.throws(() => jq.join(), { message: /JoinableQueue\.join\(\) blocks/ })
  t.is(jq.getNowait(), 'task')
  jq.taskDone()
  t.true(jq.join())
  // Nothing the refused waits enqueued is served later.
  await sync.run(() => {
    const getter = sync.spawn(() => q.get())
    sync.sleep(0)
    q.putNowait(4)
    t.is(getter.get(), 4)
    t.true(q.empty())
  })
})

both('get({ signal }) and put({ signal }) stop waiting when the signal aborts, and leave the line to the others', function* (t, m) {
  const q = new m.Queue<string>({ maxsize: 1 })
  const controller = new AbortController()
  let aborted: unknown
  const impatient = m.go(function* () {
    try {
      yield q.get({ signal: controller.signal })
    } catch (err) {
      aborted = err
    }
  })
  const patient = m.spawn(() => q.get())
  yield m.sleep(0)
  const reason = new Error('no longer needed')
  controller.abort(reason)
  yield impatient.join()
  t.is(aborted, reason)
  q.putNowait('first')
  t.is(yield patient.get(), 'first', 'the aborted getter was out of the line')

  // A put that waits for room, aborted: its item is not queued.
  q.putNowait('kept')
  const putAbort = new AbortController()
  const putter = m.spawn(() => q.put('dropped', { signal: putAbort.signal }))
  yield m.sleep(0)
  putAbort.abort()
  const err = yield* m.throws(t, () => putter.get())
  t.is(err.name, 'AbortError')
  t.is(yield q.get(), 'kept')
  t.true(q.empty())
})

both('an already aborted signal fails the call at once and takes nothing; a non-signal is a TypeError', function* (t, m) {
  const q = new m.Queue<number>()
  q.putNowait(1)
  const reason = new Error('too late')
  yield* m.throws(t, () => q.get({ signal: AbortSignal.abort(reason) }), { message: /too late/ })
  t.is(q.qsize(), 1)
  yield* m.throws(t, () => q.get({ signal: {} as any }), { instanceOf: TypeError, message: /options\.signal must be an AbortSignal/ })
  t.is(yield q.get({ signal: new AbortController().signal }), 1)
})

both('an item handed to a getter whose signal aborts before it ran goes back to the front of the queue', function* (t, m) {
  const q = new m.Queue<string>()
  const controller = new AbortController()
  let caught: unknown
  const getter = m.go(function* () {
    try {
      return yield q.get({ signal: controller.signal })
    } catch (err) {
      caught = err
      return 'aborted'
    }
  })
  yield m.sleep(0)
  q.putNowait('x')
  q.putNowait('y')
  controller.abort()
  t.is(yield getter.get(), 'aborted')
  t.is((caught as Error).name, 'AbortError')
  t.deepEqual([q.getNowait(), q.getNowait()], ['x', 'y'])
})

test.serial('async: get({ signal }) outside any greenlet stops waiting when the signal aborts; the listener is removed', async (t) => {
  const q = new Queue<number>()
  const controller = new AbortController()
  const waiting = q.get({ signal: controller.signal })
  setTimeout(() => controller.abort(), 5)
  // A DOMException, which ava's throwsAsync does not take for an error.
  const err = await waiting.then(
    () => undefined,
    (e: unknown) => e,
  )
  t.is((err as Error)?.name, 'AbortError')
  t.is(getEventListeners(controller.signal, 'abort').length, 0)
  const second = new AbortController()
  const got = q.get({ signal: second.signal })
  q.putNowait(7)
  t.is(await got, 7)
  t.is(getEventListeners(second.signal, 'abort').length, 0, 'a wait that ends removes its listener')
})

both('a put/get ping-pong that never waits for anything else still lets timers and I/O run', function* (t, m) {
  const ping = new m.Queue<number>()
  const pong = new m.Queue<number>()
  let stop = false
  let timerFired = false
  setTimeout(() => {
    timerFired = true
    stop = true
  }, 20)
  const echo = m.go(function* () {
    for (;;) {
      const x: number = yield ping.get()
      if (x < 0) return
      pong.putNowait(x)
    }
  })
  let rounds = 0
  while (!stop) {
    ping.putNowait(rounds)
    t.is(yield pong.get(), rounds)
    rounds++
  }
  ping.putNowait(-1)
  yield echo.join()
  t.true(timerFired, 'the event loop ran the timer while the ping-pong went on')
  t.true(rounds > 0)
})

// Restates gevent's src/gevent/tests/test__queue.py TestQueue.test_max_size.
both('put() on a queue with room completes without yielding: with maxsize 2, two puts complete at once, the third waits for a get()', function* (t, m) {
  const q = new m.Queue<string>({ maxsize: 2 })
  const results: string[] = []
  const putter = m.go(function* () {
    for (const item of ['a', 'b', 'c']) {
      yield q.put(item)
      results.push(item)
    }
    return 'OK'
  })
  yield* letOthersRun(m)
  t.deepEqual(results, ['a', 'b'])
  t.is(yield q.get(), 'a')
  yield m.sleep(0)
  t.deepEqual(results, ['a', 'b', 'c'])
  t.is(yield q.get(), 'b')
  t.is(yield q.get(), 'c')
  t.is(yield putter.get({ timeoutMs: 0 }), 'OK')
})

// Restates gevent's src/gevent/tests/test__queue.py TestQueue.test_put_nowait_unlock: the getter
// handed the item has not run yet when the put returns (it runs at the putter's next wait).
both('put() that hands its item to a waiting getter goes on before the getter runs', function* (t, m) {
  const q = new m.Queue<string>()
  const events: string[] = []
  const getter = m.go(function* () {
    events.push(`got ${yield q.get()}`)
  })
  yield m.sleep(0)
  yield q.put('hi')
  events.push('put returned')
  yield getter.join()
  t.deepEqual(events, ['put returned', 'got hi'])
})

// Restates gevent's src/gevent/tests/test__queue.py TestChannel.test_send.
both('Channel.put() returns only after a getter took the item, and the getter runs first', function* (t, m) {
  const ch = new m.Channel<string>()
  const events: string[] = []
  const g = m.go(function* () {
    events.push(yield ch.get())
    events.push(yield ch.get())
  })
  events.push('sending')
  yield ch.put('hello')
  events.push('sent hello')
  yield ch.put('world')
  events.push('sent world')
  t.deepEqual(events, ['sending', 'hello', 'sent hello', 'world', 'sent world'])
  yield g.get()
})

// Restates gevent's src/gevent/tests/test__queue.py TestChannel.test_wait.
both('Channel.get() waits for a putter, and the putter resumes after the getter', function* (t, m) {
  const ch = new m.Channel<string>()
  const events: string[] = []
  const g = m.go(function* () {
    events.push('sending hello')
    yield ch.put('hello')
    events.push('sending world')
    yield ch.put('world')
    events.push('sent world')
  })
  events.push('waiting')
  events.push(yield ch.get())
  events.push(yield ch.get())
  t.deepEqual(events, ['waiting', 'sending hello', 'hello', 'sending world', 'world'])
  yield* letOthersRun(m)
  t.deepEqual(events, ['waiting', 'sending hello', 'hello', 'sending world', 'world', 'sent world'])
  yield g.get()
})

both('Channel: a put returns only once a getter took the item; a getter killed before it ran takes nothing', function* (t, m) {
  const ch = new m.Channel<string>()
  const first = m.go(function* () {
    return yield ch.get()
  })
  yield m.sleep(1)
  let put = false
  const putter = m.go(function* () {
    yield ch.put('w')
    put = true
  })
  void first.kill(undefined, { block: false }) // before it ran: it never takes 'w'
  yield m.joinall([first])
  yield m.sleep(1)
  t.false(put, 'the put returned though no getter took the item')
  t.is(ch.qsize(), 0)
  t.is(yield ch.get(), 'w')
  yield putter.join()
  t.true(put)
  t.is(ch.qsize(), 0)
})

test.serial('async: Channel: a put whose getter is killed in the same turn, before it ran, waits for the next getter', async (t) => {
  const ch = new Channel<string>()
  const first = spawn(() => ch.get())
  await sleep(1)
  const putting = spawn(async () => {
    const put = ch.put('w') // the getter waiting is called
    void first.kill(undefined, { block: false })
    await put
    return 'put'
  })
  await sleep(5)
  t.false(putting.dead, 'the put returned though no getter took the item')
  t.is(ch.qsize(), 0)
  t.is(await ch.get(), 'w')
  t.is(await putting.get(), 'put')
})

// Restates gevent's src/gevent/tests/test__queue.py TestChannel.test_zero_max_size.
both('Channel: a putter waits for a getter, which gets the item before the putter resumes', function* (t, m) {
  const ch = new m.Channel<string>()
  const e1 = new m.AsyncResult<string>()
  const e2 = new m.AsyncResult<string>()
  const p1 = m.go(function* () {
    yield ch.put('hi')
    e1.set('done')
  })
  yield m.sleep(1)
  t.false(e1.ready())
  const p2 = m.go(function* () {
    e2.set(yield ch.get())
  })
  t.is(yield e2.get(), 'hi')
  t.is(yield e1.get(), 'done')
  yield m.joinall([p1, p2], { timeoutMs: 0 })
  t.true(p1.dead && p2.dead)
})

// Restates gevent's src/gevent/tests/test__queue.py TestQueue.test_send_first and test_peek_empty.
both('peek() and peekNowait() return the next item without removing it; on an empty queue peek() times out with QueueEmpty', function* (t, m) {
  const q = new m.Queue<string>()
  t.throws(() => q.peekNowait(), { instanceOf: m.QueueEmpty })
  yield* m.throws(t, () => q.peek({ timeoutMs: 10 }), { instanceOf: m.QueueEmpty })
  q.putNowait('hi')
  q.putNowait('there')
  t.is(yield q.peek(), 'hi')
  t.is(q.peekNowait(), 'hi')
  t.is(q.qsize(), 2)
  t.is(yield q.get(), 'hi')
  t.is(q.peekNowait(), 'there')
  const lifo = new m.LifoQueue<number>()
  const byPriority = new m.PriorityQueue<number>()
  for (const n of [2, 3, 1]) {
    lifo.putNowait(n)
    byPriority.putNowait(n)
  }
  t.is(lifo.peekNowait(), 1)
  t.is(byPriority.peekNowait(), 1)
  t.is(byPriority.getNowait(), 1)
  t.is(byPriority.peekNowait(), 2)
  yield* m.throws(t, () => q.peek({ timeoutMs: -1 }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
})

// Restates gevent's src/gevent/tests/test__queue.py TestQueue.test_peek_multi_greenlet.
both('peek() waits for an item and leaves it for get(); peekers and getters are served in arrival order', function* (t, m) {
  const q = new m.Queue<number>()
  const peeker = m.spawn(() => q.peek())
  yield m.sleep(0)
  q.putNowait(1)
  t.is(yield peeker.get(), 1)
  t.is(q.peekNowait(), 1)
  t.is(q.getNowait(), 1)

  // A getter ahead of a peeker takes the first item: the peeker sees the second.
  const first = m.spawn(() => q.peek())
  const getter = m.spawn(() => q.get())
  const second = m.spawn(() => q.peek())
  yield m.sleep(0)
  q.putNowait(10)
  t.is(yield first.get(), 10)
  t.is(yield getter.get(), 10)
  yield m.sleep(0)
  t.false(second.dead, 'the peeker behind the getter waits for the next item')
  q.putNowait(20)
  t.is(yield second.get(), 20)
  t.is(q.getNowait(), 20)
  t.true(q.empty())
})

both('peek() waiters: shutdown() raises QueueShutDown, a kill loses no item, a Channel peek sees the first blocked putter', function* (t, m) {
  const q = new m.Queue<number>()
  const victim = m.spawn(() => q.peek())
  yield m.sleep(0)
  q.putNowait(1)
  yield victim.kill()
  t.is(q.qsize(), 1, 'the item the killed peeker saw is still queued')
  t.is(q.getNowait(), 1)
  const peeker = m.spawn(() => q.peek())
  yield m.sleep(0)
  q.shutdown()
  yield* m.throws(t, () => peeker.get(), { instanceOf: m.QueueShutDown })
  t.throws(() => q.peekNowait(), { instanceOf: m.QueueShutDown })

  const ch = new m.Channel<string>()
  const channelPeeker = m.spawn(() => ch.peek())
  yield m.sleep(0)
  t.throws(() => ch.putNowait('nobody gets this'), { instanceOf: m.QueueFull })
  const putter = m.spawn(() => ch.put('x'))
  t.is(yield channelPeeker.get(), 'x')
  t.is(ch.peekNowait(), 'x')
  t.is(yield ch.get(), 'x')
  yield putter.get()
  t.throws(() => ch.peekNowait(), { instanceOf: m.QueueEmpty })
})
