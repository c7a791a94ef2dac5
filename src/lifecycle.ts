/**
 * Pieces of the greenlet lifecycle shared by the async mode
 * (`src/greenlet.ts`) and the sync mode (`src/sync/greenlet.ts`): argument
 * checks, joinall's plan, link callbacks. Internal.
 */
import { GreenletExit, checkFlag, checkMs, checkOptions, exceptionFrom, invalidType, reportError } from './errors'
import { Outcome } from './hub'

export type LinkKind = 'any' | 'value' | 'exception'
export type Link<G> = { callback: (g: G) => void; kind: LinkKind; unlinked?: true }

/** Calls the callbacks that a finished greenlet's outcome selects; one that throws is reported, not propagated. */
export function callLinks<G>(g: G, links: readonly Link<G>[], failed: boolean): void {
  for (const link of links) {
    const { callback, kind } = link
    // Unlinked by a callback called before it.
    if (link.unlinked === true || (kind === 'value' && failed) || (kind === 'exception' && !failed)) continue
    try {
      callback(g)
    } catch (err) {
      reportError(`greenthread: link callback of ${g} threw:`, err)
    }
  }
}

/** An iterable of greenlets (as `isGreenlet` defines them), as an array. */
export function checkGreenletList<G>(name: string, greenlets: unknown, isGreenlet: (x: unknown) => x is G): G[] {
  const list = copyOfIterable(name, greenlets)
  for (let i = 0; i < list.length; i++) checkGreenlet(name, list, i, isGreenlet)
  return list as G[]
}

/** The items of `greenlets`, in a new array; an Error naming `name` if it is not iterable. */
function copyOfIterable(name: string, greenlets: unknown): unknown[] {
  if (greenlets === null || typeof greenlets !== 'object' || !(Symbol.iterator in greenlets)) {
    throw invalidType(name, 'an iterable of Greenlets', greenlets)
  }
  // An array is copied without its iterator (no object per element).
  return Array.isArray(greenlets) ? greenlets.slice() : [...(greenlets as Iterable<unknown>)]
}

function checkGreenlet<G>(name: string, list: unknown[], i: number, isGreenlet: (x: unknown) => x is G): G {
  const g = list[i]
  if (!isGreenlet(g)) throw invalidType(`${name}[${i}]`, 'a Greenlet', g)
  return g
}

/** What joinall() and killall() need of a greenlet of either mode. */
export interface JoinableGreenlet {
  readonly id: number
  readonly dead: boolean
  successful(): boolean
  readonly exception: unknown
}

/**
 * joinall's arguments, checked, and what it waits for: the greenlets (a
 * copy), timeout (-1: none), fail fast, the entries not finished yet, and
 * how many of them must finish. Entries, as gevent counts them: a greenlet
 * listed twice counts twice when it finishes (the hub's join wait counts
 * one death per registration).
 */
export interface JoinAllPlan<G> {
  list: G[]
  ms: number
  raiseError: boolean
  pending: G[]
  missing: number
  /** How many it returns at most (`count`). */
  wanted: number
}

/**
 * Plans joinall() over the iterable `greenlets` (each checked with
 * `isGreenlet`, if given) in one pass over them: with `raiseError`, throws
 * the exception of the first that has failed already.
 */
export function planJoinAll<G extends JoinableGreenlet>(
  greenlets: unknown,
  options: unknown,
  isGreenlet?: (x: unknown) => x is G,
): JoinAllPlan<G> {
  const list = copyOfIterable('greenlets', greenlets) as G[]
  const count = list.length
  const pending: G[] = []
  let firstFailure: G | undefined
  for (let i = 0; i < count; i++) {
    const g = isGreenlet === undefined ? list[i] : checkGreenlet('greenlets', list, i, isGreenlet)
    if (!g.dead) pending.push(g)
    else if (firstFailure === undefined && !g.successful()) firstFailure = g
  }
  const o = checkOptions('options', options)
  const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
  let wanted = count
  if (o.count !== undefined && o.count !== null) {
    if (typeof o.count !== 'number') throw invalidType('options.count', 'a non-negative integer', o.count)
    if (!Number.isInteger(o.count) || o.count < 0) {
      throw new RangeError(`options.count must be a non-negative integer, got ${o.count}`)
    }
    wanted = Math.min(o.count, count)
  }
  const raiseError = checkFlag('options.raiseError', o.raiseError, false)
  if (raiseError && firstFailure !== undefined) throw firstFailure.exception
  return { list, ms, raiseError, pending, missing: wanted - (count - pending.length), wanted }
}

/**
 * joinall()'s outcome once its wait is over: those of its list that have
 * finished, or (`raiseError`) the first failure thrown. `waited`: the
 * outcome of its wait, if it waited.
 */
export function joinAllResult<G extends JoinableGreenlet>(plan: JoinAllPlan<G>, waited?: number): G[] {
  const { list, raiseError, pending, missing, wanted } = plan
  // Every one it waited for died (or none was left): the whole list has finished.
  const allFinished = missing <= 0 ? pending.length === 0 : waited === Outcome.WAKE && missing === pending.length
  if (allFinished && !raiseError) return wanted < list.length ? list.slice(0, wanted) : list
  throwFirstFailure(list, raiseError)
  const finished = list.filter(isDead)
  // No more than `count`, as gevent's: more may have finished by the time it returns.
  return finished.length > wanted ? finished.slice(0, wanted) : finished
}

function isDead(g: JoinableGreenlet): boolean {
  return g.dead
}

function throwFirstFailure(list: readonly JoinableGreenlet[], raiseError: boolean): void {
  const failure = raiseError ? list.find((g) => g.dead && !g.successful()) : undefined
  if (failure) throw failure.exception
}

/** The Timeouts `killall` raised because members outlived its `timeoutMs`. */
const killallTimeouts = new WeakSet<object>()

/** @internal Marks `timeout` as `killall`'s own (see `isKillallTimeout`). */
export function killallTimedOut<E extends object>(timeout: E): E {
  killallTimeouts.add(timeout)
  return timeout
}

/**
 * @internal Whether `err` is the Timeout `killall` raised for members that
 * outlived its `timeoutMs`: a Group's `kill` returns quietly then, as
 * gevent's `Group.kill(timeout=)` does (a Timeout of the caller's own still
 * propagates).
 */
export function isKillallTimeout(err: unknown): boolean {
  return typeof err === 'object' && err !== null && killallTimeouts.has(err)
}

/** killall's arguments, checked: the greenlets, the timeout (-1: none), the exception, whether to wait. */
export function planKillAll<G>(
  greenlets: unknown,
  options: unknown,
  isGreenlet: (x: unknown) => x is G,
): { list: G[]; ms: number; exception: unknown; block: boolean } {
  const list = checkGreenletList('greenlets', greenlets, isGreenlet)
  const o = checkOptions('options', options)
  const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
  const exception = 'exception' in o ? exceptionFrom(o.exception) : new GreenletExit()
  return { list, ms, exception, block: checkFlag('options.block', o.block, true) }
}
