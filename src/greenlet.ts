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
import { GreenletExit, checkFunction, checkMs, checkOptions, rejecting } from './errors'
import { type TransientWait, currentStorage, hub, suspend } from './hub'
import { type Link, type LinkKind, callLinks, checkGreenletList, issueJoinAll, planJoinAll } from './lifecycle'
import { wire } from './native'
import { Timeout } from './timeout'

type State = 'new' | 'scheduled' | 'running' | 'dead'
type Transfer = { value: unknown; error?: undefined; failed: false } | { error: unknown; failed: true }

const NO_INTERRUPT = Symbol('no interrupt')

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

// Structurally a WaitOwner (not declared: its members are @internal and
// stripped from the published declarations).
export class Greenlet<T = unknown> {
  /** Unique for the life of the process. */
  readonly id: number = hub.newId()
  name: string
  /** The greenlet that was running when this one was created; `null` for top-level code. */
  readonly parent: Greenlet | null
  /** @internal */ _waiting = false
  /** @internal */ _resolve: ((outcome: number) => void) | undefined = undefined
  /** @internal */ _reject: ((err: unknown) => void) | undefined = undefined
  /** @internal */ _extraWaits: Set<TransientWait> | undefined = undefined
  #fn: (...args: any[]) => unknown
  #args: unknown[]
  #state: State = 'new'
  #value: T | undefined = undefined
  #exception: unknown = undefined
  #failed = false
  #observed = false
  #links: Link<any>[] | undefined = undefined
  #controller: AbortController | undefined = undefined
  #killedWith: unknown = NO_INTERRUPT
  #interrupt: unknown = NO_INTERRUPT
  #inSwitch = false
  #transfer: Transfer | undefined = undefined
  #switchParent: Greenlet | undefined = undefined

  constructor(fn: (...args: any[]) => T | PromiseLike<T>, ...args: unknown[]) {
    checkFunction('fn', fn)
    this.#fn = fn
    this.#args = args
    this.parent = getcurrent()
    this.name = `Greenlet-${this.id}`
  }

  /** Creates and starts a greenlet (same as the module's `spawn`). */
  static spawn<R>(fn: (...args: any[]) => R | PromiseLike<R>, ...args: unknown[]): Greenlet<R> {
    return spawn(fn, ...args)
  }

  /** Finished: returned, raised, or killed. */
  get dead(): boolean {
    return this.#state === 'dead'
  }

  /** `start()`, `startLater()` or `switch()` has been called (it may have finished since). */
  get started(): boolean {
    return this.#state !== 'new'
  }

  /** Same as `dead`, as in gevent. */
  ready(): boolean {
    return this.#state === 'dead'
  }

  /** Finished without an exception (exiting with GreenletExit counts as success). */
  successful(): boolean {
    this.#observed = true
    return this.#state === 'dead' && !this.#failed
  }

  /** The return value once it has finished successfully, else `undefined`. */
  get value(): T | undefined {
    return this.#value
  }

  /** The exception it failed with, else `undefined`. */
  get exception(): unknown {
    this.#observed = true
    return this.#exception
  }

  /** Aborted, with the kill exception as reason, as soon as it is killed. */
  get signal(): AbortSignal {
    this.#controller ??= new AbortController()
    if (this.#killedWith !== NO_INTERRUPT && !this.#controller.signal.aborted) this.#controller.abort(this.#killedWith)
    return this.#controller.signal
  }

  /** Schedules the greenlet to run on a later turn of the hub. No effect if already started. */
  start(): this {
    if (this.#state === 'new') this.#schedule(0)
    return this
  }

  /** Schedules the greenlet to run after `ms` milliseconds. No effect if already started. */
  startLater(ms: number): this {
    const delay = checkMs('ms', ms, false)
    if (this.#state === 'new') this.#schedule(delay)
    return this
  }

  #schedule(delay: number): void {
    this.#state = 'scheduled'
    hub.resumables.set(this.id, this)
    hub.command(wire.SPAWN, this.id, delay)
  }

  /**
   * Resolves once the greenlet has finished (`true`) or after `timeoutMs`
   * (`false`). Never rejects for the greenlet's own failure; rejects only if
   * the waiting greenlet is itself killed, or for bad arguments.
   */
  join(timeoutMs?: number): Promise<boolean> {
    return rejecting(async () => {
      const ms = checkMs('timeoutMs', timeoutMs, true)
      if (this.#state === 'dead') return true
      if (getcurrent() === this) throw new Error(`${this} cannot join itself: it would wait forever`)
      await suspend((waiter) => issueJoinAll(waiter, [this], 1, false, ms))
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
      this.#observed = true
      if (this.#state !== 'dead') {
        if (o.block === false) throw new Timeout(0, `${this} has not finished`)
        await this.join(ms < 0 ? undefined : ms)
        if (!this.dead) throw new Timeout(ms)
      }
      if (this.#failed) throw this.#exception
      return this.#value as T
    })
  }

  /**
   * Raises `exception` in the greenlet at its current or next wait, and by
   * default waits for it to die. Never rejects because the greenlet is dead
   * or fails. A greenlet that has not started yet dies without running.
   * Killing the current greenlet rejects at once with `exception`.
   */
  kill(exception: unknown = new GreenletExit(), options?: KillOptions): Promise<void> {
    return rejecting(async () => {
      const o = checkOptions('options', options)
      const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
      if (this.#state === 'dead') return
      this.#killedWith = exception
      this.#controller?.abort(exception)
      if (this.#state === 'new') {
        this.#finish(undefined, exception, true)
        return
      }
      if (getcurrent() === this) throw exception
      this.#raise(exception, true)
      if (o.block !== false) await this.join(ms < 0 ? undefined : ms)
    })
  }

  /** Calls `callback(this)` once the greenlet has finished (soon, if it already has). */
  link(callback: (g: Greenlet<T>) => void): void {
    this.#addLink(callback, 'any')
  }

  /** Like `link`, only if it finishes successfully. */
  linkValue(callback: (g: Greenlet<T>) => void): void {
    this.#addLink(callback, 'value')
  }

  /** Like `link`, only if it fails. */
  linkException(callback: (g: Greenlet<T>) => void): void {
    this.#addLink(callback, 'exception')
  }

  /** Removes every registration of `callback`. */
  unlink(callback: (g: Greenlet<T>) => void): void {
    if (this.#links) this.#links = this.#links.filter((l) => l.callback !== callback)
  }

  /**
   * @internal Like `link`, but does not count as looking at the outcome
   * (gevent's rawlink): an unobserved failure is still reported.
   */
  _rawlink(callback: (g: Greenlet<T>) => void): void {
    this.#pushLink(callback, 'any')
  }

  #addLink(callback: (g: Greenlet<T>) => void, kind: LinkKind): void {
    checkFunction('callback', callback)
    this.#observed = true
    this.#pushLink(callback, kind)
  }

  #pushLink(callback: (g: Greenlet<T>) => void, kind: LinkKind): void {
    ;(this.#links ??= []).push({ callback, kind })
    if (this.#state === 'dead') this.#runLinks()
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
  switch(...args: unknown[]): Promise<unknown> {
    // Hot path (W2): try/catch rather than a `rejecting` closure per switch.
    try {
      const value = args.length <= 1 ? args[0] : args
      const caller = getcurrent() ?? Greenlet.#mainGreenlet()
      if (this === caller) return Promise.resolve(value)
      this.#checkSwitchTarget(caller)
      const suspended = caller.#parkInSwitch()
      if (this.#state === 'new') this.#startBySwitch(args)
      else this.#resumeFromSwitch({ value, failed: false })
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
   * wait and the returned Promise resolves at once.
   */
  throw(err: unknown = new GreenletExit()): Promise<unknown> {
    return rejecting(() => {
      const caller = getcurrent() ?? Greenlet.#mainGreenlet()
      if (this === caller) return Promise.reject(err)
      if (this.#state === 'dead') throw new Error(`cannot throw into ${this}: it has finished`)
      if (this.#state === 'new') {
        this.#finish(undefined, err, true)
        this.#observed = true
        return this.#failed ? Promise.reject(err) : Promise.resolve(undefined)
      }
      if (!this.#inSwitch) {
        this.#raise(err, false)
        return Promise.resolve(undefined)
      }
      this.#checkSwitchTarget(caller)
      const suspended = caller.#parkInSwitch()
      this.#resumeFromSwitch({ error: err, failed: true })
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
      main.#state = 'running'
      Greenlet.#main = main
      return main
    }
    return Greenlet.#main
  }

  #checkSwitchTarget(caller: Greenlet): void {
    if (this.#state === 'dead') throw new Error(`cannot switch to ${this}: it has finished`)
    if (this.#state === 'scheduled' || (this.#state === 'running' && !this.#inSwitch)) {
      throw new Error(`cannot switch to ${this}: it is not suspended in switch() (it is running or waiting for the hub)`)
    }
    if (caller._waiting) {
      throw new Error(`cannot switch away from ${caller}: it is already suspended in another wait`)
    }
  }

  #parkInSwitch(): Promise<unknown> {
    this._waiting = true
    this.#inSwitch = true
    // Live greenlets are registered already; the main greenlet is not.
    if (Greenlet._isMain(this)) hub.resumables.set(this.id, this)
    hub.command(wire.PARK_SWITCH, this.id)
    return new Promise<unknown>((resolve, reject) => {
      this._resolve = resolve
      this._reject = reject
    })
  }

  #startBySwitch(args: unknown[]): void {
    // As in greenlet, the parent is the creator, not the first switcher.
    const parent = this.parent ?? Greenlet.#mainGreenlet()
    this.#switchParent = parent
    hub.resumables.set(this.id, this)
    hub.command(wire.RESUMED, this.id, parent.id)
    this.#run(args.length > 0 ? args : this.#args)
  }

  #resumeFromSwitch(transfer: Transfer): void {
    hub.command(wire.RESUMED, this.id, 0)
    this.#settleSwitch(transfer)
  }

  #settleSwitch(transfer: Transfer | undefined): void {
    const resolve = this._resolve
    const reject = this._reject
    this.#clearWait()
    this.#inSwitch = false
    this.#transfer = undefined
    if (transfer?.failed) reject?.(transfer.error)
    else resolve?.(transfer?.value as number)
  }

  #clearWait(): void {
    this._waiting = false
    this._resolve = undefined
    this._reject = undefined
  }

  /** @internal Called by the hub with the outcome of this greenlet's wait. */
  _resume(outcome: number): void {
    if (outcome === wire.START) {
      if (this.#state === 'scheduled') this.#run(this.#args)
      return
    }
    if (this.#state === 'scheduled') {
      // Interrupted before it ran: it dies without running.
      if (outcome === wire.INTERRUPTED) this.#finish(undefined, this.#takeInterrupt(), true)
      return
    }
    if (outcome === wire.INTERRUPTED) {
      const reject = this._reject
      this.#clearWait()
      this.#inSwitch = false
      this.#transfer = undefined
      reject?.(this.#takeInterrupt())
    } else if (this.#inSwitch) {
      this.#settleSwitch(this.#transfer)
    } else {
      const resolve = this._resolve
      this.#clearWait()
      resolve?.(outcome)
    }
  }

  /** Delivers `exception` at the current or next wait of this greenlet and of its concurrent waits. */
  #raise(exception: unknown, isKill: boolean): void {
    if (isKill || this.#interrupt === NO_INTERRUPT) this.#interrupt = exception
    hub.command(wire.INTERRUPT, this.id)
    if (this._extraWaits) {
      for (const wait of this._extraWaits) {
        wait.exception = exception
        hub.command(wire.INTERRUPT, wait.id)
      }
    }
  }

  /** @internal Raises `exception` at this greenlet's current or next wait (Timeout). */
  _raise(exception: unknown): void {
    if (this.#state !== 'dead') this.#raise(exception, false)
  }

  #takeInterrupt(): unknown {
    const exception = this.#interrupt === NO_INTERRUPT ? new GreenletExit() : this.#interrupt
    this.#interrupt = NO_INTERRUPT
    return exception
  }

  #run(args: unknown[]): void {
    this.#state = 'running'
    currentStorage.run(this, runBody, this, args)
  }

  /** @internal */
  async _body(args: unknown[]): Promise<void> {
    let value: T
    try {
      value = (await this.#fn(...args)) as T
    } catch (err) {
      this.#finish(undefined, err, true)
      return
    }
    this.#finish(value, undefined, false)
  }

  #finish(value: T | undefined, err: unknown, failed: boolean): void {
    if (failed && err instanceof GreenletExit) {
      failed = false
      value = undefined
    }
    this.#state = 'dead'
    this.#value = value
    this.#exception = failed ? err : undefined
    this.#failed = failed
    this.#clearWait()
    hub.resumables.delete(this.id)
    const parent = this.#switchParent
    if (parent !== undefined && parent.#inSwitch) {
      // The hub resumes the parent when it processes DIE.
      parent.#transfer = failed ? { error: err, failed: true } : { value, failed: false }
      this.#observed = true
    }
    hub.command(wire.DIE, this.id, failed ? 1 : 0)
    if (this.#links) this.#runLinks()
    if (failed) setImmediate(reportIfUnobserved, this)
  }

  #runLinks(): void {
    queueMicrotask(() => {
      const links = this.#links
      this.#links = undefined
      if (links) callLinks(this, links, this.#failed)
    })
  }

  /** @internal */
  _reportIfUnobserved(): void {
    // Like gevent's hub, which prints failures: here only those nobody looked at.
    if (!this.#observed) console.error(`greenthread: ${this} failed:`, this.#exception)
  }

  /** Like gevent's repr: name, id and the call it runs, e.g. `<Greenlet "Greenlet-1" id=1: f(5)>`. */
  toString(): string {
    const args = this.#args.map((a) => (typeof a === 'string' ? JSON.stringify(a) : typeof a === 'function' ? a.name || 'fn' : String(a)))
    return `<Greenlet "${this.name}" id=${this.id}: ${this.#fn.name || 'anonymous'}(${args.join(', ')})>`
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString()
  }
}

function runBody(g: Greenlet, args: unknown[]): Promise<void> {
  return g._body(args)
}

function reportIfUnobserved(g: Greenlet): void {
  g._reportIfUnobserved()
}

/** Creates a greenlet and schedules it to run on a later turn of the hub. */
export function spawn<R>(fn: (...args: any[]) => R | PromiseLike<R>, ...args: unknown[]): Greenlet<R> {
  return new Greenlet<R>(fn, ...args).start()
}

/** Creates a greenlet that starts after `ms` milliseconds. */
export function spawnLater<R>(ms: number, fn: (...args: any[]) => R | PromiseLike<R>, ...args: unknown[]): Greenlet<R> {
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
export function joinall<T>(greenlets: Iterable<Greenlet<T>>, options?: JoinAllOptions): Promise<Greenlet<T>[]> {
  return rejecting(async () => {
    const list = checkGreenletList('greenlets', greenlets, isGreenlet) as Greenlet<T>[]
    const { ms, raiseError, wanted } = planJoinAll(list.length, options)
    const current = getcurrent()
    const firstFailure = () => (raiseError ? list.find((g) => g.dead && !g.successful()) : undefined)
    let failure = firstFailure()
    if (failure) throw failure.exception
    const pending = [...new Set(list.filter((g) => !g.dead))]
    const missing = wanted - (list.length - pending.length)
    if (missing > 0) {
      if (current !== null && pending.includes(current as Greenlet<T>)) {
        throw new Error(`joinall() in ${current} waits for ${current} itself: it would wait forever`)
      }
      await suspend((waiter) => issueJoinAll(waiter, pending, missing, raiseError, ms))
    }
    failure = firstFailure()
    if (failure) throw failure.exception
    return list.filter((g) => g.dead)
  })
}

/** Kills every greenlet with `options.exception` and by default waits for all of them to die. */
export function killall(greenlets: Iterable<Greenlet>, options?: KillAllOptions): Promise<void> {
  return rejecting(async () => {
    const list = checkGreenletList('greenlets', greenlets, isGreenlet)
    const o = checkOptions('options', options)
    const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    const exception = 'exception' in o ? o.exception : new GreenletExit()
    const current = getcurrent()
    await Promise.all(list.filter((g) => g !== current).map((g) => g.kill(exception, { block: false })))
    if (o.block !== false) await joinall(list.filter((g) => g !== current), { timeoutMs: ms < 0 ? undefined : ms })
    if (current !== null && list.includes(current)) await current.kill(exception)
  })
}

