import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

import test from 'ava'

import { Event, Greenlet, GreenletExit, Queue, Semaphore, Timeout, getcurrent, joinall, killall, sleep, spawn, spawnLater } from '../index'

// The hub is process-wide: ordering tests must not share turns with other tests.
const serial = test.serial

serial('a spawned greenlet starts on a later turn, not synchronously', async (t) => {
  let ran = false
  const g = spawn(() => {
    ran = true
  })
  t.false(ran)
  t.true(g.started)
  t.false(g.dead)
  await g.join()
  t.true(ran)
  t.true(g.dead)
})

serial('sleep(0) yields round-robin to every other ready greenlet', async (t) => {
  const order: string[] = []
  const gs = ['a', 'b', 'c'].map((name) =>
    spawn(async () => {
      for (let i = 0; i < 3; i++) {
        order.push(`${name}${i}`)
        await sleep(0)
      }
    }),
  )
  await joinall(gs)
  t.deepEqual(order, ['a0', 'b0', 'c0', 'a1', 'b1', 'c1', 'a2', 'b2', 'c2'])
})

serial('joinall() returns when all have finished, a greenlet listed twice as often as listed, in a copy of the list', async (t) => {
  const a = spawn(() => sleep(20))
  const b = spawn(() => sleep(5))
  const list = [a, b, a]
  const done = await joinall(list)
  t.deepEqual(done, [a, b, a])
  t.not(done, list)
  t.true(a.dead && b.dead)
  // Again, with a timeout that ends it first: only the finished ones, in order.
  const slow = spawn(() => sleep(1000))
  const fast = spawn(() => sleep(1))
  t.deepEqual(await joinall([slow, fast, slow, fast], { timeoutMs: 50 }), [fast, fast])
  slow.kill(undefined, { block: false })
  // raiseError: the first failure wins even when listed twice.
  const bad = spawn(async () => {
    await sleep(1)
    throw new Error('bad')
  })
  const err = await t.throwsAsync(joinall([bad, bad, spawn(() => sleep(30))], { raiseError: true }))
  t.is(err?.message, 'bad')
})

serial('joinall({ count }) counts entries as gevent does: a greenlet listed three times is three once it has finished', async (t) => {
  const a = spawn(() => sleep(60))
  const b = spawn(() => sleep(5))
  // b alone finishes first: one entry of the three wanted; a's three entries come with it.
  const done = await joinall([a, a, a, b], { count: 3 })
  t.true(a.dead, 'returned before three entries had finished')
  t.deepEqual(done, [a, a, a]) // three entries, in the order given (four have finished)
  const c = spawn(() => sleep(1_000))
  t.deepEqual(await joinall([c, c], { count: 1, timeoutMs: 20 }), [])
  c.kill(undefined, { block: false })
})

serial('sleep() resolves with undefined, as gevent.sleep returns None: in a greenlet and outside, yielding or timed', async (t) => {
  t.is(await spawn(() => sleep(0)).get(), undefined)
  t.is(await spawn(() => sleep(5)).get(), undefined)
  t.deepEqual(await spawn(async () => [await sleep(0), await sleep(2)]).get(), [undefined, undefined])
  t.is(await sleep(0), undefined)
  t.is(await sleep(2), undefined)
})

serial('timers cancelled by kills free their slots; the sleeps that reuse them wake at their own deadlines, not the cancelled ones', async (t) => {
  // 200 timers due at 40 ms, cancelled at ~5 ms: the native heap keeps their stale entries until then.
  const victims = Array.from({ length: 200 }, () => spawn(() => sleep(40)))
  await sleep(5)
  await killall(victims)
  const start = performance.now()
  const sleepers = Array.from({ length: 200 }, () =>
    spawn(async () => {
      await sleep(80)
      return performance.now() - start
    }),
  )
  const woke = await Promise.all(sleepers.map((g) => g.get()))
  t.true(Math.min(...woke) >= 79, `earliest wake-up after ${Math.min(...woke).toFixed(1)} ms of an 80 ms sleep`)
  t.true(victims.every((g) => g.dead && g.successful()))
})

serial('greenlets that sleep overlap: total time is the longest sleep, not the sum', async (t) => {
  const start = Date.now()
  await joinall([100, 100, 100].map((ms) => spawn(() => sleep(ms))))
  const elapsed = Date.now() - start
  t.true(elapsed >= 95, `elapsed ${elapsed}`)
  t.true(elapsed < 250, `elapsed ${elapsed} looks serial`)
})

serial('many greenlets sleeping random times wake in deadline order', async (t) => {
  // A sleep counts from its call: the wake-up order is that of the deadlines
  // (call time + delay), whatever the load makes of the time between calls.
  const delays = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) * 3)
  const woke: number[] = []
  await joinall(
    delays.map((ms) =>
      spawn(async () => {
        const deadline = performance.now() + ms
        await sleep(ms)
        woke.push(deadline)
      }),
    ),
  )
  t.is(woke.length, delays.length)
  t.deepEqual(woke, [...woke].sort((a, b) => a - b))
})

serial('get() resolves with the return value and rejects with the exception', async (t) => {
  t.is(await spawn(async (x: number) => x * 2, 21).get(), 42)
  const boom = new Error('boom')
  const g = spawn(() => {
    throw boom
  })
  await t.throwsAsync(g.get(), { is: boom })
  t.true(g.dead)
  t.false(g.successful())
  t.is(g.exception, boom)
})

serial('get() rejects with Timeout when the greenlet does not finish in time', async (t) => {
  const g = spawn(() => sleep(1000))
  const err = await t.throwsAsync(g.get({ timeoutMs: 20 }), { instanceOf: Timeout })
  t.is(err?.name, 'Timeout')
  await t.throwsAsync(g.get({ block: false }), { instanceOf: Timeout })
  await g.kill()
})

serial('join() resolves true when finished, false on timeout, and never rejects for a failure', async (t) => {
  const slow = spawn(() => sleep(500))
  t.false(await slow.join(20))
  const failing = spawn(() => {
    throw new Error('ignored by join')
  })
  t.true(await failing.join())
  void failing.exception
  await slow.kill()
})

serial('joinall with timeoutMs returns only the finished greenlets', async (t) => {
  const fast = spawn(() => sleep(5))
  const slow = spawn(() => sleep(1000))
  const done = await joinall([fast, slow], { timeoutMs: 100 })
  t.deepEqual(done, [fast])
  await slow.kill()
})

serial('joinall with count returns once that many have finished', async (t) => {
  const gs = [10, 20, 1000].map((ms) => spawn(() => sleep(ms)))
  const done = await joinall(gs, { count: 2 })
  t.deepEqual(done, gs.slice(0, 2))
  t.false(gs[2].dead)
  await killall(gs)
  t.true(gs[2].dead)
})

serial('killall({ exception, block: false }) returns at once; each greenlet then dies of that exception', async (t) => {
  const stop = new Error('stop')
  const caught: unknown[] = []
  const gs = [1, 2, 3].map(() =>
    spawn(async () => {
      try {
        await sleep(10_000)
      } catch (err) {
        caught.push(err)
        // Dying takes a while (a foreign await: a killed greenlet's own waits raise at once), and a blocking killall would wait for it.
        await new Promise((resolve) => setTimeout(resolve, 50))
        throw err
      }
    }),
  )
  // Observed through links: their failures are not reported as unlooked-at.
  const diedOf: unknown[] = []
  for (const g of gs) g.linkException((dead) => diedOf.push(dead.exception))
  await sleep(0)
  await killall(gs, { exception: stop, block: false })
  t.true(gs.every((g) => !g.dead))
  await joinall(gs)
  t.deepEqual(caught, [stop, stop, stop])
  await sleep(0)
  t.deepEqual(diedOf, [stop, stop, stop])
})

serial('joinall with raiseError rejects with the first failure without waiting for the rest', async (t) => {
  const boom = new Error('first failure')
  const slow = spawn(() => sleep(2000))
  const failing = spawn(async () => {
    await sleep(10)
    throw boom
  })
  const start = Date.now()
  await t.throwsAsync(joinall([slow, failing], { raiseError: true }), { is: boom })
  t.true(Date.now() - start < 1000)
  await slow.kill()
})

serial('kill during sleep raises GreenletExit at once; the greenlet exits successfully', async (t) => {
  let caught: unknown
  const g = spawn(async () => {
    try {
      await sleep(10_000)
    } catch (err) {
      caught = err
      throw err
    }
  })
  await sleep(10)
  const start = Date.now()
  await g.kill()
  t.true(Date.now() - start < 1000)
  t.true(caught instanceof GreenletExit)
  t.true(g.dead)
  t.true(g.successful())
  t.is(g.value, undefined)
})

serial('kill with a custom exception makes the greenlet fail with it', async (t) => {
  const reason = new Error('custom')
  const g = spawn(() => sleep(10_000))
  await sleep(1)
  await g.kill(reason)
  t.false(g.successful())
  t.is(g.exception, reason)
})

serial('kill during join rejects the join of the killed greenlet', async (t) => {
  const target = spawn(() => sleep(10_000))
  let joinError: unknown
  const waiter = spawn(async () => {
    try {
      await target.join()
    } catch (err) {
      joinError = err
    }
  })
  await sleep(10)
  await waiter.kill()
  t.true(joinError instanceof GreenletExit)
  t.false(target.dead)
  await target.kill()
})

serial('killing a greenlet that has not started prevents it from running', async (t) => {
  let ran = false
  const g = spawn(() => {
    ran = true
  })
  await g.kill()
  await sleep(5)
  t.false(ran)
  t.true(g.dead)
  const later = new Greenlet(() => {
    ran = true
  })
  await later.kill()
  t.true(later.dead)
  t.false(ran)
})

serial('throw() into a greenlet that has not started: it dies with the exception without running', async (t) => {
  let ran = false
  const g = new Greenlet(() => {
    ran = true
  })
  const boom = new Error('boom')
  await t.throwsAsync(g.throw(boom), { is: boom })
  t.true(g.dead)
  t.false(ran)
  t.is(g.exception, boom)
  // A GreenletExit is a quiet end: the returned Promise resolves.
  const quiet = new Greenlet(() => {
    ran = true
  })
  await t.notThrowsAsync(quiet.throw(new GreenletExit()))
  t.true(quiet.dead && quiet.successful())
  t.false(ran)
})

serial('startLater(ms) starts the greenlet on its timer, once; started is true meanwhile', async (t) => {
  const ranAt: number[] = []
  const g = new Greenlet(() => void ranAt.push(Date.now()))
  const start = Date.now()
  g.startLater(60)
  t.true(g.started)
  // A second start, of either kind, changes nothing.
  g.startLater(0)
  g.start()
  await sleep(0)
  t.deepEqual(ranAt, [])
  await g.join()
  t.is(ranAt.length, 1)
  t.true(ranAt[0] - start >= 55, `ran after ${ranAt[0] - start} ms`)
  t.true(g.dead)
})

serial('id is a distinct positive integer per greenlet; ready() is true once it is dead', async (t) => {
  const gs = [spawn(() => sleep(5)), spawn(() => 1), new Greenlet(() => 2)]
  const ids = gs.map((g) => g.id)
  t.true(ids.every((id) => Number.isInteger(id) && id > 0))
  t.is(new Set(ids).size, ids.length)
  t.deepEqual(gs.map((g) => g.ready()), [false, false, false])
  await joinall(gs.slice(0, 2))
  t.deepEqual(gs.map((g) => g.ready()), [true, true, false])
  t.is(gs[0].id, ids[0], 'the id stays after death')
})

serial('a Greenlet is not a thenable: an async function returning one resolves with the greenlet itself', async (t) => {
  const g = spawn(() => 42)
  t.false('then' in g)
  const returned = await (async () => g)()
  t.is(returned, g)
  t.is(await g.get(), 42)
})

serial('kill of a dead greenlet resolves and changes nothing', async (t) => {
  const g = spawn(() => 7)
  await g.join()
  await t.notThrowsAsync(g.kill(new Error('late')))
  t.is(await g.get(), 7)
})

serial('a greenlet killing itself gets the exception at once', async (t) => {
  const after: string[] = []
  const g = spawn(async () => {
    await getcurrent()!.kill()
    after.push('not reached')
  })
  await g.join()
  t.deepEqual(after, [])
  t.true(g.successful())
})

serial('signal aborts with the kill exception as reason', async (t) => {
  let signal: AbortSignal | undefined
  const g = spawn(async () => {
    signal = getcurrent()!.signal
    await new Promise((resolve) => signal!.addEventListener('abort', resolve))
  })
  await sleep(5)
  t.false(signal!.aborted)
  const reason = new GreenletExit('stop')
  await g.kill(reason)
  t.true(signal!.aborted)
  t.is(signal!.reason, reason)
})

serial('two concurrent waits inside one greenlet both complete, and a kill rejects both', async (t) => {
  const g = spawn(() => Promise.all([sleep(10), sleep(20)]))
  await t.notThrowsAsync(g.get())
  const results: unknown[] = []
  const h = spawn(() =>
    Promise.allSettled([sleep(10_000), sleep(10_000)]).then((r) => results.push(...r.map((x) => x.status))),
  )
  await sleep(10)
  await h.kill(undefined, { timeoutMs: 1000 })
  await sleep(5)
  t.deepEqual(results, ['rejected', 'rejected'])
})

serial('getcurrent is the running greenlet after every kind of await, null outside', async (t) => {
  t.is(getcurrent(), null)
  const seen: boolean[] = []
  const g = spawn(async () => {
    const self = getcurrent()
    seen.push(self !== null)
    await sleep(1)
    seen.push(getcurrent() === self)
    await new Promise((resolve) => setTimeout(resolve, 1))
    seen.push(getcurrent() === self)
    await Promise.resolve()
    seen.push(getcurrent() === self)
    await new Promise((resolve) => setImmediate(resolve))
    seen.push(getcurrent() === self)
  })
  await g.join()
  t.deepEqual(seen, [true, true, true, true, true])
  t.is(getcurrent(), null)
})

serial('links are called after death; linkValue and linkException filter; unlink removes', async (t) => {
  const calls: string[] = []
  const ok = spawn(() => 1)
  const bad = spawn(() => {
    throw new Error('x')
  })
  const removed = () => calls.push('removed')
  ok.link((g) => calls.push(`ok-link ${g.value}`))
  ok.linkValue(() => calls.push('ok-value'))
  ok.linkException(() => calls.push('ok-exception'))
  ok.link(removed)
  ok.unlink(removed)
  bad.linkException(() => calls.push('bad-exception'))
  bad.linkValue(() => calls.push('bad-value'))
  await joinall([ok, bad])
  await sleep(1)
  t.deepEqual(calls.sort(), ['bad-exception', 'ok-link 1', 'ok-value'])
  ok.link(() => calls.push('late'))
  await sleep(1)
  t.true(calls.includes('late'))
})

serial('spawnLater starts after the delay', async (t) => {
  const start = Date.now()
  let startedAt = 0
  await spawnLater(50, () => {
    startedAt = Date.now()
  }).join()
  t.true(startedAt - start >= 45, `started after ${startedAt - start} ms`)
})

serial('killall kills every greenlet and waits for them', async (t) => {
  const gs = [1, 2, 3].map(() => spawn(() => sleep(10_000)))
  await sleep(1)
  await killall(gs)
  t.true(gs.every((g) => g.dead && g.successful()))
})

serial('switch ping-pong runs in transfer order (12 56 34 78)', async (t) => {
  const out: number[] = []
  const gr1: Greenlet = new Greenlet(async () => {
    out.push(12)
    await gr2.switch()
    out.push(34)
    await gr2.switch()
  })
  const gr2: Greenlet = new Greenlet(async () => {
    out.push(56)
    await gr1.switch()
    out.push(78)
  })
  await gr1.switch()
  t.deepEqual(out, [12, 56, 34, 78])
  t.true(gr2.dead)
  t.false(gr1.dead)
})

serial('switch passes arguments and values both ways', async (t) => {
  const out: string[] = []
  const g1: Greenlet = new Greenlet(async (x: string) => {
    out.push(`${x} at foo_1`)
    const back = await g2.switch('Elijah')
    out.push(`${x} at foo_2 got ${back}`)
    await g2.switch('again')
  })
  const g2: Greenlet = new Greenlet(async (y: string) => {
    out.push(`${y} at bar_1`)
    const v = await g1.switch('from bar')
    out.push(`${y} at bar_2 got ${v}`)
    return 'bar done'
  })
  t.is(await g1.switch('yang'), 'bar done')
  t.deepEqual(out, ['yang at foo_1', 'Elijah at bar_1', 'yang at foo_2 got from bar', 'Elijah at bar_2 got again'])
})

serial('switch with no, one or several values: the start gets them as arguments, a resumed switch() the value or their array', async (t) => {
  const got: unknown[] = []
  await spawn(async () => {
    const outer = getcurrent()!
    const g = new Greenlet(async (...args: unknown[]) => {
      got.push(args)
      got.push(await outer.switch())
      got.push(await outer.switch())
      got.push(await outer.switch())
      return 'end'
    })
    t.is(await g.switch(1, 'two', 3), undefined)
    t.is(await g.switch(), undefined)
    t.is(await g.switch('only'), undefined)
    t.is(await g.switch('x', 'y'), 'end')
    // No values: a greenlet starts with its constructor's arguments.
    const h = new Greenlet(async (...args: unknown[]) => args.join('+'), 'a', 'b')
    t.is(await h.switch(), 'a+b')
    // A value the greenlet switches back with reaches the switch() that waits.
    const k = new Greenlet(async () => outer.switch('p', 'q'))
    t.deepEqual(await k.switch(), ['p', 'q'])
  }).get()
  t.deepEqual(got, [[1, 'two', 3], undefined, 'only', ['x', 'y']])
})

serial('an exception in a greenlet started by switch propagates to the parent', async (t) => {
  const boom = new Error('child failed')
  const child = new Greenlet(async () => {
    throw boom
  })
  await t.throwsAsync(child.switch(), { is: boom })
  t.is(child.exception, boom)
})

serial('throw() raises inside a greenlet suspended in switch', async (t) => {
  let caught: unknown
  const owner: Greenlet = spawn(async () => {
    const g: Greenlet = new Greenlet(async () => {
      try {
        await owner.switch('parked')
      } catch (err) {
        caught = err
        return 'handled'
      }
    })
    t.is(await g.switch(), 'parked')
    t.is(await g.throw(new Error('thrown in')), 'handled')
  })
  await owner.get()
  t.is((caught as Error).message, 'thrown in')
})

serial('a kill that came while the greenlet awaited something foreign is raised by its next switch()', async (t) => {
  let caught: unknown
  const partner = new Greenlet(() => sleep(1_000))
  const g = spawn(async () => {
    await new Promise((resolve) => setTimeout(resolve, 20)) // foreign: the kill waits for a library wait
    try {
      await partner.switch()
    } catch (err) {
      caught = err
    }
  })
  await sleep(5)
  const started = Date.now()
  await g.kill()
  t.true(caught instanceof GreenletExit)
  t.true(Date.now() - started < 900, 'raised at the switch, not after the partner finished')
  await partner.kill()
})

serial('switch to a dead or hub-owned greenlet is a clear error', async (t) => {
  const done = spawn(() => 1)
  await done.join()
  await t.throwsAsync(done.switch(), { message: /has finished/ })
  const sleeper = spawn(() => sleep(1000))
  await sleep(1)
  await t.throwsAsync(sleeper.switch(), { message: /not suspended in switch/ })
  await sleeper.kill()
})

serial('bad arguments give TypeError/RangeError naming the argument', async (t) => {
  t.throws(() => spawn(42 as any), { instanceOf: TypeError, message: /fn must be a function/ })
  t.throws(() => new Greenlet(null as any), { instanceOf: TypeError, message: /fn/ })
  await t.throwsAsync(sleep(-1), { instanceOf: RangeError, message: /ms/ })
  await t.throwsAsync(sleep(Number.NaN), { instanceOf: RangeError, message: /ms/ })
  await t.throwsAsync(sleep('10' as any), { instanceOf: TypeError, message: /ms must be a number/ })
  t.throws(() => spawnLater(-5, () => 1), { instanceOf: RangeError, message: /ms/ })
  const g = spawn(() => 1)
  await t.throwsAsync(g.join(-1), { instanceOf: RangeError, message: /timeoutMs/ })
  await t.throwsAsync(g.get({ timeoutMs: Infinity }), { instanceOf: RangeError, message: /options.timeoutMs/ })
  await t.throwsAsync(joinall(5 as any), { instanceOf: TypeError, message: /greenlets must be an iterable/ })
  await t.throwsAsync(joinall([g, 'x' as any]), { instanceOf: TypeError, message: /greenlets\[1\] must be a Greenlet/ })
  await t.throwsAsync(joinall([g], { count: -1 }), { instanceOf: RangeError, message: /options.count/ })
  await g.join()
})

serial('a greenlet joining itself gets an error instead of hanging', async (t) => {
  const g = spawn(async () => {
    await getcurrent()!.join()
  })
  await t.throwsAsync(g.get(), { message: /cannot join itself/ })
  const h = spawn(async () => {
    await joinall([getcurrent()!])
  })
  await t.throwsAsync(h.get(), { message: /wait forever/ })
})

test('a greenlet whose function returns without waiting is dead before the next one of the turn runs, as in gevent', async (t) => {
  const first = spawn(() => 'done')
  const seen = spawn(() => ({ dead: first.dead, value: first.value }))
  const failing = spawn(() => {
    throw new Error('at once')
  })
  const afterFailure = spawn(() => failing.dead && !failing.successful())
  t.deepEqual(await seen.get(), { dead: true, value: 'done' })
  t.true(await afterFailure.get())
})

test('a greenlet follows a thenable its function returns, and fails if reading `then` throws, as await does', async (t) => {
  const thenable: PromiseLike<number> = { then: ((resolve: (v: number) => void) => void setTimeout(() => resolve(7), 5)) as any }
  t.is(await spawn(() => thenable).get(), 7)
  const hostile = {
    get then(): never {
      throw new Error('no then for you')
    },
  }
  await t.throwsAsync(spawn(() => hostile).get(), { message: 'no then for you' })
})

test('a greenlet gives up its function once called, as gevent drops _run: what the function holds can be collected while it waits', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const release = new Event()
  let held: WeakRef<object> | undefined
  // Only the function holds `captured` (its closure); the wait it returns does not.
  const holding = (): (() => Promise<boolean>) => {
    const captured = { payload: new Array(1000).fill(0) }
    held = new WeakRef(captured)
    return function withBigClosure() {
      if (captured.payload.length !== 1000) throw new Error('not what was captured')
      return release.wait()
    }
  }
  const g = new Greenlet(holding())
  t.regex(String(g), /withBigClosure\(\)/)
  g.start()
  await sleep(0)
  t.false(g.dead)
  // A WeakRef's target read in a job stays alive until the job ends: collect in a later one.
  let collected = false
  for (let i = 0; i < 5 && !collected; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    gc()
    await new Promise((resolve) => setTimeout(resolve, 10))
    collected = held!.deref() === undefined
  }
  t.true(collected, 'the waiting greenlet still holds what its function captured')
  t.regex(String(g), /withBigClosure\(\)/, 'its repr keeps the name')
  release.set()
  t.true(await g.get())
})

test('waits made by code a greenlet started and did not await settle after it has finished', async (t) => {
  const ev = new Event()
  const settled: string[] = []
  let background: Promise<void>[] = []
  const g = spawn(async () => {
    background = [
      (async () => {
        await sleep(30) // the greenlet's own record: it is still waiting when the greenlet finishes
        settled.push('sleep')
        await sleep(5) // made after its death
        settled.push('sleep again')
      })(),
      (async () => {
        t.true(await ev.wait())
        settled.push('event')
      })(),
    ]
    await new Promise((resolve) => setTimeout(resolve, 5)) // a foreign await
    return 'done'
  })
  t.is(await g.get(), 'done')
  ev.set()
  await Promise.race([Promise.all(background), sleep(2000).then(() => t.fail(`still waiting; settled: ${settled}`))])
  t.deepEqual(settled.sort(), ['event', 'sleep', 'sleep again'])
})

test('link callbacks run outside any greenlet, as gevent runs them in its hub: a kill from one reaches the greenlet it names', async (t) => {
  const seen: unknown[] = []
  const supervisor = spawn(async () => {
    const child = spawn(() => 'child done')
    child.link(() => {
      seen.push(getcurrent())
      void supervisor.kill(new Error('from the link'), { block: false })
    })
    await child.join()
    await sleep(1_000)
    return 'survived'
  })
  supervisor.linkException(() => {}) // looked at: no report on stderr
  await supervisor.join(2_000)
  t.deepEqual(seen, [null])
  t.true(supervisor.dead)
  t.is((supervisor.exception as Error | undefined)?.message, 'from the link')
})

test('a link unlinked by a callback called before it is not called', async (t) => {
  const called: string[] = []
  const g = spawn(() => 1)
  const second = (): void => void called.push('second')
  g.link(() => {
    called.push('first')
    g.unlink(second)
  })
  g.link(second)
  await g.join()
  await sleep(0)
  t.deepEqual(called, ['first'])
})

test('Timeout.start() in a callback a finished greenlet scheduled throws: there is no running greenlet to raise in', async (t) => {
  const outcome = new Promise<unknown>((resolve) => {
    spawn(() => {
      setTimeout(() => {
        try {
          Timeout.startNew(10)
          resolve('armed')
        } catch (err) {
          resolve(err)
        }
      }, 20)
    })
  })
  t.regex(String(await outcome), /must be called inside a running greenlet/)
})

test('a kill with any value, null included, that comes during a foreign await wins over the value returned after it', async (t) => {
  let release: (() => void) | undefined
  const g = spawn(async () => {
    await new Promise<void>((resolve) => (release = resolve))
    return 'value'
  })
  g.linkException(() => {}) // looked at: no report on stderr
  await sleep(5)
  void g.kill(null, { block: false })
  // The foreign await lets go only after the kill, however loaded the machine.
  release?.()
  await g.join()
  t.false(g.successful())
  t.is(g.exception, null)
})

test('a greenlet killed while two of its waits hold what was handed to them gives both back', async (t) => {
  const q = new Queue<number>()
  const g = spawn(() => Promise.all([q.get(), q.get()]))
  await sleep(0)
  q.putNowait(1)
  q.putNowait(2)
  g.kill(undefined, { block: false })
  await g.join()
  t.true(g.dead)
  const left = [q.getNowait(), q.getNowait()]
  t.deepEqual(left.sort(), [1, 2])

  const s = new Semaphore(0)
  const h = spawn(() => Promise.all([s.acquire(), s.acquire()]))
  await sleep(0)
  s.release()
  s.release()
  h.kill(undefined, { block: false })
  await h.join()
  t.is(s.value, 2)

  const other = new Event()
  const q2 = new Queue<string>()
  const k = spawn(() => Promise.all([other.wait(), q2.get()]))
  await sleep(0)
  q2.putNowait('x')
  k.kill(undefined, { block: false })
  await k.join()
  t.is(q2.qsize(), 1)
})

// gevent runs a timer callback in the hub: a watchdog a greenlet sets up for
// itself kills it from outside. Here the callback runs in the greenlet's own
// async context (getcurrent() names it), and a kill from there while the
// greenlet waits reaches it all the same, without failing the callback.
test('kill() from a callback a greenlet set up, while it waits, kills it; the call itself resolves', async (t) => {
  const events: string[] = []
  const g = spawn(async () => {
    setTimeout(() => {
      events.push(getcurrent() === g ? 'callback runs as g' : 'callback runs elsewhere')
      g.kill().then(
        () => events.push('kill resolved'),
        (err) => events.push(`kill failed: ${err}`),
      )
    }, 10)
    await sleep(5000)
    return 'slept'
  })
  const started = performance.now()
  await g.join()
  t.true(performance.now() - started < 4000, 'killed long before its sleep would end')
  t.is(g.value, undefined, 'killed: it never returned')
  await sleep(5)
  t.deepEqual(events, ['callback runs as g', 'kill resolved'])
})

// A greenlet's own code that left a wait pending and kills itself: it dies at
// its next wait (gevent's kill(block=False) of the current greenlet), and the
// kill neither hangs nor is lost.
test('a greenlet that kills itself with a wait of its own left pending dies at its next wait', async (t) => {
  const q = new Queue<number>()
  const events: string[] = []
  const g = spawn(async () => {
    const pending = q.get()
    pending.catch((err) => events.push(`pending get: ${(err as Error).name}`))
    await getcurrent()!.kill()
    events.push('after kill')
    await sleep(5)
    events.push('after sleep')
  })
  await g.join(1000)
  t.true(g.dead)
  t.deepEqual(events.sort(), ['after kill', 'pending get: GreenletExit'], 'killed at the sleep after the kill')
  q.putNowait(1)
  t.is(q.qsize(), 1, 'the pending get took nothing')
})

// A select-style race leaves its losing wait pending: a kill or Timeout that
// comes while the greenlet sits in a foreign await still reaches its next wait.
test('a kill or Timeout reaches the next wait of a greenlet that left a race-losing wait pending', async (t) => {
  for (const how of ['kill', 'timeout']) {
    const q1 = new Queue<string>()
    const q2 = new Queue<string>()
    const events: string[] = []
    const g = spawn(async () => {
      const timeout = how === 'timeout' ? Timeout.startNew(20) : undefined
      try {
        events.push(`got ${await Promise.race([q1.get(), q2.get()])}`)
        await new Promise((resolve) => setTimeout(resolve, 40))
        await sleep(2000)
        events.push('slept')
      } catch (err) {
        events.push(`raised ${(err as Error).name}`)
      } finally {
        timeout?.cancel()
      }
    })
    await sleep(5)
    q1.putNowait('a')
    await sleep(5)
    if (how === 'kill') await g.kill()
    else await g.join()
    t.deepEqual(events, ['got a', `raised ${how === 'kill' ? 'GreenletExit' : 'Timeout'}`], how)
  }
})

test('a greenlet whose function returns the Promise of its own sleep() or switch() ends with that wait: value, kill, Timeout, throw()', async (t) => {
  // Ends with the wait's value, as `() => sleep(0)` did through its Promise.
  const slept = spawn(() => sleep(0))
  // Killed at that sleep: it dies of the kill, and no rejection is left unhandled.
  const killed = spawn(() => sleep(10_000))
  const timedOut = spawn(() => {
    Timeout.startNew(5, new RangeError('late'))
    return sleep(10_000)
  })
  // Its failure is looked at below: not reported.
  timedOut.link(() => undefined)
  const exited = spawn(() => sleep(10_000))
  const switched = await spawn(async () => {
    // Its parent is this greenlet, which its result goes back to.
    const parked = new Greenlet(() => getcurrent()!.parent!.switch('up'))
    const up = await parked.switch()
    // Switched back into: its switch() returns 'down', and so does the greenlet, to its parent.
    const back = await parked.switch('down')
    const thrown = new Greenlet(() => getcurrent()!.parent!.switch())
    await thrown.switch()
    const caught = await thrown.throw(new Error('thrown in')).catch((err: unknown) => (err as Error).message)
    return { up, back, parked: parked.value, caught, thrown: (thrown.exception as Error).message }
  }).get()
  await sleep(0)
  await killed.kill(new Error('killed at its tail wait'))
  const killedWith = (killed.exception as Error).message
  await exited.kill()
  await joinall([slept, timedOut])
  t.deepEqual(switched, { up: 'up', back: 'down', parked: 'down', caught: 'thrown in', thrown: 'thrown in' })
  t.true(slept.successful())
  t.is(slept.value, undefined)
  t.is(killedWith, 'killed at its tail wait')
  t.true(timedOut.exception instanceof RangeError)
  t.true(exited.successful(), 'a GreenletExit ends it quietly')
})

test('a greenlet returning the Promise of its own switch() follows a Promise switched into it, and ends as it awaited it', async (t) => {
  const results = await spawn(async () => {
    const main = getcurrent()!
    const g = new Greenlet(() => main.switch('first'))
    await g.switch()
    await g.switch(Promise.resolve(42))
    const h = new Greenlet(() => main.switch('first'))
    await h.switch()
    const rejected = await h.switch(Promise.reject(new Error('boom'))).catch((err: unknown) => (err as Error).message)
    await joinall([g, h])
    return { g: g.value, rejected, h: (h.exception as Error).message }
  }).get()
  t.deepEqual(results, { g: 42, rejected: 'boom', h: 'boom' })
})

test('a chain of 2,000 greenlets returning their switch() Promise, each the parent of the next, unwinds without overflowing the stack', async (t) => {
  const n = 2000
  const outcome = await spawn(async () => {
    const s = getcurrent()!
    const gs: Greenlet[] = []
    for (let i = 0; i < n; i++) {
      const g = new Greenlet(() => s.switch(i))
      await g.switch()
      g.parent = i === 0 ? s : gs[i - 1]
      gs.push(g)
    }
    const got = await gs[n - 1].switch('v')
    await joinall(gs)
    return { got, dead: gs.filter((g) => g.dead && g.successful()).length }
  }).get()
  t.deepEqual(outcome, { got: 'v', dead: n })
})

test("a greenlet's function returning a Promise of a wait that already ended while it ran ends with that Promise, not a later wait", async (t) => {
  const value = await spawn(async () => {
    const s = getcurrent()!
    const child = new Greenlet(() => s.switch('c1'))
    await child.switch()
    const never = new Event()
    const other = spawn(() => never.wait())
    const g = spawn(() => {
      child.parent = getcurrent()
      // Ends at once: the child returns 'x' to its new parent, this greenlet.
      const p = child.switch('x')
      void other.join()
      return p
    })
    const done = await g.join(5000)
    await other.kill()
    return { done, value: g.value }
  }).get()
  t.deepEqual(value, { done: true, value: 'x' })
})

test('a greenlet ending with its sleep() is not dead yet when one resumed before it in the same turn runs, as in gevent', async (t) => {
  const seen: boolean[] = []
  let tail!: Greenlet
  const before = spawn(async () => {
    await sleep(10)
    seen.push(tail.dead)
  })
  tail = spawn(() => sleep(10))
  const after = spawn(async () => {
    await sleep(10)
    seen.push(tail.dead)
  })
  await joinall([before, tail, after])
  // gevent: False, True (the sleeps end in the order they were armed).
  t.deepEqual(seen, [false, true])
})
