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
 */
import { GreenletExit, checkFunction, checkMs, checkOptions, checkPositiveInteger, invalidType } from './errors'
import { Greenlet, type KillAllOptions, getcurrent, killall, spawn } from './greenlet'
import { TIMED_OUT, WaitList } from './_waiters'
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
}

/** The input of `map`, `imap` and `imapUnordered`. */
export type MapInput<T> = Iterable<T> | AsyncIterable<T>
/** The function `map`, `imap` and `imapUnordered` call on every item, each call in its own greenlet. */
export type MapFunction<T, R> = (item: T) => R | PromiseLike<R>

function checkGreenlet(value: unknown): asserts value is Greenlet {
  if (!(value instanceof Greenlet)) throw invalidType('greenlet', 'a Greenlet', value)
}

function isAsyncIterable<T>(input: MapInput<T>): input is AsyncIterable<T> {
  return typeof (input as any)[Symbol.asyncIterator] === 'function'
}

/** The common part of `Group` and `Pool`. */
export abstract class BaseGroup {
  readonly #members = new Set<Greenlet>()
  readonly #joiners = new WaitList<true>()
  // A failure handed to an interrupted joiner stays to be raised by the next.
  readonly #raisingJoiners = new WaitList<Greenlet | undefined>((failed) => {
    if (failed !== undefined) this.#unraised ??= failed
  })
  /** The first member failure that no `join({ raiseError: true })` has raised yet. */
  #unraised: Greenlet | undefined = undefined

  readonly #onFinish = (g: Greenlet): void => {
    if (!this.#members.has(g)) return
    if (!g.successful()) {
      if (this.#raisingJoiners.length > 0) this.#raisingJoiners.handOffAll(g)
      else this.#unraised ??= g
    }
    this.discard(g)
  }

  /** Starts `fn(...args)` in a new member greenlet. */
  abstract spawn<R>(fn: (...args: any[]) => R | PromiseLike<R>, ...args: unknown[]): Greenlet<R> | Promise<Greenlet<R>>

  /** Tracks `greenlet` until it finishes. A finished greenlet is not added. */
  abstract add(greenlet: Greenlet): void | Promise<void>

  /** @internal Starts `fn(...args)` in a new member if that needs no wait, else returns undefined. */
  abstract _spawnNow<R>(fn: (...args: any[]) => R | PromiseLike<R>, args: unknown[]): Greenlet<R> | undefined

  /** How many more members fit without waiting (`Infinity` for a Group). */
  abstract free(): number

  /** No member fits without waiting. */
  full(): boolean {
    return this.free() === 0
  }

  /** Number of members. */
  get length(): number {
    return this.#members.size
  }

  has(greenlet: Greenlet): boolean {
    return this.#members.has(greenlet)
  }

  [Symbol.iterator](): IterableIterator<Greenlet> {
    return this.#members.values()
  }

  /** Stops tracking `greenlet`, without killing it. */
  discard(greenlet: Greenlet): void {
    if (!this.#members.delete(greenlet)) return
    greenlet.unlink(this.#onFinish)
    if (this.#members.size === 0) {
      this.#joiners.handOffAll(true)
      this.#raisingJoiners.handOffAll(undefined)
    }
  }

  /**
   * Resolves `true` once the group is empty (at once if it is; members
   * added meanwhile are waited for too), `false` on timeout. With
   * `raiseError`, rejects with a member's failure (see the option).
   */
  async join(options?: GroupJoinOptions): Promise<boolean> {
    const o = checkOptions('options', options)
    const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    if (o.raiseError !== true) {
      return this.#members.size === 0 || (await this.#joiners.wait(ms)) !== TIMED_OUT
    }
    let failed = this.#unraised
    if (failed === undefined && this.#members.size > 0) {
      const outcome = await this.#raisingJoiners.wait(ms)
      if (outcome === TIMED_OUT) return false
      failed = outcome
    }
    if (failed === undefined) return true
    this._claim(failed)
    throw failed.exception
  }

  /** Kills every member (see `killall` for the options); by default waits until they have died. */
  kill(options?: KillAllOptions): Promise<void> {
    return killall([...this.#members], options)
  }

  /** Resolves with `fn(item)` for every item, in input order. */
  async map<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): Promise<R[]> {
    const results: R[] = []
    for await (const result of this.imap(fn, iterable)) results.push(result)
    return results
  }

  /** Yields `fn(item)` for every item, in input order. */
  imap<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): AsyncGenerator<R, void, undefined> {
    return this.#iterate(fn, iterable, true)
  }

  /** Yields `fn(item)` for every item, as the calls finish. */
  imapUnordered<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>): AsyncGenerator<R, void, undefined> {
    return this.#iterate(fn, iterable, false)
  }

  #iterate<T, R>(fn: MapFunction<T, R>, iterable: MapInput<T>, ordered: boolean): AsyncGenerator<R, void, undefined> {
    checkFunction('fn', fn)
    if (iterable === null || iterable === undefined || (typeof (iterable as any)[Symbol.iterator] !== 'function' && !isAsyncIterable(iterable))) {
      throw invalidType('iterable', 'an iterable or async iterable', iterable)
    }
    return mapResults(new MapRun(this, fn, iterable, ordered))
  }

  /** @internal Starts tracking a greenlet that is not a member. */
  protected _track(greenlet: Greenlet): void {
    this.#members.add(greenlet)
    greenlet._rawlink(this.#onFinish)
  }

  /** @internal `failed`'s exception is being raised to the caller: no join raises it again. */
  _claim(failed: Greenlet): void {
    if (this.#unraised === failed) this.#unraised = undefined
  }
}

/** A group of any number of greenlets. */
export class Group extends BaseGroup {
  spawn<R>(fn: (...args: any[]) => R | PromiseLike<R>, ...args: unknown[]): Greenlet<R> {
    const g = new Greenlet<R>(fn, ...args)
    this._track(g)
    return g.start()
  }

  /** @internal */
  _spawnNow<R>(fn: (...args: any[]) => R | PromiseLike<R>, args: unknown[]): Greenlet<R> {
    return this.spawn(fn, ...args)
  }

  add(greenlet: Greenlet): void {
    checkGreenlet(greenlet)
    if (!greenlet.dead && !this.has(greenlet)) this._track(greenlet)
  }

  free(): number {
    return Infinity
  }
}

/** A group of at most `size` greenlets: adding one waits for a free slot. */
export class Pool extends BaseGroup {
  /** Most members at once. */
  readonly size: number
  readonly #slots: Semaphore

  constructor(size: number) {
    super()
    this.size = checkPositiveInteger('size', size)
    this.#slots = new Semaphore(size)
  }

  /** Waits for a free slot, then starts `fn(...args)` in a new member greenlet. */
  async spawn<R>(fn: (...args: any[]) => R | PromiseLike<R>, ...args: unknown[]): Promise<Greenlet<R>> {
    // Checked before taking a slot, which nothing would give back otherwise.
    checkFunction('fn', fn)
    await this.#slots.acquire()
    return this.#start(fn, args)
  }

  /** @internal */
  _spawnNow<R>(fn: (...args: any[]) => R | PromiseLike<R>, args: unknown[]): Greenlet<R> | undefined {
    return this.#slots.tryAcquire() ? this.#start(fn, args) : undefined
  }

  /** Starts a member in a slot already taken. */
  #start<R>(fn: (...args: any[]) => R | PromiseLike<R>, args: unknown[]): Greenlet<R> {
    const g = new Greenlet<R>(fn, ...args)
    this._track(g)
    return g.start()
  }

  /** Waits for a free slot, then tracks `greenlet` until it finishes. */
  async add(greenlet: Greenlet): Promise<void> {
    checkGreenlet(greenlet)
    if (greenlet.dead || this.has(greenlet)) return
    await this.#slots.acquire()
    if (greenlet.dead || this.has(greenlet)) this.#slots.release()
    else this._track(greenlet)
  }

  override discard(greenlet: Greenlet): void {
    if (!this.has(greenlet)) return
    super.discard(greenlet)
    this.#slots.release()
  }

  free(): number {
    return this.#slots.value
  }
}

const END: unique symbol = Symbol('end')

type TaskRecord = { index: number; returned: boolean }

/** A map task's body: records that `fn` returned, which a killed task never does. */
async function runTask<T, R>(fn: MapFunction<T, R>, record: TaskRecord, item: T): Promise<R> {
  const value = await fn(item)
  record.returned = true
  return value
}

/**
 * One `map`/`imap`/`imapUnordered` call: a feeder greenlet spawns a task
 * per input item through the group (waiting for slots in a Pool); the
 * consumer takes results by index (input order, or finish order).
 */
class MapRun<T, R> {
  readonly #results = new Map<number, R>()
  readonly #running = new Set<Greenlet<R>>()
  readonly #consumer = new WaitList<true>()
  #started = 0
  #finished = 0
  #taken = 0
  #inputDone = false
  #failure: { error: unknown } | undefined = undefined
  #feeder: Greenlet | undefined = undefined
  #stopped = false

  constructor(
    private readonly group: BaseGroup,
    private readonly fn: MapFunction<T, R>,
    private readonly input: MapInput<T>,
    private readonly ordered: boolean,
  ) {}

  start(): void {
    this.#feeder = spawn(() => this.#feed())
  }

  /** The next result, `END` after the last; throws the first failure. */
  async next(): Promise<R | typeof END> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure.error
      if (this.#results.has(this.#taken)) {
        const result = this.#results.get(this.#taken) as R
        this.#results.delete(this.#taken++)
        return result
      }
      if (this.#inputDone && this.#taken === this.#started) return END
      await this.#consumer.wait(-1)
    }
  }

  /** Stops reading the input and kills the tasks still running. */
  stop(): void {
    if (this.#stopped) return
    this.#stopped = true
    const doomed: Greenlet[] = [...this.#running]
    if (this.#feeder !== undefined) doomed.push(this.#feeder)
    this.#running.clear()
    const current = getcurrent()
    for (const g of doomed) if (g !== current && !g.dead) void g.kill(undefined, { block: false })
  }

  async #feed(): Promise<void> {
    try {
      // Stopping is checked per item: a kill cannot interrupt a foreign await or a Group's spawn.
      if (isAsyncIterable(this.input)) {
        for await (const item of this.input) {
          if (this.#stopped) break
          const waiting = this.#launch(item)
          if (waiting !== undefined) await waiting
        }
      } else {
        for (const item of this.input) {
          if (this.#stopped) break
          const waiting = this.#launch(item)
          if (waiting !== undefined) await waiting
        }
      }
      this.#inputDone = true
    } catch (err) {
      if (!this.#stopped) this.#fail(err)
    }
    this.#consumer.handOff(true)
  }

  /** Starts a task for `item` now if that needs no wait; otherwise returns the wait for a slot. */
  #launch(item: T): Promise<void> | undefined {
    const record: TaskRecord = { index: 0, returned: false }
    const g = this.group._spawnNow(runTask, [this.fn, record, item]) as Greenlet<R> | undefined
    if (g === undefined) return this.#launchLater(record, item)
    this.#track(g, record)
    return undefined
  }

  async #launchLater(record: TaskRecord, item: T): Promise<void> {
    const g = (await this.group.spawn(runTask, this.fn, record, item)) as Greenlet<R>
    if (this.#stopped) {
      // Stopped while the spawn was settling: this task missed the kill.
      void g.kill(undefined, { block: false })
      return
    }
    this.#track(g, record)
  }

  #track(g: Greenlet<R>, record: TaskRecord): void {
    record.index = this.#started++
    this.#running.add(g)
    g.link(() => this.#taskFinished(g, record))
  }

  #taskFinished(g: Greenlet<R>, record: TaskRecord): void {
    this.#running.delete(g)
    if (this.#stopped) return
    if (!g.successful()) {
      this.group._claim(g)
      this.#fail(g.exception)
    } else if (!record.returned) {
      this.#fail(new GreenletExit(`${g} was killed before it returned`))
    } else {
      this.#results.set(this.ordered ? record.index : this.#finished++, g.value as R)
      this.#consumer.handOff(true)
    }
  }

  #fail(error: unknown): void {
    this.#failure ??= { error }
    this.stop()
    this.#consumer.handOff(true)
  }
}

async function* mapResults<T, R>(run: MapRun<T, R>): AsyncGenerator<R, void, undefined> {
  run.start()
  try {
    for (;;) {
      const result = await run.next()
      if (result === END) return
      yield result
    }
  } finally {
    run.stop()
  }
}
