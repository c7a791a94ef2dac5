import test from 'ava'

import { GreenletExit, Timeout, sleep, spawn } from '../index'
import { AsyncResult, Event } from '../index'

// The hub is process-wide: ordering tests must not share turns with other tests.
const serial = test.serial

serial('Event.wait() resolves true at once when the flag is already set', async (t) => {
  const e = new Event()
  t.false(e.isSet())
  e.set()
  t.true(e.isSet())
  t.true(await e.wait())
  t.true(await e.wait({ timeoutMs: 0 }))
})

serial('Event.set() wakes every waiter, in the order they began waiting', async (t) => {
  const e = new Event()
  const woke: string[] = []
  const gs = ['a', 'b', 'c'].map((name) =>
    spawn(async () => {
      t.true(await e.wait())
      woke.push(name)
    }),
  )
  await sleep(0)
  t.deepEqual(woke, [])
  e.set()
  for (const g of gs) await g.get()
  t.deepEqual(woke, ['a', 'b', 'c'])
})

serial('Event.wait() resolves false when timeoutMs expires before set()', async (t) => {
  const e = new Event()
  const start = Date.now()
  t.false(await e.wait({ timeoutMs: 50 }))
  t.true(Date.now() - start >= 45, `gave up after ${Date.now() - start} ms`)
  t.false(await e.wait({ timeoutMs: 0 }))
})

serial('a waiter woken by set() resolves true even if clear() runs before it does', async (t) => {
  const e = new Event()
  const g = spawn(() => e.wait())
  await sleep(0)
  e.set()
  e.clear()
  t.true(await g.get())
  t.false(e.isSet())
})

serial('after clear(), wait() blocks until the next set()', async (t) => {
  const e = new Event()
  e.set()
  e.clear()
  t.false(await e.wait({ timeoutMs: 10 }))
  const g = spawn(() => e.wait())
  await sleep(5)
  t.false(g.dead)
  e.set()
  t.true(await g.get())
})

serial('killing a greenlet waiting on an Event rejects its wait with GreenletExit; the others still wake', async (t) => {
  const e = new Event()
  let caught: unknown
  const victim = spawn(async () => {
    try {
      await e.wait()
    } catch (err) {
      caught = err
      throw err
    }
  })
  const survivor = spawn(() => e.wait({ timeoutMs: 5_000 }))
  await sleep(0)
  await victim.kill()
  t.true(caught instanceof GreenletExit)
  e.set()
  t.true(await survivor.get())
})

serial('Event.wait() works outside any greenlet', async (t) => {
  const e = new Event()
  spawn(async () => {
    await sleep(5)
    e.set()
  })
  t.true(await e.wait({ timeoutMs: 5_000 }))
})

serial('Event.wait() rejects bad options with errors that name them', async (t) => {
  const e = new Event()
  await t.throwsAsync(e.wait({ timeoutMs: -1 }), { instanceOf: RangeError, message: /options\.timeoutMs/ })
  await t.throwsAsync(e.wait({ timeoutMs: 'soon' as any }), { instanceOf: TypeError, message: /options\.timeoutMs/ })
  await t.throwsAsync(e.wait(5 as any), { instanceOf: TypeError, message: /options must be an options object/ })
})

serial('AsyncResult.get() waits for set() and resolves with the value, for every waiter', async (t) => {
  const r = new AsyncResult<number>()
  const gs = [spawn(() => r.get()), spawn(() => r.get())]
  await sleep(0)
  t.false(r.ready())
  r.set(42)
  t.deepEqual(await Promise.all(gs.map((g) => g.get())), [42, 42])
  t.is(await r.get(), 42)
})

serial('AsyncResult.get() rejects with the exception given to setException()', async (t) => {
  const r = new AsyncResult<number>()
  const boom = new Error('boom')
  const g = spawn(() => r.get())
  await sleep(0)
  r.setException(boom)
  t.is(await t.throwsAsync(g.get()), boom)
  t.is(await t.throwsAsync(r.get()), boom)
})

serial('AsyncResult.get() rejects with Timeout when nothing is set in time, and at once with block: false', async (t) => {
  const r = new AsyncResult()
  await t.throwsAsync(r.get({ timeoutMs: 10 }), { instanceOf: Timeout })
  await t.throwsAsync(r.get({ block: false }), { instanceOf: Timeout, message: /not ready/ })
  r.set('late')
  t.is(await r.get({ block: false }), 'late')
})

serial('ready(), successful(), value and exception describe the result; a later set replaces it', (t) => {
  const r = new AsyncResult<string>()
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

serial('AsyncResult.callback as a link callback copies a greenlet value or exception', async (t) => {
  const ok = new AsyncResult<number>()
  spawn(async () => 7).link(ok.callback)
  t.is(await ok.get({ timeoutMs: 5_000 }), 7)

  const failed = new AsyncResult<number>()
  const boom = new Error('boom')
  spawn(async () => {
    throw boom
  }).link(failed.callback)
  t.is(await t.throwsAsync(failed.get({ timeoutMs: 5_000 })), boom)

  const copy = new AsyncResult<number>()
  copy.callback(ok)
  t.is(copy.value, 7)
})

serial('AsyncResult.wait() resolves true once set, false on timeout, and never rejects for the exception', async (t) => {
  const r = new AsyncResult()
  t.false(await r.wait({ timeoutMs: 5 }))
  const g = spawn(() => r.wait())
  await sleep(0)
  r.setException(new Error('ignored by wait'))
  t.true(await g.get())
  t.true(await r.wait())
})

serial('killing a greenlet blocked in AsyncResult.get() rejects it with the kill exception', async (t) => {
  const r = new AsyncResult()
  let caught: unknown
  const g = spawn(async () => {
    try {
      await r.get()
    } catch (err) {
      caught = err
    }
  })
  await sleep(0)
  const reason = new Error('stop waiting')
  await g.kill(reason)
  t.is(caught, reason)
  r.set(1)
  t.is(await r.get(), 1)
})
