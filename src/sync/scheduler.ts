/**
 * Who holds the baton, and who gets it next. Internal.
 *
 * Every started sync greenlet runs on an OS thread of its own, named by a
 * *slot*; slot 0 is the main thread, where Node's event loop and the hub's
 * tick run. Exactly one thread holds the baton (and the V8 lock) and runs JS.
 * A sync greenlet that blocks hands the baton on directly to whoever runs
 * next:
 * - the target of its `switch()`, or its parent when it finishes inside one;
 * - else the next greenlet of the hub's ready batch (`hub.takeReady`):
 *   entries that are not sync greenlets (alarms, async greenlets, transient
 *   waits) are resumed right there, on the blocking greenlet's thread, as the
 *   tick would have done;
 * - else, the batch being done, the main thread, whose tick then ends.
 *
 * # Invariants
 * - Only the baton holder runs JS, so the state here is never raced.
 * - The main thread gives the baton away only from the hub's tick
 *   (`resumeFromTick`). So while a greenlet thread holds it, the main thread
 *   is blocked inside that tick and the event loop does not run; every
 *   greenlet thread that gives up the baton either has a greenlet suspended
 *   in a wait that something will end, or has finished.
 * - `current` is the sync greenlet of the thread holding the baton, and
 *   `null` on the main thread and while the ready batch is being walked (so
 *   that blocking calls made by code resumed from there throw instead of
 *   suspending the wrong greenlet).
 * - Sync greenlets run while the main thread waits in `resumeFromTick`,
 *   called outside any async greenlet's AsyncLocalStorage context: on
 *   async_hooks (Node 20, 22) greenlet threads share the main thread's async
 *   context, and must not see one; on AsyncContextFrame each keeps its own
 *   (the shim saves it across hand-overs).
 */
import { type HubRecord, hub } from '../hub'
import './inspector'
import { syncNative } from './native'

/** The main thread's slot. */
const MAIN_SLOT = 0
/** "Nobody to hand over to": what `_prepare` returns when no thread must run. */
export const NO_SLOT = -1

/**
 * What the hub resumes by handing the baton to a thread: a sync greenlet, or
 * a wait one of them makes under another id (`_waitFresh`).
 */
export interface BatonResumable extends HubRecord {
  /**
   * Gets ready to run on its thread, resumed with the hub `outcome` (starting
   * it needs a thread). Returns its slot, or `NO_SLOT` if it has nothing to
   * run (it died without running, or is dead already).
   */
  _prepare(outcome: number): number
  /** Its thread while it is started and not finished, else `NO_SLOT`. */
  _waitingSlot(): number
}

/** A sync greenlet, as far as scheduling goes. */
export interface SyncGreenlet extends BatonResumable {
  /** Runs its function on the thread just given to it; returns the slot that runs next. */
  _threadMain(): number
}

function isBatonResumable(r: HubRecord): r is BatonResumable {
  return typeof (r as Partial<BatonResumable>)._prepare === 'function'
}

let current: SyncGreenlet | null = null
let starting: SyncGreenlet | undefined = undefined

/** The sync greenlet whose thread runs this code, or `null`. */
export function currentGreenlet(): SyncGreenlet | null {
  return current
}

/** Makes `g` the greenlet that the thread of the next hand-over starts. */
export function startNext(g: SyncGreenlet): void {
  starting = g
}

/** Called by the native side on a greenlet thread that was given a new greenlet. */
function runner(): number {
  const g = starting as SyncGreenlet
  starting = undefined
  current = g
  return g._threadMain()
}

/** Called before every hand-over: running it services pending V8 interrupts. */
function drain(): void {}

/** Checked here for an error that names it; the native side reads it. Empty counts as unset. */
function checkMaxThreads(): void {
  const raw = process.env.GREENTHREAD_SYNC_MAX_THREADS
  if (raw === undefined || raw.trim() === '') return
  const max = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new RangeError(`GREENTHREAD_SYNC_MAX_THREADS must be a positive integer (the greenlet threads a process may create), got ${JSON.stringify(raw)}`)
  }
}

checkMaxThreads()
syncNative.install(runner, drain, Number(process.versions.modules))

// A wasm code GC started before the loader turned it off leaves a task on
// the event loop (run from its poll phase) that aborts the process if any
// thread is archived then, even once its GC is over; its stack-guard
// interrupt likewise runs wherever JS runs next. No greenlet is started (so
// no thread is archived) until both have run on the main thread: the hub's
// turns wait for a whole turn of the event loop, poll phase included.
hub.pauseTicksUntil(new Promise((resolve) => setImmediate(() => setImmediate(resolve))))

/**
 * Walks the hub's ready batch from where the tick (or the previous walker)
 * left it and returns the slot of the first sync greenlet that is ready to
 * run, resuming everything else on the way; `MAIN_SLOT` once the batch is
 * done.
 */
export function nextSlot(): number {
  current = null
  applyCommandsIfLate()
  for (;;) {
    const r = hub.takeReady()
    if (r === undefined) return takeWokenDirectly()
    if (isBatonResumable(r)) {
      const slot = r._prepare(hub.takenOutcome)
      if (slot !== NO_SLOT) {
        wakeFollowing()
        return slot
      }
    } else {
      try {
        r._resume(hub.takenOutcome)
      } catch (err) {
        // In the tick this would have escaped to the event loop: it still does.
        process.nextTick(rethrow, err)
      }
    }
  }
}

/**
 * Sync greenlets woken directly by a hand-off from another sync greenlet
 * (see `_wakeNow`), in the order they were woken; they run after the hub's
 * ready batch, as if woken by the hub at the end of it.
 */
let wokenDirectly: SyncGreenlet[] = []
let wokenTaken = 0

/** Queues `g`, woken directly, to be given the baton by the next greenlet that blocks. */
export function readyDirectly(g: SyncGreenlet): void {
  wokenDirectly.push(g)
}

/** The slot of the first greenlet woken directly that still waits for the baton; `MAIN_SLOT` if none. */
function takeWokenDirectly(): number {
  while (wokenTaken < wokenDirectly.length) {
    const slot = wokenDirectly[wokenTaken++]._waitingSlot()
    if (slot !== NO_SLOT) return slot
  }
  wokenDirectly = []
  wokenTaken = 0
  return MAIN_SLOT
}

/**
 * How often a long batch hands its buffered commands to the hub. The hub
 * turns a timed wait's deadline into a timer when it applies the command; a
 * deadline already past by then fires at once, and those fire in command
 * order rather than deadline order. Starting greenlets (a thread each) can
 * make a batch last long: applying every millisecond bounds that reordering,
 * and the lateness of what was queued meanwhile, to about a millisecond.
 */
const APPLY_EVERY_MS = 1
let appliedBatch = -1
let appliedAt = 0

function applyCommandsIfLate(): void {
  const now = performance.now()
  if (appliedBatch !== hub.batch) {
    appliedBatch = hub.batch
    appliedAt = now
  } else if (now - appliedAt >= APPLY_EVERY_MS) {
    appliedAt = now
    hub.applyCommands()
  }
}

/** How far past the chosen entry to look for the sync greenlet that runs after it. */
const LOOKAHEAD = 4

/**
 * Wakes the thread of the sync greenlet that the batch resumes after the one
 * just chosen, so that its kernel wake-up (tens of microseconds on a small
 * VM) overlaps with the chosen one's run instead of adding to it. Only one:
 * more spinning threads than cores would slow the one that runs.
 */
function wakeFollowing(): void {
  for (let ahead = 0; ahead < LOOKAHEAD; ahead++) {
    const r = hub.peekReady(ahead)
    if (r === undefined) continue
    if (isBatonResumable(r)) {
      const slot = r._waitingSlot()
      if (slot !== NO_SLOT) syncNative.prepare(slot)
      return
    }
  }
}

function rethrow(err: unknown): never {
  throw err
}

/**
 * Gives the baton to `slot` and returns once `self`, the greenlet of this
 * thread, is given it back. `expectLong` tells the baton not to spin (a timed
 * sleep).
 */
export function handOver(slot: number, self: SyncGreenlet, expectLong: boolean): void {
  current = null
  // false: servicing V8 interrupts raised (a termination); it propagates.
  syncNative.switchTo(slot, expectLong)
  current = self
}

/**
 * The hub's tick resumes the sync greenlet on `slot`: blocks the main thread
 * until the batch is done (the greenlets it resumed have all blocked or
 * finished, handing over among themselves).
 */
export function resumeFromTick(slot: number): void {
  wakeFollowing()
  // With more of the batch to go, the main thread will wait a while: it
  // sleeps at once, leaving the cores to the greenlets.
  syncNative.switchTo(slot, hub.peekReady(0) !== undefined)
  current = null
}

/** Thread counts of the pool (diagnostics, benchmarks). */
export function threadStats(): { threads: number; idle: number } {
  return syncNative.threadStats()
}
