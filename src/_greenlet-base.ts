/**
 * The part of a Greenlet that the async mode (`src/greenlet.ts`) and the sync
 * mode (`src/sync/greenlet.ts`) share: state, outcome, links, interrupts,
 * scheduling and the common part of finishing. Each mode's `Greenlet`
 * extends it with how its waits suspend and how it is resumed (Promises or
 * the baton). Internal: import `Greenlet` from the mode's module.
 */
import { AsyncResource } from 'node:async_hooks'

import { anySignal } from './_any-signal'
import { GreenletExit, checkFunction, checkMs, functionName, invalidType, isGreenletExit, reportError } from './errors'
import { HubRecord, type WokenWait, hub } from './hub'
import { type Link, type LinkKind, callLinks } from './lifecycle'

/** @internal */
export type State = 'new' | 'scheduled' | 'running' | 'dead'
/** @internal What a switch() hands to the greenlet it resumes. */
export type Transfer = { value: unknown; error?: undefined; failed: false } | { error: unknown; failed: true }

const NO_INTERRUPT = Symbol('no interrupt')
/** @internal The arguments of a greenlet called without any: shared, never written. */
export const NO_ARGS: unknown[] = []

/** What `link` accepts: a callback, or an object with one (an `AsyncResult`). */
export type LinkTarget<G> = ((g: G) => void) | { readonly callback: (g: G) => void }

function linkCallback<G>(target: LinkTarget<G>): (g: G) => void {
  if (target !== null && typeof target === 'object' && typeof target.callback === 'function') return target.callback
  return target as (g: G) => void
}

/** @internal What a greenlet knows of a Timeout armed for it (src/timeout.ts). */
export interface ArmedTimeout {
  /** Aborted, with the Timeout's exception, when it fires. */
  readonly signal: AbortSignal
  /** The greenlet it was armed for has finished: it has nobody to raise in, and keeps the process alive only for its signal's sake. */
  _targetFinished(): void
}

/**
 * Finished greenlets whose links are due. Links run from a microtask, soon
 * after the finish but never inside it; one microtask serves all the
 * greenlets that finish meanwhile (each costs an async resource while
 * async hooks are on, as AsyncLocalStorage keeps them).
 */
let linksDue: GreenletBase<unknown, unknown>[] = []

/**
 * Greenlets started and not finished: an intrusive list (two fields per
 * greenlet, no hashing), oldest first, for `allTasks`. It holds them
 * strongly, so a greenlet that lives on from one sweep to the next
 * (`sweepLiveGreenlets`) moves to `weakLive` if its mode allows: an async
 * greenlet that nothing else holds (suspended in a `switch()` nobody will
 * make, or waiting on an object dropped since) is then collected, as an
 * abandoned async function is; `allTasks` still lists it while it lives.
 */
let liveHead: GreenletBase<unknown, unknown> | undefined
let liveTail: GreenletBase<unknown, unknown> | undefined
/** The newest greenlet of the list at the last sweep: it and those before it were live then. */
let sweepMark: GreenletBase<unknown, unknown> | undefined
const weakLive = new Set<WeakRef<GreenletBase<unknown, unknown>>>()

/**
 * Starts between checks of the clock for a sweep, and the least time
 * between sweeps: a sweep walks the list, so at most once per this many
 * starts; greenlets that outlive two sweeps are the long-lived ones.
 */
const STARTS_PER_SWEEP_CHECK = 4096
const SWEEP_INTERVAL_MS = 10_000
let startsSinceCheck = 0
let lastSweepAt = 0

/** @internal Greenlets of both modes started and not finished, oldest first. */
export function* liveGreenlets(): Generator<GreenletBase<unknown, unknown>> {
  for (const ref of weakLive) {
    const g = ref.deref()
    if (g !== undefined) yield g
  }
  for (let g = liveHead; g !== undefined; g = g._liveNext) yield g
}

/**
 * @internal Moves the greenlets that were live at the previous sweep, and
 * may be collected, from the strong list to `weakLive`; forgets those
 * collected since. Runs from `_goLive` every few thousand starts, at most
 * once per `SWEEP_INTERVAL_MS` (tests call it directly).
 */
export function sweepLiveGreenlets(): void {
  lastSweepAt = performance.now()
  for (const ref of weakLive) if (ref.deref() === undefined) weakLive.delete(ref)
  const stop = sweepMark
  if (stop !== undefined) {
    for (let g = liveHead; g !== undefined; ) {
      const next = g._liveNext
      if (g._collectable()) g._weakenLive()
      if (g === stop) break
      g = next
    }
  }
  sweepMark = liveTail
}

// Their ids stay theirs when the hub's id counter wraps.
hub.liveRecords = liveGreenlets

/**
 * Calls the links of the greenlets finished since the last call, outside
 * any greenlet, as gevent calls them from its hub: not in the async context
 * of the greenlet whose finish queued it (where getcurrent() would name that
 * dead greenlet, and a kill() of the greenlet its context names would be
 * taken for the caller killing itself).
 */
const runDueLinks = AsyncResource.bind((): void => {
  const due = linksDue
  linksDue = []
  for (const g of due) g._callLinks()
})

/**
 * The shared core of both modes' `Greenlet`. `G` is the mode's
 * `Greenlet<T>`, which link callbacks receive.
 */
/**
 * What few greenlets need (a name, links, a signal, Timeouts, a kill, a
 * switch): made on first use, so that the many plain ones stay small.
 */
class Rare {
  name: string | undefined = undefined
  /** Its entry in `weakLive` (see `sweepLiveGreenlets`): set, it is listed there rather than in the strong list, until it finishes. */
  weakLive: WeakRef<GreenletBase<unknown, unknown>> | undefined = undefined
  woken: WokenWait | undefined = undefined
  transfer: Transfer | undefined = undefined
  switchParent: GreenletBase<unknown, unknown> | undefined = undefined
  links: Link<any>[] | undefined = undefined
  /** The links being called now (an unlink there still counts). */
  calling: Link<any>[] | undefined = undefined
  controller: AbortController | undefined = undefined
  /** Timeouts armed for it and not fired or cancelled, innermost last. */
  timeouts: ArmedTimeout[] | undefined = undefined
  /** `signal` while Timeouts are armed: the kill's and theirs. */
  combined: AbortSignal | undefined = undefined
  killedWith: unknown = NO_INTERRUPT
  /** The exception its next wait raises... */
  interrupt: unknown = NO_INTERRUPT
  /** ...and those the waits after it raise, one each (two Timeouts fired before it yielded). */
  laterInterrupts: unknown[] | undefined = undefined
}

// Flags of a greenlet (`_flags`), one word rather than a field each.
const FAILED = 1
const RETURNED = 2
const OBSERVED = 4
/** @internal Bits from here on are the mode's own. */
export const FIRST_MODE_FLAG = 8

/**
 * The shared core of both modes' `Greenlet`. `G` is the mode's
 * `Greenlet<T>`, which link callbacks receive.
 */
export abstract class GreenletBase<T, G> extends HubRecord {
  /**
   * @internal Its function until it is called, then the function's name
   * (for `toString`): as gevent drops its `_run`, so that what the function
   * holds can be collected while the greenlet lives on.
   */
  protected _fn: ((...args: any[]) => unknown) | string
  /** @internal */ protected _args: unknown[]
  /** @internal */ protected _state: State = 'new'
  /** @internal `FAILED`, `RETURNED`..., then the mode's own bits. */ protected _flags = 0
  /** @internal Suspended in switch(): a field of its own, read and written on every switch. */ protected _inSwitch = false
  /** The return value, or the exception if it failed. */
  #outcome: unknown = undefined
  /** @internal Neighbours in the list of live greenlets (`liveGreenlets`). */
  _livePrev: GreenletBase<unknown, unknown> | undefined = undefined
  /** @internal */ _liveNext: GreenletBase<unknown, unknown> | undefined = undefined
  #rare: Rare | undefined = undefined

  protected constructor(fn: (...args: any[]) => T | PromiseLike<T>, args: unknown[]) {
    super(false)
    checkFunction('fn', fn)
    this._fn = fn
    this._args = args.length === 0 ? NO_ARGS : args
  }

  /** @internal Its function, given up: it is called once. */
  protected _takeFn(): (...args: any[]) => unknown {
    const fn = this._fn as (...args: any[]) => unknown
    this._fn = functionName(fn)
    return fn
  }

  /** @internal The name of its function, for `toString`. */
  protected _fnName(): string {
    return typeof this._fn === 'string' ? this._fn : functionName(this._fn)
  }

  #flag(bit: number, on: boolean): void {
    this._flags = on ? this._flags | bit : this._flags & ~bit
  }

  #extra(): Rare {
    return (this.#rare ??= new Rare())
  }

  /** @internal */ protected get _failed(): boolean {
    return (this._flags & FAILED) !== 0
  }
  /** @internal */ protected set _failed(on: boolean) {
    this.#flag(FAILED, on)
  }

  /** @internal Its function returned (rather than raised, or never ran). */
  get _returned(): boolean {
    return (this._flags & RETURNED) !== 0
  }
  /** @internal */ set _returned(on: boolean) {
    this.#flag(RETURNED, on)
  }

  /** @internal Finished with an exception; unlike `successful()`, reading it does not count as looking at the failure (which is then still reported). */
  get _diedFailing(): boolean {
    return this._state === 'dead' && this._failed
  }

  /** @internal A failure about to be raised to someone: not reported. */
  _markObserved(): void {
    this._observed = true
  }

  /** @internal */ protected get _observed(): boolean {
    return (this._flags & OBSERVED) !== 0
  }
  /** @internal */ protected set _observed(on: boolean) {
    this.#flag(OBSERVED, on)
  }


  /**
   * @internal Its wait was woken directly (a hand-off, see src/_waiters.ts)
   * and it has not run since: an interrupt now is raised by that wait.
   */
  get _woken(): WokenWait | undefined {
    return this.#rare?.woken
  }
  /** @internal */ set _woken(woken: WokenWait | undefined) {
    if (woken !== undefined || this.#rare !== undefined) this.#extra().woken = woken
  }

  /** @internal What the next return from switch() delivers. */ protected get _transfer(): Transfer | undefined {
    return this.#rare?.transfer
  }
  /** @internal */ protected set _transfer(transfer: Transfer | undefined) {
    if (transfer !== undefined || this.#rare !== undefined) this.#extra().transfer = transfer
  }

  /**
   * @internal Who gets the result when it finishes, if suspended in
   * switch() then: the parent it had when started by switch(), or, if that
   * has died, the nearest live ancestor (as in greenlet).
   */
  protected get _switchParent(): GreenletBase<unknown, unknown> | undefined {
    let parent = this.#rare?.switchParent
    while (parent !== undefined && parent._state === 'dead') parent = parent._parentGreenlet()
    return parent
  }

  /** @internal Its parent, where the mode has one for top-level code its main greenlet: a result passes up to it past this greenlet once dead. */
  protected abstract _parentGreenlet(): GreenletBase<unknown, unknown> | undefined
  /** @internal */ protected set _switchParent(parent: GreenletBase<unknown, unknown> | undefined) {
    if (parent !== undefined || this.#rare !== undefined) this.#extra().switchParent = parent
  }

  /** Its name in messages; `Greenlet-<id>` unless set. */
  get name(): string {
    // Made when asked for: most greenlets never need one.
    return this.#rare?.name ?? `Greenlet-${this.id}`
  }

  set name(name: string) {
    // It goes into every message about the greenlet: a non-string would make them throw.
    if (typeof name !== 'string') throw invalidType('name', 'a string', name)
    this.#extra().name = name
  }

  /** Finished: returned, raised, or killed. */
  get dead(): boolean {
    return this._state === 'dead'
  }

  /** Started (`start()`, `startLater()` or `switch()`) and not finished yet, as gevent's. */
  get started(): boolean {
    return this._state !== 'new' && this._state !== 'dead'
  }

  /** Same as `dead`, as in gevent. */
  ready(): boolean {
    return this._state === 'dead'
  }

  /** Finished without an exception (exiting with GreenletExit counts as success). */
  successful(): boolean {
    this._observed = true
    return this._state === 'dead' && !this._failed
  }

  /** The return value once it has finished successfully, else `undefined`. */
  get value(): T | undefined {
    return this._failed ? undefined : (this.#outcome as T | undefined)
  }

  /** The exception it failed with, else `undefined`. */
  get exception(): unknown {
    this._observed = true
    return this._failed ? this.#outcome : undefined
  }

  /**
   * Aborted as soon as it is killed (the reason is the kill exception), or
   * when a Timeout armed for it fires (the reason is the Timeout's
   * exception): hand it to foreign awaits, such as `fetch`, so that they
   * stop. Read it for each await: once a Timeout has fired or been
   * cancelled, a new one is returned, not aborted by it.
   */
  get signal(): AbortSignal {
    const rare = this.#extra()
    const controller = (rare.controller ??= new AbortController())
    if (rare.killedWith !== NO_INTERRUPT && !controller.signal.aborted) controller.abort(rare.killedWith)
    const timeouts = rare.timeouts
    if (timeouts === undefined || timeouts.length === 0) return controller.signal
    return (rare.combined ??= anySignal([controller.signal, ...timeouts.map((t) => t.signal)]))
  }

  /** @internal A Timeout was armed for it. */
  _armTimeout(t: ArmedTimeout): void {
    const rare = this.#extra()
    ;(rare.timeouts ??= []).push(t)
    rare.combined = undefined
  }

  /** @internal A Timeout armed for it fired or was cancelled. */
  _disarmTimeout(t: ArmedTimeout): void {
    const timeouts = this.#rare?.timeouts
    const at = timeouts?.lastIndexOf(t) ?? -1
    if (at < 0) return
    timeouts!.splice(at, 1)
    this.#rare!.combined = undefined
  }

  /** @internal Links, or a parent suspended in switch() to resume: finishing settles or queues something of someone else's. */
  protected _finishWakesOthers(): boolean {
    return this.#rare !== undefined && (this.#rare.links !== undefined || this._switchParent !== undefined)
  }

  /** @internal Killed and not dead yet (killall and Group.kill raise in it once). */
  _dying(): boolean {
    return this.#rare !== undefined && this.#rare.killedWith !== NO_INTERRUPT && this._state !== 'dead'
  }

  /** Schedules the greenlet to run on a later turn of the hub. No effect if already started. */
  start(): this {
    if (this._state === 'new') this.#schedule(-1)
    return this
  }

  /** Schedules the greenlet to run after `ms` milliseconds. No effect if already started. */
  startLater(ms: number): this {
    const delay = checkMs('ms', ms, false)
    if (this._state === 'new') this.#schedule(delay)
    return this
  }

  /** `delay`: -1 for the next turn; else a timer, as gevent's `spawn_later(0)`, which starts after what is ready then. */
  #schedule(delay: number): void {
    this._state = 'scheduled'
    this._goLive()
    hub.spawn(this, delay)
  }

  /** @internal It is started: listed among the live greenlets until it finishes. */
  protected _goLive(): void {
    this._livePrev = liveTail
    if (liveTail === undefined) liveHead = this
    else liveTail._liveNext = this
    liveTail = this
    if (++startsSinceCheck >= STARTS_PER_SWEEP_CHECK) {
      startsSinceCheck = 0
      if (performance.now() - lastSweepAt >= SWEEP_INTERVAL_MS) sweepLiveGreenlets()
    }
  }

  /**
   * @internal Whether nothing but the list of live greenlets may be what
   * keeps it: then the list holds it weakly once it is long-lived. Not in
   * the base (a sync greenlet's parked thread needs its record).
   */
  _collectable(): boolean {
    return false
  }

  /** @internal Moves it from the strong list to `weakLive` (see `sweepLiveGreenlets`). */
  _weakenLive(): void {
    this.#unlinkLive()
    const rare = this.#extra()
    rare.weakLive = new WeakRef(this)
    weakLive.add(rare.weakLive)
  }

  #leaveLive(): void {
    const weak = this.#rare?.weakLive
    if (weak !== undefined) weakLive.delete(weak)
    else this.#unlinkLive()
  }

  #unlinkLive(): void {
    const prev = this._livePrev
    const next = this._liveNext
    if (prev === undefined && next === undefined && liveHead !== this) return
    if (this === sweepMark) sweepMark = prev
    if (prev === undefined) liveHead = next
    else prev._liveNext = next
    if (next === undefined) liveTail = prev
    else next._livePrev = prev
    this._livePrev = this._liveNext = undefined
  }


  /** @internal get()'s outcome once it has finished: the value, or throws the exception. */
  protected _result(): T {
    if (this._failed) throw this.#outcome
    return this.#outcome as T
  }

  /**
   * @internal kill()'s first step once not dead: records the kill (for
   * `signal`); a greenlet that has not started dies at once (returns true).
   */
  protected _markKilled(exception: unknown): boolean {
    const rare = this.#extra()
    rare.killedWith = exception
    rare.controller?.abort(exception)
    // Not started: it dies now, without running, as gevent's kill of a greenlet that has not run (its start is void).
    if (this._state === 'new' || this._state === 'scheduled') {
      this._finish(undefined, exception, true)
      return true
    }
    return false
  }

  /**
   * Calls `callback(this)` once the greenlet has finished (soon, if it
   * already has). The callback may be an `AsyncResult`, which then takes the
   * greenlet's outcome (as gevent's AsyncResult, which is callable).
   */
  link(callback: LinkTarget<G>): void {
    this.#addLink(linkCallback(callback), 'any')
  }

  /** Like `link`, only if it finishes successfully. */
  linkValue(callback: LinkTarget<G>): void {
    this.#addLink(linkCallback(callback), 'value')
  }

  /** Like `link`, only if it fails. */
  linkException(callback: LinkTarget<G>): void {
    this.#addLink(linkCallback(callback), 'exception')
  }

  /** Removes every registration of `callback` (a function or an `AsyncResult`), also from the links being called now. */
  unlink(target: LinkTarget<G>): void {
    const callback = linkCallback(target)
    const rare = this.#rare
    if (rare?.links) rare.links = rare.links.filter((l) => l.callback !== callback)
    for (const l of rare?.calling ?? []) if (l.callback === callback) l.unlinked = true
  }

  /**
   * @internal Like `link`, but does not count as looking at the outcome
   * (gevent's rawlink): an unobserved failure is still reported.
   */
  _rawlink(callback: (g: G) => void): void {
    this.#pushLink(callback, 'any')
  }

  #addLink(callback: (g: G) => void, kind: LinkKind): void {
    checkFunction('callback', callback)
    this._observed = true
    this.#pushLink(callback, kind)
  }

  #pushLink(callback: (g: G) => void, kind: LinkKind): void {
    ;(this.#extra().links ??= []).push({ callback, kind })
    if (this._state === 'dead') this.#runLinks()
  }

  /** @internal switch()'s and throw()'s checks of the greenlet that control passes to. */
  protected _checkSwitchTarget(): void {
    if (this._state === 'dead') throw new Error(`cannot switch to ${this}: it has finished`)
    if (this._state === 'scheduled' || (this._state === 'running' && !this._inSwitch)) {
      throw new Error(`cannot switch to ${this}: it is not suspended in switch() (it is running or waiting for the hub)`)
    }
  }

  /**
   * @internal throw()'s cases that pass no control: a dead greenlet (`err`
   * is thrown back unless a GreenletExit),
   * one that has not started (it dies with `err`, thrown back unless a
   * GreenletExit), one that belongs to the hub (`err` is raised at its
   * wait). Returns false for those; true if it is suspended in switch().
   */
  protected _throwWithoutSwitch(err: unknown): boolean {
    // As in greenlet: a dead greenlet "dies again", a GreenletExit comes back as a value.
    if (this._state === 'dead') {
      if (isGreenletExit(err)) return false
      throw err
    }
    if (this._state === 'new') {
      this._finish(undefined, err, true)
      this._observed = true
      if (this._failed) throw err
      return false
    }
    if (!this._inSwitch) {
      this._raiseAt(err, false)
      return false
    }
    return true
  }

  /** @internal Delivers `exception` at the current or next wait of this greenlet. */
  protected _raiseAt(exception: unknown, isKill: boolean): void {
    const rare = this.#extra()
    if (rare.interrupt === NO_INTERRUPT) {
      rare.interrupt = exception
    } else if (isKill) {
      // A kill goes first; what was pending is raised at the waits after it.
      ;(rare.laterInterrupts ??= []).unshift(rare.interrupt)
      rare.interrupt = exception
    } else {
      ;(rare.laterInterrupts ??= []).push(exception)
    }
    // A Timeout throws into the wait it fires at, before a wake-up already due there runs (as gevent's timer
    // callback does); a kill comes behind such a wake-up (gevent queues it as a callback): raised at the next wait.
    hub.interrupt(this._interruptedRecord(), !isKill)
  }

  /** @internal The record an interrupt goes to: itself, or the wait it makes under another id. */
  protected _interruptedRecord(): HubRecord {
    return this
  }

  /** @internal Raises `exception` at this greenlet's current or next wait (Timeout). */
  _raise(exception: unknown): void {
    if (this._state !== 'dead') this._raiseAt(exception, false)
  }

  /** @internal Remembers `woken`, the wait just woken directly, until it has run. */
  protected _keepWoken(woken: WokenWait): void {
    this._woken = woken
    woken.holder = this
  }

  /** @internal Gives `exception` to the wait woken directly, if there is one; returns whether there was. */
  protected _raiseInWoken(exception: unknown): boolean {
    const woken = this._woken
    if (woken === undefined) return false
    this._woken = undefined
    woken.interrupted = true
    woken.exception = exception
    return true
  }

  /**
   * @internal Takes back `exception` (a Timeout's, cancelled) if it still
   * waits to be raised at the next wait, and says whether it did; one
   * delivered already, or about to be, stays.
   */
  _withdrawRaise(exception: unknown): boolean {
    const rare = this.#rare
    if (rare === undefined) return false
    const later = rare.laterInterrupts
    if (rare.interrupt !== exception) {
      const at = later?.indexOf(exception) ?? -1
      if (at < 0) return false
      later!.splice(at, 1)
    } else if (later !== undefined && later.length > 0) {
      // The next one takes its place; the hub still has one queued.
      rare.interrupt = later.shift()
    } else if (hub.withdrawInterrupt(this._interruptedRecord())) {
      rare.interrupt = NO_INTERRUPT
    } else {
      return false
    }
    return true
  }

  /**
   * @internal See WaitOwner (hub.ts): `exception`, raised at the wait that
   * just ended, did not end it (what was handed there stands), so it goes
   * to the next wait, ahead of any other pending. Once only: a concurrent
   * wait may hand it back too.
   */
  _raiseAtNextWait(exception: unknown): void {
    const rare = this.#extra()
    if (rare.interrupt === exception || rare.laterInterrupts?.includes(exception)) return
    if (rare.interrupt !== NO_INTERRUPT) (rare.laterInterrupts ??= []).unshift(rare.interrupt)
    rare.interrupt = exception
    hub.interrupt(this._interruptedRecord())
  }

  /** @internal See WaitOwner (hub.ts): the interrupt the hub holds for its next wait, taken. */
  _takeRaiseForWait(): { exception: unknown } | undefined {
    if (!this._interruptPending() || !hub.withdrawInterrupt(this._interruptedRecord())) return undefined
    return { exception: this._takeInterrupt() }
  }

  /** @internal An interrupt waits to be raised at its next wait. */
  _interruptPending(): boolean {
    return this.#rare !== undefined && this.#rare.interrupt !== NO_INTERRUPT
  }

  /** @internal The exception its interrupted wait raises (consumed). */
  protected _takeInterrupt(): unknown {
    const rare = this.#rare
    if (rare === undefined || rare.interrupt === NO_INTERRUPT) return new GreenletExit()
    const exception = rare.interrupt
    const later = rare.laterInterrupts
    if (later !== undefined && later.length > 0) {
      rare.interrupt = later.shift()
      // For the next wait.
      hub.interrupt(this._interruptedRecord())
    } else {
      rare.interrupt = NO_INTERRUPT
    }
    return exception
  }

  /**
   * @internal Its function returned `value`. A kill that no wait has raised
   * (it came during a foreign await) wins: it dies of it, the value dropped.
   * A Timeout no wait raised does not: it finished before it yielded.
   */
  protected _finishReturned(value: T): void {
    const rare = this.#rare
    const kill = rare === undefined ? NO_INTERRUPT : rare.killedWith
    if (kill !== NO_INTERRUPT && (rare!.interrupt === kill || rare!.laterInterrupts?.includes(kill) === true)) {
      this._withdrawRaise(kill)
      this._finish(undefined, kill, true)
    } else {
      this._finish(value, undefined, false)
    }
  }

  /**
   * @internal Its own record is still in a wait as it finishes: one made by
   * code it started and did not wait for (an async function it did not
   * await). That wait goes on after its death, and settles.
   */
  protected _waitOutlivesIt(): boolean {
    return false
  }

  /** @internal It has finished: records the outcome, tells the hub and a parent in switch(), runs links. */
  protected _finish(value: T | undefined, err: unknown, failed: boolean): void {
    const keepWait = this._waitOutlivesIt()
    this._returned = !failed
    // What a parent in switch() receives of a quiet exit: the GreenletExit itself, as in greenlet.
    const exited = failed && isGreenletExit(err) ? err : undefined
    if (exited !== undefined) {
      failed = false
      value = undefined
    }
    this._state = 'dead'
    this.#outcome = failed ? err : value
    this._failed = failed
    this.#leaveLive()
    const parent = this._switchParent
    if (parent !== undefined && parent._inSwitch) {
      // The hub (or, sync, the finishing thread) resumes the parent.
      parent._transfer = failed ? { error: err, failed: true } : { value: exited ?? value, failed: false }
      this._observed = true
    }
    hub.die(this, failed, keepWait)
    if (this.#rare?.timeouts !== undefined) for (const t of this.#rare.timeouts) t._targetFinished()
    if (this.#rare?.links) this.#runLinks()
    if (failed) setImmediate(reportIfUnobserved, this)
  }

  #runLinks(): void {
    linksDue.push(this)
    if (linksDue.length === 1) queueMicrotask(runDueLinks)
  }

  /** @internal Calls the links registered so far, once. */
  _callLinks(): void {
    const rare = this.#rare
    const links = rare?.links
    if (rare === undefined || links === undefined) return
    rare.links = undefined
    rare.calling = links
    try {
      callLinks(this, links, this._failed)
    } finally {
      rare.calling = undefined
    }
  }

  /** @internal */
  _reportIfUnobserved(): void {
    // Like gevent's hub, which prints failures: here only those nobody looked at.
    if (!this._observed) reportError(`greenthread: ${this} failed:`, this.#outcome)
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString()
  }
}

function reportIfUnobserved(g: GreenletBase<unknown, unknown>): void {
  g._reportIfUnobserved()
}
