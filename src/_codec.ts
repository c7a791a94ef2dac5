/**
 * Byte encoding of executor tasks, results and definitions, shared by the
 * executors and their workers. Internal.
 *
 * Frames are `[id u32][len u32][payload]` (little-endian), the layout the
 * Rust queue reads. Values use structured-clone semantics: primitives are
 * written directly (cloning them is the identity), anything else goes through
 * V8's serializer, which is what `structuredClone` and `postMessage` use.
 *
 * - task payload: `[fnId u32][flags u8][args]`
 * - args: `[argc u16][value...]` when every argument is a primitive, else
 *   `[0xffff][v8 bytes of the argument array]` (one clone keeps shared
 *   references between arguments)
 * - result payload: `[status u8][value]`, status `OK`, `ERROR` (a record
 *   rebuilt into an Error) or `THROWN` (a non-Error thrown value)
 * - definition: `[kind u8][utf-16 text]`, a function's source or an export's name
 *
 * Every cloned value gets a fresh serializer and deserializer: V8's
 * serializer remembers each object it has written (to write a repeat as a
 * back reference), so a shared one would keep every argument and result alive
 * and turn an object sent again in a later message into a reference that the
 * receiver resolves to a different object.
 *
 * A SharedArrayBuffer is not copied: the serializer asks the `share` hook of
 * its Writer for an id (a thread pool posts the buffer to its workers under
 * that id; a process pool refuses it), and the Reader's `resolve` hook turns
 * the id back into the buffer. Node's Deserializer cannot read V8's own
 * shared-buffer record, so the writer precedes it with the host-object tag:
 * the reader then sees a host object whose body is that record (`'u'` and the
 * id as a varint) and reads it itself.
 *
 * Transferred values (`transferList`, `move()`): the serializer is given the
 * list; a listed ArrayBuffer is written as V8's transfer record (its index in
 * the list, no bytes) and a listed MessagePort as a host object (`'p'` and
 * its index). The list itself travels beside the bytes, by `postMessage`
 * (which moves the memory), and the deserializer is given the received list.
 * A task's list is fetched by its worker (`TaskFlag.TRANSFER`); a result's
 * list is posted under an id that its value carries (`Tag.TRANSFER`:
 * `[id u32]` and the v8 bytes).
 */
import { types } from 'node:util'
import * as v8 from 'node:v8'
import { MessagePort } from 'node:worker_threads'
import { errorRecord } from './_error-record'
import { safeString } from './errors'

export const FRAME_HEADER = 8

export const enum TaskFlag {
  /** The function receives an AbortSignal as an extra last argument. */
  SIGNAL = 1,
  /** The single argument is an array of items; the result is the array of `fn(item)`. */
  CHUNK = 2,
  /** Values move with the task (`options.transferList`, `move()`): the worker fetches them before reading the arguments. */
  TRANSFER = 4,
}

export const enum Status {
  OK = 0,
  ERROR = 1,
  THROWN = 2,
  /** The task was aborted before it started: no value follows. */
  CANCELLED = 3,
}

export const enum DefKind {
  SOURCE = 1,
  EXPORT = 2,
}

const enum Tag {
  UNDEFINED = 0,
  NULL = 1,
  FALSE = 2,
  TRUE = 3,
  NUMBER = 4,
  STRING = 5,
  V8 = 6,
  /** `[transfer id u32]` and v8 bytes written with that transfer list. */
  TRANSFER = 7,
}

const CLONED_ARGS = 0xffff

/** V8's serialization tags around a SharedArrayBuffer (see the module comment). */
const HOST_OBJECT_TAG = Buffer.from([0x5c]) // '\\'
const SHARED_ARRAY_BUFFER_TAG = 0x75 // 'u'
/** Our host-object record of a transferred MessagePort: `'p'` and its index in the transfer list. */
const PORT_TAG = Buffer.from([0x70]) // 'p'

/** Gives a SharedArrayBuffer met while writing `what` the id its reader will resolve. */
export type ShareHook = (sab: SharedArrayBuffer, what: string) => number
/** The SharedArrayBuffer of an id from a {@link ShareHook}. */
export type ResolveHook = (id: number) => SharedArrayBuffer
/** The transfer list posted under the id of a `Tag.TRANSFER` value. */
export type TransferHook = (id: number) => readonly unknown[]

const NOT_SHARED =
  'contains a SharedArrayBuffer, which ProcessPoolExecutor cannot send: a child process does not share memory with this one' +
  ' (use ThreadPoolExecutor, or send a copy such as new Uint8Array(sab).slice())'

/** The TypeErrors of {@link refuseSharing}: a SharedArrayBuffer was met where memory cannot be shared. */
const refusals = new WeakSet<object>()

export function isSharingRefused(err: unknown): err is TypeError {
  return err instanceof TypeError && refusals.has(err)
}

/** The {@link ShareHook} of transports to and from child processes. */
export const refuseSharing: ShareHook = (_sab, what) => {
  const err = new TypeError(`${what} ${NOT_SHARED}`)
  refusals.add(err)
  throw err
}

class MessageSerializer extends v8.Serializer {
  constructor(
    private readonly share: ShareHook,
    private readonly what: string,
    private readonly transfer: readonly unknown[] | undefined,
  ) {
    super()
  }

  _getSharedArrayBufferId(sab: SharedArrayBuffer): number {
    const id = this.share(sab, this.what)
    this.writeRawBytes(HOST_OBJECT_TAG)
    return id
  }

  /** Host objects: only a MessagePort of the transfer list crosses (V8's message for the others). */
  _writeHostObject(object: object): void {
    if (!(object instanceof MessagePort)) throw new Error(`#<${object.constructor?.name ?? 'Object'}> could not be cloned.`)
    const at = this.transfer === undefined ? -1 : this.transfer.indexOf(object)
    if (at < 0) throw new Error('#<MessagePort> could not be cloned: a MessagePort reaches a thread worker only when listed in options.transferList (or moved with move())')
    this.writeRawBytes(PORT_TAG)
    this.writeUint32(at)
  }
}

class MessageDeserializer extends v8.Deserializer {
  constructor(
    buf: Buffer,
    private readonly resolve: ResolveHook | undefined,
    private readonly transferred: readonly unknown[] | undefined,
  ) {
    super(buf)
  }

  _readHostObject(): unknown {
    const tag = (this.readRawBytes(1) as unknown as Buffer)[0]
    if (tag === PORT_TAG[0]) {
      const port = this.transferred?.[this.readUint32()]
      if (!(port instanceof MessagePort)) throw new Error('greenthread: a transferred MessagePort of an executor frame did not arrive')
      return port
    }
    if (tag !== SHARED_ARRAY_BUFFER_TAG) throw new Error('greenthread: corrupt shared memory record in executor frame')
    const id = this.readUint32()
    if (this.resolve === undefined) throw new Error('greenthread: a SharedArrayBuffer reached a worker that cannot share memory')
    return this.resolve(id)
  }
}

/** An Error as it crosses a thread or process boundary. */

/** A buffer grown past this for a big message goes once emptied: a long-lived writer must not keep its largest message. */
const KEPT_WRITER_BYTES = 1 << 20

/** A growable little-endian byte buffer that frames are written into. */
export class Writer {
  #buf: Buffer
  #view: DataView
  length = 0

  /** `share` decides what happens to SharedArrayBuffers: {@link refuseSharing} unless given. */
  constructor(
    private readonly initial = 16 * 1024,
    private readonly share: ShareHook = refuseSharing,
  ) {
    this.#buf = Buffer.allocUnsafe(initial)
    this.#view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength)
  }

  #use(buf: Buffer): void {
    this.#buf = buf
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  #ensure(n: number): void {
    const need = this.length + n
    if (need <= this.#buf.length) return
    const next = Buffer.allocUnsafe(Math.max(need, this.#buf.length * 2))
    this.#buf.copy(next, 0, 0, this.length)
    this.#use(next)
  }

  /** Empties it, dropping a buffer a big message grew. */
  #empty(): void {
    this.length = 0
    if (this.#buf.length > KEPT_WRITER_BYTES) this.#use(Buffer.allocUnsafe(this.initial))
  }

  u8(v: number): void {
    this.#ensure(1)
    this.#buf[this.length++] = v
  }

  u16(v: number): void {
    this.#ensure(2)
    this.#view.setUint16(this.length, v, true)
    this.length += 2
  }

  u32(v: number): void {
    this.#ensure(4)
    this.#view.setUint32(this.length, v, true)
    this.length += 4
  }

  f64(v: number): void {
    this.#ensure(8)
    this.#view.setFloat64(this.length, v, true)
    this.length += 8
  }

  bytes(b: Uint8Array): void {
    this.#ensure(b.length)
    this.#buf.set(b, this.length)
    this.length += b.length
  }

  /** UTF-16 keeps lone surrogates, as structured clone does. */
  utf16(s: string): void {
    const n = s.length * 2
    this.u32(n)
    this.#ensure(n)
    this.#buf.write(s, this.length, n, 'utf16le')
    this.length += n
  }

  /** Starts a frame; returns the mark that {@link endFrame} needs. */
  beginFrame(id: number): number {
    this.u32(id)
    this.u32(0)
    return this.length
  }

  endFrame(mark: number): void {
    this.#view.setUint32(mark - 4, this.length - mark, true)
  }

  /** Cuts the buffer back to `length` (drops a half-written frame). */
  truncate(length: number): void {
    this.length = length
  }

  /**
   * A V8 clone of `value`, written by a serializer of its own (see the module
   * comment); throws DataCloneError for uncloneable values, and the
   * {@link ShareHook}'s error (naming `value` as `what`) if it refuses a
   * SharedArrayBuffer. The ArrayBuffers and MessagePorts of `transfer` are
   * written as references into it (see the module comment); the caller
   * moves them.
   */
  cloned(value: unknown, what = 'the value', transfer?: readonly unknown[]): void {
    const s = new MessageSerializer(this.share, what, transfer)
    let bytes: Buffer
    try {
      s.writeHeader()
      if (transfer !== undefined) {
        for (let i = 0; i < transfer.length; i++) if (types.isArrayBuffer(transfer[i])) s.transferArrayBuffer(i, transfer[i] as ArrayBuffer)
      }
      s.writeValue(value)
      bytes = s.releaseBuffer()
    } catch (err) {
      if (isSharingRefused(err)) throw err
      // What structuredClone and postMessage throw for the same value.
      throw new DOMException((err as Error).message, 'DataCloneError')
    }
    this.u32(bytes.length)
    this.bytes(bytes)
  }

  value(x: unknown, what?: string): void {
    switch (typeof x) {
      case 'number':
        this.u8(Tag.NUMBER)
        this.f64(x)
        return
      case 'undefined':
        this.u8(Tag.UNDEFINED)
        return
      case 'boolean':
        this.u8(x ? Tag.TRUE : Tag.FALSE)
        return
      case 'string':
        this.u8(Tag.STRING)
        this.utf16(x)
        return
      default:
        if (x === null) {
          this.u8(Tag.NULL)
          return
        }
        this.u8(Tag.V8)
        this.cloned(x, what)
    }
  }

  /**
   * `x` written with the ArrayBuffers and MessagePorts of `transfer` as
   * references (`Tag.TRANSFER`): the reader's {@link TransferHook} gives the
   * list posted under `id`.
   */
  transferred(x: unknown, what: string, id: number, transfer: readonly unknown[]): void {
    this.u8(Tag.TRANSFER)
    this.u32(id)
    this.cloned(x, what, transfer)
  }

  /**
   * A task's arguments; a refused SharedArrayBuffer is reported as
   * `args[i]`. With `transfer`, what it lists is written as references (the
   * worker is given the list beside the task).
   */
  args(args: readonly unknown[], transfer?: readonly unknown[]): void {
    if (args.every(isPrimitive) && args.length < CLONED_ARGS) {
      this.u16(args.length)
      for (const a of args) this.value(a)
      return
    }
    this.u16(CLONED_ARGS)
    try {
      this.cloned(args, 'args', transfer)
    } catch (err) {
      if (!isSharingRefused(err)) throw err
      // Name the argument: clone them one by one (refusing has no side effects).
      const probe = new Writer(64, this.share)
      for (let i = 0; i < args.length; i++) {
        try {
          probe.cloned(args[i], `args[${i}]`)
        } catch (inner) {
          if (isSharingRefused(inner)) throw inner
        }
        probe.reset()
      }
      throw err
    }
  }

  /** The bytes written so far (a view: valid until the next write or reset). */
  view(): Buffer {
    return this.#buf.subarray(0, this.length)
  }

  /** The bytes written so far, copied, and an empty writer. */
  take(): Buffer {
    const out = Buffer.from(this.#buf.subarray(0, this.length))
    this.#empty()
    return out
  }

  reset(): void {
    this.#empty()
  }
}

function isPrimitive(x: unknown): boolean {
  const t = typeof x
  return t === 'number' || t === 'string' || t === 'boolean' || t === 'undefined' || x === null
}

/** Reads values back from a buffer written by {@link Writer}. */
export class Reader {
  readonly view: DataView
  at: number

  /**
   * `resolve` turns the ids of shared memory back into SharedArrayBuffers
   * (see {@link ShareHook}), `resolveTransfer` those of `Tag.TRANSFER`
   * values into their transfer lists.
   */
  constructor(
    readonly buf: Buffer,
    at = 0,
    private readonly resolve?: ResolveHook,
    private readonly resolveTransfer?: TransferHook,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    this.at = at
  }

  get done(): boolean {
    return this.at >= this.buf.length
  }

  u8(): number {
    return this.buf[this.at++]
  }

  u16(): number {
    const v = this.view.getUint16(this.at, true)
    this.at += 2
    return v
  }

  u32(): number {
    const v = this.view.getUint32(this.at, true)
    this.at += 4
    return v
  }

  f64(): number {
    const v = this.view.getFloat64(this.at, true)
    this.at += 8
    return v
  }

  utf16(): string {
    const n = this.u32()
    const s = this.buf.toString('utf16le', this.at, this.at + n)
    this.at += n
    return s
  }

  /** A value of {@link Writer.cloned}; `transferred`: the list it was written with, as received. */
  cloned(transferred?: readonly unknown[]): unknown {
    const n = this.u32()
    const d = new MessageDeserializer(this.buf.subarray(this.at, this.at + n), this.resolve, transferred)
    d.readHeader()
    if (transferred !== undefined) {
      for (let i = 0; i < transferred.length; i++) if (types.isArrayBuffer(transferred[i])) d.transferArrayBuffer(i, transferred[i] as ArrayBuffer)
    }
    const v = d.readValue()
    this.at += n
    return v
  }

  value(): unknown {
    switch (this.u8()) {
      case Tag.UNDEFINED:
        return undefined
      case Tag.NULL:
        return null
      case Tag.FALSE:
        return false
      case Tag.TRUE:
        return true
      case Tag.NUMBER:
        return this.f64()
      case Tag.STRING:
        return this.utf16()
      case Tag.V8:
        return this.cloned()
      case Tag.TRANSFER: {
        const id = this.u32()
        if (this.resolveTransfer === undefined) throw new Error('greenthread: moved values reached a side that cannot receive them')
        return this.cloned(this.resolveTransfer(id))
      }
      default:
        throw new Error('greenthread: corrupt value in executor frame')
    }
  }

  /** A task's arguments; `transferred`: the task's transfer list, as received. */
  args(transferred?: readonly unknown[]): unknown[] {
    const argc = this.u16()
    if (argc === CLONED_ARGS) return this.cloned(transferred) as unknown[]
    const args = new Array<unknown>(argc)
    for (let i = 0; i < argc; i++) args[i] = this.value()
    return args
  }
}

/**
 * Writes a thrown value as a result payload's status and value. Never
 * throws: a value that throws when read (a getter of `name`, `message` or an
 * own property, a revoked Proxy) is reported as an Error saying so, instead
 * of taking the worker down with it.
 */
export function writeThrown(w: Writer, err: unknown): void {
  const mark = w.length
  try {
    writeThrownValue(w, err)
  } catch (inner) {
    w.truncate(mark)
    writeThrownValue(w, new Error(`task threw a value that could not be read: ${messageOf(inner)}`))
  }
}

/** `err.message` (or the value as a string) of an error caught while reading another; never throws. */
function messageOf(err: unknown): string {
  try {
    return err instanceof Error ? `${safeString(err.name)}: ${safeString(err.message)}` : safeString(err)
  } catch {
    return 'reading that failed too'
  }
}

function writeThrownValue(w: Writer, err: unknown): void {
  if (!(err instanceof Error)) {
    const mark = w.length
    try {
      w.u8(Status.THROWN)
      w.value(err)
      return
    } catch {
      w.truncate(mark)
      err = new Error(`task threw an uncloneable value: ${messageOf(err)}`)
    }
  }
  w.u8(Status.ERROR)
  w.value(errorRecord(err))
}

/** Appends a {@link Status.CANCELLED} result frame per id. */
export function writeCancelled(w: Writer, ids: readonly number[]): void {
  for (const id of ids) {
    const mark = w.beginFrame(id)
    w.u8(Status.CANCELLED)
    w.endFrame(mark)
  }
}

/** Iterates the `[id][len][payload]` frames of a batch: calls `each(id, start, end)`. */
export function forEachFrame(buf: Buffer, each: (id: number, start: number, end: number) => void): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let at = 0
  while (at + FRAME_HEADER <= buf.length) {
    const id = view.getUint32(at, true)
    const len = view.getUint32(at + 4, true)
    const start = at + FRAME_HEADER
    at = start + len
    each(id, start, at)
  }
}
