/**
 * Synchronized queues for greenlets: `Queue` (FIFO), `LifoQueue`,
 * `PriorityQueue`, `JoinableQueue` (counts unfinished tasks) and `Channel`
 * (no buffer: every put meets a get).
 *
 * Blocked getters and putters are served in FIFO order: a put on a queue
 * with waiting getters hands the item straight to the first of them, and a
 * get that frees a slot moves the first blocked putter's item in. `get()`
 * rejects with `QueueEmpty` and `put()` with `QueueFull` when `timeoutMs`
 * expires (at the next hub turn for 0; the `*Nowait` methods do not wait at
 * all). Killing a waiting greenlet rejects its wait at once with the kill
 * exception; an item handed to a getter at that very turn goes back to the
 * front of the queue (or to the next getter), and a put whose item was
 * accepted at that turn stays done: the item remains queued. Such a
 * give-back may briefly hold more than `maxsize` items rather than lose one.
 *
 * `peek()` returns the item `get()` would return next without removing it,
 * waiting for one like `get()` (gevent's `peek`); waiting peekers and
 * getters are served in arrival order, so a peeker behind a getter waits for
 * the item after the one that getter takes. `peekNowait()` does not wait.
 *
 * A `Channel.put()` that hands its item to a waiting getter resumes after
 * that getter has run (on the next hub turn), and a `get()` that takes the
 * item of a blocked putter goes on before that putter resumes: the two sides
 * meet, as in gevent's Channel.
 *
 * After `shutdown()` puts throw `QueueShutDown`, blocked putters reject with
 * it, gets drain the remaining items and then throw it, and async iteration
 * (`for await (const item of queue)`) ends.
 *
 * `QueueBase` holds the logic of both modes; this module's queues wait with
 * Promises, those of `greenthread/sync` block.
 */
import { type Blocking, TIMED_OUT, type TimedOut, WaitList, drive, waitSignal } from './_waiters'
import { checkLimit, checkMs, checkOptions, invalidType } from './errors'
import type { WaitOptions } from './event'

export class QueueEmpty extends Error {
  constructor(message = 'queue is empty') {
    super(message)
    this.name = 'QueueEmpty'
  }
}

export class QueueFull extends Error {
  constructor(message = 'queue is full') {
    super(message)
    this.name = 'QueueFull'
  }
}

export class QueueShutDown extends Error {
  constructor(message = 'queue is shut down') {
    super(message)
    this.name = 'QueueShutDown'
  }
}

export interface QueueOptions {
  /** Most items the queue holds; `put` waits while it is full. A positive integer, or `Infinity`. @default unbounded */
  maxsize?: number
}

export interface PriorityQueueOptions<T> extends QueueOptions {
  /**
   * Orders items: negative if `a` comes out before `b`. Items that compare
   * equal come out in the order they were put.
   * @default ascending numbers, strings or bigints; arrays element by element, like Python tuples (`[priority, item]`)
   */
  compare?: (a: T, b: T) => number
}

export interface QueueGetOptions {
  /** Reject with `QueueEmpty` if no item comes within this many milliseconds. @default no limit */
  timeoutMs?: number
  /** Stop waiting once it aborts: the get fails with its reason (at once if it has aborted). */
  signal?: AbortSignal
}

export interface QueuePutOptions {
  /** Reject with `QueueFull` if no room comes within this many milliseconds. @default no limit */
  timeoutMs?: number
  /**
   * Stop waiting once it aborts: the put fails with its reason, the item not
   * queued (at once if it has aborted). An item a get accepted before the
   * abort reached the put stays queued, and the put succeeds.
   */
  signal?: AbortSignal
}

/** @internal A queue's buffer: decides which item comes out next. */
export interface Store<T> {
  readonly size: number
  push(item: T): void
  /** Puts back an item that was taken out, so that it comes out next again. */
  pushFront(item: T): void
  /** Removes and returns the next item; only called when `size > 0`. */
  shift(): T
  /** The next item, left in place; only called when `size > 0`. */
  peek(): T
}

/** A growable ring buffer: O(1) at both ends. */
class Deque<T> implements Store<T> {
  #buffer: (T | undefined)[] = new Array(16)
  #head = 0
  size = 0

  push(item: T): void {
    if (this.size === this.#buffer.length) this.#grow()
    this.#buffer[(this.#head + this.size) & (this.#buffer.length - 1)] = item
    this.size++
  }

  pushFront(item: T): void {
    if (this.size === this.#buffer.length) this.#grow()
    this.#head = (this.#head - 1) & (this.#buffer.length - 1)
    this.#buffer[this.#head] = item
    this.size++
  }

  peek(): T {
    return this.#buffer[this.#head] as T
  }

  shift(): T {
    const item = this.#buffer[this.#head] as T
    this.#buffer[this.#head] = undefined
    this.#head = (this.#head + 1) & (this.#buffer.length - 1)
    this.size--
    return item
  }

  #grow(): void {
    const old = this.#buffer
    const buffer = new Array<T | undefined>(old.length * 2)
    for (let i = 0; i < this.size; i++) buffer[i] = old[(this.#head + i) & (old.length - 1)]
    this.#buffer = buffer
    this.#head = 0
  }
}

/** @internal A LIFO store: the top comes out next. */
export class Stack<T> implements Store<T> {
  readonly #items: T[] = []

  get size(): number {
    return this.#items.length
  }

  push(item: T): void {
    this.#items.push(item)
  }

  pushFront(item: T): void {
    // The top of the stack is what comes out next.
    this.#items.push(item)
  }

  shift(): T {
    return this.#items.pop() as T
  }

  peek(): T {
    return this.#items[this.#items.length - 1]
  }
}

type Entry<T> = { item: T; seq: number }

/** A binary min-heap; `seq` breaks ties so equal items keep their order. */
class Heap<T> implements Store<T> {
  readonly #entries: Entry<T>[] = []
  #lastSeq = 0
  #frontSeq = 0

  constructor(private readonly compare: (a: T, b: T) => number) {}

  get size(): number {
    return this.#entries.length
  }

  push(item: T): void {
    this.#insert({ item, seq: ++this.#lastSeq })
  }

  pushFront(item: T): void {
    // Before every item it ties with.
    this.#insert({ item, seq: --this.#frontSeq })
  }

  peek(): T {
    return this.#entries[0].item
  }

  shift(): T {
    const entries = this.#entries
    const top = entries[0]
    const end = entries.length - 1
    const last = entries[end]
    // Compare first, move after: a compare that throws leaves the heap whole.
    const path: number[] = []
    for (let i = 0; ; ) {
      const left = 2 * i + 1
      if (left >= end) break
      const right = left + 1
      const child = right < end && this.#before(entries[right], entries[left]) ? right : left
      if (!this.#before(entries[child], last)) break
      path.push(child)
      i = child
    }
    entries.pop()
    if (end > 0) {
      let i = 0
      for (const child of path) {
        entries[i] = entries[child]
        i = child
      }
      entries[i] = last
    }
    return top.item
  }

  #insert(entry: Entry<T>): void {
    const entries = this.#entries
    // Compare first, move after: a compare that throws leaves the heap as it was.
    let target = entries.length
    while (target > 0) {
      const parent = (target - 1) >> 1
      if (!this.#before(entry, entries[parent])) break
      target = parent
    }
    let i = entries.length
    entries.push(entry)
    while (i > target) {
      const parent = (i - 1) >> 1
      entries[i] = entries[parent]
      i = parent
    }
    entries[i] = entry
  }

  #before(a: Entry<T>, b: Entry<T>): boolean {
    const order = this.compare(a.item, b.item)
    return order < 0 || (order === 0 && a.seq < b.seq)
  }
}

/** @internal The store of a PriorityQueue with `options.compare`. */
export function priorityStore<T>(options: Record<string, unknown>): Store<T> {
  const compare = options.compare ?? defaultCompare
  if (typeof compare !== 'function') throw invalidType('options.compare', 'a function', compare)
  return new Heap<T>(compare as (a: T, b: T) => number)
}

function defaultCompare(a: any, b: any): number {
  if (Array.isArray(a) && Array.isArray(b)) {
    const n = Math.min(a.length, b.length)
    for (let i = 0; i < n; i++) {
      const order = defaultCompare(a[i], b[i])
      if (order !== 0) return order
    }
    return a.length - b.length
  }
  return a < b ? -1 : a > b ? 1 : 0
}

function checkMaxsize(value: unknown): number {
  if (value === 0) {
    throw new RangeError('options.maxsize must be a positive integer or Infinity, got 0; a Channel is a queue without buffer')
  }
  return checkLimit('options.maxsize', value)
}

/** Handed to a blocked putter once its item is accepted. */
const ACCEPTED = true
/** Handed to a blocked putter whose item the store refused: a PriorityQueue's `compare` threw. */
class Refused {
  constructor(readonly error: unknown) {}
}
/** Handed to blocked getters and putters by `shutdown()`. */
const SHUT: unique symbol = Symbol('shut down')
/** Handed to a getter of a Channel: a putter waits in line, come and take its item. */
const CALLED: unique symbol = Symbol('called')
/** `#poll` found nothing to take. */
const NONE: unique symbol = Symbol('none')
/** @internal What `_next` returns once a shut-down queue is empty: iteration ends. */
export const DRAINED: unique symbol = Symbol('drained')

/**
 * A wait that goes round (a called putter that left, a shut-down queue
 * still serving) keeps the deadline it started with: `timeLeft` of it.
 */
function deadlineOf(ms: number): number {
  return ms > 0 ? performance.now() + ms : 0
}

function timeLeft(ms: number, deadline: number): number {
  return ms > 0 ? Math.max(0, deadline - performance.now()) : ms
}

/** The part of every queue that both modes share. */
export abstract class QueueBase<T> {
  /** @internal Infinity when unbounded, 0 for a Channel. */
  protected _maxsize: number
  readonly #items: Store<T>
  // The payload of getters and peekers is their arrival number: who came first.
  readonly #getters = new WaitList<T | typeof SHUT | typeof CALLED, number>((item) => {
    if (item === CALLED) {
      this.#calls--
      this.#callGetter()
    } else if (item !== SHUT) {
      this.#restore(item)
    }
  })
  /**
   * Channel: getters called to take a blocked putter's item that have not
   * run yet. Those putters are theirs: nobody else takes them meanwhile.
   */
  #calls = 0
  /**
   * Items handed to getters that have not run yet: one may come back (its
   * getter interrupted), so a shut-down queue is not drained until they are taken.
   */
  #handedToGetters = 0
  // No give-back: a peeker takes nothing.
  readonly #peekers = new WaitList<T | typeof SHUT, number>()
  #arrivals = 0
  // No give-back: an accepted item stays in the queue.
  readonly #putters = new WaitList<typeof ACCEPTED | typeof SHUT | Refused, T>()
  #shutDown = false
  /** @internal Items accepted and not yet marked done (JoinableQueue). */
  protected _unfinished = 0
  readonly #joiners = new WaitList<true>()

  constructor(options?: QueueOptions) {
    const o = checkOptions('options', options)
    this._maxsize = checkMaxsize(o.maxsize)
    this.#items = this._newStore(o)
  }

  /** @internal The buffer; called by the constructor, so it must not read subclass fields. */
  protected _newStore(_options: Record<string, unknown>): Store<T> {
    return new Deque<T>()
  }

  /** Most items the queue holds: `Infinity` when unbounded, 0 for a Channel. */
  get maxsize(): number {
    return this._maxsize
  }

  /** Number of items in the queue. */
  qsize(): number {
    return this.#items.size
  }

  empty(): boolean {
    return this.#items.size === 0
  }

  /** A put would have to wait (always true for a Channel). */
  full(): boolean {
    return this.#items.size >= this._maxsize
  }

  /** `shutdown()` has been called. */
  isShutdown(): boolean {
    return this.#shutDown
  }

  /** Puts `item` if there is room now; throws `QueueFull` otherwise. */
  putNowait(item: T): void {
    if (!this.#offer(item)) throw new QueueFull()
  }

  /** Removes and returns the next item if there is one now; throws `QueueEmpty` otherwise. */
  getNowait(): T {
    const item = this.#poll()
    if (item === NONE) throw new QueueEmpty()
    return item
  }

  /**
   * The item `get()` would return next, left in the queue, if there is one
   * now (for a Channel: the item of the first blocked putter); throws
   * `QueueEmpty` otherwise, `QueueShutDown` once shut down and empty.
   */
  peekNowait(): T {
    const item = this.#peekNow()
    if (item === NONE) throw new QueueEmpty()
    return item
  }

  /**
   * Shuts the queue down: puts throw `QueueShutDown` from now on, blocked
   * putters fail with it, and gets (blocked ones too) fail with it once the
   * remaining items are gone, those handed to getters that have not run yet
   * included (one interrupted gives its item back). No effect the second time.
   */
  shutdown(): void {
    if (this.#shutDown) return
    this.#shutDown = true
    // Getters only wait while the queue is empty, so none of them misses an item.
    this.#getters.handOffAll(SHUT)
    this.#peekers.handOffAll(SHUT)
    this.#putters.handOffAll(SHUT)
  }

  /**
   * @internal
   * @param mayBlock the caller can wait (false for sync-mode code outside
   *   greenlets: a Channel put handed to a getter then returns at once).
   */
  *_put(item: T, options: QueuePutOptions | undefined, mayBlock = true): Blocking<void> {
    const ms = checkMs('options.timeoutMs', checkOptions('options', options).timeoutMs, true)
    const signal = waitSignal(options)
    // A Channel put that can wait lines up as a putter, as gevent's: it
    // returns once a getter has taken its item (a getter killed before it
    // ran takes nothing: the putter stays in line).
    const rendezvous = this._maxsize === 0 && mayBlock
    if (rendezvous) {
      if (this.#shutDown) throw new QueueShutDown()
    } else if (this.#offer(item)) {
      return
    }
    // Only a Channel has peekers while full: what they wait for is this item, the first blocked one.
    this.#showPeekers(item)
    const wait = this.#putters.request(ms, item, signal)
    // The getter called runs after this putter is in line (it waits from here on).
    if (rendezvous) this.#callGetter()
    const outcome: typeof ACCEPTED | typeof SHUT | Refused | TimedOut = yield wait
    if (outcome === TIMED_OUT) throw new QueueFull(`queue still full after ${ms} ms`)
    if (outcome === SHUT) throw new QueueShutDown()
    if (outcome instanceof Refused) throw outcome.error
  }

  /** Channel: wakes a waiting getter to take the item of a blocked putter. */
  #callGetter(): void {
    if (this.#getters.length === 0) return
    this.#calls++
    this.#getters.handOff(CALLED)
  }

  /** @internal */
  *_get(options: QueueGetOptions | undefined): Blocking<T> {
    const ms = checkMs('options.timeoutMs', checkOptions('options', options).timeoutMs, true)
    const signal = waitSignal(options)
    const deadline = deadlineOf(ms)
    for (;;) {
      const item = this.#poll()
      if (item !== NONE) return item
      const outcome: T | typeof SHUT | typeof CALLED | TimedOut = yield this.#getters.request(timeLeft(ms, deadline), ++this.#arrivals, signal)
      if (outcome === TIMED_OUT) throw new QueueEmpty(`queue still empty after ${ms} ms`)
      if (outcome === CALLED) {
        // Its putter is taken below (unless it left meanwhile: then wait again).
        this.#calls--
      } else if (outcome !== SHUT) {
        this.#tookHanded()
        return outcome
      }
      // Shut down: what is left, or comes back from an interrupted getter, is still served.
    }
  }

  /** A getter took the item handed to it. */
  #tookHanded(): void {
    // The last item that could come back is taken: those waiting for one learn the queue is drained.
    if (--this.#handedToGetters === 0 && this.#shutDown) {
      this.#getters.handOffAll(SHUT)
      this.#peekers.handOffAll(SHUT)
    }
  }

  /** @internal */
  *_peek(options: QueueGetOptions | undefined): Blocking<T> {
    const ms = checkMs('options.timeoutMs', checkOptions('options', options).timeoutMs, true)
    const signal = waitSignal(options)
    const deadline = deadlineOf(ms)
    for (;;) {
      const item = this.#peekNow()
      if (item !== NONE) return item
      const outcome: T | typeof SHUT | TimedOut = yield this.#peekers.request(timeLeft(ms, deadline), ++this.#arrivals, signal)
      if (outcome === TIMED_OUT) throw new QueueEmpty(`queue still empty after ${ms} ms`)
      if (outcome !== SHUT) return outcome
    }
  }

  /** @internal The next item for iteration, or `DRAINED` once shut down and empty. */
  *_next(): Blocking<T | typeof DRAINED> {
    try {
      return yield* this._get(undefined)
    } catch (err) {
      if (err instanceof QueueShutDown) return DRAINED
      throw err
    }
  }

  /** @internal */
  _taskDone(): void {
    if (this._unfinished === 0) throw new Error('taskDone() called more times than items were put')
    if (--this._unfinished === 0) this.#joiners.handOffAll(true)
  }

  /** @internal */
  *_join(options: WaitOptions | undefined): Blocking<boolean> {
    const ms = checkMs('options.timeoutMs', checkOptions('options', options).timeoutMs, true)
    const signal = waitSignal(options)
    if (this._unfinished === 0) return true
    return (yield this.#joiners.request(ms, undefined, signal)) !== TIMED_OUT
  }

  /** Accepts `item` if that needs no wait; false if the queue is full. */
  #offer(item: T): boolean {
    if (this.#shutDown) throw new QueueShutDown()
    // Getters wait only while the buffer is empty, so handing over keeps FIFO order.
    if (this.#getters.length === 0) {
      if (this.#items.size >= this._maxsize) return false
      // First: a PriorityQueue's compare that throws leaves everything as it was.
      this.#items.push(item)
      this._unfinished++
      this.#showPeekers(item)
      return true
    }
    this._unfinished++
    this.#showPeekers(item)
    this.#getters.handOff(item)
    this.#handedToGetters++
    return true
  }

  /** Shows `item`, about to be the next one, to the peekers that came before the first getter. */
  #showPeekers(item: T): void {
    for (let p = this.#peekers.first; p !== undefined; p = this.#peekers.first) {
      const g = this.#getters.first
      if (g !== undefined && g.payload < p.payload) return
      this.#peekers.handOff(item)
    }
  }

  /** What `#poll` would take, left in place. */
  #peekNow(): T | typeof NONE {
    if (this.#items.size > 0) return this.#items.peek()
    // Only a Channel has blocked putters while empty.
    const putter = this.#putters.first
    if (putter !== undefined) return putter.payload
    if (this.#drained()) throw new QueueShutDown()
    return NONE
  }

  /** Shut down, empty, and no item handed to a getter can come back. */
  #drained(): boolean {
    return this.#shutDown && this.#handedToGetters === 0
  }

  /** Takes the next item if that needs no wait. */
  #poll(): T | typeof NONE {
    if (this.#items.size > 0) {
      const item = this.#items.shift()
      if (this.#items.size < this._maxsize) this.#acceptPutter()
      return item
    }
    // Only a Channel has blocked putters while empty: take straight from the
    // first, unless every one of them is kept for a getter called already.
    if (this.#putters.length > this.#calls) {
      // The getter runs on first, the putter resumes after it (gevent's
      // test__queue.py TestChannel.test_send).
      const putter = this.#putters.handOff(ACCEPTED, true)!
      this._unfinished++
      return putter.payload
    }
    if (this.#drained()) throw new QueueShutDown()
    return NONE
  }

  /** Moves the item of the first blocked putter that the store takes into the room just made; a put whose item it refuses fails with the error. */
  #acceptPutter(): void {
    for (let putter = this.#putters.first; putter !== undefined; putter = this.#putters.first) {
      try {
        this.#items.push(putter.payload)
      } catch (error) {
        this.#putters.handOff(new Refused(error))
        continue
      }
      this.#putters.handOff(ACCEPTED)
      this._unfinished++
      return
    }
  }

  /** Takes back an item handed to a getter that was interrupted. */
  #restore(item: T): void {
    this.#handedToGetters--
    this.#showPeekers(item)
    if (this.#getters.handOff(item) === undefined) this.#items.pushFront(item)
    else this.#handedToGetters++
  }
}

/** A FIFO queue; the base of the other queues. */
export class Queue<T> extends QueueBase<T> {
  /**
   * Puts `item`, waiting for room while the queue is full. Rejects with
   * `QueueFull` on timeout, with `QueueShutDown` if the queue is or gets
   * shut down before the item is accepted.
   */
  put(item: T, options?: QueuePutOptions): Promise<void> {
    return drive(this._put(item, options))
  }

  /**
   * Removes and resolves with the next item, waiting for one while the
   * queue is empty. Rejects with `QueueEmpty` on timeout, with
   * `QueueShutDown` once the queue is shut down and empty.
   */
  get(options?: QueueGetOptions): Promise<T> {
    return drive(this._get(options))
  }

  /**
   * Resolves with the next item without removing it, waiting for one while
   * the queue is empty (gevent's `peek`). Rejects with `QueueEmpty` on
   * timeout, with `QueueShutDown` once the queue is shut down and empty.
   */
  peek(options?: QueueGetOptions): Promise<T> {
    return drive(this._peek(options))
  }

  /** Yields items as `get()` returns them; ends once the queue is shut down and empty. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for (let item = await drive(this._next()); item !== DRAINED; item = await drive(this._next())) yield item
  }
}

/** A queue that returns the most recently put item first. */
export class LifoQueue<T> extends Queue<T> {
  /** @internal */
  protected override _newStore(): Store<T> {
    return new Stack<T>()
  }
}

/** A queue that returns the smallest item first (per `options.compare`). */
export class PriorityQueue<T> extends Queue<T> {
  constructor(options?: PriorityQueueOptions<T>) {
    super(options)
  }

  /** @internal */
  protected override _newStore(options: Record<string, unknown>): Store<T> {
    return priorityStore(options)
  }
}

/**
 * A queue that counts unfinished tasks: every accepted item adds one,
 * `taskDone()` removes one, and `join()` waits until none is left.
 */
export class JoinableQueue<T> extends Queue<T> {
  /** Items accepted and not yet marked done with `taskDone()`. */
  get unfinishedTasks(): number {
    return this._unfinished
  }

  /** Marks one item as processed. Throws if every accepted item already has been. */
  taskDone(): void {
    this._taskDone()
  }

  /**
   * Resolves `true` once every accepted item has been marked done (at once
   * if none is unfinished), `false` on timeout.
   */
  join(options?: WaitOptions): Promise<boolean> {
    return drive(this._join(options))
  }
}

/**
 * A queue without buffer (gevent's Channel): `put()` waits in line until a
 * getter takes the item, `get()` until a putter brings one. `qsize()` is 0,
 * except for an item `putNowait()` handed to a getter interrupted before it
 * ran: that item waits in the queue for the next get rather than be lost.
 */
export class Channel<T> extends Queue<T> {
  constructor() {
    super()
    this._maxsize = 0
  }
}
