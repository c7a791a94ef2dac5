/**
 * The task module of `distributed.spec.ts`, served by the worker processes
 * it starts. Tasks that need to say where they ran return or record the
 * worker's pid: the parent of the pool child that runs them.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

export class TaskError extends Error {
  code = 'E_TASK'
  constructor(message: string) {
    super(message)
    this.name = 'TaskError'
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export function square(x: number): number {
  return x * x
}

export function echo<T>(value: T): T {
  return value
}

export function fail(message: string): never {
  throw new TaskError(message)
}

/** Throws a TaskError without message. */
export function failEmpty(): never {
  throw new TaskError('')
}

/** Throws an Error whose cause is a RangeError with a property. */
export function failCaused(message: string): never {
  throw new Error(message, { cause: Object.assign(new RangeError(`${message} (cause)`), { code: 'E_CAUSE' }) })
}

export async function nap<T>(ms: number, value: T): Promise<T> {
  await sleep(ms)
  return value
}

/** Fails with a TaskError after `ms`. */
export async function failAfter(ms: number, message: string): Promise<never> {
  await sleep(ms)
  throw new TaskError(message)
}

/** `[value, the worker's pid]` after `ms`. */
export async function where<T>(ms: number, value: T): Promise<[T, number]> {
  await sleep(ms)
  return [value, process.ppid]
}

/** Appends this run to `dir/key` and fails the first `failures` runs. */
export function flaky(dir: string, key: string, failures: number): number {
  const file = path.join(dir, key)
  fs.appendFileSync(file, `${process.ppid}\n`)
  const runs = fs.readFileSync(file, 'utf8').trim().split('\n').length
  if (runs <= failures) throw new TaskError(`run ${runs} of ${key} fails`)
  return runs
}

/** Records the run, then throws an Error named UnrecoverableError: bullmq's sign not to retry. */
export function refuse(dir: string, key: string): never {
  fs.appendFileSync(path.join(dir, key), `${process.ppid}\n`)
  const err = new Error(`${key} refused`)
  err.name = 'UnrecoverableError'
  throw err
}

/** Records each run (`dir/key`, one worker pid a line), then sleeps `ms` and returns the worker's pid; `_ballast` only takes room in Redis. */
export async function marked(dir: string, key: string, ms: number, _ballast?: string): Promise<number> {
  fs.appendFileSync(path.join(dir, key), `${process.ppid}\n`)
  await sleep(ms)
  return process.ppid
}

/** Ends the pool child that runs it: its worker's local pool breaks. */
export function crash(): never {
  process.exit(3)
}

/** A result that cannot be cloned; with `dir` and `key`, the run is recorded first. */
export function unsendable(dir?: string, key?: string): () => void {
  if (dir !== undefined && key !== undefined) fs.appendFileSync(path.join(dir, key), `${process.ppid}\n`)
  return () => {}
}

/** Records the run; the first throws the number 42 (not an Error), later ones never return (a worker to be killed). */
export async function numberThenHang(dir: string, key: string): Promise<never> {
  const file = path.join(dir, key)
  fs.appendFileSync(file, `${process.ppid}\n`)
  if (fs.readFileSync(file, 'utf8').trim().split('\n').length === 1) throw 42
  return new Promise<never>(() => undefined)
}
