/** Error classes and argument checks shared by every module. */

/**
 * Raised inside a greenlet by {@link Greenlet.kill} (the default exception).
 * A greenlet that exits with it counts as successful, with value `undefined`.
 */
export class GreenletExit extends Error {
  constructor(message = 'greenlet killed') {
    super(message)
    this.name = 'GreenletExit'
  }
}

/**
 * What a task that a kill from outside ended before it returned stands for
 * where a result was expected (a map's, gather's): gevent and asyncio give
 * the exit (CancelledError), where the greenlet's own `get()` gives `undefined`.
 */
export function killedBeforeReturning(g: object): GreenletExit {
  return new GreenletExit(`${String(g)} was killed before it returned`)
}

/**
 * The class tag of an object, as `Object.prototype.toString` gives it; never
 * throws (a revoked Proxy or a throwing `Symbol.toStringTag` getter would).
 */
function tagOf(value: object): string {
  try {
    return Object.prototype.toString.call(value).slice(8, -1)
  } catch {
    return 'unreadable'
  }
}

/**
 * `err instanceof GreenletExit`, for any thrown value: `instanceof` on a
 * revoked Proxy throws, and a greenlet that threw one must still die of it.
 */
export function isGreenletExit(err: unknown): err is GreenletExit {
  try {
    return err instanceof GreenletExit
  } catch {
    return false
  }
}

/**
 * `console.error(message, err)` for a value of user code: if inspecting it
 * throws (a getter of `Symbol.toStringTag`...), a plain description
 * instead. Never throws.
 */
export function reportError(message: string, err: unknown): void {
  try {
    console.error(message, err)
  } catch {
    console.error(message, safeString(err))
  }
}

/**
 * @internal The entry point whose greenlets an object is (on each mode's
 * `Greenlet` prototype): a greenlet handed to the other mode is described
 * as such, not as some object.
 */
export const GREENLET_MODE: unique symbol = Symbol('greenthread.greenletMode')

function greenletModeOf(value: object): unknown {
  try {
    return (value as { [GREENLET_MODE]?: unknown })[GREENLET_MODE]
  } catch {
    return undefined
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'object') {
    const mode = greenletModeOf(value)
    if (typeof mode === 'string') return `a Greenlet of ${mode} (each mode joins, kills, links and groups only its own greenlets)`
    return `an object (${tagOf(value)})`
  }
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`
  return `${typeof value} ${String(value)}`
}

/**
 * `String(value)` for messages about a value of user code, which may refuse
 * conversion (an object without prototype, a revoked Proxy, a throwing
 * `toString`): then a description of it instead. Never throws.
 */
export function safeString(value: unknown): string {
  try {
    return String(value)
  } catch {
    return describe(value)
  }
}

/**
 * The name a function was given, for descriptions (`toString`), or `''`
 * where it has none that is a string, or reading it throws (a getter, a
 * revoked Proxy). Read once per greenlet: a plain property read, which
 * V8 caches (a property descriptor would cost an allocation each).
 */
export function functionName(fn: Function): string {
  try {
    const name: unknown = fn.name
    return typeof name === 'string' ? name : ''
  } catch {
    return ''
  }
}

/**
 * An exception given as a class, as gevent takes them (`kill(GreenletExit)`,
 * `Timeout(5, ValueError)`): an instance of it, made without arguments.
 * Anything else (an instance, any thrown value) is returned as it is.
 */
export function exceptionFrom(value: unknown): unknown {
  if (typeof value !== 'function') return value
  let errorClass = false
  try {
    errorClass = value === Error || value.prototype instanceof Error
  } catch {
    // A revoked Proxy: not a class to instantiate.
  }
  return errorClass ? new (value as new () => unknown)() : value
}

export function invalidType(name: string, expected: string, value: unknown): TypeError {
  return new TypeError(`${name} must be ${expected}, got ${describe(value)}`)
}

/**
 * An optional boolean option, `fallback` when absent. Anything else is
 * refused, 0 and 1 included: read as `=== false` they would silently mean
 * the opposite of what Python's truthiness makes of them.
 */
export function checkFlag(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw invalidType(name, 'a boolean', value)
  return value
}

export function checkFunction(name: string, value: unknown): asserts value is (...args: any[]) => unknown {
  if (typeof value !== 'function') throw invalidType(name, 'a function', value)
}

/**
 * A time in milliseconds: a finite number >= 0. `undefined` and `null` mean
 * "no limit" where `optional` is set and are returned as -1, the hub's
 * "no timeout".
 */
export function checkMs(name: string, value: unknown, optional: boolean): number {
  if (value === undefined || value === null) {
    if (optional) return -1
    throw invalidType(name, 'a number of milliseconds', value)
  }
  if (typeof value !== 'number') throw invalidType(name, 'a number of milliseconds', value)
  if (!(value >= 0) || value === Infinity) {
    throw new RangeError(`${name} must be a finite number of milliseconds >= 0, got ${value}`)
  }
  return value
}

/** Node's timers take at most 2^31 - 1 ms (about 24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** @internal Milliseconds for a Node timer: `checkMs`, and at most `MAX_TIMER_MS`. */
export function checkTimerMs(name: string, value: unknown): number {
  const ms = checkMs(name, value, false)
  if (ms > MAX_TIMER_MS) throw new RangeError(`${name} must be at most ${MAX_TIMER_MS} ms (about 24.8 days), got ${value}`)
  return ms
}

export function checkOptions(name: string, value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object') throw invalidType(name, 'an options object', value)
  return value as Record<string, unknown>
}

export function checkPositiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number') throw invalidType(name, 'a positive integer', value)
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`)
  return value
}

/** A bound that may be absent: `undefined`, `null` and `Infinity` mean none (returned as Infinity); else a positive integer. */
export function checkLimit(name: string, value: unknown): number {
  return value === undefined || value === null || value === Infinity ? Infinity : checkPositiveInteger(name, value)
}

/** Runs `fn` and turns a synchronous throw into a rejected Promise: async methods never throw. */
export function rejecting<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn()
  } catch (err) {
    return Promise.reject(err)
  }
}
