/**
 * `runWorker`: takes the jobs of a BullMQ queue and runs them on a local
 * ProcessPoolExecutor or ThreadPoolExecutor (the `greenthread-worker` CLI is
 * a thin shell around it). A job's name is an export of the module, its data
 * the arguments; the result goes back as the job's return value, a failure's
 * error (name, message, stack, own properties) into the job's data, where
 * `DistributedExecutor` reads it.
 */
import * as os from 'node:os'

import type * as BullMQ from 'bullmq'

import {
  checkConnectTimeout,
  answersWithin,
  checkConnection,
  checkQueueName,
  connect,
  debug,
  decode,
  encode,
  encodeError,
  loadBullmq,
  options as requiredOptions,
  isTask,
  resolveModule,
  type JobData,
  type RedisConnectionOptions,
} from './_redis'
import { checkFlag, checkOptions, checkPositiveInteger, checkTimerMs, invalidType, rejecting, safeString } from './errors'
import { ProcessPoolExecutor, ThreadPoolExecutor } from './executor'
import { BrokenExecutor } from './futures'

export interface RunWorkerOptions {
  /** Where Redis is: `{ host, port }` (other ioredis options pass through) or a `redis://` URL. */
  connection: RedisConnectionOptions
  /** The BullMQ queue to serve. */
  queue: string
  /** The task module: a path (relative to the current directory), URL or package name; jobs name its function exports. */
  module: string | URL
  /** Tasks run at once (the local pool's workers). @default the number of CPUs */
  concurrency?: number
  /** Run tasks in child processes or in worker threads. @default 'process' */
  pool?: 'process' | 'thread'
  /**
   * Jobs taken beyond `concurrency`, so that a local worker finds its next
   * task ready instead of waiting for a round trip to Redis. They are held
   * (and retried elsewhere if this worker dies) like running ones.
   * @default concurrency
   */
  prefetch?: number
  /** How often to look for jobs whose worker died (bullmq's `stalledInterval`). @default 30000 */
  stalledIntervalMs?: number
  /** A job's lock lasts this long, renewed at half of it (bullmq's `lockDuration`); a dead worker's jobs are retried once it expires. @default 30000 */
  lockDurationMs?: number
  /** Times a job may lose its worker before it fails instead of running again (bullmq's `maxStalledCount`). @default 1 */
  maxStalledCount?: number
  /** Give up connecting after this long, with an Error naming the address. @default 3000 */
  connectTimeoutMs?: number
}

export interface WorkerCloseOptions {
  /** Do not wait for the jobs in hand: stop the local pool now (those jobs run again elsewhere once their locks expire). @default false */
  force?: boolean
}

const noop = (): void => {}

const dynamicImport = new Function('s', 'return import(s)') as (specifier: string) => Promise<Record<string, unknown>>

type Pool = ProcessPoolExecutor | ThreadPoolExecutor

function nonNegativeInteger(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number') throw invalidType(name, 'an integer >= 0', value)
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be an integer >= 0, got ${value}`)
  return value
}

/**
 * Connects to Redis (rejecting with an Error naming the address if it
 * cannot within `connectTimeoutMs`), imports the task module, and starts
 * taking jobs of `queue`. Resolves with the running worker.
 */
export function runWorker(options: RunWorkerOptions): Promise<DistributedWorker> {
  return rejecting(async () => {
    const o = requiredOptions('options', options)
    const conn = checkConnection('options.connection', o.connection)
    const queue = checkQueueName('options.queue', o.queue)
    if (o.module === undefined) throw invalidType('options.module', 'a path, a URL or a package name', o.module)
    const url = resolveModule('options.module', o.module)
    const concurrency = o.concurrency === undefined ? os.availableParallelism() : checkPositiveInteger('options.concurrency', o.concurrency)
    const prefetch = nonNegativeInteger('options.prefetch', o.prefetch, concurrency)
    const kind = o.pool ?? 'process'
    if (kind !== 'process' && kind !== 'thread') throw new TypeError(`options.pool must be 'process' or 'thread', got ${safeString(kind)}`)
    const stalledInterval = o.stalledIntervalMs === undefined ? 30_000 : checkTimerMs('options.stalledIntervalMs', checkPositiveInteger('options.stalledIntervalMs', o.stalledIntervalMs))
    const lockDuration = o.lockDurationMs === undefined ? 30_000 : checkTimerMs('options.lockDurationMs', checkPositiveInteger('options.lockDurationMs', o.lockDurationMs))
    const maxStalledCount = nonNegativeInteger('options.maxStalledCount', o.maxStalledCount, 1)
    const connectTimeoutMs = checkConnectTimeout('options.connectTimeoutMs', o.connectTimeoutMs)
    let mod: Record<string, unknown>
    try {
      mod = await dynamicImport(url)
    } catch (err) {
      throw new Error(`options.module ${url} cannot be imported: ${(err as Error)?.message ?? safeString(err)}`, { cause: err })
    }
    const tasks = new Set<string>()
    for (const source of [mod, mod.default]) {
      if (source === null || (typeof source !== 'object' && typeof source !== 'function')) continue
      for (const k of Object.keys(source)) if (isTask((source as Record<string, unknown>)[k])) tasks.add(k)
    }
    // A probe: bullmq's own connections would retry forever.
    const probe = await connect(conn, connectTimeoutMs)
    probe.disconnect()
    const makePool = (): Pool => (kind === 'thread' ? new ThreadPoolExecutor({ maxWorkers: concurrency, module: url }) : new ProcessPoolExecutor({ maxWorkers: concurrency, module: url }))
    const worker = new DistributedWorker(SECRET, {
      queue,
      address: conn.address,
      module: url,
      tasks,
      makePool,
      workerOptions: { connection: conn.bullmq, concurrency: concurrency + prefetch, stalledInterval, lockDuration, maxStalledCount },
    })
    // Ready once bullmq's connections are (it takes two: the probe's one
    // free client slot is not enough), not merely once Redis answered.
    if (!(await answersWithin(worker._ready, connectTimeoutMs))) {
      await worker.close({ force: true })
      throw new Error(`Redis at ${conn.address} did not take the worker's connections within ${connectTimeoutMs} ms (lost, or out of client slots)`)
    }
    return worker
  })
}

const SECRET: unique symbol = Symbol('runWorker')

interface Setup {
  queue: string
  address: string
  module: string
  tasks: Set<string>
  makePool: () => Pool
  workerOptions: Record<string, unknown>
}

/** A running worker (from `runWorker`): counters and `close()`. */
export class DistributedWorker {
  /** The queue it serves. */
  readonly queue: string
  /** Where Redis is (no credentials). */
  readonly address: string
  /** The module's URL. */
  readonly module: string
  /** The function exports of the module: the task names it accepts. */
  readonly tasks: readonly string[]
  #done = 0
  #failed = 0
  #running = 0
  readonly #names: Set<string>
  readonly #makePool: () => Pool
  #pool: Pool
  readonly #worker: BullMQ.Worker<JobData, string>
  #closing: Promise<void> | undefined
  #forced = false
  /** @internal Resolves once bullmq's worker is connected (both its connections) and takes jobs. */
  readonly _ready: Promise<void>

  /** @internal Made by runWorker. */
  constructor(token: typeof SECRET, setup: Setup) {
    if (token !== SECRET) throw new TypeError('DistributedWorker cannot be constructed directly: use runWorker()')
    this.queue = setup.queue
    this.address = setup.address
    this.module = setup.module
    this.#names = setup.tasks
    this.tasks = [...setup.tasks].sort()
    this.#makePool = setup.makePool
    this.#pool = setup.makePool()
    const { Worker } = loadBullmq()
    this.#worker = new Worker<JobData, string>(this.queue, this.#process, setup.workerOptions as any)
    this._ready = new Promise((resolve) => this.#worker.once('ready', () => resolve()))
    // Connection errors while Redis restarts, locks lost with it: bullmq recovers, the job runs again.
    this.#worker.on('error', (err: Error) => debug('worker %s: %s', this.queue, err?.message))
  }

  /** Jobs this worker completed. */
  get done(): number {
    return this.#done
  }

  /** Runs that failed (each failed attempt counts). */
  get failed(): number {
    return this.#failed
  }

  /** Jobs in the local pool now (running or waiting for a local worker). */
  get running(): number {
    return this.#running
  }

  /**
   * Stops taking jobs and resolves once the jobs in hand are finished and
   * the local pool has exited; with `force`, stops at once (the jobs in hand
   * run again elsewhere once their locks expire). Calling it again returns
   * the same promise.
   */
  close(options?: WorkerCloseOptions): Promise<void> {
    return rejecting(async () => {
      const o = checkOptions('options', options)
      const force = checkFlag('options.force', o.force, false)
      if (force && !this.#forced) {
        this.#forced = true
        // bullmq closing first: the connection it is about to lose is then
        // not retried (after a 15 s timer that would hold the process).
        this.#closing ??= this.#worker.close(true)
        // Then the connections: the jobs in hand can then neither complete
        // nor fail, and stay active in Redis until their locks lapse.
        await this.#worker.disconnect().catch(noop)
        await this.#pool.destroy()
      }
      this.#closing ??= (async () => {
        await this.#worker.close(this.#forced)
        if (!this.#forced) await this.#pool.shutdown()
      })()
      await this.#closing
    })
  }

  readonly #process = async (job: BullMQ.Job<JobData, string>): Promise<string> => {
    if (!this.#names.has(job.name)) {
      const known = this.tasks.length > 0 ? this.tasks.join(', ') : 'no functions'
      return this.#fail(job, new TypeError(`no task named ${JSON.stringify(job.name)}: ${this.module} exports ${known}`), true)
    }
    let args: unknown
    try {
      args = decode(job.data?.a)
      if (!Array.isArray(args)) throw new TypeError('not an argument list')
    } catch (err) {
      return this.#fail(job, new TypeError(`the arguments of job ${job.id} cannot be read: ${(err as Error)?.message}`), true)
    }
    this.#running++
    let value: unknown
    let failure: { err: unknown } | undefined
    try {
      value = await this.#run(job.name, args)
    } catch (err) {
      failure = { err }
    }
    this.#running--
    // Closed by force: the connection is cut, the job stays active in Redis and runs again elsewhere.
    if (this.#forced) throw new Error('the worker was closed by force')
    if (failure !== undefined) {
      this.#failed++
      // A result that cannot be cloned (out of the local pool) would not be, either, at the next attempt.
      const uncloneable = failure.err instanceof Error && failure.err.name === 'DataCloneError'
      return this.#fail(job, failure.err, uncloneable)
    }
    let out: string
    try {
      out = encode(value)
    } catch (err) {
      this.#failed++
      return this.#fail(job, new TypeError(`the result of ${job.name} cannot be sent through Redis: ${(err as Error)?.message}`), true)
    }
    this.#done++
    return out
  }

  #run(name: string, args: unknown[]): Promise<unknown> {
    let pool = this.#pool
    let f
    try {
      f = pool.submit(name, ...args)
    } catch (err) {
      if (!(err instanceof BrokenExecutor) || this.#closing !== undefined) throw err
      // A task broke the pool (its child crashed): later jobs get a fresh one.
      if (this.#pool === pool) this.#pool = this.#makePool()
      pool = this.#pool
      f = pool.submit(name, ...args)
    }
    return new Promise((resolve, reject) => {
      f.addDoneCallback(() => {
        f.result().then(resolve, (err: unknown) => {
          if (err instanceof BrokenExecutor && this.#pool === pool && this.#closing === undefined) {
            this.#pool = this.#makePool()
            void pool.destroy()
          }
          reject(err)
        })
      })
    })
  }

  /**
   * Records the error for the executor (in the job's data: bullmq keeps
   * only a message) and throws what bullmq fails the job with.
   */
  async #fail(job: BullMQ.Job<JobData, string>, err: unknown, final: boolean): Promise<never> {
    try {
      await job.updateData({ ...job.data, e: encodeError(err) })
    } catch (inner) {
      // The job still fails, with the message; only the name and properties are lost.
      debug('worker %s: recording the error of job %s failed: %s', this.queue, job.id, (inner as Error)?.message)
    }
    const message = err instanceof Error ? safeString(err.message) : `task threw ${safeString(err)}`
    const { UnrecoverableError } = loadBullmq()
    // An error named UnrecoverableError (bullmq's convention) ends the attempts too.
    const thrown = final || (err instanceof Error && err.name === 'UnrecoverableError') ? new UnrecoverableError(message) : new Error(message)
    if (err instanceof Error && typeof err.stack === 'string') thrown.stack = err.stack
    throw thrown
  }
}
