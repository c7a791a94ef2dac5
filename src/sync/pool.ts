/**
 * Groups and pools of sync greenlets: the async module's (see src/pool.ts,
 * where their logic lives) with calls that block the calling greenlet.
 * `imap` and `imapUnordered` are plain iterators (`for (const r of ...)`)
 * that block for each result and, like the async mode's, stay usable after
 * a call failed; the input may be an async iterable too.
 */
import type { Blocking } from '../_waiters'
import { runNow } from '../_waiters'
import { checkFunction, checkOptions } from '../errors'
import type { KillAllOptions } from '../greenlet'
import {
  GroupBase,
  type GroupJoinOptions,
  type MapFunction,
  type MapInput,
  type ImapOptions,
  type MapRun,
  NOT_READY,
  type SpawnOptions,
  checkArgs,
  checkCallback,
  checkMapArguments,
  checkPoolSize,
  iterationStep,
  laterKillRound,
} from '../pool'
import { isKillallTimeout } from '../lifecycle'
import { Greenlet, getcurrent, killall, spawn } from './greenlet'
import { block, blockOn, sleep } from './waits'

/** The common part of the sync mode's `Group` and `Pool`. */
export abstract class BaseGroup extends GroupBase<Greenlet> {
  /** Starts `fn(...args)` in a new member greenlet. */
  abstract spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R>

  /**
   * `spawn(fn, ...args)` with options for the wait for a slot: with
   * `{ block: false }` a full Pool throws `PoolFull` instead of blocking
   * (also on `timeoutMs`). Options come first, so that `spawn`'s arguments
   * stay free (as the executors' `submitWith`).
   */
  abstract spawnWith<A extends unknown[], R>(options: SpawnOptions, fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R>

  /** Tracks `greenlet` until it finishes (see `spawnWith` for `options`). A finished greenlet is not added. */
  abstract add(greenlet: Greenlet, options?: SpawnOptions): void

  /**
   * Returns `fn(...args)` run in a member greenlet (blocking for a slot in a
   * Pool, then for the result), or throws its exception. Called from a
   * member, `fn` runs right there (gevent's `apply`: no slot to wait for).
   */
  apply<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, args?: A): R {
    checkFunction('fn', fn)
    const list = checkArgs(args) as A
    if (this._applyHere()) return block(fn(...list))
    return (this.spawn(fn, ...list) as Greenlet<R>).get()
  }

  /**
   * Starts `fn(...args)` and returns its greenlet at once, never blocking: a
   * member if a slot is free, else a greenlet outside the group that blocks
   * for a slot and applies it (gevent's `apply_async`; join the greenlet,
   * not the group). `callback(result)` runs in a new greenlet once it has
   * returned, not if it fails.
   */
  applyAsync<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, args?: A, callback?: (result: R) => unknown): Greenlet<R> {
    checkFunction('fn', fn)
    const list = checkArgs(args) as A
    const cb = checkCallback(callback)
    const member = this._applyAsyncNow(fn, list, cb)
    if (member !== undefined) return member as Greenlet<R>
    return spawn(() => {
      const result = this.apply(fn, list)
      if (cb !== undefined) spawn(cb, result)
      return result
    })
  }

  /**
   * Runs `map(fn, iterable)` in a new greenlet outside the group and returns
   * it at once (gevent's `map_async`); `callback(results)` is called in it
   * once the map has returned.
   */
  mapAsync<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>, callback?: (results: R[]) => unknown): Greenlet<R[]> {
    checkMapArguments(fn, iterable)
    const cb = checkCallback(callback)
    return spawn(() => {
      const results = this.map(fn, iterable)
      if (cb !== undefined) block(cb(results))
      return results
    })
  }

  /**
   * Blocks until the group is empty (returns `true` at once if it is;
   * members added meanwhile are waited for too); `false` on timeout. With
   * `raiseError`, throws a member's failure (see the option).
   */
  join(options?: GroupJoinOptions): boolean {
    return blockOn(this._join(options), 'Group.join()')
  }

  /**
   * Kills every member (see `killall` for the options); by default blocks
   * until they have died, and kills those that join meanwhile too (a spawn
   * that waited for a slot), as gevent's: the group is empty then.
   */
  kill(options?: KillAllOptions): void {
    const startedAt = performance.now()
    try {
      killall([...this], options)
      if (options?.block === false) return
      for (let next = this._nextKillRound(); next !== 'done'; next = this._nextKillRound()) {
        if (next === 'kill') killall([...this], laterKillRound(options, startedAt))
        else sleep(0)
      }
    } catch (err) {
      // Members still alive at `timeoutMs`: returns, as gevent's Group.kill(timeout=).
      if (!isKillallTimeout(err)) throw err
    }
  }

  /** Returns `fn(item)` for every item, in input order. */
  map<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): R[] {
    return blockOn(this._map(fn, iterable), 'Group.map()')
  }

  /**
   * Yields `fn(item)` for every item, in input order. A call that fails
   * throws from `next()` at its position; the next `next()` goes on with
   * the remaining results (gevent's IMap).
   */
  imap<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>, options?: ImapOptions): SyncMapIterator<R> {
    return new SyncMapIterator(this._mapRun(fn, iterable, true, false, options))
  }

  /** Yields `fn(item)` for every item, as the calls finish; a failed call throws at its turn and the iteration goes on (see `imap`). */
  imapUnordered<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>, options?: ImapOptions): SyncMapIterator<R> {
    return new SyncMapIterator(this._mapRun(fn, iterable, false, false, options))
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

  /** As `spawn`: a Group is never full, `options` are only checked. */
  spawnWith<A extends unknown[], R>(options: SpawnOptions, fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R> {
    return runNow(this._spawn(fn, args, checkOptions('options', options))) as Greenlet<R>
  }

  add(greenlet: Greenlet, options?: SpawnOptions): void {
    runNow(this._add(greenlet, options))
  }
}

/**
 * A group of at most `size` greenlets: adding one blocks until a slot is
 * free. `new Pool()` has no limit (`size` is `Infinity`); nothing fits in a
 * `Pool(0)`, whose `spawn` blocks until its timeout.
 */
export class Pool extends BaseGroup {
  readonly #size: number

  /** Most members at once: `Infinity` for no limit. Fixed at construction (a getter: assigning it is a TypeError in strict code). */
  get size(): number {
    return this.#size
  }

  constructor(size?: number) {
    const checked = checkPoolSize(size)
    super(checked)
    this.#size = checked
  }

  /** Takes a free slot, or blocks until one is free, then starts `fn(...args)` in a new member greenlet. */
  spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R> {
    return blockOn(this._spawn(fn, args), 'Pool.spawn()') as Greenlet<R>
  }

  /** `spawn` with options for the wait for a slot: `{ block: false }` (or an expired `timeoutMs`) throws `PoolFull`. */
  spawnWith<A extends unknown[], R>(options: SpawnOptions, fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R> {
    return blockOn(this._spawnWith(options, fn, args), 'Pool.spawnWith()') as Greenlet<R>
  }

  /** Blocks until a slot is free (see `spawnWith` for `options`), then tracks `greenlet` until it finishes. */
  add(greenlet: Greenlet, options?: SpawnOptions): void {
    blockOn(this._add(greenlet, options), 'Pool.add()')
  }
}

/**
 * What `imap` and `imapUnordered` return in the sync mode: an iterator over
 * the results, blocking for each, that unlike a generator stays usable after
 * `next()` threw the failure of a call: the following `next()` goes on with
 * the remaining results (gevent's IMap). `return()` (what `break` calls)
 * stops the input and kills the calls still running; so does a kill of the
 * greenlet blocked in `next()`. The run starts at once, as gevent's IMap.
 */
export class SyncMapIterator<R> implements IterableIterator<R, undefined, undefined> {
  #done = false

  /** @internal */
  constructor(private readonly run: MapRun<Greenlet, any, R>) {
    run.start()
  }

  [Symbol.iterator](): this {
    return this
  }

  /** The next result, blocking for it; throws the exception of a call that failed, after which the iteration goes on. */
  next(): IteratorResult<R, undefined> {
    if (this.#done) return { done: true, value: undefined }
    const run = this.run
    let result = run.poll()
    if (result === NOT_READY) {
      try {
        result = blockOn(run.next(), 'map iteration')
      } catch (err) {
        // The wait itself failed (kill, Timeout, or outside greenlets): the consumer is gone.
        this.#finish()
        throw err
      }
    }
    const step = iterationStep<R>(result)
    if (step.done === true) this.#finish()
    return step
  }

  /** Ends the iteration: stops reading the input and kills the calls still running. */
  return(value?: undefined): IteratorResult<R, undefined> {
    this.#finish()
    return { done: true, value }
  }

  #finish(): void {
    this.#done = true
    this.run.stop()
  }
}
