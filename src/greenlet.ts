/**
 * Greenlets: cooperatively scheduled units of work with gevent's lifecycle
 * (spawn, join, get, kill, links) and greenlet's explicit transfer
 * (`switch`, `throw`, return to parent).
 *
 * A Greenlet is deliberately not a thenable: `await`, async `return` and
 * async-generator `yield` would unwrap it. Await `g.get()` or `g.join()`.
 *
 * Killing is cooperative: the kill exception is raised at the greenlet's
 * current library wait (sleep, join, switch, queue and socket waits), or at
 * its next one if it is busy. Code awaiting something foreign can watch
 * `g.signal`, which aborts at once.
 */
import { FIRST_MODE_FLAG, GreenletBase, NO_ARGS } from './_greenlet-base'
import { GREENLET_MODE, GreenletExit, checkFlag, checkMs, checkOptions, exceptionFrom, functionName, invalidType, rejecting, safeString } from './errors'
import { Outcome, type TransientWait, type WaitOwner, type WokenWait, currentStorage, endBodyCall, hub, isLastOwnWait, ownWait, raceFreshWaits, raiseThrough, startBodyCall, startInOwnContext, suspend } from './hub'
import { type JoinAllPlan, joinAllResult, killallTimedOut, planJoinAll, planKillAll } from './lifecycle'
import { Timeout } from './timeout'

export interface KillOptions {
  /** Wait until the greenlet has died. @default true */
  block?: boolean
  /** With `block`, stop waiting after this many milliseconds. @default no limit */
  timeoutMs?: number
}

export interface GetOptions {
  /** Wait for the greenlet to finish; otherwise reject with `Timeout` if it has not. @default true */
  block?: boolean
  /** Reject with `Timeout` if not finished within this many milliseconds. @default no limit */
  timeoutMs?: number
}

export interface JoinAllOptions {
  /** Stop waiting after this many milliseconds. @default no limit */
  timeoutMs?: number
  /** Reject with the exception of the first greenlet that fails. @default false */
  raiseError?: boolean
  /** Return once this many greenlets have finished. @default all of them */
  count?: number
}

export interface KillAllOptions extends KillOptions {
  /** The exception raised in each greenlet. @default a new GreenletExit */
  exception?: unknown
}

/** The greenlet running the current code, across awaits; `null` outside any greenlet. */
export function getcurrent(): Greenlet | null {
  return (currentStorage.getStore() as Greenlet | undefined) ?? null
}

// The async mode's flags of a greenlet (`_flags`).
const WAITING = FIRST_MODE_FLAG
/** Its wait is a sleep(): its Promise resolves with undefined, not the wait's outcome. */
const SLEEPING = FIRST_MODE_FLAG << 1

// Structurally a WaitOwner (not declared: its members are internal, and
// stripped from the published declarations). This comment must not spell
// the at-internal tag itself: stripInternal would drop the whole class.

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
      const to = parent ?? Greenlet.#mainGreenlet()
      this._switchParent = to
    }
  }
  /** @internal See GreenletBase. */
  protected override _parentGreenlet(): Greenlet {
    return this.#parent ?? Greenlet.#mainGreenlet()
  }

  /** @internal Its own record is in a wait (a second concurrent wait gets a transient one). */
  get _waiting(): boolean {
    return (this._flags & WAITING) !== 0
  }
  /** @internal */ set _waiting(on: boolean) {
    this._flags = on ? this._flags | WAITING : this._flags & ~(WAITING | SLEEPING)
  }
  /** @internal Its wait (its own record's) is a sleep(). */
  get _sleeping(): boolean {
    return (this._flags & SLEEPING) !== 0
  }
  /** @internal */ set _sleeping(on: boolean) {
    this._flags = on ? this._flags | SLEEPING : this._flags & ~SLEEPING
  }
  /** @internal */ _resolve: ((outcome: number) => void) | undefined = undefined
  /**
   * @internal Its function returned the Promise of its own sleep
   * (`() => sleep(ms)`): the end of that sleep ends the greenlet (see
   * `#endOwnWait`), at once when the hub resumes it and nothing resumed
   * before it still has a continuation to run, with no reaction per greenlet.
   */
  _tailWait: Promise<unknown> | undefined = undefined
  /** @internal */ _extraWaits: Set<TransientWait> | undefined = undefined

  constructor(fn: (...args: A) => T | PromiseLike<T>, ...args: A | [])
  constructor(fn: (...args: A) => T | PromiseLike<T>) {
    // `arguments` rather than a rest array: most greenlets take no arguments, and then allocate none.
    super(fn, arguments.length > 1 ? restArguments(arguments) : NO_ARGS)
    this.#parent = getcurrent()
    hub.settlesOnly(this)
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
   * Resolves once the greenlet has finished (`true`) or after `timeoutMs`
   * (`false`). Never rejects for the greenlet's own failure; rejects only if
   * the waiting greenlet is itself killed, or for bad arguments.
   */
  join(timeoutMs?: number): Promise<boolean> {
    return rejecting(async () => {
      const ms = checkMs('timeoutMs', timeoutMs, true)
      if (this._state === 'dead') return true
      if (getcurrent() === this) throw new Error(`${this} cannot join itself: it would wait forever`)
      await suspend((waiter) => hub.joinWait(waiter, [this], 1, false, ms))
      return this.dead
    })
  }

  /**
   * The return value, waiting for it if needed. Rejects with the greenlet's
   * exception, or with `Timeout` if it has not finished in time.
   */
  get(options?: GetOptions): Promise<T> {
    return rejecting(async () => {
      const o = checkOptions('options', options)
      const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
      const block = checkFlag('options.block', o.block, true)
      this._observed = true
      if (this._state !== 'dead') {
        if (!block) throw new Timeout(0, `${this} has not finished`)
        await this.join(ms < 0 ? undefined : ms)
        if (!this.dead) throw new Timeout(ms)
      }
      return this._result()
    })
  }

  /**
   * A wait of its own record is pending while code runs as this greenlet:
   * a callback it set up (a timer, a listener, which runs in its async
   * context; gevent runs them in the hub), or its own code that left the
   * wait pending.
   */
  #suspended(): boolean {
    return this._waiting && this._state === 'running'
  }

  /**
   * Raises `exception` in the greenlet at its current or next wait, and by
   * default waits for it to die. Never rejects because the greenlet is dead
   * or fails. A greenlet that has not started yet dies without running.
   * Killing the current greenlet rejects at once with `exception`.
   */
  kill(exception: unknown = new GreenletExit(), options?: KillOptions): Promise<void> {
    return rejecting(async () => {
      exception = exceptionFrom(exception)
      const o = checkOptions('options', options)
      const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
      const block = checkFlag('options.block', o.block, true)
      if (this._state === 'dead') return
      if (this._markKilled(exception)) return
      if (getcurrent() === this) {
        if (!this.#suspended()) throw exception
        // A callback it set up, or its own code with a wait of its own left
        // pending (not awaited): which cannot be told. Both are served, and
        // the call neither waits nor fails: the wait raises now (a
        // callback's kill acts from outside), and so does the next wait
        // (its own code dies there, as of gevent's kill(block=False)).
        this._raiseAt(exception, true)
        super._raiseAt(exception, true)
        return
      }
      this._raiseAt(exception, true)
      if (block) await this.join(ms < 0 ? undefined : ms)
    })
  }

  /**
   * Transfers control to this greenlet, greenlet style: the caller suspends,
   * this greenlet starts (with `args`) or resumes (its pending `switch()`
   * resolves with the value: `undefined`, the single argument, or the array
   * of arguments). Resolves with whatever is later switched back to the
   * caller. A greenlet started by `switch()` returns its result to the
   * greenlet that created it, whose `switch()` then resolves with it (or
   * rejects with its exception).
   */
  switch(...args: unknown[]): Promise<unknown>
  switch(): Promise<unknown> {
    // Hot path (W2): try/catch rather than a `rejecting` closure per switch,
    // and no argument array for the usual zero or one value.
    try {
      const value = arguments.length <= 1 ? arguments[0] : restArguments(arguments, 0)
      const caller = getcurrent() ?? Greenlet.#mainGreenlet()
      if (this === caller) return Promise.resolve(value)
      this.#checkSwitch(caller)
      const suspended = caller.#parkInSwitch()
      if (this._state === 'new') this.#startBySwitch(arguments.length === 0 ? NO_ARGS : arguments.length === 1 ? [value] : (value as unknown[]))
      else this.#resumeFromSwitch(value, false)
      return suspended
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Raises `err` in this greenlet. If it is suspended in `switch()`, control
   * passes to it as with `switch()`. If it has not started, it dies with
   * `err` without running (the returned Promise rejects with `err`, or
   * resolves if `err` is a GreenletExit). If it belongs to the hub (running
   * or waiting in sleep, join...), `err` is raised at its current or next
   * wait and the returned Promise resolves at once. Into a dead greenlet, a
   * GreenletExit comes back as the resolved value; another `err` rejects.
   */
  throw(err: unknown = new GreenletExit()): Promise<unknown> {
    return rejecting(() => {
      err = exceptionFrom(err)
      const caller = getcurrent() ?? Greenlet.#mainGreenlet()
      if (this === caller) return Promise.reject(err)
      const finished = this.dead || this._state === 'new'
      if (!this._throwWithoutSwitch(err)) return Promise.resolve(finished ? err : undefined)
      this.#checkSwitch(caller)
      const suspended = caller.#parkInSwitch()
      this.#resumeFromSwitch(err, true)
      return suspended
    })
  }

  static #main: Greenlet | undefined

  /** @internal The implicit greenlet of top-level code is not a task. */
  static _isMain(g: Greenlet): boolean {
    return g === Greenlet.#main
  }

  /** The implicit greenlet of top-level code, used only as a switch() partner. Never dies. */
  static #mainGreenlet(): Greenlet {
    if (Greenlet.#main === undefined) {
      const main = new Greenlet(() => undefined)
      main.name = 'main'
      main._state = 'running'
      Greenlet.#main = main
      return main
    }
    return Greenlet.#main
  }

  #checkSwitch(caller: Greenlet): void {
    this._checkSwitchTarget()
    if (caller._waiting) {
      throw new Error(`cannot switch away from ${caller}: it is already suspended in another wait`)
    }
  }

  #parkInSwitch(): Promise<unknown> {
    this._waiting = true
    this._inSwitch = true
    if (this._extraWaits !== undefined) raceFreshWaits(this)
    // Only an interrupt pending in the hub needs the hub to know this wait
    // (its park delivers it on the next turn): kills reach a switch() wait
    // directly, a switch resumes it directly, and so does a child that
    // finishes (#resumeParent).
    if (this._interruptPending()) {
      hub.park(this, -1)
    }
    return ownWait<unknown>(this)
  }

  #startBySwitch(args: unknown[]): void {
    // As in greenlet, the parent is the creator, not the first switcher.
    const parent = this.parent ?? Greenlet.#mainGreenlet()
    this._switchParent = parent
    this._goLive()
    hub.resumed(this)
    this.#run(args.length > 0 ? args : this._args)
  }

  /** Passes control to this greenlet, suspended in switch(): its switch() returns `value` (throws it if `failed`). */
  #resumeFromSwitch(value: unknown, failed: boolean): void {
    // Voids whatever the hub had queued for it (an interrupt goes to its next wait).
    hub.resumed(this)
    this.#settleSwitch(value, failed)
  }

  /**
   * Resumes the parent suspended in switch() that this greenlet, finishing,
   * returns to, unless the hub has its wait queued already (an interrupt that
   * was pending when it switched: that wins).
   */
  #resumeParent(): void {
    const parent = this._switchParent
    if (!(parent instanceof Greenlet) || !parent._inSwitch || hub.isQueued(parent)) return
    hub.resumed(parent)
    parent.#settleTransfer()
  }

  /** Ends its switch() wait with what `_transfer` holds for it (a child's outcome). */
  #settleTransfer(): void {
    const transfer = this._transfer
    if (transfer?.failed) this.#settleSwitch(transfer.error, true)
    else this.#settleSwitch(transfer?.value, false)
  }

  #settleSwitch(value: unknown, failed: boolean): void {
    const resolve = this._resolve
    this.#clearWait()
    this._inSwitch = false
    this._transfer = undefined
    this.#endOwnWait(resolve, value, failed)
  }

  /**
   * Settles the Promise of its own wait, just ended, with `value` (or
   * rejects with it if `failed`). If its function returned that Promise
   * (`_tailWait`), the greenlet finishes with it: now if `atOnce` (the hub
   * resumes it, and nothing resumed before it has a continuation pending),
   * else once the Promise has settled, as when it awaited it.
   */
  #endOwnWait(resolve: ((outcome: number) => void) | undefined, value: unknown, failed: boolean, atOnce = false): void {
    if (failed) raiseThrough(resolve, value)
    else resolve?.(value as number)
    const tail = this._tailWait
    if (tail === undefined) return
    this._tailWait = undefined
    if (!atOnce) {
      tail.then(
        (v) => this._bodySettled(v, false),
        (err: unknown) => this._bodySettled(err, true),
      )
      return
    }
    // Its rejection is this greenlet's failure, not an unhandled rejection.
    if (failed) tail.then(undefined, noop)
    this._bodySettled(value, failed)
  }

  /**
   * Whether the hub's resumption of its sleep may finish it at once (see
   * `_tailWait`): not if that would run something (its links, a parent in
   * switch()) before what comes next in the batch. (Those resumed ahead of
   * it in the batch have reached their next waits by then: see the hub's
   * `takeReady`.)
   */
  #tailEndsAtOnce(): boolean {
    return this._tailWait !== undefined && !this._finishWakesOthers()
  }

  /** What its plain wait resolves with: the outcome, or nothing for a sleep(). */
  #waitValue(outcome: number): number | undefined {
    return this._sleeping ? undefined : outcome
  }

  #clearWait(): void {
    this._waiting = false
    this._resolve = undefined
  }

  /** @internal Called by the hub with the outcome of this greenlet's wait. */
  _resume(outcome: number): void {
    if (outcome === Outcome.START) {
      if (this._state === 'scheduled') this.#runFromHub(this._args)
      return
    }
    if (this._state === 'scheduled') {
      // Interrupted before it ran: it dies without running.
      if (outcome === Outcome.INTERRUPTED) this._finish(undefined, this._takeInterrupt(), true)
      return
    }
    if (outcome === Outcome.INTERRUPTED) {
      const resolve = this._resolve
      this.#clearWait()
      this._inSwitch = false
      this._transfer = undefined
      this.#endOwnWait(resolve, this._takeInterrupt(), true, this.#tailEndsAtOnce())
    } else if (this._inSwitch) {
      this.#settleTransfer()
    } else {
      const resolve = this._resolve
      const value = this.#waitValue(outcome)
      this.#clearWait()
      this.#endOwnWait(resolve, value, false, this.#tailEndsAtOnce())
    }
  }

  /** @internal See GreenletBase: nothing of an async greenlet needs it kept but what can still resume it. */
  override _collectable(): boolean {
    return true
  }

  /** @internal See HubRecord (hub.ts). */
  override _inPlainWait(): boolean {
    // Dead: a wait that outlived it (see `_waitOutlivesIt`).
    return this._waiting && !this._inSwitch && (this._state === 'running' || this._state === 'dead')
  }

  /** @internal See HubRecord (hub.ts). */
  override _wakeNow(parked: boolean, woken: WokenWait): void {
    const resolve = this._resolve
    const value = this.#waitValue(Outcome.WAKE)
    this.#clearWait()
    this._keepWoken(woken)
    // Voids the wait in the hub, and anything it has queued for it.
    if (parked) hub.resumed(this)
    this.#endOwnWait(resolve, value, false)
  }

  /** @internal See HubRecord (hub.ts). */
  override _mayWaitUnparked(): boolean {
    return !this._interruptPending()
  }

  /**
   * @internal Delivers `exception` at the current or next wait of this
   * greenlet and of its concurrent waits. A wait in progress is rejected at
   * once (the hub is told it resumed, which voids anything it had queued for
   * it) rather than one hub turn later: by then a timer of the greenlet's own
   * may have expired in the same batch, and a Timeout that fired first must
   * win. A wait woken directly that has not run yet raises it after all.
   */
  protected override _raiseAt(exception: unknown, isKill: boolean): void {
    if (this._raiseInWoken(exception)) {
      // Taken by the woken wait.
    } else if (this._waiting && this._state === 'running') {
      const resolve = this._resolve
      this._listWait?.leaveList()
      this.#clearWait()
      this._inSwitch = false
      this._transfer = undefined
      hub.resumed(this)
      this.#endOwnWait(resolve, exception, true)
    } else if (!this.#inFreshWait()) {
      super._raiseAt(exception, isKill)
    }
    // Raised at its waits under ids of their own too.
    if (this._extraWaits) {
      for (const wait of this._extraWaits) wait.interruptWith(exception)
      this._extraWaits.clear()
    }
  }

  /**
   * In a library wait under an id of its own (`suspendFresh`: a Future, a
   * socket): an interrupt raised there is its raise, not also the next
   * wait's. Other concurrent waits may be left over (the losers of a race):
   * its code may be elsewhere, so the next wait raises too.
   */
  #inFreshWait(): boolean {
    if (this._extraWaits === undefined) return false
    for (const wait of this._extraWaits) if (wait._pendingFresh) return true
    return false
  }

  #run(args: unknown[]): void {
    this._state = 'running'
    currentStorage.run(this, runBody, this, args)
  }

  /** Starts it from a turn of the hub (the common start): cheaper than `#run` there. */
  #runFromHub(args: unknown[]): void {
    this._state = 'running'
    startInOwnContext(this, runBody, args)
  }

  /**
   * @internal Runs its function, in its own async context: one that returns
   * (or throws) at once finishes it here; a Promise finishes it when it
   * settles. Two callbacks rather than an async function: half the memory
   * of a suspended greenlet, and no extra turn of the microtask queue.
   */
  _body(args: unknown[]): void {
    let result: unknown
    let then: unknown
    const outer = startBodyCall(this)
    try {
      const fn = this._takeFn()
      result = args.length === 0 ? fn() : fn(...args)
      // As `await` does: a thenable is followed, and reading its `then` may throw.
      then = result !== null && (typeof result === 'object' || typeof result === 'function') ? (result as PromiseLike<T>).then : undefined
    } catch (err) {
      endBodyCall(outer)
      this._finish(undefined, err, true)
      return
    }
    // A sleep only: a switch() into it hands it any value (a thenable to follow), and its end resumes its parent.
    const tail = this._sleeping && isLastOwnWait(this, result)
    endBodyCall(outer)
    if (typeof then !== 'function') {
      this._finishReturned(result as T)
      return
    }
    if (tail) {
      // The Promise of its own wait: ends with it (`#endOwnWait`).
      this._tailWait = result as Promise<unknown>
      return
    }
    const settled = result instanceof Promise && then === promiseThen ? result : Promise.resolve(result)
    // Shared callbacks: they run in this greenlet's async context, which names it.
    settled.then(bodyReturned, bodyFailed)
  }

  /** @internal Its function's Promise settled (`bodyReturned` / `bodyFailed`). */
  _bodySettled(value: unknown, failed: boolean): void {
    if (failed) this._finish(undefined, value, true)
    else this._finishReturned(value as T)
  }

  /** @internal Also ends its wait, unless code it left running made it (see `_waitOutlivesIt`). */
  protected override _finish(value: T | undefined, err: unknown, failed: boolean): void {
    if (!this._waitOutlivesIt()) this.#clearWait()
    super._finish(value, err, failed)
    this.#resumeParent()
  }

  /** @internal See GreenletBase. Its body has settled: a wait still on its record is not the body's. */
  protected override _waitOutlivesIt(): boolean {
    return this._waiting && !this._inSwitch && this._state === 'running'
  }

  /** Like gevent's repr: name, id and the call it runs, e.g. `<Greenlet "Greenlet-1" id=1: f(5)>`. */
  override toString(): string {
    // Arguments are user values: one without a string form must not make the repr throw.
    const args = this._args.map((a) => (typeof a === 'string' ? JSON.stringify(a) : typeof a === 'function' ? safeString(functionName(a) || 'fn') : safeString(a)))
    return `<Greenlet "${this.name}" id=${this.id}: ${this._fnName() || 'anonymous'}(${args.join(', ')})>`
  }
}

Object.defineProperty(Greenlet.prototype, GREENLET_MODE, { value: 'greenthread' })

const promiseThen = Promise.prototype.then

function noop(): void {}

function bodyReturned(value: unknown): void {
  ;(currentStorage.getStore() as Greenlet)._bodySettled(value, false)
}

function bodyFailed(err: unknown): void {
  ;(currentStorage.getStore() as Greenlet)._bodySettled(err, true)
}

function runBody(g: WaitOwner, args: unknown[]): void {
  ;(g as Greenlet)._body(args)
}

/** Creates a greenlet and schedules it to run on a later turn of the hub. */
export function spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R>
export function spawn<R>(fn: (...args: unknown[]) => R | PromiseLike<R>): Greenlet<R> {
  // The hot path of W1: no rest array, no spread, for a greenlet without arguments.
  if (arguments.length <= 1) return new Greenlet<R>(fn).start()
  return new Greenlet<R>(fn, ...restArguments(arguments)).start()
}

/** The arguments from index `from` on (after the function, by default), as an array. */
function restArguments(args: IArguments, from = 1): unknown[] {
  return Array.prototype.slice.call(args, from)
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
 * Waits for the greenlets to finish and resolves with those that have
 * finished (in the order given). With `count`, resolves once that many have
 * finished; with `timeoutMs`, when the time is up; with `raiseError`,
 * rejects with the exception of the first one that fails.
 */
export function joinall<G extends Greenlet<any>>(greenlets: Iterable<G>, options?: JoinAllOptions): Promise<G[]> {
  return rejecting(async () => {
    const plan = planJoinAll(greenlets, options, isGreenlet) as JoinAllPlan<G>
    const { ms, raiseError, pending, missing } = plan
    let waited: number | undefined
    if (missing > 0) {
      const current = getcurrent()
      if (current !== null && pending.includes(current as G)) {
        throw new Error(`joinall() in ${current} waits for ${current} itself: it would wait forever`)
      }
      waited = await suspend((waiter) => hub.joinWait(waiter, pending, missing, raiseError, ms))
    }
    return joinAllResult(plan, waited)
  })
}

/** Kills every greenlet with `options.exception` and by default waits for all of them to die. */
export function killall(greenlets: Iterable<Greenlet>, options?: KillAllOptions): Promise<void> {
  return rejecting(async () => {
    const { list, ms, exception, block } = planKillAll(greenlets, options, isGreenlet)
    const current = getcurrent()
    const others = list.filter((g) => g !== current)
    // Once each: a member still dying of an earlier kill is not raised in again.
    await Promise.all(others.filter((g) => !g._dying()).map((g) => g.kill(exception, { block: false })))
    if (block) {
      await joinall(others, { timeoutMs: ms < 0 ? undefined : ms })
      if (others.some((g) => !g.dead)) throw killallTimedOut(new Timeout(ms))
    }
    if (current !== null && list.includes(current)) await current.kill(exception)
  })
}
