/**
 * The hub's state machine (src/hub.ts), transition by transition, on bare
 * records: what each method does to a wait and what the next turn resumes.
 * Serial: every test reads the order of one turn.
 */
import * as path from 'node:path'

import test from 'ava'

import { HubRecord, Outcome, hub } from '../src/hub'
import { describeExit, runNode } from './_child'

const { START, WAKE, TIMER, INTERRUPTED } = Outcome

/** Every resumption of the probes of one test, in order: [name, outcome]. */
type Log = [string, number][]

class Probe extends HubRecord {
  constructor(
    readonly name: string,
    private readonly log: Log,
    transient = false,
  ) {
    super(transient)
    hub.resumables.set(this.id, this)
  }

  _resume(outcome: number): void {
    this.log.push([this.name, outcome])
  }
}

/** One macrotask: the hub turn scheduled before it has run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function probes(log: Log, ...names: string[]): Probe[] {
  return names.map((name) => new Probe(name, log))
}

test.serial('spawn starts on the next turn; yields come round in the order they were made', async (t) => {
  const log: Log = []
  const [a, b, c] = probes(log, 'a', 'b', 'c')
  hub.spawn(a, -1)
  hub.spawn(b, -1)
  t.deepEqual(log, [], 'nothing runs inside the call')
  await turn()
  t.deepEqual(log, [
    ['a', START],
    ['b', START],
  ])
  log.length = 0
  hub.spawn(c, -1)
  hub.yieldNow(b)
  hub.yieldNow(a)
  await turn()
  t.deepEqual(log, [
    ['c', START],
    ['b', WAKE],
    ['a', WAKE],
  ])
})

test.serial('a park ends with its timer, or earlier with unpark, whose timer then never fires', async (t) => {
  const log: Log = []
  const [a, b] = probes(log, 'a', 'b')
  hub.spawn(a, -1)
  hub.spawn(b, -1)
  await turn()
  log.length = 0
  hub.park(a, 20)
  hub.park(b, 20)
  hub.unpark(b)
  await turn()
  t.deepEqual(log, [['b', WAKE]])
  await delay(60)
  await turn()
  t.deepEqual(log, [
    ['b', WAKE],
    ['a', TIMER],
  ])
  // A new wait of the same record is not ended by an old timer.
  log.length = 0
  hub.park(a, 10)
  hub.unpark(a)
  await turn()
  hub.park(a, -1)
  await delay(40)
  await turn()
  t.deepEqual(log, [['a', WAKE]], 'only the unpark; the parked wait without timer goes on')
  hub.unpark(a)
  await turn()
  t.deepEqual(log, [
    ['a', WAKE],
    ['a', WAKE],
  ])
  hub.unpark(a)
  await turn()
  t.is(log.length, 2, 'unpark of a record that is not parked does nothing')
})

test.serial('startLater: a spawn with a delay starts on its timer; an interrupt before that resumes it at once', async (t) => {
  const log: Log = []
  const [a, b] = probes(log, 'a', 'b')
  hub.spawn(a, 15)
  hub.spawn(b, 15)
  hub.interrupt(b)
  await turn()
  t.deepEqual(log, [['b', INTERRUPTED]])
  await delay(50)
  await turn()
  t.deepEqual(log, [
    ['b', INTERRUPTED],
    ['a', START],
  ])
})

test.serial('interrupt: a parked record is resumed with it; a running one gets it at its next wait; a queued one keeps its place', async (t) => {
  const log: Log = []
  const [a, b, c] = probes(log, 'a', 'b', 'c')
  for (const p of [a, b, c]) hub.spawn(p, -1)
  await turn()
  log.length = 0
  hub.park(a, -1)
  hub.interrupt(a)
  // b is running: the interrupt waits for its next wait, which ends at once.
  hub.interrupt(b)
  await turn()
  t.deepEqual(log, [['a', INTERRUPTED]])
  hub.park(b, 1000)
  await turn()
  t.deepEqual(log.slice(1), [['b', INTERRUPTED]])
  log.length = 0
  // Queued with WAKE, then interrupted: same place in the queue, new outcome.
  hub.yieldNow(c)
  hub.yieldNow(a)
  hub.interrupt(c)
  await turn()
  t.deepEqual(log, [
    ['c', INTERRUPTED],
    ['a', WAKE],
  ])
})

test.serial('joinWait: woken once `count` targets died, or at the first failure with raiseError; targets not started yet count too', async (t) => {
  const log: Log = []
  const [w, x, y, z, notStarted] = probes(log, 'w', 'x', 'y', 'z', 'notStarted')
  for (const p of [w, x, y, z]) hub.spawn(p, -1)
  await turn()
  log.length = 0
  hub.joinWait(w, [x, y, z], 2, false, -1)
  hub.die(x, true)
  await turn()
  t.deepEqual(log, [], 'one of two')
  hub.die(y, false)
  await turn()
  t.deepEqual(log, [['w', WAKE]])
  log.length = 0
  hub.joinWait(w, [z], 1, true, -1)
  hub.die(z, true)
  await turn()
  t.deepEqual(log, [['w', WAKE]])
  log.length = 0
  hub.joinWait(w, [notStarted], 1, false, -1)
  hub.spawn(notStarted, -1)
  await turn()
  t.deepEqual(log, [['notStarted', START]])
  hub.die(notStarted, false)
  await turn()
  t.deepEqual(log, [
    ['notStarted', START],
    ['w', WAKE],
  ])
})

test.serial('a join wait with a timer ends with TIMER; a death after that does not resume it again', async (t) => {
  const log: Log = []
  const [w, x] = probes(log, 'w', 'x')
  hub.spawn(w, -1)
  hub.spawn(x, -1)
  await turn()
  log.length = 0
  hub.joinWait(w, [x], 1, false, 10)
  await delay(40)
  await turn()
  t.deepEqual(log, [['w', TIMER]])
  hub.die(x, false)
  await turn()
  t.deepEqual(log, [['w', TIMER]])
})

test.serial('joins that ended without the death (timed out, interrupted) do not pile up on a live target; live joiners are all resumed', async (t) => {
  const log: Log = []
  const [target] = probes(log, 'target')
  hub.resumed(target)
  // 10,000 joins that end by interrupt, as a poller's join(0) or a killed joiner's would.
  const pollers = probes(log, ...Array.from({ length: 100 }, (_, i) => `p${i}`))
  for (const p of pollers) hub.resumed(p)
  for (let round = 0; round < 100; round++) {
    for (const p of pollers) {
      hub.joinWait(p, [target], 1, false, -1)
      hub.interrupt(p)
    }
    await turn()
  }
  const listed = (target._joiners as unknown[] | undefined)?.length ?? 0
  t.true(listed <= 2 * 2 * 100 + 64, `${listed / 2} joins still listed`)
  log.length = 0
  const [a, b] = probes(log, 'a', 'b')
  hub.resumed(a)
  hub.resumed(b)
  hub.joinWait(a, [target], 1, false, -1)
  hub.joinWait(b, [target], 1, false, -1)
  hub.die(target, false)
  await turn()
  t.deepEqual(log, [['a', WAKE], ['b', WAKE]])
})

test.serial('a record that died is no longer unparked or interrupted; dying does not resume anybody but joiners (parents are the greenlets\' own)', async (t) => {
  const log: Log = []
  const [parent, child] = probes(log, 'parent', 'child')
  hub.resumed(parent)
  hub.resumed(child)
  hub.park(parent, -1)
  hub.die(child, false)
  await turn()
  t.deepEqual(log, [])
  hub.die(parent, false)
  hub.unpark(parent)
  hub.interrupt(parent)
  hub.die(parent, true)
  await turn()
  t.deepEqual(log, [])
})

test.serial('an entry of the batch being resumed is skipped if resumed directly or killed before its turn; a delivered interrupt goes to the next wait', async (t) => {
  const log: Log = []
  const [late, killed] = probes(log, 'late', 'killed')
  const early = new (class extends Probe {
    override _resume(outcome: number): void {
      super._resume(outcome)
      hub.resumed(late)
      hub.die(killed, true)
    }
  })('early', log)
  for (const p of [early, late, killed]) hub.spawn(p, -1)
  await turn()
  log.length = 0
  hub.yieldNow(early)
  hub.park(late, -1)
  hub.interrupt(late)
  hub.yieldNow(killed)
  await turn()
  t.deepEqual(log, [['early', WAKE]], 'late and killed were in the batch, skipped')
  hub.park(late, -1)
  await turn()
  t.deepEqual(log, [
    ['early', WAKE],
    ['late', INTERRUPTED],
  ])
})

test.serial('resumed: resuming directly voids a queued resumption but keeps its interrupt for the next wait', async (t) => {
  const log: Log = []
  const [a, b] = probes(log, 'a', 'b')
  hub.resumed(a)
  hub.resumed(b)
  hub.park(a, -1)
  hub.park(b, -1)
  hub.unpark(a)
  hub.interrupt(b)
  hub.resumed(a)
  hub.resumed(b)
  await turn()
  t.deepEqual(log, [], 'the queued resumptions are void')
  hub.park(a, -1)
  hub.park(b, -1)
  await turn()
  t.deepEqual(log, [['b', INTERRUPTED]])
})

test.serial('transient records: discard means never resumed; once delivered, interrupts no longer reach them', async (t) => {
  const log: Log = []
  const gone = new Probe('gone', log, true)
  const once = new Probe('once', log, true)
  hub.park(gone, 5)
  hub.discard(gone)
  hub.park(once, -1)
  hub.unpark(once)
  await delay(30)
  await turn()
  t.deepEqual(log, [['once', WAKE]])
  hub.interrupt(once)
  hub.park(once, -1)
  await turn()
  t.deepEqual(log, [['once', WAKE]], 'no interrupt was kept for it')
  hub.unpark(once)
  await turn()
  t.deepEqual(log, [
    ['once', WAKE],
    ['once', WAKE],
  ])
})

test.serial('a record that waits again before its resumption ran is not resumed for the old wait', async (t) => {
  const log: Log = []
  const [a] = probes(log, 'a')
  hub.spawn(a, -1)
  await turn()
  log.length = 0
  hub.park(a, -1)
  hub.unpark(a)
  hub.park(a, -1)
  await turn()
  t.deepEqual(log, [])
  hub.unpark(a)
  await turn()
  t.deepEqual(log, [['a', WAKE]])
})

test.serial('a transient record discarded while queued is skipped by the turn', async (t) => {
  const log: Log = []
  const a = new Probe('a', log, true)
  const b = new Probe('b', log, true)
  hub.yieldNow(a)
  hub.yieldNow(b)
  hub.discard(a)
  await turn()
  t.deepEqual(log, [['b', WAKE]])
})

test.serial('after 2^32 ids the counter wraps around the ids of live greenlets and of records named by id', async (t) => {
  const { Event, Greenlet, sleep, spawn } = await import('../index')
  const log: Log = []
  const release = new Event()
  // Alive across the wrap, and not in `resumables` until its timed wait below.
  const old = spawn(async () => {
    await release.wait()
    await sleep(5)
    return 'old'
  })
  const [named] = probes(log, 'named')
  await turn()
  const counter = hub as unknown as { lastId: number }
  counter.lastId = 0xffff_ffff
  const given: number[] = []
  // Counting up again from 1, past both live ids.
  do given.push(new Greenlet(() => undefined).id)
  while (counter.lastId < Math.max(old.id, named.id) && given.length < 1_000_000)
  t.true(given.every((id) => id >= 1 && id <= Math.max(old.id, named.id) + 1))
  t.false(given.includes(old.id))
  t.false(given.includes(named.id))
  t.is(new Set(given).size, given.length)
  // Both the old greenlet and one made after the wrap wait on timers: each is woken by its own.
  const fresh = spawn(async () => {
    await sleep(20)
    return 'fresh'
  })
  release.set()
  t.is(await old.get(), 'old')
  t.is(await fresh.get(), 'fresh')
  hub.resumables.delete(named.id)
})

test.serial("node:test's mock timers installed after the hub loaded do not swallow its turns (nor their reset drop them)", async (t) => {
  const index = JSON.stringify(path.join(__dirname, '..', 'index.js'))
  const script = `
const gt = require(${index})
const { mock } = require('node:test')
const realSetTimeout = setTimeout
mock.timers.enable({ apis: ['setImmediate', 'setInterval'] })
const first = gt.spawn(async () => { await gt.sleep(5); await gt.sleep(0); return 'first' }).get()
realSetTimeout(() => {
  mock.timers.reset()
  first.then((v) => gt.spawn(() => v + ' second').get()).then((v) => console.log(v))
}, 50)`
  const r = await runNode(['--no-warnings', '-e', script], { timeoutMs: 20_000 })
  t.is(r.status, 0, describeExit(r))
  t.is(r.stdout.trim(), 'first second')
})
