/**
 * Futures with Python's `concurrent.futures` semantics: `Future`, `wait`,
 * `asCompleted` and the executor errors.
 *
 * A Future is deliberately not a thenable, so that `asCompleted` can yield
 * the futures themselves and `await` never unwraps one by accident: await
 * `f.result()`. Waits (`result`, `exception`, `wait`, `asCompleted`) are hub
 * waits: inside a greenlet, kill and Timeout interrupt them.
 */
import { checkMs, checkOptions, invalidType, rejecting, safeString } from './errors'
import { Outcome, hub, suspendFresh } from './hub'

/** The future was cancelled: raised by `result()` and `exception()`. */
export class CancelledError extends Error {
  constructor(message = 'the future was cancelled') {
    super(message)
    this.name = 'CancelledError'
  }
}

/** A wait ran out of time. */
export class TimeoutError extends Error {
  constructor(message = 'timed out') {
    super(message)
    this.name = 'TimeoutError'
  }
}

/**
 * The executor can no longer run tasks: a worker died abruptly, an
 * initializer failed, or the process is exiting. Every pending future of the
 * executor fails with it.
 */
export class BrokenExecutor extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BrokenExecutor'
  }
}

export class BrokenThreadPool extends BrokenExecutor {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BrokenThreadPool'
  }
}

export class BrokenProcessPool extends BrokenExecutor {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BrokenProcessPool'
  }
}

export interface ResultOptions {
  /** Reject with TimeoutError if the future is not done within this many milliseconds. @default no limit */
  timeoutMs?: number
}

/** @internal How a future reaches the task behind it. */
export interface FutureOwner {
  /** Cancels the task if it has not started; true on success. */
  _cancelTask(f: Future<any>): boolean
  /** The task has been handed to a worker. */
  _taskRunning(f: Future<any>): boolean
  /** The future settled (any way): called once, before its waiters and callbacks. */
  _taskSettled?(f: Future<any>): void
}

type State = 'pending' | 'cancelled' | 'finished'

/** A Future was set in a state that does not allow it (concurrent.futures' InvalidStateError). */
export class InvalidStateError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'InvalidStateError'
  }
}

/**
 * The eventual result of a task submitted to an executor; or, made with
 * `new Future()`, one that user code settles (`setRunningOrNotifyCancel`,
 * `setResult`, `setException`), as concurrent.futures allows for executor
 * implementers and tests. Either kind works with `wait`, `asCompleted` and
 * done callbacks.
 */
export class Future<T = unknown> {
  #state: State = 'pending'
  #value: T | undefined = undefined
  #exception: unknown = undefined
  #failed = false
  /** A standalone future was marked running (`setRunningOrNotifyCancel`). */
  #running = false
  /** A standalone future's cancellation was noticed by `setRunningOrNotifyCancel` (once, as CPython's). */
  #cancelNoticed = false
  // Typed loosely so that Future<T> stays assignable to Future<unknown>.
  #callbacks: ((f: any) => void)[] | undefined = undefined
  #waiters: Set<(f: any) => void> | undefined = undefined
  #owner: FutureOwner | undefined = undefined
  /** @internal The executor's task, -1 for a standalone future. */
  _taskId = -1
  /** @internal The executor's submission batch, to tell queued-in-JS from queued-in-Rust. */
  _batch = 0

  /** @internal The future of task `taskId` of `owner`. */
  static _create<T>(owner: FutureOwner, taskId: number): Future<T> {
    const f = new Future<T>()
    f.#owner = owner
    f._taskId = taskId
    return f
  }

  /**
   * A standalone future: pending until `setRunningOrNotifyCancel()` marks
   * it running and `setResult()`/`setException()` settles it, or `cancel()`.
   */
  setRunningOrNotifyCancel(): boolean {
    this.#checkStandalone('setRunningOrNotifyCancel')
    if (this.#state === 'cancelled' && !this.#cancelNoticed) {
      this.#cancelNoticed = true
      return false
    }
    if (this.#state === 'cancelled') throw new InvalidStateError('setRunningOrNotifyCancel() on a cancelled future, again: its cancellation was noticed already')
    if (this.#state === 'finished' || this.#running) {
      throw new InvalidStateError(`setRunningOrNotifyCancel() on a future that is ${this.#running && this.#state === 'pending' ? 'running' : 'finished'}`)
    }
    this.#running = true
    return true
  }

  /** Settles a standalone future with `value`; InvalidStateError if it is done. */
  setResult(value: T): void {
    this.#checkStandalone('setResult')
    if (this.#state !== 'pending') throw new InvalidStateError(`setResult() on a future that is ${this.#state}`)
    this._settle('finished', value, undefined)
  }

  /** Settles a standalone future with `exception`; InvalidStateError if it is done. */
  setException(exception: unknown): void {
    this.#checkStandalone('setException')
    if (this.#state !== 'pending') throw new InvalidStateError(`setException() on a future that is ${this.#state}`)
    this._settle('finished', undefined, exception, true)
  }

  #checkStandalone(what: string): void {
    if (this._taskId !== -1) throw new InvalidStateError(`${what}() on a future of an executor's task: its executor settles it`)
  }

  /** Cancelled, or finished with a result or an exception. */
  done(): boolean {
    return this.#state !== 'pending'
  }

  cancelled(): boolean {
    return this.#state === 'cancelled'
  }

  /** A worker has taken the task (or a standalone one was marked running) and it has not finished. */
  running(): boolean {
    if (this.#state !== 'pending') return false
    return this.#owner !== undefined ? this.#owner._taskRunning(this) : this.#running
  }

  /**
   * Cancels the task if it has not started running. Returns true if the
   * future is now cancelled (or already was), false if it is running or
   * finished. Done callbacks run at once.
   */
  cancel(): boolean {
    if (this.#state === 'cancelled') return true
    if (this.#state === 'finished' || this.#running) return false
    if (this.#owner !== undefined && !this.#owner._cancelTask(this)) return false
    this._settle('cancelled', undefined, undefined)
    return true
  }

  /**
   * Resolves with the task's return value; rejects with its exception,
   * CancelledError if cancelled, or TimeoutError if not done in time.
   */
  result(options?: ResultOptions): Promise<T> {
    return rejecting(async () => {
      const ms = checkMs('options.timeoutMs', checkOptions('options', options).timeoutMs, true)
      if (this.#state === 'pending') await this.#waitDone(ms)
      if (this.#state === 'cancelled') throw new CancelledError()
      if (this.#failed) throw this.#exception
      return this.#value as T
    })
  }

  /**
   * Resolves with the task's exception (`null` if it succeeded); rejects with
   * CancelledError if cancelled, or TimeoutError if not done in time.
   */
  exception(options?: ResultOptions): Promise<unknown> {
    return rejecting(async () => {
      const ms = checkMs('options.timeoutMs', checkOptions('options', options).timeoutMs, true)
      if (this.#state === 'pending') await this.#waitDone(ms)
      if (this.#state === 'cancelled') throw new CancelledError()
      return this.#failed ? this.#exception : null
    })
  }

  /**
   * Calls `fn(future)` when the future is done, or at once if it already is.
   * Callbacks run in the order they were added. A callback that throws is
   * reported as a process warning (`FutureCallbackError`) and does not stop
   * the others.
   */
  addDoneCallback(fn: (future: Future<T>) => void): void {
    if (typeof fn !== 'function') throw invalidType('fn', 'a function', fn)
    if (this.#state !== 'pending') invokeCallback(fn, this)
    else (this.#callbacks ??= []).push(fn)
  }

  async #waitDone(ms: number): Promise<void> {
    if (ms === 0) throw new TimeoutError('the future is not done')
    let wake: (() => void) | undefined
    try {
      await suspendFresh((waiter) => {
        hub.park(waiter, ms)
        wake = () => hub.unpark(waiter)
        this._addWaiter(wake)
      })
    } finally {
      if (wake) this._removeWaiter(wake)
    }
    if (this.#state === 'pending') throw new TimeoutError(`the future is not done after ${ms} ms`)
  }

  /** @internal Called (before done callbacks) when the future settles. */
  _addWaiter(fn: (f: any) => void): void {
    ;(this.#waiters ??= new Set()).add(fn)
  }

  /** @internal */
  _removeWaiter(fn: (f: any) => void): void {
    this.#waiters?.delete(fn)
  }

  /** @internal Settles a pending future; no effect on a done one. */
  _settle(state: 'finished' | 'cancelled', value: T | undefined, exception: unknown, failed = false): void {
    if (this.#state !== 'pending') return
    this.#state = state
    this.#value = value
    this.#exception = exception
    this.#failed = failed
    this.#owner?._taskSettled?.(this)
    this.#owner = undefined
    const waiters = this.#waiters
    const callbacks = this.#callbacks
    this.#waiters = undefined
    this.#callbacks = undefined
    if (waiters) for (const w of waiters) w(this)
    if (callbacks) for (const cb of callbacks) invokeCallback(cb, this)
  }

  /** @internal */
  _resolve(value: T): void {
    this._settle('finished', value, undefined)
  }

  /** @internal */
  _reject(exception: unknown): void {
    this._settle('finished', undefined, exception, true)
  }

  /** @internal Finished with an exception (not cancelled). */
  get _failed(): boolean {
    return this.#failed
  }

  get [Symbol.toStringTag](): string {
    return `Future ${this.#state === 'finished' ? (this.#failed ? 'raised' : 'returned') : this.#state}`
  }
}

/**
 * @internal The results of `futures` in their order, each due by `deadline`
 * (`performance.now()` ms, `timeoutMs` after the map's call; -1: no limit,
 * else TimeoutError): the iteration of an executor's `map`. The futures
 * left are cancelled when it ends.
 */
async function* resultsInOrder<T>(futures: Future<T>[], deadline: number, timeoutMs: number, source?: MoreTasks<T>): AsyncGenerator<T, void, undefined> {
  let taken = 0
  /** The future awaited now: cancelled too if the iteration ends while it is not done (a timeout, a kill). */
  let current: Future<T> | undefined
  /** Reading or sending the input failed: thrown at the failed item's turn, after the results before it. */
  let failed: { error: unknown } | undefined
  try {
    while (taken < futures.length) {
      const f = (current = futures[taken++])
      // As Python's map with buffersize: one more task goes out as a result is taken.
      if (source !== undefined && failed === undefined) {
        try {
          const more = source.next()
          if (more !== undefined) futures.push(more)
        } catch (error) {
          failed = { error }
        }
      }
      if (source !== undefined && taken >= 1024) {
        // Let go of what was taken: a lazy map's list stays as long as its buffer.
        futures.splice(0, taken)
        taken = 0
      }
      if (deadline < 0) {
        yield await f.result()
        continue
      }
      let result: T
      try {
        result = await f.result({ timeoutMs: Math.max(0, deadline - performance.now()) })
      } catch (err) {
        // Named by the caller's timeout, not by the time that was left for this item.
        if (err instanceof TimeoutError && !f.done()) {
          throw new TimeoutError(`map(): the results were not all done within timeoutMs (${timeoutMs} ms)`)
        }
        throw err
      }
      yield result
    }
    if (failed !== undefined) throw failed.error
  } finally {
    // As Python's map (`_result_or_cancel`): a no-op for one done or running.
    current?.cancel()
    for (let i = taken; i < futures.length; i++) futures[i].cancel()
    source?.close()
  }
}

/**
 * @internal The results of a `map` in input order. `submit(items, first)`
 * sends a task for `items` (a chunk of `chunksize`, starting at input index
 * `first`). With `buffersize` Infinity every item is read and submitted now
 * (a failure throws here, cancelling what went out); otherwise `buffersize`
 * tasks go out now and one more as each result is taken (see
 * `resultsInOrder`), and the input is closed when the iteration is left.
 */
export function mapInOrder<T, R>(
  iterable: Iterable<T>,
  chunksize: number,
  buffersize: number,
  timeoutMs: number,
  submit: (items: T[], first: number) => Future<R>,
): AsyncGenerator<R, void, undefined> {
  const deadline = timeoutMs < 0 ? -1 : performance.now() + timeoutMs
  const input = iterable[Symbol.iterator]()
  let index = 0
  let exhausted = false
  const next = (): Future<R> | undefined => {
    if (exhausted) return undefined
    const items: T[] = []
    while (items.length < chunksize) {
      const step = input.next()
      if (step.done) {
        exhausted = true
        break
      }
      items.push(step.value)
    }
    if (items.length === 0) return undefined
    const first = index
    index += items.length
    return submit(items, first)
  }
  // As leaving a `for...of` early does.
  const close = (): void => {
    if (exhausted) return
    exhausted = true
    input.return?.()
  }
  const futures: Future<R>[] = []
  try {
    while (futures.length < buffersize) {
      const f = next()
      if (f === undefined) break
      futures.push(f)
    }
  } catch (err) {
    // Nobody will read the results of the tasks submitted before the failure.
    for (const f of futures) f.cancel()
    close()
    throw err
  }
  return resultsInOrder(futures, deadline, timeoutMs, buffersize === Infinity ? undefined : { next, close })
}

/** Where a lazy map's further tasks come from (see `resultsInOrder`). */
interface MoreTasks<T> {
  /** Submits the next task; undefined once the input is exhausted. Throws what reading or submitting the input throws. */
  next(): Future<T> | undefined
  /** The results are no longer read: closes the input (as leaving a `for...of` would). */
  close(): void
}

function invokeCallback(fn: (f: any) => void, f: Future<any>): void {
  try {
    fn(f)
  } catch (err) {
    const warning = new Error(`exception calling callback for ${Object.prototype.toString.call(f)}: ${safeString(err)}`, { cause: err })
    warning.name = 'FutureCallbackError'
    process.emitWarning(warning)
  }
}

/** `wait` returns when any future finishes or is cancelled. */
export const FIRST_COMPLETED = 'FIRST_COMPLETED'
/** `wait` returns when any future finishes by raising, or when all are done. */
export const FIRST_EXCEPTION = 'FIRST_EXCEPTION'
/** `wait` returns when all futures are done. */
export const ALL_COMPLETED = 'ALL_COMPLETED'

export type ReturnWhen = typeof FIRST_COMPLETED | typeof FIRST_EXCEPTION | typeof ALL_COMPLETED

export interface FuturesWaitOptions {
  /** Stop waiting after this many milliseconds (no error: look at `notDone`). @default no limit */
  timeoutMs?: number
  /** @default 'ALL_COMPLETED' */
  returnWhen?: ReturnWhen
}

export interface FuturesWaitResult<F extends Future<any>> {
  done: Set<F>
  notDone: Set<F>
}

export interface AsCompletedOptions {
  /** Throw TimeoutError if not every future is done this many milliseconds after the call. @default no limit */
  timeoutMs?: number
}

function futureSet<F extends Future<any>>(name: string, fs: Iterable<F>): Set<F> {
  if (fs === null || typeof (fs as any)?.[Symbol.iterator] !== 'function') throw invalidType(name, 'an iterable of Futures', fs)
  const set = new Set<F>()
  let i = 0
  for (const f of fs) {
    if (!(f instanceof Future)) throw invalidType(`${name}[${i}]`, 'a Future', f)
    set.add(f)
    i++
  }
  return set
}

/**
 * Waits until the futures meet `returnWhen` or the time runs out, and
 * resolves with the futures split into `done` and `notDone`.
 * `FIRST_EXCEPTION` returns when a future finishes with an exception, or
 * when all are done.
 */
export function wait<F extends Future<any>>(fs: Iterable<F>, options?: FuturesWaitOptions): Promise<FuturesWaitResult<F>> {
  return rejecting(async () => {
    const o = checkOptions('options', options)
    const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    const returnWhen = o.returnWhen ?? 'ALL_COMPLETED'
    if (returnWhen !== 'FIRST_COMPLETED' && returnWhen !== 'FIRST_EXCEPTION' && returnWhen !== 'ALL_COMPLETED') {
      throw new RangeError(`options.returnWhen must be 'FIRST_COMPLETED', 'FIRST_EXCEPTION' or 'ALL_COMPLETED', got ${safeString(returnWhen)}`)
    }
    const all = futureSet('fs', fs)
    const satisfied = (): boolean => {
      let anyDone = false
      let allDone = true
      for (const f of all) {
        if (!f.done()) allDone = false
        else {
          anyDone = true
          if (returnWhen === 'FIRST_EXCEPTION' && f._failed) return true
        }
      }
      // As CPython: all done (none given, too) ends any wait.
      return allDone || (returnWhen === 'FIRST_COMPLETED' && anyDone)
    }
    if (!satisfied() && ms !== 0) {
      const pending = [...all].filter((f) => !f.done())
      let check: ((f: F) => void) | undefined
      try {
        await suspendFresh((waiter) => {
          hub.park(waiter, ms)
          // Counted as they finish (each calls once), not rescanned: a scan per finish made large waits quadratic.
          let unfinished = pending.length
          let woken = false
          check = (f) => {
            unfinished--
            if (woken) return
            if (returnWhen === 'FIRST_COMPLETED' || unfinished === 0 || (returnWhen === 'FIRST_EXCEPTION' && f._failed)) {
              woken = true
              hub.unpark(waiter)
            }
          }
          for (const f of pending) f._addWaiter(check)
        })
      } finally {
        if (check) for (const f of pending) f._removeWaiter(check)
      }
    }
    const done = new Set<F>()
    const notDone = new Set<F>()
    for (const f of all) (f.done() ? done : notDone).add(f)
    return { done, notDone }
  })
}

/**
 * Yields the futures as they complete (those already done first). Throws
 * TimeoutError from the iteration if some are still pending `timeoutMs`
 * after the call. Duplicates are yielded once.
 */
export function asCompleted<F extends Future<any>>(fs: Iterable<F>, options?: AsCompletedOptions): AsyncIterableIterator<F> {
  const ms = checkMs('options.timeoutMs', checkOptions('options', options).timeoutMs, true)
  const all = futureSet('fs', fs)
  const deadline = ms < 0 ? -1 : performance.now() + ms
  return (async function* () {
    const ready: F[] = []
    const pending = new Set<F>()
    for (const f of all) {
      if (f.done()) ready.push(f)
      else pending.add(f)
    }
    let wake: (() => void) | undefined
    const onDone = (f: F): void => {
      ready.push(f)
      pending.delete(f)
      wake?.()
    }
    for (const f of pending) f._addWaiter(onDone)
    try {
      for (;;) {
        // By index, not shift(): taking from the front of a long array copies it.
        for (let next = 0; next < ready.length; next++) yield ready[next]
        ready.length = 0
        if (pending.size === 0) return
        const left = deadline < 0 ? -1 : Math.max(0, deadline - performance.now())
        if (left === 0) throw new TimeoutError(`${pending.size} (of ${all.size}) futures unfinished`)
        let outcome: number
        try {
          outcome = await suspendFresh((waiter) => {
            hub.park(waiter, left)
            wake = () => {
              wake = undefined
              hub.unpark(waiter)
            }
          })
        } finally {
          wake = undefined
        }
        if (outcome === Outcome.TIMER && ready.length === 0) {
          throw new TimeoutError(`${pending.size} (of ${all.size}) futures unfinished`)
        }
      }
    } finally {
      for (const f of pending) f._removeWaiter(onDone)
    }
  })()
}
