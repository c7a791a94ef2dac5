/**
 * FIFO wait lists with direct hand-off, and the way blocking operations are
 * written once for both modes. Internal.
 *
 * # Wait lists
 * A waiter parks with the hub until another party hands it a value
 * (`handOff`), its timer fires, or it is interrupted (kill, Timeout). The
 * value is the waiter's the moment it is handed, so a party arriving later
 * cannot overtake a waiter that has been woken but has not run yet: service
 * is first come, first served.
 *
 * The hub may end a wait with its timer or an interrupt at the very turn it
 * was handed something, before the waiter runs. Then:
 * - timer: the hand-off wins and the wait returns the value. It was handed
 *   before the waiter observed its timeout, and keeping it reorders nothing;
 * - interrupt: the exception must be raised, so the value goes back to its
 *   primitive through `giveBack` (a queue item to the front, a permit to the
 *   next waiter). Nothing handed is ever lost. An abort of the wait's
 *   signal does the same where the value can go back, and otherwise lets
 *   the hand-off stand (a blocked put whose item was accepted succeeds).
 *
 * A waiter is woken directly, without a hub turn, up to a budget per turn:
 * an async waiter's Promise is settled by the hand-off itself, as a plain
 * Promise hand-off would be; a sync greenlet handed a value by another sync
 * greenlet gets the baton when that one blocks (src/sync/scheduler.ts).
 * Past the budget, and for a sync greenlet handed a value from the main
 * thread, the hub wakes it on its next turn, so a hand-off ping-pong cannot
 * starve timers and I/O. An interrupt that reaches a greenlet woken
 * directly, before it has run, is still raised by its wait (the greenlet
 * keeps it as its `_woken` wait): the value goes back as above.
 *
 * # One implementation, two modes
 * A primitive's blocking operation (`Queue.get`, `Semaphore.acquire`...) is
 * a generator, a `Blocking<R>`: it yields what it waits for (a `Waiter` of
 * a list, made by `request`, or a Promise) and gets back the outcome. The
 * async mode runs it with {@link drive}, which awaits; the sync mode with
 * `blockOn` (src/sync/waits.ts), which blocks the calling sync greenlet. So
 * the logic of each primitive exists once, and each mode's class only says
 * how its methods return.
 */
import { type HubRecord, type ListedWait, type WokenWait, type WokenWaitHolder, currentStorage, hub, suspendWith } from './hub'
import { invalidType } from './errors'

/** What a wait returns when its timer fired before anything was handed. */
export const TIMED_OUT: unique symbol = Symbol('timed out')
export type TimedOut = typeof TIMED_OUT

/** A blocking step of a `Blocking` operation: a list wait, or any thenable. */
export type Suspension = Waiter<any, any> | PromiseLike<unknown>

/** A blocking operation, run by either mode: yields suspensions, receives their outcomes. */
export type Blocking<R> = Generator<Suspension, R, any>

/** A sync greenlet, as far as waiting goes (see its `_wait`). */
export interface BlockingWaiter {
  _wait(issue: (waiter: HubRecord) => void, expectLong: boolean): number
  _raiseAtNextWait(exception: unknown): void
}

/**
 * One wait on a list: requested by a blocking operation, carried out by its
 * mode (linked into the list intrusively, so leaving it is O(1)).
 */
export class Waiter<T, P> implements WokenWait, ListedWait {
  /** The hub record it parks under: its greenlet, or a transient wait. */
  waiter: HubRecord | undefined = undefined
  handed = false
  value: T | undefined = undefined
  listed = false
  /** Its wait settles a Promise (async mode): one that cannot be woken directly has ended already. */
  promised = false
  /** The hub knows its wait (a PARK was issued). */
  parked = false
  /** The Promise-based suspension (async mode). */
  suspended: Promise<number> | undefined = undefined
  /** Set by an interrupt that came after a direct wake-up, before the waiter ran. */
  interrupted = false
  /** What it was handed went back (an interrupt): once only. */
  givenBack = false
  exception: unknown = undefined
  /** The greenlet that keeps it as its `_woken` wait, if any. */
  holder: WokenWaitHolder | undefined = undefined
  /** Listens to `signal` while it waits. */
  onAbort: (() => void) | undefined = undefined
  prev: Waiter<T, P> | undefined = undefined
  next: Waiter<T, P> | undefined = undefined

  /**
   * @param ms longest wait, -1 for no limit.
   * @param payload what the waiter brings (a blocked putter's item, a lock owner).
   * @param signal ends the wait with its reason once it aborts.
   */
  constructor(
    readonly list: WaitList<T, P>,
    readonly ms: number,
    readonly payload: P,
    readonly signal: AbortSignal | undefined,
  ) {}

  leaveList(): void {
    this.list._leaveInterrupted(this)
  }
}

/**
 * `options.signal` of a wait (options already checked to be an object or
 * nothing): `undefined`, or an AbortSignal that has not aborted. Throws the
 * signal's reason if it has, as Node's own APIs do: the call does nothing.
 */
export function waitSignal(options: object | undefined): AbortSignal | undefined {
  const signal = (options as { signal?: unknown } | undefined)?.signal
  if (signal === undefined) return undefined
  if (!(signal instanceof AbortSignal)) throw invalidType('options.signal', 'an AbortSignal', signal)
  if (signal.aborted) throw signal.reason
  return signal
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

  /** The longest-waiting party (to read its payload), or `undefined` if nobody waits. */
  get first(): { readonly payload: P } | undefined {
    return this.#head
  }

  /**
   * Hands `value` to the longest-waiting party and wakes it (`nextTurn`: on
   * the hub's next turn, after the caller has run on). Returns that party's
   * waiter (to read its payload), or `undefined` if nobody waits.
   */
  handOff(value: T, nextTurn = false): { readonly payload: P } | undefined {
    const w = this.#head
    if (w === undefined) return undefined
    this.#remove(w)
    w.handed = true
    w.value = value
    if (!hub.wakeHanded(w.waiter!, w.parked, w, nextTurn) && !w.promised) hub.unpark(w.waiter!)
    return w
  }

  /** Hands `value` to every party waiting now, in FIFO order. */
  handOffAll(value: T): void {
    while (this.#head !== undefined) this.handOff(value)
  }

  /**
   * A wait at the back of the list, to be yielded by a blocking operation:
   * its outcome is the value handed, or `TIMED_OUT` once `ms` elapse (-1: no
   * limit; 0: the next hub turn). An interrupt throws its exception there.
   */
  request(ms: number, payload?: P, signal?: AbortSignal): Waiter<T, P> {
    return new Waiter(this, ms, payload as P, signal)
  }

  /**
   * Starts `w` with the async mode's Promise-based suspension, which settles
   * `w.suspended`; `_leave` (or `_leaveInterrupted`) then gives the outcome.
   * Split so that `drive` awaits the suspension itself, one Promise hop less.
   */
  _enterAsync(w: Waiter<T, P>): void {
    w.promised = true
    w.suspended = suspendWith(this, w)
  }

  /** Called by `suspendWith` with the record the wait of `w` suspends under. */
  _suspendedAs(w: Waiter<T, P>, waiter: HubRecord): void {
    w.waiter = waiter
    waiter._listWait = w
    this.#append(w)
    // Without a timer the hub need not know the wait: kills reach a
    // Promise-based wait directly, and so do hand-offs and aborts.
    if (w.ms >= 0 || !hub.mayWaitUnparked(waiter)) this.#park(w)
    if (w.signal !== undefined) this.#watch(w)
  }

  /**
   * The outcome of a wait that ended without exception; raises an interrupt
   * that reached the waiter after a direct wake-up, before it ran, or the
   * reason of its signal's abort.
   */
  _leave(w: Waiter<T, P>): T | TimedOut {
    this.#forget(w)
    if (w.onAbort !== undefined) this.#unwatch(w)
    const holder = w.holder
    if (holder !== undefined && holder._woken === w) holder._woken = undefined
    if (w.interrupted) this._endInterrupted(w, w.exception, holder)
    return this.#settled(w)
  }

  /**
   * @internal Whether what `w` was handed stands over an interrupt that
   * ended its wait: it cannot go back (an item accepted from a blocked
   * putter, an event set), so the wait succeeds and the interrupt is raised
   * at the next one, as when the hand-off came first in gevent. Saying the
   * wait failed would make a caller that retries deliver twice.
   */
  _stands(w: Waiter<T, P>): boolean {
    return w.handed && this.giveBack === undefined
  }

  /**
   * `w` was interrupted: it leaves the list, or gives back what it was
   * handed. Called as soon as the interrupt is known (`leaveList`), then
   * again when the wait itself ends.
   */
  _leaveInterrupted(w: Waiter<T, P>): void {
    this.#forget(w)
    if (w.onAbort !== undefined) this.#unwatch(w)
    this.#interrupted(w)
  }

  /** Its record's current wait is no longer `w`. */
  #forget(w: Waiter<T, P>): void {
    if (w.waiter !== undefined && w.waiter._listWait === w) w.waiter._listWait = undefined
  }

  /** Carries out `w` by blocking `waiter`, the current sync greenlet. */
  _waitBlocking(w: Waiter<T, P>, waiter: BlockingWaiter): T | TimedOut {
    try {
      waiter._wait((record) => {
        w.waiter = record
        record._listWait = w
        this.#append(w)
        this.#park(w)
        if (w.signal !== undefined) this.#watch(w)
      }, w.ms > 0)
    } catch (err) {
      this._endInterrupted(w, err, waiter)
    }
    return this._leave(w)
  }

  /**
   * The wait of `w` ended with the interrupt `err`: it leaves the list, or
   * gives back what it was handed, and throws `err`; unless what it was
   * handed stands (see `_stands`): then `owner`'s next wait raises `err`,
   * and the caller goes on to take the value.
   */
  _endInterrupted(w: Waiter<T, P>, err: unknown, owner: Pick<WokenWaitHolder, '_raiseAtNextWait'> | undefined): void {
    this._leaveInterrupted(w)
    if (!this._stands(w) || owner === undefined) throw err
    owner._raiseAtNextWait(err)
  }

  #watch(w: Waiter<T, P>): void {
    w.onAbort = () => this.#abort(w)
    w.signal!.addEventListener('abort', w.onAbort, { once: true })
  }

  #unwatch(w: Waiter<T, P>): void {
    w.signal!.removeEventListener('abort', w.onAbort!)
    w.onAbort = undefined
  }

  /**
   * Ends `w` with its signal's reason, as an interrupt would: a value
   * already handed to it goes back when it leaves. One still listed leaves
   * the list and is woken like a hand-off, to raise the reason. Where a
   * value cannot go back (an item accepted from a blocked putter, an event
   * set), the hand-off came first and stands, as over a timer: failing the
   * wait would say it did not happen.
   */
  #abort(w: Waiter<T, P>): void {
    w.onAbort = undefined
    if (w.handed && this.giveBack === undefined) return
    w.interrupted = true
    w.exception = w.signal!.reason
    if (w.handed || !w.listed) return
    this.#remove(w)
    if (!hub.wakeHanded(w.waiter!, w.parked, w) && !w.promised) hub.unpark(w.waiter!)
  }

  #park(w: Waiter<T, P>): void {
    w.parked = true
    hub.park(w.waiter!, w.ms)
  }

  #interrupted(w: Waiter<T, P>): void {
    if (!w.handed) {
      this.#remove(w)
    } else if (!w.givenBack) {
      w.givenBack = true
      this.giveBack?.(w.value as T)
    }
  }

  #settled(w: Waiter<T, P>): T | TimedOut {
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

/**
 * Runs a blocking operation in the async mode: resolves with its result,
 * rejects with what it throws (argument errors included: never a throw).
 * One that completes without waiting (an item there, a free lock) costs no
 * async function.
 */
export function drive<R>(op: Blocking<R>): Promise<R> {
  let step: IteratorResult<Suspension, R>
  try {
    step = op.next()
  } catch (err) {
    return Promise.reject(err)
  }
  return step.done ? Promise.resolve(step.value) : driveFrom(op, step)
}

async function driveFrom<R>(op: Blocking<R>, first: IteratorResult<Suspension, R>): Promise<R> {
  let step = first
  while (!step.done) {
    const suspension = step.value
    let outcome: unknown
    try {
      if (suspension instanceof Waiter) {
        const list = suspension.list
        list._enterAsync(suspension)
        try {
          await suspension.suspended
        } catch (err) {
          list._endInterrupted(suspension, err, currentStorage.getStore())
        }
        outcome = list._leave(suspension)
      } else {
        outcome = await suspension
      }
    } catch (err) {
      step = op.throw(err)
      continue
    }
    step = op.next(outcome)
  }
  return step.value
}

/** Runs a blocking operation that cannot wait here (a Group's spawn): returns its result, or throws. */
export function runNow<R>(op: Blocking<R>): R {
  const step = op.next()
  if (!step.done) throw new Error('greenthread: an operation that never waits tried to wait')
  return step.value
}
