/**
 * Pieces of the greenlet lifecycle shared by the async mode
 * (`src/greenlet.ts`) and the sync mode (`src/sync/greenlet.ts`): argument
 * checks, joinall's plan and hub commands, link callbacks. Internal.
 */
import { checkMs, checkOptions, invalidType } from './errors'
import { hub } from './hub'
import { wire } from './native'

export type LinkKind = 'any' | 'value' | 'exception'
export type Link<G> = { callback: (g: G) => void; kind: LinkKind }

/** Calls the callbacks that a finished greenlet's outcome selects; one that throws is reported, not propagated. */
export function callLinks<G>(g: G, links: readonly Link<G>[], failed: boolean): void {
  for (const { callback, kind } of links) {
    if ((kind === 'value' && failed) || (kind === 'exception' && !failed)) continue
    try {
      callback(g)
    } catch (err) {
      console.error(`greenthread: link callback of ${g} threw:`, err)
    }
  }
}

/** An iterable of greenlets (as `isGreenlet` defines them), as an array. */
export function checkGreenletList<G>(name: string, greenlets: unknown, isGreenlet: (x: unknown) => x is G): G[] {
  if (greenlets === null || typeof greenlets !== 'object' || !(Symbol.iterator in greenlets)) {
    throw invalidType(name, 'an iterable of Greenlets', greenlets)
  }
  const list = [...(greenlets as Iterable<unknown>)]
  list.forEach((g, i) => {
    if (!isGreenlet(g)) throw invalidType(`${name}[${i}]`, 'a Greenlet', g)
  })
  return list as G[]
}

/** joinall's options, checked: timeout (-1: none), fail fast, how many must finish. */
export interface JoinAllPlan {
  ms: number
  raiseError: boolean
  wanted: number
}

export function planJoinAll(count: number, options: unknown): JoinAllPlan {
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
  return { ms, raiseError: o.raiseError === true, wanted }
}

/** The hub commands of a wait by `waiter` until `missing` of `pending` have died (or one failed, with `raiseError`). */
export function issueJoinAll(
  waiter: number,
  pending: readonly { readonly id: number }[],
  missing: number,
  raiseError: boolean,
  ms: number,
): void {
  hub.command(raiseError ? wire.JOIN_WAIT_RAISE : wire.JOIN_WAIT, waiter, missing, ms)
  for (const g of pending) hub.command(wire.JOIN, waiter, g.id)
}
