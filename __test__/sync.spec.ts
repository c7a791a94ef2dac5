import { execFileSync } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { type ChildResult, runNode } from './_child'

import {
  Event,
  Greenlet,
  GreenletExit,
  Timeout,
  block,
  getcurrent,
  joinall,
  killall,
  monkey,
  run,
  sleep,
  spawn,
  spawnLater,
} from '../sync'
import {
  Group as AsyncGroup,
  StreamServer as AsyncStreamServer,
  getcurrent as asyncGetcurrent,
  joinall as asyncJoinall,
  sleep as asyncSleep,
  spawn as asyncSpawn,
} from '../index'

// One hub and one baton per process: these tests must not interleave.
const serial = test.serial

/** The compiled entry, for child processes. */
const SYNC = path.join(__dirname, '..', 'sync.js')

/**
 * Runs `code` in a fresh node (with `flags`), where `SYNC` names the sync
 * module. Heavy or crash-prone scenarios run there, so that a V8 abort fails
 * one test instead of the whole file.
 */
function runChild(code: string, flags: string[] = [], timeoutMs = 90_000, env: NodeJS.ProcessEnv = {}): Promise<ChildResult> {
  return runNode([...flags, '-e', `const SYNC = ${JSON.stringify(SYNC)};\n${code}`], { timeoutMs, env })
}

/** Computes for `ms` without yielding. */
function busyFor(ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) {
    // nothing: only the clock moves
  }
}

/** The last line of a child's stdout, parsed as JSON. */
function report(r: ChildResult): any {
  const lines = r.stdout.trim().split('\n')
  try {
    return JSON.parse(lines[lines.length - 1])
  } catch {
    throw new Error(`no JSON report: status ${r.status} signal ${r.signal}\n${r.stdout}\n${r.stderr}`)
  }
}

serial('the seed ping-pong prints 12 56 34 78, written without await', async (t) => {
  const lines: string[] = []
  await run(() => {
    const gr1: Greenlet = new Greenlet(() => {
      lines.push('12')
      gr2.switch()
      lines.push('34')
      gr2.switch()
    })
    const gr2: Greenlet = new Greenlet(() => {
      lines.push('56')
      gr1.switch()
      lines.push('78')
    })
    gr1.switch()
  })
  t.deepEqual(lines, ['12', '56', '34', '78'])
})

serial('switch() passes values both ways and a finished child returns to its parent', async (t) => {
  const result = await run(() => {
    const child = new Greenlet((a: number) => {
      const b = getcurrent()!.parent!.switch(a + 1) as number
      return b * 10
    })
    const first = child.switch(1)
    const last = child.switch(5)
    return [first, last, child.dead, child.value]
  })
  t.deepEqual(result, [2, 50, true, 50])
})

serial('the seed play/eat: sleeping 5 and 3 units overlap and take about 5 units, not 8', async (t) => {
  const UNIT = 50
  const log: string[] = []
  const elapsed = await run(() => {
    const start = Date.now()
    const play = spawn((name: string) => {
      log.push(`${name} play 1`)
      sleep(5 * UNIT)
      log.push(`${name} play 2`)
    }, 'p')
    const eat = spawn((name: string) => {
      log.push(`${name} eat 1`)
      sleep(3 * UNIT)
      log.push(`${name} eat 2`)
    }, 'p')
    joinall([play, eat])
    return (Date.now() - start) / UNIT
  })
  t.deepEqual(log, ['p play 1', 'p eat 1', 'p eat 2', 'p play 2'])
  t.true(elapsed >= 4.9 && elapsed < 7, `took ${elapsed} units`)
})

serial('1,000 greenlets sleeping random times wake in sleep order while the event loop keeps ticking', async (t) => {
  const N = 1000
  const woke: { deadline: number; at: number }[] = []
  let seed = 12345
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  let ticks = 0
  let elapsed = 0
  await run(() => {
    // Started (a thread each) and parked first, so that the sleeps measure
    // wake-ups, not thread creation.
    const gs = Array.from({ length: N }, () =>
      spawn(() => {
        block(gate)
        // 1-200 ms (sleep(0) is a yield, not a timer): long enough that the
        // first batch, all 1,000 resuming at once from the gate while the
        // loop waits, is a small part of the run.
        const ms = 1 + Math.floor(random() * 200)
        const deadline = performance.now() + ms
        sleep(ms)
        woke.push({ deadline, at: performance.now() })
      }),
    )
    sleep(20)
    const interval = setInterval(() => ticks++, 5)
    const start = performance.now()
    release()
    joinall(gs)
    elapsed = performance.now() - start
    clearInterval(interval)
  })
  t.is(woke.length, N)
  let latest = -Infinity
  let outOfOrder = 0
  for (const w of woke) {
    // A sleep reaches the hub when its command is applied (about every
    // millisecond in a long batch, later on a loaded machine): it cannot be
    // ordered before timers that fired earlier. Overdue timers applied
    // together fire in deadline order.
    if (w.deadline < latest - 5) outOfOrder++
    latest = Math.max(latest, w.deadline)
  }
  t.is(outOfOrder, 0, 'wake-ups follow the deadlines')
  t.true(
    woke.every((w) => w.at >= w.deadline - 1),
    'nobody wakes early',
  )
  // The sleeps overlap: all of them take about the longest (200 ms), far
  // from their sum (about 100 s); how late they wake is bench/sync.ts's.
  t.true(elapsed < 20_000, `1,000 sleeps of at most 200 ms took ${elapsed.toFixed(0)} ms`)
  // The event loop keeps running meanwhile: a starved one would not tick.
  t.true(ticks >= 2, `only ${ticks} interval ticks in ${elapsed.toFixed(0)} ms`)
})

/** GC safety: objects held only in locals of suspended greenlets survive gc() run by others. */
const GC_SCENARIO = `
const { run, Greenlet, getcurrent } = require(SYNC)
const NG = 6, ROUNDS = +process.env.ROUNDS, HELD = 800, DEPTH = 3
let fails = 0, checks = 0, minor = 0, full = 0
function makeHeld(seed) {
  const objs = []
  for (let k = 0; k < HELD; k++) objs.push({ k, s: 'o' + seed + '-' + k, arr: [k, k * 2.5, 'x' + k], f: new Float64Array(4).fill(k + seed), deep: { v: seed * 31 + k } })
  const map = new Map()
  for (let k = 0; k < 100; k++) map.set('key' + k, { v: k * seed })
  return { objs, map, num: seed * 1.5 + 0.25, closure: ((c) => () => c * 7)(seed) }
}
function checksum(h) {
  let s = 0
  for (const o of h.objs) s = (s * 31 + o.k + o.s.length + o.arr[0] + o.arr[1] + o.arr[2].length + o.f[0] + o.f[3] + o.deep.v) % 1e12
  for (const [k, v] of h.map) s = (s + k.length + v.v) % 1e12
  return (s + h.num + h.closure()) % 1e12
}
function churn(n) { const keep = []; for (let j = 0; j < n; j++) { const o = { j, t: 'g' + j, a: [j, j] }; if (j % 16 === 0) keep.push(o) } return keep.length }
function frame(id, depth, ring) {
  const held = makeHeld(id * 100 + depth)
  const expect = checksum(held)
  const local = { tag: 'frame' + depth }
  if (depth > 0) {
    const r = frame(id, depth - 1, ring)
    if (checksum(held) !== expect || local.tag !== 'frame' + depth) fails++; else checks++
    return r
  }
  let carry = { from: id, count: 0 }
  for (let iter = 1; ; iter++) {
    const msg = ring[(id + 1) % ring.length].switch(carry)
    if (msg === 'stop') break
    if (!msg || typeof msg.count !== 'number') fails++
    carry = { from: id, count: msg.count + 1, payload: new Array(8).fill(id) }
    churn(200)
    if (iter % 25 === 0) { gc({ type: 'minor' }); minor++ }
    if (iter % 200 === id) { gc(); full++ }
    if (iter % 500 === 0) { if (checksum(held) !== expect) fails++; else checks++ }
  }
  if (checksum(held) !== expect) fails++; else checks++
  return 0
}
run(() => {
  const ring = []
  const driver = getcurrent()
  for (let i = 0; i < NG; i++) ring.push(new Greenlet(() => frame(i, DEPTH, ring)))
  ring.push(driver)
  const mine = makeHeld(999)
  const expect = checksum(mine)
  let msg = { count: 0 }
  for (let r = 0; r < ROUNDS; r++) {
    msg = ring[0].switch(msg)
    if (r % 100 === 0) { churn(2000); gc(); full++ }
  }
  for (let i = 0; i < NG; i++) ring[i].switch('stop')
  return { fails, checks, minor, full, count: msg.count, expectCount: (ROUNDS - 1) * NG, allDead: ring.slice(0, NG).every((g) => g.dead), mainOk: checksum(mine) === expect }
}).then((r) => console.log(JSON.stringify(r)), (e) => { console.error(e); process.exit(1) })
`

for (const [title, flags, rounds] of [
  ['gc() run by greenlets never frees objects held in locals of suspended greenlets', ['--expose-gc'], 1500],
  ['the same holds under --stress-scavenge=50 (short)', ['--expose-gc', '--stress-scavenge=50'], 120],
] as const) {
  test(title, async (t) => {
    const r = await runChild(`process.env.ROUNDS = ${rounds};\n${GC_SCENARIO}`, [...flags])
    t.is(r.status, 0, r.stderr)
    const res = report(r)
    t.is(res.fails, 0)
    t.true(res.checks > 0)
    t.true(res.minor > 0 && res.full > 0)
    t.is(res.count, res.expectCount)
    t.true(res.allDead)
    t.true(res.mainOk)
  })
}

serial('an exception propagates to the parent suspended in switch() and to get()', async (t) => {
  const result = await run(() => {
    const child = new Greenlet(() => {
      throw new Error('boom')
    })
    let caught: unknown
    try {
      child.switch()
    } catch (err) {
      caught = err
    }
    const spawned = spawn(() => {
      sleep(5)
      throw new TypeError('bad')
    })
    let viaGet: unknown
    try {
      spawned.get()
    } catch (err) {
      viaGet = err
    }
    return { caught: (caught as Error).message, viaGet, dead: child.dead && spawned.dead, ok: spawned.successful() }
  })
  t.is(result.caught, 'boom')
  t.true(result.viaGet instanceof TypeError)
  t.true(result.dead)
  t.false(result.ok)
  await t.throwsAsync(
    run(() => {
      throw new RangeError('out')
    }),
    { instanceOf: RangeError, message: 'out' },
  )
})

serial('throw() raises inside a greenlet suspended in switch(), which can catch it', async (t) => {
  const result = await run(() => {
    const victim = new Greenlet(() => {
      try {
        getcurrent()!.parent!.switch('parked')
      } catch (err) {
        return `caught ${(err as Error).message}`
      }
      return 'not reached'
    })
    const parked = victim.switch()
    const back = victim.throw(new Error('injected'))
    return [parked, back]
  })
  t.deepEqual(result, ['parked', 'caught injected'])
})

serial('kill() raises GreenletExit at the victim’s wait; joinall and killall block until done', async (t) => {
  const result = await run(() => {
    const cleanup: string[] = []
    const sleeper = spawn(() => {
      try {
        sleep(60_000)
      } finally {
        cleanup.push('sleeper')
      }
    })
    const others = [1, 2, 3].map((i) =>
      spawn(() => {
        try {
          sleep(60_000)
        } catch (err) {
          cleanup.push(`other${i}:${err instanceof GreenletExit}`)
          throw err
        }
      }),
    )
    sleep(5)
    sleeper.kill()
    killall(others)
    const done = joinall([sleeper, ...others], { timeoutMs: 1000 })
    return { cleanup, done: done.length, value: sleeper.value, ok: sleeper.successful(), exitIsSuccess: others[0].successful() }
  })
  t.deepEqual(result.cleanup, ['sleeper', 'other1:true', 'other2:true', 'other3:true'])
  t.is(result.done, 4)
  t.is(result.value, undefined)
  t.true(result.ok)
  t.true(result.exitIsSuccess)
})

serial('a greenlet switched to in the same hub turn it was killed gets the kill at its next wait', async (t) => {
  const log = await run(() => {
    const events: string[] = []
    const me = getcurrent()!
    const x = new Greenlet(() => {
      try {
        events.push(`x got ${me.switch('parked')}`)
        sleep(50)
        events.push('x slept')
      } catch (err) {
        events.push(`x caught ${(err as Error).name}`)
      }
    })
    x.switch()
    // Next turn: y yields, then this greenlet kills x (still in switch()).
    // The turn after resumes y first, which switches to x directly, before
    // the hub's resumption of x with the kill: that one must not hit x's
    // next wait as if it were meant for it, but the kill must still arrive.
    const y = spawn(() => {
      sleep(0)
      x.switch('from y')
    })
    sleep(0)
    x.kill(undefined, { block: false })
    x.join()
    y.kill(undefined, { block: false })
    return events
  })
  t.deepEqual(log, ['x got from y', 'x caught GreenletExit'])
})

serial('Timeout fires at the greenlet’s wait; Timeout.run kills a slow function', async (t) => {
  const result = await run(() => {
    let first: unknown
    const timeout = Timeout.startNew(20)
    try {
      sleep(5_000)
    } catch (err) {
      first = err
    } finally {
      timeout.cancel()
    }
    let second: unknown
    try {
      Timeout.run(20, () => sleep(5_000))
    } catch (err) {
      second = err
    }
    const fast = Timeout.run(1000, () => 7)
    return { first: first === timeout, second: second instanceof Timeout, fast }
  })
  t.deepEqual(result, { first: true, second: true, fast: 7 })
})

serial('Timeout.run settles at its deadline, as in the async mode, even if the work swallows the kill', async (t) => {
  const took = await run(() => {
    const start = Date.now()
    let outcome: unknown
    try {
      outcome = Timeout.run(30, () => {
        for (let i = 0; i < 5; i++) {
          try {
            sleep(400)
          } catch {
            // Swallowed: it goes on.
          }
        }
        return 'late'
      })
    } catch (err) {
      outcome = err
    }
    return { timedOut: outcome instanceof Timeout, ms: Date.now() - start }
  })
  t.true(took.timedOut)
  t.true(took.ms < 1_500, `settled after ${took.ms} ms, when the work ended (2 s), not at its deadline (30 ms)`)
})

serial('a kill that reaches a greenlet woken but not yet run wins over the value it then returns, as in the async mode', async (t) => {
  const outcome = await run(() => {
    const ev = new Event()
    let target: InstanceType<typeof Greenlet> | undefined
    const killer = spawn(() => {
      ev.wait()
      target!.kill(new Error('stop'))
    })
    target = spawn(() => {
      ev.wait()
      return 'finished normally'
    })
    target.linkException(() => {}) // looked at: no report on stderr
    sleep(1)
    setImmediate(() => ev.set()) // wakes both in one hub turn, the killer first
    joinall([killer, target])
    return [target.value, (target.exception as Error | undefined)?.message]
  })
  t.deepEqual(outcome, [undefined, 'stop'])
})

serial('two Timeouts that expire in one turn are each raised, at the wait then at the next one', async (t) => {
  const seen = await run(() => {
    // Runs between the first sleep's start and the hub's next turn: the sleep's own timer has expired by then too,
    // behind the two in the same batch (what a loaded machine did now and then).
    setImmediate(() => busyFor(10))
    const outer = Timeout.startNew(30)
    const inner = Timeout.startNew(20)
    busyFor(60) // both expire while it computes
    const raised: string[] = []
    for (let i = 0; i < 3; i++) {
      try {
        sleep(1)
        raised.push('none')
      } catch (err) {
        raised.push(err === inner ? 'inner' : err === outer ? 'outer' : String(err))
      }
    }
    return raised
  })
  t.deepEqual(seen, ['inner', 'outer', 'none'])
})

serial('spawnLater starts after the delay; links run once the greenlet has finished', async (t) => {
  const events: string[] = []
  await run(() => {
    const start = Date.now()
    const g = spawnLater(30, () => Date.now() - start)
    g.link((x) => events.push(`link ${x.dead}`))
    g.linkException(() => events.push('never'))
    t.true((g.get() as number) >= 29)
    sleep(0)
  })
  t.deepEqual(events, ['link true'])
})

serial('block() waits for a Promise resolved later by a timer, and throws a rejection', async (t) => {
  let ticks = 0
  const interval = setInterval(() => ticks++, 2)
  const result = await run(() => {
    const fetchLike = (ms: number, body: string) =>
      new Promise<{ status: number; text: () => Promise<string> }>((resolve) =>
        setTimeout(() => resolve({ status: 200, text: () => Promise.resolve(body) }), ms),
      )
    const response = block(fetchLike(40, 'hello'))
    const text = block(response.text())
    let rejected: unknown
    try {
      block(new Promise((_, reject) => setTimeout(() => reject(new Error('refused')), 10)))
    } catch (err) {
      rejected = err
    }
    return { status: response.status, text, rejected: (rejected as Error).message, plain: block(5 as unknown) }
  })
  clearInterval(interval)
  t.deepEqual(result, { status: 200, text: 'hello', rejected: 'refused', plain: 5 })
  t.true(ticks >= 5, `the event loop ticked ${ticks} times meanwhile`)
})

serial('sync and async greenlets share the hub: each waits for the other, and neither is the other’s current', async (t) => {
  const asyncOne = asyncSpawn(async () => {
    await asyncSleep(20)
    return 'async result'
  })
  const fromSync = await run(() => ({ value: block(asyncOne.get()), asyncCurrent: asyncGetcurrent() }))
  t.deepEqual(fromSync, { value: 'async result', asyncCurrent: null })
  const fromAsync = await asyncSpawn(async () => {
    // Spawned from inside an async greenlet: the tick that runs it may be
    // scheduled in that greenlet's async context.
    const g = spawn(() => asyncGetcurrent())
    const seen = await new Promise((resolve) => g.link(() => resolve(g.value)))
    return { seen, viaRun: await run(() => (sleep(5), 7)) }
  }).get()
  t.deepEqual(fromAsync, { seen: null, viaRun: 7 })
})

serial("a greenlet handed to the other mode's joinall, Group or parent is named as such in the TypeError", async (t) => {
  const message = /must be a Greenlet.*, got a Greenlet of greenthread(\/sync)? \(each mode joins, kills, links and groups only its own greenlets\)/
  const syncOne = spawn(() => 1)
  const asyncOne = asyncSpawn(() => 2)
  await t.throwsAsync(asyncJoinall([syncOne as never]), { instanceOf: TypeError, message: /greenlets\[0\] must be a Greenlet, got a Greenlet of greenthread\/sync/ })
  t.throws(() => new AsyncGroup().add(syncOne as never), { instanceOf: TypeError, message })
  t.throws(() => joinall([asyncOne as never]), { instanceOf: TypeError, message: /greenlets\[0\] must be a Greenlet, got a Greenlet of greenthread \(/ })
  t.throws(() => (new Greenlet(() => 3).parent = asyncOne as never), { instanceOf: TypeError, message })
  await run(() => joinall([syncOne]))
  await asyncOne.join()
})

serial("the async StreamServer started in a sync greenlet says to use greenthread/sync's", async (t) => {
  const error = await run(() => {
    const server = new AsyncStreamServer({ host: '127.0.0.1', port: 0 }, async () => {})
    try {
      server.start()
      server.stop()
      return undefined
    } catch (err) {
      return (err as Error).message
    }
  })
  t.is(error, "StreamServer.start() cannot run in a sync greenlet: use greenthread/sync's StreamServer there")
})

serial('blocking calls on the main thread outside greenlets throw instead of deadlocking', (t) => {
  const message = /blocks, and only code running in a sync greenlet can block/
  t.throws(() => sleep(1), { message })
  t.throws(() => block(Promise.resolve(1)), { message })
  const g = spawn(() => sleep(1))
  t.throws(() => g.join(), { message })
  t.throws(() => g.get(), { message })
  g.kill() // not started: it dies at once (gevent's kill), nothing to wait for
  t.true(g.dead)
  t.throws(() => new Greenlet(() => 1).switch(), { message })
  t.throws(() => Timeout.run(10, () => 1), { message })
  t.is(getcurrent(), null)
  g.kill(undefined, { block: false })
  t.throws(() => sleep(-1), { instanceOf: RangeError })
  t.throws(() => new Greenlet(5 as any), { instanceOf: TypeError, message: /fn must be a function/ })
})

serial('sync greenlets: signal aborts with the kill exception, startLater starts on its timer, a blocking call in a link callback throws the clear error', async (t) => {
  const r = await run(() => {
    let reason: unknown
    const stop = new Error('stop')
    const sleeper = spawn(() => {
      const signal = getcurrent()!.signal
      signal.addEventListener('abort', () => (reason = signal.reason))
      sleep(10_000)
    })
    sleep(0)
    sleeper.kill(stop)
    // Read, so that the failure is not reported as unobserved.
    const diedOfStop = sleeper.exception === stop
    const later = new Greenlet(() => Date.now())
    const start = Date.now()
    later.startLater(60)
    const startedMeanwhile = later.started
    const ranAfter = later.get() - start
    let linkError: unknown
    const linked = spawn(() => 1)
    let called!: () => void
    const linkRan = new Promise<void>((resolve) => (called = resolve))
    linked.link(() => {
      try {
        sleep(1)
      } catch (err) {
        linkError = err
      }
      called()
    })
    linked.join()
    block(linkRan)
    return { killedWithStop: reason === stop && diedOfStop, startedMeanwhile, ranAfter, linkError: (linkError as Error | undefined)?.message }
  })
  t.true(r.killedWithStop)
  t.true(r.startedMeanwhile)
  t.true(r.ranAfter >= 55, `ran after ${r.ranAfter} ms`)
  t.regex(r.linkError ?? '', /blocks, and only code running in a sync greenlet can block/)
})

serial('a greenlet cannot block inside a vm script under a watchdog; the others and the main thread run on', async (t) => {
  // Node ends a script run with timeout/breakOnSigint by terminating whatever
  // JS runs when the watchdog fires: had the greenlet handed over, that was
  // the busy greenlet (never finished) or the main thread (exit 1).
  const r = await runChild(
    `
const { run, spawn, joinall, sleep, Greenlet, monkey } = require(SYNC)
const vm = require('vm'), fs = require('fs')
monkey.patchAll()
const caught = (fn) => { try { return fn() } catch (e) { return e.code ?? e.message } }
let mainTicks = 0
const ticker = setInterval(() => mainTicks++, 1)
run(() => {
  const t0 = Date.now()
  const busy = spawn(() => {
    let rounds = 0
    while (Date.now() - t0 < 150) { const s = Date.now(); while (Date.now() - s < 2); sleep(1); rounds++ }
    return rounds
  })
  const blocker = spawn(() => {
    const other = new Greenlet(() => 'other')
    const r = {
      sleep: caught(() => vm.runInNewContext('sleep(100); "slept"', { sleep }, { timeout: 20 })),
      switch: caught(() => vm.runInNewContext('other.switch()', { other }, { timeout: 20 })),
      join: caught(() => vm.runInContext('busy.join()', vm.createContext({ busy }), { timeout: 20 })),
      sigint: caught(() => new vm.Script('sleep(1)').runInThisContext({ breakOnSigint: true })),
      spin: caught(() => vm.runInNewContext('for (;;);', {}, { timeout: 30 })),
      realRead: caught(() => vm.runInNewContext('read(file, "utf8").length > 0', { read: fs.readFileSync, file: SYNC }, { timeout: 1000 })),
      noTimeout: caught(() => vm.runInNewContext('sleep(5); "slept"', { sleep })),
    }
    sleep(5)
    r.after = 'blocks again'
    return r
  })
  joinall([busy, blocker])
  return { busy: busy.value, blocker: blocker.value }
}).then((r) => { clearInterval(ticker); console.log(JSON.stringify({ ...r, mainTicks })) })
`,
    [],
    20_000,
  )
  t.is(r.status, 0, r.stderr)
  const res = report(r)
  const refused = /^(sleep|switch|join)\(\) blocks, and a sync greenlet cannot block inside a vm script run with a timeout or breakOnSigint/
  t.regex(res.blocker.sleep, refused)
  t.regex(res.blocker.switch, refused)
  t.regex(res.blocker.join, refused)
  t.regex(res.blocker.sigint, refused)
  t.is(res.blocker.spin, 'ERR_SCRIPT_EXECUTION_TIMEOUT')
  t.is(res.blocker.realRead, true)
  t.is(res.blocker.noTimeout, 'slept')
  t.is(res.blocker.after, 'blocks again')
  // It ran on while the blocker tried (about 50 rounds when quiet; a loaded machine gives few).
  t.true(res.busy > 2, `busy ran ${res.busy} rounds`)
  t.true(res.mainTicks > 0)
})

serial('monkey-patched readFileSync lets another greenlet run (it writes the FIFO being read)', async (t) => {
  if (process.platform === 'win32') return t.pass()
  const r = await runChild(
    `
const { run, spawn, joinall, monkey } = require(SYNC)
const fs = require('fs'), path = require('path'), os = require('os'), cp = require('child_process')
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-sync-'))
const fifo = path.join(dir, 'fifo')
cp.execFileSync('mkfifo', [fifo])
monkey.patchAll()
run(() => {
  const reader = spawn(() => fs.readFileSync(fifo, 'utf8'))
  const writer = spawn(() => { fs.writeFileSync(fifo, 'from the writer'); return 'wrote' })
  joinall([reader, writer])
  return { read: reader.get(), wrote: writer.get(), patched: monkey.isPatched() }
}).then((r) => { fs.rmSync(dir, { recursive: true }); console.log(JSON.stringify(r)) })
`,
    [],
    20_000,
  )
  t.is(r.status, 0, r.stderr)
  t.deepEqual(report(r), { read: 'from the writer', wrote: 'wrote', patched: true })
})

serial('monkey-patched fs, child_process and Atomics.wait keep their results and errors, and yield meanwhile', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-sync-'))
  monkey.patchAll()
  try {
    const result = await run(() => {
      let ticks = 0
      const ticker = spawn(() => {
        for (;;) {
          ticks++
          sleep(1)
        }
      })
      const file = path.join(dir, 'a.txt')
      fs.writeFileSync(file, 'abc')
      fs.appendFileSync(file, 'def')
      const text = fs.readFileSync(file, 'utf8')
      const missing = fs.statSync(path.join(dir, 'nope'), { throwIfNoEntry: false })
      let enoent = ''
      try {
        fs.readFileSync(path.join(dir, 'nope'))
      } catch (err) {
        enoent = (err as NodeJS.ErrnoException).code ?? ''
      }
      const out = execFileSync('sh', ['-c', 'sleep 0.2; echo hi'], { encoding: 'utf8' })
      let status = 0
      try {
        execFileSync('sh', ['-c', 'echo oops >&2; exit 3'], { stdio: 'pipe' })
      } catch (err) {
        status = (err as { status: number }).status
      }
      const echoed = require('node:child_process').spawnSync('cat', { input: 'piped' }).stdout.toString()
      const notFound = require('node:child_process').spawnSync('no-such-command-gt').error?.code
      const exists = [fs.existsSync(file), fs.existsSync(path.join(dir, 'nope'))]
      const slow = require('node:child_process').spawnSync('sleep', ['5'], { timeout: 50 })
      const timedOut = [slow.error?.code, slow.signal]
      // Atomics.wait on the main isolate: another greenlet notifies it.
      const shared = new Int32Array(new SharedArrayBuffer(4))
      const notifier = spawn(() => {
        sleep(10)
        Atomics.store(shared, 0, 1)
        Atomics.notify(shared, 0)
      })
      const start = Date.now()
      const waited = [Atomics.wait(shared, 0, 0, 5000), Date.now() - start < 2500, Atomics.wait(shared, 0, 0, 1)]
      notifier.join()
      ticker.kill()
      return { text, missing, enoent, out, status, echoed, notFound, exists, timedOut, waited, ticks }
    })
    t.is(result.text, 'abcdef')
    t.is(result.missing, undefined)
    t.is(result.enoent, 'ENOENT')
    t.is(result.out, 'hi\n')
    t.is(result.status, 3)
    t.is(result.echoed, 'piped')
    t.is(result.notFound, 'ENOENT')
    t.deepEqual(result.exists, [true, false])
    t.deepEqual(result.timedOut, ['ETIMEDOUT', 'SIGTERM'])
    t.deepEqual(result.waited, ['ok', true, 'not-equal'])
    t.true(result.ticks >= 20, `the ticker ran ${result.ticks} times during the blocking calls`)
    // Outside greenlets the originals run.
    t.is(fs.readFileSync(path.join(dir, 'a.txt'), 'utf8'), 'abcdef')
  } finally {
    monkey.unpatchAll()
    fs.rmSync(dir, { recursive: true })
  }
  t.false(monkey.isPatched())
})

/**
 * The same file-system and process work, as a list of outcomes (values, or
 * the error's code and status), with `dir` written as `<dir>`: run with the
 * originals outside greenlets and with the patches inside one, the lists
 * must be equal.
 */
function monkeyScenario(dir: string): unknown[] {
  const out: unknown[] = []
  const p = (name: string): string => path.join(dir, name)
  const plain = (v: unknown): unknown => {
    if (typeof v === 'string') return v.split(dir).join('<dir>')
    if (Buffer.isBuffer(v)) return `buffer:${plain(v.toString('utf8'))}`
    if (Array.isArray(v)) return v.map(plain)
    return v
  }
  const record = (name: string, f: () => unknown): void => {
    try {
      out.push([name, plain(f())])
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { status?: number; stdout?: unknown; stderr?: unknown }
      out.push([name, 'throws', e.code ?? e.name, e.status, plain(e.stdout), plain(e.stderr)])
    }
  }
  const childProcess = require('node:child_process') as typeof import('node:child_process')
  record('mkdirSync recursive', () => fs.mkdirSync(p('a/b/c'), { recursive: true }))
  record('mkdirSync existing', () => fs.mkdirSync(p('a')))
  record('writeFileSync', () => fs.writeFileSync(p('a/f.txt'), 'hello'))
  record('appendFileSync', () => fs.appendFileSync(p('a/f.txt'), ' world'))
  record('readFileSync', () => fs.readFileSync(p('a/f.txt')))
  record('readFileSync utf8 by URL', () => fs.readFileSync(new URL(`file://${p('a/f.txt')}`), { encoding: 'utf8' }))
  record('readFileSync missing', () => fs.readFileSync(p('nope')))
  record('readdirSync', () => fs.readdirSync(p('a')).sort())
  record('readdirSync withFileTypes', () =>
    fs
      .readdirSync(p('a'), { withFileTypes: true })
      .map((d) => `${d.name}:${d.isDirectory()}`)
      .sort(),
  )
  record('statSync', () => {
    const st = fs.statSync(p('a/f.txt'))
    return [st.size, st.isFile(), st.isDirectory(), st.mode & 0o777]
  })
  record('statSync bigint', () => typeof fs.statSync(p('a/f.txt'), { bigint: true }).size)
  record('statSync missing, no throw', () => fs.statSync(p('nope'), { throwIfNoEntry: false }))
  record('lstatSync missing', () => fs.lstatSync(p('nope')))
  record('accessSync', () => fs.accessSync(p('a/f.txt'), fs.constants.R_OK))
  record('accessSync missing', () => fs.accessSync(p('nope')))
  record('existsSync', () => [fs.existsSync(p('a/f.txt')), fs.existsSync(p('nope'))])
  record('copyFileSync', () => fs.copyFileSync(p('a/f.txt'), p('a/g.txt')))
  record('copyFileSync exclusive', () => fs.copyFileSync(p('a/f.txt'), p('a/g.txt'), fs.constants.COPYFILE_EXCL))
  record('renameSync', () => fs.renameSync(p('a/g.txt'), p('a/h.txt')))
  record('cpSync', () => fs.cpSync(p('a'), p('copy'), { recursive: true }))
  record('readdirSync of the copy', () => fs.readdirSync(p('copy')).sort())
  record('symlinkSync', () => fs.symlinkSync(p('a/f.txt'), p('link')))
  record('readlinkSync', () => fs.readlinkSync(p('link')))
  record('realpathSync', () => fs.realpathSync(p('link')))
  record('realpathSync.native', () => fs.realpathSync.native(p('link')))
  record('lstatSync of the link', () => fs.lstatSync(p('link')).isSymbolicLink())
  record('linkSync', () => fs.linkSync(p('a/f.txt'), p('hard')))
  record('chmodSync', () => {
    fs.chmodSync(p('hard'), 0o600)
    return fs.statSync(p('hard')).mode & 0o777
  })
  record('chownSync', () => fs.chownSync(p('hard'), process.getuid!(), process.getgid!()))
  record('truncateSync', () => {
    fs.truncateSync(p('hard'), 3)
    return fs.readFileSync(p('a/f.txt'), 'utf8')
  })
  record('utimesSync', () => {
    fs.utimesSync(p('hard'), 1000, 2000)
    const st = fs.statSync(p('hard'))
    return [st.atimeMs, st.mtimeMs]
  })
  record('fd functions', () => {
    const fd = fs.openSync(p('fd.txt'), 'w+')
    const wrote = [fs.writeSync(fd, 'abcdef'), fs.writeSync(fd, Buffer.from('XY'), 0, 2, 1)]
    const buf = Buffer.alloc(10)
    const read = fs.readSync(fd, buf, 0, 10, 0)
    // No position: from the current one (after the writes, the end).
    const atEnd = (fs.readSync as (...args: unknown[]) => number)(fd, Buffer.alloc(4), 0, 4)
    const size = fs.fstatSync(fd).size
    fs.ftruncateSync(fd, 4)
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    return [typeof fd, wrote, read, atEnd, buf.toString('utf8', 0, read), size, fs.readFileSync(p('fd.txt'), 'utf8')]
  })
  record('openSync missing', () => fs.openSync(p('nope'), 'r'))
  record('mkdtempSync', () => path.basename(fs.mkdtempSync(p('tmp-'))).startsWith('tmp-'))
  record('unlinkSync', () => fs.unlinkSync(p('hard')))
  record('unlinkSync missing', () => fs.unlinkSync(p('hard')))
  record('rmdirSync', () => fs.rmdirSync(p('a/b/c')))
  record('rmdirSync not empty', () => fs.rmdirSync(p('a')))
  record('rmSync recursive', () => fs.rmSync(p('copy'), { recursive: true }))
  record('rmSync missing, forced', () => fs.rmSync(p('nope'), { force: true }))
  record('rmSync missing', () => fs.rmSync(p('nope')))
  record('execSync', () => childProcess.execSync('echo hi'))
  record('execSync utf8, stderr piped', () => childProcess.execSync('echo out; echo err >&2', { encoding: 'utf8', stdio: 'pipe' }))
  record('execSync fails', () => childProcess.execSync('echo partial; echo why >&2; exit 3', { stdio: 'pipe' }))
  record('execSync input', () => childProcess.execSync('tr a-z A-Z', { input: 'piped in', encoding: 'utf8' }))
  record('execFileSync, args undefined, options third', () => childProcess.execFileSync('pwd', undefined, { cwd: dir, encoding: 'utf8' }))
  record('spawnSync, args null, options third', () => childProcess.spawnSync('pwd', null as unknown as string[], { cwd: dir, encoding: 'utf8' }).stdout)
  record('execSync cwd and env', () => childProcess.execSync('pwd; echo $GT_VALUE', { cwd: dir, env: { ...process.env, GT_VALUE: 'seen' }, encoding: 'utf8' }))
  record('spawnSync, a program that does not exist', () => {
    const r = childProcess.spawnSync('gt-no-such-program', ['x'])
    return [r.error?.message, (r.error as NodeJS.ErrnoException | undefined)?.syscall, r.status]
  })
  record('execFileSync, a program that does not exist', () => {
    try {
      return childProcess.execFileSync('gt-no-such-program')
    } catch (err) {
      return [(err as Error).message, (err as NodeJS.ErrnoException).syscall]
    }
  })
  record('spawnSync, an extra pipe', () => childProcess.spawnSync('sh', ['-c', 'echo fd3 >&3'], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], encoding: 'utf8' }).output)
  record('spawnSync, a negative timeout', () => childProcess.spawnSync('true', [], { timeout: -5 }).status)
  record('execSync timeout, the shell its command outlives', () => {
    const started = Date.now()
    try {
      childProcess.execSync('sleep 3; echo late', { timeout: 200, stdio: 'pipe' })
    } catch (err) {
      return [(err as NodeJS.ErrnoException).code, (err as { signal?: string }).signal, Date.now() - started < 2000]
    }
    return 'returned'
  })
  fs.writeFileSync(p('plain'), 'x')
  record('statSync through a file, throwIfNoEntry false', () => fs.statSync(p('plain/sub'), { throwIfNoEntry: false }))
  return out
}

serial('monkey: every patched fs and child_process function returns and throws in a greenlet what the original does outside', async (t) => {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gt-monkey-')))
  const originalDir = path.join(root, 'original')
  const patchedDir = path.join(root, 'patched')
  fs.mkdirSync(originalDir)
  fs.mkdirSync(patchedDir)
  try {
    const want = monkeyScenario(originalDir)
    monkey.patchAll()
    let ticks = 0
    let got: unknown[]
    try {
      got = await run(() => {
        const ticker = spawn(() => {
          for (;;) {
            ticks++
            sleep(1)
          }
        })
        const outcomes = monkeyScenario(patchedDir)
        ticker.kill()
        return outcomes
      })
    } finally {
      monkey.unpatchAll()
    }
    t.deepEqual(got, want)
    // The patched versions ran (they let the ticker run while they waited).
    t.true(ticks > 0)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
})

serial('monkey: patchAll options leave the parts they name alone, and ES module named imports see the patches', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-monkey-esm-'))
  const esm = path.join(dir, 'imports.mjs')
  fs.writeFileSync(esm, "export { readFileSync } from 'node:fs'\nexport { execSync } from 'node:child_process'\n")
  const childProcess = require('node:child_process') as typeof import('node:child_process')
  const before = { readFileSync: fs.readFileSync, execSync: childProcess.execSync, wait: Atomics.wait }
  try {
    // Imported before patching: the named bindings follow the patches.
    const imported = await (new Function('u', 'return import(u)') as (u: string) => Promise<Record<string, unknown>>)(`file://${esm}`)
    monkey.patchAll({ fs: false })
    try {
      t.is(fs.readFileSync, before.readFileSync)
      t.not(childProcess.execSync, before.execSync)
      t.not(Atomics.wait, before.wait)
      t.is(imported.execSync, childProcess.execSync)
      t.is(imported.readFileSync, before.readFileSync)
    } finally {
      monkey.unpatchAll()
    }
    monkey.patchAll({ childProcess: false, atomics: false })
    try {
      t.not(fs.readFileSync, before.readFileSync)
      t.is(imported.readFileSync, fs.readFileSync)
      t.is(childProcess.execSync, before.execSync)
      t.is(Atomics.wait, before.wait)
    } finally {
      monkey.unpatchAll()
    }
    t.is(imported.readFileSync, before.readFileSync)
    t.is(imported.execSync, before.execSync)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test("deep but legal input to V8's parser and compilers in a greenlet throws (or compiles) as on the main thread, never SIGSEGV", async (t) => {
  // V8's regexp compiler and bytecode generator recurse without stack checks
  // here: a greenlet keeps room below its JS limit, as the main thread does.
  const r = await runChild(`
const { run, spawn } = require(SYNC)
const regexp = () => { try { return String(new RegExp('('.repeat(30000) + 'a' + ')'.repeat(30000)).test('a')) } catch (e) { return e.constructor.name } }
const destructure = (n) => { try { new Function('var ' + '['.repeat(n) + 'z' + ']'.repeat(n) + ' = []'); return 'compiled' } catch (e) { return e.constructor.name } }
const all = () => ({ regexp: regexp(), destructure: [2500, 2750, 3000, 3500].map(destructure) })
const main = all()
run(() => spawn(all).get()).then((greenlet) => console.log(JSON.stringify({ main, greenlet })))
`)
  t.is(r.status, 0, r.stderr)
  const { main, greenlet } = report(r)
  for (const res of [main, greenlet]) {
    t.true(['SyntaxError', 'true'].includes(res.regexp), res.regexp)
    for (const d of res.destructure) t.true(['RangeError', 'compiled'].includes(d), d)
  }
})

test('a greenlet that blocks inside an async_hooks callback gets an Error that says why (fatal there, as any hook error is); hooks that do not block run as before', async (t) => {
  // Before: a lost process.nextTick (run() never settled, exit 0), timers left unref'd, or Node's
  // "async hook stack has become corrupted" when init ran for the hub's own setImmediate.
  const quiet = await runChild(`
const { run, block, sleep } = require(SYNC)
const { createHook } = require('node:async_hooks')
const seen = new Set()
createHook({ init(id, type) { seen.add(type) } }).enable()
run(() => { block(new Promise((res) => process.nextTick(res))); sleep(1); return 'ok' })
  .then((r) => console.log(JSON.stringify({ r, tick: seen.has('TickObject'), timeout: seen.has('Timeout') || seen.has('Immediate') })))
`)
  t.is(quiet.status, 0, quiet.stderr)
  t.deepEqual(report(quiet), { r: 'ok', tick: true, timeout: true })
  const blocking = await runChild(`
const { run, block, sleep, getcurrent } = require(SYNC)
const { createHook } = require('node:async_hooks')
createHook({ init(id, type) { if (type === 'TickObject' && getcurrent()) sleep(0) } }).enable()
run(() => block(new Promise((res) => process.nextTick(res))))
`)
  t.is(blocking.status, 1)
  t.regex(blocking.stderr, /sleep\(\) blocks, and a sync greenlet cannot block inside an async_hooks callback/)
})

test('a GC inside a fast API call while another thread is archived does not corrupt the heap (Buffer.byteLength of a rope, Node 24+)', async (t) => {
  // Without --no-turbo-fast-api-calls: SIGSEGV or "unreachable code" in the scavenger on Node 24 and 26.
  const r = await runChild(`
const { run, block } = require(SYNC)
let stop = false
;(function pump() { if (!stop) { Buffer.byteLength('x'.repeat(65536)); setImmediate(pump) } })()
run(() => {
  for (let i = 0; i < 20000; i++) {
    Buffer.byteLength('y'.repeat(65536))
    block(i % 2 ? Promise.resolve() : new Promise((resolve) => setImmediate(resolve)))
  }
  return 'done'
}).then((r) => { stop = true; console.log(JSON.stringify({ r })) })
`)
  t.is(r.status, 0, `${r.stderr} (signal ${r.signal})`)
  t.is(report(r).r, 'done')
})

test('a CPU profile started in one greenlet and stopped in another (or on the main thread) does not end the process', async (t) => {
  // V8's sampler signals the thread that started it: a signal still on its
  // way after the stop found SIGPROF at its default action (exit 155).
  const r = await runChild(`
const { run, spawn, sleep } = require(SYNC)
// A listener added and removed puts SIGPROF back at its default action (libuv).
const listener = () => {}
process.on('SIGPROF', listener)
process.off('SIGPROF', listener)
const session = new (require('inspector').Session)()
session.connect()
session.post('Profiler.enable')
run(() => {
  for (let round = 0; round < 30; round++) {
    const busy = spawn(() => { for (let k = 0; k < 20; k++) sleep(0) })
    session.post('Profiler.start')
    sleep(2)
    spawn(() => session.post('Profiler.stop')).join()
    busy.join()
  }
  session.post('Profiler.start')
  sleep(2)
}).then(() => {
  let samples = 0
  session.post('Profiler.stop', (err, r) => { samples = r.profile.samples.length })
  console.log(JSON.stringify({ done: true, samples }))
})
`)
  t.is(r.status, 0, `${r.stderr} (signal ${r.signal})`)
  t.true(report(r).done)
})

serial("a greenlet cannot block inside the inspector's Runtime.evaluate with a timeout; the others finish", async (t) => {
  // V8's inspector ends a timed-out evaluation by terminating whatever JS
  // runs then: had the greenlet handed over, another greenlet (never
  // finished) or the main thread ("async hook stack has become corrupted").
  // inspector/promises loaded first keeps its own reference to the callback API's post.
  const r = await runChild(`
const promises = require('inspector/promises')
const { run, spawn, joinall, sleep, block } = require(SYNC)
globalThis.sleep = sleep
const session = new (require('inspector').Session)()
session.connect()
const promised = new promises.Session()
promised.connect()
const describe = (r) => r.exceptionDetails ? r.exceptionDetails.exception.description : r.result.value
run(() => {
  const others = [1, 2, 3].map(() => spawn(() => { for (let i = 0; i < 20; i++) { const s = Date.now(); while (Date.now() - s < 2); sleep(1) } return 'done' }))
  let timed, untimed
  session.post('Runtime.evaluate', { expression: 'sleep(100); "slept"', timeout: 20 }, (e, r) => { timed = describe(r) })
  session.post('Runtime.evaluate', { expression: 'sleep(5); "slept"' }, (e, r) => { untimed = r.result.value })
  const timedPromised = describe(block(promised.post('Runtime.evaluate', { expression: 'sleep(100); "slept"', timeout: 20 })))
  joinall(others, { timeoutMs: 10000 })
  return { timed, untimed, timedPromised, others: others.map((g) => g.value) }
}).then((r) => console.log(JSON.stringify(r)))
`)
  t.is(r.status, 0, r.stderr)
  const res = report(r)
  const refused = /sleep\(\) blocks, and a sync greenlet cannot block inside a vm script run with a timeout or breakOnSigint \(or an inspector evaluation with a timeout\)/
  t.regex(res.timed, refused)
  t.regex(res.timedPromised, refused)
  t.is(res.untimed, 'slept')
  t.deepEqual(res.others, ['done', 'done', 'done'])
})

test('deep recursion in a greenlet throws RangeError, also after switches and while others are suspended', async (t) => {
  // nativeDepth recurses in C++ (V8's ValueSerializer): JSON.stringify did too
  // until V8 14 (Node 26) made it iterative.
  const r = await runChild(`
const { run, Greenlet, getcurrent } = require(SYNC)
function jsDepth() { let d = 0; function f() { d++; f() } try { f() } catch (e) { return { depth: d, error: e.constructor.name } } return { depth: d, error: null } }
function nativeDepth() { let o = {}; for (let i = 0; i < 200000; i++) o = { o }; try { structuredClone(o); return 'none' } catch (e) { return e.constructor.name } }
function deep(n) { return n === 0 ? getcurrent().parent.switch('suspended deep') : deep(n - 1) }
run(() => {
  const me = getcurrent()
  const first = jsDepth()
  const cpp = nativeDepth()
  const deepOne = new Greenlet(() => deep(5000))
  const parked = deepOne.switch()
  const other = new Greenlet(() => jsDepth()).switch()
  const again = new Greenlet(() => { me.switch('x'); return jsDepth() })
  again.switch()
  const afterResume = again.switch()
  const resumed = deepOne.switch('resumed ok')
  return { first, cpp, parked, other, afterResume, resumed }
}).then((r) => console.log(JSON.stringify({ ...r, mainAfter: jsDepth() })))
`)
  t.is(r.status, 0, r.stderr)
  const res = report(r)
  for (const k of ['first', 'other', 'afterResume', 'mainAfter']) {
    t.is(res[k].error, 'RangeError', k)
    t.true(res[k].depth > 1000, `${k} depth ${res[k].depth}`)
  }
  t.is(res.cpp, 'RangeError')
  t.is(res.parked, 'suspended deep')
  t.is(res.resumed, 'resumed ok')
})

test('the process exits cleanly while greenlets are suspended (naturally, by process.exit in a greenlet, by an uncaught error)', async (t) => {
  const setup = `
const { run, Greenlet, getcurrent, sleep, spawn } = require(SYNC)
function deep(n) { return n === 0 ? getcurrent().parent.switch() : deep(n - 1) }
let suspended = 0
process.on('exit', (code) => console.log(JSON.stringify({ code, suspended })))
`
  const natural = await runChild(`${setup}
run(() => { for (let i = 0; i < 50; i++) { new Greenlet(() => deep(i * 20)).switch(); suspended++ } })`)
  t.is(natural.status, 0, natural.stderr)
  t.deepEqual(report(natural), { code: 0, suspended: 50 })

  const exited = await runChild(`${setup}
run(() => { for (let i = 0; i < 20; i++) { new Greenlet(() => deep(i)).switch(); suspended++ } spawn(() => { sleep(5); process.exit(3) }); sleep(1e9) })`)
  t.is(exited.status, 3, exited.stderr)
  t.deepEqual(report(exited), { code: 3, suspended: 20 })

  const uncaught = await runChild(`${setup}
run(() => { new Greenlet(() => deep(3)).switch(); suspended++; spawn(() => { sleep(1); setImmediate(() => { throw new Error('uncaught in the loop') }) }); sleep(1e9) })`)
  t.is(uncaught.status, 1)
  t.regex(uncaught.stderr, /uncaught in the loop/)
  t.deepEqual(report(uncaught), { code: 1, suspended: 1 })
})

test('when no thread can be had for a new greenlet it fails with an Error; the others carry on', async (t) => {
  // The cap stands in for the OS limit (~32k threads here, where each thread
  // also takes one of the machine's 32768 process ids: too costly for a test).
  const r = await runChild(
    `
const { run, Greenlet, getcurrent, spawn, joinall } = require(SYNC)
run(() => {
  const me = getcurrent()
  const live = []
  let error
  for (let i = 0; i < 1000; i++) {
    const g = new Greenlet((n) => me.switch() + n, i)
    try { g.switch() } catch (err) { error = err; break }
    live.push(g)
  }
  const spawned = spawn(() => 1)
  joinall([spawned])
  const result = { live: live.length, error: error && error.message, spawned: spawned.exception && spawned.exception.message }
  let sum = 0
  for (const g of live) sum += g.switch(1)
  result.sumOk = sum === live.length * (live.length - 1) / 2 + live.length
  result.allDead = live.every((g) => g.dead)
  result.after = spawn(() => 'threads are reused').get()
  return result
}).then((r) => console.log(JSON.stringify(r)))
`,
    [],
    90_000,
    { GREENTHREAD_SYNC_MAX_THREADS: '200' },
  )
  t.is(r.status, 0, r.stderr)
  const res = report(r)
  // 200 threads: the driver (run's greenlet) and 199 suspended ones.
  t.is(res.live, 199)
  t.regex(res.error, /cannot start a thread for a new greenlet \(GREENTHREAD_SYNC_MAX_THREADS reached\)/)
  t.regex(res.spawned, /cannot start a thread for a new greenlet/)
  t.true(res.sumOk)
  t.true(res.allDead)
  t.is(res.after, 'threads are reused')
})

test('importing greenthread/sync on a Node without its binary, or off the main thread, throws a clear Error', async (t) => {
  const r = await runChild(`
Object.defineProperty(process.versions, 'modules', { value: '999' })
try { require(SYNC); console.log(JSON.stringify({ loaded: true })) } catch (e) { console.log(JSON.stringify({ message: e.message })) }
`)
  t.is(r.status, 0, r.stderr)
  t.regex(report(r).message, /no native binary for Node .* \(ABI 999\).*supports Node 20, Node 22, Node 24, Node 26: prebuilt for linux-x64-gnu/)
  const w = await runChild(`
const { Worker } = require('worker_threads')
new Worker('try { require(' + JSON.stringify(SYNC) + ') } catch (e) { require("worker_threads").parentPort.postMessage(e.message) }', { eval: true })
  .on('message', (m) => console.log(JSON.stringify({ message: m })))
`)
  t.is(w.status, 0, w.stderr)
  t.regex(report(w).message, /main thread only/)
})

test('a stack overflow reached while blocking raises RangeError before the wait starts: the greenlet stays whole and can block again', async (t) => {
  const r = await runChild(`
const { run, spawn, joinall, sleep, getcurrent, Greenlet } = require(SYNC)
// Each frame, unwinding from the limit, blocks once: one of them lands where the
// blocking call itself runs out of stack.
const sleeps = [], switches = []
let h
function unwindSleeping(n) {
  try { unwindSleeping(n + 1) } catch (e) { if (!(e instanceof RangeError)) throw e }
  if (sleeps.length < 60) {
    let c
    try { sleep(0); c = 'o' } catch (e) { c = e instanceof RangeError ? 'R' : 'X:' + e.message }
    sleeps.push(getcurrent() === null ? c + '!' : c)
  }
}
function unwindSwitching(n) {
  try { unwindSwitching(n + 1) } catch (e) { if (!(e instanceof RangeError)) throw e }
  if (switches.length < 60) {
    let c
    try { h.switch(); c = 'o' } catch (e) { c = e instanceof RangeError ? 'R' : 'X:' + e.message }
    switches.push(getcurrent() === null ? c + '!' : c)
  }
}
run(() => {
  const other = spawn(() => { for (let i = 0; i < 100; i++) sleep(0); return 'other done' })
  const g = spawn(() => { unwindSleeping(0); sleep(1); return 'slept after' })
  joinall([g, other])
  let partner
  h = new Greenlet(() => { for (;;) partner.switch() })
  partner = spawn(() => { h.switch(); unwindSwitching(0); sleep(1); return 'switched after' })
  joinall([g, other, partner])
  return { sleeps: [...new Set(sleeps)], switches: [...new Set(switches)], values: [g.value, other.value, partner.value] }
}).then((r) => console.log(JSON.stringify(r)), (e) => console.log(JSON.stringify({ error: String(e) })))
`)
  t.is(r.status, 0, r.stderr)
  const res = report(r)
  t.deepEqual(res.values, ['slept after', 'other done', 'switched after'])
  for (const trace of [res.sleeps, res.switches]) t.true(trace.every((c: string) => c === 'R' || c === 'o'), JSON.stringify(trace))
})

// A wasm module (hand-assembled): export go(x) = imp(x) + 1, imp imported from env.
const WASM_GO = `new Uint8Array([0,97,115,109,1,0,0,0, 1,6,1,96,1,127,1,127, 2,11,1,3,101,110,118,3,105,109,112,0,0,
  3,2,1,0, 7,6,1,2,103,111,0,1, 10,11,1,9,0,32,0,16,0,65,1,106,11])`

test('blocking inside a WebAssembly.promising() export (JSPI) throws a clear Error instead of crashing the process', async (t) => {
  const r = await runChild(`
const { run, spawn, joinall, sleep, block, monkey } = require(SYNC)
if (typeof WebAssembly.promising !== 'function') { console.log(JSON.stringify({ jspi: false })); process.exit(0) }
const instance = new WebAssembly.Instance(new WebAssembly.Module(${WASM_GO}), { env: { imp: (x) => { sleep(5); return x * 2 } } })
const go = WebAssembly.promising(instance.exports.go)
run(() => {
  const gs = [0, 1].map((i) => spawn(() => block(go(i))))
  joinall(gs)
  const plain = new WebAssembly.Instance(new WebAssembly.Module(${WASM_GO}), { env: { imp: (x) => x * 2 } })
  return { errors: gs.map((g) => g.exception && g.exception.message), ok: block(WebAssembly.promising(plain.exports.go)(20)) }
}).then((r) => console.log(JSON.stringify(r)), (e) => console.log(JSON.stringify({ error: String(e) })))
`)
  t.is(r.status, 0, r.stderr)
  const res = report(r)
  if (res.jspi === false) {
    t.false(process.versions.v8.startsWith('13.') || process.versions.v8.startsWith('14.'), 'JSPI exists from V8 13')
    return
  }
  t.is(res.ok, 41)
  for (const message of res.errors) t.regex(message, /sleep\(\) blocks, and a sync greenlet cannot block inside a WebAssembly\.promising\(\) call/)
})

test('blocking inside JSON.stringify callbacks: both results on Node 20, 24, 26; a clear Error on Node 22 (V8 12 would abort)', async (t) => {
  const r = await runChild(`
const { run, spawn, joinall, sleep } = require(SYNC)
run(() => {
  const work = (tag, ms) => JSON.stringify({ tag, v: { toJSON() { sleep(ms); return tag } } })
  const gs = [spawn(() => work('A', 10)), spawn(() => work('B', 40))]
  joinall(gs)
  return gs.map((g) => (g.exception ? 'error: ' + g.exception.message : g.value))
}).then((r) => console.log(JSON.stringify(r)), (e) => console.log(JSON.stringify({ error: String(e) })))
`)
  t.is(r.status, 0, r.stderr)
  const res = report(r)
  if (process.versions.v8.startsWith('12.')) {
    for (const out of res) t.regex(out, /^error: sleep\(\) blocks, and on Node 22 a sync greenlet cannot block inside JSON\.stringify/)
  } else {
    t.deepEqual(res, ['{"tag":"A","v":"A"}', '{"tag":"B","v":"B"}'])
  }
})

test('blocking inside Array.prototype.join, toLocaleString or String(array) (an element toString) throws a clear Error: V8 aborted when two such joins ended out of order', async (t) => {
  const r = await runChild(`
const { run, spawn, joinall, sleep } = require(SYNC)
const blocking = (tag, ms) => ({ toString() { sleep(ms); return tag }, toLocaleString() { sleep(ms); return tag } })
run(() => {
  // Entered first, ends first: the order that aborted the process.
  const gs = [
    spawn(() => [blocking('a', 10)].join()),
    spawn(() => [blocking('b', 40)].join(['p', 'q'].join('+'))),
    spawn(() => String([blocking('c', 20)])),
    spawn(() => \`\${[blocking('d', 30)]}\`),
    spawn(() => [blocking('e', 5)].toLocaleString()),
    spawn(() => new Uint8Array([1, 2]).join(blocking(',', 15))),
  ]
  joinall(gs)
  // Outside a join, blocking is fine, and joins still work.
  const plain = spawn(() => { sleep(1); return [1, [2, 3], 'x'].join('-') + ' ' + new Float64Array([1.5]).toLocaleString('en-US') })
  joinall([plain])
  return [...gs.map((g) => (g.exception ? 'error: ' + g.exception.message : 'value: ' + g.value)), plain.value]
}).then((r) => console.log(JSON.stringify(r)), (e) => console.log(JSON.stringify({ error: String(e) })))
`)
  t.is(r.status, 0, r.stderr)
  const res = report(r) as string[]
  t.is(res.length, 7)
  for (const out of res.slice(0, 6)) t.regex(out, /^error: sleep\(\) blocks, and a sync greenlet cannot block inside Array\.prototype\.join or toLocaleString/)
  t.is(res[6], '1-2,3-x 1.5')
  t.is([].join.name, 'join')
  t.is(Array.prototype.join.length, 1)
})

test('with monkey patches on, greenlets that require() the same new module at once both get its whole exports', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-require-'))
  const file = path.join(dir, 'fresh.js')
  fs.writeFileSync(file, 'exports.value = 42\n')
  const data = path.join(dir, 'data.json')
  fs.writeFileSync(data, '{ "value": 43 }\n')
  const r = await runChild(`
const { run, spawn, joinall, monkey } = require(SYNC)
monkey.patchAll()
run(() => {
  const gs = [0, 1].flatMap(() => [spawn(() => require(${JSON.stringify(file)}).value), spawn(() => require(${JSON.stringify(data)}).value)])
  joinall(gs)
  return gs.map((g) => g.value)
}).then((r) => console.log(JSON.stringify(r)), (e) => console.log(JSON.stringify({ error: String(e) })))
`)
  fs.rmSync(dir, { recursive: true, force: true })
  t.is(r.status, 0, r.stderr)
  t.deepEqual(report(r), [42, 43, 42, 43])
})

// msgpackr's native decoder (msgpackr-extract, a dependency of bullmq) keeps
// its state in a C++ thread_local set up on the loading thread: a decode on
// a greenlet's thread dereferenced it (SIGSEGV, every time). Loading
// greenthread/sync turns it off (msgpackr's own switch), and warns when it
// loaded first, too late for that.
test.serial('a native addon that keeps its state per thread (msgpackr-extract) does not crash a sync greenlet', async (t) => {
  const msgpackr = JSON.stringify(path.join(__dirname, '..', '..', 'node_modules', 'msgpackr'))
  const decode = `
    const { pack, unpack } = require(${msgpackr})
    const packed = pack({ name: 'x'.repeat(100), list: Array.from({ length: 50 }, (_, i) => 'item ' + 'y'.repeat(i)) })
    run(() => {
      const gs = [0, 1, 2].map(() => spawn(() => { sleep(0); return unpack(packed) }))
      return gs.map((g) => g.get())
    }).then((all) => console.log(all.every((v) => v.name.length === 100 && v.list[49] === 'item ' + 'y'.repeat(49))))
  `
  // Not inherited from this process, where greenthread/sync set it.
  const env = { MSGPACKR_NATIVE_ACCELERATION_DISABLED: undefined }
  const first = await runChild(`const { run, spawn, sleep } = require(SYNC)\n${decode}`, [], 90_000, env)
  t.is(first.signal, null, first.stderr)
  t.is(first.status, 0, first.stderr)
  t.is(first.stdout.trim(), 'true')
  t.notRegex(first.stderr, /GREENTHREAD_THREAD_LOCAL_ADDON/)
  const late = await runChild(`require(${msgpackr}).unpack(require(${msgpackr}).pack({ s: 'z'.repeat(100) }))\nconst { run, spawn, sleep } = require(SYNC)\nconsole.log('loaded')`, [], 90_000, env)
  t.is(late.status, 0, late.stderr)
  t.regex(late.stderr, /GREENTHREAD_THREAD_LOCAL_ADDON.*msgpackr-extract.*MSGPACKR_NATIVE_ACCELERATION_DISABLED=true/s)
})

// block() reads like await: the greenlet goes on before the event loop does,
// as an await's continuation would. It resumed behind the immediates queued
// meanwhile, so a listener added right after missed an event one of them
// emitted (an http2 client waiting for 'response' then 'end' hung forever).
serial('block() of a settled Promise resumes before the immediates queued meanwhile: a listener added next sees their events', async (t) => {
  const got = await run(() => {
    const ee = new EventEmitter()
    setTimeout(() => {
      ee.emit('a')
      setImmediate(() => ee.emit('b', 'from an immediate'))
    }, 5)
    block(once(ee, 'a'))
    // Emitted again later, for a listener that missed the first one.
    const late = setTimeout(() => ee.emit('b', 'missed it'), 1000)
    const b = block(once(ee, 'b'))
    clearTimeout(late)
    return b
  })
  t.deepEqual(got, ['from an immediate'])
})

serial('a loop of block() on settled Promises still lets the event loop run (at most 64 resumptions between two of its turns)', async (t) => {
  let immediateRan = false
  let sawImmediateAt = -1
  await run(() => {
    setImmediate(() => (immediateRan = true))
    for (let i = 0; i < 1000; i++) {
      block(Promise.resolve(i))
      if (immediateRan && sawImmediateAt < 0) sawImmediateAt = i
    }
  })
  t.true(sawImmediateAt >= 0 && sawImmediateAt < 1000, `the immediate ran during the loop (at ${sawImmediateAt})`)
})

serial('many greenlets looping on block() of settled Promises still let the event loop run: at most 64 resumptions before it goes on', async (t) => {
  let blocks = 0
  let blocksWhenImmediateRan = -1
  await run(() => {
    const gs = Array.from({ length: 200 }, () =>
      spawn(() => {
        for (let i = 0; i < 50; i++) {
          block(Promise.resolve(i))
          blocks++
        }
      }),
    )
    setImmediate(() => (blocksWhenImmediateRan = blocks))
    joinall(gs)
  })
  t.is(blocks, 10_000)
  t.true(blocksWhenImmediateRan >= 0 && blocksWhenImmediateRan < 5_000, `an immediate queued at the start ran after ${blocksWhenImmediateRan} of 10,000 blocks`)
})
