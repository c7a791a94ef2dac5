/**
 * Groups and pools of sync greenlets: the async module's (see src/pool.ts,
 * where their logic lives) with calls that block the calling greenlet.
 * `imap` and `imapUnordered` are plain iterables (`for (const r of ...)`)
 * that block for each result; the input may be an async iterable too.
 */
import type { Blocking } from '../_waiters'
import { runNow } from '../_waiters'
import { checkPositiveInteger } from '../errors'
import type { KillAllOptions } from '../greenlet'
import { END, GroupBase, type GroupJoinOptions, type MapFunction, type MapInput, type MapRun, NOT_READY } from '../pool'
import { Greenlet, getcurrent, killall } from './greenlet'
import { blockOn } from './waits'

/** The common part of the sync mode's `Group` and `Pool`. */
export abstract class BaseGroup extends GroupBase<Greenlet> {
  /** Starts `fn(...args)` in a new member greenlet. */
  abstract spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R>

  /** Tracks `greenlet` until it finishes. A finished greenlet is not added. */
  abstract add(greenlet: Greenlet): void

  /**
   * Blocks until the group is empty (returns `true` at once if it is;
   * members added meanwhile are waited for too); `false` on timeout. With
   * `raiseError`, throws a member's failure (see the option).
   */
  join(options?: GroupJoinOptions): boolean {
    return blockOn(this._join(options), 'Group.join()')
  }

  /** Kills every member (see `killall` for the options); by default blocks until they have died. */
  kill(options?: KillAllOptions): void {
    killall([...this], options)
  }

  /** Returns `fn(item)` for every item, in input order. */
  map<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): R[] {
    return blockOn(this._map(fn, iterable), 'Group.map()')
  }

  /** Yields `fn(item)` for every item, in input order. */
  imap<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): Generator<R, void, undefined> {
    return mapResults(this._mapRun(fn, iterable, true))
  }

  /** Yields `fn(item)` for every item, as the calls finish. */
  imapUnordered<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): Generator<R, void, undefined> {
    return mapResults(this._mapRun(fn, iterable, false))
  }

  /** @internal */
  readonly _greenletClass = Greenlet

  /** @internal */
  _getcurrent(): Greenlet | null {
    return getcurrent()
  }

  /** @internal */
  _run<R>(op: Blocking<R>): R {
    return blockOn(op, 'a Group task')
  }
}

/** A group of any number of greenlets. */
export class Group extends BaseGroup {
  constructor() {
    super(undefined)
  }

  spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R> {
    return runNow(this._spawn(fn, args)) as Greenlet<R>
  }

  add(greenlet: Greenlet): void {
    runNow(this._add(greenlet))
  }
}

/** A group of at most `size` greenlets: adding one blocks until a slot is free. */
export class Pool extends BaseGroup {
  /** Most members at once. */
  readonly size: number

  constructor(size: number) {
    super(checkPositiveInteger('size', size))
    this.size = size
  }

  /** Blocks until a slot is free, then starts `fn(...args)` in a new member greenlet. */
  spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R> {
    return blockOn(this._spawn(fn, args), 'Pool.spawn()') as Greenlet<R>
  }

  /** Blocks until a slot is free, then tracks `greenlet` until it finishes. */
  add(greenlet: Greenlet): void {
    blockOn(this._add(greenlet), 'Pool.add()')
  }
}

function* mapResults<T, R>(run: MapRun<Greenlet, T, R>): Generator<R, void, undefined> {
  run.start()
  try {
    for (;;) {
      let result = run.poll()
      if (result === NOT_READY) result = blockOn(run.next(), 'map iteration')
      if (result === END) return
      yield result
    }
  } finally {
    run.stop()
  }
}
