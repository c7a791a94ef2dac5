import * as path from 'node:path'

import test from 'ava'

import { describeExit, runNode } from './_child'
import { GreenletExit, Timeout, allTasks, currentTask, gather, sleep, spawn, waitFor } from '../index'

const serial = test.serial

async function factorial(log: string[], name: string, n: number): Promise<number> {
  let f = 1
  for (let i = 2; i <= n; i++) {
    log.push(`Task ${name}: Compute factorial(${i})...`)
    await sleep(20)
    f *= i
  }
  log.push(`Task ${name}: factorial(${n}) = ${f}`)
  return f
}

serial('gather runs awaitables concurrently and keeps the input order', async (t) => {
  const log: string[] = []
  const start = Date.now()
  const results = await gather(
    () => factorial(log, 'A', 2),
    () => factorial(log, 'B', 3),
    () => factorial(log, 'C', 4),
  )
  t.deepEqual(results, [2, 6, 24])
  // Interleaved as in the asyncio seed, and overlapping: ~3 steps, not 6.
  t.deepEqual(log.slice(0, 3), ['Task A: Compute factorial(2)...', 'Task B: Compute factorial(2)...', 'Task C: Compute factorial(2)...'])
  t.true(Date.now() - start < 6 * 20 + 60)
})

serial('gather accepts promises and greenlets, and rejects with the first failure', async (t) => {
  t.deepEqual(await gather(Promise.resolve(1), spawn(() => 2)), [1, 2])
  const boom = new Error('boom')
  await t.throwsAsync(gather(Promise.resolve(1), Promise.reject(boom)), { is: boom })
})

serial('gather with returnExceptions puts failures in the results', async (t) => {
  const boom = new Error('boom')
  t.deepEqual(await gather(Promise.resolve(1), Promise.reject(boom), { returnExceptions: true }), [1, boom])
  await t.throwsAsync(gather(42 as any), { instanceOf: TypeError, message: /awaitables\[0\]/ })
})

serial('waitFor rejects with Timeout and kills the work', async (t) => {
  let finished = false
  const eternity = async () => {
    await sleep(3_600_000)
    finished = true
  }
  await t.throwsAsync(waitFor(eternity, 30), { instanceOf: Timeout })
  t.false(finished)
  t.deepEqual(allTasks(), [])
})

serial('waitFor resolves with the value in time, for functions, greenlets and promises', async (t) => {
  t.is(await waitFor(async () => 'fn', 200), 'fn')
  t.is(await waitFor(spawn(() => 'greenlet'), 200), 'greenlet')
  t.is(await waitFor(sleep(5).then(() => 'promise'), 200), 'promise')
  await t.throwsAsync(waitFor(new Promise(() => undefined), 20), { instanceOf: Timeout })
  t.is(await waitFor(Promise.resolve('no limit'), null), 'no limit')
  await t.throwsAsync(waitFor(Promise.resolve(1), -1), { instanceOf: RangeError, message: /timeoutMs/ })
})

serial('currentTask and allTasks describe the running greenlets', async (t) => {
  t.is(currentTask(), null)
  const g = spawn(async () => {
    t.is(currentTask(), g)
    await sleep(30)
  })
  await sleep(5)
  t.deepEqual(allTasks(), [g])
  await g.join()
  t.deepEqual(allTasks(), [])
})

// A greenlet nobody can resume any more (a generator-style producer dropped
// while suspended in switch(), a wait on an Event dropped since) is
// collected once it has lived through two sweeps of the live list, as an
// abandoned async function is; one that is still referenced stays listed.
serial('allTasks does not keep abandoned greenlets alive: they are collected, the ones still referenced stay listed', async (t) => {
  const script = `
    const { Event, Greenlet, allTasks, spawn } = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})
    const { sweepLiveGreenlets } = require(${JSON.stringify(path.join(__dirname, '..', 'src', '_greenlet-base.js'))})
    const kept = []
    const refs = []
    const consumer = spawn(async () => {
      for (let i = 0; i < 200; i++) {
        const producer = new Greenlet(async () => {
          const big = new Array(20_000).fill(i)
          for (;;) await consumer.switch(big.length)
        })
        await producer.switch()
        refs.push(new WeakRef(producer))
        if (i % 2 === 0) kept.push(producer)
        refs.push(new WeakRef(spawn(() => new Event().wait())))
      }
    })
    consumer.join().then(async () => {
      await new Promise((r) => setImmediate(r))
      sweepLiveGreenlets()
      sweepLiveGreenlets()
      await new Promise((r) => setImmediate(r))
      gc()
      await new Promise((r) => setImmediate(r))
      gc()
      const alive = refs.filter((r) => r.deref() !== undefined).length
      const listed = allTasks()
      console.log(alive, listed.length, kept.every((g) => listed.includes(g)))
    })
  `
  const r = await runNode(['--expose-gc', '-e', script], { timeoutMs: 60_000 })
  t.is(r.status, 0, describeExit(r))
  t.is(r.stdout.trim(), '100 100 true')
})

// asyncio's gather: cancelling the task that awaits it cancels the children;
// a child cancelled from outside is a CancelledError (here GreenletExit).
serial('gather: a kill or Timeout of the caller kills the greenlets it gathers; a child killed from outside fails with GreenletExit', async (t) => {
  const finished: string[] = []
  const child = (name: string) => async () => {
    await sleep(300)
    finished.push(name)
  }
  const passed = spawn(child('passed'))
  const caller = spawn(() => gather(child('spawned'), passed, sleep(300).then(() => 'promise')))
  await sleep(50)
  await caller.kill()
  t.true(caller.dead)
  await sleep(0)
  t.true(passed.dead, 'a greenlet handed to gather is killed with its caller')
  await sleep(400)
  t.deepEqual(finished, [], 'nothing gathered ran on after its caller died')
  await t.throwsAsync(
    spawn(() => Timeout.run(50, () => gather(child('under a Timeout')))).get(),
    { instanceOf: Timeout },
  )
  await sleep(400)
  t.deepEqual(finished, [])

  const killed = spawn(() => sleep(10_000))
  setTimeout(() => void killed.kill(undefined, { block: false }), 20)
  await t.throwsAsync(gather(killed, sleep(50).then(() => 'b')), { instanceOf: GreenletExit, message: /was killed before it returned/ })
  const again = spawn(() => sleep(10_000))
  setTimeout(() => void again.kill(undefined, { block: false }), 20)
  const results = await gather(again, sleep(50).then(() => 'b'), { returnExceptions: true })
  t.true(results[0] instanceof GreenletExit)
  t.is(results[1], 'b')
  // A failure leaves the others running, as asyncio's.
  const slow = spawn(async () => {
    await sleep(60)
    return 'slow'
  })
  await t.throwsAsync(gather(slow, Promise.reject(new Error('first'))), { message: 'first' })
  t.is(await slow.get(), 'slow')
})

// asyncio's wait_for waits for the cancelled task to end; here the deadline
// holds even for work in a foreign await, which a kill cannot end.
serial('waitFor rejects at the deadline even when the work sits in a foreign await, and the work is killed', async (t) => {
  const started = Date.now()
  await t.throwsAsync(waitFor(() => new Promise(() => undefined), 50), { instanceOf: Timeout })
  t.true(Date.now() - started < 5000, 'it did not wait for a Promise that never settles')
  const work = spawn(async () => {
    try {
      await sleep(10_000)
    } finally {
      await sleep(50)
    }
  })
  await t.throwsAsync(waitFor(work, 30), { instanceOf: Timeout })
  await work.join()
  t.true(work.dead)
})
