/**
 * Greenlet behaviour that gevent's and greenlet's own test suites pin down,
 * in both modes (each test names the peer test it restates).
 */
import test from 'ava'

import { joinall, sleep, spawn } from '../index'
import { both } from './_modes'

// gevent src/gevent/tests/test__greenlet.py (TestBasic: `started` is bool(g),
// false once the greenlet has finished).
// gevent: joinall(count=n) is list(iwait(greenlets, count=n)): n at most, those finished first.
both('joinall({ count }) returns no more than count greenlets, also when more have finished', function* (t, m) {
  const gs = ['a', 'b', 'c'].map((name) => m.spawn(() => name))
  yield m.sleep(0)
  t.true(gs.every((g) => g.dead))
  t.deepEqual((yield m.joinall(gs, { count: 1 })).map((g: any) => g.value), ['a'])
  t.deepEqual((yield m.joinall(gs, { count: 2 })).map((g: any) => g.value), ['a', 'b'])
  t.deepEqual(yield m.joinall(gs, { count: 0 }), [])
  // Two that finish on the same timer, waited for with count 1.
  const later = [m.spawn(() => m.sleep(5)), m.spawn(() => m.sleep(5))]
  t.is((yield m.joinall(later, { count: 1 })).length, 1)
  yield m.joinall(later)
})

// Each Timeout's cancelled timer used to wake the hub while a turn ran, and Node ran those wake-ups turn after turn in
// one poll phase: a 1 ms interval fired ~30 times a second in async mode, ~6 in sync mode.
both('greenlets looping on short Timeouts and sleep(0) leave Node\'s own timers and immediates their turns', function* (t, m) {
  let stop = false
  const loop = () =>
    m.go(function* () {
      while (!stop) {
        const timeout = m.Timeout.startNew(3)
        try {
          yield m.sleep(0)
        } finally {
          timeout.cancel()
        }
      }
    })
  const greenlets = [loop(), loop(), loop()]
  let intervals = 0
  let immediates = 0
  const interval = setInterval(() => intervals++, 1)
  ;(function again() {
    immediates++
    if (!stop) setImmediate(again)
  })()
  yield m.sleep(1000)
  stop = true
  clearInterval(interval)
  yield m.joinall(greenlets)
  t.true(intervals >= 150, `a 1 ms interval fired ${intervals} times in 1 s`)
  t.true(immediates >= 150, `${immediates} immediates in 1 s`)
})

both('started is true only between start and finish', function* (t, m) {
  const g = new m.Greenlet(m.fn(function* () {
    yield m.sleep(1)
    return 1
  }))
  t.false(g.started)
  g.start()
  t.true(g.started)
  yield g.join()
  t.true(g.dead)
  t.false(g.started)
})

// gevent src/gevent/tests/test__issue330.py: a greenlet killed before it is
// ever switched to never runs; test__greenlet.py TestStuff/test_kill_*.
both('a greenlet killed before it ran never runs, links fire once, a second kill is harmless', function* (t, m) {
  let ran = false
  let links = 0
  const g = m.spawn(() => {
    ran = true
  })
  g.link(() => links++)
  yield g.kill()
  yield g.kill()
  yield m.sleep(10)
  t.false(ran)
  t.is(links, 1)
  t.true(g.successful(), 'GreenletExit counts as success')
  t.is(g.value, undefined)
  const failed = m.spawn(() => 'never')
  yield failed.kill(new Error('boom'))
  t.false(failed.successful())
  t.is((failed.exception as Error).message, 'boom')
  // start() on a finished greenlet does nothing.
  g.start()
  yield m.sleep(5)
  t.false(ran)
  // gevent: a kill of a greenlet that has not run ends it at once, without waiting, and others still run first.
  const bystander = m.spawn(() => 'ran')
  const later = m.spawnLater(5, () => 'never')
  const soon = m.spawn(() => 'never')
  soon.kill(undefined, { block: false })
  later.kill(undefined, { block: false })
  t.true(soon.dead && later.dead)
  t.false(bystander.dead)
  yield m.sleep(10)
  t.is(bystander.value, 'ran')
  t.is(soon.value, undefined)
  t.is(later.value, undefined)
})

// greenlet src/greenlet/tests/test_throw.py (test_throw_goes_to_original_parent,
// test_kill / GreenletExit returned as a value) and test_greenlet.py
// (throw into a dead greenlet).
both('throw() with no argument ends a greenlet suspended in switch() quietly: its parent receives the GreenletExit', function* (t, m) {
  const result = yield m.go(function* () {
    let caught: unknown = 'nothing'
    const child = new m.Greenlet(m.fn(function* () {
      try {
        yield m.getcurrent()!.parent!.switch('ready')
      } catch (err) {
        caught = err
        throw err
      }
    }))
    const first = yield child.switch()
    const exited = yield child.throw()
    const again = yield child.throw()
    return { first, caught, exited, again, dead: child.dead, ok: child.successful() }
  }).get()
  t.is(result.first, 'ready')
  t.true(result.caught instanceof m.GreenletExit)
  t.is(result.exited, result.caught, 'the GreenletExit instance comes back as the value')
  t.true(result.again instanceof m.GreenletExit, 'throwing into a dead greenlet returns the GreenletExit')
  t.true(result.dead)
  t.true(result.ok)
})

// greenlet: a finished greenlet's result goes to its nearest live ancestor
// past a parent that has died.
both('a greenlet whose parent has died returns its result to the nearest live ancestor, which is in switch()', function* (t, m) {
  const result = yield m.go(function* () {
    const creator = new m.Greenlet(() => new m.Greenlet(() => 'orphan-result'))
    const orphan = yield creator.switch()
    const creatorDead = creator.dead
    const parentIsCreator = orphan.parent === creator
    const got = yield orphan.switch()
    return { creatorDead, parentIsCreator, got, orphanDead: orphan.dead }
  }).get({ timeoutMs: 5000 })
  t.deepEqual(result, { creatorDead: true, parentIsCreator: true, got: 'orphan-result', orphanDead: true })
})

// gevent: kill(GreenletExit), Timeout(seconds, ValueError): a class is instantiated.
both('an Error class given to kill(), killall(), throw() or a Timeout is raised as an instance of it', function* (t, m) {
  const victim = m.go(function* () {
    yield m.sleep(1000)
  })
  yield m.sleep(0)
  yield victim.kill(m.GreenletExit)
  t.true(victim.successful(), 'a GreenletExit class ends it quietly')
  const others = [m.go(function* () { yield m.sleep(1000) })]
  yield m.sleep(0)
  yield m.killall(others, { exception: RangeError })
  t.true(others[0].exception instanceof RangeError)
  const timedOut = yield m.go(function* () {
    const timeout = new m.Timeout(5, TypeError).start()
    try {
      yield m.sleep(1000)
      return 'not raised'
    } catch (err) {
      return err
    } finally {
      timeout.cancel()
    }
  }).get()
  t.true(timedOut instanceof TypeError)
  const thrown = yield m.go(function* () {
    const child = new m.Greenlet(m.fn(function* () {
      try {
        yield m.getcurrent()!.parent!.switch('ready')
      } catch (err) {
        return err
      }
    }))
    yield child.switch()
    return yield child.throw(SyntaxError)
  }).get()
  t.true(thrown instanceof SyntaxError)
})

// greenlet src/greenlet/tests/test_throw.py (test_kill_unstarted... : a GreenletExit thrown into a
// greenlet that never ran comes back as the value, as from a dead one).
both('throw() with no argument into a never-started greenlet: it dies without running, and the GreenletExit comes back', function* (t, m) {
  let ran = false
  const g = new m.Greenlet(() => (ran = true))
  const exited = yield g.throw()
  t.true(exited instanceof m.GreenletExit)
  t.true(g.dead)
  t.false(ran)
})

both('throw() of another error into a dead greenlet raises it in the caller', function* (t, m) {
  const g = m.spawn(() => 1)
  yield g.join()
  const err = yield* m.throws(t, () => g.throw(new Error('into the dead')))
  t.is(err.message, 'into the dead')
})

// gevent src/gevent/tests/test__greenlet.py (TestKillall / test_killall_timeout)
// and gevent/pool.py Group.kill's `dying` set: each member is raised in once.
both('killall({ timeoutMs }) raises Timeout when a greenlet survives (Group.kill returns), and raises in each member only once', function* (t, m) {
  let kills = 0
  const stubborn = m.go(function* () {
    for (;;) {
      try {
        yield m.sleep(5)
      } catch {
        kills++
        if (kills > 5) return
      }
    }
  })
  yield m.sleep(10)
  const err = yield* m.throws(t, () => m.killall([stubborn], { timeoutMs: 50 }), { instanceOf: m.Timeout })
  t.truthy(err)
  yield* m.throws(t, () => m.killall([stubborn], { timeoutMs: 30 }), { instanceOf: m.Timeout })
  t.is(kills, 1, 'the second killall did not raise in a greenlet still dying of the first')
  const group = new m.Group()
  group.add(stubborn)
  // gevent's Group.kill(timeout=) returns once the time is up, members still alive.
  t.is(yield group.kill({ timeoutMs: 30 }), undefined)
  t.is(kills, 1)
  t.false(stubborn.dead)
  t.is(group.length, 1)
  // A direct kill raises again.
  yield stubborn.kill(undefined, { block: false })
  yield m.sleep(20)
  t.is(kills, 2)
  yield stubborn.kill(new Error('x'), { block: false })
  yield m.sleep(20)
  yield stubborn.kill(new Error('x'), { block: false })
  yield m.sleep(20)
  yield stubborn.kill(new Error('x'), { block: false })
  yield m.sleep(20)
  yield stubborn.kill(new Error('x'), { block: false })
  yield stubborn.join(1000)
  t.true(stubborn.dead)
})

// gevent src/gevent/tests/test__event.py (TestAsyncResult: g.link(result),
// an AsyncResult is callable and takes a greenlet's outcome).
both('link() takes an AsyncResult, which gets the greenlet outcome', function* (t, m) {
  const ok = new m.AsyncResult<number>()
  const g = m.spawn(() => 42)
  g.link(ok)
  t.is(yield ok.get({ timeoutMs: 2000 }), 42)
  const failed = new m.AsyncResult<number>()
  const bad = m.spawn(() => {
    throw new Error('nope')
  })
  bad.linkException(failed)
  const err = yield* m.throws(t, () => failed.get({ timeoutMs: 2000 }))
  t.is(err.message, 'nope')
})

// greenlet src/greenlet/tests/test_greenlet.py (test_parent_equals_None,
// test_parent_restored_on_kill, test_parent_return_failure: a cycle is a
// ValueError; a reassigned parent is where a finishing greenlet returns).
both('parent can be reassigned: a finishing child returns to the new parent; a cycle is an Error', function* (t, m) {
  const result = yield m.go(function* () {
    const log: string[] = []
    const me = m.getcurrent()!
    let adopter: InstanceType<typeof m.Greenlet> | undefined
    const child = new m.Greenlet(m.fn(function* () {
      log.push('child runs')
      yield adopter!.switch()
      log.push('child finishes')
      return 'child done'
    }))
    adopter = new m.Greenlet(m.fn(function* () {
      child.parent = m.getcurrent()
      const got = yield child.switch()
      log.push(`adopter got ${got}`)
      return got
    }))
    yield child.switch()
    yield adopter.join()
    let cycle: unknown
    try {
      me.parent = child.dead ? me : child
    } catch (err) {
      cycle = err
    }
    return { log, adopted: adopter.value, cycle: (cycle as Error | undefined)?.message }
  }).get()
  t.deepEqual(result.log, ['child runs', 'child finishes', 'adopter got child done'])
  t.is(result.adopted, 'child done')
  t.regex(result.cycle ?? '', /cyclic parent chain/)
})

// gevent src/gevent/tests/test__timeout.py (test_with_timeout: timeout_value;
// Timeout(seconds, False) exits quietly) and src/gevent/timeout.py with_timeout.
both('Timeout.run with a fallback returns it instead of raising; { fallback: undefined } is the silent form', function* (t, m) {
  const fast = yield m.Timeout.run(1000, () => 'done', { fallback: 'late' })
  t.is(fast, 'done')
  const late = yield m.Timeout.run(20, m.fn(function* () {
    yield m.sleep(5000)
    return 'done'
  }), { fallback: 'fallback' })
  t.is(late, 'fallback')
  const silent = yield m.Timeout.run(20, m.fn(function* () {
    yield m.sleep(5000)
  }), { fallback: undefined })
  t.is(silent, undefined)
  // Without it, the Timeout is raised.
  yield* m.throws(t, () => m.Timeout.run(20, m.fn(function* () {
    yield m.sleep(5000)
  })), { instanceOf: m.Timeout })
})

both("Greenlet.spawn and spawnLater on a subclass make that subclass (gevent's classmethods)", function* (t, m) {
  class Tagged extends m.Greenlet<number> {
    readonly tag = 'tagged'
  }
  const now = Tagged.spawn((n: number) => n * 2, 21)
  const later = Tagged.spawnLater(5, (n: number) => n + 1, 41)
  t.true(now instanceof Tagged)
  t.true(later instanceof Tagged)
  t.is((now as Tagged).tag, 'tagged')
  t.deepEqual([yield now.get(), yield later.get()], [42, 42])
  t.throws(() => Tagged.spawnLater(-1, () => 0), { instanceOf: RangeError, message: /ms/ })
})

both('unlink(asyncResult) undoes link(asyncResult)', function* (t, m) {
  const g = m.spawn(() => m.sleep(5))
  const result = new m.AsyncResult()
  g.link(result)
  g.unlink(result)
  yield g.join()
  yield m.sleep(5)
  t.false(result.ready())
})

// gevent test__issue330.py again, within one hub turn: the killer and its
// target start in the same turn, the killer first.
both('a greenlet killed by one started in the same turn, before its own start, never runs', function* (t, m) {
  let ran = false
  const target: { g?: ReturnType<typeof m.spawn> } = {}
  const killer = m.spawn(() => {
    target.g!.kill(undefined, { block: false })
  })
  target.g = m.spawn(() => {
    ran = true
  })
  yield killer.join()
  yield target.g.join()
  t.false(ran)
  t.true(target.g.dead)
})

// gevent runs the greenlets of a loop iteration one at a time, in the order
// they became ready: one that starts does not overtake one that was resumed
// before it (its run up to the next wait comes first).
both('within a hub turn, greenlets run in the order they became ready, started or resumed', function* (t, m) {
  const out: string[] = []
  const a = m.go(function* () {
    out.push('a0')
    yield m.sleep(0)
    out.push('a1')
    yield m.sleep(0)
    out.push('a2')
  })
  yield m.sleep(0)
  const b = m.spawn(() => {
    out.push('b0')
  })
  yield m.joinall([a, b])
  t.deepEqual(out, ['a0', 'a1', 'b0', 'a2'])
})

// The same twin in gevent (helper() a plain function there) prints
// A0 B0 C0 A1 B1 C1 A2 B2 C2: each greenlet runs up to its next switch. Here
// A awaits an async function of its own (two microtask hops, no wait) before
// each line, C one: they still run before B, resumed after them.
test('async: a greenlet whose code awaits its own async functions still runs up to its next wait before the next one of the turn', async (t) => {
  const out: string[] = []
  const helper = async (): Promise<void> => {}
  const worker = (name: string, hops: number) =>
    spawn(async () => {
      for (let i = 0; i < 3; i++) {
        for (let h = 0; h < hops; h++) await helper()
        out.push(`${name}${i}`)
        await sleep(0)
      }
    })
  await joinall([worker('A', 2), worker('B', 0), worker('C', 1)])
  t.deepEqual(out, ['A0', 'B0', 'C0', 'A1', 'B1', 'C1', 'A2', 'B2', 'C2'])
})

test('async: a greenlet in a foreign await lets the turn go on once the microtasks have run out; it goes on when that await ends', async (t) => {
  const out: string[] = []
  const a = spawn(async () => {
    out.push('a0')
    await sleep(0)
    await new Promise((resolve) => setImmediate(resolve))
    out.push('a1')
  })
  const b = spawn(async () => {
    out.push('b0')
    await sleep(0)
    out.push('b1')
  })
  await joinall([a, b])
  t.deepEqual(out, ['a0', 'b0', 'b1', 'a1'])
})

// gevent's spawn_later(0) is a timer: it starts after what is ready when the
// loop next polls (a spawn made after it, a sleep(0) of the caller).
both('spawnLater(0) starts after a spawn made after it and after the caller yields', function* (t, m) {
  const out: string[] = []
  const later = m.Greenlet.spawnLater(0, () => {
    out.push('later')
  })
  const now = m.spawn(() => {
    out.push('spawn')
  })
  yield m.sleep(0)
  out.push('caller')
  yield m.joinall([later, now])
  t.deepEqual(out, ['spawn', 'caller', 'later'])
})
