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
 */
import { checkMs, checkOptions, invalidType } from './errors'
import { type Greenlet, getcurrent } from './greenlet'
import { TIMED_OUT, WaitList } from './_waiters'
import { Timeout } from './timeout'

export interface AcquireOptions {
  /** Wait for the lock; with `false`, resolve `false` at once if it is not free. @default true */
  blocking?: boolean
  /** Give up (resolve `false`) after this many milliseconds. @default no limit */
  timeoutMs?: number
}

export interface GuardOptions {
  /** Reject with `Timeout` if not acquired within this many milliseconds. @default no limit */
  timeoutMs?: number
}

interface Acquirable {
  acquire(options?: AcquireOptions): Promise<boolean>
  release(): void
}

/** Acquires `lock` and returns a Disposable that releases it once. */
async function guardOf(lock: Acquirable, options: GuardOptions | undefined): Promise<Disposable> {
  const o = checkOptions('options', options)
  const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
  if (!(await lock.acquire({ timeoutMs: o.timeoutMs as number | undefined }))) throw new Timeout(ms)
  let held = true
  return {
    [Symbol.dispose]() {
      if (!held) return
      held = false
      lock.release()
    },
  }
}

/** `timeoutMs`, or -1 for none; null when `blocking: false`. */
function acquireMs(options: AcquireOptions | undefined): number | null {
  const o = checkOptions('options', options)
  const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
  return o.blocking === false ? null : ms
}

/** A counter of permits: `acquire()` takes one, waiting while there is none; `release()` returns one. */
export class Semaphore {
  #counter: number
  // A permit handed to an interrupted waiter is released again.
  readonly #waiters = new WaitList<true>(() => this.#release())

  /** @param value initial number of permits. @default 1 */
  constructor(value: number = 1) {
    if (typeof value !== 'number') throw invalidType('value', 'a non-negative integer', value)
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`value must be a non-negative integer, got ${value}`)
    this.#counter = value
  }

  /** Free permits. */
  get value(): number {
    return this.#counter
  }

  /** No permit is free: `acquire()` would wait. */
  locked(): boolean {
    return this.#counter === 0
  }

  async acquire(options?: AcquireOptions): Promise<boolean> {
    const ms = acquireMs(options)
    if (this.tryAcquire()) return true
    if (ms === null) return false
    return (await this.#waiters.wait(ms)) !== TIMED_OUT
  }

  /** Takes a permit if one is free, synchronously; returns whether it did. */
  tryAcquire(): boolean {
    // Waiters exist only while the counter is 0, so this is no barging.
    if (this.#counter === 0) return false
    this.#counter--
    return true
  }

  /** Returns a permit, handing it to the longest waiter if there is one. */
  release(): void {
    this.#release()
  }

  #release(): void {
    if (this.#waiters.handOff(true) === undefined) this.#counter++
  }

  /** Acquires and resolves with a Disposable that releases; rejects with `Timeout` on timeout. */
  guard(options?: GuardOptions): Promise<Disposable> {
    return guardOf(this, options)
  }
}

/** A Semaphore that throws if released more often than acquired (beyond its initial value). */
export class BoundedSemaphore extends Semaphore {
  readonly #bound: number

  /** @param value initial and maximum number of permits. @default 1 */
  constructor(value: number = 1) {
    super(value)
    this.#bound = value
  }

  override release(): void {
    if (this.value >= this.#bound) throw new Error(`${this.constructor.name} released more times than it was acquired`)
    super.release()
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
type Owner = Greenlet | typeof OUTSIDE_GREENLETS

function currentOwner(): Owner {
  return getcurrent() ?? OUTSIDE_GREENLETS
}

/**
 * A reentrant lock: the greenlet that holds it may acquire it again, and
 * must release it as many times. Only the holder may release it.
 */
export class RLock {
  #owner: Owner | undefined = undefined
  #count = 0
  // Ownership handed to an interrupted waiter is released again.
  readonly #waiters = new WaitList<true, Owner>(() => this.#release())

  /** Held by some greenlet. */
  locked(): boolean {
    return this.#owner !== undefined
  }

  async acquire(options?: AcquireOptions): Promise<boolean> {
    const ms = acquireMs(options)
    const me = currentOwner()
    if (this.#owner === me) {
      this.#count++
      return true
    }
    if (this.#owner === undefined) {
      this.#owner = me
      this.#count = 1
      return true
    }
    if (ms === null) return false
    return (await this.#waiters.wait(ms, me)) !== TIMED_OUT
  }

  /** Releases one level; the last one hands the lock to the longest waiter. Throws unless the current greenlet holds it. */
  release(): void {
    if (this.#owner === undefined || this.#owner !== currentOwner()) {
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

  /** Acquires and resolves with a Disposable that releases; rejects with `Timeout` on timeout. */
  guard(options?: GuardOptions): Promise<Disposable> {
    return guardOf(this, options)
  }
}
