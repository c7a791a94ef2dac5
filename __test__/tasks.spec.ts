import * as path from 'node:path'

import test from 'ava'

import { describeExit, runNode } from './_child'
import { Timeout, allTasks, currentTask, gather, sleep, spawn, waitFor } from '../index'

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
