/**
 * asyncio-style helpers on the greenlet core: `gather`, `waitFor`,
 * `currentTask`, `allTasks`. A task is a Greenlet.
 */
import { checkFlag, checkMs, checkOptions, invalidType, killedBeforeReturning, rejecting } from './errors'
import { liveGreenlets } from './_greenlet-base'
import { Alarm, sleep } from './hub'
import { Greenlet, getcurrent, spawn } from './greenlet'
import { Timeout, joinOrKill, spawnKeepingResult } from './timeout'

/** A Promise (or thenable), a Greenlet, or a function to run as a new greenlet. */
export type Awaitable<T> = PromiseLike<T> | Greenlet<T> | (() => T | PromiseLike<T>)

export interface GatherOptions {
  /** Report failures as results instead of rejecting with the first one. @default false */
  returnExceptions?: boolean
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as any).then === 'function'
}

function isPlainObject(x: unknown): x is object {
  if (x === null || typeof x !== 'object') return false
  const proto = Object.getPrototypeOf(x)
  return proto === Object.prototype || proto === null
}

/**
 * The result of a greenlet as asyncio sees a task's: its value, or a
 * rejection with its exception (see `killedBeforeReturning` for one killed
 * from outside).
 */
function taskResult(g: Greenlet): Promise<unknown> {
  return g.get().then((value) => {
    if (g._returned) return value
    throw killedBeforeReturning(g)
  })
}

/** What `gather` makes of one argument: a greenlet's value, a function's (awaited) result, a Promise's value. */
export type Gathered<X> = X extends Greenlet<infer V> ? V : X extends (...args: any[]) => infer R ? Awaited<R> : Awaited<X>

/**
 * Runs the awaitables concurrently and resolves with their results in order.
 * Functions are spawned as greenlets. Rejects with the first failure unless
 * the last argument is `{ returnExceptions: true }`, which puts failures in
 * the result array instead; a greenlet killed from outside fails with a
 * `GreenletExit`. As asyncio's: a failure leaves the others running, and a
 * kill or Timeout of the caller kills the greenlets it gathers.
 */
export function gather<T extends unknown[]>(...args: [...T, GatherOptions & { returnExceptions: true }]): Promise<{ [K in keyof T]: Gathered<T[K]> | unknown }>
export function gather<T extends unknown[]>(...args: [...T, GatherOptions]): Promise<{ [K in keyof T]: Gathered<T[K]> }>
export function gather<T extends unknown[]>(...awaitables: T): Promise<{ [K in keyof T]: Gathered<T[K]> }>
export function gather(...args: unknown[]): Promise<unknown[]> {
  return rejecting(async () => {
    let returnExceptions = false
    const last = args[args.length - 1]
    // Options are a plain object: anything else (a sync Greenlet, a class instance) is an awaitable to check.
    if (isPlainObject(last) && !isThenable(last)) {
      returnExceptions = checkFlag('options.returnExceptions', checkOptions('options', args.pop()).returnExceptions, false)
    }
    const isTask = (x: unknown): boolean => x instanceof Greenlet || (typeof x === 'function' && !isThenable(x))
    for (const [i, x] of args.entries()) {
      if (!isTask(x) && !isThenable(x)) throw invalidType(`awaitables[${i}]`, 'a Promise, a Greenlet or a function', x)
    }
    const caller = getcurrent()
    const children: Greenlet[] = []
    const promises = args.map((x) => {
      if (!isTask(x)) return Promise.resolve(x)
      const g = x instanceof Greenlet ? x : spawn(x as () => unknown)
      children.push(g)
      return taskResult(g)
    })
    // A kill or Timeout of the caller rejects its waits for the children with
    // its exception, which its signal aborts with: not a failure of theirs.
    const interrupted = (err: unknown): boolean => caller !== null && caller.signal.aborted && caller.signal.reason === err
    try {
      if (!returnExceptions) return await Promise.all(promises)
      return await Promise.all(promises.map((p) => p.catch((err: unknown) => (interrupted(err) ? Promise.reject(err) : err))))
    } catch (err) {
      // As asyncio's gather: cancelled, it cancels the children; a child's failure leaves the others running.
      if (interrupted(err)) for (const g of children) if (!g.dead) void g.kill(undefined, { block: false })
      throw err
    }
  })
}

/**
 * Resolves with the result of `awaitable`, or rejects with a Timeout after
 * `timeoutMs` (`null`/`undefined`: no limit). A Greenlet or function is
 * killed on timeout; a Promise cannot be cancelled and is left to settle.
 */
export function waitFor<T>(awaitable: Awaitable<T>, timeoutMs: number | null | undefined): Promise<T> {
  return rejecting(async () => {
    const ms = checkMs('timeoutMs', timeoutMs, true)
    if (awaitable instanceof Greenlet || (typeof awaitable === 'function' && !isThenable(awaitable))) {
      const work = awaitable instanceof Greenlet ? undefined : spawnKeepingResult(awaitable as () => T | PromiseLike<T>)
      const g = work?.greenlet ?? (awaitable as Greenlet<T>)
      await joinOrKill(g, ms)
      if (g.dead) return g.get() as Promise<T>
      const timeout = new Timeout(ms)
      // Settles at the deadline (see Timeout.run): asyncio's wait_for waits
      // for the cancelled task, but a kill cannot end a foreign await here,
      // and the deadline would not hold.
      void g.kill(timeout, { block: false })
      void g.exception // observed: the caller gets the Timeout
      if (work !== undefined) {
        await sleep(0)
        const kept = work.result()
        if (kept !== undefined) return kept.value
      }
      throw timeout
    }
    if (!isThenable(awaitable)) throw invalidType('awaitable', 'a Promise, a Greenlet or a function', awaitable)
    if (ms < 0) return awaitable as T | PromiseLike<T> as Promise<T>
    return new Promise<T>((resolve, reject) => {
      const alarm = new Alarm(ms, () => reject(new Timeout(ms)))
      ;(awaitable as PromiseLike<T>).then(
        (value) => {
          alarm.cancel()
          resolve(value)
        },
        (err: unknown) => {
          alarm.cancel()
          reject(err)
        },
      )
    })
  })
}

/** The running task (greenlet), or `null` outside any. */
export function currentTask(): Greenlet | null {
  return getcurrent()
}

/** Greenlets that are scheduled or running and have not finished. */
export function allTasks(): Greenlet[] {
  const tasks: Greenlet[] = []
  for (const g of liveGreenlets()) {
    if (g instanceof Greenlet && !Greenlet._isMain(g)) tasks.push(g)
  }
  return tasks
}
