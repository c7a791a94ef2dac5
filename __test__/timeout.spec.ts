import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as path from 'node:path'

import test from 'ava'

import { GreenletExit, Queue, Timeout, getcurrent, sleep, spawn, waitFor } from '../index'
import { describeExit, runNode } from './_child'

const serial = test.serial

serial('Timeout.run resolves with the result when the work is fast enough', async (t) => {
  t.is(await Timeout.run(500, async () => {
    await sleep(5)
    return 'done'
  }), 'done')
})

serial('Timeout.run rejects with the Timeout and kills the work inside', async (t) => {
  let cleanedUp = false
  const start = Date.now()
  const err = await t.throwsAsync(
    Timeout.run(30, async () => {
      try {
        await sleep(10_000)
      } finally {
        cleanedUp = true
      }
    }),
    { instanceOf: Timeout },
  )
  t.is(err?.ms, 30)
  t.is(err?.message, 'timed out after 30 ms')
  t.true(Date.now() - start < 1000)
  t.true(cleanedUp)
})

serial('Timeout.run rejects with the given exception instead', async (t) => {
  const custom = new Error('too slow')
  await t.throwsAsync(Timeout.run(10, () => sleep(1000), { exception: custom }), { is: custom })
})

serial("an exception of null or false (gevent's None and False) raises the Timeout itself; a string is its message", async (t) => {
  for (const exception of [null, false]) {
    const err = await t.throwsAsync(Timeout.run(10, () => sleep(1000), { exception }), { instanceOf: Timeout })
    t.is(err?.message, 'timed out after 10 ms')
    const timeout = new Timeout(10, exception)
    t.is(timeout.raised, timeout)
    const g = spawn(async () => {
      using _ = new Timeout(10, exception).start()
      await sleep(1000)
    })
    await g.join()
    t.true(g.exception instanceof Timeout, String(g.exception))
  }
  await t.throwsAsync(Timeout.run(10, () => sleep(1000), { exception: 'too slow' }), { instanceOf: Timeout, message: 'too slow' })
})

serial('a started Timeout raises in its greenlet at the current wait', async (t) => {
  const g = spawn(async () => {
    const timeout = new Timeout(20).start()
    t.true(timeout.pending)
    try {
      await sleep(10_000)
    } catch (err) {
      return err === timeout ? 'timed out' : `other: ${err}`
    }
    return 'slept'
  })
  t.is(await g.get(), 'timed out')
})

serial('a Timeout raised into busy code fires at the next wait', async (t) => {
  const g = spawn(async () => {
    Timeout.startNew(5)
    const until = Date.now() + 30
    while (Date.now() < until) {
      // busy: the timeout cannot interrupt plain computation
    }
    await sleep(1)
    return 'unreachable'
  })
  await t.throwsAsync(g.get(), { instanceOf: Timeout })
})

/** What each of three `sleep(1)`s raised: 'inner', 'outer' (which Timeout), or 'none'. */
async function raisedAtThreeWaits(inner: Timeout, outer: Timeout): Promise<string[]> {
  const raised: string[] = []
  for (let i = 0; i < 3; i++) {
    try {
      await sleep(1)
      raised.push('none')
    } catch (err) {
      raised.push(err === inner ? 'inner' : err === outer ? 'outer' : String(err))
    }
  }
  return raised
}

serial('two Timeouts that expired with the wait\'s own timer in one turn are each raised, at the wait then at the next one', async (t) => {
  const busyFor = (ms: number) => {
    const until = Date.now() + ms
    while (Date.now() < until) {
      // computes: nothing can interrupt it
    }
  }
  const g = spawn(async () => {
    // Runs before the hub's next turn: the first sleep's timer has expired then too, behind the two.
    setImmediate(() => busyFor(10))
    const outer = Timeout.startNew(30)
    const inner = Timeout.startNew(20)
    busyFor(60)
    return raisedAtThreeWaits(inner, outer)
  })
  t.deepEqual(await g.get(), ['inner', 'outer', 'none'])
})

serial('a cancelled Timeout never fires, and `using` cancels it on scope exit', async (t) => {
  const g = spawn(async () => {
    const timeout = Timeout.startNew(10)
    timeout.cancel()
    t.false(timeout.pending)
    {
      using scoped = Timeout.startNew(10)
      t.true(scoped.pending)
    }
    await sleep(40)
    return 'survived'
  })
  t.is(await g.get(), 'survived')
})

serial('Timeout(null) never fires; a string becomes its message', async (t) => {
  const never = new Timeout(null)
  t.is(never.ms, null)
  const g = spawn(async () => {
    never.start()
    await sleep(20)
    return getcurrent() !== null
  })
  t.true(await g.get())
  t.is(new Timeout(5, 'custom message').message, 'custom message')
})

serial('Timeout.start outside a greenlet and bad durations are clear errors', (t) => {
  t.throws(() => new Timeout(10).start(), { message: /inside a running greenlet/ })
  t.throws(() => new Timeout(-1), { instanceOf: RangeError, message: /ms/ })
  t.throws(() => new Timeout('1' as any), { instanceOf: TypeError, message: /ms must be a number/ })
})

// Timeouts and kills reaching work inside a foreign await (real fetch
// against a local server that answers late), where a Node greenlet usually is.

/** A server answering after `delayMs`; closes its connections when closed. */
async function slowServer(delayMs: number): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    const timer = setTimeout(() => res.end('late'), delayMs)
    res.on('close', () => clearTimeout(timer))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  return { url, close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }) }
}

serial('Timeout.run and waitFor settle at their deadline while the work sits in a foreign await', async (t) => {
  const server = await slowServer(1500)
  try {
    for (const run of [
      (fn: () => Promise<unknown>) => Timeout.run(200, fn),
      (fn: () => Promise<unknown>) => waitFor(fn, 200),
    ]) {
      let aborted: unknown
      const started = Date.now()
      const err = await t.throwsAsync(
        run(async () => {
          try {
            return await (await fetch(server.url, { signal: getcurrent()!.signal })).text()
          } catch (e) {
            aborted = e
            throw e
          }
        }),
        { instanceOf: Timeout },
      )
      const took = Date.now() - started
      t.true(took < 1000, `settled after ${took} ms, not at the 200 ms deadline`)
      // The fetch was told through the greenlet's signal: it stopped with the Timeout.
      await sleep(50)
      t.is(aborted, err)
    }
  } finally {
    await server.close()
  }
})

serial('kill() of a greenlet in a foreign await aborts its signal, and the kill wins over the value it then returns', async (t) => {
  const server = await slowServer(300)
  try {
    // Handed the signal: the fetch stops at once.
    const told = spawn(async () => (await fetch(server.url, { signal: getcurrent()!.signal })).text())
    await sleep(50)
    const started = Date.now()
    await told.kill()
    t.true(Date.now() - started < 250, 'the kill waited for the fetch to end by itself')
    t.true(told.dead)
    t.is(told.value, undefined)
    // Not handed the signal: the await ends by itself, and the greenlet dies of the kill all the same.
    const deaf = spawn(async () => (await fetch(server.url)).text())
    await sleep(50)
    await deaf.kill(new Error('stop'))
    t.true(deaf.dead)
    t.false(deaf.successful())
    t.is((deaf.exception as Error).message, 'stop')
  } finally {
    await server.close()
  }
})

serial('a Timeout fired in a foreign await aborts that await only: later awaits get a fresh signal', async (t) => {
  const server = await slowServer(1500)
  const fast = await slowServer(0)
  try {
    const g = spawn(async () => {
      const outcome: string[] = []
      {
        using timeout = Timeout.startNew(150)
        try {
          await fetch(server.url, { signal: getcurrent()!.signal })
          outcome.push('fetched')
        } catch (err) {
          outcome.push(err === timeout ? 'timed out' : `failed: ${err}`)
        }
      }
      // Caught: the greenlet goes on, and neither its signal nor its next wait carries the Timeout.
      t.false(getcurrent()!.signal.aborted)
      await sleep(10)
      outcome.push(await (await fetch(fast.url, { signal: getcurrent()!.signal })).text())
      return outcome
    })
    t.deepEqual(await g.get(), ['timed out', 'late'])
  } finally {
    await server.close()
    await fast.close()
  }
})

serial('a Timeout that fired in a foreign await aborts its signal and is raised at the next wait, unless cancelled first (as in gevent)', async (t) => {
  const g = spawn(async () => {
    const outcome: string[] = []
    const t1 = Timeout.startNew(30)
    const signal = t1.signal
    // A foreign await that listens to the signal: the abort tells it.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 500)
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true })
    })
    outcome.push(signal.aborted && signal.reason === t1 ? 'told' : 'not told')
    t1.cancel()
    await sleep(1)
    outcome.push('not raised once cancelled')
    const t2 = Timeout.startNew(30)
    await new Promise((resolve) => setTimeout(resolve, 80))
    t2.cancel()
    await sleep(1)
    outcome.push('not raised once cancelled')
    const t3 = Timeout.startNew(30)
    await new Promise((resolve) => setTimeout(resolve, 80))
    try {
      await sleep(1)
      outcome.push('not raised')
    } catch (err) {
      outcome.push(err === t3 ? 'raised at the next wait' : `other: ${err}`)
    }
    return outcome
  })
  t.deepEqual(await g.get(), ['told', 'not raised once cancelled', 'not raised once cancelled', 'raised at the next wait'])
})

serial("a Timeout is raised at the next wait when the greenlet's signal was handed to an earlier await, not the one the deadline passed in", async (t) => {
  const fast = await slowServer(0)
  try {
    const g = spawn(async () => {
      using timeout = Timeout.startNew(100)
      // Handed the signal, and done before the deadline.
      const text = await (await fetch(fast.url, { signal: getcurrent()!.signal })).text()
      // The deadline passes in a foreign await that has no signal.
      await new Promise((resolve) => setTimeout(resolve, 250))
      try {
        await sleep(1)
        return [text, 'not raised']
      } catch (err) {
        return [text, err === timeout ? 'raised at the next wait' : `other: ${err}`]
      }
    })
    t.deepEqual(await g.get(), ['late', 'raised at the next wait'])
  } finally {
    await fast.close()
  }
})

serial('two Timeouts fired in a foreign await are each raised, at the next wait and the one after; cancelling the first leaves the second', async (t) => {
  const body = async (cancelFirst: boolean): Promise<string[]> => {
    const outer = Timeout.startNew(40)
    const inner = Timeout.startNew(20)
    await new Promise((resolve) => setTimeout(resolve, 100))
    if (cancelFirst) inner.cancel()
    return raisedAtThreeWaits(inner, outer)
  }
  t.deepEqual(await spawn(body, false).get(), ['inner', 'outer', 'none'])
  t.deepEqual(await spawn(body, true).get(), ['outer', 'none', 'none'])
})

serial('a greenlet that caught a kill and returns with a Timeout pending (fired in a foreign await) returns its value', async (t) => {
  const g = spawn(async () => {
    try {
      await sleep(1_000)
    } catch {
      // Survives the kill.
    }
    Timeout.startNew(10)
    await new Promise((resolve) => setTimeout(resolve, 50))
    return 'value'
  })
  await sleep(5)
  await g.kill(new GreenletExit(), { block: false })
  t.is(await g.get(), 'value')
})

// gevent's with_timeout returns what the work returned if it got there
// first: a queue item or a lock the work took at the deadline is never lost.
test('Timeout.run and waitFor give the caller a result the work took at the deadline, instead of dropping it', async (t) => {
  for (const how of ['Timeout.run', 'waitFor'] as const) {
    let returned = 0
    let kept = 0
    let lost = 0
    for (let i = 0; i < 60; i++) {
      const q = new Queue<string>()
      spawn(async () => {
        await sleep(2 + (i % 3))
        q.putNowait('item')
      })
      const work = async () => await q.get()
      let result: string | undefined
      try {
        result = how === 'waitFor' ? await waitFor(work, 3) : await Timeout.run(3, work)
      } catch (err) {
        if (!(err instanceof Timeout)) throw err
      }
      await sleep(8)
      if (result === 'item') returned++
      else if (q.qsize() === 1) kept++
      else lost++
    }
    t.is(lost, 0, `${how}: ${returned} returned, ${kept} kept`)
  }
})

test("a greenlet's signal read under a Timeout per loop iteration keeps memory bounded (Node's AbortSignal.any kept them all)", async (t) => {
  const index = JSON.stringify(path.join(__dirname, '..', 'index.js'))
  const script = `
const { Timeout, getcurrent, sleep, spawn } = require(${index})
const heap = () => { global.gc(); return process.memoryUsage().heapUsed }
spawn(async () => {
  const round = async () => {
    for (let i = 0; i < 200000; i++) {
      const t = Timeout.startNew(60000)
      void getcurrent().signal
      t.cancel()
      if ((i & 1023) === 0) await sleep(0)
    }
    await sleep(5)
  }
  await round()
  const before = heap()
  for (let i = 0; i < 4; i++) await round()
  console.log(JSON.stringify({ grewMiB: (heap() - before) / 2 ** 20 }))
})`
  const r = await runNode(['--expose-gc', '-e', script], { timeoutMs: 90_000 })
  t.is(r.status, 0, describeExit(r))
  const { grewMiB } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { grewMiB: number }
  // Kept (Node 20), 800,000 combined signals are some 55 MiB; Node 24's heap
  // swings by up to ~20 MiB between full GCs here, whatever it keeps.
  t.true(grewMiB < 32, `the heap grew ${grewMiB.toFixed(1)} MiB`)
})

test('a Timeout left armed by a greenlet that finished (or was killed) does not keep the process alive; it stays pending and still fires', async (t) => {
  for (const entry of ['index.js', 'sync.js']) {
    const api = JSON.stringify(path.join(__dirname, '..', entry))
    const sync = entry === 'sync.js'
    const script = `
const gt = require(${api})
const started = Date.now()
process.on('exit', () => console.log('exit after', Date.now() - started))
let armed
const body = () => { armed = gt.Timeout.startNew(60000); return 1 }
const killedBody = () => { gt.Timeout.startNew(60000); gt.sleep(60000) }
const done = ${sync ? 'gt.run(() => { const k = gt.spawn(killedBody); gt.sleep(5); k.kill(); return gt.spawn(body).get() })' : '(async () => { const k = gt.spawn(async () => { gt.Timeout.startNew(60000); await gt.sleep(60000) }); await gt.sleep(5); await k.kill(); return gt.spawn(body).get() })()'}
done.then((v) => console.log('value', v, 'pending', armed.pending))`
    const r = await runNode(['-e', script], { timeoutMs: 30_000 })
    t.is(r.status, 0, describeExit(r))
    const [value, exit] = r.stdout.trim().split('\n')
    t.is(value, 'value 1 pending true', entry)
    t.true(Number(exit.split(' ').pop()) < 20_000, `${entry}: ${exit}`)
  }
  // One whose signal was handed out keeps it alive: another greenlet may wait on that signal.
  for (const entry of ['index.js', 'sync.js']) {
    const api = JSON.stringify(path.join(__dirname, '..', entry))
    const script = entry === 'sync.js'
      ? `const gt = require(${api})
gt.run(() => {
  let shared
  gt.spawn(() => { shared = gt.Timeout.startNew(200); return 1 }).join()
  try { new gt.Event().wait({ signal: shared.signal }); return 'not aborted' } catch (e) { return e.name }
}).then((r) => console.log(r))`
      : `const gt = require(${api})
let shared
gt.spawn(() => { shared = gt.Timeout.startNew(200); void shared.signal; return 1 }).join().then(() =>
  gt.spawn(async () => { try { await new gt.Event().wait({ signal: shared.signal }); return 'not aborted' } catch (e) { return e.name } }).get()).then((r) => console.log(r))`
    const r = await runNode(['-e', script], { timeoutMs: 30_000 })
    t.is(r.status, 0, describeExit(r))
    t.is(r.stdout.trim(), 'Timeout', `${entry}: the waiter on its signal was aborted before the process exited`)
  }
  // It still fires while the process lives: its signal aborts at the deadline.
  let armed!: Timeout
  await spawn(() => {
    armed = Timeout.startNew(20)
  }).join()
  t.true(armed.pending)
  // (Something else keeps this process alive meanwhile: that Timeout does not.)
  const hold = setTimeout(() => undefined, 10_000)
  await new Promise((resolve) => armed.signal.addEventListener('abort', resolve))
  clearTimeout(hold)
  t.false(armed.pending)
})

test('a greenlet signal combined with Timeouts aborts with whichever fires first, and with the kill', async (t) => {
  const seen: unknown[] = []
  const g = spawn(async () => {
    const outer = Timeout.startNew(40, new Error('outer'))
    const inner = Timeout.startNew(20, new Error('inner'))
    const first = getcurrent()!.signal
    await new Promise((resolve) => first.addEventListener('abort', resolve))
    seen.push((first.reason as Error).message)
    inner.cancel()
    const second = getcurrent()!.signal
    t.not(first, second)
    await new Promise((resolve) => second.addEventListener('abort', resolve))
    seen.push((second.reason as Error).message)
    outer.cancel()
    const third = getcurrent()!.signal
    t.false(third.aborted)
    // Signals read before stay wired to the kill.
    const killed = new Promise((resolve) => third.addEventListener('abort', () => resolve(third.reason)))
    readThird()
    seen.push(((await killed) as Error).message)
  })
  let readThird!: () => void
  await new Promise<void>((resolve) => (readThird = resolve))
  await g.kill(new Error('kill'))
  t.deepEqual(seen, ['inner', 'outer', 'kill'])
  t.is((g.exception as Error).message, 'kill')
})
