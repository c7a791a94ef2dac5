/** `run`: the way into sync greenlets from ordinary (async) JS. */
import { checkFunction, rejecting } from '../errors'
import { spawn } from './greenlet'

/**
 * Runs `fn(...args)` in a new sync greenlet and resolves with its result, or
 * rejects with its exception. Inside, `fn` may block (`sleep`, `join`,
 * `switch`, `block`...); the hub that schedules it is Node's own event loop,
 * which keeps running meanwhile.
 */
export function run<R>(fn: (...args: any[]) => R | PromiseLike<R>, ...args: unknown[]): Promise<R> {
  return rejecting(() => {
    checkFunction('fn', fn)
    const g = spawn(fn, ...args)
    return new Promise<R>((resolve, reject) => {
      g.link(() => (g.successful() ? resolve(g.value as R) : reject(g.exception)))
    })
  })
}
