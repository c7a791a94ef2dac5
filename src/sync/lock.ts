/**
 * Locks and semaphores for sync greenlets: the async module's (see
 * src/lock.ts, where their logic lives) with `acquire` and `guard` that
 * block the calling greenlet: `using _ = lock.guard()`.
 */
import { type AcquireOptions, type GuardOptions, RLockBase, SemaphoreBase } from '../lock'
import { getcurrent } from './greenlet'
import { Timeout } from './timeout'
import { blockOn } from './waits'

/** A counter of permits: `acquire()` takes one, blocking while there is none; `release()` returns one. */
export class Semaphore extends SemaphoreBase {
  /** Takes a permit and returns `true`; `false` on timeout, or at once with `blocking: false` if none is free. */
  acquire(options?: AcquireOptions): boolean {
    return blockOn(this._acquire(options), 'Semaphore.acquire()')
  }

  /** Acquires and returns a Disposable that releases; throws `Timeout` on timeout. */
  guard(options?: GuardOptions): Disposable {
    return blockOn(this._guard(options), 'Semaphore.guard()')
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

/**
 * A reentrant lock: the greenlet that holds it may acquire it again, and
 * must release it as many times. Only the holder may release it.
 */
export class RLock extends RLockBase {
  /** Acquires and returns `true`; `false` on timeout, or at once with `blocking: false` if another greenlet holds it. */
  acquire(options?: AcquireOptions): boolean {
    return blockOn(this._acquire(options), 'RLock.acquire()')
  }

  /** Acquires and returns a Disposable that releases; throws `Timeout` on timeout. */
  guard(options?: GuardOptions): Disposable {
    return blockOn(this._guard(options), 'RLock.guard()')
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
