/**
 * Waiting for several objects at once: gevent's `gevent.wait(objects,
 * timeout, count)` and `gevent.iwait(objects, timeout, count)`, over
 * greenlets (of either mode), `Event`s, `AsyncResult`s and executor
 * `Future`s, in any mix.
 *
 * `iwait` yields each object once it is ready (a greenlet has finished, an
 * Event is set, an AsyncResult has a value or an exception, a Future is
 * done): first those that are ready already, in input order, then the
 * others as they become ready. It ends once every object was yielded,
 * `count` of them were, or `timeoutMs` expired (no error: what was not
 * yielded was not ready). `waitReady` waits the same way and returns the
 * ready objects as an array. An Event counts as ready when it is set while
 * watched (a `set()` then `clear()` still counts), or was set at the start.
 *
 * `waitReady` is gevent's `wait`; this module does not call it `wait`,
 * which the async module exports already for executor futures
 * (`concurrent.futures.wait`).
 *
 * `ReadyWatch` holds the logic of both modes; this module's functions wait
 * with Promises, those of `greenthread/sync` (src/sync/wait.ts) block.
 */
import { GreenletBase } from './_greenlet-base'
import { type Blocking, TIMED_OUT, WaitList, drive, waitSignal } from './_waiters'
import { checkMs, checkOptions, invalidType } from './errors'
import { AsyncResultBase, EventBase } from './event'
import { Future } from './futures'

/** What `waitReady` and `iwait` watch: a greenlet of either mode, an Event, an AsyncResult or an executor Future. */
export type Waitable = GreenletBase<any, any> | EventBase | AsyncResultBase<any> | Future<any>

export interface WaitReadyOptions {
  /** Stop waiting after this many milliseconds (no error: the objects not ready are left out). @default no limit */
  timeoutMs?: number
  /** Stop once this many objects are ready. @default all of them */
  count?: number
  /** Stop waiting once it aborts: the wait fails with its reason (at once if it has aborted). */
  signal?: AbortSignal
}

/** @internal What `ReadyWatch.next` returns once nothing more is to come. */
export const DONE: unique symbol = Symbol('done')

function isReady(object: Waitable): boolean {
  if (object instanceof GreenletBase) return object.ready()
  if (object instanceof EventBase) return object.isSet()
  if (object instanceof AsyncResultBase) return object.ready()
  return object.done()
}

/** Calls `onReady` once `object` becomes ready; returns what undoes that. */
function watch(object: Waitable, onReady: () => void): () => void {
  if (object instanceof GreenletBase) {
    object._rawlink(onReady)
    return () => object.unlink(onReady)
  }
  if (object instanceof EventBase || object instanceof AsyncResultBase) {
    object._rawlink(onReady)
    return () => object._unlink(onReady)
  }
  object._addWaiter(onReady)
  return () => object._removeWaiter(onReady)
}

function checkCount(value: unknown): number {
  if (value === undefined || value === null) return Infinity
  if (typeof value !== 'number') throw invalidType('options.count', 'a non-negative integer', value)
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`options.count must be a non-negative integer, got ${value}`)
  return value
}

/**
 * @internal One `waitReady`/`iwait` call: checks its arguments when made,
 * watches the objects from `start()`, and hands them out (`next`) as they
 * become ready, until `close()`.
 */
export class ReadyWatch<T extends Waitable> {
  readonly #objects: T[]
  readonly #ms: number
  readonly #signal: AbortSignal | undefined
  /** Objects still to hand out (`count`). */
  #left: number
  readonly #ready: T[] = []
  #readAt = 0
  /** Objects watched and not ready yet. */
  #pending = 0
  readonly #unwatch: (() => void)[] = []
  readonly #consumer = new WaitList<true>()
  #deadline = -1
  #waited = false
  #started = false
  #closed = false

  constructor(objects: Iterable<T>, options: WaitReadyOptions | undefined) {
    if (objects === null || objects === undefined || typeof (objects as any)[Symbol.iterator] !== 'function') {
      throw invalidType('objects', 'an iterable of greenlets, Events, AsyncResults or Futures', objects)
    }
    const list = Array.from(objects)
    list.forEach((object, i) => {
      if (!(object instanceof GreenletBase || object instanceof EventBase || object instanceof AsyncResultBase || object instanceof Future)) {
        throw invalidType(`objects[${i}]`, 'a Greenlet, an Event, an AsyncResult or a Future', object)
      }
    })
    const o = checkOptions('options', options)
    this.#ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    this.#left = checkCount(o.count)
    this.#signal = waitSignal(o)
    this.#objects = list
  }

  /** Starts watching: the objects ready now come first, in input order. */
  start(): void {
    if (this.#started) return
    this.#started = true
    if (this.#ms >= 0) this.#deadline = performance.now() + this.#ms
    for (const object of this.#objects) {
      if (isReady(object)) {
        this.#ready.push(object)
        continue
      }
      let fired = false
      const onReady = (): void => {
        if (fired || this.#closed) return
        fired = true
        this.#pending--
        this.#ready.push(object)
        this.#consumer.handOff(true)
      }
      this.#pending++
      this.#unwatch.push(watch(object, onReady))
    }
  }

  /** The next ready object, if one is there now: no wait. */
  #take(): T | undefined {
    if (this.#left === 0 || this.#readAt === this.#ready.length) return undefined
    this.#left--
    const object = this.#ready[this.#readAt]
    this.#ready[this.#readAt++] = undefined as unknown as T
    return object
  }

  /** The next object that is ready, waiting for one; `DONE` once all (or `count`) were handed out, or on timeout. */
  *next(): Blocking<T | typeof DONE> {
    this.start()
    // Each next() is a wait of its own: one after the abort fails at once, as any wait given an aborted signal.
    if (this.#signal?.aborted) throw this.#signal.reason
    for (;;) {
      const object = this.#take()
      if (object !== undefined) return object
      if (this.#left === 0 || this.#pending === 0 || this.#closed) return DONE
      let ms = -1
      if (this.#deadline >= 0) {
        ms = Math.max(0, this.#deadline - performance.now())
        if (ms === 0 && this.#waited) return DONE
      }
      this.#waited = true
      const outcome = yield this.#consumer.request(ms, undefined, this.#signal)
      if (outcome === TIMED_OUT && this.#readAt === this.#ready.length) return DONE
    }
  }

  /** Stops watching. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const unwatch of this.#unwatch) unwatch()
    this.#unwatch.length = 0
    this.#consumer.handOffAll(true)
  }
}

/** @internal The objects of `watch` as they become ready (see `waitReady`). */
export function* readyList<T extends Waitable>(watch: ReadyWatch<T>): Blocking<T[]> {
  try {
    const ready: T[] = []
    for (let object = yield* watch.next(); object !== DONE; object = yield* watch.next()) ready.push(object)
    return ready
  } finally {
    watch.close()
  }
}

/**
 * Waits until every object is ready, or `count` of them are, or
 * `timeoutMs` expires, and resolves with the ready ones: those ready at
 * the call in input order, then the others in the order they became
 * ready (gevent's `wait(objects, timeout, count)`). Never rejects for a
 * greenlet's or a Future's failure: look at the objects.
 */
export function waitReady<T extends Waitable>(objects: Iterable<T>, options?: WaitReadyOptions): Promise<T[]> {
  try {
    return drive(readyList(new ReadyWatch(objects, options)))
  } catch (err) {
    return Promise.reject(err)
  }
}

/**
 * Yields the objects as they become ready: those ready at the first
 * `next()` in input order, then the others as they become ready; ends once
 * all (or `count`) were yielded, or when `timeoutMs` expires (gevent's
 * `iwait`). Leaving the loop early stops watching. Bad arguments reject the
 * first `next()`.
 */
export async function* iwait<T extends Waitable>(objects: Iterable<T>, options?: WaitReadyOptions): AsyncGenerator<T, void, undefined> {
  const watch = new ReadyWatch(objects, options)
  try {
    for (let object = await drive(watch.next()); object !== DONE; object = await drive(watch.next())) yield object
  } finally {
    watch.close()
  }
}
