/**
 * Groups and pools of greenlets.
 *
 * A `Group` tracks greenlets until they finish: `join()` waits until it is
 * empty, `kill()` kills every member. A `Pool(size)` is a group of at most
 * `size` members: `spawn()` and `add()` wait for a free slot (FIFO,
 * killable), and a slot frees when its member finishes or is discarded.
 *
 * `map`, `imap` and `imapUnordered` run a function over an iterable (sync or
 * async) in member greenlets, so in a Pool never more than `size` run at
 * once. Reading the input starts at the first `next()`; a Pool reads one
 * item per slot that frees (an endless input is fine), a Group reads it all
 * at once. `imap` yields results in input order, `imapUnordered`
 * as they finish, `map` resolves with all of them in input order. The first
 * task that fails (or is killed from outside) fails the iteration at its
 * next step, even if other results are ready: the tasks still running are
 * killed and no new one starts, as when the iteration is left early
 * (`break`) or the greenlet consuming it is killed.
 *
 * `GroupBase` (and the map runs) hold the logic of both modes; this
 * module's groups wait with Promises and hold async greenlets, those of
 * `greenthread/sync` block and hold sync greenlets.
 */
import type { GreenletBase } from './_greenlet-base'
import { type Blocking, TIMED_OUT, type TimedOut, WaitList, drive, runNow, waitSignal } from './_waiters'
import { GreenletExit, checkFunction, checkMs, checkOptions, checkPositiveInteger, invalidType } from './errors'
import { Greenlet, type KillAllOptions, type KillOptions, getcurrent, killall } from './greenlet'
import { Semaphore } from './lock'

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

/** A greenlet of either mode, as far as groups go. */
export interface Member extends GreenletBase<any, any> {
  kill(exception?: unknown, options?: KillOptions): unknown
}

function isAsyncIterable<T>(input: MapInput<T>): input is AsyncIterable<T> {
  return typeof (input as any)[Symbol.asyncIterator] === 'function'
}

function noop(): void {}

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
    if (!g.successful()) {
      if (this.#raisingJoiners.length > 0) this.#raisingJoiners.handOffAll(g)
      else this.#unraised ??= g
    }
    this.discard(g)
  }

  /** @param slots most members at once (a Pool), or `undefined` for no limit (a Group). */
  protected constructor(slots: number | undefined) {
    this.#slots = slots === undefined ? undefined : new Semaphore(slots)
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

  /** @internal Starts `fn(...args)` in a new member, waiting for a slot in a Pool. */
  *_spawn<R>(fn: (...args: any[]) => R | PromiseLike<R>, args: unknown[]): Blocking<G> {
    // Checked before taking a slot, which nothing would give back otherwise.
    checkFunction('fn', fn)
    if (this.#slots !== undefined) yield* this.#slots._acquire(undefined)
    return this.#start(fn, args)
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

  /** @internal Tracks `greenlet` until it finishes, waiting for a slot in a Pool. A finished greenlet is not added. */
  *_add(greenlet: G): Blocking<void> {
    if (!(greenlet instanceof this._greenletClass)) throw invalidType('greenlet', 'a Greenlet', greenlet)
    if (greenlet.dead || this.has(greenlet)) return
    if (this.#slots !== undefined) {
      yield* this.#slots._acquire(undefined)
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
    if (o.raiseError !== true) {
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

  /** @internal A map run over `iterable`; nothing starts before its `start()`. */
  _mapRun<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>, ordered: boolean): MapRun<G, T, R> {
    checkFunction('fn', fn)
    if (iterable === null || iterable === undefined || (typeof (iterable as any)[Symbol.iterator] !== 'function' && !isAsyncIterable(iterable))) {
      throw invalidType('iterable', 'an iterable or async iterable', iterable)
    }
    return new MapRun(this, fn, iterable, ordered)
  }

  /** @internal All results of `fn` over `iterable`, in input order. */
  *_map<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): Blocking<R[]> {
    const run = this._mapRun(fn, iterable, true)
    run.start()
    try {
      const results: R[] = []
      for (let r = yield* run.next(); r !== END; r = yield* run.next()) results.push(r)
      return results
    } finally {
      run.stop()
    }
  }

  #track(greenlet: G): void {
    this.#members.add(greenlet)
    greenlet._rawlink(this.#onFinish)
  }

  /** @internal `failed`'s exception is being raised to the caller: no join raises it again. */
  _claim(failed: G): void {
    if (this.#unraised === failed) this.#unraised = undefined
  }
}

/** The common part of the async mode's `Group` and `Pool`. */
export abstract class BaseGroup extends GroupBase<Greenlet> {
  /** Starts `fn(...args)` in a new member greenlet. */
  abstract spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Greenlet<R> | Promise<Greenlet<R>>

  /** Tracks `greenlet` until it finishes. A finished greenlet is not added. */
  abstract add(greenlet: Greenlet): void | Promise<void>

  /**
   * Resolves `true` once the group is empty (at once if it is; members
   * added meanwhile are waited for too), `false` on timeout. With
   * `raiseError`, rejects with a member's failure (see the option).
   */
  join(options?: GroupJoinOptions): Promise<boolean> {
    return drive(this._join(options))
  }

  /** Kills every member (see `killall` for the options); by default waits until they have died. */
  kill(options?: KillAllOptions): Promise<void> {
    return killall([...this], options)
  }

  /** Resolves with `fn(item)` for every item, in input order. */
  map<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): Promise<R[]> {
    return drive(this._map(fn, iterable))
  }

  /** Yields `fn(item)` for every item, in input order. */
  imap<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): AsyncGenerator<R, void, undefined> {
    return mapResults(() => this._mapRun(fn, iterable, true))
  }

  /** Yields `fn(item)` for every item, as the calls finish. */
  imapUnordered<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): AsyncGenerator<R, void, undefined> {
    return mapResults(() => this._mapRun(fn, iterable, false))
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

  add(greenlet: Greenlet): void {
    runNow(this._add(greenlet))
  }
}

/** A group of at most `size` greenlets: adding one waits for a free slot. */
export class Pool extends BaseGroup {
  /** Most members at once. */
  readonly size: number

  constructor(size: number) {
    super(checkPositiveInteger('size', size))
    this.size = size
  }

  /** Waits for a free slot, then starts `fn(...args)` in a new member greenlet. */
  spawn<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): Promise<Greenlet<R>> {
    return drive(this._spawn(fn, args)) as Promise<Greenlet<R>>
  }

  /** Waits for a free slot, then tracks `greenlet` until it finishes. */
  add(greenlet: Greenlet): Promise<void> {
    return drive(this._add(greenlet))
  }
}

/** @internal What a map run's `next` returns after the last result. */
export const END: unique symbol = Symbol('end')
/** @internal What a map run's `poll` returns while the next result is still to come. */
export const NOT_READY: unique symbol = Symbol('not ready')

/**
 * @internal One `map`/`imap`/`imapUnordered` call: a feeder greenlet spawns
 * a task (a member greenlet running `fn(item)`) per input item through the
 * group (waiting for slots in a Pool); the consumer takes results by index
 * (input order, or finish order).
 */
export class MapRun<G extends Member, T, R> {
  readonly #results = new Map<number, R>()
  readonly #running = new Set<G>()
  /** Input index of each running task. */
  readonly #index = new Map<G, number>()
  readonly #consumer = new WaitList<true>()
  #started = 0
  #finished = 0
  #taken = 0
  #inputDone = false
  #failure: { error: unknown } | undefined = undefined
  #feeder: G | undefined = undefined
  #stopped = false

  readonly #onTaskFinished = (g: G): void => this.#taskFinished(g)

  constructor(
    private readonly group: GroupBase<G>,
    private readonly fn: MapFunction<T, R>,
    private readonly input: MapInput<T>,
    private readonly ordered: boolean,
  ) {}

  start(): void {
    const feeder = new this.group._greenletClass(() => this.group._run(this.#feed()))
    this.#feeder = feeder
    feeder.start()
  }

  /** The next result if it is there, `END` after the last, `NOT_READY` if it is still to come; throws the first failure. */
  poll(): R | typeof END | typeof NOT_READY {
    if (this.#failure !== undefined) throw this.#failure.error
    if (this.#results.has(this.#taken)) {
      const result = this.#results.get(this.#taken) as R
      this.#results.delete(this.#taken++)
      return result
    }
    return this.#inputDone && this.#taken === this.#started ? END : NOT_READY
  }

  /** The next result, waiting for it if needed; `END` after the last; throws the first failure. */
  *next(): Blocking<R | typeof END> {
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
        }
      }
      this.#inputDone = true
    } catch (err) {
      if (!this.#stopped) this.#fail(err)
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
      } catch (err) {
        if (iterator.return !== undefined) Promise.resolve(iterator.return()).catch(noop)
        throw err
      }
    }
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
    if (!g.successful()) {
      this.group._claim(g)
      this.#fail(g.exception)
    } else if (!g._returned) {
      // Killed from outside: it exited with GreenletExit instead of a result.
      this.#fail(new GreenletExit(`${g} was killed before it returned`))
    } else {
      this.#results.set(this.ordered ? index : this.#finished++, g.value as R)
      this.#consumer.handOff(true)
    }
  }

  #fail(error: unknown): void {
    this.#failure ??= { error }
    this.stop()
    this.#consumer.handOff(true)
  }
}

/** The results of the run `plan()` makes, on the first `next()`: bad arguments reject it, never throw at the call. */
async function* mapResults<G extends Member, T, R>(plan: () => MapRun<G, T, R>): AsyncGenerator<R, void, undefined> {
  const run = plan()
  run.start()
  try {
    for (;;) {
      // A result that is there already costs no wait, and no Promise.
      let result = run.poll()
      if (result === NOT_READY) result = await drive(run.next())
      if (result === END) return
      yield result
    }
  } finally {
    run.stop()
  }
}
