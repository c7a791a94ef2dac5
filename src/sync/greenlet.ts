/**
 * Sync greenlets: gevent's lifecycle (spawn, join, get, kill, links) and
 * greenlet's explicit transfer (`switch`, `throw`, return to parent), with
 * waits that simply block the calling greenlet.
 *
 * Each started greenlet runs on an OS thread of its own (pooled), sharing
 * the main isolate; exactly one runs JS at a time (see scheduler.ts). Its
 * waits are the same hub waits as the async mode's, so timers, joins, kills
 * and Timeouts behave the same; only resuming differs: the baton goes to the
 * greenlet's thread instead of a Promise settling.
 *
 * Blocking calls (`sleep`, `join`, `get`, `switch`, blocking `kill`...)
 * need a greenlet to block: on the main thread outside any sync greenlet
 * they throw an Error instead of freezing the event loop.
 *
 * Killing is cooperative, as in the async mode: the kill exception is raised
 * at the greenlet's current wait, or at its next one if it is busy.
 */
import { GreenletBase, NO_ARGS, type Transfer } from '../_greenlet-base'
import { GREENLET_MODE, GreenletExit, checkFlag, checkMs, checkOptions, exceptionFrom, invalidType } from '../errors'
import type { GetOptions, JoinAllOptions, KillAllOptions, KillOptions } from '../greenlet'
import { HubRecord, Outcome, type WokenWait, currentStorage, hub } from '../hub'
import { type JoinAllPlan, joinAllResult, killallTimedOut, planJoinAll, planKillAll } from '../lifecycle'
import { syncNative } from './native'
import { type BatonResumable, NO_SLOT, currentGreenlet, handOver, nextSlot, readyDirectly, resumeFromTick, startNext } from './scheduler'
import { Timeout } from './timeout'
import { checkStackToBlock } from './stack'
import { blockedByWatchdog, underWatchdog } from './watchdog'

/** The sync greenlet running the calling code; `null` on the main thread outside greenlets. */
export function getcurrent(): Greenlet | null {
  return currentGreenlet() as Greenlet | null
}

/** The current greenlet, which is about to block in `what`; throws outside greenlets and inside vm scripts under a watchdog. */
export function blockingGreenlet(what: string): Greenlet {
  const g = currentGreenlet()
  if (g === null) {
    throw new Error(
      `${what} blocks, and only code running in a sync greenlet can block: ` +
        "start one with run() or spawn() from 'greenthread/sync' (outside greenlets, use the async API)",
    )
  }
  if (underWatchdog()) throw blockedByWatchdog(what)
  checkStackToBlock(what)
  return g as Greenlet
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as any).then === 'function'
}

/**
 * `A` is the argument list of the function, checked at `new Greenlet(fn, ...args)`
 * (or none there: a greenlet started by `switch(...args)` gets them then); it
 * plays no part in the type of a greenlet, so `Greenlet<T>` names any.
 */
export class Greenlet<T = unknown, A extends unknown[] = any[]> extends GreenletBase<T, Greenlet<T>> {
  #parent: Greenlet | null

  /**
   * The greenlet it returns to when it finishes, if it was started by
   * `switch()`: the one running when it was created (`null` for top-level
   * code) unless reassigned. As in greenlet, a cycle is an Error.
   */
  get parent(): Greenlet | null {
    return this.#parent
  }

  set parent(parent: Greenlet | null) {
    if (parent !== null && !(parent instanceof Greenlet)) throw invalidType('parent', 'a Greenlet (of this mode) or null', parent)
    for (let p: Greenlet | null = parent; p !== null; p = p.#parent) {
      if (p === this) throw new Error(`cyclic parent chain: ${this} cannot be its own ancestor`)
    }
    this.#parent = parent
    if (this._switchParent !== undefined && !this.dead) {
      // It returns there when it finishes: the hub resumes that greenlet then.
      this._switchParent = parent ?? undefined
    }
  }

  /** @internal See GreenletBase. */
  protected override _parentGreenlet(): Greenlet | undefined {
    return this.#parent ?? undefined
  }

  /** Its thread once started, until it finishes. */
  #slot = NO_SLOT
  /** How its current wait ended (a hub outcome), set by whoever resumes it. */
  #outcome = 0
  /** Non-zero while blocked in `_await`: which call, so a late settlement wakes nobody. */
  #awaiting = 0
  #awaits = 0
  /** Blocked in a hub wait that a hand-off may end directly (see `_wakeNow`). */
  #wakeable = false
  /** The wait it makes under a fresh id (`_waitFresh`), while it does. */
  #freshWait: FreshWait | undefined = undefined

  constructor(fn: (...args: A) => T | PromiseLike<T>, ...args: A | []) {
    super(fn, args)
    this.#parent = getcurrent()
    hub.runsAtOnce(this)
  }

  /**
   * Creates and starts a greenlet of this class (the module's `spawn`, for
   * a subclass too: `new this(fn, ...args).start()`, as gevent's classmethod).
   */
  static spawn<R>(fn: (...args: any[]) => R | PromiseLike<R>, ...args: unknown[]): Greenlet<R> {
    return new this<R, unknown[]>(fn, ...args).start()
  }

  /** Like `spawn`, starting it after `ms` milliseconds (the module's `spawnLater`). */
  static spawnLater<R>(ms: number, fn: (...args: any[]) => R | PromiseLike<R>, ...args: unknown[]): Greenlet<R> {
    const delay = checkMs('ms', ms, false)
    return new this<R, unknown[]>(fn, ...args).startLater(delay)
  }

  /**
   * Blocks until the greenlet has finished (`true`) or `timeoutMs` has
   * passed (`false`). Never throws for the greenlet's own failure; throws if
   * the waiting greenlet is itself killed, or for bad arguments.
   */
  join(timeoutMs?: number): boolean {
    const ms = checkMs('timeoutMs', timeoutMs, true)
    if (this._state === 'dead') return true
    const me = blockingGreenlet('join()')
    if (me === this) throw new Error(`${this} cannot join itself: it would wait forever`)
    me._wait((waiter) => hub.joinWait(waiter, [this], 1, false, ms), false)
    return this.dead
  }

  /**
   * The return value, blocking until the greenlet finishes if needed. Throws
   * the greenlet's exception, or `Timeout` if it has not finished in time.
   */
  get(options?: GetOptions): T {
    const o = checkOptions('options', options)
    const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    const block = checkFlag('options.block', o.block, true)
    this._observed = true
    if (this._state !== 'dead') {
      if (!block) throw new Timeout(0, `${this} has not finished`)
      this.join(ms < 0 ? undefined : ms)
      if (!this.dead) throw new Timeout(ms)
    }
    return this._result()
  }

  /**
   * Raises `exception` in the greenlet at its current or next wait, and by
   * default blocks until it has died. Never throws because the greenlet is
   * dead or fails. A greenlet that has not started yet dies without running.
   * Killing the current greenlet throws `exception` at once. Outside
   * greenlets pass `{ block: false }`: waiting needs a greenlet.
   */
  kill(exception: unknown = new GreenletExit(), options?: KillOptions): void {
    exception = exceptionFrom(exception)
    const o = checkOptions('options', options)
    const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    const blockWanted = checkFlag('options.block', o.block, true)
    if (this._state === 'dead') return
    const me = getcurrent()
    const block = blockWanted && this._state === 'running' && me !== this
    if (block) blockingGreenlet('kill() (pass { block: false } to kill without waiting)')
    if (this._markKilled(exception)) return
    if (me === this) throw exception
    this._raiseAt(exception, true)
    if (block) this.join(ms < 0 ? undefined : ms)
  }

  /**
   * Transfers control to this greenlet, greenlet style: the caller blocks,
   * this greenlet starts (with `args`) or resumes (its pending `switch()`
   * returns the value: `undefined`, the single argument, or the array of
   * arguments). Returns whatever is later switched back to the caller. A
   * greenlet started by `switch()` returns its result to the greenlet that
   * created it, whose `switch()` then returns it (or throws its exception).
   */
  switch(...args: unknown[]): unknown {
    const value = args.length <= 1 ? args[0] : args
    const caller = blockingGreenlet('switch()')
    if (this === caller) return value
    this._checkSwitchTarget()
    if (this._state === 'new') {
      // Take the thread first: if there is none, nothing has changed yet.
      const slot = syncNative.acquire()
      caller.#parkInSwitch()
      this.#startBySwitch(slot, args)
      return caller.#waitInSwitch(slot)
    }
    caller.#parkInSwitch()
    return caller.#waitInSwitch(this.#resumeFromSwitch({ value, failed: false }))
  }

  /**
   * Raises `err` in this greenlet. If it is suspended in `switch()`, control
   * passes to it as with `switch()` (so the caller must be a greenlet). If it
   * has not started, it dies with `err` without running (`err` is thrown
   * back unless it is a GreenletExit). If it belongs to the hub (running or
   * waiting in sleep, join...), `err` is raised at its current or next wait
   * and this returns at once. Into a dead greenlet, a GreenletExit comes
   * back as the value; another `err` is thrown.
   */
  throw(err: unknown = new GreenletExit()): unknown {
    err = exceptionFrom(err)
    const caller = getcurrent()
    if (this === caller) throw err
    const finished = this.dead || this._state === 'new'
    if (!this._throwWithoutSwitch(err)) return finished ? err : undefined
    const me = blockingGreenlet('throw() into a greenlet suspended in switch()')
    this._checkSwitchTarget()
    me.#parkInSwitch()
    return me.#waitInSwitch(this.#resumeFromSwitch({ error: err, failed: true }))
  }

  #parkInSwitch(): void {
    this._inSwitch = true
    hub.park(this, -1)
  }

  #startBySwitch(slot: number, args: unknown[]): void {
    // As in greenlet, the parent is the creator, not the first switcher.
    this._switchParent = this.parent ?? undefined
    this._goLive()
    hub.resumed(this)
    this.#launchOn(slot, args.length > 0 ? args : this._args)
  }

  /** Hands `transfer` to this greenlet, suspended in switch(); returns its slot. */
  #resumeFromSwitch(transfer: Transfer): number {
    this._transfer = transfer
    return this.#resumeDirectly()
  }

  /**
   * Resumes this greenlet, suspended in switch(), without the hub: tells the
   * hub (which voids any resumption it still has queued for it) and returns
   * its slot, to hand over to.
   */
  #resumeDirectly(): number {
    hub.resumed(this)
    this.#outcome = Outcome.WAKE
    return this.#slot
  }

  /** Gives the baton to `slot` and returns what is switched back to this (current) greenlet. */
  #waitInSwitch(slot: number): unknown {
    handOver(slot, this, false)
    const outcome = this.#outcome
    const transfer = this._transfer
    this._inSwitch = false
    this._transfer = undefined
    if (outcome === Outcome.INTERRUPTED) throw this._takeInterrupt()
    if (transfer?.failed) throw transfer.error
    return transfer?.value
  }

  /**
   * @internal Blocks this greenlet, which must be the current one, in the
   * hub wait that `issue` describes (given the id that waits). Returns the
   * outcome (`Outcome.WAKE` or `Outcome.TIMER`); throws the exception of an
   * interrupt (kill, Timeout). `expectLong`: not resumed for a while (a
   * timed sleep), so its thread sleeps at once instead of spinning.
   */
  _wait(issue: (waiter: HubRecord) => void, expectLong: boolean): number {
    issue(this)
    this.#wakeable = true
    handOver(nextSlot(), this, expectLong)
    this.#wakeable = false
    const outcome = this.#outcome
    if (outcome === Outcome.INTERRUPTED) throw this._takeInterrupt()
    return outcome
  }

  /**
   * @internal Like `_wait`, but under a fresh id that is never reused, for
   * waits that runtime threads end through the hub's `Remote` (socket
   * operations): a completion that arrives after the wait was interrupted
   * then wakes nobody. Interrupts go to that id meanwhile.
   */
  _waitFresh(issue: (waiter: HubRecord) => void, expectLong: boolean): number {
    // An interrupt already pending in the hub waits on this greenlet's own id: deliver it there.
    if (this._interruptPending()) this._wait((waiter) => hub.yieldNow(waiter), false)
    const fresh = new FreshWait(this)
    this.#freshWait = fresh
    try {
      return this._wait(() => issue(fresh), expectLong)
    } finally {
      this.#freshWait = undefined
      hub.discard(fresh)
    }
  }

  /** @internal */
  protected override _interruptedRecord(): HubRecord {
    return this.#freshWait ?? this
  }

  /**
   * @internal Blocks this greenlet, which must be the current one, until
   * `thenable` settles; returns its value or throws its reason.
   */
  _await<V>(thenable: PromiseLike<V>): V {
    const call = ++this.#awaits
    let settled: { value: V; failed: false } | { error: unknown; failed: true } | undefined
    const wake = (): void => {
      // Settlements run on the main thread between ticks; a wait that was
      // interrupted meanwhile has moved on, and must not be woken.
      if (this.#awaiting === call) hub.unparkSoon(this)
    }
    Promise.resolve(thenable).then(
      (value) => {
        settled = { value, failed: false }
        wake()
      },
      (error: unknown) => {
        settled = { error, failed: true }
        wake()
      },
    )
    this.#awaiting = call
    try {
      while (settled === undefined) this._wait((waiter) => hub.park(waiter, -1), true)
    } finally {
      this.#awaiting = 0
    }
    const result = settled as { value: V; failed: false } | { error: unknown; failed: true }
    if (result.failed) throw result.error
    return result.value
  }

  /**
   * @internal See HubRecord (hub.ts): only while another sync greenlet runs,
   * which will hand it the baton when it blocks or finishes (the main
   * thread's hand-offs go through the hub).
   */
  override _inPlainWait(): boolean {
    const running = currentGreenlet()
    return this.#wakeable && running !== null && running !== this
  }

  /** @internal See HubRecord (hub.ts). */
  override _wakeNow(_parked: boolean, woken: WokenWait): void {
    this.#wakeable = false
    this.#resumeDirectly()
    this._keepWoken(woken)
    readyDirectly(this)
  }

  /**
   * @internal An interrupt is raised at the current or next wait; one that
   * comes after a direct wake-up, before this greenlet ran, is raised by the
   * wait that was woken. One sent to the hub makes the wait unwakeable
   * directly: the hub delivers it.
   */
  protected override _raiseAt(exception: unknown, isKill: boolean): void {
    if (this._raiseInWoken(exception)) return
    this.#wakeable = false
    super._raiseAt(exception, isKill)
  }

  /** @internal The hub resumes this greenlet from its tick, on the main thread. */
  _resume(outcome: number): void {
    const slot = this._prepare(outcome)
    // Greenlet threads see the main thread's async context, shared by all
    // of them: run them outside any async greenlet's (the tick may have been
    // scheduled from inside one), so that the async API sees no current
    // greenlet there.
    if (slot !== NO_SLOT) currentStorage.exit(resumeFromTick, slot)
  }

  /** @internal See SyncGreenlet._prepare (scheduler.ts). */
  _prepare(outcome: number): number {
    if (outcome === Outcome.START) {
      if (this._state !== 'scheduled') return NO_SLOT
      let slot: number
      try {
        slot = syncNative.acquire()
      } catch (err) {
        this._finish(undefined, err, true)
        return NO_SLOT
      }
      this.#launchOn(slot, this._args)
      return slot
    }
    if (this._state === 'scheduled') {
      // Interrupted before it ran: it dies without running.
      if (outcome === Outcome.INTERRUPTED) this._finish(undefined, this._takeInterrupt(), true)
      return NO_SLOT
    }
    if (this._state !== 'running') return NO_SLOT
    this.#outcome = outcome
    return this.#slot
  }

  /** @internal See SyncGreenlet._waitingSlot (scheduler.ts). */
  _waitingSlot(): number {
    return this._state === 'running' ? this.#slot : NO_SLOT
  }

  #launchOn(slot: number, args: unknown[]): void {
    this._state = 'running'
    this.#slot = slot
    this._args = args
    startNext(this)
  }

  /** @internal Runs the greenlet on its new thread; returns the slot that runs next. */
  _threadMain(): number {
    const args = this._args
    this._args = NO_ARGS
    let value: T | undefined
    let error: unknown
    let failed = false
    try {
      const result = this._takeFn()(...args)
      value = (isThenable(result) ? this._await(result) : result) as T
    } catch (err) {
      error = err
      failed = true
    }
    const parent = this._switchParent as Greenlet | undefined
    // A parent suspended in switch() gets the result and the baton from
    // here: RESUMED goes before DIE, so the hub does not resume it again.
    const parentSlot = parent !== undefined && parent._inSwitch ? parent.#resumeDirectly() : NO_SLOT
    // A kill no wait raised (it came after its last wait ended) wins over the value, as in the async mode.
    if (failed) this._finish(undefined, error, true)
    else this._finishReturned(value as T)
    this.#slot = NO_SLOT
    return parentSlot !== NO_SLOT ? parentSlot : nextSlot()
  }

  override toString(): string {
    return `<Greenlet "${this.name}" id=${this.id} ${this._state}>`
  }
}

Object.defineProperty(Greenlet.prototype, GREENLET_MODE, { value: 'greenthread/sync' })

/**
 * A wait of a sync greenlet under a fresh id: the hub resumes it as the
 * greenlet itself. The hub forgets the id once it has delivered the wait's
 * end, so an interrupt sent to it after that (by a greenlet resumed earlier
 * in the same batch) would be lost: the greenlet then ends its wait with the
 * interrupt instead.
 */
class FreshWait extends HubRecord implements BatonResumable {
  constructor(private readonly greenlet: Greenlet) {
    super(true)
    hub.runsAtOnce(this)
    hub.resumables.set(this.id, this)
  }

  #outcome(outcome: number): number {
    return this.greenlet._interruptPending() ? Outcome.INTERRUPTED : outcome
  }

  _resume(outcome: number): void {
    this.greenlet._resume(this.#outcome(outcome))
  }

  _prepare(outcome: number): number {
    return this.greenlet._prepare(this.#outcome(outcome))
  }

  _waitingSlot(): number {
    return this.greenlet._waitingSlot()
  }
}

/** Creates a greenlet and schedules it to run on a later turn of the hub. */
export function spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R> {
  return new Greenlet<R>(fn, ...args).start()
}

/** Creates a greenlet that starts after `ms` milliseconds. */
export function spawnLater<A extends unknown[], R>(ms: number, fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R> {
  const delay = checkMs('ms', ms, false)
  return new Greenlet<R>(fn, ...args).startLater(delay)
}

function isGreenlet(x: unknown): x is Greenlet {
  return x instanceof Greenlet
}

/**
 * Blocks until the greenlets have finished and returns those that have (in
 * the order given). With `count`, returns once that many have finished;
 * with `timeoutMs`, when the time is up; with `raiseError`, throws the
 * exception of the first one that fails.
 */
export function joinall<G extends Greenlet<any>>(greenlets: Iterable<G>, options?: JoinAllOptions): G[] {
  const plan = planJoinAll(greenlets, options, isGreenlet) as JoinAllPlan<G>
  const { ms, raiseError, pending, missing } = plan
  let waited: number | undefined
  if (missing > 0) {
    const me = blockingGreenlet('joinall()')
    if (pending.includes(me as G)) {
      throw new Error(`joinall() in ${me} waits for ${me} itself: it would wait forever`)
    }
    waited = me._wait((waiter) => hub.joinWait(waiter, pending, missing, raiseError, ms), false)
  }
  return joinAllResult(plan, waited)
}

/** Kills every greenlet with `options.exception` and by default blocks until all of them have died. */
export function killall(greenlets: Iterable<Greenlet>, options?: KillAllOptions): void {
  const { list, ms, exception, block } = planKillAll(greenlets, options, isGreenlet)
  const current = getcurrent()
  const others = list.filter((g) => g !== current)
  if (block && others.some((g) => g.started && !g.dead)) {
    blockingGreenlet('killall() (pass { block: false } to kill without waiting)')
  }
  // Once each: a member still dying of an earlier kill is not raised in again.
  for (const g of others) if (!g._dying()) g.kill(exception, { block: false })
  if (block) {
    joinall(others, { timeoutMs: ms < 0 ? undefined : ms })
    if (others.some((g) => !g.dead)) throw killallTimedOut(new Timeout(ms))
  }
  if (current !== null && list.includes(current)) current.kill(exception)
}
