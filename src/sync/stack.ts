/**
 * Where a sync greenlet's code runs, on its thread's stack, when it is about
 * to block. Internal.
 *
 * - Room: a blocking call issues its wait, then hands the baton over; a
 *   RangeError (the JS stack limit) between the two would leave the hub
 *   counting on a greenlet that is still running. So a blocking call first
 *   checks that it has room for the whole hand-over, and throws V8's own
 *   RangeError before doing anything if not.
 * - JSPI: the wasm export of `WebAssembly.promising()` runs on a stack of its
 *   own, and V8 keeps its stack-switching state per isolate, not per thread:
 *   a greenlet that blocked in an import called from there, while another
 *   greenlet entered such an export, crashed the process (Node 24, 26). A
 *   blocking call there throws instead, and monkey-patched functions make
 *   their real blocking call.
 * - Builtins that must unwind in order across the isolate or context
 *   (`Array.prototype.join`; `JSON.stringify` on Node 22): likewise.
 * - `async_hooks` callbacks: Node calls `init` in the middle of its own
 *   bookkeeping of a tick, timer or immediate (the hub's own setImmediate
 *   among them), and keeps one async id stack per isolate: a greenlet that
 *   blocked there lost the tick, left the timer unref'd, or corrupted that
 *   stack (Node exits). Likewise.
 */
import { syncBuiltinESMExports } from 'node:module'

import { syncNative } from './native'

/** Stack the hand-over of a blocking call may use, at most (its JS frames, with room to spare). */
const ROOM_TO_BLOCK = 64 * 1024

/**
 * Calls running now of builtins a greenlet cannot block inside (see the
 * module comment), by kind. A blocking call inside one throws, so only the
 * running greenlet's stack is ever counted here.
 * - `promising`: `WebAssembly.promising()` exports, up to their first
 *   suspension. V8 runs the JS imports they call on the thread's own stack,
 *   so the stack pointer cannot tell: the exports are counted instead.
 *   (After a `WebAssembly.Suspending` import has suspended one, it runs on
 *   from Promise callbacks, where no greenlet may block anyway.)
 * - `stringify`: `JSON.stringify` on V8 12 (Node 22), which registers each
 *   call on an isolate-wide list that must unwind in order, and aborts the
 *   process when a greenlet that blocked inside a `toJSON`, replacer or
 *   getter finishes after one that entered later.
 * - `join`: `Array.prototype.join` and `toLocaleString` (and the typed
 *   arrays'; `String(array)` calls `join`), which V8 tracks on a stack per
 *   context: joins of greenlets that blocked inside an element's `toString`
 *   and end out of order abort the process (all Node lines).
 * - `hook`: the callbacks of hooks made by `async_hooks.createHook`.
 */
const inside = { promising: 0, stringify: 0, join: 0, hook: 0 }

/** `fn` in a function of the same name and length that counts its calls in `inside[kind]`. */
function counted<F extends (...args: any[]) => unknown>(fn: F, kind: keyof typeof inside): F {
  const wrapper = {
    [fn.name](this: unknown, ...args: unknown[]): unknown {
      inside[kind]++
      try {
        return fn.apply(this, args)
      } finally {
        inside[kind]--
      }
    },
  }[fn.name]
  Object.defineProperty(wrapper, 'length', { value: fn.length })
  return wrapper as F
}

/** Replaces the method `owner[name]` by one counting its calls as `kind`. */
function countCalls(owner: object, name: string, kind: keyof typeof inside): void {
  const method = (owner as Record<string, unknown>)[name]
  if (typeof method !== 'function') return
  Object.defineProperty(owner, name, { value: counted(method as (...args: unknown[]) => unknown, kind), writable: true, configurable: true, enumerable: false })
}

const wasm = (globalThis as { WebAssembly?: { promising?: (fn: unknown) => (...args: unknown[]) => unknown } }).WebAssembly
const promising = wasm?.promising
if (wasm !== undefined && typeof promising === 'function') {
  const countedPromising = {
    promising(this: unknown, fn: unknown): unknown {
      return counted(promising.call(this, fn), 'promising')
    },
  }.promising
  Object.defineProperty(wasm, 'promising', { value: countedPromising, writable: true, configurable: true, enumerable: false })
}

if (process.versions.v8.startsWith('12.')) countCalls(JSON, 'stringify', 'stringify')

const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object
for (const owner of [Array.prototype, typedArrayPrototype]) {
  countCalls(owner, 'join', 'join')
  countCalls(owner, 'toLocaleString', 'join')
}

const HOOK_CALLBACKS = ['init', 'before', 'after', 'destroy', 'promiseResolve'] as const
const asyncHooks = require('node:async_hooks') as { createHook: (callbacks: object) => unknown }
const createHook = asyncHooks.createHook
asyncHooks.createHook = {
  createHook(this: unknown, callbacks: object): unknown {
    if (callbacks === null || typeof callbacks !== 'object') return createHook.call(this, callbacks)
    // Its other properties stay readable through the prototype; what is not a function is Node's to refuse.
    const counting = Object.create(callbacks) as Record<string, unknown>
    for (const name of HOOK_CALLBACKS) {
      const callback = (callbacks as Record<string, unknown>)[name]
      if (typeof callback === 'function') counting[name] = counted(callback as (...args: unknown[]) => unknown, 'hook')
    }
    return createHook.call(this, counting)
  },
}.createHook
// ES modules that import it see this one too.
syncBuiltinESMExports()

/** Whether the calling code may switch threads: on its own stack, not inside a JSPI export, a join, an async hook or (Node 22) JSON.stringify. */
export function onOwnStack(): boolean {
  return inside.promising === 0 && inside.stringify === 0 && inside.join === 0 && inside.hook === 0 && syncNative.stackRoom() >= 0
}

/** Throws, before anything has happened, where a blocking call `what` cannot run. */
export function checkStackToBlock(what: string): void {
  if (inside.stringify > 0) {
    throw new Error(
      `${what} blocks, and on Node 22 a sync greenlet cannot block inside JSON.stringify (a toJSON, replacer or getter): ` +
        'V8 12 aborts the process when such calls of two greenlets end out of order. Block before or after it.',
    )
  }
  if (inside.join > 0) {
    throw new Error(
      `${what} blocks, and a sync greenlet cannot block inside Array.prototype.join or toLocaleString (an element's ` +
        'toString, String(array), a template literal): V8 aborts the process when such calls of two greenlets end out of ' +
        'order. Block before or after it.',
    )
  }
  if (inside.hook > 0) {
    throw new Error(
      `${what} blocks, and a sync greenlet cannot block inside an async_hooks callback (init, before, after, destroy, ` +
        'promiseResolve): Node calls them in the middle of its own bookkeeping, and its async id stack is one for all ' +
        'threads. Block before or after it.',
    )
  }
  const room = inside.promising === 0 ? syncNative.stackRoom() : -1
  if (room >= ROOM_TO_BLOCK) return
  if (room >= 0) throw new RangeError('Maximum call stack size exceeded')
  throw new Error(
    `${what} blocks, and a sync greenlet cannot block inside a WebAssembly.promising() call (JSPI): ` +
      'V8 switches those stacks per isolate, not per thread. Block before or after the call, or let the import ' +
      'return a Promise through WebAssembly.Suspending.',
  )
}
