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
 * - Builtins that must unwind in order across the isolate (`JSON.stringify`
 *   on Node 22): likewise.
 */
import { syncNative } from './native'

/** Stack the hand-over of a blocking call may use, at most (its JS frames, with room to spare). */
const ROOM_TO_BLOCK = 64 * 1024

/**
 * `WebAssembly.promising()` exports running now, up to their first
 * suspension. V8 runs the JS imports they call on the thread's own stack, so
 * the stack pointer cannot tell: the exports are counted instead. (After a
 * `WebAssembly.Suspending` import has suspended one, it runs on from Promise
 * callbacks, where no greenlet may block anyway.)
 */
let inPromising = 0

const wasm = (globalThis as { WebAssembly?: { promising?: (fn: unknown) => (...args: unknown[]) => unknown } }).WebAssembly
const promising = wasm?.promising
if (wasm !== undefined && typeof promising === 'function') {
  const counted = {
    promising(this: unknown, fn: unknown): unknown {
      const exported = promising.call(this, fn)
      const wrapped = {
        [exported.name](this: unknown, ...args: unknown[]): unknown {
          inPromising++
          try {
            return exported.apply(this, args)
          } finally {
            inPromising--
          }
        },
      }[exported.name]
      Object.defineProperty(wrapped, 'length', { value: exported.length })
      return wrapped
    },
  }.promising
  Object.defineProperty(wasm, 'promising', { value: counted, writable: true, configurable: true, enumerable: false })
}

/**
 * `JSON.stringify` calls running now, where they cannot be left: V8 12
 * (Node 22) registers each one on an isolate-wide list that must unwind in
 * order, and aborts the process when a greenlet that blocked inside a
 * `toJSON`, replacer or getter finishes after one that entered later.
 */
let inStringify = 0

if (process.versions.v8.startsWith('12.')) {
  const stringify = JSON.stringify
  const counted = {
    stringify(this: unknown, ...args: Parameters<typeof JSON.stringify>): string {
      inStringify++
      try {
        return stringify.apply(this, args)
      } finally {
        inStringify--
      }
    },
  }.stringify
  Object.defineProperty(counted, 'length', { value: stringify.length })
  Object.defineProperty(JSON, 'stringify', { value: counted, writable: true, configurable: true, enumerable: false })
}

/** Whether the calling code may switch threads: on its own stack, not inside a JSPI export or (Node 22) JSON.stringify. */
export function onOwnStack(): boolean {
  return inPromising === 0 && inStringify === 0 && syncNative.stackRoom() >= 0
}

/** Throws, before anything has happened, where a blocking call `what` cannot run. */
export function checkStackToBlock(what: string): void {
  if (inStringify > 0) {
    throw new Error(
      `${what} blocks, and on Node 22 a sync greenlet cannot block inside JSON.stringify (a toJSON, replacer or getter): ` +
        'V8 12 aborts the process when such calls of two greenlets end out of order. Block before or after it.',
    )
  }
  const room = inPromising === 0 ? syncNative.stackRoom() : -1
  if (room >= ROOM_TO_BLOCK) return
  if (room >= 0) throw new RangeError('Maximum call stack size exceeded')
  throw new Error(
    `${what} blocks, and a sync greenlet cannot block inside a WebAssembly.promising() call (JSPI): ` +
      'V8 switches those stacks per isolate, not per thread. Block before or after the call, or let the import ' +
      'return a Promise through WebAssembly.Suspending.',
  )
}
