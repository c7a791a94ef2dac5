/**
 * `ThreadPoolExecutor` and `ProcessPoolExecutor`: Python's concurrent.futures
 * executors, with queueing and dispatch in the Rust runtime.
 *
 * Submissions are encoded into one buffer and handed to the Rust queue once
 * per microtask turn (or every {@link FLUSH_EVERY} tasks); workers take
 * batches from it (a work-stealing scheduler: per-worker deques and a global
 * injector) and push results back in batches; the JS thread is woken once per
 * batch of completions and settles the futures, running done callbacks in
 * completion order.
 *
 * - Thread workers call into the Rust queue themselves and sleep on a
 *   SharedArrayBuffer doorbell (`Atomics.waitAsync`) when it is empty.
 * - Child processes are fed by this thread: it takes batches from the Rust
 *   queue on each child's behalf and writes them, framed, to the child's
 *   fd 3 pipe (a Node `child_process` pipe, watched by libuv).
 *
 * Functions are sent by source (they must not use variables from outside
 * their own body; they may `require` from the current directory) or named as
 * exports of `options.module`. Arguments and results are structured clones,
 * but for what `options.transferList` lists or `move()` marks: a thread pool
 * moves it (see `./transfer`), a process pool copies it.
 *
 * An executor with no pending futures does not keep the process alive; one
 * with pending futures does. If the process exits anyway (`process.exit`),
 * pending futures fail with BrokenExecutor before it goes.
 */
import type { ChildProcess } from 'node:child_process'
import type * as net from 'node:net'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import { types } from 'node:util'
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort, type ResourceLimits } from 'node:worker_threads'

import type { NativeExecutor, NativeExecutorSlot } from 'native-binding'
import {
  DefKind,
  Reader,
  Status,
  TaskFlag,
  Writer,
  forEachFrame,
  refuseSharing,
  writeCancelled,
  writeThrown,
  type ResolveHook,
  type TransferHook,
} from './_codec'
import { rebuildError } from './_error-record'
import {
  BELL,
  BELL_SLOTS,
  CHILD_FLAG,
  CLOSED,
  ExitStatus,
  MessageParser,
  Msg,
  ABORT_REASON,
  SHARED_SEQ,
  TRANSFER_REQUEST,
  nextBatchSize,
  readResultsHead,
  sendMessage,
  type SharedMessage,
  type ThreadWorkerData,
  type TransferMessage,
  type WorkerConfig,
} from './_worker'
import { checkFlag, checkLimit, checkMs, checkOptions, checkPositiveInteger, checkTimerMs, functionName, invalidType, rejecting } from './errors'
import { BrokenExecutor, BrokenProcessPool, BrokenThreadPool, Future, mapInOrder } from './futures'
import { hub, suspendFresh } from './hub'
import { native } from './native'
import { checkTransferList, takeMoved, type NamedTransfer, type TransferListItem } from './transfer'

export interface ExecutorOptions {
  /**
   * Most workers running at once; started on demand.
   * @default ThreadPoolExecutor: min(32, CPUs + 4); ProcessPoolExecutor: CPUs
   */
  maxWorkers?: number
  /**
   * Run once in every worker before its first task: a self-contained
   * function (sent by source) or the name of an export of `module`. If it
   * throws, the executor breaks.
   */
  initializer?: ((...args: any[]) => unknown) | string
  /** Arguments of `initializer`. @default [] */
  initargs?: unknown[]
  /** Replace a worker with a fresh one after it has run this many tasks. @default no limit */
  maxTasksPerChild?: number
  /**
   * A module (path, relative to the current directory, or URL) that workers
   * import: `submit` and `initializer` may name its exports. A path is
   * resolved, and must exist, when the executor is constructed.
   */
  module?: string | URL
  /**
   * Most tasks waiting for a worker (beyond the `maxWorkers` that may run):
   * `submit` past it throws `TaskQueueFull` (piscina's `maxQueue`).
   * @default no limit
   */
  maxQueue?: number
  /**
   * A worker idle this long (ms) exits; a new one starts when work comes
   * (piscina's `idleTimeout`). @default never
   */
  idleTimeout?: number
}

/** ThreadPoolExecutor's options: the executor's, and limits for each worker thread. */
export interface ThreadPoolExecutorOptions extends ExecutorOptions {
  /** Heap and stack limits of each worker thread (Node's `Worker` `resourceLimits`); a worker past them dies and breaks the pool. */
  resourceLimits?: ResourceLimits
}

/** What an executor has done and holds now (`executor.stats()`). */
export interface ExecutorStats {
  /** Futures settled with a result or an exception. */
  completed: number
  /** Of those, with an exception. */
  failed: number
  cancelled: number
  /** Submitted and not settled: waiting for a worker or running. */
  pending: number
  /** Workers alive now. */
  workers: number
  /** Time from submit to settle of the last (up to) 1,000 completed tasks, in ms. */
  latencyMs: { p50: number; p99: number; max: number } | null
}

/** `submit` past `options.maxQueue`. */
export class TaskQueueFull extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TaskQueueFull'
  }
}

/** Completed tasks whose latency `stats()` summarises. */
const LATENCY_WINDOW = 1000

export interface SubmitOptions {
  /**
   * Aborting it cancels the task if it has not started (queued, or taken by
   * a worker that is still busy with an earlier task); a running task
   * receives an AbortSignal, as an extra last argument, that aborts too.
   */
  signal?: AbortSignal
  /**
   * ArrayBuffers and MessagePorts (of the arguments) to move to the worker
   * instead of copying, as `postMessage(value, transferList)` and piscina's
   * `run(task, { transferList })`: at `submitWith` they are detached here
   * (a view's buffer is listed, not the view), and a thread worker receives
   * the same memory. A process pool copies the ArrayBuffers (detaching them
   * all the same) and refuses MessagePorts.
   */
  transferList?: readonly TransferListItem[]
}

export interface MapOptions {
  /** The iteration throws TimeoutError if a result is not ready this many milliseconds after `map` was called. @default no limit */
  timeoutMs?: number
  /** Items per task: larger chunks cut per-task overhead for tiny functions. @default 1 */
  chunksize?: number
  /**
   * Python 3.14's `buffersize`: at most this many tasks (chunks, with
   * `chunksize`) are submitted ahead of the results read; the input is read
   * lazily, one more task as each result is taken, so an endless or huge
   * input can be mapped in bounded memory. An error reading or sending an
   * item is then thrown by the iteration at that item's turn, after every
   * result before it. `null`/`undefined` or `Infinity`: every item is read
   * and submitted at the call.
   */
  buffersize?: number | null
}

export interface ShutdownOptions {
  /** Resolve once every pending future is done and the workers have exited. @default true */
  wait?: boolean
  /** Cancel the futures whose tasks have not started. @default false */
  cancelFutures?: boolean
}

function noop(): void {}

/** The native executor's wake callback, holding `executor` weakly (a module-level closure over the WeakRef only). */
function wakeFor(executor: WeakRef<Executor>): () => void {
  return () => executor.deref()?._drainCompletions()
}

/** Submitted tasks are handed to the Rust queue at least this often, even within one synchronous loop. */
const FLUSH_EVERY = 512
/**
 * Batches a child process has in flight at once. One: a task counts as
 * running (no longer cancellable) only once its child has it to run.
 */
const CHILD_BATCHES_IN_FLIGHT = 1
const WORKER_PATH = path.join(__dirname, '_worker.js')
const MAX_TASK_ID = 0xffff_ffff
/** A result frame that could not be read: the future fails with the reading error. */
const UNREADABLE = -1

type TaskFn = ((...args: any[]) => unknown) | string

/** Executors with pending futures; they settle those futures if the process exits. */
const busy = new Set<Executor>()
let exitHookInstalled = false

function settleAllAtExit(): void {
  for (const e of [...busy]) e._abandon()
}

function checkNonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== 'number') throw invalidType(name, 'a non-negative integer', value)
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`)
  return value
}

const RESOURCE_LIMITS = ['maxOldGenerationSizeMb', 'maxYoungGenerationSizeMb', 'codeRangeSizeMb', 'stackSizeMb'] as const

function checkResourceLimits(value: unknown): ResourceLimits | undefined {
  if (value === undefined) return undefined
  const o = checkOptions('options.resourceLimits', value) as Record<string, unknown>
  const limits: ResourceLimits = {}
  for (const key of Object.keys(o)) {
    if (!(RESOURCE_LIMITS as readonly string[]).includes(key)) {
      throw new TypeError(`options.resourceLimits.${key} is not a limit: use ${RESOURCE_LIMITS.join(', ')}`)
    }
    const v = o[key]
    if (v === undefined) continue
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new RangeError(`options.resourceLimits.${key} must be a positive number of MB, got ${String(v)}`)
    limits[key as (typeof RESOURCE_LIMITS)[number]] = v
  }
  return limits
}

function moduleUrl(value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (value instanceof URL) return value.href
  if (typeof value !== 'string' || value === '') throw invalidType('options.module', 'a path or a URL', value)
  if (/^[a-z][a-z0-9+.-]+:/i.test(value) && !path.isAbsolute(value)) return value
  // Now, not at the first submit, which may run from another directory.
  const file = path.resolve(value)
  if (!fs.existsSync(file)) {
    throw new TypeError(`options.module names ${JSON.stringify(value)}, resolved against ${process.cwd()} to ${file}, which does not exist`)
  }
  return pathToFileURL(file).href
}

function definition(kind: DefKind, text: string): Buffer {
  const bytes = Buffer.allocUnsafe(1 + text.length * 2)
  bytes[0] = kind
  bytes.write(text, 1, 'utf16le')
  return bytes
}

function sourceOf(name: string, fn: (...args: any[]) => unknown): string {
  const source = Function.prototype.toString.call(fn)
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    throw new TypeError(`${name} must be a self-contained function or the name of an export of options.module; got a native or bound function, which cannot be sent by source`)
  }
  if (/^class\b/.test(source)) {
    const className = functionName(fn)
    throw new TypeError(
      `${name} must be a function that can be called as a task, got the class ${className || '(anonymous)'}: a class constructor cannot be called without new` +
        ` (submit a function that creates the instance, such as (...args) => new ${className || 'C'}(...args))`,
    )
  }
  return source
}

/** How messages name the arguments of `submit`. */
const argName = (i: number): string => `args[${i}]`

/** Which values a task's arguments came from, and their names in messages. */
interface ArgNaming {
  values: readonly unknown[]
  name: (index: number) => string
}

/**
 * A DataCloneError met while writing a task's arguments, as the TypeError
 * that names the argument (`args[i]`, `iterable[i]`), like uncloneable
 * `options.initargs`; other errors (refused shared memory names it already)
 * as they are.
 */
function uncloneableArgument(err: unknown, naming: ArgNaming, transfer: readonly unknown[] | undefined): unknown {
  if (!(err instanceof DOMException) || err.name !== 'DataCloneError') return err
  // No side effects: shared memory gets no id, transferred memory is neither copied nor moved.
  const probe = new Writer(64, () => 0)
  const at = naming.values.findIndex((value) => {
    try {
      probe.cloned(value, 'it', transfer)
      return false
    } catch {
      return true
    } finally {
      probe.reset()
    }
  })
  const what = at < 0 ? 'the arguments' : naming.name(at)
  return new TypeError(`${what} cannot be sent to a worker: ${err.message}`, { cause: err })
}

function encodeReason(reason: unknown): Buffer {
  const w = new Writer(64)
  try {
    if (reason instanceof Error) writeThrown(w, reason)
    else {
      w.u8(Status.OK)
      w.value(reason)
    }
  } catch {
    // An uncloneable reason: the worker aborts with a plain AbortError.
    w.reset()
  }
  return w.take()
}

/** What the two executors share: submission, futures, map, shutdown, breaking. */
export abstract class Executor {
  readonly #native: NativeExecutor
  readonly #pending = new Map<number, Future<any>>()
  /** `options.maxQueue`, or Infinity. */
  readonly #maxQueue: number
  #completed = 0
  #failed = 0
  #cancelled = 0
  /** Submit times of pending tasks, and the latencies of the last completed ones (a ring). */
  readonly #submittedAt = new Map<number, number>()
  readonly #latencies: number[] = []
  #latencyAt = 0
  readonly #writer = new Writer(16 * 1024, (sab, what) => {
    const id = this.shareMemory(sab, what)
    this.#messageShared.push(id)
    return id
  })
  /** Shared-memory ids of the task being written: released when its future settles. */
  #messageShared: number[] = []
  /** What moves with each pending task of a thread pool, by task id, until its worker asks for it. */
  readonly #held = new Map<number, TransferListItem[]>()
  /** Workers are child processes: moved values are copied, MessagePorts refused. */
  readonly #processes: boolean
  #buffered = 0
  /** Counts flushes; a future whose `_batch` equals it has not reached the Rust queue yet. */
  #batch = 1
  #flushQueued = false
  #earlyCancels: number[] = []
  #nextId = 0
  readonly #fnIds = new WeakMap<object, number>()
  readonly #defIds = new Map<string, number>()
  /** Definitions by id - 1, for transports that ship them themselves. */
  /** @internal */
  protected readonly definitions: Buffer[] = []
  #refd = false
  #shutdown = false
  #broken: BrokenExecutor | undefined = undefined
  #destroyed: Promise<void> | undefined = undefined
  /** Wakes the `shutdown({ wait })` calls waiting for the workers to exit. */
  #exited: (() => void)[] = []
  /** Most workers running at once. */
  readonly maxWorkers: number
  /** @internal */
  protected readonly config: WorkerConfig
  /** The config as a process pool sends it to each child (cloned once, up front). */
  /** @internal */
  protected readonly encodedConfig: Buffer | undefined

  /** `processes`: workers are child processes (initargs are cloned here, with no shared memory). */
  constructor(options: ExecutorOptions | undefined, defaultWorkers: number, processes: boolean) {
    // Exported for instanceof: from plain JS it could be constructed, and would fail later, out of reach.
    if (new.target === Executor) throw new TypeError('Executor is abstract: construct a ThreadPoolExecutor or a ProcessPoolExecutor')
    this.#processes = processes
    const o = checkOptions('options', options)
    this.maxWorkers = o.maxWorkers === undefined ? defaultWorkers : checkPositiveInteger('options.maxWorkers', o.maxWorkers)
    const maxTasks = o.maxTasksPerChild === undefined ? 0 : checkPositiveInteger('options.maxTasksPerChild', o.maxTasksPerChild)
    this.#maxQueue = o.maxQueue === undefined ? Infinity : checkNonNegativeInteger('options.maxQueue', o.maxQueue)
    if (o.initargs !== undefined && !Array.isArray(o.initargs)) throw invalidType('options.initargs', 'an array', o.initargs)
    const url = moduleUrl(o.module)
    let initializer: Buffer | undefined
    if (o.initializer !== undefined) {
      if (typeof o.initializer === 'function') initializer = definition(DefKind.SOURCE, sourceOf('options.initializer', o.initializer as any))
      else if (typeof o.initializer === 'string' && url !== undefined) initializer = definition(DefKind.EXPORT, o.initializer)
      else if (typeof o.initializer === 'string') throw new TypeError(`options.initializer names the export ${JSON.stringify(o.initializer)}, but options.module is not set`)
      else throw invalidType('options.initializer', 'a function or the name of an export of options.module', o.initializer)
    }
    const idleMs = o.idleTimeout === undefined ? 0 : checkTimerMs('options.idleTimeout', checkPositiveInteger('options.idleTimeout', o.idleTimeout))
    this.config = { moduleUrl: url, initializer, initargs: (o.initargs as unknown[]) ?? [], maxTasks, idleMs }
    // Clone initargs now: a failure while starting a worker would have nobody to report to.
    try {
      if (processes) {
        const w = new Writer(256)
        w.cloned(this.config, 'it')
        this.encodedConfig = w.take()
      } else {
        // What `workerData` does for every thread (shared memory stays shared).
        structuredClone(this.config.initargs)
      }
    } catch (err) {
      throw new TypeError(`options.initargs cannot be sent to the workers: ${(err as Error).message}`, { cause: err })
    }
    // The native side keeps its wake callback alive from outside the JS
    // heap: it must not hold the executor, or no executor is ever collected.
    this.#native = new native.NativeExecutor(wakeFor(new WeakRef(this)))
  }

  /** @internal Completions arrived: take them (see `wakeFor`). */
  _drainCompletions(): void {
    this.#drain()
  }

  /** @internal The Rust queue's id, for workers. */
  protected get poolId(): number {
    return this.#native.id
  }

  /** @internal */
  protected get isShutdown(): boolean {
    return this.#shutdown
  }

  /** Broken or destroyed: no task runs anymore. */
  /** @internal */
  protected get isStopped(): boolean {
    return this.#broken !== undefined || this.#destroyed !== undefined
  }

  /**
   * Schedules `fn(...args)` and returns its Future. `fn` is a self-contained
   * function (sent by source) or the name of an export of `options.module`.
   * Throws if the executor is shut down or broken, or if an argument cannot
   * be cloned. An argument wrapped in `move()` is moved, not copied (see
   * `SubmitOptions.transferList`).
   */
  submit<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): Future<Awaited<R>>
  submit<R = unknown>(fn: string, ...args: unknown[]): Future<R>
  submit(fn: TaskFn, ...args: unknown[]): Future<unknown> {
    return this.#submit(fn, args, 0, undefined)
  }

  /**
   * `submit` with options. With `signal`, the function receives an
   * AbortSignal as an extra last argument, and aborting `signal` cancels the
   * task if it has not started or aborts the worker-side signal if it is running.
   * What `transferList` lists is moved to a thread worker, not copied.
   */
  submitWith<A extends unknown[], R>(options: SubmitOptions, fn: (...args: [...A, AbortSignal]) => R, ...args: A): Future<Awaited<R>>
  submitWith<A extends unknown[], R>(options: SubmitOptions, fn: (...args: A) => R, ...args: A): Future<Awaited<R>>
  submitWith<R = unknown>(options: SubmitOptions, fn: string, ...args: unknown[]): Future<R>
  submitWith(options: SubmitOptions, fn: TaskFn, ...args: unknown[]): Future<unknown> {
    const o = checkOptions('options', options)
    const signal = o.signal
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidType('options.signal', 'an AbortSignal', signal)
    const transfer = checkTransferList(o.transferList)
    return this.#submit(fn, args, signal ? TaskFlag.SIGNAL : 0, signal, undefined, transfer)
  }

  /**
   * Runs `fn` over the items and yields the results in input order. Every
   * item is submitted at once (unless `options.buffersize`); the iteration throws a task's exception at
   * its position, or TimeoutError once `timeoutMs` have passed since the
   * call. Leaving the iteration early cancels the tasks not yet started.
   */
  map<T, R>(fn: ((item: T) => R) | string, iterable: Iterable<T>, options?: MapOptions): AsyncIterableIterator<Awaited<R>> {
    const o = checkOptions('options', options)
    const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    const chunksize = o.chunksize === undefined ? 1 : checkPositiveInteger('options.chunksize', o.chunksize)
    const buffersize = checkLimit('options.buffersize', o.buffersize)
    if (iterable === null || typeof (iterable as any)?.[Symbol.iterator] !== 'function') throw invalidType('iterable', 'an iterable', iterable)
    const results = mapInOrder<T, any>(iterable, chunksize, buffersize, ms, (items, first) =>
      chunksize === 1
        ? this.#submit(fn, items, 0, undefined, { values: items, name: () => `iterable[${first}]` })
        : this.#submit(fn, [items], TaskFlag.CHUNK, undefined, { values: items, name: (i) => `iterable[${first + i}]` }),
    )
    if (chunksize === 1) return results
    return (async function* () {
      for await (const chunk of results) yield* chunk as Awaited<R>[]
    })()
  }

  /** Counts of what this executor has done and holds, and recent submit-to-settle latencies. */
  stats(): ExecutorStats {
    const sorted = [...this.#latencies].sort((a, b) => a - b)
    const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
    return {
      completed: this.#completed,
      failed: this.#failed,
      cancelled: this.#cancelled,
      pending: this.#pending.size,
      workers: this.workerCount(),
      latencyMs: sorted.length === 0 ? null : { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] },
    }
  }

  /** @internal A future of this executor settled: counts it, and its latency if it completed. */
  _taskSettled(f: Future<any>): void {
    // Moved values its worker never asked for (cancelled, broken, destroyed).
    if (this.#held.size > 0) this.#held.delete(f._taskId)
    const submitted = this.#submittedAt.get(f._taskId)
    this.#submittedAt.delete(f._taskId)
    if (f.cancelled()) {
      this.#cancelled++
      return
    }
    this.#completed++
    if (f._failed) this.#failed++
    if (submitted === undefined) return
    this.#latencies[this.#latencyAt] = performance.now() - submitted
    this.#latencyAt = (this.#latencyAt + 1) % LATENCY_WINDOW
  }

  /**
   * Stops accepting tasks. Queued tasks still run unless `cancelFutures`;
   * with `wait` (the default) it resolves once every future is done and the
   * workers have exited. Calling it again is harmless; a later call with
   * `cancelFutures` still cancels what is queued.
   */
  shutdown(options?: ShutdownOptions): Promise<void> {
    return rejecting(async () => {
      const o = checkOptions('options', options)
      const wait = checkFlag('options.wait', o.wait, true)
      const cancelFutures = checkFlag('options.cancelFutures', o.cancelFutures, false)
      const first = !this.#shutdown
      if (first) {
        this.#flush()
        this.#shutdown = true
      }
      // Also on a later call (a graceful shutdown first, then one that gives up on the queue), as CPython's.
      if (cancelFutures) {
        for (const id of this.#native.cancelQueued()) {
          const f = this.#pending.get(id)
          this.#pending.delete(id)
          f?._settle('cancelled', undefined, undefined)
        }
        this.#updateRef()
      }
      if (first) this.closeWorkers()
      if (wait && this.workerCount() > 0) {
        // A hub wait, as Future.result's: a greenlet kill or Timeout ends it.
        let wake: (() => void) | undefined
        try {
          await suspendFresh((waiter) => {
            hub.park(waiter, -1)
            wake = () => hub.unpark(waiter)
            this.#exited.push(wake)
            // Idle workers are unref'd; the caller is waiting for them to leave.
            this.#updateRef()
          })
        } finally {
          const at = wake === undefined ? -1 : this.#exited.indexOf(wake)
          if (at >= 0) {
            this.#exited.splice(at, 1)
            this.#updateRef()
          }
        }
      }
    })
  }

  /**
   * Stops at once: terminates every worker (a task in an endless loop
   * included), cancels the futures of tasks not started yet, and fails those
   * of running tasks with BrokenThreadPool / BrokenProcessPool ("destroyed");
   * results already computed still resolve their futures. Submitting
   * afterwards throws, as after shutdown. Resolves once every worker has
   * exited. Calling it again returns the same promise.
   */
  destroy(): Promise<void> {
    if (this.#destroyed !== undefined) return this.#destroyed
    let destroyed!: () => void
    this.#destroyed = new Promise<void>((resolve) => (destroyed = resolve))
    const settle: [Future<any>, boolean][] = []
    this.#shutdown = true
    if (!this.#broken) {
      // Tasks still buffered here never reached the queue.
      const unsent = this.#batch
      this.#writer.reset()
      this.#buffered = 0
      this.#earlyCancels = []
      const queued = new Set(this.#native.cancelQueued())
      // Results computed already.
      this.#drain()
      for (const f of this.#pending.values()) settle.push([f, f._batch === unsent || queued.has(f._taskId)])
      this.#pending.clear()
      this.#native.purge()
    }
    void this.terminateWorkers().then(() => {
      const waiters = this.#exited
      this.#exited = []
      this.#updateRef()
      for (const wake of waiters) wake()
      destroyed()
    })
    this.#updateRef()
    this.#held.clear()
    const error = this.brokenError('the executor was destroyed while the task was running', undefined)
    for (const [f, queued] of settle) {
      if (queued) f._settle('cancelled', undefined, undefined)
      else f._reject(error)
    }
    return this.#destroyed
  }

  /** `await using pool = new ThreadPoolExecutor()`: shuts down and waits. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown({ wait: true })
  }

  /**
   * `naming`: how an uncloneable argument is named (`args[i]` unless given);
   * `transfer`: `options.transferList`, checked. The `move()` markers among
   * the arguments (the items of a chunk) are replaced by their values, and
   * what they move joins `transfer`.
   */
  #submit(fn: TaskFn, args: unknown[], flags: number, signal: AbortSignal | undefined, naming?: ArgNaming, transfer?: NamedTransfer[]): Future<any> {
    if (this.#broken) throw this.#broken
    if (this.#shutdown) throw new Error('cannot schedule new futures after shutdown')
    if (this.#pending.size - this.maxWorkers >= this.#maxQueue) {
      throw new TaskQueueFull(`the task queue is full: ${this.#maxQueue} tasks wait for the ${this.maxWorkers} workers (options.maxQueue)`)
    }
    transfer = takeMoved(flags & TaskFlag.CHUNK ? (args[0] as unknown[]) : args, naming?.name ?? argName, transfer)
    let list: TransferListItem[] | undefined
    if (transfer !== undefined && transfer.length > 0) {
      list = transfer.map((t) => t.item)
      if (!this.#processes) flags |= TaskFlag.TRANSFER
      else {
        const port = transfer.find((t) => !types.isArrayBuffer(t.item))
        if (port !== undefined) {
          throw new TypeError(`${port.name} is a MessagePort, which ProcessPoolExecutor cannot send: a child process gets copies, and a port cannot be copied (use ThreadPoolExecutor)`)
        }
      }
    }
    const fnId = this.#intern(fn)
    const id = this.#newId()
    const w = this.#writer
    const start = w.length
    const mark = w.beginFrame(id)
    w.u32(fnId)
    w.u8(flags)
    this.#messageShared = []
    // A process pool copies what it would move: its ArrayBuffers are cloned like the rest.
    const moving = this.#processes ? undefined : list
    try {
      w.args(args, moving)
    } catch (err) {
      w.truncate(start)
      this.releaseMemory(this.#messageShared)
      throw uncloneableArgument(err, naming ?? { values: args, name: argName }, moving)
    }
    w.endFrame(mark)
    if (list !== undefined) {
      // Detached now, as postMessage does: the memory is held here (no copy) until the worker asks for it.
      let held: TransferListItem[]
      try {
        held = structuredClone(list, { transfer: list })
      } catch (err) {
        w.truncate(start)
        this.releaseMemory(this.#messageShared)
        throw new TypeError(`${transfer!.map((t) => t.name).join(', ')} could not be moved: ${(err as Error)?.message}`, { cause: err })
      }
      // A process pool has copied the bytes: dropping them frees the memory.
      if (!this.#processes) this.#held.set(id, held)
    }
    const f = Future._create<any>(this, id)
    if (this.#messageShared.length > 0) {
      const ids = this.#messageShared
      f._addWaiter(() => this.releaseMemory(ids))
      this.#messageShared = []
    }
    f._batch = this.#batch
    this.#pending.set(id, f)
    this.#submittedAt.set(id, performance.now())
    if (!this.#refd) this.#updateRef()
    if (++this.#buffered >= FLUSH_EVERY) this.#flush()
    else if (!this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(this.#flush)
    }
    if (signal) this.#watch(f, signal)
    return f
  }

  #watch(f: Future<any>, signal: AbortSignal): void {
    if (signal.aborted) {
      f.cancel()
      return
    }
    const onAbort = (): void => {
      if (f.done()) return
      if (this._cancelTask(f, true)) f._settle('cancelled', undefined, undefined)
      else this.abortRunning(f._taskId, encodeReason(signal.reason))
    }
    signal.addEventListener('abort', onAbort, { once: true })
    f._addWaiter(() => signal.removeEventListener('abort', onAbort))
  }

  #newId(): number {
    do {
      this.#nextId = this.#nextId === MAX_TASK_ID ? 1 : this.#nextId + 1
    } while (this.#pending.has(this.#nextId))
    return this.#nextId
  }

  #intern(fn: TaskFn): number {
    let key: string
    let def: () => Buffer
    if (typeof fn === 'function') {
      const known = this.#fnIds.get(fn)
      if (known !== undefined) return known
      const source = sourceOf('fn', fn)
      key = `s${source}`
      def = () => definition(DefKind.SOURCE, source)
    } else if (typeof fn === 'string') {
      if (this.config.moduleUrl === undefined) {
        throw new TypeError(`fn is the export name ${JSON.stringify(fn)}, but options.module is not set: pass a function, or set options.module`)
      }
      key = `e${fn}`
      def = () => definition(DefKind.EXPORT, fn)
    } else {
      throw invalidType('fn', 'a function or the name of an export of options.module', fn)
    }
    let id = this.#defIds.get(key)
    if (id === undefined) {
      const bytes = def()
      this.definitions.push(bytes)
      id = this.definitions.length
      this.#native.define(id, bytes)
      this.#defIds.set(key, id)
    }
    if (typeof fn === 'function') this.#fnIds.set(fn, id)
    return id
  }

  readonly #flush = (): void => {
    this.#flushQueued = false
    if (this.#buffered === 0) return
    this.#native.submit(this.#writer.view())
    this.#writer.reset()
    this.#buffered = 0
    this.#batch++
    for (const id of this.#earlyCancels) this.#native.cancel(id)
    this.#earlyCancels = []
    this.dispatch()
  }

  /** Called from Rust (batched) and by transports that complete on this thread. */
  readonly #drain = (): void => {
    const buf = this.#native.drain()
    if (buf === null) return
    const r = new Reader(buf, 0, this.resolveShared, this.resolveTransfer)
    const pending = this.#pending
    // Every result is read and taken out of `pending` before any future
    // settles: a done callback may destroy() or break the executor, which
    // fails what is still pending, and must not take these results with it.
    const results: unknown[] = []
    forEachFrame(buf, (id, start) => {
      const f = pending.get(id)
      if (f === undefined) return
      pending.delete(id)
      r.at = start
      try {
        const status = r.u8()
        // Aborted before a worker started it.
        results.push(f, status, status === Status.CANCELLED ? undefined : r.value())
      } catch (err) {
        results.push(f, UNREADABLE, err)
      }
    })
    for (let i = 0; i < results.length; i += 3) {
      const f = results[i] as Future<any>
      const status = results[i + 1] as number
      const value = results[i + 2]
      if (status === Status.OK) f._resolve(value)
      else if (status === Status.CANCELLED) f._settle('cancelled', undefined, undefined)
      else f._reject(status === Status.ERROR ? rebuildError(value as any) : value)
    }
    if (pending.size === 0) this.allSettled()
    this.#updateRef()
    this.#maybeExited()
  }

  /**
   * @internal Cancels the task if it is queued. `aborting`: its signal
   * aborted; if a worker holds it, the queue remembers, and the worker
   * giving it back unstarted cancels it (see the runtime's executor module).
   */
  _cancelTask(f: Future<any>, aborting = false): boolean {
    const id = f._taskId
    if (this.#pending.get(id) !== f) return false
    if (f._batch === this.#batch) this.#earlyCancels.push(id)
    else if (!(aborting ? this.#native.abort(id) : this.#native.cancel(id))) return false
    this.#pending.delete(id)
    this.#updateRef()
    return true
  }

  /** @internal */
  _taskRunning(f: Future<any>): boolean {
    return this.#pending.get(f._taskId) === f && this.#native.isRunning(f._taskId)
  }

  /** @internal Settles everything: the process is exiting. */
  _abandon(): void {
    this.breakWith('the process is exiting with tasks still pending')
  }

  #updateRef(): void {
    const refd = this.#pending.size > 0 || this.#exited.length > 0
    if (refd === this.#refd) return
    this.#refd = refd
    if (refd) {
      busy.add(this)
      if (!exitHookInstalled) {
        exitHookInstalled = true
        process.on('exit', settleAllAtExit)
      }
    } else {
      busy.delete(this)
    }
    this.setRef(refd)
  }

  #maybeExited(): void {
    if (this.#exited.length === 0 || this.workerCount() > 0) return
    const waiters = this.#exited
    this.#exited = []
    this.#updateRef()
    for (const resolve of waiters) resolve()
  }

  /** @internal */
  protected completeOn(slot: NativeExecutorSlot, frames: Buffer): void {
    slot.complete(frames)
    this.#drain()
  }

  /** A worker exited cleanly (retired or shut down). */
  /** @internal */
  protected workerLeft(): void {
    if (this.#broken || this.#destroyed) return
    // Replace it if work is left that has not started, even after shutdown:
    // queued tasks still run, and a thread worker takes over those another
    // one holds once that one is blocked. (A child process's batch is its
    // own: not counted, a new child would find nothing, leave, and be
    // replaced again.)
    if (this.#native.queued() > 0) this.dispatch()
    this.#maybeExited()
  }

  /** A worker died or an initializer failed: fail every pending future and stop all workers. */
  /** @internal */
  protected breakWith(message: string, cause?: unknown): void {
    if (this.#broken || this.#destroyed) return
    // Results the workers delivered before this one died resolve their futures.
    this.#drain()
    if (this.#broken || this.#destroyed) return
    const error = this.brokenError(message, cause)
    this.#broken = error
    this.#native.purge()
    this.#writer.reset()
    this.#buffered = 0
    this.#held.clear()
    const futures = [...this.#pending.values()]
    this.#pending.clear()
    void this.terminateWorkers()
    const waiters = this.#exited
    this.#exited = []
    this.#updateRef()
    for (const f of futures) f._reject(error)
    for (const resolve of waiters) resolve()
  }

  /** Workers the executor should have now. */
  /** @internal */
  protected wantedWorkers(): number {
    return Math.min(this.maxWorkers, this.#pending.size)
  }

  /**
   * The id under which a SharedArrayBuffer in a task's arguments reaches the
   * workers (`what` names where it is); until {@link releaseMemory} of that
   * id, workers can look it up. Refused unless workers share memory.
   */
  /** @internal */
  protected shareMemory(sab: SharedArrayBuffer, what: string): number {
    return refuseSharing(sab, what)
  }

  /** Ids of {@link shareMemory} whose task is done. */
  /** @internal */
  protected releaseMemory(_ids: number[]): void {}

  /** Resolves the shared-memory ids of results. */
  /** @internal */
  protected resolveShared: ResolveHook | undefined = undefined

  /** Resolves the transfer ids of results (values a thread worker moved back). */
  /** @internal */
  protected resolveTransfer: TransferHook | undefined = undefined

  /** What moves with task `id`, handed over once (its worker asks for it). */
  /** @internal */
  protected takeHeld(id: number): TransferListItem[] | undefined {
    const held = this.#held.get(id)
    this.#held.delete(id)
    return held
  }

  /** Results were read and no future is pending: nothing that is still unread will be. */
  /** @internal */
  protected allSettled(): void {}

  /** @internal */
  protected abstract brokenError(message: string, cause: unknown): BrokenExecutor
  /** New tasks are in the queue: start workers if needed and tell them. */
  /** @internal */
  protected abstract dispatch(): void
  /** @internal */
  protected abstract workerCount(): number
  /** @internal */
  protected abstract setRef(ref: boolean): void
  /** @internal */
  protected abstract abortRunning(id: number, reason: Buffer): void
  /** Let workers finish the queue and exit. */
  /** @internal */
  protected abstract closeWorkers(): void
  /** Stops every worker now; resolves once they have all exited. */
  /** @internal */
  protected abstract terminateWorkers(): Promise<void>
}

interface ThreadWorker {
  worker: Worker
  status: Int32Array
  /** This side of the worker's share port (see {@link SharedMessage}). */
  port: MessagePort
  error: unknown
}

/**
 * Runs tasks in worker threads. Each worker runs one task at a time; a
 * worker started when all are busy, up to `maxWorkers`.
 *
 * A SharedArrayBuffer in the arguments or a result is shared, not copied:
 * it is posted to every worker under an id (and to workers started later
 * while a task that uses it is pending) before the task reaches the queue,
 * and the task's bytes carry the id.
 */
export class ThreadPoolExecutor extends Executor {
  readonly #bell = new Int32Array(new SharedArrayBuffer(4 * BELL_SLOTS))
  readonly #workers = new Set<ThreadWorker>()
  #refd = false
  /** Shared memory of pending tasks: id and how many pending tasks use it. */
  readonly #shared = new Map<SharedArrayBuffer, { id: number; tasks: number }>()
  readonly #sharedById = new Map<number, SharedArrayBuffer>()
  /** Shared memory of results, posted by the workers, by id; each is read once. */
  readonly #incoming = new Map<number, SharedArrayBuffer>()
  /** Values moved back with results (`move()`), posted by the workers, by id; each is read once. */
  readonly #incomingMoved = new Map<number, unknown[]>()

  readonly #resourceLimits: ResourceLimits | undefined

  constructor(options?: ThreadPoolExecutorOptions) {
    super(options, Math.min(32, os.availableParallelism() + 4), false)
    this.#resourceLimits = checkResourceLimits(options?.resourceLimits)
  }

  /** @internal */
  protected override brokenError(message: string, cause: unknown): BrokenExecutor {
    return new BrokenThreadPool(message, cause === undefined ? undefined : { cause })
  }

  /** @internal */
  protected override dispatch(): void {
    const want = this.wantedWorkers()
    while (this.#workers.size < want) if (!this.#spawn()) return
    Atomics.add(this.#bell, BELL, 1)
    Atomics.notify(this.#bell, BELL)
  }

  #spawn(): boolean {
    const status = new Int32Array(new SharedArrayBuffer(4))
    const { port1: port, port2 } = new MessageChannel()
    const workerData: ThreadWorkerData = {
      greenthreadExecutor: true,
      poolId: this.poolId,
      bell: this.#bell.buffer as SharedArrayBuffer,
      status: status.buffer as SharedArrayBuffer,
      config: this.config,
      shared: [...this.#sharedById],
      sharePort: port2,
    }
    let worker: Worker
    try {
      worker = new Worker(WORKER_PATH, { workerData, transferList: [port2], resourceLimits: this.#resourceLimits })
    } catch (err) {
      port.close()
      this.breakWith(`a worker thread could not be started (${(err as Error)?.message}); the thread pool is not usable anymore`, err)
      return false
    }
    port.unref()
    const record: ThreadWorker = { worker, status, port, error: undefined }
    this.#workers.add(record)
    if (!this.#refd) worker.unref()
    worker.on('message', (m: { type: string; error: Uint8Array; id: number }) => {
      if (m?.type === 'init-failed') record.error = readThrown(Buffer.from(m.error))
      else if (m?.type === TRANSFER_REQUEST) this.#handOver(worker, m.id)
    })
    worker.on('error', (err) => {
      record.error = err
    })
    worker.on('exit', (code) => {
      if (!this.#workers.delete(record)) return
      // Its last results may not be read yet: keep the memory they share.
      this.#receiveShared(port)
      port.close()
      const how = Atomics.load(status, 0)
      if (how === ExitStatus.CLEAN) this.workerLeft()
      else if ((record.error as NodeJS.ErrnoException | undefined)?.code === 'ERR_WORKER_INIT_FAILED') {
        // Out of file descriptors or memory, for one.
        this.breakWith(`a worker thread could not be started (${(record.error as Error).message}); the thread pool is not usable anymore`, record.error)
      } else if (how === ExitStatus.INIT_FAILED) {
        this.breakWith('a thread initializer failed; the thread pool is not usable anymore', record.error)
      } else {
        this.breakWith(`a worker thread exited abruptly (exit code ${code}); the thread pool is not usable anymore`, record.error)
      }
    })
    return true
  }

  /** A worker took task `id`, which moves values: they go to that worker (moved, not copied). */
  #handOver(worker: Worker, id: number): void {
    const list = this.takeHeld(id)
    try {
      worker.postMessage({ type: TRANSFER_REQUEST, id, list } satisfies TransferMessage, list ?? [])
    } catch (err) {
      worker.postMessage({ type: TRANSFER_REQUEST, id, list: undefined, error: (err as Error)?.message } satisfies TransferMessage)
    }
  }

  /** @internal */
  protected override shareMemory(sab: SharedArrayBuffer): number {
    let entry = this.#shared.get(sab)
    if (entry === undefined) {
      entry = { id: Atomics.add(this.#bell, SHARED_SEQ, 1) + 1, tasks: 0 }
      this.#shared.set(sab, entry)
      this.#sharedById.set(entry.id, sab)
      const m: SharedMessage = { id: entry.id, sab }
      for (const { port } of this.#workers) port.postMessage(m)
    }
    entry.tasks++
    return entry.id
  }

  /** @internal */
  protected override releaseMemory(ids: number[]): void {
    for (const id of ids) {
      const sab = this.#sharedById.get(id)
      const entry = sab && this.#shared.get(sab)
      if (entry === undefined || --entry.tasks > 0) continue
      this.#shared.delete(sab!)
      this.#sharedById.delete(id)
      const m: SharedMessage = { id }
      for (const { port } of this.#workers) port.postMessage(m)
    }
  }

  /** @internal */
  protected override resolveShared: ResolveHook = (id) => {
    let sab = this.#incoming.get(id)
    if (sab === undefined) {
      for (const { port } of this.#workers) this.#receiveShared(port)
      sab = this.#incoming.get(id)
      if (sab === undefined) throw new Error(`greenthread: the shared memory ${id} of a result never arrived`)
    }
    this.#incoming.delete(id)
    return sab
  }

  /** @internal */
  protected override resolveTransfer: TransferHook = (id) => {
    let list = this.#incomingMoved.get(id)
    if (list === undefined) {
      for (const { port } of this.#workers) this.#receiveShared(port)
      list = this.#incomingMoved.get(id)
      if (list === undefined) throw new Error(`greenthread: the values ${id} moved with a result never arrived`)
    }
    this.#incomingMoved.delete(id)
    return list
  }

  /** @internal */
  protected override allSettled(): void {
    // Memory of results never read (a result that failed to clone after its memory was posted).
    this.#incoming.clear()
    this.#incomingMoved.clear()
  }

  #receiveShared(port: MessagePort): void {
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
      const { id, sab, moved } = m.message as SharedMessage
      if (sab !== undefined) this.#incoming.set(id, sab)
      else if (moved !== undefined) this.#incomingMoved.set(id, moved)
    }
  }

  /** @internal */
  protected override workerCount(): number {
    return this.#workers.size
  }

  /** @internal */
  protected override setRef(ref: boolean): void {
    this.#refd = ref
    for (const { worker } of this.#workers) {
      if (ref) worker.ref()
      else worker.unref()
    }
  }

  /** @internal */
  protected override abortRunning(id: number, reason: Buffer): void {
    for (const { worker } of this.#workers) worker.postMessage({ type: ABORT_REASON, id, reason })
  }

  /** @internal */
  protected override closeWorkers(): void {
    Atomics.store(this.#bell, CLOSED, 1)
    Atomics.add(this.#bell, BELL, 1)
    Atomics.notify(this.#bell, BELL)
  }

  /** @internal */
  protected override terminateWorkers(): Promise<void> {
    Atomics.store(this.#bell, CLOSED, 1)
    const exits: Promise<unknown>[] = []
    for (const { worker, port } of this.#workers) {
      port.close()
      // Whoever waits for the workers to go keeps the process alive meanwhile.
      worker.ref()
      exits.push(worker.terminate().then(noop, noop))
    }
    this.#workers.clear()
    this.#incoming.clear()
    this.#incomingMoved.clear()
    return Promise.all(exits).then(noop)
  }
}

function readThrown(buf: Buffer): unknown {
  const r = new Reader(buf)
  const status = r.u8()
  const value = r.value()
  return status === Status.ERROR ? rebuildError(value as any) : value
}

interface Child {
  proc: ChildProcess
  sock: net.Socket
  slot: NativeExecutorSlot
  ready: boolean
  /** Batches written and not yet reported done. */
  inFlight: number
  batchSize: number
  /** Tasks written to it in all. */
  assigned: number
  defsSent: number
  /** CLOSE was sent: its exit is not a crash. */
  closing: boolean
  error: unknown
  /** Retires it if it stays idle (`options.idleTimeout`). */
  idleTimer: NodeJS.Timeout | undefined
}

/** A process pool's options, refusing `resourceLimits` (thread workers' only): accepted, it would limit nothing. */
function withoutResourceLimits(options: ExecutorOptions | undefined): ExecutorOptions | undefined {
  if (options !== null && typeof options === 'object' && (options as ThreadPoolExecutorOptions).resourceLimits !== undefined) {
    throw new TypeError(
      'options.resourceLimits applies to thread workers only: limit a process pool\'s children with NODE_OPTIONS=--max-old-space-size=N',
    )
  }
  return options
}

/**
 * Runs tasks in child Node processes (`maxWorkers` defaults to the number of
 * CPUs). Each child runs one task at a time. Killing a child, or a task that
 * calls `process.exit`, breaks the pool.
 */
export class ProcessPoolExecutor extends Executor {
  readonly #children = new Set<Child>()
  #refd = false
  /** A child could not be started: the pool breaks as soon as the reason is known. */
  #spawnFailed = false

  constructor(options?: ExecutorOptions) {
    super(withoutResourceLimits(options), os.availableParallelism(), true)
  }

  /** @internal */
  protected override brokenError(message: string, cause: unknown): BrokenExecutor {
    return new BrokenProcessPool(message, cause === undefined ? undefined : { cause })
  }

  /** @internal */
  protected override dispatch(): void {
    const want = this.wantedWorkers()
    while (this.#children.size < want) if (!this.#spawn()) return
    for (const c of this.#children) this.#feed(c)
  }

  /** Starting a child failed (out of file descriptors or processes, no node binary, ...). */
  #cannotSpawn(err: unknown): void {
    this.#spawnFailed = true
    this.breakWith(`a child process could not be started (${(err as Error)?.message ?? String(err)}); the process pool is not usable anymore`, err)
  }

  #spawn(): boolean {
    if (this.#spawnFailed) return false
    let proc: ChildProcess
    try {
      // Loaded on first use: node:child_process is a good part of greenthread's own load time.
      const { spawn } = require('node:child_process') as typeof import('node:child_process')
      proc = spawn(process.execPath, [WORKER_PATH, CHILD_FLAG, String(process.pid)], { stdio: ['ignore', 'inherit', 'inherit', 'pipe'] })
    } catch (err) {
      this.#cannotSpawn(err)
      return false
    }
    const sock = proc.stdio?.[3] as net.Socket | null | undefined
    if (sock == null) {
      // EMFILE and ENFILE: Node reports the error on the next tick and sets up no pipes.
      this.#spawnFailed = true
      proc.once('error', (err) => this.#cannotSpawn(err))
      // Should it not come, break all the same (a no-op once broken).
      setImmediate(() => this.#cannotSpawn(new Error('spawn failed and set up no pipes')))
      return false
    }
    const c: Child = {
      proc,
      sock,
      slot: new native.NativeExecutorSlot(this.poolId),
      ready: false,
      inFlight: 0,
      batchSize: 1,
      assigned: 0,
      defsSent: 0,
      closing: false,
      idleTimer: undefined,
      error: undefined,
    }
    this.#children.add(c)
    if (!this.#refd) this.#unref(c)
    sendMessage(sock, Msg.INIT, this.encodedConfig!)
    const parser = new MessageParser((type, body) => this.#onMessage(c, type, body))
    sock.on('data', (chunk: Buffer) => parser.push(chunk))
    // EPIPE and resets when a child dies: its exit is what reports it.
    sock.on('error', noop)
    // A child alive with its end of the pipe closed (a task closed every
    // descriptor) can send no result: its tasks would pend for ever.
    sock.on('end', () => {
      if (!this.#children.has(c) || c.closing) return
      c.error ??= new Error('the child process closed its pipe to the pool')
      proc.kill('SIGKILL')
    })
    proc.on('error', (err: NodeJS.ErrnoException) => {
      c.error = err
      // Spawning failed (EAGAIN, ENOENT, EACCES): there is no child to wait for.
      if (typeof err.syscall === 'string' && err.syscall.startsWith('spawn')) this.#cannotSpawn(err)
    })
    // 'close', not 'exit': by then every message the child wrote has been read.
    proc.on('close', (code, signal) => {
      if (!this.#children.delete(c)) return
      c.slot.detach()
      if (c.closing && code === 0) this.workerLeft()
      else if (c.error !== undefined && !c.ready) this.breakWith('a process initializer failed; the process pool is not usable anymore', c.error)
      else {
        const how = signal !== null ? `signal ${signal}` : `exit code ${code}`
        this.breakWith(`a child process terminated abruptly (${how}); the process pool is not usable anymore`, c.error)
      }
    })
    return true
  }

  #onMessage(c: Child, type: Msg, body: Buffer): void {
    // Destroyed (by a done callback run for an earlier message of the same
    // chunk, say): nothing it still wrote is wanted, and its slot is gone.
    if (c.sock.destroyed) return
    switch (type) {
      case Msg.READY:
        if (!this.#children.has(c)) return
        c.ready = true
        this.#feed(c)
        break
      case Msg.INIT_FAILED:
        c.error = readThrown(body)
        this.breakWith('a process initializer failed; the process pool is not usable anymore', c.error)
        break
      case Msg.RETURN: {
        // Those aborted meanwhile are not queued again: they end cancelled.
        // Given back unstarted: not run, so not counted against maxTasksPerChild.
        forEachFrame(body, () => c.assigned--)
        const cancelled = c.slot.giveBack(body)
        if (cancelled.length > 0) {
          const w = new Writer()
          writeCancelled(w, cancelled)
          this.completeOn(c.slot, w.take())
        }
        for (const other of this.#children) if (other !== c) this.#feed(other)
        break
      }
      case Msg.RESULTS: {
        const { last, ms, frames } = readResultsHead(body)
        if (frames.length > 0) this.completeOn(c.slot, frames)
        if (last) {
          let ran = 0
          forEachFrame(frames, () => ran++)
          c.inFlight--
          c.batchSize = nextBatchSize(c.batchSize, Math.max(ran, 1), ms)
          this.#feed(c)
        }
        break
      }
    }
  }

  /** Writes batches to `c` while it has room; retires or closes it when its work is over. */
  #feed(c: Child): void {
    if (!c.ready || c.closing || this.isStopped) return
    const maxTasks = this.config.maxTasks
    let exhausted = false
    while (c.inFlight < CHILD_BATCHES_IN_FLIGHT) {
      const want = maxTasks > 0 ? Math.min(c.batchSize, maxTasks - c.assigned) : c.batchSize
      if (want <= 0) break
      const batch = c.slot.take(want)
      if (batch === null) {
        exhausted = true
        break
      }
      if (c.defsSent < this.definitions.length) {
        const w = new Writer()
        for (let i = c.defsSent; i < this.definitions.length; i++) {
          const mark = w.beginFrame(i + 1)
          w.bytes(this.definitions[i])
          w.endFrame(mark)
        }
        c.defsSent = this.definitions.length
        sendMessage(c.sock, Msg.DEFS, w.take())
      }
      forEachFrame(batch, () => c.assigned++)
      sendMessage(c.sock, Msg.TASKS, batch)
      c.inFlight++
    }
    if (c.inFlight > 0) clearTimeout(c.idleTimer)
    const retiring = maxTasks > 0 && c.assigned >= maxTasks
    if (c.inFlight === 0 && (retiring || (exhausted && this.isShutdown))) {
      c.closing = true
      // Its local deque may still hold tasks: give them back for the others.
      c.slot.detach()
      sendMessage(c.sock, Msg.CLOSE)
      if (retiring) for (const other of this.#children) if (other !== c) this.#feed(other)
    } else if (c.inFlight === 0 && exhausted && this.config.idleMs > 0 && c.idleTimer === undefined) {
      c.idleTimer = setTimeout(() => this.#retireIfIdle(c), this.config.idleMs).unref()
    }
  }

  /** `options.idleTimeout` passed with nothing for `c`: it exits (a new child starts when work comes). */
  #retireIfIdle(c: Child): void {
    c.idleTimer = undefined
    this.#feed(c)
    if (c.inFlight > 0 || c.closing || this.isStopped) return
    c.closing = true
    c.slot.detach()
    sendMessage(c.sock, Msg.CLOSE)
  }

  #unref(c: Child): void {
    c.proc.unref()
    c.sock.unref()
  }

  /** @internal */
  protected override workerCount(): number {
    return this.#children.size
  }

  /** @internal */
  protected override setRef(ref: boolean): void {
    this.#refd = ref
    for (const c of this.#children) {
      if (ref) {
        c.proc.ref()
        c.sock.ref()
      } else this.#unref(c)
    }
  }

  /** @internal */
  protected override abortRunning(id: number, reason: Buffer): void {
    const body = Buffer.allocUnsafe(4 + reason.length)
    body.writeUInt32LE(id, 0)
    reason.copy(body, 4)
    for (const c of this.#children) if (!c.closing) sendMessage(c.sock, Msg.ABORT, body)
  }

  /** @internal */
  protected override closeWorkers(): void {
    for (const c of this.#children) this.#feed(c)
  }

  /** @internal */
  protected override terminateWorkers(): Promise<void> {
    const exits: Promise<unknown>[] = []
    for (const c of this.#children) {
      c.slot.detach()
      // Nothing it still writes is wanted.
      c.sock.destroy()
      if (c.proc.exitCode === null && c.proc.signalCode === null) {
        // Whoever waits for the children to go keeps the process alive meanwhile.
        c.proc.ref()
        exits.push(new Promise((resolve) => c.proc.once('exit', resolve)))
        c.proc.kill('SIGKILL')
      }
    }
    this.#children.clear()
    return Promise.all(exits).then(noop)
  }
}
