/**
 * Timeouts for sync greenlets: the async mode's Timeout (same delay,
 * exception and alarm; see src/timeout.ts) with a blocking `Timeout.run`.
 */
import { checkFunction, checkMs, checkOptions } from '../errors'
import { type TimeoutRunOptions, type TimeoutTarget, TimeoutBase, fallbackOf } from '../timeout'
import { type Greenlet, blockingGreenlet, getcurrent, spawn } from './greenlet'
import { sleep } from './waits'

export class Timeout extends TimeoutBase {
  /** Creates and starts a Timeout in the current sync greenlet. */
  static startNew(ms?: number | null, exception?: unknown): Timeout {
    return new Timeout(ms, exception).start()
  }

  /**
   * Runs `fn` in a new greenlet and returns its result, or kills it and
   * throws a Timeout (or `options.exception`) after `ms` milliseconds; with
   * `options.fallback`, returns that instead. Blocks: call it inside a sync
   * greenlet.
   */
  static run<R, F>(ms: number | null | undefined, fn: () => R | PromiseLike<R>, options: TimeoutRunOptions & { fallback: F }): R | F
  static run<R>(ms: number | null | undefined, fn: () => R | PromiseLike<R>, options?: TimeoutRunOptions): R
  static run<R>(ms: number | null | undefined, fn: () => R | PromiseLike<R>, options?: TimeoutRunOptions): unknown {
    const delay = checkMs('ms', ms, true)
    checkFunction('fn', fn)
    const o = checkOptions('options', options)
    blockingGreenlet('Timeout.run()')
    const g = spawn(fn)
    joinOrKill(g, delay)
    if (g.dead) return g.get()
    const raised = new Timeout(delay, o.exception).raised
    // Settles at the deadline, as the async mode's: the work dies at its
    // next wait (one that swallows the kill goes on, in its own greenlet).
    // It runs once first, so that a wait it dies in lets go of what it held
    // (a socket's recv the caller may go on with).
    // Observed first: the caller gets its failure (or the fallback), also if it is killed in the sleep below.
    void g.exception
    g.kill(raised, { block: false })
    sleep(0)
    const fallback = fallbackOf(o)
    if (fallback !== undefined) return fallback.value
    throw raised
  }

  /** @internal */
  protected override _target(): TimeoutTarget {
    const target = getcurrent()
    if (target === null) {
      throw new Error('Timeout.start() must be called inside a sync greenlet; use Timeout.run() in one, or the async API')
    }
    return target
  }
}

/** Waits up to `ms` (-1: forever) for `g`; if the waiter is killed meanwhile, `g` is killed too. */
function joinOrKill(g: Greenlet, ms: number): void {
  try {
    g.join(ms < 0 ? undefined : ms)
  } catch (err) {
    g.kill(undefined, { block: false })
    throw err
  }
}
