/**
 * FIFO wait lists with direct hand-off: the waiting logic every coordination
 * primitive (events, queues, locks, pools) shares. Internal.
 *
 * A waiter parks with the hub until another party hands it a value
 * (`handOff` unparks it), its timer fires, or it is interrupted (kill,
 * Timeout). The value is the waiter's the moment it is handed, so a party
 * arriving later cannot overtake a waiter that has been woken but has not
 * run yet: service is first come, first served.
 *
 * The hub may end a wait with its timer or an interrupt at the very turn it
 * was handed something, before the waiter runs. Then:
 * - timer: the hand-off wins and `wait` returns the value. It was handed
 *   before the waiter observed its timeout, and keeping it reorders nothing;
 * - interrupt: the exception must be raised, so the value goes back to its
 *   primitive through `giveBack` (a queue item to the front, a permit to the
 *   next waiter). Nothing handed is ever lost.
 *
 * Only `wait` knows how a waiter suspends (here a Promise, through the hub's
 * `suspend`); the list, hand-off and give-back logic does not, so a blocking
 * mode can reuse it by swapping that one step.
 */
import { hub, suspend } from './hub'
import { wire } from './native'

/** What `wait` resolves with when its timer fired before anything was handed. */
export const TIMED_OUT: unique symbol = Symbol('timed out')
export type TimedOut = typeof TIMED_OUT

/** One suspended party, linked into its list (intrusively, so leaving it is O(1)). */
class Waiter<T, P> {
  /** The hub id it parks under: its greenlet's own, or a transient one. */
  id = 0
  handed = false
  value: T | undefined = undefined
  listed = false
  prev: Waiter<T, P> | undefined = undefined
  next: Waiter<T, P> | undefined = undefined

  /** @param payload what the waiter brings (a blocked putter's item, a lock owner). */
  constructor(readonly payload: P) {}
}

/**
 * Parties waiting to be handed a `T`, served in FIFO order. `P` is what each
 * brings along, read by whoever serves it.
 */
export class WaitList<T, P = undefined> {
  #head: Waiter<T, P> | undefined = undefined
  #tail: Waiter<T, P> | undefined = undefined
  #length = 0

  /**
   * @param giveBack takes back a value handed to a waiter that was
   *   interrupted before it could take it. Without it the value is dropped:
   *   right for notifications (an event flag, "the queue is joined").
   */
  constructor(private readonly giveBack?: (value: T) => void) {}

  /** Number of parties waiting. */
  get length(): number {
    return this.#length
  }

  /**
   * Hands `value` to the longest-waiting party and wakes it. Returns that
   * party's waiter (to read its payload), or `undefined` if nobody waits.
   */
  handOff(value: T): { readonly payload: P } | undefined {
    const w = this.#head
    if (w === undefined) return undefined
    this.#remove(w)
    w.handed = true
    w.value = value
    hub.command(wire.UNPARK, w.id)
    return w
  }

  /** Hands `value` to every party waiting now, in FIFO order. */
  handOffAll(value: T): void {
    while (this.#head !== undefined) this.handOff(value)
  }

  /**
   * Waits at the back of the list until handed a value, which it resolves
   * with, or until `ms` elapse (-1: no limit; 0: the next hub turn), which
   * resolves `TIMED_OUT`. Rejects with the exception of an interrupt.
   */
  async wait(ms: number, payload?: P): Promise<T | TimedOut> {
    const w = new Waiter<T, P>(payload as P)
    try {
      await suspend((id) => {
        w.id = id
        this.#append(w)
        hub.command(wire.PARK, id, ms)
      })
    } catch (err) {
      if (w.handed) this.giveBack?.(w.value as T)
      else this.#remove(w)
      throw err
    }
    if (w.handed) return w.value as T
    this.#remove(w)
    return TIMED_OUT
  }

  #append(w: Waiter<T, P>): void {
    w.listed = true
    w.prev = this.#tail
    if (this.#tail === undefined) this.#head = w
    else this.#tail.next = w
    this.#tail = w
    this.#length++
  }

  #remove(w: Waiter<T, P>): void {
    if (!w.listed) return
    w.listed = false
    if (w.prev === undefined) this.#head = w.next
    else w.prev.next = w.next
    if (w.next === undefined) this.#tail = w.prev
    else w.next.prev = w.prev
    w.prev = w.next = undefined
    this.#length--
  }
}
