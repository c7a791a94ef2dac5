/**
 * Events for greenlets: `Event`, a flag to wait on, and `AsyncResult`, a
 * value or exception delivered once to any number of waiters.
 *
 * `Event.wait()` resolves `true` once the flag is set (at once if it is) and
 * `false` if `timeoutMs` expires first (at the next hub turn for 0). `set()`
 * wakes every waiter, in the order they began waiting, and each of them
 * resolves `true` even if the flag is cleared before it runs. A `wait()`
 * that starts while waiters woken by `set()` have not run yet resumes after
 * them, as in gevent (its test__event.py `test_wait_while_notifying`).
 * `AsyncResult.get()` resolves with the value or rejects with the exception
 * once one is set, or rejects with `Timeout`. Killing a greenlet that waits
 * rejects its wait at once with the kill exception.
 *
 * `EventBase` and `AsyncResultBase` hold the logic of both modes; this
 * module's classes wait with Promises, those of `greenthread/sync` block.
 */
import { type Blocking, TIMED_OUT, WaitList, drive, waitSignal } from './_waiters'
import { checkFlag, checkMs, checkOptions, invalidType } from './errors'
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

/** @internal Callbacks of `wait`/`iwait` (src/wait.ts), called when an event becomes ready. */
class Links {
  #callbacks: Set<() => void> | undefined = undefined

  add(callback: () => void): void {
    ;(this.#callbacks ??= new Set()).add(callback)
  }

  delete(callback: () => void): void {
    this.#callbacks?.delete(callback)
  }

  /** Calls every callback (they only record readiness: none throws). */
  notify(): void {
    if (this.#callbacks === undefined) return
    for (const callback of [...this.#callbacks]) callback()
  }
}

/**
 * The waiters of something that becomes ready (Event, AsyncResult), woken in
 * FIFO order; as gevent's AbstractLinkable (test__event.py
 * `test_wait_while_notifying`), a wait that starts while they are still being
 * notified resumes after them, without a hub turn: the last of them to run
 * wakes it.
 */
class Notified {
  readonly #waiters = new WaitList<true>()
  /** Waiters woken by `notifyAll()` that have not run yet. */
  #notifying = 0
  /** Waits that came while `#notifying`: they resume after those waiters. */
  readonly #late = new WaitList<true>()

  /** Wakes every waiter. */
  notifyAll(): void {
    this.#notifying += this.#waiters.length
    this.#waiters.handOffAll(true)
  }

  /**
   * Waits until notified (`ready`: already so); true, or false on timeout.
   * `mayBlock` false (sync-mode code outside greenlets) returns at once when ready.
   */
  *wait(ready: boolean, ms: number, signal: AbortSignal | undefined, mayBlock: boolean): Blocking<boolean> {
    if (ready) {
      if (this.#notifying > 0 && mayBlock) yield this.#late.request(-1, undefined, signal)
      return true
    }
    const w = this.#waiters.request(ms, undefined, signal)
    try {
      return (yield w) !== TIMED_OUT
    } finally {
      // Handed by notifyAll(), it has run now (or its interrupt is being raised).
      if (w.handed && --this.#notifying === 0) this.#late.handOffAll(true)
    }
  }
}

/** A flag that greenlets wait for. Starts cleared. The part of `Event` both modes share. */
export class EventBase {
  #flag = false
  readonly #links = new Links()
  readonly #notified = new Notified()

  isSet(): boolean {
    return this.#flag
  }

  /** Sets the flag and wakes every waiter, in FIFO order. No effect if it is already set. */
  set(): void {
    if (this.#flag) return
    this.#flag = true
    this.#notified.notifyAll()
    this.#links.notify()
  }

  /** @internal `callback()` at every `set()` that sets the flag, until `_unlink` (gevent's rawlink). */
  _rawlink(callback: () => void): void {
    this.#links.add(callback)
  }

  /** @internal */
  _unlink(callback: () => void): void {
    this.#links.delete(callback)
  }

  /** Clears the flag: later `wait()` calls block until the next `set()`. */
  clear(): void {
    this.#flag = false
  }

  /**
   * @internal
   * @param mayBlock the caller can wait (false for sync-mode code outside
   *   greenlets, which then returns at once on a set flag).
   */
  *_wait(options: WaitOptions | undefined, mayBlock = true): Blocking<boolean> {
    return yield* this.#notified.wait(this.#flag, waitMs(options), waitSignal(options), mayBlock)
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
  readonly #notified = new Notified()
  readonly #links = new Links()

  /**
   * Copies the result of a finished greenlet (or of anything with
   * `successful()`, `value` and `exception`) into this AsyncResult. A bound
   * function, so it can be a link callback: `g.link(result.callback)`.
   */
  readonly callback = (source: ResultSource<T>): void => {
    if (typeof (source as Partial<ResultSource<T>> | null)?.successful !== 'function') {
      throw invalidType('source', 'a finished Greenlet or AsyncResult (with successful(), value and exception)', source)
    }
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
    this.#notified.notifyAll()
    this.#links.notify()
  }

  /** @internal `callback()` at every `set`/`setException`, until `_unlink` (gevent's rawlink). */
  _rawlink(callback: () => void): void {
    this.#links.add(callback)
  }

  /** @internal */
  _unlink(callback: () => void): void {
    this.#links.delete(callback)
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

  /**
   * @internal
   * @param mayBlock as Event's `_wait`.
   */
  *_get(options: AsyncResultGetOptions | undefined, mayBlock = true): Blocking<T> {
    const o = checkOptions('options', options)
    const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    const signal = waitSignal(o)
    const block = checkFlag('options.block', o.block, true)
    if (this.#state === PENDING && !block) throw this._timeout(0, 'AsyncResult is not ready')
    if (!(yield* this.#notified.wait(this.#state !== PENDING, ms, signal, mayBlock))) throw this._timeout(ms)
    if (this.#state === EXCEPTION) throw this.#exception
    return this.#value as T
  }

  /**
   * @internal
   * @param mayBlock as Event's `_wait`.
   */
  *_wait(options: WaitOptions | undefined, mayBlock = true): Blocking<boolean> {
    return yield* this.#notified.wait(this.#state !== PENDING, waitMs(options), waitSignal(options), mayBlock)
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
