/**
 * Events for greenlets: `Event`, a flag to wait on, and `AsyncResult`, a
 * value or exception delivered once to any number of waiters.
 *
 * `Event.wait()` resolves `true` once the flag is set (at once if it is) and
 * `false` if `timeoutMs` expires first (at the next hub turn for 0). `set()`
 * wakes every waiter, in the order they began waiting, and each of them
 * resolves `true` even if the flag is cleared before it runs.
 * `AsyncResult.get()` resolves with the value or rejects with the exception
 * once one is set, or rejects with `Timeout`. Killing a greenlet that waits
 * rejects its wait at once with the kill exception.
 *
 * `EventBase` and `AsyncResultBase` hold the logic of both modes; this
 * module's classes wait with Promises, those of `greenthread/sync` block.
 */
import { type Blocking, TIMED_OUT, WaitList, drive, waitSignal } from './_waiters'
import { checkMs, checkOptions } from './errors'
import { Timeout } from './timeout'

export interface WaitOptions {
  /** Stop waiting (resolve `false`) after this many milliseconds. @default no limit */
  timeoutMs?: number
  /** Stop waiting once it aborts: the wait fails with its reason (at once if it has aborted). */
  signal?: AbortSignal
}

export interface AsyncResultGetOptions {
  /** Wait for the result; with `false`, reject with `Timeout` at once if it is not ready. @default true */
  block?: boolean
  /** Reject with `Timeout` if no result is set within this many milliseconds. @default no limit */
  timeoutMs?: number
  /** Stop waiting once it aborts: the wait fails with its reason (at once if it has aborted). */
  signal?: AbortSignal
}

/** What `AsyncResult.callback` copies a result from: a finished Greenlet, or another AsyncResult. */
export interface ResultSource<T> {
  successful(): boolean
  readonly value: T | undefined
  readonly exception: unknown
}

function waitMs(options: WaitOptions | undefined): number {
  return checkMs('options.timeoutMs', checkOptions('options', options).timeoutMs, true)
}

/** A flag that greenlets wait for. Starts cleared. The part of `Event` both modes share. */
export class EventBase {
  #flag = false
  readonly #waiters = new WaitList<true>()

  isSet(): boolean {
    return this.#flag
  }

  /** Sets the flag and wakes every waiter. No effect if it is already set. */
  set(): void {
    if (this.#flag) return
    this.#flag = true
    this.#waiters.handOffAll(true)
  }

  /** Clears the flag: later `wait()` calls block until the next `set()`. */
  clear(): void {
    this.#flag = false
  }

  /** @internal */
  *_wait(options: WaitOptions | undefined): Blocking<boolean> {
    const ms = waitMs(options)
    const signal = waitSignal(options)
    if (this.#flag) return true
    return (yield this.#waiters.request(ms, undefined, signal)) !== TIMED_OUT
  }
}

/** A flag that greenlets wait for. Starts cleared. */
export class Event extends EventBase {
  /** Resolves `true` once the flag is set (at once if it is), `false` on timeout. */
  wait(options?: WaitOptions): Promise<boolean> {
    return drive(this._wait(options))
  }
}

const PENDING = 0
const VALUE = 1
const EXCEPTION = 2

/** The part of `AsyncResult` both modes share. */
export abstract class AsyncResultBase<T = unknown> {
  #state = PENDING
  #value: T | undefined = undefined
  #exception: unknown = undefined
  readonly #waiters = new WaitList<true>()

  /**
   * Copies the result of a finished greenlet (or of anything with
   * `successful()`, `value` and `exception`) into this AsyncResult. A bound
   * function, so it can be a link callback: `g.link(result.callback)`.
   */
  readonly callback = (source: ResultSource<T>): void => {
    if (source.successful()) this.set(source.value as T)
    else this.setException(source.exception)
  }

  /** Stores `value` and wakes every waiter. */
  set(value: T): void {
    this.#settle(VALUE, value, undefined)
  }

  /** Stores `exception`, which `get()` rejects with, and wakes every waiter. */
  setException(exception: unknown): void {
    this.#settle(EXCEPTION, undefined, exception)
  }

  #settle(state: number, value: T | undefined, exception: unknown): void {
    this.#state = state
    this.#value = value
    this.#exception = exception
    this.#waiters.handOffAll(true)
  }

  /** A value or an exception has been set. */
  ready(): boolean {
    return this.#state !== PENDING
  }

  /** A value (not an exception) has been set. */
  successful(): boolean {
    return this.#state === VALUE
  }

  /** The value once set, else `undefined`. */
  get value(): T | undefined {
    return this.#value
  }

  /** The exception once set, else `undefined`. */
  get exception(): unknown {
    return this.#exception
  }

  /** @internal The mode's Timeout. */
  protected abstract _timeout(ms: number, message?: string): Error

  /** @internal */
  *_get(options: AsyncResultGetOptions | undefined): Blocking<T> {
    const o = checkOptions('options', options)
    const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    const signal = waitSignal(o)
    if (this.#state === PENDING) {
      if (o.block === false) throw this._timeout(0, 'AsyncResult is not ready')
      if ((yield this.#waiters.request(ms, undefined, signal)) === TIMED_OUT) throw this._timeout(ms)
    }
    if (this.#state === EXCEPTION) throw this.#exception
    return this.#value as T
  }

  /** @internal */
  *_wait(options: WaitOptions | undefined): Blocking<boolean> {
    const ms = waitMs(options)
    const signal = waitSignal(options)
    if (this.#state !== PENDING) return true
    return (yield this.#waiters.request(ms, undefined, signal)) !== TIMED_OUT
  }
}

/**
 * A result that arrives once: `set(value)` or `setException(err)` wakes every
 * waiter. As in gevent, a later `set`/`setException` replaces the result.
 */
export class AsyncResult<T = unknown> extends AsyncResultBase<T> {
  /**
   * Resolves with the value, or rejects with the exception, waiting for one
   * to be set if needed. Rejects with `Timeout` if none is set in time.
   */
  get(options?: AsyncResultGetOptions): Promise<T> {
    return drive(this._get(options))
  }

  /** Resolves `true` once a result is set (at once if it is), `false` on timeout. Never rejects for the result's exception. */
  wait(options?: WaitOptions): Promise<boolean> {
    return drive(this._wait(options))
  }

  /** @internal */
  protected _timeout(ms: number, message?: string): Error {
    return new Timeout(ms, message)
  }
}
