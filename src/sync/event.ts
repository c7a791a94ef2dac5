/**
 * `Event` and `AsyncResult` for sync greenlets: the async module's (see
 * src/event.ts, where their logic lives) with waits that block the calling
 * greenlet instead of returning Promises.
 */
import { AsyncResultBase, type AsyncResultGetOptions, EventBase, type WaitOptions } from '../event'
import { getcurrent } from './greenlet'
import { Timeout } from './timeout'
import { blockOn } from './waits'

/** A flag that greenlets wait for. Starts cleared. */
export class Event extends EventBase {
  /** Blocks until the flag is set (returns `true` at once if it is); `false` on timeout. */
  wait(options?: WaitOptions): boolean {
    // Outside greenlets it cannot wait for the waiters that set() is notifying.
    return blockOn(this._wait(options, getcurrent() !== null), 'Event.wait()')
  }
}

/**
 * A result that arrives once: `set(value)` or `setException(err)` wakes every
 * waiter. As in gevent, a later `set`/`setException` replaces the result.
 */
export class AsyncResult<T = unknown> extends AsyncResultBase<T> {
  /**
   * Returns the value, or throws the exception, blocking until one is set
   * if needed. Throws `Timeout` if none is set in time.
   */
  get(options?: AsyncResultGetOptions): T {
    return blockOn(this._get(options, getcurrent() !== null), 'AsyncResult.get()')
  }

  /** Blocks until a result is set (returns `true` at once if it is); `false` on timeout. Never throws the result's exception. */
  wait(options?: WaitOptions): boolean {
    return blockOn(this._wait(options, getcurrent() !== null), 'AsyncResult.wait()')
  }

  /** @internal */
  protected _timeout(ms: number, message?: string): Error {
    return new Timeout(ms, message)
  }
}
