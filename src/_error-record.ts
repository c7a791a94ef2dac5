/**
 * An exception as it crosses to a worker thread, a child process or a Redis
 * job: a record that structured cloning keeps whole, and the Error rebuilt
 * from it on the other side. Internal, shared by the executors' codec
 * (src/_codec.ts) and the distributed executor (src/_redis.ts).
 *
 * Kept: the name (a built-in class is rebuilt as that class), the message,
 * the stack, the own enumerable properties that can be cloned, the `cause`
 * and an AggregateError's `errors`, each carried the same way (the last
 * two are not enumerable, so a plain structured clone of the properties
 * would lose them).
 */
import * as v8 from 'node:v8'

import { safeString } from './errors'

export interface ErrorRecord {
  /** A thrown value that is not an Error, as it is. */
  thrown?: unknown
  name?: string
  message?: string
  stack?: string
  props?: Record<string, unknown>
  cause?: ErrorRecord
  errors?: ErrorRecord[]
}

const BUILTIN_ERRORS: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
}

/** How deep causes (and errors of errors) are carried: a cause chain may loop. */
const MAX_DEPTH = 16

/** Whether `value` survives a structured clone both ways (V8 writes some values it cannot read back, such as an Error with a cause). */
function cloneable(value: unknown): boolean {
  try {
    v8.deserialize(v8.serialize(value))
    return true
  } catch {
    return false
  }
}

/** The record of `err`, an Error or any thrown value (one that cannot be cloned becomes an Error saying so). */
export function errorRecord(err: unknown, depth = 0): ErrorRecord {
  if (!(err instanceof Error)) {
    if (cloneable(err)) return { thrown: err }
    err = new Error(`task threw an uncloneable value: ${safeString(err)}`)
  }
  const e = err as Error & { errors?: unknown }
  // Strings, as the receiving side rebuilds the Error from them.
  const { name, message, stack } = e as { name: unknown; message: unknown; stack: unknown }
  const record: ErrorRecord = {
    name: typeof name === 'string' ? name : safeString(name),
    message: typeof message === 'string' ? message : safeString(message),
    stack: typeof stack === 'string' ? stack : undefined,
  }
  for (const k of Object.keys(e)) {
    // Carried as records below, even when assigned (enumerable).
    if (k === 'cause' || k === 'errors') continue
    try {
      const value = (e as unknown as Record<string, unknown>)[k]
      if (cloneable(value)) (record.props ??= {})[k] = value
    } catch {
      // A getter that throws: that property stays behind.
    }
  }
  if (depth < MAX_DEPTH) {
    if (Object.hasOwn(e, 'cause')) record.cause = errorRecord(e.cause, depth + 1)
    if (Array.isArray(e.errors)) record.errors = e.errors.map((inner) => errorRecord(inner, depth + 1))
  }
  return record
}

/** What `record` carries: the thrown value, or the Error rebuilt. */
export function rebuildError(record: ErrorRecord): unknown {
  if (Object.hasOwn(record, 'thrown')) return record.thrown
  const err =
    record.errors !== undefined
      ? new AggregateError(record.errors.map(rebuildError), record.message)
      : new (BUILTIN_ERRORS[record.name ?? 'Error'] ?? Error)(record.message)
  if (err.name !== record.name) Object.defineProperty(err, 'name', { value: record.name, configurable: true, writable: true })
  if (record.stack !== undefined) err.stack = record.stack
  if (record.props) Object.assign(err, record.props)
  if (record.cause !== undefined) Object.defineProperty(err, 'cause', { value: rebuildError(record.cause), configurable: true, writable: true })
  return err
}
