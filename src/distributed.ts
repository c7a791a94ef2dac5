/**
 * `DistributedExecutor`: the executors' `submit`/`map`/`shutdown` and the
 * same `Future`s, over a BullMQ queue on Redis, served by `runWorker` (or the
 * `greenthread-worker` CLI) on any number of machines.
 *
 * Each task is one job: its name is the name of an export of the workers'
 * module, its data the arguments as v8 (structured clone) bytes in base64.
 * Completion comes from BullMQ's event stream (`QueueEvents`). Events can be
 * missed (the stream is trimmed, or Redis restarts and loses it), so the
 * executor also sweeps: after a reconnection, when the stream has moved past
 * the last event read, or after a long silence, it asks Redis for the state
 * of every pending job, settles those that finished and adds again those
 * that Redis no longer has (same job id: a job still there is not added
 * twice). A Future settles exactly once; the task behind it runs at least
 * once (see the README's "Running workers on several machines").
 */
import { fileURLToPath } from 'node:url'

import type * as BullMQ from 'bullmq'

import {
  answersWithin,
  checkConnectTimeout,
  checkConnection,
  checkQueueName,
  connect,
  debug,
  decode,
  decodeError,
  encodeArgs,
  loadBullmq,
  options as requiredOptions,
  isTask,
  resolveModule,
  withDeadline,
  type Connection,
  type JobData,
  type RedisClient,
  type RedisConnectionOptions,
} from './_redis'
import { checkFlag, checkLimit, checkMs, checkOptions, checkPositiveInteger, checkTimerMs, invalidType, rejecting, safeString } from './errors'
import { BrokenExecutor, Future, mapInOrder, wait } from './futures'

export { runWorker, DistributedWorker, type RunWorkerOptions, type WorkerCloseOptions } from './distributed-worker'
export type { RedisConnectionOptions } from './_redis'

/** Any task names and arguments: the executor's type parameter when none is given. */
export type TaskModule = Record<string, (...args: any[]) => any>

/** The function exports of `M` (`DistributedExecutor<typeof import('./tasks')>` types `submit` and `map` with them). */
type TaskName<M> = { [K in keyof M]: M[K] extends (...args: any[]) => any ? K : never }[keyof M] & string
type TaskArgs<M, K extends keyof M> = M[K] extends (...args: infer A) => any ? A : never
type TaskResult<M, K extends keyof M> = M[K] extends (...args: any[]) => infer R ? Awaited<R> : never

export interface DistributedExecutorOptions {
  /** Where Redis is: `{ host, port }` (other ioredis options pass through) or a `redis://` URL. */
  connection: RedisConnectionOptions
  /** The BullMQ queue the workers serve. */
  queue: string
  /**
   * The workers' task module (a path, URL or package name). Optional here:
   * when set, it is loaded with `require` and `submit` refuses names it
   * does not export (an ES module that `require` cannot load is not checked).
   */
  module?: string | URL
  /** Runs of a task before its Future fails with its error. @default 1 */
  attempts?: number
  /** Wait between attempts. @default 0 */
  backoffMs?: number
  /** Give up connecting after this long, with an Error naming the address. @default 3000 */
  connectTimeoutMs?: number
  /** Once connected, pending futures fail (BrokenExecutor) if Redis stays unreachable, or does not answer, this long. @default 60000 */
  reconnectTimeoutMs?: number
  /** Finished jobs stay in Redis this long (a late reader can still find their outcome). @default 3600000 */
  keepJobsMs?: number
}

export interface DistributedMapOptions {
  /** The iteration throws TimeoutError if a result is not ready this many milliseconds after `map` was called. @default no limit */
  timeoutMs?: number
  /** At most this many jobs added ahead of the results taken, the input read lazily (as the executors' `map`). @default all at the call */
  buffersize?: number | null
}

export interface DistributedShutdownOptions {
  /** Resolve once every pending future is done and the connections are closed. @default true */
  wait?: boolean
  /** Cancel the futures whose jobs no worker has taken yet (their jobs are removed). @default false */
  cancelFutures?: boolean
}

interface Task {
  id: number
  jobId: string
  name: string
  /** The encoded arguments, kept to add the job again if Redis loses it. */
  args: string
  future: Future<any>
  /** Handed to Redis at least once. */
  sent: boolean
  /**
   * The connection (see `#connection`) in which Redis confirmed that it has
   * the job, or -1. Missing after a reconnection, Redis may have lost it (a
   * restart); in the same connection, someone removed it (see `#mark`).
   */
  addedIn: number
  /** A worker has it, as far as the events tell. */
  running: boolean
  /** It failed: its error is being read from Redis. */
  fetching: boolean
  /**
   * Found missing while Redis kept its data: the id of the event stream's
   * last entry then. If the events up to it bring no outcome (it finished,
   * and was removed by age before they were read), someone removed it.
   */
  goneAt: string | undefined
}

/** Sweep when nothing was heard about pending jobs for this long; doubled after each such sweep (long tasks are quiet), up to the max. */
const IDLE_SWEEP_MS = 10_000
const IDLE_SWEEP_MAX_MS = 300_000
/** How often the watchdog looks at the event stream and the connection. */
const WATCH_MS = 1000
/** Jobs added per `addBulk`. */
const ADD_BATCH = 1000
/** Sweeps for lost events start at least this far apart (a lagging reader would ask for one per batch). */
const MIN_SWEEP_GAP_MS = 500
/** Jobs looked up per pipeline by a sweep. */
const SWEEP_BATCH = 1000
/** The life of an executor's mark in Redis, renewed every WATCH_MS while futures are pending. */
const MARK_TTL_MS = 300_000
/** Disconnecting needs no answer from Redis: what has not ended by then never will. */
const FORCED_DISCONNECT_MS = 1000

const noop = (): void => {}

/** Executors with pending futures: they fail those futures if the process exits. */
const busy = new Set<DistributedExecutor<any>>()
let exitHookInstalled = false

/** Orders stream ids (`<ms>-<seq>`). */
function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number)
  const [bm, bs] = b.split('-').map(Number)
  return am !== bm ? am - bm : as - bs
}

/** The function exports of a module `require` can load; undefined for an ES module it cannot. */
function exportNames(url: string, given: unknown): Set<string> | undefined {
  if (!url.startsWith('file:')) return undefined
  let mod: Record<string, unknown>
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(fileURLToPath(url))
  } catch (err) {
    // An ES module (with top-level await, from Node 22) is checked by the workers that import it.
    const code = (err as NodeJS.ErrnoException)?.code
    if (code === 'ERR_REQUIRE_ESM' || code === 'ERR_REQUIRE_ASYNC_MODULE') return undefined
    throw new TypeError(`options.module ${safeString(given)} cannot be loaded: ${(err as Error)?.message ?? safeString(err)}`, { cause: err })
  }
  const names = new Set<string>()
  const collect = (o: unknown): void => {
    if (o === null || (typeof o !== 'object' && typeof o !== 'function')) return
    for (const k of Object.keys(o)) if (isTask((o as Record<string, unknown>)[k])) names.add(k)
  }
  collect(mod)
  collect(mod.default)
  return names
}

/** A prefix of this executor's job ids, random (node:crypto is loaded by those who use the class only). */
function jobIdPrefix(): string {
  const { randomBytes } = require('node:crypto') as typeof import('node:crypto')
  return `gt${randomBytes(6).toString('hex')}-`
}

/**
 * Runs tasks on the workers of a BullMQ queue (see `runWorker` and the
 * `greenthread-worker` CLI). Tasks are named exports of the workers'
 * module; arguments and results are structured clones.
 *
 * It connects in the background: `await executor.ready()` (or create it with
 * `DistributedExecutor.connect`) to learn at once that Redis is unreachable;
 * futures submitted meanwhile fail with BrokenExecutor if it is. It holds
 * Redis connections until `shutdown()` (or `await using`).
 */
export class DistributedExecutor<M extends object = TaskModule> {
  /** The queue's name. */
  readonly queue: string
  /** Where Redis is (no credentials). */
  readonly address: string
  readonly #conn: Connection
  readonly #exports: Set<string> | undefined
  readonly #moduleName: string | undefined
  readonly #jobOptions: Record<string, unknown>
  readonly #reconnectTimeoutMs: number
  /** Job ids are this plus a counter: unique per executor, never all digits (bullmq refuses that). */
  readonly #prefix = jobIdPrefix()
  /**
   * A key of this executor's, kept while futures are pending. A job of ours
   * missing from Redis was lost with Redis's data (a flush, a restart
   * without persistence) if the mark is gone too, or if Redis reconnected
   * since it took the job (a restart from an older snapshot); else someone
   * removed it (Queue.drain, obliterate: no event tells), once the events
   * not read yet bring no outcome of it (see `Task.goneAt`).
   */
  readonly #mark = `greenthread:executor:${this.#prefix}`
  #nextId = 0
  readonly #pending = new Map<number, Task>()
  #outbox: Task[] = []
  #flushQueued = false
  readonly #ready: Promise<void>
  #connected = false
  #control: RedisClient | undefined
  #bullQueue: BullMQ.Queue | undefined
  #events: BullMQ.QueueEvents | undefined
  #eventsKey = ''
  /** The id of the last event read from the stream. */
  #lastEventId = '0-0'
  /** Within a batch of events (one XREAD). */
  #inBatch = false
  /** The oldest id a batch not yet checked for a gap was read from. */
  #readFrom: string | undefined
  #checkingGap = false
  #lastSweep = 0
  #lastProgress = performance.now()
  #idleSweepMs = IDLE_SWEEP_MS
  #downSince: number | undefined
  /** Counts the reconnections to Redis (after each, Redis may have restarted with part of its data). */
  #connection = 0
  /** When a PING still unanswered was sent: a Redis that stops answering without closing the socket (stopped, partitioned) sends no 'close'. */
  #pingSince: number | undefined
  #watch: NodeJS.Timeout | undefined
  #sweeping = false
  #sweepAgain = false
  /** A job was found gone: look again once the events read have caught up. */
  #sweepAgainSoon = false
  #sweepTimer: NodeJS.Timeout | undefined
  #shutdown = false
  #broken: BrokenExecutor | undefined
  #closing: Promise<void> | undefined

  constructor(options: DistributedExecutorOptions) {
    const o = requiredOptions('options', options)
    this.#conn = checkConnection('options.connection', o.connection)
    this.queue = checkQueueName('options.queue', o.queue)
    this.address = this.#conn.address
    const attempts = o.attempts === undefined ? 1 : checkPositiveInteger('options.attempts', o.attempts)
    const backoffMs = o.backoffMs === undefined ? 0 : checkMs('options.backoffMs', o.backoffMs, false)
    const connectTimeoutMs = checkConnectTimeout('options.connectTimeoutMs', o.connectTimeoutMs)
    this.#reconnectTimeoutMs = o.reconnectTimeoutMs === undefined ? 60_000 : checkTimerMs('options.reconnectTimeoutMs', o.reconnectTimeoutMs)
    const keepMs = o.keepJobsMs === undefined ? 3_600_000 : checkMs('options.keepJobsMs', o.keepJobsMs, false)
    if (o.module !== undefined) {
      this.#moduleName = o.module instanceof URL ? o.module.href : safeString(o.module)
      this.#exports = exportNames(resolveModule('options.module', o.module), o.module)
    }
    // bullmq keeps ages in seconds.
    const age = Math.max(1, Math.ceil(keepMs / 1000))
    this.#jobOptions = {
      attempts,
      ...(backoffMs > 0 ? { backoff: { type: 'fixed', delay: backoffMs } } : {}),
      removeOnComplete: { age },
      removeOnFail: { age },
    }
    this.#ready = this.#start(connectTimeoutMs)
    // ready() reports it; futures fail with it; nobody else needs to hear.
    this.#ready.catch(noop)
  }

  /** Creates an executor and waits until it is connected; rejects (naming the address) if Redis cannot be reached. */
  static async connect<M extends object = TaskModule>(options: DistributedExecutorOptions): Promise<DistributedExecutor<M>> {
    const executor = new DistributedExecutor<M>(options)
    try {
      await executor.ready()
    } catch (err) {
      await executor.shutdown({ wait: false })
      throw err
    }
    return executor
  }

  /** Resolves once connected and listening for completions; rejects with an Error naming the address if Redis cannot be reached. */
  ready(): Promise<void> {
    return this.#ready
  }

  async #start(connectTimeoutMs: number): Promise<void> {
    let control: RedisClient
    try {
      control = await connect(this.#conn, connectTimeoutMs)
    } catch (err) {
      this.#break(new BrokenExecutor(`${(err as Error).message}; the executor is not usable`, { cause: err }))
      throw err
    }
    if (this.#closing !== undefined) {
      control.disconnect()
      return
    }
    this.#control = control
    control.on('close', () => {
      this.#downSince ??= performance.now()
    })
    control.on('ready', () => {
      if (this.#downSince === undefined) return
      this.#downSince = undefined
      this.#connection++
      // Redis may have restarted without (some of) its data, or events passed while away.
      debug('redis %s: reconnected, sweeping %d pending jobs', this.address, this.#pending.size)
      this.#sweepSoon(0, 'reconnected')
    })
    try {
      // A Redis lost meanwhile (or refusing more clients) would keep bullmq waiting for ever.
      await withDeadline(this.#listen(control), connectTimeoutMs, `cannot set up the queue ${this.queue} at ${this.address}: Redis did not answer`)
    } catch (err) {
      if (this.#closing !== undefined) return
      this.#break(new BrokenExecutor(`cannot use the queue ${this.queue} at ${this.address}: ${(err as Error)?.message}`, { cause: err }))
      throw err
    }
    try {
      await withDeadline(this.#setMark(), connectTimeoutMs, `Redis at ${this.address} did not answer`)
    } catch (err) {
      if (this.#closing !== undefined) return
      this.#break(new BrokenExecutor(`cannot use Redis at ${this.address}: ${(err as Error)?.message}`, { cause: err }))
      throw err
    }
    this.#connected = true
    this.#flush()
  }

  /** Creates the bullmq Queue and QueueEvents and waits until both are connected. */
  async #listen(control: RedisClient): Promise<void> {
    const { Queue, QueueEvents } = loadBullmq()
    const queue = new Queue(this.queue, { connection: this.#conn.bullmq as any, defaultJobOptions: this.#jobOptions as any })
    queue.on('error', (err: Error) => debug('queue %s: %s', this.queue, err?.message))
    this.#bullQueue = queue
    this.#eventsKey = queue.keys.events
    // Start reading after the stream's last event now: no event of our jobs is older.
    const last = (await control.xrevrange(this.#eventsKey, '+', '-', 'COUNT', 1)) as [string, string[]][]
    this.#lastEventId = last.length > 0 ? last[0][0] : '0-0'
    const events = new QueueEvents(this.queue, { connection: this.#conn.bullmq as any, lastEventId: this.#lastEventId })
    this.#events = events
    events.on('error', (err: Error) => debug('queue events %s: %s', this.queue, err?.message))
    // Events come in batches, one per XREAD from the last id read. If the
    // stream was trimmed past that id before the read, events were lost:
    // after each batch, compare the id it was read from with the stream's
    // first entry (see #checkGap).
    const emit = events.emit.bind(events) as (event: string, ...args: unknown[]) => boolean
    ;(events as { emit: typeof emit }).emit = (event, ...args) => {
      const id = event === 'drained' ? args[0] : args[1]
      if (typeof id === 'string' && id !== this.#lastEventId) {
        if (!this.#inBatch) {
          this.#inBatch = true
          this.#readFrom ??= this.#lastEventId
          setImmediate(this.#batchRead)
        }
        this.#lastEventId = id
      }
      return emit(event, ...args)
    }
    events.on('active', ({ jobId }: { jobId: string }) => {
      const t = this.#task(jobId)
      if (t !== undefined) t.running = true
    })
    const backInQueue = ({ jobId }: { jobId: string }): void => {
      const t = this.#task(jobId)
      if (t !== undefined) t.running = false
    }
    // Back in the queue after its worker went silent (died): another worker will run it again.
    events.on('stalled', backInQueue)
    // A failed attempt waiting to be retried (after its backoff, or added again): not running meanwhile.
    events.on('waiting', backInQueue)
    events.on('delayed', backInQueue)
    events.on('completed', ({ jobId, returnvalue }: { jobId: string; returnvalue: unknown }) => {
      const t = this.#task(jobId)
      if (t !== undefined) this.#complete(t, returnvalue)
    })
    events.on('failed', ({ jobId, failedReason }: { jobId: string; failedReason?: string }) => {
      const t = this.#task(jobId)
      if (t !== undefined) void this.#fetchOutcome(t, failedReason)
    })
    events.on('removed', ({ jobId }: { jobId: string }) => {
      // Removed by someone else (Queue.drain, obliterate, a dashboard): it will not run.
      const t = this.#task(jobId)
      if (t !== undefined && this.#finish(t)) t.future._settle('cancelled', undefined, undefined)
    })
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()])
  }

  /**
   * Adds a job running the export `name` of the workers' module with `args`
   * and returns its Future. Throws if the executor is shut down or broken,
   * or (a TypeError naming it) if an argument cannot be cloned.
   */
  submit<K extends TaskName<M>>(name: K, ...args: TaskArgs<M, K>): Future<TaskResult<M, K>> {
    return this.#submit(name, args, (i) => `args[${i}]`)
  }

  /**
   * Runs the export `name` over the items and yields the results in input
   * order; throws a task's exception at its position, or TimeoutError once
   * `timeoutMs` have passed since the call. Leaving the iteration early
   * cancels the jobs not yet taken.
   */
  map<K extends TaskName<M>>(name: K, iterable: Iterable<TaskArgs<M, K>[0]>, options?: DistributedMapOptions): AsyncIterableIterator<TaskResult<M, K>> {
    if (this.#broken) throw this.#broken
    if (this.#shutdown) throw new Error('cannot schedule new futures after shutdown')
    this.#checkName(name)
    const o = checkOptions('options', options)
    const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
    const buffersize = checkLimit('options.buffersize', o.buffersize)
    if (iterable === null || typeof (iterable as any)?.[Symbol.iterator] !== 'function') throw invalidType('iterable', 'an iterable', iterable)
    return mapInOrder(iterable, 1, buffersize, ms, (items, first) => this.#submit(name, items, () => `iterable[${first}]`))
  }

  /**
   * Stops accepting tasks. Jobs already added still run unless
   * `cancelFutures` (which cancels those no worker has taken); with `wait`
   * (the default) it resolves once every future is done and the connections
   * are closed. The wait is greenlet-killable (the shutdown stands).
   */
  shutdown(options?: DistributedShutdownOptions): Promise<void> {
    return rejecting(async () => {
      const o = checkOptions('options', options)
      const waitForPending = checkFlag('options.wait', o.wait, true)
      const cancelFutures = checkFlag('options.cancelFutures', o.cancelFutures, false)
      this.#shutdown = true
      if (cancelFutures) for (const t of [...this.#pending.values()]) t.future.cancel()
      if (this.#pending.size === 0) void this.#close()
      if (!waitForPending) return
      while (this.#pending.size > 0) await wait([...this.#pending.values()].map((t) => t.future))
      await this.#close()
    })
  }

  /** `await using executor = new DistributedExecutor(...)`: shuts down and waits. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown({ wait: true })
  }

  #submit(name: unknown, args: unknown[], naming: (index: number) => string): Future<any> {
    if (this.#broken) throw this.#broken
    if (this.#shutdown) throw new Error('cannot schedule new futures after shutdown')
    this.#checkName(name)
    const encoded = encodeArgs(args, naming)
    const id = ++this.#nextId
    const future = Future._create<any>(this, id)
    const t: Task = { id, jobId: this.#prefix + id, name, args: encoded, future, sent: false, addedIn: -1, running: false, fetching: false, goneAt: undefined }
    this.#pending.set(id, t)
    if (this.#pending.size === 1) this.#busy()
    this.#outbox.push(t)
    if (this.#outbox.length >= ADD_BATCH) this.#flush()
    else if (!this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(this.#flush)
    }
    return future
  }

  #checkName(name: unknown): asserts name is string {
    if (typeof name !== 'string' || name === '') throw invalidType('name', "the name of an export of the workers' module", name)
    if (this.#exports !== undefined && !this.#exports.has(name)) {
      throw new TypeError(`name ${JSON.stringify(name)} is not a function export of options.module ${this.#moduleName}`)
    }
  }

  readonly #flush = (): void => {
    this.#flushQueued = false
    // Before the connection, jobs wait here; #start flushes them.
    if (!this.#connected || this.#closing !== undefined) return
    const batch = this.#outbox.filter((t) => this.#pending.get(t.id) === t)
    this.#outbox = []
    for (let i = 0; i < batch.length; i += ADD_BATCH) void this.#add(batch.slice(i, i + ADD_BATCH))
  }

  async #add(tasks: Task[]): Promise<void> {
    for (const t of tasks) t.sent = true
    try {
      await this.#bullQueue!.addBulk(tasks.map((t) => ({ name: t.name, data: { a: t.args } satisfies JobData, opts: { jobId: t.jobId } })))
      for (const t of tasks) t.addedIn = this.#connection
    } catch (err) {
      debug('queue %s: adding %d jobs failed: %s', this.queue, tasks.length, (err as Error)?.message)
      if ((err as Error)?.name === 'ReplyError') {
        // Redis answered with an error (out of memory, for one): trying again
        // would not help. It may have taken some of the batch before: those run.
        await this.#failRefused(tasks, err)
        return
      }
      // Redis went away: the sweep after the reconnection adds what is missing.
      this.#sweepSoon(WATCH_MS, 'retry')
    }
  }

  /** Fails with `err` the tasks of a batch that Redis did not take; those it took stay pending. */
  async #failRefused(tasks: Task[], err: unknown): Promise<void> {
    const queue = this.#bullQueue!
    let taken: unknown[] = []
    try {
      const pipeline = this.#control!.pipeline()
      for (const t of tasks) pipeline.exists(queue.toKey(t.jobId))
      taken = ((await pipeline.exec()) ?? []).map(([, exists]) => exists)
    } catch (inner) {
      // Cannot tell: the sweep sorts them out (adding again what is missing).
      debug('queue %s: checking a refused batch failed: %s', this.queue, (inner as Error)?.message)
      this.#sweepSoon(WATCH_MS, 'retry')
      return
    }
    tasks.forEach((t, i) => {
      if (taken[i] === 1) t.addedIn = this.#connection
      else if (this.#finish(t)) t.future._reject(err)
    })
  }

  /** The pending task of one of our job ids. */
  #task(jobId: unknown): Task | undefined {
    if (typeof jobId !== 'string' || !jobId.startsWith(this.#prefix)) return undefined
    const t = this.#pending.get(Number(jobId.slice(this.#prefix.length)))
    if (t !== undefined) {
      this.#lastProgress = performance.now()
      this.#idleSweepMs = IDLE_SWEEP_MS
    }
    return t
  }

  /** Takes `t` out of the pending set: true for the one caller that settles its future. */
  #finish(t: Task): boolean {
    if (this.#pending.get(t.id) !== t) return false
    this.#pending.delete(t.id)
    if (this.#pending.size === 0) this.#idle()
    return true
  }

  #complete(t: Task, returnvalue: unknown): void {
    if (!this.#finish(t)) return
    let value: unknown
    try {
      value = decode(returnvalue)
    } catch (err) {
      t.future._reject(new TypeError(`the result of job ${t.jobId} (${t.name}) cannot be read: ${(err as Error)?.message}`, { cause: err }))
      return
    }
    t.future._resolve(value)
  }

  /** A finished job's outcome, read from Redis (a failure's error is in the job's data). */
  /** Reads the outcome of a job that finished; `failedReason`: the message of a 'failed' event. */
  async #fetchOutcome(t: Task, failedReason?: string): Promise<void> {
    if (t.fetching) return
    t.fetching = true
    let job: BullMQ.Job<JobData> | undefined
    try {
      job = await this.#bullQueue!.getJob(t.jobId)
    } catch (err) {
      t.fetching = false
      debug('queue %s: reading job %s failed: %s', this.queue, t.jobId, (err as Error)?.message)
      this.#sweepSoon(WATCH_MS, 'retry')
      return
    }
    t.fetching = false
    if (this.#pending.get(t.id) !== t) return
    if (job === undefined) {
      // It finished (a 'failed' event, or the sweep found it in a finished
      // set), and its job was removed since: bullmq removes finished jobs
      // after the shortest keepJobsMs of the executors on the queue.
      if (this.#finish(t)) {
        const outcome = failedReason !== undefined ? `failed (${failedReason})` : 'finished'
        t.future._reject(
          new Error(
            `the task ${t.name} ${outcome}, but its job ${t.jobId} was removed from Redis before its outcome could be read ` +
              '(finished jobs are kept keepJobsMs, the shortest of the executors on the queue)',
          ),
        )
      }
      return
    }
    if (!job.finishedOn) return
    if (typeof job.returnvalue === 'string') {
      this.#complete(t, job.returnvalue)
      return
    }
    if (!this.#finish(t)) return
    t.future._reject(this.#errorOf(job))
  }

  /** The task's own error if the worker recorded it for this failure; otherwise bullmq's reason (a stalled job, for one). */
  #errorOf(job: BullMQ.Job<JobData>): unknown {
    const reason = job.failedReason ?? 'the job failed'
    const recorded = job.data?.e
    if (typeof recorded === 'string') {
      try {
        const err = decodeError(recorded)
        // Only if it is this failure's (an attempt that failed otherwise
        // after it, a stall for one, records nothing): its message is the
        // reason (the worker's `#fail`). bullmq drops an empty reason: '' then.
        const message = err instanceof Error ? err.message : `task threw ${safeString(err)}`
        if (message === (job.failedReason || '')) return err
      } catch (inner) {
        debug('queue %s: the error of job %s cannot be read: %s', this.queue, job.id, (inner as Error)?.message)
      }
    }
    return new Error(reason)
  }

  #sweepSoon(ms: number, why: string): void {
    if (this.#sweepTimer !== undefined || this.#closing !== undefined) return
    this.#sweepTimer = setTimeout(() => {
      this.#sweepTimer = undefined
      void this.#sweep(why)
    }, ms)
    this.#sweepTimer.unref()
  }

  /**
   * Settles the pending jobs that finished, and adds again those Redis no
   * longer has. Plain commands, pipelined (a sweep may cover every pending
   * job of a large burst): is the job's hash there, is it in the completed
   * or the failed set.
   */
  async #sweep(why: string): Promise<void> {
    if (!this.#connected || this.#closing !== undefined) return
    if (this.#sweeping) {
      this.#sweepAgain = true
      return
    }
    this.#sweeping = true
    this.#lastProgress = performance.now()
    this.#lastSweep = performance.now()
    const queue = this.#bullQueue!
    try {
      do {
        this.#sweepAgain = false
        const tasks = [...this.#pending.values()].filter((t) => t.sent && !t.fetching)
        debug('queue %s: sweep (%s): %d jobs', this.queue, why, tasks.length)
        const missing: Task[] = []
        const removed: Task[] = []
        let markLost = false
        for (let i = 0; i < tasks.length; i += SWEEP_BATCH) {
          const chunk = tasks.slice(i, i + SWEEP_BATCH)
          const pipeline = this.#control!.pipeline()
          for (const t of chunk) pipeline.exists(queue.toKey(t.jobId)).zscore(queue.keys.completed, t.jobId).zscore(queue.keys.failed, t.jobId)
          // Read after the jobs: still there, Redis lost nothing before them.
          pipeline.exists(this.#mark)
          pipeline.xrevrange(this.#eventsKey, '+', '-', 'COUNT', 1)
          const replies = (await pipeline.exec()) ?? []
          const marked = replies[3 * chunk.length]?.[1] === 1
          const lastEvent = (replies[3 * chunk.length + 1]?.[1] as [string, string[]][] | undefined)?.[0]?.[0] ?? '0-0'
          if (!marked) markLost = true
          chunk.forEach((t, k) => {
            if (this.#pending.get(t.id) !== t) return
            const [exists, completed, failed] = replies.slice(3 * k, 3 * k + 3).map(([err, value]) => {
              if (err) throw err
              return value
            })
            if (completed !== null || failed !== null) void this.#fetchOutcome(t)
            else if (exists === 0) {
              // Gone while Redis kept its data (the mark), with no reconnection
              // since it was added: removed by someone, unless the events not
              // read yet tell that it finished (and was removed by age).
              if (marked && t.addedIn === this.#connection) {
                if (t.goneAt === undefined) {
                  t.goneAt = lastEvent
                  this.#sweepAgainSoon = true
                } else if (compareIds(this.#lastEventId, t.goneAt) >= 0) {
                  removed.push(t)
                } else {
                  this.#sweepAgainSoon = true
                }
              } else {
                missing.push(t)
              }
            }
          })
        }
        // Removed by someone while Redis kept its data: it will not run, as on a 'removed' event.
        if (removed.length > 0) debug('queue %s: %d jobs were removed by another client', this.queue, removed.length)
        for (const t of removed) if (this.#finish(t)) t.future._settle('cancelled', undefined, undefined)
        if (markLost) await this.#setMark()
        const lost = missing.filter((t) => this.#pending.get(t.id) === t)
        if (lost.length > 0) {
          debug('queue %s: adding again %d jobs Redis lost', this.queue, lost.length)
          for (let i = 0; i < lost.length; i += ADD_BATCH) await this.#add(lost.slice(i, i + ADD_BATCH))
        }
      } while (this.#sweepAgain && this.#closing === undefined)
      if (this.#sweepAgainSoon) {
        this.#sweepAgainSoon = false
        this.#sweepSoon(WATCH_MS, 'jobs gone: once the events have been read')
      }
    } catch (err) {
      debug('queue %s: sweep failed: %s', this.queue, (err as Error)?.message)
      this.#sweepSoon(WATCH_MS, 'retry')
    } finally {
      this.#sweeping = false
    }
  }

  readonly #batchRead = (): void => {
    this.#inBatch = false
    void this.#checkGap()
  }

  /**
   * Sweeps if the stream now starts after an id a batch was read from:
   * events between may have been trimmed before they were read. (Or after:
   * that happens only when reading lags about the stream's length behind,
   * where losing events is near; a sweep is cheap.) One check at a time,
   * from the oldest unchecked id.
   */
  async #checkGap(): Promise<void> {
    if (this.#checkingGap || this.#closing !== undefined) return
    this.#checkingGap = true
    try {
      while (this.#readFrom !== undefined && this.#closing === undefined) {
        const from = this.#readFrom
        this.#readFrom = undefined
        if (this.#pending.size === 0) break
        const first = (await this.#control!.xrange(this.#eventsKey, '-', '+', 'COUNT', 1)) as [string, string[]][]
        if (first.length === 0 || compareIds(first[0][0], from) > 0) {
          this.#sweepSoon(Math.max(0, this.#lastSweep + MIN_SWEEP_GAP_MS - performance.now()), `events may be lost: read from ${from}, the stream starts at ${first[0]?.[0]}`)
        }
      }
    } catch (err) {
      debug('queue %s: checking the event stream failed: %s', this.queue, (err as Error)?.message)
      this.#sweepSoon(WATCH_MS, 'retry')
    } finally {
      this.#checkingGap = false
    }
  }

  /** Every WATCH_MS while futures are pending: the connection's absence, an unanswered PING, silence. */
  #check(): void {
    if (!this.#connected || this.#closing !== undefined) return
    const now = performance.now()
    if (this.#downSince !== undefined) {
      if (now - this.#downSince > this.#reconnectTimeoutMs) {
        this.#break(
          new BrokenExecutor(`lost the connection to Redis at ${this.address} for more than ${this.#reconnectTimeoutMs} ms; the executor is not usable (the jobs stay in Redis)`),
        )
      }
    } else if (this.#pingSince !== undefined) {
      if (now - this.#pingSince > this.#reconnectTimeoutMs) {
        this.#break(
          new BrokenExecutor(
            `Redis at ${this.address} has not answered for more than ${this.#reconnectTimeoutMs} ms; the executor is not usable (the jobs stay in Redis)`,
          ),
        )
      }
    } else {
      this.#ping(now)
      if (now - this.#lastProgress > this.#idleSweepMs) {
        // Nothing heard of our jobs for long: a last resort against losses nothing else noticed.
        this.#idleSweepMs = Math.min(2 * this.#idleSweepMs, IDLE_SWEEP_MAX_MS)
        void this.#sweep('silence')
      }
    }
  }

  /**
   * Asks Redis for a sign of life (#check breaks the executor if none comes
   * within reconnectTimeoutMs) by renewing the mark, which also tells
   * whether Redis lost its data meanwhile.
   */
  #ping(now: number): void {
    this.#pingSince = now
    this.#control!.pexpire(this.#mark, MARK_TTL_MS).then(
      (renewed) => {
        this.#pingSince = undefined
        if (renewed === 0) this.#sweepSoon(0, 'Redis lost its data')
      },
      // One that fails went with a closed connection: 'close' tells that.
      () => (this.#pingSince = undefined),
    )
  }

  #setMark(): Promise<unknown> {
    return this.#control!.set(this.#mark, '1', 'PX', MARK_TTL_MS)
  }

  #busy(): void {
    // Waking from idle, when the mark may have expired.
    if (this.#watch === undefined && this.#connected) this.#setMark().catch(noop)
    busy.add(this)
    if (!exitHookInstalled) {
      exitHookInstalled = true
      process.on('exit', () => {
        for (const e of [...busy]) e._abandon()
      })
    }
    this.#lastProgress = performance.now()
    if (this.#watch === undefined) {
      this.#watch = setInterval(() => this.#check(), WATCH_MS)
      // The connections keep the process alive; this timer need not.
      this.#watch.unref()
    }
  }

  #idle(): void {
    busy.delete(this)
    if (this.#watch !== undefined) clearInterval(this.#watch)
    this.#watch = undefined
    if (this.#shutdown) void this.#close()
  }

  /** Fails every pending future with `error`; later submissions throw it. */
  #break(error: BrokenExecutor): void {
    if (this.#broken !== undefined) return
    this.#broken = error
    const tasks = [...this.#pending.values()]
    this.#pending.clear()
    this.#outbox = []
    this.#idle()
    for (const t of tasks) t.future._reject(error)
    void this.#close()
  }

  #close(): Promise<void> {
    return (this.#closing ??= (async () => {
      if (this.#watch !== undefined) clearInterval(this.#watch)
      if (this.#sweepTimer !== undefined) clearTimeout(this.#sweepTimer)
      await this.#ready.catch(noop)
      const closed = Promise.allSettled([this.#events?.close(), this.#bullQueue?.close(), this.#broken ? undefined : this.#control?.del(this.#mark)])
      // Closing says QUIT and waits for the answer: from a Redis that does
      // not answer (the executor broke of it, or it stops now) it never comes.
      if (this.#broken === undefined && (await answersWithin(closed, this.#reconnectTimeoutMs))) {
        this.#control?.disconnect()
        return
      }
      // BullMQ's disconnect (and QueueEvents' close) first waits for its
      // connection to be ready, for ever if it never was: bounded, then its
      // backend's forced close, which does not wait (internal to bullmq 6).
      const disconnected = Promise.allSettled([this.#events?.disconnect(), this.#bullQueue?.disconnect()])
      if (!(await answersWithin(disconnected, FORCED_DISCONNECT_MS))) {
        for (const part of [this.#events, this.#bullQueue]) {
          const backend = (part as { backend?: { close?: (force: boolean) => Promise<void> } } | undefined)?.backend
          backend?.close?.(true).catch(noop)
        }
      }
      this.#control?.disconnect()
    })())
  }

  /** @internal */
  _cancelTask(f: Future<any>): boolean {
    const t = this.#pending.get(f._taskId)
    if (t === undefined || t.future !== f || t.running || t.fetching) return false
    this.#pending.delete(t.id)
    if (this.#pending.size === 0) this.#idle()
    // Decided here, on what the events told: a worker that took the job in
    // the last moments still runs it (remove() refuses a locked job), and
    // its result is dropped.
    if (t.sent) {
      this.#bullQueue!.remove(t.jobId).then(
        (removed) => removed || debug('queue %s: cancelled job %s was already taken', this.queue, t.jobId),
        (err: Error) => debug('queue %s: removing cancelled job %s failed: %s', this.queue, t.jobId, err?.message),
      )
    }
    return true
  }

  /** @internal */
  _taskRunning(f: Future<any>): boolean {
    const t = this.#pending.get(f._taskId)
    return t !== undefined && t.future === f && t.running
  }

  /** @internal The process is exiting: pending futures fail now, their jobs stay in Redis. */
  _abandon(): void {
    this.#break(new BrokenExecutor('the process is exiting with tasks still pending (their jobs stay in Redis, and workers may still run them)'))
  }
}
