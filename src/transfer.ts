/**
 * Moving memory to and from thread workers instead of copying it: the
 * executors' `transferList` option and {@link move} (piscina's
 * `transferList` and `Piscina.move()`). Node's `postMessage(value,
 * transferList)` semantics: a listed ArrayBuffer is detached on the sending
 * side and arrives with the same memory; a listed MessagePort moves with
 * the messages queued on it.
 */
import { MessagePort } from 'node:worker_threads'
import * as workerThreads from 'node:worker_threads'
import { types } from 'node:util'

import { invalidType } from './errors'

/** What can be moved to and from a thread worker. */
export type TransferListItem = ArrayBuffer | MessagePort

/** A {@link move} marker: the value, and what moves with it. */
interface Moved {
  value: unknown
  transfer: TransferListItem[]
}

/**
 * The markers of every copy of greenthread loaded in this thread (a task's
 * module may load another): held weakly by marker, looked up without
 * touching the marker (a Proxy argument runs no trap).
 */
const markers: WeakMap<object, Moved> = ((globalThis as any)[Symbol.for('greenthread.moved')] ??= new WeakMap())

/**
 * A marker nested inside another value is refused by structured clone: its
 * only property is a function, whose source the DataCloneError quotes.
 */
const NESTED = {
  'greenthread.move': function move_marks_a_whole_argument_or_a_whole_return_value_not_a_nested_value() {},
}

/**
 * Marks `value` to be moved rather than copied between this thread and a
 * thread worker, as piscina's `Piscina.move()`: return `move(buf)` from a
 * task (the whole return value, or an item's result under `map`'s
 * `chunksize`), or pass `move(buf)` as a whole argument of `submit`/`map`,
 * and `buf` (an ArrayBuffer, a typed array or DataView, whose whole buffer
 * moves, or a MessagePort) arrives with its memory, detached on the sending
 * side. A process pool copies it. Typed as `value` itself, for what the task
 * receives or returns; a marker nested inside another value is refused.
 */
export function move<T extends TransferListItem | ArrayBufferView>(value: T): T {
  const transfer = movable('value', value, true)
  const marker = Object.freeze(Object.assign(Object.create(null), NESTED))
  markers.set(marker, { value, transfer: [transfer] })
  return marker as T
}

/** The marker's value and transfer list if `x` is a {@link move} marker. */
export function movedOf(x: unknown): Moved | undefined {
  return typeof x === 'object' && x !== null ? markers.get(x) : undefined
}

/**
 * Replaces the {@link move} markers among `values` (in place) by their
 * values; returns what moves with them, `name(i)` naming where each came from.
 */
export function takeMoved(values: unknown[], name: (i: number) => string, into: NamedTransfer[] | undefined): NamedTransfer[] | undefined {
  for (let i = 0; i < values.length; i++) {
    const m = movedOf(values[i])
    if (m === undefined) continue
    values[i] = m.value
    into ??= []
    for (const item of m.transfer) if (!into.some((t) => t.item === item)) into.push({ item, name: name(i) })
  }
  return into
}

/** An item to transfer and how messages name it (`options.transferList[i]`, `args[i]`). */
export interface NamedTransfer {
  item: TransferListItem
  name: string
}

const isMarkedAsUntransferable = (workerThreads as { isMarkedAsUntransferable?: (o: unknown) => boolean }).isMarkedAsUntransferable

/** `x instanceof MessagePort`, false for a revoked Proxy (whose prototype cannot be read). */
function isPort(x: unknown): x is MessagePort {
  try {
    return x instanceof MessagePort
  } catch {
    return false
  }
}

function isDetached(ab: ArrayBuffer): boolean {
  try {
    new Uint8Array(ab)
    return false
  } catch {
    return true
  }
}

/** What moves for `value` (a view's whole buffer, if `views`), or the TypeError naming `name`. */
function movable(name: string, value: unknown, views: boolean): TransferListItem {
  if (isPort(value)) return value
  let ab: unknown = value
  if (views && ArrayBuffer.isView(value)) ab = value.buffer
  if (types.isSharedArrayBuffer(ab)) {
    throw new TypeError(
      `${name} is ${ab === value ? 'a SharedArrayBuffer' : 'a view on a SharedArrayBuffer'}, which is not moved: thread workers share it as it is (pass it without listing or moving it; process pools refuse it)`,
    )
  }
  if (!types.isArrayBuffer(ab)) {
    if (ArrayBuffer.isView(value)) throw new TypeError(`${name} must be an ArrayBuffer or a MessagePort, got a view (${Object.prototype.toString.call(value).slice(8, -1)}): list its .buffer`)
    throw invalidType(name, views ? 'an ArrayBuffer, a typed array or a MessagePort' : 'an ArrayBuffer or a MessagePort', value)
  }
  if (isDetached(ab)) throw new TypeError(`${name} is a detached ArrayBuffer (moved or transferred already): it has no memory left to move`)
  if (isMarkedAsUntransferable?.(ab) === true) {
    throw new TypeError(`${name} is marked as untransferable (the memory pool of small Buffers, for one): send it without moving it, and it is copied`)
  }
  return ab
}

/**
 * `options.transferList` checked: an array of ArrayBuffers and MessagePorts,
 * none listed twice, none detached; TypeErrors name the item.
 */
export function checkTransferList(value: unknown): NamedTransfer[] | undefined {
  if (value === undefined) return undefined
  let isArray = false
  try {
    isArray = Array.isArray(value)
  } catch {
    // A revoked Proxy.
  }
  if (!isArray) throw invalidType('options.transferList', 'an array of ArrayBuffers and MessagePorts', value)
  const out: NamedTransfer[] = []
  const items = value as unknown[]
  for (let i = 0; i < items.length; i++) {
    const name = `options.transferList[${i}]`
    const ab = movable(name, items[i], false)
    const at = out.findIndex((t) => t.item === ab)
    if (at >= 0) throw new TypeError(`${name} is listed twice: it is ${out[at].name} too`)
    out.push({ item: ab, name })
  }
  return out
}
