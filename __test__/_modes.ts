/**
 * Runs one test suite in both modes. A test body is a generator written once:
 * `yield x` stands for `await x`. The async mode awaits what is yielded; the
 * sync mode runs the body in a sync greenlet, where every call has already
 * blocked and the yielded value is the result itself (a Promise yielded
 * there is waited for with `block`).
 */
import test, { type ExecutionContext } from 'ava'

import * as asyncApi from '../index'
import * as syncApi from '../sync'

/** A test body, or a greenlet body, written for both modes. */
export type Body<R = unknown> = Generator<unknown, R, any>

type Api = Pick<
  typeof asyncApi,
  | 'AsyncResult'
  | 'BoundedSemaphore'
  | 'Channel'
  | 'Event'
  | 'Greenlet'
  | 'GreenletExit'
  | 'Group'
  | 'JoinableQueue'
  | 'LifoQueue'
  | 'Local'
  | 'Lock'
  | 'Pool'
  | 'PoolFull'
  | 'PriorityQueue'
  | 'Queue'
  | 'QueueEmpty'
  | 'QueueFull'
  | 'QueueShutDown'
  | 'RLock'
  | 'Semaphore'
  | 'Timeout'
  | 'getcurrent'
  | 'iwait'
  | 'joinall'
  | 'killall'
  | 'sleep'
  | 'spawn'
  | 'spawnLater'
  | 'waitReady'
>

/**
 * One mode's API, typed as the async one's: a sync call's result is used
 * only through `yield`, which gives the same value in both modes.
 */
export interface Mode extends Api {
  readonly name: 'async' | 'sync'
  /** The mode's function for a generator body: async returns a Promise, sync blocks. */
  fn<A extends unknown[], R>(body: (...args: A) => Body<R>): (...args: A) => Promise<R>
  /** Spawns a greenlet running a generator body. */
  go<R>(body: () => Body<R>): asyncApi.Greenlet<R>
  /** What to yield for several results: `Promise.all` (async), the results themselves (sync). */
  all<T>(values: readonly (T | PromiseLike<T>)[]): Promise<T[]>
  /**
   * Yield* it: runs `call`, expecting a failure (an async method must reject,
   * never throw); returns the error after checking it against `expected`.
   */
  throws(t: ExecutionContext, call: () => unknown, expected?: Expected): Body<any>
}

export interface Expected {
  instanceOf?: new (...args: any[]) => unknown
  message?: RegExp
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as any).then === 'function'
}

async function driveAsync<R>(body: Body<R>): Promise<R> {
  let step = body.next()
  while (!step.done) {
    let value: unknown
    try {
      value = await step.value
    } catch (err) {
      step = body.throw(err)
      continue
    }
    step = body.next(value)
  }
  return step.value
}

function driveSync<R>(body: Body<R>): R {
  let step = body.next()
  while (!step.done) {
    let value: unknown
    try {
      value = isThenable(step.value) ? syncApi.block(step.value) : step.value
    } catch (err) {
      step = body.throw(err)
      continue
    }
    step = body.next(value)
  }
  return step.value
}

function check(t: ExecutionContext, err: unknown, expected: Expected | undefined): void {
  if (expected?.instanceOf !== undefined) {
    t.true(err instanceof expected.instanceOf, `expected ${expected.instanceOf.name}, got ${String(err)}`)
  }
  if (expected?.message !== undefined) t.regex(String((err as Error)?.message), expected.message)
}

const asyncMode: Mode = {
  ...asyncApi,
  name: 'async',
  fn: (body) => (...args) => driveAsync(body(...args)),
  go: (body) => asyncApi.spawn(() => driveAsync(body())),
  all: (values) => Promise.all(values),
  *throws(t, call, expected) {
    let result: unknown
    try {
      result = call()
    } catch (err) {
      t.fail(`threw synchronously instead of rejecting: ${String(err)}`)
      return err
    }
    t.true(isThenable(result), 'an async method returns a Promise')
    try {
      yield result
    } catch (err) {
      check(t, err, expected)
      return err
    }
    t.fail('resolved instead of rejecting')
    return undefined
  },
}

const syncMode: Mode = {
  ...(syncApi as unknown as Api),
  name: 'sync',
  fn: (body) => ((...args: Parameters<typeof body>) => driveSync(body(...args))) as any,
  go: (body) => syncApi.spawn(() => driveSync(body())) as unknown as asyncApi.Greenlet<any>,
  all: (values) => values as any,
  *throws(t, call, expected) {
    try {
      call()
    } catch (err) {
      check(t, err, expected)
      return err
    }
    t.fail('returned instead of throwing')
    return undefined
  },
}

/** Registers `body` as a serial test of each mode: "async: title", "sync: title". */
export function both(title: string, body: (t: ExecutionContext, m: Mode) => Body): void {
  test.serial(`async: ${title}`, async (t) => {
    await driveAsync(body(t, asyncMode))
  })
  test.serial(`sync: ${title}`, async (t) => {
    await syncApi.run(() => driveSync(body(t, syncMode)))
  })
}
