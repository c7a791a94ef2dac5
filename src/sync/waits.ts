/**
 * Blocking waits of sync greenlets: `sleep`, `block` for any Promise, and
 * `blockOn`, which runs the primitives' shared blocking operations. They
 * suspend only the calling greenlet; other greenlets and the Node event loop
 * keep running. Outside sync greenlets they throw.
 */
import { type Blocking, Waiter } from '../_waiters'
import { checkMs } from '../errors'
import { hub } from '../hub'
import { blockingGreenlet } from './greenlet'

/**
 * @internal Runs a blocking operation (see src/_waiters.ts) in the sync
 * mode: returns its result, blocking the current sync greenlet whenever it
 * must wait; throws what it throws. `what` names the call in the error
 * thrown when it would block outside a sync greenlet.
 */
export function blockOn<R>(op: Blocking<R>, what: string): R {
  let step = op.next()
  while (!step.done) {
    const suspension = step.value
    let outcome: unknown
    try {
      const g = blockingGreenlet(what)
      outcome = suspension instanceof Waiter ? suspension.list._waitBlocking(suspension, g) : g._await(suspension)
    } catch (err) {
      step = op.throw(err)
      continue
    }
    step = op.next(outcome)
  }
  return step.value
}

/**
 * Blocks the current greenlet for `ms` milliseconds (default 0).
 *
 * `sleep(0)` is a yield: it returns after every other greenlet that was
 * ready has run up to its next wait, and the event loop has had a turn.
 * Inside a killed greenlet it throws the kill exception at once.
 */
export function sleep(ms: number = 0): void {
  const delay = checkMs('ms', ms, false)
  const g = blockingGreenlet('sleep()')
  g._wait((waiter) => (delay === 0 ? hub.yieldNow(waiter) : hub.park(waiter, delay)), delay > 0)
}

/**
 * Blocks the current greenlet until `promise` settles and returns its value
 * or throws its reason, like `await` but without making the caller async.
 * Values that are not thenables are returned as they are. Promise callbacks
 * run on the main thread's event loop as usual; the greenlet resumes once
 * the microtasks have drained, before the event loop goes on, as an
 * `await`'s continuation would (see `hub.unparkSoon`). Kills and Timeouts
 * interrupt the wait (the Promise itself keeps running).
 */
export function block<T>(promise: T | PromiseLike<T>): T {
  const g = blockingGreenlet('block()')
  if (promise === null || (typeof promise !== 'object' && typeof promise !== 'function')) return promise as T
  if (typeof (promise as PromiseLike<T>).then !== 'function') return promise as T
  return g._await(promise as PromiseLike<T>)
}
