/**
 * Groups and pools of greenlets.
 *
 * A `Group` tracks greenlets until they finish: `join()` waits until it is
 * empty, `kill()` kills every member. A `Pool(size)` is a group of at most
 * `size` members (no limit without `size`; none fits in a `Pool(0)`, as in
 * gevent): `spawn()` and `add()` take a slot at the call, or wait for one
 * (FIFO, killable), and a slot frees when its member finishes or is
 * discarded. `spawnWith({ block: false }, fn, ...args)` and
 * `add(g, { block: false })` raise `PoolFull` instead of waiting (also when
 * `timeoutMs` expires), as gevent's `add(greenlet, blocking=False)`.
 *
 * `apply(fn, args)` runs `fn` in a member and returns its result (directly
 * in the caller when that is a member already, which could otherwise wait
 * for its own slot); `applyAsync` and `mapAsync` return a greenlet at once,
 * never waiting for a slot, and hand the result to an optional callback.
 *
 * `map`, `imap` and `imapUnordered` run a function over an iterable (sync or
 * async) in member greenlets, so in a Pool never more than `size` run at
 * once. Reading the input starts at the first `next()`; a Pool reads one
 * item per slot that frees (an endless input is fine), a Group reads it all
 * at once. `imap` yields results in input order, `imapUnordered`
 * as they finish, `map` resolves with all of them in input order.
 *
 * `map` fails fast: the first task that fails (or is killed from outside)
 * fails it, even if other results are ready; the tasks still running are
 * killed and no new one starts. `imap` and `imapUnordered` go on, as
 * gevent's IMap: a failed task raises its exception at its position (in
 * input order, or when it finished), and the next `next()` goes on with the
 * remaining results; an input that throws raises at the position after the
 * items read before, and ends the iteration. Leaving the iteration (`break`,
 * `return()`), or the consuming greenlet being killed while it waits for a
 * result, stops the input and kills the tasks still running.
 *
 * `GroupBase` (and the map runs) hold the logic of both modes; this
 * module's groups wait with Promises and hold async greenlets, those of
 * `greenthread/sync` block and hold sync greenlets.
 */
import type { GreenletBase } from './_greenlet-base'
import { type Blocking, TIMED_OUT, type TimedOut, WaitList, drive, runNow, waitSignal } from './_waiters'
import { checkFlag, checkFunction, checkLimit, checkMs, checkOptions, invalidType, killedBeforeReturning, rejecting } from './errors'
import { Greenlet, type KillAllOptions, type KillOptions, getcurrent, killall, spawn } from './greenlet'
import { isKillallTimeout } from './lifecycle'
import { sleep } from './hub'
import { Semaphore } from './lock'
import { QueueFull } from './queue'

/** @internal The options of a later round of `Group.kill()`: what is left of its timeout. */
export function laterKillRound(options: KillAllOptions | undefined, startedAt: number): KillAllOptions {
  const ms = options?.timeoutMs
  return { ...options, timeoutMs: ms === undefined || ms === null ? ms : Math.max(0, ms - (performance.now() - startedAt)) }
}

/**
 * Raised by a Pool that is full when a member was to be added without
 * waiting (`{ block: false }`), or when `timeoutMs` expired first.
 * A `QueueFull`, as gevent's PoolFull.
 */
export class PoolFull extends QueueFull {
  constructor(message = 'pool is full') {
    super(message)
    this.name = 'PoolFull'
  }
}

export interface SpawnOptions {
  /** Wait for a free slot; with `false`, raise `PoolFull` at once if none is free. @default true */
  block?: boolean
  /** Raise `PoolFull` if no slot frees within this many milliseconds. @default no limit */
  timeoutMs?: number
  /** Stop waiting for a slot once it aborts: the call fails with its reason (at once if it has aborted). */
  signal?: AbortSignal
}

export interface GroupJoinOptions {
  /** Stop waiting (resolve `false`) after this many milliseconds. @default no limit */
  timeoutMs?: number
  /**
   * Reject with the exception of a member that failed, either while
   * joining or earlier, if no join has raised that failure yet.
   * @default false
   */
  raiseError?: boolean
  /** Stop waiting once it aborts: the join fails with its reason (at once if it has aborted). */
  signal?: AbortSignal
}

/** The input of `map`, `imap` and `imapUnordered`. */
export type MapInput<T> = Iterable<T> | AsyncIterable<T>
/** The function `map`, `imap` and `imapUnordered` call on every item, each call in its own greenlet. */
export type MapFunction<T, R> = (item: T) => R | PromiseLike<R>

/** Options of `imap` and `imapUnordered`. */
export interface ImapOptions {
  /**
   * gevent's `maxsize`: at most this many items are out at once, read from
   * the input and not yet taken by the reader (running, or finished and
   * waiting): while that many are, no further item is read or started. A
   * slow reader, or a Group (which has no size), then bounds the memory of a
   * long or endless input; below a Pool's size it also bounds the calls that
   * run at once. `null`, `undefined` or `Infinity`: no bound.
   */
  maxsize?: number | null
}

/** @internal The bound of `options.maxsize`, checked; Infinity for none. */
export function checkImapOptions(options: unknown): number {
  return checkLimit('options.maxsize', checkOptions('options', options).maxsize)
}

/** A greenlet of either mode, as far as groups go. */
export interface Member extends GreenletBase<any, any> {
  kill(exception?: unknown, options?: KillOptions): unknown
}

function isAsyncIterable<T>(input: MapInput<T>): input is AsyncIterable<T> {
  return typeof (input as any)[Symbol.asyncIterator] === 'function'
}

function noop(): void {}

/**
 * @internal A Pool's `size`: `undefined`, `null` and `Infinity` mean no
 * limit (returned as `Infinity`); else an integer >= 0 (gevent: 0 is a
 * pool nothing fits in).
 */
export function checkPoolSize(size: unknown): number {
  if (size === undefined || size === null || size === Infinity) return Infinity
  if (typeof size !== 'number') throw invalidType('size', 'a non-negative integer, or undefined for no limit', size)
  if (!Number.isInteger(size) || size < 0) throw new RangeError(`size must be a non-negative integer, or undefined for no limit, got ${size}`)
  return size
}

/** @internal `args` of `apply`/`applyAsync`: an array (the arguments), or nothing. */
export function checkArgs(args: unknown): unknown[] {
  if (args === undefined) return []
  if (!Array.isArray(args)) throw invalidType('args', 'an array of arguments', args)
  return args
}

/** @internal An optional callback. */
export function checkCallback(callback: unknown): ((result: any) => unknown) | undefined {
  if (callback !== undefined) checkFunction('callback', callback)
  return callback as ((result: any) => unknown) | undefined
}

/** The slot options of `spawnWith`/`add`: `null` when they must not wait, else the wait's limit (-1: none). */
function slotWait(options: SpawnOptions | undefined): { ms: number | null; signal: AbortSignal | undefined } {
  const o = checkOptions('options', options)
  const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
  const signal = waitSignal(o)
  return { ms: checkFlag('options.block', o.block, true) ? ms : null, signal }
}

/** The logic of `Group` and `Pool` that both modes share. `G` is the mode's Greenlet. */
export abstract class GroupBase<G extends Member> {
  readonly #members = new Set<G>()
  /** A Pool's free slots; none for a Group. */
  readonly #slots: Semaphore | undefined
  readonly #joiners = new WaitList<true>()
  // A failure handed to an interrupted joiner stays to be raised by the next.
  readonly #raisingJoiners = new WaitList<G | undefined>((failed) => {
    if (failed !== undefined) this.#unraised ??= failed
  })
  /** The first member failure that no `join({ raiseError: true })` has raised yet. */
  #unraised: G | undefined = undefined

  readonly #onFinish = (g: G): void => {
    if (!this.#members.has(g)) return
    // A failure nobody looks at is reported, members' too (gevent's hub prints them all).
    if (g._diedFailing) {
      if (this.#raisingJoiners.length > 0) {
        g._markObserved()
        this.#raisingJoiners.handOffAll(g)
      } else {
        this.#unraised ??= g
      }
    }
    this.discard(g)
  }

  /** @param slots most members at once (a Pool), or `undefined`/`Infinity` for no limit. */
  protected constructor(slots: number | undefined) {
    this.#slots = slots === undefined || slots === Infinity ? undefined : new Semaphore(slots)
  }

  /** @internal The mode's Greenlet class: members are made and recognised by it. */
  abstract readonly _greenletClass: new (fn: (...args: any[]) => unknown, ...args: unknown[]) => G
  /** @internal The mode's current greenlet. */
  abstract _getcurrent(): G | null
  /** @internal Runs a blocking operation as the mode does: the body of a greenlet that runs it. */
  abstract _run<R>(op: Blocking<R>): unknown

  /** How many more members fit without waiting (`Infinity` for a Group). */
  free(): number {
    return this.#slots?.value ?? Infinity
  }

  /** No member fits without waiting. */
  full(): boolean {
    return this.free() === 0
  }

  /** Number of members. */
  get length(): number {
    return this.#members.size
  }

  has(greenlet: G): boolean {
    return this.#members.has(greenlet)
  }

  [Symbol.iterator](): IterableIterator<G> {
    return this.#members.values()
  }

  /** Stops tracking `greenlet`, without killing it; frees its slot in a Pool. */
  discard(greenlet: G): void {
    if (!this.#members.delete(greenlet)) return
    greenlet.unlink(this.#onFinish)
    if (this.#members.size === 0) {
      this.#joiners.handOffAll(true)
      this.#raisingJoiners.handOffAll(undefined)
    }
    this.#slots?.release()
  }

  /**
   * @internal Starts `fn(...args)` in a new member, waiting for a slot in a
   * Pool (the slot is taken at the call when one is free). With `options`,
   * raises `PoolFull` instead of waiting (`block: false`) or on timeout.
   */
  *_spawn<R>(fn: (...args: any[]) => R | PromiseLike<R>, args: unknown[], options?: SpawnOptions): Blocking<G> {
    // Checked before taking a slot, which nothing would give back otherwise.
    checkFunction('fn', fn)
    yield* this.#takeSlot(options)
    return this.#start(fn, args)
  }

  /** @internal `spawnWith`: `options` must be an options object. */
  *_spawnWith<R>(options: SpawnOptions, fn: (...args: any[]) => R | PromiseLike<R>, args: unknown[]): Blocking<G> {
    return yield* this._spawn(fn, args, checkOptions('options', options))
  }

  /** Takes a slot (nothing in a Group), waiting as `options` say; raises `PoolFull` if it may not wait or the wait times out. */
  *#takeSlot(options: SpawnOptions | undefined): Blocking<void> {
    const { ms, signal } = options === undefined ? { ms: -1, signal: undefined } : slotWait(options)
    if (this.#slots === undefined) return
    if (ms === null) {
      if (!this.#slots.tryAcquire()) throw new PoolFull()
      return
    }
    if (!(yield* this.#slots._acquire({ timeoutMs: ms < 0 ? undefined : ms, signal }))) {
      throw new PoolFull(`pool still full after ${ms} ms`)
    }
  }

  /** @internal Starts `fn(...args)` in a new member if that needs no wait, else returns undefined. */
  _spawnNow<R>(fn: (...args: any[]) => R | PromiseLike<R>, args: unknown[]): G | undefined {
    return this.#slots === undefined || this.#slots.tryAcquire() ? this.#start(fn, args) : undefined
  }

  /** Starts a member in a slot already taken. */
  #start<R>(fn: (...args: any[]) => R | PromiseLike<R>, args: unknown[]): G {
    const g = new this._greenletClass(fn, ...args)
    this.#track(g)
    g.start()
    return g
  }

  /** @internal Tracks `greenlet` until it finishes, waiting for a slot in a Pool (see `_spawn` for `options`). A finished greenlet is not added. */
  *_add(greenlet: G, options?: SpawnOptions): Blocking<void> {
    if (!(greenlet instanceof this._greenletClass)) throw invalidType('greenlet', 'a Greenlet', greenlet)
    if (options !== undefined) slotWait(options)
    if (greenlet.dead || this.has(greenlet)) return
    if (this.#slots !== undefined) {
      yield* this.#takeSlot(options)
      if (greenlet.dead || this.has(greenlet)) {
        this.#slots.release()
        return
      }
    }
    this.#track(greenlet)
  }

  /** @internal */
  *_join(options: GroupJoinOptions | undefined): Blocking<boolean> {
    const o = checkOptions('options', options)
    const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    const signal = waitSignal(o)
    if (!checkFlag('options.raiseError', o.raiseError, false)) {
      return this.#members.size === 0 || (yield this.#joiners.request(ms, undefined, signal)) !== TIMED_OUT
    }
    let failed = this.#unraised
    if (failed === undefined && this.#members.size > 0) {
      const outcome: G | undefined | TimedOut = yield this.#raisingJoiners.request(ms, undefined, signal)
      if (outcome === TIMED_OUT) return false
      failed = outcome
    }
    if (failed === undefined) return true
    this._claim(failed)
    throw failed.exception
  }

  /**
   * @internal A map run over `iterable`; nothing starts before its
   * `start()`. `failFast`: the first failure ends it (map); else each
   * failure is a result of its own (imap, imapUnordered).
   */
  _mapRun<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>, ordered: boolean, failFast: boolean, options?: ImapOptions): MapRun<G, T, R> {
    checkMapArguments(fn, iterable)
    return new MapRun(this, fn, iterable, ordered, failFast, checkImapOptions(options))
  }

  /** @internal All results of `fn` over `iterable`, in input order. */
  *_map<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): Blocking<R[]> {
    const run = this._mapRun(fn, iterable, true, true)
    run.start()
    try {
      const results: R[] = []
      for (let r = yield* run.next(); r !== END; r = yield* run.next()) {
        if (r instanceof MapFailure) throw r.error
        results.push(r)
      }
      return results
    } finally {
      run.stop()
    }
  }

  /** @internal apply()'s call runs in the caller itself: it is a member, which could wait for its own slot (gevent). */
  _applyHere(): boolean {
    const current = this._getcurrent()
    return current !== null && this.has(current)
  }

  /**
   * @internal applyAsync(): a member running `fn(...args)` if a slot is
   * free now, else undefined (the caller then starts a greenlet outside the
   * group that applies it); `callback` gets the result of a member that
   * returns, in a greenlet of its own.
   */
  _applyAsyncNow<R>(fn: (...args: any[]) => R | PromiseLike<R>, args: unknown[], callback: ((result: R) => unknown) | undefined): G | undefined {
    const g = this._spawnNow(fn, args)
    if (g !== undefined && callback !== undefined) {
      g._rawlink((done: G) => {
        if (!done._diedFailing && done._returned) new this._greenletClass(callback, done.value).start()
      })
    }
    return g
  }

  #track(greenlet: G): void {
    this.#members.add(greenlet)
    greenlet._rawlink(this.#onFinish)
  }

  /**
   * @internal What a blocking `kill()` does next: kill the members other
   * than the current greenlet that have not died, let a spawn that was
   * given a slot add its member (to kill it next), or return.
   */
  _nextKillRound(): 'kill' | 'yield' | 'done' {
    const current = this._getcurrent()
    let leaving = false
    for (const g of this.#members) {
      if (g === current) continue
      if (!g.dead) return 'kill'
      // Dead, its link not run yet (one killed before it started dies at once): it leaves the group then.
      leaving = true
    }
    return leaving || (this.#slots?._handedPending ?? 0) > 0 ? 'yield' : 'done'
  }

  /** @internal `failed`'s exception is being raised to the caller: no join raises it again. */
  _claim(failed: G): void {
    if (this.#unraised === failed) this.#unraised = undefined
  }
}

/** @internal The checks of `map`'s arguments. */
export function checkMapArguments(fn: unknown, iterable: unknown): void {
  checkFunction('fn', fn)
  if (iterable === null || iterable === undefined || (typeof (iterable as any)[Symbol.iterator] !== 'function' && !isAsyncIterable(iterable as MapInput<unknown>))) {
    throw invalidType('iterable', 'an iterable or async iterable', iterable)
  }
}

/** The common part of the async mode's `Group` and `Pool`. */
export abstract class BaseGroup extends GroupBase<Greenlet> {
  /** Starts `fn(...args)` in a new member greenlet. */
  abstract spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R> | Promise<Greenlet<R>>

  /**
   * `spawn(fn, ...args)` with options for the wait for a slot: with
   * `{ block: false }` a full Pool raises `PoolFull` instead of waiting (also
   * on `timeoutMs`). Options come first, so that `spawn`'s arguments stay
   * free (as the executors' `submitWith`).
   */
  abstract spawnWith<A extends unknown[], R>(options: SpawnOptions, fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R> | Promise<Greenlet<R>>

  /** Tracks `greenlet` until it finishes (see `spawnWith` for `options`). A finished greenlet is not added. */
  abstract add(greenlet: Greenlet, options?: SpawnOptions): void | Promise<void>

  /**
   * Resolves with `fn(...args)` run in a member greenlet (waiting for a slot
   * in a Pool), or rejects with its exception. Called from a member, `fn`
   * runs right there (gevent's `apply`: no slot to wait for).
   */
  async apply<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, args?: A): Promise<R> {
    checkFunction('fn', fn)
    const list = checkArgs(args) as A
    if (this._applyHere()) return await fn(...list)
    const g: Greenlet<R> = await this.spawn(fn, ...list)
    return g.get()
  }

  /**
   * Starts `fn(...args)` and returns its greenlet at once, never waiting: a
   * member if a slot is free, else a greenlet outside the group that waits
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
    return spawn(async () => {
      const result = await this.apply(fn, list)
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
    return spawn(async () => {
      const results = await this.map(fn, iterable)
      if (cb !== undefined) await cb(results)
      return results
    })
  }

  /**
   * Resolves `true` once the group is empty (at once if it is; members
   * added meanwhile are waited for too), `false` on timeout. With
   * `raiseError`, rejects with a member's failure (see the option).
   */
  join(options?: GroupJoinOptions): Promise<boolean> {
    return drive(this._join(options))
  }

  /**
   * Kills every member (see `killall` for the options); by default waits
   * until they have died, and kills those that join meanwhile too (a spawn
   * that waited for a slot), as gevent's: the group is empty then.
   */
  kill(options?: KillAllOptions): Promise<void> {
    return rejecting(async () => {
      const startedAt = performance.now()
      try {
        await killall([...this], options)
        if (options?.block === false) return
        for (let next = this._nextKillRound(); next !== 'done'; next = this._nextKillRound()) {
          if (next === 'kill') await killall([...this], laterKillRound(options, startedAt))
          else await sleep(0)
        }
      } catch (err) {
        // Members still alive at `timeoutMs`: returns, as gevent's Group.kill(timeout=).
        if (!isKillallTimeout(err)) throw err
      }
    })
  }

  /** Resolves with `fn(item)` for every item, in input order. */
  map<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): Promise<R[]> {
    return drive(this._map(fn, iterable))
  }

  /**
   * Yields `fn(item)` for every item, in input order. A call that fails
   * rejects the `next()` at its position; the next `next()` goes on with
   * the remaining results (gevent's IMap).
   */
  imap<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>, options?: ImapOptions): MapIterator<R> {
    return new MapIterator(() => this._mapRun(fn, iterable, true, false, options))
  }

  /** Yields `fn(item)` for every item, as the calls finish; a failed call rejects the `next()` at its turn and the iteration goes on (see `imap`). */
  imapUnordered<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>, options?: ImapOptions): MapIterator<R> {
    return new MapIterator(() => this._mapRun(fn, iterable, false, false, options))
  }

  /** @internal */
  readonly _greenletClass = Greenlet

  /** @internal */
  _getcurrent(): Greenlet | null {
    return getcurrent()
  }

  /** @internal */
  _run<R>(op: Blocking<R>): Promise<R> {
    return drive(op)
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
 * A group of at most `size` greenlets: adding one waits for a free slot.
 * `new Pool()` has no limit (`size` is `Infinity`); nothing fits in a
 * `Pool(0)`, whose `spawn` waits until its timeout.
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

  /** Takes a free slot at the call, or waits for one, then starts `fn(...args)` in a new member greenlet. */
  spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Promise<Greenlet<R>> {
    return drive(this._spawn(fn, args)) as Promise<Greenlet<R>>
  }

  /** `spawn` with options for the wait for a slot: `{ block: false }` (or an expired `timeoutMs`) rejects with `PoolFull`. */
  spawnWith<A extends unknown[], R>(options: SpawnOptions, fn: (...args: A) => R | PromiseLike<R>, ...args: A): Promise<Greenlet<R>> {
    return drive(this._spawnWith(options, fn, args)) as Promise<Greenlet<R>>
  }

  /** Waits for a free slot (see `spawnWith` for `options`), then tracks `greenlet` until it finishes. */
  add(greenlet: Greenlet, options?: SpawnOptions): Promise<void> {
    return drive(this._add(greenlet, options))
  }
}

/** @internal What a map run's `next` returns after the last result. */
export const END: unique symbol = Symbol('end')
/** @internal What a map run's `poll` returns while the next result is still to come. */
export const NOT_READY: unique symbol = Symbol('not ready')

/**
 * @internal What a map iterator (either mode) returns for a run's next
 * result: the end, a value, or the failure of a call, thrown at its position.
 */
export function iterationStep<R>(result: unknown): IteratorResult<R, undefined> {
  if (result === END) return { done: true, value: undefined }
  if (result instanceof MapFailure) throw result.error
  return { done: false, value: result as R }
}

/** @internal A result of a run that does not fail fast: a call (or the input) failed with `error`. */
export class MapFailure {
  constructor(
    readonly error: unknown,
    /** The task that failed, claimed (see `GroupBase._claim`) once the failure is taken. */
    readonly task: Member | undefined,
  ) {}
}

/**
 * @internal One `map`/`imap`/`imapUnordered` call: a feeder greenlet spawns
 * a task (a member greenlet running `fn(item)`) per input item through the
 * group (waiting for slots in a Pool); the consumer takes results by index
 * (input order, or finish order). Failing fast, the first failure ends the
 * run; otherwise each failure is a result (a `MapFailure`) at its index.
 */
export class MapRun<G extends Member, T, R> {
  readonly #results = new Map<number, R | MapFailure>()
  readonly #running = new Set<G>()
  /** Input index of each running task. */
  readonly #index = new Map<G, number>()
  readonly #consumer = new WaitList<true>()
  /** The feeder, waiting for the reader to take results (`maxsize`). */
  readonly #room = new WaitList<true>()
  #started = 0
  #finished = 0
  #taken = 0
  #inputDone = false
  #failure: { error: unknown } | undefined = undefined
  /** Reading the input failed: the last result (see `#placeInputFailure`). */
  #inputFailure: MapFailure | undefined = undefined
  #feeder: G | undefined = undefined
  #stopped = false

  readonly #onTaskFinished = (g: G): void => this.#taskFinished(g)

  constructor(
    private readonly group: GroupBase<G>,
    private readonly fn: MapFunction<T, R>,
    private readonly input: MapInput<T>,
    private readonly ordered: boolean,
    private readonly failFast: boolean,
    /** Items read and not yet taken by the reader (running or finished) before the feeder waits. */
    private readonly maxsize = Infinity,
  ) {}

  start(): void {
    const feeder = new this.group._greenletClass(() => this.group._run(this.#feed()))
    this.#feeder = feeder
    feeder.start()
  }

  /**
   * The next result if it is there (a `MapFailure` for a failed call when
   * not failing fast), `END` after the last or once stopped, `NOT_READY` if
   * it is still to come; failing fast, throws the first failure.
   */
  poll(): R | MapFailure | typeof END | typeof NOT_READY {
    if (this.#failure !== undefined) throw this.#failure.error
    if (this.#results.has(this.#taken)) {
      const result = this.#results.get(this.#taken) as R | MapFailure
      this.#results.delete(this.#taken++)
      if (this.#room.length > 0 && !this.#full()) this.#room.handOff(true)
      if (result instanceof MapFailure && result.task !== undefined) this.group._claim(result.task as G)
      return result
    }
    if (this.#stopped) return END
    return this.#inputDone && this.#taken === this.#started ? END : NOT_READY
  }

  /** `poll()`, waiting for the next result if needed. */
  *next(): Blocking<R | MapFailure | typeof END> {
    for (;;) {
      const result = this.poll()
      if (result !== NOT_READY) return result
      yield this.#consumer.request(-1)
    }
  }

  /** Stops reading the input and kills the tasks still running. */
  stop(): void {
    if (this.#stopped) return
    this.#stopped = true
    const doomed: G[] = [...this.#running]
    if (this.#feeder !== undefined) doomed.push(this.#feeder)
    this.#running.clear()
    const current = this.group._getcurrent()
    for (const g of doomed) if (g !== current && !g.dead) g.kill(undefined, { block: false })
    // A consumer waiting meanwhile (a concurrent return()) finds the run over.
    this.#consumer.handOffAll(true)
  }

  *#feed(): Blocking<void> {
    try {
      // Stopping is checked per item: a kill cannot interrupt a foreign await or a Group's spawn.
      if (isAsyncIterable(this.input)) {
        yield* this.#feedFrom(this.input[Symbol.asyncIterator]())
      } else {
        for (const item of this.input) {
          if (this.#stopped) break
          yield* this.#launch(item)
          // Before the next item is read (reading may be what costs).
          yield* this.#waitForRoom()
        }
      }
      this.#inputDone = true
    } catch (err) {
      if (this.#stopped) {
        // Killed by stop(): nobody takes results any more.
      } else if (this.failFast) {
        this.#fail(err)
      } else {
        // Raised after the results of the items read before it; then the iteration ends.
        // In finish order that is once the tasks still running have finished.
        const failure = new MapFailure(err, undefined)
        if (this.ordered) this.#results.set(this.#started, failure)
        else this.#inputFailure = failure
        this.#started++
        this.#inputDone = true
        this.#placeInputFailure()
      }
    }
    this.#consumer.handOff(true)
  }

  /** Feeds from an async iterator, closing it as `for await` would when leaving early. */
  *#feedFrom(iterator: AsyncIterator<T>): Blocking<void> {
    for (;;) {
      const step = (yield iterator.next()) as IteratorResult<T>
      if (step.done) return
      if (this.#stopped) {
        if (iterator.return !== undefined) yield iterator.return()
        return
      }
      try {
        yield* this.#launch(step.value)
        yield* this.#waitForRoom()
      } catch (err) {
        if (iterator.return !== undefined) Promise.resolve(iterator.return()).catch(noop)
        throw err
      }
    }
  }

  /** `maxsize` items are out: read, and not taken by the reader yet. */
  #full(): boolean {
    return this.#started - this.#taken >= this.maxsize
  }

  /** Waits while `#full()`. */
  *#waitForRoom(): Blocking<void> {
    while (this.#full() && !this.#stopped) yield this.#room.request(-1)
  }

  /** Starts a task for `item`, waiting for a slot if needed. */
  *#launch(item: T): Blocking<void> {
    let g = this.group._spawnNow(this.fn, [item])
    if (g === undefined) {
      g = yield* this.group._spawn(this.fn, [item])
      if (this.#stopped) {
        // Stopped while waiting for the slot: this task missed the kill.
        g.kill(undefined, { block: false })
        return
      }
    }
    this.#index.set(g, this.#started++)
    this.#running.add(g)
    g.link(this.#onTaskFinished)
  }

  #taskFinished(g: G): void {
    const index = this.#index.get(g) as number
    this.#index.delete(g)
    this.#running.delete(g)
    if (this.#stopped) return
    let result: R | MapFailure
    if (!g.successful()) {
      if (this.failFast) {
        this.group._claim(g)
        this.#fail(g.exception)
        return
      }
      result = new MapFailure(g.exception, g)
    } else if (!g._returned) {
      // Killed from outside: it exited with GreenletExit instead of a result.
      const exit = killedBeforeReturning(g)
      if (this.failFast) {
        this.#fail(exit)
        return
      }
      result = new MapFailure(exit, undefined)
    } else {
      result = g.value as R
    }
    this.#results.set(this.ordered ? index : this.#finished++, result)
    this.#placeInputFailure()
    this.#consumer.handOff(true)
  }

  /** Unordered: the input's failure goes after the last task's result. */
  #placeInputFailure(): void {
    if (this.ordered || this.#inputFailure === undefined || this.#running.size > 0) return
    this.#results.set(this.#finished++, this.#inputFailure)
    this.#inputFailure = undefined
  }

  #fail(error: unknown): void {
    this.#failure ??= { error }
    this.stop()
  }
}

/**
 * What `imap` and `imapUnordered` return in the async mode: an async
 * iterator over the results that, unlike a generator, stays usable after a
 * `next()` rejected with the failure of a call: the following `next()` goes
 * on with the remaining results (gevent's IMap). `return()` (what `break`
 * calls) stops the input and kills the calls still running; so does a kill
 * of the greenlet waiting in `next()`. Concurrent `next()` calls are served
 * one after the other. The run starts at once, as gevent's IMap (a greenlet
 * started at its creation): calls run while the caller does other work
 * before it reads. Bad arguments reject the first `next()`: the call itself
 * never throws.
 */
export class MapIterator<R> implements AsyncIterableIterator<R, undefined, undefined> {
  #run: MapRun<any, any, R> | undefined = undefined
  /** Planning the run failed: the first `next()` rejects with it. */
  #planFailure: { error: unknown } | undefined = undefined
  #done = false
  /** Settles once the last `next()` asked for has: the next one starts then. */
  #tail: Promise<void> | undefined = undefined

  /** @internal */
  constructor(plan: () => MapRun<any, any, R>) {
    try {
      this.#run = plan()
    } catch (error) {
      this.#planFailure = { error }
      return
    }
    this.#run.start()
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  /** The next result; rejects with the exception of a call that failed, after which the iteration goes on. */
  next(): Promise<IteratorResult<R, undefined>> {
    const previous = this.#tail
    const result = previous === undefined ? this.#step() : previous.then(() => this.#step())
    const tail = result.then(noop, noop)
    this.#tail = tail
    void tail.then(() => {
      if (this.#tail === tail) this.#tail = undefined
    })
    return result
  }

  /** Ends the iteration: stops reading the input and kills the calls still running. */
  async return(value?: undefined): Promise<IteratorResult<R, undefined>> {
    this.#finish()
    return { done: true, value }
  }

  async #step(): Promise<IteratorResult<R, undefined>> {
    if (this.#done) return { done: true, value: undefined }
    const run = this.#run
    if (run === undefined) {
      this.#done = true
      throw this.#planFailure!.error
    }
    // A result that is there already costs no wait.
    let result = run.poll()
    if (result === NOT_READY) {
      try {
        result = await drive(run.next())
      } catch (err) {
        // The wait itself was interrupted (kill, Timeout): the consumer is gone.
        this.#finish()
        throw err
      }
    }
    const step = iterationStep<R>(result)
    if (step.done === true) this.#finish()
    return step
  }

  #finish(): void {
    this.#done = true
    this.#run?.stop()
  }
}
