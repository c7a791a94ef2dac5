/**
 * Locks and semaphores for greenlets: `Semaphore`, `BoundedSemaphore`,
 * `Lock` and the reentrant `RLock`.
 *
 * `acquire()` resolves `true` once acquired, or `false` when `timeoutMs`
 * expires (at the next hub turn for 0), or at once with `blocking: false`
 * if it cannot acquire without waiting. Waiters are served in FIFO order: a
 * release hands the permit straight to the first of them, so a later caller
 * cannot barge in. Killing a waiting greenlet rejects its acquire at once
 * with the kill exception; a permit handed to it at that very turn passes on
 * to the next waiter. `guard()` acquires and returns a Disposable that
 * releases, for `using _ = await lock.guard()`.
 *
 * `SemaphoreBase` and `RLockBase` hold the logic of both modes; this
 * module's locks wait with Promises, those of `greenthread/sync` block.
 */
import { type Blocking, TIMED_OUT, WaitList, drive, waitSignal } from './_waiters'
import { checkFlag, checkMs, checkOptions, invalidType } from './errors'
import { getcurrent } from './greenlet'
import { Timeout } from './timeout'

export interface AcquireOptions {
  /** Wait for the lock; with `false`, resolve `false` at once if it is not free. @default true */
  blocking?: boolean
  /** Give up (resolve `false`) after this many milliseconds. @default no limit */
  timeoutMs?: number
  /** Stop waiting once it aborts: the acquire fails with its reason (at once if it has aborted). */
  signal?: AbortSignal
}

export interface GuardOptions {
  /** Reject with `Timeout` if not acquired within this many milliseconds. @default no limit */
  timeoutMs?: number
  /** Stop waiting once it aborts: the guard fails with its reason (at once if it has aborted). */
  signal?: AbortSignal
}

/** `timeoutMs`, or -1 for none; null when `blocking: false`. */
function acquireMs(options: AcquireOptions | undefined): number | null {
  const o = checkOptions('options', options)
  const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
  return checkFlag('options.blocking', o.blocking, true) ? ms : null
}

/** What a lock's `guard()` shares: acquiring with a timeout, releasing once. */
interface Guarded {
  _acquire(options: AcquireOptions | undefined): Blocking<boolean>
  _timeout(ms: number): Error
  release(): void
}

/** Acquires `lock` and returns a Disposable that releases it once; throws the mode's Timeout on timeout. */
function* guardOf(lock: Guarded, options: GuardOptions | undefined): Blocking<Disposable> {
  const o = checkOptions('options', options)
  const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
  if (!(yield* lock._acquire({ timeoutMs: o.timeoutMs as number | undefined, signal: o.signal as AbortSignal | undefined }))) {
    throw lock._timeout(ms)
  }
  let held = true
  return {
    [Symbol.dispose]() {
      if (!held) return
      held = false
      lock.release()
    },
  }
}

/** The part of the semaphores that both modes share. */
export abstract class SemaphoreBase {
  #counter: number
  /**
   * Permits handed to waiters that have not run yet: still counted against
   * the bound, as gevent counts them until the woken waiter takes them.
   */
  #handed = 0
  /** @internal Most permits it may hold: releasing past it throws (BoundedSemaphore). */
  protected _bound = Infinity
  // A permit handed to an interrupted waiter is released again.
  readonly #waiters = new WaitList<true>(() => {
    this.#handed--
    this.#release()
  })

  /** @param value initial number of permits. @default 1 */
  constructor(value: number = 1) {
    if (typeof value !== 'number') throw invalidType('value', 'a non-negative integer', value)
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`value must be a non-negative integer, got ${value}`)
    this.#counter = value
  }

  /** @internal Permits handed to woken waiters that have not taken them yet. */
  get _handedPending(): number {
    return this.#handed
  }

  /** Free permits. */
  get value(): number {
    return this.#counter
  }

  /** No permit is free: `acquire()` would wait. */
  locked(): boolean {
    return this.#counter === 0
  }

  /** Takes a permit if one is free, without waiting; returns whether it did. */
  tryAcquire(): boolean {
    // Waiters exist only while the counter is 0, so this is no barging.
    if (this.#counter === 0) return false
    this.#counter--
    return true
  }

  /**
   * Returns a permit, handing it to the longest waiter if there is one.
   * A BoundedSemaphore (or Lock) throws if released more often than acquired.
   */
  release(): void {
    if (this.#counter + this.#handed >= this._bound) throw new Error(`${this.constructor.name} released more times than it was acquired`)
    this.#release()
  }

  #release(): void {
    if (this.#waiters.handOff(true) === undefined) this.#counter++
    else this.#handed++
  }

  /** @internal */
  *_acquire(options: AcquireOptions | undefined): Blocking<boolean> {
    const ms = acquireMs(options)
    const signal = waitSignal(options)
    if (this.tryAcquire()) return true
    if (ms === null) return false
    if ((yield this.#waiters.request(ms, undefined, signal)) === TIMED_OUT) return false
    this.#handed--
    return true
  }

  /** @internal */
  _guard(options: GuardOptions | undefined): Blocking<Disposable> {
    return guardOf(this, options)
  }

  /** @internal The mode's Timeout. */
  abstract _timeout(ms: number): Error
}

/** A counter of permits: `acquire()` takes one, waiting while there is none; `release()` returns one. */
export class Semaphore extends SemaphoreBase {
  /** Resolves `true` once a permit is taken; `false` on timeout, or at once with `blocking: false` if none is free. */
  acquire(options?: AcquireOptions): Promise<boolean> {
    return drive(this._acquire(options))
  }

  /** Acquires and resolves with a Disposable that releases; rejects with `Timeout` on timeout. */
  guard(options?: GuardOptions): Promise<Disposable> {
    return drive(this._guard(options))
  }

  /** @internal */
  _timeout(ms: number): Error {
    return new Timeout(ms)
  }
}

/** A Semaphore that throws if released more often than acquired (beyond its initial value). */
export class BoundedSemaphore extends Semaphore {
  /** @param value initial and maximum number of permits. @default 1 */
  constructor(value: number = 1) {
    super(value)
    this._bound = value
  }
}

/** A mutual-exclusion lock: a BoundedSemaphore of 1. Any greenlet may release it. */
export class Lock extends BoundedSemaphore {
  constructor() {
    super(1)
  }
}

/** The owner of an RLock taken by code outside any greenlet: that code counts as one owner. */
const OUTSIDE_GREENLETS: unique symbol = Symbol('outside greenlets')

/** The part of `RLock` that both modes share. */
export abstract class RLockBase {
  #owner: object | undefined = undefined
  #count = 0
  // Ownership handed to an interrupted waiter is released again.
  readonly #waiters = new WaitList<true, object>(() => this.#release())

  /** Held by some greenlet. */
  locked(): boolean {
    return this.#owner !== undefined
  }

  /** Releases one level; the last one hands the lock to the longest waiter. Throws unless the current greenlet holds it. */
  release(): void {
    if (this.#owner === undefined || this.#owner !== this.#currentOwner()) {
      throw new Error('cannot release an RLock the current greenlet does not hold')
    }
    this.#release()
  }

  #release(): void {
    if (--this.#count > 0) return
    const next = this.#waiters.handOff(true)
    this.#owner = next?.payload
    this.#count = next === undefined ? 0 : 1
  }

  #currentOwner(): object {
    return this._getcurrent() ?? (OUTSIDE_GREENLETS as unknown as object)
  }

  /** Acquires it if it is free or the current greenlet holds it, without waiting; returns whether it did. */
  tryAcquire(): boolean {
    return this.#tryAcquireFor(this.#currentOwner())
  }

  #tryAcquireFor(me: object): boolean {
    if (this.#owner === me) {
      this.#count++
      return true
    }
    if (this.#owner !== undefined) return false
    this.#owner = me
    this.#count = 1
    return true
  }

  /** @internal */
  *_acquire(options: AcquireOptions | undefined): Blocking<boolean> {
    const ms = acquireMs(options)
    const signal = waitSignal(options)
    const me = this.#currentOwner()
    if (this.#tryAcquireFor(me)) return true
    if (ms === null) return false
    return (yield this.#waiters.request(ms, me, signal)) !== TIMED_OUT
  }

  /** @internal */
  _guard(options: GuardOptions | undefined): Blocking<Disposable> {
    return guardOf(this, options)
  }

  /** @internal The mode's current greenlet: who owns what this code acquires. */
  protected abstract _getcurrent(): object | null

  /** @internal The mode's Timeout. */
  abstract _timeout(ms: number): Error
}

/**
 * A reentrant lock: the greenlet that holds it may acquire it again, and
 * must release it as many times. Only the holder may release it.
 */
export class RLock extends RLockBase {
  /** Resolves `true` once acquired; `false` on timeout, or at once with `blocking: false` if another greenlet holds it. */
  acquire(options?: AcquireOptions): Promise<boolean> {
    return drive(this._acquire(options))
  }

  /** Acquires and resolves with a Disposable that releases; rejects with `Timeout` on timeout. */
  guard(options?: GuardOptions): Promise<Disposable> {
    return drive(this._guard(options))
  }

  /** @internal */
  protected _getcurrent(): object | null {
    return getcurrent()
  }

  /** @internal */
  _timeout(ms: number): Error {
    return new Timeout(ms)
  }
}
