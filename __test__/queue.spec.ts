import test from 'ava'

import { GreenletExit, Timeout, joinall, sleep, spawn } from '../index'
import { Channel, JoinableQueue, LifoQueue, PriorityQueue, Queue, QueueEmpty, QueueFull, QueueShutDown } from '../index'

// The hub is process-wide: ordering tests must not share turns with other tests.
const serial = test.serial

/** Runs `fn` in a greenlet and records the error its wait rejected with before re-raising it. */
function spawnRecording<T>(fn: () => Promise<T>): { g: ReturnType<typeof spawn<T>>; caught: () => unknown } {
  let caught: unknown
  const g = spawn(async () => {
    try {
      return await fn()
    } catch (err) {
      caught = err
      throw err
    }
  })
  return { g, caught: () => caught }
}

serial('get() returns items in the order they were put', async (t) => {
  const q = new Queue<number>()
  for (let i = 0; i < 5; i++) await q.put(i)
  const got = []
  for (let i = 0; i < 5; i++) got.push(await q.get())
  t.deepEqual(got, [0, 1, 2, 3, 4])
})

serial('get() waiters are served in FIFO order', async (t) => {
  const q = new Queue<string>()
  const getters = ['a', 'b', 'c'].map((name) => spawn(async () => `${name}:${await q.get()}`))
  await sleep(0)
  q.putNowait('1')
  q.putNowait('2')
  q.putNowait('3')
  t.deepEqual(await Promise.all(getters.map((g) => g.get())), ['a:1', 'b:2', 'c:3'])
  t.true(q.empty())
})

serial('a getter that times out leaves the line without disturbing the others', async (t) => {
  const q = new Queue<string>()
  const first = spawn(() => q.get())
  const impatient = spawn(() => q.get({ timeoutMs: 10 }))
  const last = spawn(() => q.get())
  await t.throwsAsync(impatient.get(), { instanceOf: QueueEmpty })
  q.putNowait('x')
  q.putNowait('y')
  t.is(await first.get(), 'x')
  t.is(await last.get(), 'y')
})

serial('put() on a full queue waits for a get() to free a slot; blocked putters go in FIFO order', async (t) => {
  const q = new Queue<number>({ maxsize: 2 })
  await q.put(1)
  await q.put(2)
  t.true(q.full())
  const done: number[] = []
  const putters = [3, 4, 5].map((n) =>
    spawn(async () => {
      await q.put(n)
      done.push(n)
    }),
  )
  await sleep(10)
  t.deepEqual(done, [])
  t.is(q.qsize(), 2)
  const got = []
  for (let i = 0; i < 5; i++) got.push(await q.get())
  await joinall(putters)
  t.deepEqual(got, [1, 2, 3, 4, 5])
  t.deepEqual(done, [3, 4, 5])
  t.true(q.empty())
})

serial('getNowait() throws QueueEmpty and putNowait() throws QueueFull', (t) => {
  const q = new Queue<number>({ maxsize: 1 })
  t.throws(() => q.getNowait(), { instanceOf: QueueEmpty })
  q.putNowait(1)
  t.throws(() => q.putNowait(2), { instanceOf: QueueFull })
  t.is(q.getNowait(), 1)
})

serial('get() rejects with QueueEmpty and put() with QueueFull when timeoutMs expires', async (t) => {
  const q = new Queue<number>({ maxsize: 1 })
  const start = Date.now()
  await t.throwsAsync(q.get({ timeoutMs: 30 }), { instanceOf: QueueEmpty })
  t.true(Date.now() - start >= 25, `gave up after ${Date.now() - start} ms`)
  await q.put(1)
  await t.throwsAsync(q.put(2, { timeoutMs: 0 }), { instanceOf: QueueFull })
  t.is(q.qsize(), 1)
})

serial('qsize(), empty(), full() and maxsize describe the queue', async (t) => {
  const unbounded = new Queue<number>()
  t.is(unbounded.maxsize, Infinity)
  for (let i = 0; i < 1000; i++) unbounded.putNowait(i)
  t.is(unbounded.qsize(), 1000)
  t.false(unbounded.full())
  const q = new Queue<number>({ maxsize: 2 })
  t.is(q.maxsize, 2)
  t.true(q.empty())
  q.putNowait(1)
  t.false(q.empty())
  t.false(q.full())
  q.putNowait(2)
  t.true(q.full())
  t.is(q.qsize(), 2)
})

serial('the FIFO buffer keeps order across growth and wrap-around', (t) => {
  const q = new Queue<number>()
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

serial('killing a greenlet waiting in get() rejects its wait with GreenletExit and the queue still works', async (t) => {
  const q = new Queue<number>()
  const { g, caught } = spawnRecording(() => q.get())
  await sleep(0)
  await g.kill()
  t.true(caught() instanceof GreenletExit)
  q.putNowait(1)
  t.is(q.qsize(), 1)
  t.is(await q.get(), 1)
})

serial('an item handed to a getter killed in the same turn goes back to the front of the queue', async (t) => {
  const q = new Queue<number>()
  const { g, caught } = spawnRecording(() => q.get())
  await sleep(0)
  // Hand-off (unpark) and kill reach the hub in the same turn: the kill wins.
  q.putNowait(1)
  q.putNowait(2)
  await g.kill()
  t.true(caught() instanceof GreenletExit)
  t.is(q.qsize(), 2)
  t.is(q.getNowait(), 1)
  t.is(q.getNowait(), 2)
})

serial('an item handed to a getter killed in the same turn goes to the next getter', async (t) => {
  const q = new Queue<string>()
  const { g: victim, caught } = spawnRecording(() => q.get())
  const next = spawn(() => q.get())
  await sleep(0)
  q.putNowait('item')
  await victim.kill()
  t.true(caught() instanceof GreenletExit)
  t.is(await next.get(), 'item')
  t.true(q.empty())
})

serial('a get() whose timer fires in the turn an item is handed to it still receives the item', async (t) => {
  const q = new Queue<string>()
  // The getter's 0 ms timer and the putter's yield end in the same hub turn,
  // the putter first: it hands the item over after the timer has fired.
  const getter = spawn(() => q.get({ timeoutMs: 0 }))
  const putter = spawn(async () => {
    await sleep(0)
    q.putNowait('late')
  })
  await putter.join()
  t.is(await getter.get(), 'late')
  t.true(q.empty())
})

serial('killing a blocked putter rejects its put and leaves its item out of the queue', async (t) => {
  const q = new Queue<number>({ maxsize: 1 })
  q.putNowait(1)
  const { g, caught } = spawnRecording(() => q.put(2))
  await sleep(0)
  await g.kill()
  t.true(caught() instanceof GreenletExit)
  t.is(q.getNowait(), 1)
  t.true(q.empty())
  q.putNowait(3)
  t.is(q.getNowait(), 3)
})

serial('a put accepted in the turn its greenlet is killed leaves the item queued', async (t) => {
  const q = new Queue<number>({ maxsize: 1 })
  q.putNowait(1)
  const { g, caught } = spawnRecording(() => q.put(2))
  await sleep(0)
  t.is(q.getNowait(), 1) // frees the slot: the blocked item moves in
  await g.kill()
  t.true(caught() instanceof GreenletExit)
  t.is(q.getNowait(), 2)
})

serial('a Timeout raised in a greenlet interrupts its get() and loses nothing', async (t) => {
  const q = new Queue<number>()
  const g = spawn(async () => {
    using _ = Timeout.startNew(10)
    return await q.get()
  })
  await t.throwsAsync(g.get(), { instanceOf: Timeout })
  q.putNowait(1)
  t.is(q.getNowait(), 1)
})

serial('for await iterates the items, and ends once shutdown() is called and the rest is drained', async (t) => {
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

serial('shutdown() rejects blocked getters and putters with QueueShutDown, and later puts throw it', async (t) => {
  const empty = new Queue<number>()
  const getter = spawn(() => empty.get())
  const full = new Queue<number>({ maxsize: 1 })
  full.putNowait(1)
  const putter = spawn(() => full.put(2))
  await sleep(0)
  empty.shutdown()
  full.shutdown()
  t.true(full.isShutdown())
  await t.throwsAsync(getter.get(), { instanceOf: QueueShutDown })
  await t.throwsAsync(putter.get(), { instanceOf: QueueShutDown })
  t.throws(() => full.putNowait(3), { instanceOf: QueueShutDown })
  await t.throwsAsync(full.put(3), { instanceOf: QueueShutDown })
  t.is(await full.get(), 1)
  t.throws(() => full.getNowait(), { instanceOf: QueueShutDown })
})

serial('LifoQueue returns the most recent item first', async (t) => {
  const q = new LifoQueue<number>()
  for (const n of [1, 2, 3]) q.putNowait(n)
  t.deepEqual([await q.get(), await q.get(), await q.get()], [3, 2, 1])
})

serial('PriorityQueue returns the smallest item first, equal items in put order', async (t) => {
  const q = new PriorityQueue<[number, string]>()
  for (const item of [[3, 'c'], [1, 'a1'], [2, 'b'], [1, 'a0'], [0, 'z']] as [number, string][]) q.putNowait(item)
  const got = []
  while (!q.empty()) got.push(await q.get())
  t.deepEqual(got, [[0, 'z'], [1, 'a0'], [1, 'a1'], [2, 'b'], [3, 'c']])

  const byPriority = new PriorityQueue<{ p: number; name: string }>({ compare: (a, b) => a.p - b.p })
  for (const [p, name] of [[2, 'x'], [1, 'y'], [2, 'w'], [1, 'v']] as [number, string][]) byPriority.putNowait({ p, name })
  const names = []
  while (!byPriority.empty()) names.push(byPriority.getNowait().name)
  t.deepEqual(names, ['y', 'v', 'x', 'w'])
})

serial('PriorityQueue keeps heap order over many random items', (t) => {
  const q = new PriorityQueue<number>()
  const items = Array.from({ length: 500 }, (_, i) => (i * 7919) % 503)
  for (const n of items) q.putNowait(n)
  const got = []
  while (!q.empty()) got.push(q.getNowait())
  t.deepEqual(got, [...items].sort((a, b) => a - b))
})

serial('PriorityQueue hands an item taken from a killed getter back before its equals', async (t) => {
  const q = new PriorityQueue<[number, string]>()
  const { g } = spawnRecording(() => q.get())
  await sleep(0)
  q.putNowait([1, 'first'])
  q.putNowait([1, 'second'])
  await g.kill()
  t.deepEqual(q.getNowait(), [1, 'first'])
  t.deepEqual(q.getNowait(), [1, 'second'])
})

serial('JoinableQueue.join() waits until taskDone() was called for every item put', async (t) => {
  const q = new JoinableQueue<number>()
  t.true(await q.join())
  const processed: number[] = []
  const worker = spawn(async () => {
    for await (const item of q) {
      await sleep(2)
      processed.push(item)
      q.taskDone()
    }
  })
  for (let i = 0; i < 5; i++) await q.put(i)
  t.true(q.unfinishedTasks > 0)
  t.true(await q.join({ timeoutMs: 5_000 }))
  t.deepEqual(processed, [0, 1, 2, 3, 4])
  t.is(q.unfinishedTasks, 0)
  q.shutdown()
  await worker.join()
})

serial('JoinableQueue.join() resolves false on timeout, and taskDone() too often throws', async (t) => {
  const q = new JoinableQueue<string>()
  q.putNowait('never done')
  t.false(await q.join({ timeoutMs: 10 }))
  q.getNowait()
  q.taskDone()
  t.throws(() => q.taskDone(), { message: /taskDone\(\) called more times/ })
})

serial('JoinableQueue counts items that blocked putters and channel-style hand-offs bring in', async (t) => {
  const q = new JoinableQueue<number>({ maxsize: 1 })
  q.putNowait(1)
  const putter = spawn(() => q.put(2))
  await sleep(0)
  t.is(q.unfinishedTasks, 1)
  q.getNowait()
  await putter.join()
  t.is(q.unfinishedTasks, 2)
  const getter = spawn(async () => {
    q.getNowait()
    return q.get()
  })
  await sleep(0)
  q.putNowait(3) // handed straight to the waiting getter
  t.is(await getter.get(), 3)
  t.is(q.unfinishedTasks, 3)
})

serial('Channel.put() waits until a getter takes the item', async (t) => {
  const ch = new Channel<string>()
  t.is(ch.maxsize, 0)
  t.is(ch.qsize(), 0)
  t.true(ch.full())
  let delivered = false
  const putter = spawn(async () => {
    await ch.put('hello')
    delivered = true
  })
  await sleep(10)
  t.false(delivered)
  t.is(await ch.get(), 'hello')
  await putter.join()
  t.true(delivered)
})

serial('Channel: get() waits for a putter, putNowait() needs a waiting getter, getNowait() a waiting putter', async (t) => {
  const ch = new Channel<number>()
  t.throws(() => ch.putNowait(1), { instanceOf: QueueFull })
  t.throws(() => ch.getNowait(), { instanceOf: QueueEmpty })
  const getter = spawn(() => ch.get())
  await sleep(0)
  ch.putNowait(1)
  t.is(await getter.get(), 1)
  const putter = spawn(() => ch.put(2))
  await sleep(0)
  t.is(ch.getNowait(), 2)
  await putter.join()
  await t.throwsAsync(ch.put(3, { timeoutMs: 5 }), { instanceOf: QueueFull })
})

serial('queues run outside any greenlet too', async (t) => {
  const q = new Queue<number>()
  spawn(async () => {
    await sleep(5)
    await q.put(9)
  })
  t.is(await q.get({ timeoutMs: 5_000 }), 9)
})

serial('bad arguments are rejected with errors that name them', async (t) => {
  t.throws(() => new Queue({ maxsize: 0 }), { instanceOf: RangeError, message: /options\.maxsize.*Channel/ })
  t.throws(() => new Queue({ maxsize: 1.5 }), { instanceOf: RangeError, message: /options\.maxsize/ })
  t.throws(() => new Queue({ maxsize: '3' as any }), { instanceOf: TypeError, message: /options\.maxsize/ })
  t.throws(() => new Queue(3 as any), { instanceOf: TypeError, message: /options must be an options object/ })
  t.throws(() => new PriorityQueue({ compare: 'asc' as any }), { instanceOf: TypeError, message: /options\.compare/ })
  const q = new Queue<number>()
  await t.throwsAsync(q.get({ timeoutMs: -5 }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
  await t.throwsAsync(q.put(1, { timeoutMs: NaN }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
  t.true(q.empty())
})
