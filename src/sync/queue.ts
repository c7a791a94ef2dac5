/**
 * Queues for sync greenlets: the async module's (see src/queue.ts, where
 * their logic lives) with `put`, `get` and `join` that block the calling
 * greenlet, and plain iteration (`for (const item of queue)`) that blocks
 * for each item and ends once the queue is shut down and empty.
 */
import type { WaitOptions } from '../event'
import {
  DRAINED,
  type PriorityQueueOptions,
  QueueBase,
  type QueueGetOptions,
  type QueuePutOptions,
  Stack,
  type Store,
  priorityStore,
} from '../queue'
import { getcurrent } from './greenlet'
import { blockOn } from './waits'

/** A FIFO queue; the base of the other queues. */
export class Queue<T> extends QueueBase<T> {
  /**
   * Puts `item`, blocking while the queue is full. Throws `QueueFull` on
   * timeout, `QueueShutDown` if the queue is or gets shut down before the
   * item is accepted.
   */
  put(item: T, options?: QueuePutOptions): void {
    blockOn(this._put(item, options, getcurrent() !== null), 'Queue.put()')
  }

  /**
   * Removes and returns the next item, blocking while the queue is empty.
   * Throws `QueueEmpty` on timeout, `QueueShutDown` once the queue is shut
   * down and empty.
   */
  get(options?: QueueGetOptions): T {
    return blockOn(this._get(options), 'Queue.get()')
  }

  /**
   * Returns the next item without removing it, blocking while the queue is
   * empty (gevent's `peek`). Throws `QueueEmpty` on timeout, `QueueShutDown`
   * once the queue is shut down and empty.
   */
  peek(options?: QueueGetOptions): T {
    return blockOn(this._peek(options), 'Queue.peek()')
  }

  /** Yields items as `get()` returns them; ends once the queue is shut down and empty. */
  *[Symbol.iterator](): Generator<T, void, undefined> {
    for (let item = blockOn(this._next(), 'Queue iteration'); item !== DRAINED; item = blockOn(this._next(), 'Queue iteration')) {
      yield item
    }
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
 * `taskDone()` removes one, and `join()` blocks until none is left.
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
   * Blocks until every accepted item has been marked done (returns `true`
   * at once if none is unfinished); `false` on timeout.
   */
  join(options?: WaitOptions): boolean {
    return blockOn(this._join(options), 'JoinableQueue.join()')
  }
}

/**
 * A queue without buffer (gevent's Channel): `put()` blocks until a getter
 * takes the item, `get()` until a putter brings one. `qsize()` is always 0.
 */
export class Channel<T> extends Queue<T> {
  constructor() {
    super()
    this._maxsize = 0
  }
}
