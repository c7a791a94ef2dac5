/**
 * The hub: the scheduler that every greenlet, wait, primitive, socket and
 * executor shares, in both modes. Internal.
 *
 * # Who owns what
 * The JS thread owns scheduling: the state of every wait (`HubRecord`: the
 * greenlets themselves, and waits made under an id of their own), the run
 * queue, joins, parents, interrupts. Async greenlets run here, and a native
 * call per event would cost more than the event. The Rust side
 * (crates/runtime/src/hub.rs) owns what only it does well: timers (a
 * deadline heap and a clock thread that wakes this thread once per batch of
 * expired timers) and waits completed by other threads (sockets, executors).
 * Timer commands are buffered and handed over in one native call per turn,
 * which returns the expired timers and completions in the same call; a turn
 * with no timer work makes no native call at all.
 *
 * # States of a record (`_hubState`)
 * - `CREATED`: known, not started (a greenlet joined before it started).
 * - `SCHEDULED`: its start is pending on a timer (`startLater`).
 * - `READY`: in the run queue, to be resumed with its outcome (`readyOutcome`).
 * - `DELIVERED`: taken into the batch of the current turn, not resumed yet.
 * - `RUNNING`: running, or awaiting something foreign (from the hub's view).
 * - `PARKED`: suspended in a hub wait, possibly with a timer.
 * - `GONE`: died or discarded: unparks, interrupts, joins and its death
 *   again no longer reach it.
 *
 * Transitions, one method each: `spawn` (CREATED -> SCHEDULED, or READY with
 * START); `yieldNow` (-> READY with WAKE); `park` (-> PARKED); `unpark`
 * (PARKED -> READY with WAKE; `unparkSoon` too, its turn run once the
 * microtasks have drained, as an `await` goes on); a timer (PARKED -> READY with TIMER,
 * SCHEDULED -> READY with START); `interrupt` (PARKED or SCHEDULED -> READY
 * with INTERRUPTED; READY keeps its place with INTERRUPTED; DELIVERED too
 * for a Timeout's, else as RUNNING: raised at its next wait); `joinWait` (-> PARKED until enough
 * targets `die`); `resumed` (the front end resumed it directly: a switch, a
 * child returning to its parent, a hand-off: -> RUNNING, voiding a queued or
 * delivered resumption but keeping its interrupt for the next wait); `die` /
 * `discard` (-> GONE). A turn (`tick`, a macrotask) takes the run queue as
 * one batch (READY -> DELIVERED), then resumes its entries in order, each
 * that is still DELIVERED then (-> RUNNING). So `sleep(0)` resumes after
 * every other ready greenlet has run up to its next wait. Most resumptions
 * settle a Promise (the greenlet runs on from a microtask), a start runs the
 * greenlet's function at once: either way the next entry waits until the
 * greenlet resumed before it reaches its next wait or dies (`reachedWait`),
 * or the microtasks have run out (it awaits something foreign), so each
 * runs up to its next wait in the batch's order, as in gevent.
 * An interrupt of a DELIVERED START turns it into INTERRUPTED: a greenlet
 * killed before it started dies without running. A Timeout's interrupt of
 * a greenlet whose wait ended (its sleep's timer, a wake-up) behind the
 * Timeout's alarm in the same batch is raised at that wait, as in gevent,
 * where a timer that comes first throws into the wait before the wait's own
 * timer or wake-up runs; a kill there is queued behind the wake-up (gevent
 * runs it as a callback): raised at the next wait.
 *
 * What is not the hub's, and where it lives: a greenlet's lifecycle (`new`,
 * `scheduled`, `running`, `dead`: what `started` and `dead` report) and how
 * a wait is resumed (the async mode's Promise, the sync mode's baton) are the
 * greenlet's (src/_greenlet-base.ts and each mode's greenlet.ts); so are the
 * exception an interrupt raises (the hub only knows one is due), the parent
 * a switch() returns to (a finishing greenlet resumes it itself, then tells
 * the hub with `resumed`), and direct wake-ups (`wakeHanded`: a hand-off
 * settles a waiter at once, and the hub is told with `resumed`).
 *
 * # Invariants
 * - A record is in the run queue at most once (`QUEUED`).
 * - Every wait gets a new `_epoch`; a join registration carries the epoch it
 *   was made for and is ignored once it has passed.
 * - A timer is named on the wire by its slot and the slot's serial (raised
 *   by every timer the slot gets): an expiry that is not the slot's current
 *   timer's is ignored.
 * - `liveTimers` counts records whose current wait has a timer, those
 *   `unref`'d aside: the process is kept alive exactly while it is non-zero.
 */
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks'
import { getSystemErrorName } from 'node:util'

import type { NativeHub } from 'native-binding'
import { GreenletExit, checkMs, rejecting } from './errors'
import { native, wire } from './native'
import { KEEP_ALIVE_MS } from './_keep-alive'

/** How a resumed record's wait ended. */
export const Outcome = {
  /** Run the greenlet's function for the first time. */
  START: 1,
  /** Its wait ended normally: a yield came round, an unpark, a join, a child returned. */
  WAKE: 2,
  /** The timer of its wait (or its sleep) expired. */
  TIMER: 3,
  /** An exception (kill, Timeout) is to be raised at its wait. */
  INTERRUPTED: 4,
} as const

const CREATED = 0
const SCHEDULED = 1
const READY = 2
const RUNNING = 3
const PARKED = 4
const DELIVERED = 5
const GONE = 6

// Flags of a record (`_hubFlags`), one word rather than a field each: a
// greenlet carries them all its life.
/** In the run queue. */
const QUEUED = 1
/** Its current wait has a timer. */
const TIMED = 2
/** An interrupt waits to be delivered at its next wait. */
const INTERRUPT_QUEUED = 4
/** Its join wait ends at the first failure. */
const JOIN_RAISE = 8
/** A wait made once under an id of its own: forgotten once delivered. */
const TRANSIENT = 16
/** Its resumption runs it to its next wait before returning (a sync greenlet): it settles no Promise. */
const RUNS_AT_ONCE = 32
/** The outcome a READY or DELIVERED record is resumed with, in bits 6 to 8. */
const OUTCOME_SHIFT = 6
const OUTCOME_MASK = 7 << OUTCOME_SHIFT
/** Its timers do not keep the process alive (`unref`). */
const UNREF = 1 << 9
/** Its resumption (other than a start) only settles Promises: it runs no code of anybody's (an async greenlet, a transient wait). */
const SETTLES_ONLY = 1 << 10

function readyOutcome(r: HubRecord): number {
  return (r._hubFlags & OUTCOME_MASK) >> OUTCOME_SHIFT
}

function setReadyOutcome(r: HubRecord, outcome: number): void {
  r._hubFlags = (r._hubFlags & ~OUTCOME_MASK) | (outcome << OUTCOME_SHIFT)
}

/** `waiter` is still in the join wait it registered for under `epoch`. */
function stillJoining(waiter: HubRecord, epoch: number): boolean {
  return waiter._epoch === epoch && waiter._hubState === PARKED && waiter._joinRemaining > 0
}

/** Keeps the (waiter, epoch) pairs of `joiners` still joining, in order. */
function dropEndedJoins(joiners: (HubRecord | number)[]): void {
  let kept = 0
  for (let i = 0; i < joiners.length; i += 2) {
    if (!stillJoining(joiners[i] as HubRecord, joiners[i + 1] as number)) continue
    joiners[kept++] = joiners[i]
    joiners[kept++] = joiners[i + 1]
  }
  joiners.length = kept
}

/** A wait woken directly whose greenlet has not run yet: an interrupt meanwhile is raised by it. */
export interface WokenWait {
  interrupted: boolean
  exception: unknown
  holder: WokenWaitHolder | undefined
}

/** Whoever keeps a wait woken directly until its code has run: a greenlet, or a transient wait of one. */
export interface WokenWaitHolder {
  _woken: WokenWait | undefined
  /** See WaitOwner. */
  _raiseAtNextWait(exception: unknown): void
}

/**
 * Something the hub schedules and resumes: a greenlet, a wait made under an
 * id of its own, an alarm. The `_hub*` fields belong to the hub alone.
 */
export abstract class HubRecord {
  /** Unique among live records (ids are reused only after 2^32 of them, skipping those alive). */
  readonly id: number = hub.newId()
  /** @internal */ _hubState: number
  /** @internal `QUEUED`, `TIMED`... */ _hubFlags: number
  /** @internal */ _epoch = 0
  /** @internal Its timer's slot while its wait has a timer (`TIMED`). */ _timerSlot = 0
  /**
   * @internal Waiters on its death: one record (the usual case, its epoch in
   * `_joinerEpoch`), or pairs (record, epoch).
   */
  _joiners: HubRecord | (HubRecord | number)[] | undefined = undefined
  /** @internal */ _joinerEpoch = 0
  /** @internal Deaths its join wait still needs (0: not in a join wait). */ _joinRemaining = 0
  /**
   * @internal The list entry of its current wait, if that is a primitive's
   * wait list: an interrupt takes it off the list at once, before the wait
   * has run (a party arriving meanwhile must not hand it anything).
   */
  _listWait: ListedWait | undefined = undefined

  /**
   * `transient`: a wait made once under an id of its own (outside greenlets,
   * a second concurrent wait, an alarm). The hub forgets it once it has been
   * delivered: interrupts then no longer reach it.
   */
  constructor(transient: boolean) {
    this._hubState = transient ? RUNNING : CREATED
    this._hubFlags = transient ? TRANSIENT : 0
  }

  /** @internal Resumed by the hub with the outcome of its wait. */
  abstract _resume(outcome: number): void
  /** In a plain wait (not a switch) that a hand-off may end directly now: see `wakeHanded`. */
  _inPlainWait?(): boolean
  /**
   * Ends that wait at once, as if woken: settles its Promise, and voids the
   * hub's wait if it was `parked` there. Until it has run, an interrupt is
   * recorded in `woken`, for the wait to raise.
   */
  _wakeNow?(parked: boolean, woken: WokenWait): void
  /** Its wait may skip the hub while it has no timer: no interrupt is queued in the hub. */
  _mayWaitUnparked?(): boolean
}

/** A wait in a primitive's wait list (src/_waiters.ts). */
export interface ListedWait {
  /** Leaves the list: the wait is interrupted, and nothing may be handed to it any more. */
  leaveList(): void
}

/** What a greenlet exposes to the suspension machinery. */
export interface WaitOwner extends HubRecord {
  readonly dead: boolean
  /** Its own id is parked in a wait (a second concurrent wait gets a transient id). */
  _waiting: boolean
  /** That wait is a sleep(): it resolves with undefined. Cleared with `_waiting`. */
  _sleeping: boolean
  _resolve: ((outcome: number) => void) | undefined
  _extraWaits: Set<TransientWait> | undefined
  /** An interrupt waiting for its next wait, taken, for a wait that is not its own record's to raise; `undefined` if none. */
  _takeRaiseForWait(): { exception: unknown } | undefined
  /** Raises `exception` at its next wait after all: the wait it was raised at stands (a hand-off that cannot go back). */
  _raiseAtNextWait(exception: unknown): void
}

const COMMANDS_PER_BATCH = 4096
const EVENTS_PER_BATCH = 8192
/** Records resumed per turn at most: the event loop gets a turn in between. */
const READY_PER_BATCH = 8192
/** Greenlets `unparkSoon` may resume between two regular turns of the hub (see there). */
const SOON_RESUMES_PER_LOOP = 64
/** Run queue storage kept once drained, in entries. */
const KEPT_RUN_QUEUE = 1 << 18
const MAX_ID = 0xffff_ffff
/**
 * Direct wake-ups (see `wakeHanded`) allowed between two hub turns. A hand-off
 * ping-pong could otherwise run on microtasks forever, starving timers, I/O
 * and the greenlets of the run queue; past the budget the hub wakes waiters,
 * which gives the event loop a turn. Large enough that the turn's cost
 * vanishes when spread over it.
 */
const DIRECT_WAKES_PER_TURN = 1000

function noop(): void {}

/** A relative timeout as a deadline on `performance.now()`'s clock; 0 stays "due now". */
function deadline(ms: number): number {
  return ms > 0 ? performance.now() + ms : 0
}

/**
 * Node's own timers, as they were when the hub loaded: a mock installed later
 * (node:test's `mock.timers`) would swallow the hub's turns, and its reset
 * drop them, leaving every greenlet waiting for good.
 */
const realSetImmediate = globalThis.setImmediate
const realSetInterval = globalThis.setInterval

/**
 * Schedules a turn in the async context the hub was loaded in (normally
 * none), not in the one of whoever made something ready (a greenlet):
 * every greenlet the turn starts makes its own context, and on
 * AsyncContextFrame making one copies the context it starts from.
 */
const scheduleInHubContext = AsyncResource.bind((tick: () => void): void => {
  realSetImmediate(tick)
})

/**
 * Calls `run` (in the hub's async context) once the microtask queue has
 * drained, before the event loop goes on: a tick queued from a microtask runs
 * after every microtask, including those queued meanwhile.
 */
const resumeAfterMicrotasks = AsyncResource.bind((run: () => void): void => {
  queueMicrotask(() => process.nextTick(run))
})

class HubClient {
  /**
   * Records by id, for what names them by id: completions of waits under an
   * id of their own (transient records, until resumed or discarded).
   */
  readonly resumables = new Map<number, HubRecord>()
  /**
   * The records whose wait has a timer, by slot: the native side names a
   * timer by its slot and the slot's serial. A slot is free again once its
   * timer has expired or been cancelled; the serial, raised by every timer
   * the slot gets, tells a stale expiry of an earlier timer from the one of
   * the current timer.
   */
  private readonly timed: (HubRecord | undefined)[] = []
  private readonly timerSerials: number[] = []
  private readonly freeTimerSlots: number[] = []
  private nativeHub: NativeHub | undefined
  private readonly commands = new Float64Array(COMMANDS_PER_BATCH * wire.COMMAND_WIDTH)
  private count = 0
  private readonly out = new Float64Array(wire.OUT_HEADER + EVENTS_PER_BATCH * wire.EVENT_WIDTH)
  private readonly headerOnly = new Float64Array(wire.OUT_HEADER)
  /** The native side has something for us (it woke us, or its output was full). */
  private nativeDue = false
  /** When the earliest native timer is due, on `performance.now()`'s clock. */
  private nextDeadline = Infinity
  private liveTimers = 0
  /** The run queue: entries from `runHead` to `runTail`; its storage is kept for the next ones. */
  private readonly runQueue: (HubRecord | undefined)[] = []
  private runHead = 0
  private runTail = 0
  private tickScheduled = false
  /** A turn is queued for when the microtasks have drained (`unparkSoon`). */
  private soonQueued = false
  /** Greenlets resumed that way since the event loop last ran a regular turn. */
  private soonResumes = 0
  /** Records `unparkSoon` queued since the last batch was taken. */
  private soonWoken = 0
  /** Ticks wait while this is set (`pauseTicksUntil`); one was due if `tickDeferred`. */
  private ticksPaused = false
  private tickDeferred = false
  private keepAlive: NodeJS.Timeout | undefined
  private lastId = 0
  /** The batch being resumed: its records, the next entry, how many. */
  private readonly ready: (HubRecord | undefined)[] = []
  private cursor = 0
  private delivered = 0
  /**
   * Whose code the entry `takeReady` returned last goes on in (the greenlet
   * resumed, or the owner of a transient wait), until it reaches its next
   * wait (`reachedWait`) or dies; `undefined` once it has, or if it ran to
   * its next wait before returning (a sync greenlet).
   */
  private runningFor: object | undefined = undefined
  /** The batch waits for `runningFor` (see `takeReady`). */
  private held = false
  /** The rest of the batch goes on once the microtasks have run. */
  private batchResumeQueued = false
  /** The outcome of the entry `takeReady` returned last. */
  takenOutcome = 0
  /** Counts the ready batches: which one is being resumed. */
  batch = 0
  private directWakes = 0
  private directWakesBatch = -1

  /**
   * @internal The records that live on without being in `resumables` (the
   * greenlets started and not finished): their ids stay theirs when the
   * counter wraps. Set by src/_greenlet-base.ts, which keeps that list.
   */
  liveRecords: () => Iterable<HubRecord> = () => []
  /** The ids of live records when the counter last wrapped, skipped until the counter passes them all. */
  private idsTakenAtWrap: Set<number> | undefined
  private highestTakenAtWrap = 0
  private idsWrapped = false

  /**
   * A fresh id, never 0, and the id of no live record: the native side
   * names transient records by id (u32 on the wire), and a greenlet's id is
   * its own while it lives. After 2^32 records the counter wraps, skipping
   * those still alive.
   */
  newId(): number {
    // Until the counter first wraps every id is fresh.
    if (!this.idsWrapped && this.lastId < MAX_ID) return ++this.lastId
    for (;;) {
      if (this.lastId === MAX_ID) this.#wrapIds()
      const id = ++this.lastId
      if (this.resumables.has(id)) continue
      const taken = this.idsTakenAtWrap
      if (taken !== undefined) {
        if (taken.has(id)) continue
        if (id >= this.highestTakenAtWrap) this.idsTakenAtWrap = undefined
      }
      return id
    }
  }

  #wrapIds(): void {
    this.idsWrapped = true
    this.lastId = 0
    const taken = new Set<number>()
    let highest = 0
    for (const r of this.liveRecords()) {
      taken.add(r.id)
      highest = Math.max(highest, r.id)
    }
    this.idsTakenAtWrap = taken.size > 0 ? taken : undefined
    this.highestTakenAtWrap = highest
  }

  // --- Transitions (see the state machine above) ---

  /** Registers a greenlet and starts it on a later turn (`ms` negative), or after `ms` (a timer). */
  spawn(r: HubRecord, ms: number): void {
    if (r._hubState === GONE) return
    r._hubState = SCHEDULED
    if (ms >= 0) this.#startTimer(r, deadline(ms))
    else this.#makeReady(r, Outcome.START)
  }

  /** Goes to the back of the run queue (`sleep(0)`). */
  yieldNow(r: HubRecord): void {
    this.#endWait(r)
    if (!this.#deliverQueuedInterrupt(r)) this.#makeReady(r, Outcome.WAKE)
  }

  /** Suspends until unparked, interrupted, or `ms` elapse (negative: no timer; 0: due now). */
  park(r: HubRecord, ms: number): void {
    this.#endWait(r)
    if (this.#deliverQueuedInterrupt(r)) return
    r._hubState = PARKED
    if (ms >= 0) this.#startTimer(r, deadline(ms))
  }

  /** Ends a park with WAKE; ignored unless parked. */
  unpark(r: HubRecord): void {
    if (r._hubState !== PARKED) return
    this.#endWait(r)
    this.#makeReady(r, Outcome.WAKE)
  }

  /**
   * `unpark`, for a wait that ends the way an `await` would (a Promise
   * settled: sync mode's `block()`): its turn runs once the microtasks have
   * drained, before the event loop goes on, as an `await`'s continuation
   * would, not behind the immediates queued meanwhile (a listener added
   * right after would miss an event one of them emits). At most
   * `SOON_RESUMES_PER_LOOP` greenlets resumed that way between two regular
   * turns (more go to the regular turn), so that loops of `block()` on
   * settled Promises cannot starve the event loop.
   */
  unparkSoon(r: HubRecord): void {
    if (r._hubState !== PARKED) return
    const queued = this.runTail
    this.unpark(r)
    if (this.runTail > queued) this.soonWoken++
    if (this.soonQueued || this.soonResumes >= SOON_RESUMES_PER_LOOP) return
    this.soonQueued = true
    resumeAfterMicrotasks(this.soonTurn)
  }

  /**
   * Resumes what `unparkSoon` woke, if that is all the run queue holds:
   * greenlets ready otherwise (a `sleep(0)`) wait for the regular turn, so
   * that the event loop has had its turn before they go on.
   */
  private readonly soonTurn = (): void => {
    this.soonQueued = false
    const woken = this.soonWoken
    if (this.ticksPaused || this.cursor < this.delivered || woken === 0 || this.runTail - this.runHead !== woken) return
    if (this.soonResumes + woken > SOON_RESUMES_PER_LOOP) return
    this.soonResumes += woken
    this.batch++
    this.#takeBatch()
    this.#resumeBatch()
  }

  /** `unpark` for a record named by id (completions); ignored if nobody owns it. */
  unparkId(id: number): void {
    const r = this.resumables.get(id)
    if (r !== undefined) this.unpark(r)
  }

  /**
   * The front end resumed or started `r` directly (a switch, a child
   * returning to its parent): it is running now. A resumption still queued
   * is void, but its interrupt reaches the next wait.
   */
  resumed(r: HubRecord): void {
    const state = r._hubState
    if (state === CREATED) {
      r._hubState = RUNNING
    } else if ((state === READY || state === DELIVERED) && readyOutcome(r) !== Outcome.START) {
      r._hubState = RUNNING
      if (readyOutcome(r) === Outcome.INTERRUPTED && (r._hubFlags & TRANSIENT) === 0) r._hubFlags |= INTERRUPT_QUEUED
    } else if (state === PARKED) {
      this.#endWait(r)
      r._hubState = RUNNING
    }
  }

  /**
   * Suspends `waiter` until `count` of `targets` have died (or, with
   * `raiseError`, one of them failed), or `ms` elapse (negative: no timer).
   */
  joinWait(waiter: HubRecord, targets: readonly HubRecord[], count: number, raiseError: boolean, ms: number): void {
    this.park(waiter, ms)
    // A queued interrupt ended it at once.
    if (waiter._hubState !== PARKED) return
    waiter._joinRemaining = Math.max(count, 1)
    if (raiseError) waiter._hubFlags |= JOIN_RAISE
    const epoch = waiter._epoch
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i]
      if (target._hubState === GONE) continue
      const joiners = target._joiners
      if (joiners === undefined || (joiners instanceof HubRecord && !stillJoining(joiners, target._joinerEpoch))) {
        target._joiners = waiter
        target._joinerEpoch = epoch
      } else if (joiners instanceof HubRecord) {
        target._joiners = [joiners, target._joinerEpoch, waiter, epoch]
      } else {
        // Joins that ended otherwise (a timeout, a kill) stay listed until the target dies: dropped
        // each time the list doubles, so a long-lived target polled with join(0) keeps no more than twice its live joiners.
        if (joiners.length >= 64 && (joiners.length & (joiners.length - 1)) === 0) dropEndedJoins(joiners)
        joiners.push(waiter, epoch)
      }
    }
  }

  /**
   * `r` died (`failed` if it raised): its joiners are resumed. With
   * `keepWait`, a wait of its record still pending (made by code it left
   * running) goes on: the record stays, and is resumed when that wait ends.
   */
  die(r: HubRecord, failed: boolean, keepWait = false): void {
    this.reachedWait(r)
    if (r._hubState === GONE) return
    if (!keepWait) {
      this.#endWait(r)
      r._hubState = GONE
    }
    const joiners = r._joiners
    if (joiners === undefined) return
    r._joiners = undefined
    if (joiners instanceof HubRecord) this.#joined(joiners, r._joinerEpoch, failed)
    else for (let i = 0; i < joiners.length; i += 2) this.#joined(joiners[i] as HubRecord, joiners[i + 1] as number, failed)
  }

  /**
   * Raises an exception (kill, Timeout) at the current or next wait of `r`;
   * with `overWake`, also at a wait that has ended but not run yet
   * (DELIVERED: resumed later in this batch).
   */
  interrupt(r: HubRecord, overWake = false): void {
    switch (r._hubState) {
      case PARKED:
      case SCHEDULED:
        r._listWait?.leaveList()
        this.#endWait(r)
        this.#makeReady(r, Outcome.INTERRUPTED)
        break
      case READY:
        setReadyOutcome(r, Outcome.INTERRUPTED)
        break
      case DELIVERED:
        // Not started yet: it dies without running. It has not run since
        // its wait ended: with `overWake` the interrupt, which came first in
        // the batch, is raised there.
        if (readyOutcome(r) === Outcome.START || (overWake && (r._hubFlags & TRANSIENT) === 0)) {
          // Out of its wait list now, as when parked: nobody hands it anything more.
          r._listWait?.leaveList()
          setReadyOutcome(r, Outcome.INTERRUPTED)
          break
        }
      // falls through
      case RUNNING:
        // A transient wait is forgotten once delivered: nothing to raise at.
        if ((r._hubFlags & TRANSIENT) === 0) r._hubFlags |= INTERRUPT_QUEUED
        break
    }
  }

  /**
   * Raises `exception` at a transient wait still pending: through the hub if
   * it knows the wait (parked, with its timer), at once otherwise (a
   * Promise-based wait the hub need not know: a kill reaches it directly).
   */
  interruptTransient(r: TransientWait, exception: unknown): void {
    r.exception = exception
    if (r._hubState === RUNNING) {
      r._listWait?.leaveList()
      this.discard(r)
      r._resume(Outcome.INTERRUPTED)
    } else {
      this.interrupt(r)
    }
  }

  /**
   * Takes back an interrupt that waits for the next wait of `r` (queued
   * while it ran); returns whether there was one. One already made ready
   * is delivered.
   */
  withdrawInterrupt(r: HubRecord): boolean {
    if ((r._hubFlags & INTERRUPT_QUEUED) === 0) return false
    r._hubFlags &= ~INTERRUPT_QUEUED
    return true
  }

  /** `r` is resumed by running it to its next wait (a sync greenlet), not by settling a Promise. */
  runsAtOnce(r: HubRecord): void {
    r._hubFlags |= RUNS_AT_ONCE
  }

  /** `r`'s resumption, other than a start, only settles Promises (see `reachedWait`). */
  settlesOnly(r: HubRecord): void {
    r._hubFlags |= SETTLES_ONLY
  }

  /** The timers of `r`, from now on, do not keep the process alive (as Node's `timer.unref()`). */
  unref(r: HubRecord): void {
    if ((r._hubFlags & UNREF) !== 0) return
    r._hubFlags |= UNREF
    if ((r._hubFlags & TIMED) === 0) return
    this.liveTimers--
    this.holdProcess(this.liveTimers > 0)
  }

  /** Undoes `unref`: the timers of `r` keep the process alive again. */
  ref(r: HubRecord): void {
    if ((r._hubFlags & UNREF) === 0) return
    r._hubFlags &= ~UNREF
    if ((r._hubFlags & TIMED) === 0) return
    this.liveTimers++
    this.holdProcess(true)
  }

  /** Whether `r` is in the run queue or the batch being resumed, waiting for its turn. */
  isQueued(r: HubRecord): boolean {
    return r._hubState === READY || r._hubState === DELIVERED
  }

  /** Forgets a transient record (a cancelled alarm, an abandoned wait). */
  discard(r: HubRecord): void {
    if ((r._hubFlags & TRANSIENT) === 0) return
    this.#endWait(r)
    r._hubState = GONE
    this.resumables.delete(r.id)
  }

  #endWait(r: HubRecord): void {
    r._epoch = (r._epoch + 1) & 0x3fff_ffff
    r._joinRemaining = 0
    const flags = r._hubFlags
    r._hubFlags = flags & ~(JOIN_RAISE | TIMED)
    if ((flags & TIMED) !== 0) {
      this.#nativeCommand(wire.CANCEL_TIMER, r._timerSlot, 0, 0)
      this.#forgetTimed(r)
    }
  }

  #deliverQueuedInterrupt(r: HubRecord): boolean {
    if ((r._hubFlags & INTERRUPT_QUEUED) === 0) return false
    r._hubFlags &= ~INTERRUPT_QUEUED
    this.#makeReady(r, Outcome.INTERRUPTED)
    return true
  }

  #makeReady(r: HubRecord, outcome: number): void {
    if (r._hubState === READY && readyOutcome(r) === Outcome.INTERRUPTED) return
    r._hubState = READY
    setReadyOutcome(r, outcome)
    if ((r._hubFlags & QUEUED) === 0) {
      r._hubFlags |= QUEUED
      this.runQueue[this.runTail++] = r
      if (!this.tickScheduled) this.schedule()
    }
  }

  #joined(waiter: HubRecord, epoch: number, failed: boolean): void {
    if (!stillJoining(waiter, epoch)) return
    waiter._joinRemaining = failed && (waiter._hubFlags & JOIN_RAISE) !== 0 ? 0 : waiter._joinRemaining - 1
    if (waiter._joinRemaining === 0) {
      this.#endWait(waiter)
      this.#makeReady(waiter, Outcome.WAKE)
    }
  }

  /**
   * A timer runs on the native side, keyed by id and epoch; the command is
   * written as a deadline, so it counts from this call even if the flush
   * that delivers it comes late (after a busy greenlet).
   */
  #startTimer(r: HubRecord, at: number): void {
    r._hubFlags |= TIMED
    if ((r._hubFlags & UNREF) === 0) this.liveTimers++
    const slot = this.freeTimerSlots.length > 0 ? this.freeTimerSlots.pop()! : this.timed.length
    const serial = ((this.timerSerials[slot] ?? 0) + 1) & 0x3fff_ffff
    this.timed[slot] = r
    this.timerSerials[slot] = serial
    r._timerSlot = slot
    this.#nativeCommand(wire.ADD_TIMER, slot, at, serial)
  }

  /** The timer of `r` ended (expired, or cancelled): its slot is free. */
  #forgetTimed(r: HubRecord): void {
    if ((r._hubFlags & UNREF) === 0) this.liveTimers--
    this.timed[r._timerSlot] = undefined
    this.freeTimerSlots.push(r._timerSlot)
  }

  #timerExpired(slot: number, serial: number): void {
    const r = this.timed[slot]
    if (r === undefined || this.timerSerials[slot] !== serial) return
    // The native side has forgotten it already: no cancel.
    r._hubFlags &= ~TIMED
    this.#forgetTimed(r)
    const state = r._hubState
    if (state !== SCHEDULED && state !== PARKED) return
    this.#endWait(r)
    this.#makeReady(r, state === SCHEDULED ? Outcome.START : Outcome.TIMER)
  }

  #nativeCommand(op: number, id: number, a: number, b: number): void {
    if (this.count === COMMANDS_PER_BATCH) this.applyCommands()
    const c = this.commands
    const i = this.count++ * wire.COMMAND_WIDTH
    c[i] = op
    c[i + 1] = id
    c[i + 2] = a
    c[i + 3] = b
    if (!this.tickScheduled) this.schedule()
  }

  // --- Direct wake-ups ---

  /**
   * Ends the wait of `r`, which was handed what it waited for, without a hub
   * turn if it can be woken directly (a Promise-based wait; a sync greenlet
   * blocked while another one runs): at once while the turn's budget lasts,
   * else at the hub's next turn (`parked`: the hub knows the wait); with
   * `nextTurn`, at the next turn in any case (the party that handed must
   * run first, as in a Channel's rendezvous). Returns
   * false if it cannot be woken directly: a Promise-based wait has ended
   * otherwise meanwhile (an interrupt: the hand-off is given back); a sync
   * greenlet must then be unparked through the hub.
   */
  wakeHanded(r: HubRecord, parked: boolean, woken: WokenWait, nextTurn = false): boolean {
    if (r._inPlainWait?.() !== true) return false
    if (this.directWakesBatch !== this.batch) {
      this.directWakesBatch = this.batch
      this.directWakes = 0
    }
    if (!nextTurn && this.directWakes++ < DIRECT_WAKES_PER_TURN) r._wakeNow!(parked, woken)
    else if (parked) this.unpark(r)
    else this.yieldNow(r)
    return true
  }

  /** Whether a wait of `r` without timer may skip the hub (see `HubRecord._mayWaitUnparked`). */
  mayWaitUnparked(r: HubRecord): boolean {
    return r._mayWaitUnparked?.() === true
  }

  // --- Turns ---

  /**
   * Hands the buffered timer commands to Rust without taking its events:
   * when the buffer is full, and periodically during a long sync batch (so
   * that timers are armed while it lasts).
   */
  applyCommands(): void {
    if (this.count === 0) return
    if (this.#flushNative(this.headerOnly)) this.nativeDue = true
  }

  /**
   * Hands the buffered timer commands over and takes as many events as `out`
   * holds; returns whether more are waiting on the native side.
   */
  #flushNative(out: Float64Array): boolean {
    const now = performance.now()
    this.native().flush(this.commands, this.count, out, now)
    this.count = 0
    this.nextDeadline = out[2] < 0 ? Infinity : now + out[2]
    return out[1] > 0
  }

  /** @internal The native hub, for bindings that complete waits from runtime threads (`Remote`). */
  native(): NativeHub {
    // Created on first use: this is what starts the hub's clock thread lazily.
    return (this.nativeHub ??= startNativeHub(this.onNativeWake))
  }

  /**
   * The native side has expired timers or completions: a turn is due. Not
   * run here, from the wake-up's callback: Node runs queued wake-ups one
   * after the other in one poll phase, and a timer that comes due while a
   * turn runs queues the next, so dense timers ran turn after turn there,
   * and Node's own timers and immediates waited (a 1 ms interval fired 12
   * times in 2 s under a loop of short Timeouts).
   */
  private readonly onNativeWake = (): void => {
    this.nativeDue = true
    if (!this.tickScheduled) this.schedule()
  }

  /** Applies the timer commands and takes what happened natively: completions, expired timers. */
  private pollNative(): void {
    const out = this.out
    this.nativeDue = this.#flushNative(out)
    const end = wire.OUT_HEADER + out[0] * wire.EVENT_WIDTH
    for (let at = wire.OUT_HEADER; at < end; at += wire.EVENT_WIDTH) {
      // A completion (of a wait id), or an expired timer (slot, serial).
      if (out[at + 1] < 0) this.unparkId(out[at])
      else this.#timerExpired(out[at], out[at + 1])
    }
  }

  private schedule(): void {
    this.tickScheduled = true
    scheduleInHubContext(this.tick)
  }

  /**
   * @internal No turn of the hub runs (nothing is resumed) until `ready`
   * settles; the turns that came due meanwhile run then, as one.
   */
  pauseTicksUntil(ready: Promise<void>): void {
    this.ticksPaused = true
    void ready.then(() => {
      this.ticksPaused = false
      if (this.tickDeferred && !this.tickScheduled) this.schedule()
      this.tickDeferred = false
    })
  }

  /**
   * One turn of the hub: take what happened natively, then resume the run
   * queue as one batch, in order. It runs as a macrotask, so every greenlet
   * resumed by the previous turn has run up to its next wait before this one
   * starts: `sleep(0)` yields to every other ready greenlet.
   */
  private readonly tick = (): void => {
    this.tickScheduled = false
    this.soonResumes = 0
    if (this.ticksPaused) {
      this.tickDeferred = true
      return
    }
    // A batch left for the microtasks is finished first (its own resumption normally comes before any turn).
    if (this.cursor < this.delivered) return this.#resumeBatch()
    if (this.count > 0 || this.nativeDue || performance.now() >= this.nextDeadline) this.pollNative()
    this.batch++
    this.#takeBatch()
    this.#resumeBatch()
  }

  /** Resumes the entries of the batch left, unless it must wait for the microtasks (see `takeReady`). */
  #resumeBatch(): void {
    // Whoever was resumed last has reached its next wait, or let the
    // microtasks run out (a foreign await): the batch goes on.
    this.held = false
    this.runningFor = undefined
    // The cursor is a field: a sync greenlet that blocks mid-batch takes the
    // following entries itself (takeReady), before this loop sees them.
    for (let r = this.takeReady(); r !== undefined; r = this.takeReady()) r._resume(this.takenOutcome)
    if (this.cursor < this.delivered) return
    this.holdProcess(this.liveTimers > 0)
    if ((this.runHead < this.runTail || this.nativeDue || this.count > 0) && !this.tickScheduled) this.schedule()
  }

  /** Goes on with the batch once the Promises its entries settled have run their continuations. */
  #resumeBatchAfterMicrotasks(): void {
    if (this.batchResumeQueued) return
    this.batchResumeQueued = true
    resumeAfterMicrotasks(this.resumeBatchLater)
  }

  private readonly resumeBatchLater = (): void => {
    this.batchResumeQueued = false
    if (this.cursor < this.delivered) this.#resumeBatch()
  }

  /** Moves up to a batch of the run queue into `ready`, each record DELIVERED from here on. */
  #takeBatch(): void {
    this.soonWoken = 0
    const queue = this.runQueue
    const ready = this.ready
    let i = this.runHead
    let n = 0
    while (n < READY_PER_BATCH && i < this.runTail) {
      const r = queue[i]!
      queue[i++] = undefined
      r._hubFlags &= ~QUEUED
      if (r._hubState !== READY) continue
      r._hubState = DELIVERED
      if ((r._hubFlags & TRANSIENT) !== 0) r._hubFlags &= ~INTERRUPT_QUEUED
      ready[n++] = r
    }
    if (i === this.runTail) {
      this.runHead = this.runTail = 0
      // Kept for the next ones (growing it again costs a copy per doubling), unless it is huge.
      if (queue.length > KEPT_RUN_QUEUE) queue.length = 0
    } else {
      this.runHead = i
    }
    this.cursor = 0
    this.delivered = n
  }

  /**
   * Takes the next entry of the ready batch being resumed, skipping those
   * resumed directly, died or given up since; `undefined` once the batch is
   * done. Its outcome is left in `takenOutcome`. The tick takes entries in
   * order; a sync greenlet that blocks mid-batch takes the next ones itself,
   * to hand its thread's turn directly to the next greenlet instead of
   * returning to the tick.
   *
   * Also `undefined` while the entry taken before has not reached its next
   * wait: most resumptions settle a Promise, and the greenlet goes on in its
   * continuation; a start runs the greenlet's function up to its first
   * await, which may be an async call of its own rather than a wait. Each
   * greenlet runs up to its next wait before the next entry is resumed, as
   * in gevent (where each runs until it switches), not only up to its first
   * microtask: the batch goes on once it reaches that wait (`reachedWait`),
   * dies, or the microtasks have run out (it awaits something foreign).
   */
  takeReady(): HubRecord | undefined {
    while (this.cursor < this.delivered) {
      const k = this.cursor
      const r = this.ready[k]!
      if (r._hubState === DELIVERED) {
        if (this.runningFor !== undefined) {
          this.held = true
          this.#resumeBatchAfterMicrotasks()
          return undefined
        }
        this.cursor++
        this.ready[k] = undefined
        r._hubState = RUNNING
        this.takenOutcome = readyOutcome(r)
        // A sync greenlet runs to its next wait before its resumption returns;
        // code outside greenlets (a transient wait with no owner) is waited for until the microtasks have run.
        this.runningFor = (r._hubFlags & RUNS_AT_ONCE) !== 0 ? undefined : r instanceof TransientWait ? (r.owner ?? r) : r
        return r
      }
      this.cursor++
      this.ready[k] = undefined
    }
    return undefined
  }

  /**
   * `g` reached a wait, or died: if the batch waits for it, it goes on
   * once the code running now has returned.
   */
  reachedWait(g: object | undefined): void {
    if (g !== this.runningFor || g === undefined) return
    this.runningFor = undefined
    if (!this.held) return
    this.held = false
    // The next entry's resumption only settles a Promise: done here, at
    // once (its continuation runs after this code anyway). Anything else (a
    // start, a sync greenlet, an alarm) runs code: once this has returned.
    const next = this.#nextDelivered()
    if (next === undefined || (next._hubFlags & SETTLES_ONLY) === 0 || readyOutcome(next) === Outcome.START) {
      queueMicrotask(this.resumeBatchNow)
      return
    }
    const r = this.takeReady()!
    r._resume(this.takenOutcome)
    if (this.runningFor === undefined) {
      queueMicrotask(this.resumeBatchNow)
    } else {
      this.held = true
      this.#resumeBatchAfterMicrotasks()
    }
  }

  /** The next entry `takeReady` would return, not taken. */
  #nextDelivered(): HubRecord | undefined {
    for (let k = this.cursor; k < this.delivered; k++) {
      const r = this.ready[k]!
      if (r._hubState === DELIVERED) return r
    }
    return undefined
  }

  private readonly resumeBatchNow = (): void => {
    if (this.cursor < this.delivered && !this.held) this.#resumeBatch()
  }

  /**
   * The record `ahead` entries past the next one `takeReady` returns (0:
   * that one), without taking anything; `undefined` past the batch or for a
   * record that will be skipped. Lets sync mode wake the thread that runs
   * next early.
   */
  peekReady(ahead: number): HubRecord | undefined {
    const index = this.cursor + ahead
    if (index >= this.delivered) return undefined
    const r = this.ready[index]!
    return r._hubState === DELIVERED ? r : undefined
  }

  /** Keeps the event loop alive exactly while the hub has live timers. */
  private holdProcess(hold: boolean): void {
    if (hold) (this.keepAlive ??= realSetInterval(noop, KEEP_ALIVE_MS)).ref()
    else this.keepAlive?.unref()
  }
}

export const hub = new HubClient()

/** The greenlet whose code is running, across awaits. */
/**
 * The native hub, or the Error that says why the runtime cannot start, with
 * the OS error's `code` (EMFILE...): it can be tried again later.
 */
function startNativeHub(wake: () => void): NativeHub {
  try {
    return new native.NativeHub(wake)
  } catch (err) {
    const errno = /\(os error (\d+)\)/.exec((err as Error).message)?.[1]
    if (errno !== undefined) (err as NodeJS.ErrnoException).code = getSystemErrorName(-Number(errno))
    throw err
  }
}

export const currentStorage = new AsyncLocalStorage<WaitOwner>()

/**
 * @internal Whether AsyncLocalStorage runs on AsyncContextFrame (V8's
 * continuation-preserved embedder data, the default from Node 24) rather
 * than async_hooks. Read from the class itself: only the async_hooks
 * implementation propagates through `_propagate`. An unknown
 * implementation counts as AsyncContextFrame (the sync mode's check fails
 * safe that way; `startInOwnContext` works on both).
 */
export function usesAsyncContextFrame(): boolean {
  const proto = AsyncLocalStorage.prototype as unknown as Record<string, unknown>
  return typeof proto._propagate !== 'function'
}

/** The hub's own async context: the one it was loaded in, where its turns run. */
const hubScope = new AsyncResource('greenthread.hub')

function enterThenRun<A>(g: WaitOwner, body: (g: WaitOwner, arg: A) => void, arg: A): void {
  currentStorage.enterWith(g)
  body(g, arg)
}

/**
 * @internal Runs `body(g, arg)`, the start of greenlet `g`, in an async
 * context of its own made from the hub's (the one a turn runs in): the
 * context that names `g` for getcurrent() across every later await.
 *
 * On AsyncContextFrame `run()` makes two frames, the second (restoring the
 * caller's) a copy of the first made by iteration: ~830 B and ~500 ns per
 * greenlet on Node 24. Entering inside a scope that restores the frame by
 * itself makes one: ~320 B and ~130 ns. On async_hooks `run()` is cheap.
 */
export const startInOwnContext: <A>(g: WaitOwner, body: (g: WaitOwner, arg: A) => void, arg: A) => void = usesAsyncContextFrame()
  ? (g, body, arg) => hubScope.runInAsyncScope(enterThenRun, undefined, g, body, arg)
  : (g, body, arg) => currentStorage.run(g, body, g, arg)

/** A wait that is not a greenlet's own: code outside greenlets, or a second concurrent wait. */
export class TransientWait extends HubRecord {
  resolve!: (outcome: number) => void
  reject!: (err: unknown) => void
  /** Set by whoever interrupts this wait. */
  exception: unknown
  /**
   * Made by `suspendFresh` (a library wait on a Future, a socket...): its
   * owner's code is waiting there, as on a wait of its own record, so an
   * interrupt raised there is not raised again at the next wait.
   */
  fresh = false

  constructor(readonly owner: WaitOwner | undefined) {
    super(true)
    hub.settlesOnly(this)
    hub.reachedWait(owner)
    if (owner) {
      // Those pending are raced (or joined) with this one now, not awaited alone.
      if (owner._extraWaits !== undefined) raceFreshWaits(owner)
      ;(owner._extraWaits ??= new Set()).add(this)
    }
    hub.resumables.set(this.id, this)
  }

  /** Woken directly and not run yet (see `_wakeNow`). */
  #woken: WokenWait | undefined = undefined

  _resume(outcome: number): void {
    hub.resumables.delete(this.id)
    this.owner?._extraWaits?.delete(this)
    if (outcome === Outcome.INTERRUPTED) this.reject(this.exception ?? new GreenletExit())
    else this.resolve(outcome)
  }

  override _inPlainWait(): boolean {
    return true
  }

  /**
   * Until its continuation has run (the list wait clears `_woken` then) it
   * stays among its owner's waits: an interrupt of the owner meanwhile is
   * raised by the wait, which gives back what it was handed.
   */
  override _wakeNow(parked: boolean, woken: WokenWait): void {
    if (parked) hub.discard(this)
    if (this.owner === undefined) return this._resume(Outcome.WAKE)
    hub.resumables.delete(this.id)
    this.#woken = woken
    woken.holder = this
    this.resolve(Outcome.WAKE)
  }

  get _woken(): WokenWait | undefined {
    return this.#woken
  }

  /** Its owner's next wait raises it (see WaitOwner). */
  _raiseAtNextWait(exception: unknown): void {
    this.owner?._raiseAtNextWait(exception)
  }

  set _woken(woken: WokenWait | undefined) {
    this.#woken = woken
    if (woken === undefined) this.owner?._extraWaits?.delete(this)
  }

  /** A fresh wait still pending, not woken: see `fresh`. */
  get _pendingFresh(): boolean {
    return this.fresh && this.#woken === undefined
  }

  /** Raises `exception` here (its owner is killed): by the wait itself if it was woken directly and has not run, else at once. */
  interruptWith(exception: unknown): void {
    const woken = this.#woken
    if (woken !== undefined) {
      this.#woken = undefined
      woken.interrupted = true
      woken.exception = exception
      return
    }
    this._listWait?.leaveList()
    hub.discard(this)
    this.reject(exception)
  }

  override _mayWaitUnparked(): boolean {
    return true
  }
}

/**
 * Another wait of `g` starts (its own record's, or a transient one) while waits under fresh ids are pending: code that
 * races them (`Promise.race([f.result(), sleep(5)])`) may move on when
 * another wins, so an interrupt raised at them is raised at its next wait
 * too (see `TransientWait.fresh`).
 */
export function raceFreshWaits(g: WaitOwner): void {
  for (const wait of g._extraWaits!) wait.fresh = false
}

/** Whose wait `ownWait` is making: read by `takeSettlers`, the one executor they all share. */
let settling: Settleable | undefined
/**
 * The greenlet whose function is being called (its first synchronous part),
 * and the Promise of the own wait it made last meanwhile: see `isLastOwnWait`.
 * Recorded only then: storing every wait's Promise costs the switch() ping-pong 10%.
 */
let callingBodyOf: Settleable | undefined
let lastOwnWait: Promise<number> | undefined
let lastOwnWaitOf: Settleable | undefined
/** Its resolver: the wait is still the one pending only while the greenlet's `_resolve` is this. */
let lastOwnWaitResolve: ((outcome: number) => void) | undefined

/** `g`'s function is being called; returns whose call this one is nested in, for `endBodyCall`. */
export function startBodyCall(g: Settleable): Settleable | undefined {
  const outer = callingBodyOf
  callingBodyOf = g
  return outer
}

export function endBodyCall(outer: Settleable | undefined): void {
  callingBodyOf = outer
  lastOwnWait = undefined
  lastOwnWaitOf = undefined
  lastOwnWaitResolve = undefined
}

interface Settleable {
  _resolve: ((outcome: number) => void) | undefined
}

function takeSettlers(resolve: (outcome: number) => void): void {
  settling!._resolve = resolve
}

class Raise {
  constructor(readonly exception: unknown) {}
  then(_resolve: unknown, reject: (err: unknown) => void): void {
    reject(this.exception)
  }
}

export function raiseThrough(resolve: ((outcome: number) => void) | undefined, exception: unknown): void {
  resolve?.(new Raise(exception) as unknown as number)
}

/**
 * A Promise that `g` settles through its `_resolve` / `_reject`: the hot
 * waits' one allocation, without a closure per wait for the executor.
 */
export function ownWait<T = number>(g: Settleable): Promise<T> {
  hub.reachedWait(g)
  settling = g
  const waited = new Promise<number>(takeSettlers)
  settling = undefined
  if (g === callingBodyOf) {
    lastOwnWait = waited
    lastOwnWaitOf = g
    lastOwnWaitResolve = g._resolve
  }
  return waited as Promise<unknown> as Promise<T>
}

/**
 * Whether `p` is the Promise of the wait `ownWait` made last for `g` while
 * its function was being called: a function that returns it
 * (`() => sleep(ms)`) ends with that wait.
 */
export function isLastOwnWait(g: Settleable, p: unknown): boolean {
  return p === lastOwnWait && g === lastOwnWaitOf && g._resolve === lastOwnWaitResolve
}

/**
 * Suspends the caller until the hub resumes it. `issue` starts the hub wait
 * (`hub.park`...) of the record that waits. Resolves with the outcome
 * (`Outcome.WAKE` or `Outcome.TIMER`); rejects with the exception of an
 * interrupt (kill, Timeout).
 */
export function suspend(issue: (waiter: HubRecord) => void): Promise<number> {
  const g = currentStorage.getStore()
  if (g !== undefined && !g._waiting && !g.dead) {
    g._waiting = true
    if (g._extraWaits !== undefined) raceFreshWaits(g)
    hub.reachedWait(g)
    return new Promise<number>((resolve) => {
      g._resolve = resolve
      issue(g)
    })
  }
  const wait = new TransientWait(g)
  return new Promise<number>((resolve, reject) => {
    wait.resolve = resolve
    wait.reject = reject
    issue(wait)
  })
}

/**
 * {@link suspend} without a closure per wait (the primitives' hot path):
 * calls `target._suspendedAs(arg, waiter)` to issue the wait.
 */
export function suspendWith<A>(target: { _suspendedAs(arg: A, waiter: HubRecord): void }, arg: A): Promise<number> {
  const g = currentStorage.getStore()
  if (g !== undefined && !g._waiting && !g.dead) {
    g._waiting = true
    if (g._extraWaits !== undefined) raceFreshWaits(g)
    target._suspendedAs(arg, g)
    return ownWait(g)
  }
  return suspend((waiter) => target._suspendedAs(arg, waiter))
}

/**
 * Like {@link suspend}, but always waits under a fresh id that is never
 * reused, owned by the current greenlet (so kill and Timeout still reach it).
 * Use it for waits that runtime threads end through the hub's `Remote`: a
 * completion that arrives after the wait was interrupted then wakes nobody.
 */
export function suspendFresh(issue: (waiter: HubRecord) => void): Promise<number> {
  const g = currentStorage.getStore()
  const owner = g !== undefined && !g.dead ? g : undefined
  // Awaited alone, unless a wait of its greenlet that may be awaited is
  // pending: then raced (or joined) with it. Those known to have been raced
  // already (losers the code moved on from) do not count.
  let alone = owner !== undefined && !owner._waiting
  if (alone) {
    // A kill that came after its last wait ended is raised here: such waits
    // are not its own record's, which would deliver it (a loop of them never would).
    const pending = owner!._takeRaiseForWait()
    if (pending !== undefined) return Promise.reject(pending.exception)
    if (owner!._extraWaits !== undefined) for (const other of owner!._extraWaits) if (other._pendingFresh) alone = false
  }
  const wait = new TransientWait(owner)
  wait.fresh = alone
  return new Promise<number>((resolve, reject) => {
    wait.resolve = resolve
    wait.reject = reject
    issue(wait)
  })
}

/** A one-shot hub timer calling `onFire` on the JS thread. */
export class Alarm extends HubRecord {
  constructor(ms: number, private readonly onFire: () => void) {
    super(true)
    hub.resumables.set(this.id, this)
    hub.park(this, ms)
  }

  get pending(): boolean {
    return hub.resumables.get(this.id) === this
  }

  _resume(): void {
    hub.resumables.delete(this.id)
    this.onFire()
  }

  cancel(): void {
    if (!this.pending) return
    hub.discard(this)
  }

  /** It no longer keeps the process alive; it still fires if the process lives that long. */
  unref(): void {
    hub.unref(this)
  }

  /** It keeps the process alive again. */
  ref(): void {
    hub.ref(this)
  }
}

/**
 * Suspends the current greenlet for `ms` milliseconds (default 0).
 *
 * `sleep(0)` is a yield: it resumes after every other greenlet that was ready
 * has run up to its next wait. Timers come from the Rust runtime and reach JS
 * in batches. Inside a killed greenlet it rejects at once with the kill
 * exception.
 */
export function sleep(ms: number = 0): Promise<void> {
  // Hot path (W1/W3): one Promise, no closure.
  if (typeof ms !== 'number' || !(ms >= 0) || ms === Infinity) {
    return rejecting(() => Promise.resolve(void checkMs('ms', ms, false)))
  }
  const g = currentStorage.getStore()
  if (g !== undefined && !g._waiting && !g.dead) {
    g._waiting = true
    g._sleeping = true
    if (g._extraWaits !== undefined) raceFreshWaits(g)
    if (ms === 0) hub.yieldNow(g)
    else hub.park(g, ms)
    return ownWait<void>(g)
  }
  return suspend((waiter) => (ms === 0 ? hub.yieldNow(waiter) : hub.park(waiter, ms))).then(noop)
}
