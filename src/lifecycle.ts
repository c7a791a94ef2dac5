/**
 * Pieces of the greenlet lifecycle shared by the async mode
 * (`src/greenlet.ts`) and the sync mode (`src/sync/greenlet.ts`): argument
 * checks, joinall's plan, link callbacks. Internal.
 */
import { GreenletExit, checkMs, checkOptions, invalidType, reportError } from './errors'

export type LinkKind = 'any' | 'value' | 'exception'
export type Link<G> = { callback: (g: G) => void; kind: LinkKind }

/** Calls the callbacks that a finished greenlet's outcome selects; one that throws is reported, not propagated. */
export function callLinks<G>(g: G, links: readonly Link<G>[], failed: boolean): void {
  for (const { callback, kind } of links) {
    if ((kind === 'value' && failed) || (kind === 'exception' && !failed)) continue
    try {
      callback(g)
    } catch (err) {
      reportError(`greenthread: link callback of ${g} threw:`, err)
    }
  }
}

/** An iterable of greenlets (as `isGreenlet` defines them), as an array. */
export function checkGreenletList<G>(name: string, greenlets: unknown, isGreenlet: (x: unknown) => x is G): G[] {
  if (greenlets === null || typeof greenlets !== 'object' || !(Symbol.iterator in greenlets)) {
    throw invalidType(name, 'an iterable of Greenlets', greenlets)
  }
  // An array is copied without its iterator (no object per element).
  const list = Array.isArray(greenlets) ? greenlets.slice() : [...(greenlets as Iterable<unknown>)]
  for (let i = 0; i < list.length; i++) {
    if (!isGreenlet(list[i])) throw invalidType(`${name}[${i}]`, 'a Greenlet', list[i])
  }
  return list as G[]
}

/** What joinall() and killall() need of a greenlet of either mode. */
export interface JoinableGreenlet {
  readonly id: number
  readonly dead: boolean
  successful(): boolean
  readonly exception: unknown
  /** The last joinall plan that counted it: finds duplicates without a Set. */
  _joinPlan: number
}

/**
 * joinall's options, checked, and what it waits for: timeout (-1: none),
 * fail fast, the distinct greenlets not finished yet, and how many of them
 * must finish.
 */
export interface JoinAllPlan<G> {
  ms: number
  raiseError: boolean
  pending: G[]
  missing: number
}

let lastPlan = 0

/** Plans joinall() over `list`; with `raiseError`, throws the exception of the first that has failed already. */
export function planJoinAll<G extends JoinableGreenlet>(list: readonly G[], options: unknown): JoinAllPlan<G> {
  const o = checkOptions('options', options)
  const ms = checkMs('options.timeoutMs', o.timeoutMs, true)
  const count = list.length
  let wanted = count
  if (o.count !== undefined && o.count !== null) {
    if (typeof o.count !== 'number') throw invalidType('options.count', 'a non-negative integer', o.count)
    if (!Number.isInteger(o.count) || o.count < 0) {
      throw new RangeError(`options.count must be a non-negative integer, got ${o.count}`)
    }
    wanted = Math.min(o.count, count)
  }
  const raiseError = o.raiseError === true
  throwFirstFailure(list, raiseError)
  // A plan is synchronous: its number marks what it has counted, and no other plan runs meanwhile.
  const plan = (lastPlan = (lastPlan + 1) | 0)
  const pending: G[] = []
  for (let i = 0; i < count; i++) {
    const g = list[i]
    if (g.dead || g._joinPlan === plan) continue
    g._joinPlan = plan
    pending.push(g)
  }
  return { ms, raiseError, pending, missing: wanted - (count - pending.length) }
}

/** joinall()'s outcome once its wait is over: those of `list` that have finished, or (`raiseError`) the first failure thrown. */
export function joinAllResult<G extends JoinableGreenlet>(list: G[], raiseError: boolean): G[] {
  throwFirstFailure(list, raiseError)
  // `list` is joinall's own copy: when all have finished it is the result.
  return list.every(isDead) ? list : list.filter(isDead)
}

function isDead(g: JoinableGreenlet): boolean {
  return g.dead
}

function throwFirstFailure(list: readonly JoinableGreenlet[], raiseError: boolean): void {
  const failure = raiseError ? list.find((g) => g.dead && !g.successful()) : undefined
  if (failure) throw failure.exception
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
  const exception = 'exception' in o ? o.exception : new GreenletExit()
  return { list, ms, exception, block: o.block !== false }
}
