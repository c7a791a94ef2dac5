/**
 * Timeouts: raise an exception in a greenlet after a delay.
 *
 * Like gevent's, a Timeout fires only when the greenlet yields: the
 * exception is raised at its current library wait (sleep, join, switch,
 * queue or socket wait), or at the next one if it is busy computing or
 * awaiting something foreign.
 */
import { checkFunction, checkMs, checkOptions, exceptionFrom, rejecting } from './errors'
import { Alarm, sleep } from './hub'
import { type Greenlet, getcurrent, spawn } from './greenlet'

export interface TimeoutRunOptions {
  /** Raised instead of the Timeout itself (as the constructor's `exception`: a string is its message; `null`, `false` raise the Timeout). */
  exception?: unknown
  /**
   * Given (even as `undefined`): what `Timeout.run` returns instead of
   * raising when the time is up, as gevent's `with_timeout(..., timeout_value=)`;
   * `{ fallback: undefined }` is the silent form, gevent's `Timeout(s, False)`.
   */
  fallback?: unknown
}

/** @internal Whether `Timeout.run` returns a fallback on timeout, and which. */
export function fallbackOf(o: TimeoutRunOptions): { value: unknown } | undefined {
  return Object.hasOwn(o, 'fallback') ? { value: o.fallback } : undefined
}

/** Where a Timeout raises its exception: a greenlet of either mode. */
export interface TimeoutTarget {
  _raise(exception: unknown): void
  _armTimeout(t: TimeoutBase): void
  _disarmTimeout(t: TimeoutBase): void
  _withdrawRaise(exception: unknown): void
}

/**
 * A Timeout's delay, exception and alarm, shared by the async and the sync
 * (`greenthread/sync`) modes. Each mode's `Timeout` adds how to find the
 * current greenlet and how `Timeout.run()` waits.
 */
export abstract class TimeoutBase extends Error {
  /** Milliseconds, or `null` for a timeout that never fires. */
  readonly ms: number | null
  #exception: unknown
  #alarm: Alarm | undefined
  /** The greenlet it is armed for, until it fires or is cancelled. */
  #target: TimeoutTarget | undefined
  #controller: AbortController | undefined
  /** Pending after its greenlet finished, no longer keeping the process alive (see `_targetFinished`). */
  #targetFinished = false
  /** The greenlet it fired in, until cancelled: the raise may still wait for its next wait there. */
  #firedIn: TimeoutTarget | undefined

  /**
   * @param ms milliseconds; `null`/`undefined` never fires.
   * @param exception raised instead of this Timeout when it fires; a string
   *   becomes this Timeout's message; `null` and `false` (gevent's `None`
   *   and `False`) raise the Timeout itself, as `undefined` does.
   */
  constructor(ms?: number | null, exception?: unknown) {
    const delay = checkMs('ms', ms, true)
    super(typeof exception === 'string' ? exception : delay < 0 ? 'timed out' : `timed out after ${delay} ms`)
    this.name = 'Timeout'
    this.ms = delay < 0 ? null : delay
    this.#exception = typeof exception === 'string' || exception === null || exception === false ? undefined : exceptionFrom(exception)
  }

  /** The exception this Timeout raises when it fires. */
  get raised(): unknown {
    return this.#exception !== undefined ? this.#exception : this
  }

  /** Armed and not yet fired or cancelled. */
  get pending(): boolean {
    return this.#alarm?.pending ?? false
  }

  /**
   * Aborted, with the exception this Timeout raises, when it fires: hand it
   * to a foreign await (`fetch(url, { signal: t.signal })`) so that it stops
   * at the deadline. The greenlet's own `signal` includes it while armed.
   * A restart gives a new one.
   */
  get signal(): AbortSignal {
    // Someone may wait on it now: a Timeout its finished greenlet left pending keeps the process alive again.
    if (this.#targetFinished) this.#alarm?.ref()
    return (this.#controller ??= new AbortController()).signal
  }

  /**
   * Arms the timeout for the current greenlet (restarting it if armed).
   * Throws outside a greenlet, where there is nobody to raise in: use
   * `Timeout.run()` or `waitFor()` there.
   */
  start(): this {
    const target = this._target()
    this.cancel()
    if (this.ms === null) return this
    if (this.#controller?.signal.aborted) this.#controller = undefined
    this.#target = target
    this.#targetFinished = false
    target._armTimeout(this)
    this.#alarm = new Alarm(this.ms, () => this.#fire(target))
    return this
  }

  /**
   * Fires: aborts its signal (a foreign await handed it stops with the
   * exception) and raises the exception in the greenlet at its current
   * wait, or at its next one if it is computing or in a foreign await.
   * Whether a foreign await listened to the signal cannot be told (fetch
   * keeps listening after it ends), so the raise waits for the next wait in
   * any case, and `cancel()` takes it back: as in gevent, a Timeout
   * cancelled before the greenlet yields is never raised.
   */
  #fire(target: TimeoutTarget): void {
    this.#target = undefined
    target._disarmTimeout(this)
    const raised = this.raised
    this.#controller?.abort(raised)
    this.#firedIn = target
    target._raise(raised)
  }

  /**
   * Disarms the timeout; if it has fired and its exception still waits for
   * the greenlet's next wait, takes it back. Safe to call at any time, any
   * number of times.
   */
  cancel(): void {
    this.#alarm?.cancel()
    this.#alarm = undefined
    this.#target?._disarmTimeout(this)
    this.#target = undefined
    const firedIn = this.#firedIn
    this.#firedIn = undefined
    firedIn?._withdrawRaise(this.raised)
  }

  /**
   * @internal The greenlet it is armed for finished with it pending: it
   * stays pending and still fires, but has nobody to raise in. Unless its
   * signal was handed out (another greenlet may wait on it), it no longer
   * keeps the process alive.
   */
  _targetFinished(): void {
    if (this.#controller !== undefined) return
    this.#targetFinished = true
    this.#alarm?.unref()
  }

  /** Same as `cancel()`, for `using t = Timeout.startNew(ms)`. */
  [Symbol.dispose](): void {
    this.cancel()
  }

  /** @internal The current greenlet, for `start()`; throws outside one. */
  protected abstract _target(): TimeoutTarget
}

export class Timeout extends TimeoutBase {
  /** Creates and starts a Timeout in the current greenlet. */
  static startNew(ms?: number | null, exception?: unknown): Timeout {
    return new Timeout(ms, exception).start()
  }

  /**
   * Runs `fn` in a new greenlet and resolves with its result, or kills it and
   * rejects with a Timeout (or `options.exception`) after `ms` milliseconds,
   * at once: the greenlet dies at its next wait (its `signal` aborts at the
   * deadline, so a foreign await handed it stops too). With
   * `options.fallback`, resolves with that instead of rejecting.
   */
  static run<R, F>(ms: number | null | undefined, fn: () => R | PromiseLike<R>, options: TimeoutRunOptions & { fallback: F }): Promise<R | F>
  static run<R>(ms: number | null | undefined, fn: () => R | PromiseLike<R>, options?: TimeoutRunOptions): Promise<R>
  static run<R>(ms: number | null | undefined, fn: () => R | PromiseLike<R>, options?: TimeoutRunOptions): Promise<unknown> {
    return rejecting(async () => {
      const delay = checkMs('ms', ms, true)
      checkFunction('fn', fn)
      const o = checkOptions('options', options)
      const work = spawnKeepingResult(fn)
      const g = work.greenlet
      await joinOrKill(g, delay)
      if (g.dead) return g.get()
      const raised = new Timeout(delay, o.exception).raised
      // Settles at the deadline: the work dies at its next wait, or when a
      // foreign await it is in (told through g.signal) lets go. It runs once
      // first, so that a wait it dies in lets go of what it held (a socket's
      // recv the caller may go on with).
      // Observed first: the caller gets its failure (or the fallback), also if it is killed in the sleep below.
      void g.exception
      void g.kill(raised, { block: false })
      await sleep(0)
      const kept = work.result()
      if (kept !== undefined) return kept.value
      const fallback = fallbackOf(o)
      if (fallback !== undefined) return fallback.value
      throw raised
    })
  }

  /** @internal */
  protected override _target(): TimeoutTarget {
    const target = getcurrent()
    // A callback a greenlet scheduled (setTimeout...) runs in its context after its death: nobody to raise in there either.
    if (target === null || target.dead) {
      throw new Error('Timeout.start() must be called inside a running greenlet; use Timeout.run() or waitFor() elsewhere')
    }
    return target
  }
}

/** Waits up to `ms` (-1: forever) for `g`; if the waiter is killed meanwhile, `g` is killed too. */
/**
 * Spawns `fn` (the work of `Timeout.run` or `waitFor`) and keeps what it
 * returns. The work may be past its last wait at the deadline, its result in
 * hand (a queue item, a lock, a Future's value) and not yet returned: the
 * kill then lands after its wait, and a kill wins over a value returned
 * after it, which would drop that result. The caller gets it instead.
 */
export function spawnKeepingResult<R>(fn: () => R | PromiseLike<R>): { greenlet: Greenlet<R>; result: () => { value: R } | undefined } {
  let kept: { value: R } | undefined
  const greenlet = spawn(async () => {
    const value = await fn()
    kept = { value }
    return value
  })
  return { greenlet, result: () => kept }
}

export async function joinOrKill(g: Greenlet, ms: number): Promise<void> {
  try {
    await g.join(ms < 0 ? undefined : ms)
  } catch (err) {
    void g.kill(undefined, { block: false })
    throw err
  }
}
