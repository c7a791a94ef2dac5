/**
 * The JS side of the hub: the command buffer, the tick that flushes it to the
 * Rust hub and resumes whatever the hub says is ready, and the suspension
 * primitive every library wait is built on. Internal.
 *
 * Crossing into Rust costs one call per tick, not one per event: commands are
 * written into a Float64Array and handed over in one `flush`, which returns
 * every ready greenlet in one batch.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { getSystemErrorName } from 'node:util'

import type { NativeHub } from 'native-binding'
import { GreenletExit, checkMs, rejecting } from './errors'
import { native, wire } from './native'
import { KEEP_ALIVE_MS } from './_keep-alive'

/** Something the hub can resume: a greenlet, a one-off wait, an alarm. */
export interface Resumable {
  readonly id: number
  _resume(outcome: number): void
  /** In a plain wait (not a switch) that a hand-off may end directly now: see `wakeHanded`. */
  _inPlainWait?(): boolean
  /**
   * Ends that wait at once, as if woken (`wire.WAKE`): settles its Promise,
   * and voids the hub's wait if it was `parked` there. Until it has run, an
   * interrupt is recorded in `woken`, for the wait to raise.
   */
  _wakeNow?(parked: boolean, woken: WokenWait): void
  /**
   * Its wait may skip the hub while it has no timer: no interrupt is
   * pending in the hub, which only a PARK would deliver.
   */
  _mayWaitUnparked?(): boolean
}

/** A wait woken directly whose greenlet has not run yet: an interrupt meanwhile is raised by it. */
export interface WokenWait {
  interrupted: boolean
  exception: unknown
  holder: { _woken: WokenWait | undefined } | undefined
}

/** What a greenlet exposes to the suspension machinery. */
export interface WaitOwner extends Resumable {
  readonly dead: boolean
  /** Its own id is parked in a wait (a second concurrent wait gets a transient id). */
  _waiting: boolean
  _resolve: ((outcome: number) => void) | undefined
  _reject: ((err: unknown) => void) | undefined
  _extraWaits: Set<TransientWait> | undefined
}

const COMMANDS_PER_BATCH = 4096
const READY_PER_BATCH = 8192
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

/** A relative timeout as a deadline on `performance.now()`'s clock; 0 stays "due now", negative "none". */
function deadline(ms: number): number {
  return ms > 0 ? performance.now() + ms : ms
}

class HubClient {
  readonly resumables = new Map<number, Resumable>()
  private nativeHub: NativeHub | undefined
  private readonly commands = new Float64Array(COMMANDS_PER_BATCH * wire.COMMAND_WIDTH)
  private count = 0
  private readonly out = new Float64Array(wire.OUT_HEADER + READY_PER_BATCH * wire.READY_WIDTH)
  private readonly headerOnly = new Float64Array(wire.OUT_HEADER)
  private tickScheduled = false
  /** Ticks wait while this is set (`pauseTicksUntil`); one was due if `tickDeferred`. */
  private ticksPaused = false
  private tickDeferred = false
  private keepAlive: NodeJS.Timeout | undefined
  private lastId = 0
  /** Next entry of the ready batch in `out`, and how many it has. */
  private cursor = 0
  private delivered = 0
  /** The outcome of the entry `takeReady` returned last. */
  takenOutcome = 0
  /** Counts the ready batches: which one is being resumed. */
  batch = 0
  private directWakes = 0
  private directWakesBatch = -1

  /** A fresh id (0 means "no parent" to the hub). */
  newId(): number {
    do {
      this.lastId = this.lastId === MAX_ID ? 1 : this.lastId + 1
    } while (this.resumables.has(this.lastId))
    return this.lastId
  }

  /**
   * Buffers one hub command. Timeouts are given in milliseconds from now
   * (-1: none) and stored as deadlines, so a timer counts from this call even
   * if the flush that delivers it comes late (after a busy greenlet).
   */
  command(op: number, id: number, a = 0, b = 0): void {
    if (op === wire.PARK || op === wire.SPAWN) a = deadline(a)
    else if (op === wire.JOIN_WAIT || op === wire.JOIN_WAIT_RAISE) b = deadline(b)
    if (this.count === COMMANDS_PER_BATCH) this.applyCommands()
    const c = this.commands
    const i = this.count++ * 4
    c[i] = op
    c[i + 1] = id
    c[i + 2] = a
    c[i + 3] = b
    if (!this.tickScheduled) this.schedule()
  }

  /**
   * Ends the wait of `id`, which was handed what it waited for, without the
   * hub if it can be woken directly (a Promise-based wait; a sync greenlet
   * blocked while another one runs): at once while the turn's budget lasts,
   * else at the hub's next turn (`parked`: the hub knows the wait). Returns
   * false if it cannot be woken directly: a Promise-based wait has ended
   * otherwise meanwhile (an interrupt: the hand-off is given back); a sync
   * greenlet must then be unparked through the hub.
   */
  wakeHanded(id: number, parked: boolean, woken: WokenWait): boolean {
    const waiting = this.resumables.get(id)
    if (waiting?._inPlainWait?.() !== true) return false
    if (this.directWakesBatch !== this.batch) {
      this.directWakesBatch = this.batch
      this.directWakes = 0
    }
    if (this.directWakes++ < DIRECT_WAKES_PER_TURN) waiting._wakeNow!(parked, woken)
    else this.command(parked ? wire.UNPARK : wire.YIELD, id)
    return true
  }

  /** Whether a wait of `id` without timer may skip the hub (see `Resumable._mayWaitUnparked`). */
  mayWaitUnparked(id: number): boolean {
    return this.resumables.get(id)?._mayWaitUnparked?.() === true
  }

  /**
   * Hands the buffered commands to Rust without resuming anybody: when the
   * buffer is full mid-tick, and periodically during a long sync batch (so
   * that timers start from deadlines that are not long past).
   */
  applyCommands(): void {
    this.native().flush(this.commands, this.count, this.headerOnly, performance.now())
    this.count = 0
  }

  /** @internal The native hub, for bindings that complete waits from runtime threads (`Remote`). */
  native(): NativeHub {
    // Created on first use: this is what starts the runtime lazily.
    return (this.nativeHub ??= startNativeHub(this.tick))
  }

  private schedule(): void {
    this.tickScheduled = true
    setImmediate(this.tick)
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
   * One turn of the hub: flush commands, resume the ready batch in run-queue
   * order. It runs as a macrotask, so every greenlet resumed by the previous
   * turn has run up to its next wait before this one starts: `sleep(0)`
   * yields to every other ready greenlet.
   */
  private readonly tick = (): void => {
    this.tickScheduled = false
    if (this.ticksPaused) {
      this.tickDeferred = true
      return
    }
    const out = this.out
    this.native().flush(this.commands, this.count, out, performance.now())
    this.count = 0
    this.batch++
    this.cursor = 0
    this.delivered = out[0]
    const resumables = this.resumables
    // The cursor is a field: a sync greenlet that blocks mid-batch takes the
    // following entries itself (takeReady), before this loop sees them.
    while (this.cursor < this.delivered) {
      const at = wire.OUT_HEADER + this.cursor++ * wire.READY_WIDTH
      resumables.get(out[at])?._resume(out[at + 1])
    }
    this.holdProcess(out[2] > 0)
    if ((out[1] > 0 || this.count > 0) && !this.tickScheduled) this.schedule()
  }

  /**
   * Takes the next entry of the ready batch being resumed, skipping ids that
   * nobody owns any more; `undefined` once the batch is done. Its outcome is
   * left in `takenOutcome`. The tick takes entries in order; a sync greenlet
   * that blocks mid-batch takes the next ones itself, to hand its thread's
   * turn directly to the next greenlet instead of returning to the tick.
   */
  takeReady(): Resumable | undefined {
    const out = this.out
    while (this.cursor < this.delivered) {
      const at = wire.OUT_HEADER + this.cursor++ * wire.READY_WIDTH
      const resumable = this.resumables.get(out[at])
      if (resumable !== undefined) {
        this.takenOutcome = out[at + 1]
        return resumable
      }
    }
    return undefined
  }

  /**
   * The resumable `ahead` entries past the next one `takeReady` returns (0:
   * that one), without taking anything; `undefined` past the batch or for an
   * id nobody owns. Lets sync mode wake the thread that runs next early.
   */
  peekReady(ahead: number): Resumable | undefined {
    const index = this.cursor + ahead
    return index < this.delivered ? this.resumables.get(this.out[wire.OUT_HEADER + index * wire.READY_WIDTH]) : undefined
  }

  /** Keeps the event loop alive exactly while the hub has live timers. */
  private holdProcess(hold: boolean): void {
    if (hold) (this.keepAlive ??= setInterval(noop, KEEP_ALIVE_MS)).ref()
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

/** A wait that is not a greenlet's own: code outside greenlets, or a second concurrent wait. */
export class TransientWait implements Resumable {
  readonly id = hub.newId()
  resolve!: (outcome: number) => void
  reject!: (err: unknown) => void
  /** Set by whoever interrupts this wait. */
  exception: unknown

  constructor(readonly owner: WaitOwner | undefined) {
    if (owner) (owner._extraWaits ??= new Set()).add(this)
    hub.resumables.set(this.id, this)
  }

  _resume(outcome: number): void {
    hub.resumables.delete(this.id)
    this.owner?._extraWaits?.delete(this)
    if (outcome === wire.INTERRUPTED) this.reject(this.exception ?? new GreenletExit())
    else this.resolve(outcome)
  }

  _inPlainWait(): boolean {
    return true
  }

  _wakeNow(parked: boolean, _woken: WokenWait): void {
    if (parked) hub.command(wire.DISCARD, this.id)
    this._resume(wire.WAKE)
  }

  _mayWaitUnparked(): boolean {
    return true
  }
}

/**
 * Suspends the caller until the hub resumes it. `issue` writes the hub
 * commands that describe the wait, given the id that waits. Resolves with the
 * outcome (`wire.WAKE` or `wire.TIMER`); rejects with the exception of an
 * interrupt (kill, Timeout).
 */
export function suspend(issue: (waiterId: number) => void): Promise<number> {
  const g = currentStorage.getStore()
  if (g !== undefined && !g._waiting && !g.dead) {
    g._waiting = true
    return new Promise<number>((resolve, reject) => {
      g._resolve = resolve
      g._reject = reject
      issue(g.id)
    })
  }
  const wait = new TransientWait(g)
  return new Promise<number>((resolve, reject) => {
    wait.resolve = resolve
    wait.reject = reject
    issue(wait.id)
  })
}

/**
 * {@link suspend} without a closure per wait (the primitives' hot path):
 * calls `target._suspendedAs(arg, id)` to issue the wait.
 */
export function suspendWith<A>(target: { _suspendedAs(arg: A, waiterId: number): void }, arg: A): Promise<number> {
  const g = currentStorage.getStore()
  if (g !== undefined && !g._waiting && !g.dead) {
    g._waiting = true
    target._suspendedAs(arg, g.id)
    return new Promise<number>((resolve, reject) => {
      g._resolve = resolve
      g._reject = reject
    })
  }
  return suspend((id) => target._suspendedAs(arg, id))
}

/**
 * Like {@link suspend}, but always waits under a fresh id that is never
 * reused, owned by the current greenlet (so kill and Timeout still reach it).
 * Use it for waits that runtime threads end through the hub's `Remote`: a
 * completion that arrives after the wait was interrupted then wakes nobody.
 */
export function suspendFresh(issue: (waiterId: number) => void): Promise<number> {
  const g = currentStorage.getStore()
  const wait = new TransientWait(g !== undefined && !g.dead ? g : undefined)
  return new Promise<number>((resolve, reject) => {
    wait.resolve = resolve
    wait.reject = reject
    issue(wait.id)
  })
}

/** A one-shot hub timer calling `onFire` on the JS thread. */
export class Alarm implements Resumable {
  readonly id = hub.newId()

  constructor(ms: number, private readonly onFire: () => void) {
    hub.resumables.set(this.id, this)
    hub.command(wire.PARK, this.id, ms)
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
    hub.resumables.delete(this.id)
    hub.command(wire.DISCARD, this.id)
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
  // Hot path (W1/W3): no closure beyond the Promise executor.
  if (typeof ms !== 'number' || !(ms >= 0) || ms === Infinity) {
    return rejecting(() => Promise.resolve(void checkMs('ms', ms, false)))
  }
  return park(ms === 0 ? wire.YIELD : wire.PARK, ms) as Promise<unknown> as Promise<void>
}

/** `suspend` for a wait that is a single `op` command with argument `a`. */
export function park(op: number, a: number): Promise<number> {
  const g = currentStorage.getStore()
  if (g !== undefined && !g._waiting && !g.dead) {
    g._waiting = true
    hub.command(op, g.id, a)
    return new Promise<number>((resolve, reject) => {
      g._resolve = resolve
      g._reject = reject
    })
  }
  return suspend((id) => hub.command(op, id, a))
}
