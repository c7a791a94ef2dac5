/**
 * Cooperative TCP sockets, gevent style: `await sock.recv(1024)` suspends
 * only the calling greenlet. Node's `net` is not involved: the sockets live
 * in a Rust reactor (one epoll or kqueue set) that this thread drives itself.
 * Node's event loop watches the reactor's fd; when anything is ready, one
 * native call reads every socket whose recv waits and hands back a batch,
 * and the greenlets waiting on them resume in one hub turn.
 *
 * Semantics:
 * - `recv(n)` resolves with 1 to `n` bytes as soon as any are available, and
 *   with an empty Buffer at EOF. `recvExactly(n)` resolves with `n` bytes;
 *   `recvLine()` with the bytes through the next `\n`. Framing is native:
 *   the greenlet is woken once its frame is complete. Bytes that arrive
 *   after a recv timed out or was killed are kept for the next recv.
 * - `sendall(data)` writes what the kernel takes at once, queues what fits
 *   in the socket's bounded queue (64 KiB), and resolves once every byte is
 *   in one or the other; past that it waits for room (back-pressure a
 *   caller sees: a peer that stops reading makes `sendall` wait, and memory
 *   stays bounded). A write that fails later makes the next `sendall`
 *   reject with its error; `close()` still writes out what is queued (and
 *   what a `sendall` in progress still has) before closing, and keeps the
 *   process alive until it has, 10 s at most.
 * - Waits are hub waits: inside a greenlet, kill and Timeout interrupt them
 *   at once; with `setTimeout(ms)` each recv/sendall rejects with ETIMEDOUT.
 * - Failures are Errors with Node's fields: `code` (ECONNREFUSED,
 *   ECONNRESET, ETIMEDOUT, EBADF...), `errno`, `syscall`.
 * - A socket with a pending operation keeps the process alive.
 */
import { Buffer } from 'node:buffer'
import { isIP } from 'node:net'
import { constants } from 'node:os'
import { getSystemErrorName } from 'node:util'
import { isUint8Array } from 'node:util/types'
import { markAsUntransferable } from 'node:worker_threads'

import type { NativeNet, NativeSocket } from 'native-binding'
import { checkMs, checkOptions, invalidType } from './errors'
import { type Blocking, TIMED_OUT as TIMED_OUT_TURN, WaitList, drive } from './_waiters'
import { type HubRecord, Outcome, type WokenWait, currentStorage, hub, suspendFresh, suspendWith } from './hub'
import { native } from './native'
import { KEEP_ALIVE_MS } from './_keep-alive'

const protocol = native.netProtocol()

function constant(name: string): number {
  const value = protocol[name]
  if (value === undefined) throw new Error(`greenthread: native binding lacks net constant ${name}; rebuild it`)
  return value
}

const ENTRY_WIDTH = constant('ENTRY_WIDTH')
const POLL_HEADER = constant('POLL_HEADER')
const POLL_ENTRY_WIDTH = constant('POLL_ENTRY_WIDTH')
const KIND_RECV = constant('KIND_RECV')
const TAKE = constant('TAKE')
const ARMED = constant('ARMED')
const MORE = constant('MORE')
const ACCEPT_STALLED = constant('ACCEPT_STALLED')
const WAITING = constant('WAITING')
const DONE = constant('DONE')
const SEND_QUEUE_LIMIT = constant('SEND_QUEUE_LIMIT')
/** @internal Frame kinds of a recv. */
export const FRAME_ANY = constant('FRAME_ANY')
/** @internal */
export const FRAME_EXACTLY = constant('FRAME_EXACTLY')
/** @internal */
export const FRAME_LINE = constant('FRAME_LINE')

/** Entries of one poll. */
const ENTRIES_PER_POLL = 4096
/**
 * Delivered bytes are views into an arena, not copies: a new one is made
 * once less than `POLL_ROOM` is left (frames over 64 KiB are taken one by
 * one). Small, as Node's Buffer pool: a view kept alive keeps its arena.
 */
const ARENA_BYTES = 256 * 1024
const POLL_ROOM = 64 * 1024

/**
 * An arena is shared by every socket's deliveries: like Node's Buffer pool it
 * cannot be transferred (in a `transferList` it is copied on Node 20 and
 * refused from Node 22), or a worker would get other connections' bytes and
 * the next delivery would write into a detached buffer.
 */
function newArena(): Buffer {
  const arena = Buffer.allocUnsafeSlow(ARENA_BYTES)
  markAsUntransferable(arena.buffer)
  return arena
}
const ENTRIES_PER_DRAIN = 256
const DRAIN_BYTES = 64 * 1024
const DEFAULT_RECV = 64 * 1024
/** `recvLine`'s default limit, as asyncio's StreamReader. */
const DEFAULT_LINE = 64 * 1024
/** A `sendall` that waits for room resumes once the queue is down to this. */
const SEND_LOW_WATER = SEND_QUEUE_LIMIT / 2
/** How long a closed socket's unwritten queue keeps the process alive. */
const CLOSE_LINGER_MS = 10_000
/** How long after running out of descriptors accepting is tried again. */
const ACCEPT_RETRY_MS = 50
const EMPTY = Buffer.alloc(0)
/** @internal What `sendall` returns when it need not wait: one settled Promise serves all. */
export const SENT: Promise<void> = Promise.resolve()

function noop(): void {}

/** Where a socket is bound or connected, as Node's `server.address()` reports it. */
export interface AddressInfo {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
}

/** A failed socket operation. */
export interface SocketError extends Error {
  /** ECONNREFUSED, ECONNRESET, ETIMEDOUT, EADDRINUSE, EBADF... */
  code: string
  /** The negative errno, as in Node. */
  errno: number
  syscall: string
  address?: string
  port?: number
}

/** @internal Builds an Error like Node's system errors from a negative errno. */
export function socketError(syscall: string, status: number, peer?: { address: string; port: number }): SocketError {
  const code = getSystemErrorName(status)
  const where = peer === undefined ? '' : ` ${peer.address}:${peer.port}`
  const err = new Error(`${syscall} ${code}${where}`) as SocketError
  err.code = code
  err.errno = status
  err.syscall = syscall
  if (peer !== undefined) {
    err.address = peer.address
    err.port = peer.port
  }
  return err
}

const ETIMEDOUT = -constants.errno.ETIMEDOUT
const EBADF = -constants.errno.EBADF
const EPIPE = -constants.errno.EPIPE

/** `recvExactly` met EOF before it had all the bytes it wanted. */
export class IncompleteReadError extends Error {
  readonly code = 'ERR_INCOMPLETE_READ'

  constructor(
    /** The bytes that did arrive. */
    readonly partial: Buffer,
    readonly expected: number,
  ) {
    super(`connection closed after ${partial.length} of ${expected} bytes`)
    this.name = 'IncompleteReadError'
  }
}

/** A completion: the bytes of a recv, or a status (0 done or EOF, < 0 -errno). */
type Result = Buffer | number

interface Submission {
  id: number
  op: (id: number) => number
  cancelled: boolean
}

/**
 * @internal The socket side of this thread's hub: the reactor's batches
 * (recv deliveries to the sockets waiting for them, completed waits by id),
 * the built-in servers' inbox, and the process keep-alive.
 */
class NetClient {
  #native: NativeNet | undefined
  readonly #results = new Map<number, Result>()
  /** Waits whose completion is still to be taken; completions of others are dropped. */
  readonly #expected = new Set<number>()
  readonly #meta = new Float64Array(POLL_HEADER + ENTRIES_PER_POLL * POLL_ENTRY_WIDTH)
  #arena = newArena()
  #arenaUsed = 0
  readonly #drainMeta = new Float64Array(ENTRIES_PER_DRAIN * ENTRY_WIDTH)
  readonly #drainBytes = Buffer.allocUnsafeSlow(DRAIN_BYTES)
  /**
   * The sockets whose recv is armed, by their reactor slot: held strongly
   * while a recv waits, weakly while the recv stays armed between two recvs,
   * so that a socket dropped without close() is still collected (and its
   * connection closed).
   */
  readonly readers: (Socket | WeakRef<Socket> | undefined)[] = []
  readonly #submissions = new Map<number, Submission>()
  /** Submissions still to run. */
  #open: Submission[] = []
  #holds = 0
  #keepAlive: NodeJS.Timeout | undefined
  /** `send(slot, generation, data)`: the per-message send, without napi-rs's per-call bookkeeping. */
  send: (slot: number, generation: number, data: Uint8Array) => number = () => EBADF
  #acceptRetry: NodeJS.Timeout | undefined

  native(): NativeNet {
    return (this.#native ??= this.#start())
  }

  /**
   * The reactor (created on first use), or the Error that says why it
   * cannot be, with the OS error's `code` (EMFILE...): it is tried again at
   * the next use.
   */
  #start(): NativeNet {
    const nativeHub = hub.native()
    try {
      const made = new native.NativeNet(nativeHub, this.#onReady)
      this.send = native.sendFunction(made)
      process.on('beforeExit', this.#flushBeforeExit)
      return made
    } catch (err) {
      const errno = /\(os error (\d+)\)/.exec((err as Error).message)?.[1]
      if (errno !== undefined) (err as NodeJS.ErrnoException).code = getSystemErrorName(-Number(errno))
      throw err
    }
  }

  /** Until the process would exit: a flush, at most `CLOSE_LINGER_MS` in all, has not given up. */
  #flushLeft = true

  /**
   * The process would exit: bytes a resolved sendall queued on a socket left
   * open are written out first (a peer that stops reading gets
   * `CLOSE_LINGER_MS` once), as Node's `net` keeps the process alive for a
   * pending write. Each time the loop runs dry again this is called again,
   * and finds nothing queued.
   */
  readonly #flushBeforeExit = (): void => {
    const client = this.#native
    // Nothing to wait for: the process exits (a wait, even one done at once, would run the loop and come back here).
    if (client === undefined || !this.#flushLeft || !client.hasQueued()) return
    lingerFor(
      (id) => client.flushWait(id),
      () => (this.#flushLeft = false),
    )
  }

  /**
   * Called by Node's loop when the reactor has events (and after calls that
   * complete waits at once): polls until nothing more is pending. Every
   * recv delivered goes to its socket, every completed wait to the results,
   * and their waiters are unparked: they resume in the hub's next turn, all
   * in one batch.
   */
  readonly #onReady = (): void => {
    const client = this.#native
    if (client === undefined) return
    const meta = this.#meta
    for (;;) {
      // Length 0: detached all the same (`ArrayBuffer#transfer()` of a delivered view's buffer).
      if (ARENA_BYTES - this.#arenaUsed < POLL_ROOM || this.#arena.length === 0) {
        this.#arena = newArena()
        this.#arenaUsed = 0
      }
      const arena = this.#arena
      const base = this.#arenaUsed
      if (client.poll(meta, arena.subarray(base)) < 0) return
      const count = meta[0]
      const flags = meta[1]
      for (let i = 0, at = POLL_HEADER; i < count; i++, at += POLL_ENTRY_WIDTH) {
        const key = meta[at + 1]
        const status = meta[at + 2]
        if (meta[at] === KIND_RECV) {
          const reader = this.readers[key]
          const sock = reader instanceof WeakRef ? reader.deref() : reader
          if (sock === undefined) continue
          const len = meta[at + 4]
          let result: Result
          if (status < 0) {
            result = status
          } else if (status === TAKE) {
            result = sock._takeBytes(len)
          } else if (len === 0) {
            result = EMPTY
          } else {
            const start = base + meta[at + 3]
            result = arena.subarray(start, start + len)
            this.#arenaUsed = start + len
          }
          sock._delivered(result, status === ARMED)
        } else if (this.#expected.has(key)) {
          this.#results.set(key, status)
          hub.unparkId(key)
        }
      }
      if ((flags & MORE) === 0) {
        if ((flags & ACCEPT_STALLED) !== 0 && this.#acceptRetry === undefined) {
          this.#acceptRetry = setTimeout(() => {
            this.#acceptRetry = undefined
            this.#onReady()
          }, ACCEPT_RETRY_MS).unref()
        }
        return
      }
    }
  }

  /** Hands over, now, what a call completed at once (closing a listener ends its accept wait). */
  pollNow(): void {
    this.#onReady()
  }

  expect(id: number): void {
    this.#expected.add(id)
  }

  /** The completion of `id`, polling if it is not here yet; `undefined` if it has not completed. */
  poll(id: number): Result | undefined {
    let result = this.#results.get(id)
    if (result === undefined) {
      this.pollNow()
      result = this.#results.get(id)
      while (result === undefined && this.#drain() > 0) result = this.#results.get(id)
    }
    if (result !== undefined) this.forget(id)
    return result
  }

  /** The completion of a wait the hub has ended with WAKE: it is here, or in the reactor or inbox. */
  take(id: number): Result {
    const result = this.poll(id)
    if (result === undefined) throw new Error(`greenthread: the completion of socket wait ${id} is missing`)
    return result
  }

  forget(id: number): void {
    this.#results.delete(id)
    this.#expected.delete(id)
  }

  /** Ends the wait `id` with `status`, now (its operation was dropped, or completed at once). */
  complete(id: number, status: number): void {
    if (!this.#expected.has(id)) return
    this.#results.set(id, status)
    hub.unparkId(id)
  }

  /** One napi call copies out the built-in servers' completed waits. */
  #drain(): number {
    const meta = this.#drainMeta
    const count = this.native().drain(meta, this.#drainBytes)
    for (let i = 0, at = 0; i < count; i++, at += ENTRY_WIDTH) {
      const id = meta[at]
      if (this.#expected.has(id)) this.#results.set(id, meta[at + 1])
    }
    return count
  }

  /**
   * Registers the native operation `op` of the wait `id`, whose PARK the
   * caller has just issued, in a microtask. `op` returns 0 (registered),
   * `DONE` (satisfied already) or -errno (the wait then ends with it). The
   * microtask runs on the main thread even when a sync greenlet's thread
   * submits: only there can the bindings create native objects (connect's
   * socket).
   */
  submit(id: number, op: (id: number) => number): void {
    const submission: Submission = { id, op, cancelled: false }
    this.#submissions.set(id, submission)
    this.#open.push(submission)
    if (this.#open.length === 1) queueMicrotask(this.#closeBatch)
  }

  /** Withdraws an operation that has not run yet; `false` if it has. */
  unsubmit(id: number): boolean {
    const submission = this.#submissions.get(id)
    if (submission === undefined) return false
    submission.cancelled = true
    this.#submissions.delete(id)
    return true
  }

  readonly #closeBatch = (): void => {
    const batch = this.#open
    this.#open = []
    for (const submission of batch) {
      if (submission.cancelled) continue
      this.#submissions.delete(submission.id)
      this.registered(submission.id, submission.op(submission.id))
    }
  }

  /** Ends the wait `id` now if its operation did not register: `DONE` (with 0) or -errno. */
  registered(id: number, status: number): void {
    if (status === DONE) this.complete(id, 0)
    else if (status < 0) this.complete(id, status)
  }

  /**
   * Keeps the process alive until a closed socket has written out its
   * queue, for `CLOSE_LINGER_MS` at most: a peer that stops reading must
   * not keep it alive forever, nor its fd (the reactor goes on writing
   * meanwhile; at the limit the socket is closed, the rest unsent).
   */
  holdUntilClosed(handle: NativeSocket): void {
    // Still not written out at the limit: close now, releasing the fd, the rest unsent.
    lingerFor(
      (id) => handle.closeWait(id),
      () => handle.abandon(),
    )
  }

  /** Keeps the process alive while anything holds it (pending waits, listening servers). */
  hold(): void {
    if (this.#holds++ === 0) (this.#keepAlive ??= setInterval(noop, KEEP_ALIVE_MS)).ref()
  }

  release(): void {
    if (--this.#holds === 0) this.#keepAlive?.unref()
  }
}

/**
 * Keeps the process alive while queued bytes are written out (`op` starts
 * the native wait), `CLOSE_LINGER_MS` at most, then calls `giveUp`. Outside
 * any greenlet: killing the one that started it must not end the wait.
 */
function lingerFor(op: (id: number) => number, giveUp: () => void): void {
  currentStorage.exit(() => {
    void nativeWait(op, CLOSE_LINGER_MS, () => true).then((result) => {
      if (result === TIMED_OUT) giveUp()
    })
  })
}

/** @internal */
export const net = new NetClient()

/** @internal What {@link nativeWait} resolves with when its timeout expired first. */
export const TIMED_OUT = Symbol('timed out')

/**
 * @internal Suspends until the native operation `op` (registered by
 * `net.submit`, or at once with `direct`) completes, and resolves with its
 * result; or with {@link TIMED_OUT} once `timeoutMs` has passed (-1: never),
 * unless it completed meanwhile. On timeout or kill the operation is
 * withdrawn with `cancel(id)`, which returns `false` only if the operation
 * has completed (its result is then at hand); a killed wait drops such a
 * result and rejects with the kill exception.
 */
export async function nativeWait(
  op: (id: number) => number,
  timeoutMs: number,
  cancel: (id: number) => boolean,
  direct = false,
): Promise<Result | typeof TIMED_OUT> {
  let id = 0
  let outcome: number
  net.hold()
  try {
    outcome = await suspendFresh((waiter) => {
      id = waiter.id
      net.expect(id)
      hub.park(waiter, timeoutMs)
      if (direct) net.registered(id, op(id))
      else net.submit(id, op)
    })
  } catch (err) {
    if (net.unsubmit(id) || cancel(id)) net.forget(id)
    else net.take(id)
    throw err
  } finally {
    net.release()
  }
  if (outcome !== Outcome.TIMER) return net.take(id)
  if (net.unsubmit(id)) {
    net.forget(id)
    return TIMED_OUT
  }
  const early = net.poll(id)
  if (early !== undefined) return early
  if (cancel(id)) {
    net.forget(id)
    return TIMED_OUT
  }
  return net.take(id)
}

function checkByteCount(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'an integer number of bytes', value)
  if (!Number.isInteger(value) || value < min || value > 2 ** 31) {
    throw new RangeError(`${name} must be an integer from ${min} to 2^31, got ${value}`)
  }
  return value
}

function toBytes(data: unknown): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8')
  // An internal-slot check: it also takes a Uint8Array of another realm (vm, worker) and never runs Proxy traps.
  if (isUint8Array(data)) return data
  throw invalidType('data', 'a Buffer, Uint8Array or string', data)
}

const SHUTDOWN: Record<string, number> = { read: 0, write: 1, both: 2 }

function checkShutdown(how: unknown): number {
  if (how === 0 || how === 1 || how === 2) return how
  if (typeof how === 'string' && Object.hasOwn(SHUTDOWN, how)) return SHUTDOWN[how]
  if (typeof how === 'number') throw new RangeError(`how must be 0 (read), 1 (write) or 2 (both), got ${how}`)
  throw invalidType('how', "'read', 'write', 'both' or 0, 1, 2", how)
}

function addressInfo(a: { address: string; family: string; port: number } | null | undefined): AddressInfo | null {
  return a == null ? null : { address: a.address, family: a.family as AddressInfo['family'], port: a.port }
}

function checkPort(name: string, port: unknown, min: number): number {
  if (typeof port !== 'number') throw invalidType(name, 'a port number', port)
  if (!Number.isInteger(port) || port < min || port > 65535) {
    throw new RangeError(`${name} must be an integer from ${min} to 65535, got ${port}`)
  }
  return port
}

/** @internal */
export { checkPort, addressInfo }

export interface ConnectOptions {
  /** Reject with ETIMEDOUT if not connected within this many milliseconds. @default no limit */
  timeoutMs?: number
}

export interface RecvLineOptions {
  /**
   * The longest line returned: a line longer than this comes in pieces of
   * `maxBytes` (the first without its `\n`), as Python's `readline(size)`.
   * @default 65536
   */
  maxBytes?: number
}

/** What the internal constructor calls pass, so that `new Socket()` from outside throws. */
const ADOPT = Symbol('adopt')

/**
 * A connected TCP socket. Obtained from {@link connect} or handed to a
 * {@link StreamServer} handler.
 */
export class Socket {
  #native: NativeSocket
  /** Its reactor slot: the key of its recv deliveries; with the generation, its name for `net.send`. */
  readonly #slot: number
  readonly #generation: number
  #timeoutMs = -1
  #closed = false
  /** A recv waits (one at a time). */
  #reading = false
  /** The hub record of the waiting recv, while it waits. */
  #waiter: HubRecord | undefined = undefined
  /** What the reactor delivered to the waiting recv, until it takes it. */
  #delivered: Result | undefined = undefined
  /** The frame the waiting (or armed) recv asked for. */
  #frame = FRAME_ANY
  #frameSize = 0
  /**
   * The reactor has a recv of `#frame` armed: set by a recv that waits, and
   * kept after a delivery marked ARMED (the socket is drained), so that the
   * next recv of the same frame waits without calling in.
   */
  #armed = false
  /** How `net.readers` names it while its recv is armed and nobody waits; made once. */
  #weakSelf: WeakRef<Socket> | undefined = undefined
  /** The hub knows the waiting recv's wait (it has a timer, or is a sync greenlet's). */
  #parked = false
  /**
   * Where an interrupt that comes after the recv was woken directly (by the
   * reactor's delivery), before it ran, is left for it to raise. Reused.
   */
  readonly #woken: WokenWait = { interrupted: false, exception: undefined, holder: undefined }
  /** A `sendall` is waiting for room: later ones wait their turn in `#sendLine`. */
  #sendBusy = false
  /** Sendalls waiting for the one in progress, in call order; one handed the turn and interrupted passes it on. */
  readonly #sendLine = new WaitList<true>(() => this.#passTurn())
  /** The wait for room of the sendall in progress (0: none): close() ends it. */
  #drainWait = 0
  /** `shutdown('write')` was called: later sendalls fail with EPIPE. */
  #writeShut = false
  /** The write side shuts once the sendall in progress is done. */
  #shutWhenSent = false
  #local: AddressInfo | null | undefined = undefined
  #remote: AddressInfo | null | undefined = undefined

  private constructor(token: typeof ADOPT, handle: NativeSocket) {
    if (token !== ADOPT) throw new TypeError('Socket cannot be constructed directly: use connect(), or the socket a StreamServer handler receives')
    this.#native = handle
    this.#slot = handle.slot
    this.#generation = handle.generation
  }

  /** @internal */
  static _adopt(handle: NativeSocket): Socket {
    return new Socket(ADOPT, handle)
  }

  /** `close()` has been called. */
  get closed(): boolean {
    return this.#closed
  }

  get localAddress(): AddressInfo | null {
    if (this.#local === undefined) this.#local = addressInfo(this.#native.localAddress())
    return this.#local
  }

  get remoteAddress(): AddressInfo | null {
    if (this.#remote === undefined) this.#remote = addressInfo(this.#native.remoteAddress())
    return this.#remote
  }

  /** The timeout of each recv and sendall, in milliseconds; `null` for none. */
  get timeoutMs(): number | null {
    return this.#timeoutMs < 0 ? null : this.#timeoutMs
  }

  /** Sets the timeout of each later recv and sendall (`null`/`undefined`: none), like gevent's `settimeout`. */
  setTimeout(ms: number | null | undefined): void {
    this.#timeoutMs = checkMs('ms', ms, true)
  }

  /** Bytes that `sendall` has queued on the socket and the kernel has not taken yet (at most 64 KiB). */
  get queuedBytes(): number {
    return this.#closed ? 0 : this.#native.queued()
  }

  #check(syscall: string): void {
    if (this.#closed) throw socketError(syscall, EBADF)
  }

  /**
   * Resolves with up to `maxBytes` bytes (at least 1), as soon as any are
   * available; with an empty Buffer at EOF. One recv at a time per socket.
   */
  recv(maxBytes: number = DEFAULT_RECV): Promise<Buffer> {
    // The hot path of every server: one native call, one hub wait if nothing is there.
    try {
      const now = this._recvNow(FRAME_ANY, checkByteCount('maxBytes', maxBytes, 1))
      return now !== undefined ? Promise.resolve(now) : this._recvWait()
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Resolves with exactly `n` bytes; rejects with {@link IncompleteReadError}
   * if the stream ends first. If it fails otherwise (timeout, kill), the
   * bytes that had arrived are returned by the next recv.
   */
  recvExactly(n: number): Promise<Buffer> {
    try {
      const now = this._recvNow(FRAME_EXACTLY, checkByteCount('n', n, 0))
      return now !== undefined ? Promise.resolve(now) : this._recvWait()
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Resolves with the bytes through the next `\n` (included), as gevent
   * code reads lines through `sock.makefile().readline()`; at EOF with what
   * is left (no `\n`), then an empty Buffer. A line longer than
   * `options.maxBytes` comes in pieces of that size.
   */
  recvLine(options?: RecvLineOptions): Promise<Buffer> {
    try {
      const now = this._recvNow(FRAME_LINE, lineLimit(options))
      return now !== undefined ? Promise.resolve(now) : this._recvWait()
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * @internal A recv's checks, and its frame if it need not wait (complete
   * already, or the end); `undefined` if it must wait: `_recvWait()` (or
   * the sync mode's `_recvBlocking`) then waits for it. Throws what the
   * recv rejects with.
   */
  _recvNow(frame: number, size: number): Buffer | undefined {
    this.#check('recv')
    if (this.#reading) throw Object.assign(new Error('another recv is already waiting on this socket'), { code: 'EALREADY' })
    if (this.#armed) {
      // Armed already for this frame: its bytes come with a poll.
      if (frame === this.#frame && size === this.#frameSize) {
        net.readers[this.#slot] = this
        return undefined
      }
      this.#disarm()
    }
    const now = this.#native.recv(frame, size)
    if (typeof now !== 'number') return frame === FRAME_EXACTLY && now.length < size ? this.#incomplete(now, size) : now
    if (now !== WAITING) throw socketError('recv', now)
    this.#frame = frame
    this.#frameSize = size
    this.#armed = true
    net.readers[this.#slot] = this
    return undefined
  }

  #disarm(): void {
    this.#armed = false
    this.#unregister()
    if (!this.#closed) this.#native.cancelRecv()
  }

  /** Its slot no longer names it in `net.readers` (unless another socket has the slot now). */
  #unregister(): void {
    const reader = net.readers[this.#slot]
    if (reader === this || (reader !== undefined && reader === this.#weakSelf)) net.readers[this.#slot] = undefined
  }

  /**
   * @internal The wait of a recv that `_recvNow` armed: the calling
   * greenlet's own wait (`suspendWith`), woken directly by the reactor's
   * delivery.
   */
  _recvWait(): Promise<Buffer> {
    this.#reading = true
    net.hold()
    const woken = this.#woken
    woken.interrupted = false
    woken.exception = undefined
    woken.holder = undefined
    return suspendWith(this, undefined).then(this.#recvWoken, this.#recvKilled)
  }

  /** @internal Issues the async recv's wait for `waiter` (`suspendWith` calls it). */
  _suspendedAs(_: undefined, waiter: HubRecord): void {
    this.#waiter = waiter
    // Without a timer the hub need not know the wait: a kill or Timeout
    // reaches a Promise-based wait directly, and so does the delivery.
    this.#parked = this.#timeoutMs >= 0 || !hub.mayWaitUnparked(waiter)
    if (this.#parked) hub.park(waiter, this.#timeoutMs)
  }

  /**
   * @internal The wait of a recv that `_recvNow` armed, made by blocking
   * `waiter`, the current sync greenlet: the same wait, without Promises
   * (under a fresh id, as the async mode's: an interrupt that comes while
   * its wait is already ending still reaches it).
   */
  _recvBlocking(waiter: { _waitFresh(issue: (waiter: HubRecord) => void, expectLong: boolean): number }): Buffer {
    this.#reading = true
    net.hold()
    let outcome: number
    try {
      outcome = waiter._waitFresh(this.#issueRecv, true)
    } catch (err) {
      return this.#recvKilled(err)
    }
    return this.#recvWoken(outcome)
  }

  /** Issues the sync recv's wait (a fresh record of the blocked greenlet). */
  readonly #issueRecv = (waiter: HubRecord): void => {
    this.#waiter = waiter
    this.#parked = true
    hub.park(waiter, this.#timeoutMs)
  }

  /**
   * @internal The reactor completed the armed recv: bytes, or a status;
   * `armed`: its recv stays armed.
   */
  _delivered(result: Result, armed: boolean): void {
    this.#armed = armed
    const waiter = this.#waiter
    if (waiter === undefined || this.#delivered !== undefined) {
      // Nobody waits (an armed recv got bytes between two recvs), or the
      // waiter has not taken its delivery yet: they go back, next in line,
      // and the recv is disarmed.
      this.#giveBack(result)
      return
    }
    this.#delivered = result
    this.#wake(waiter)
  }

  /**
   * Ends the waiting recv's wait, which has its delivery: at once where the
   * wait allows it (a Promise-based wait, whose greenlet then runs in this
   * turn's microtasks), else through the hub's next turn.
   */
  #wake(waiter: HubRecord): void {
    if (!hub.wakeHanded(waiter, this.#parked, this.#woken)) hub.unpark(waiter)
  }

  /** @internal The bytes of a delivery too large for the poll's buffer. */
  _takeBytes(len: number): Buffer {
    return this.#native.takeBytes(len)
  }

  readonly #recvWoken = (outcome: number): Buffer => {
    const result = this.#endRecv()
    const woken = this.#woken
    if (woken.interrupted) {
      // Killed after the delivery woke it, before it ran: the bytes go back.
      if (result !== undefined) this.#giveBack(result)
      else this.#disarm()
      throw woken.exception
    }
    // Delivered (even if its timer fired in the same turn: the bytes win).
    if (result !== undefined) return this.#settle(result)
    if (this.#closed) throw socketError('recv', EBADF)
    this.#disarm()
    if (outcome !== Outcome.TIMER) throw new Error('greenthread: a recv was woken without its bytes')
    throw socketError('recv', ETIMEDOUT)
  }

  readonly #recvKilled = (err: unknown): never => {
    // Withdraw the recv; bytes it had been handed go to the next one.
    const result = this.#endRecv()
    if (result !== undefined) this.#giveBack(result)
    else this.#disarm()
    throw err
  }

  /** The recv's wait is over: what it was delivered, if anything. */
  #endRecv(): Result | undefined {
    this.#reading = false
    this.#waiter = undefined
    const holder = this.#woken.holder
    if (holder !== undefined && holder._woken === this.#woken) holder._woken = undefined
    if (net.readers[this.#slot] === this) {
      net.readers[this.#slot] = this.#armed ? (this.#weakSelf ??= new WeakRef(this)) : undefined
    }
    net.release()
    const result = this.#delivered
    this.#delivered = undefined
    return result
  }

  /** Puts back bytes (or a status) delivered but not taken, and disarms. */
  #giveBack(result: Result): void {
    this.#armed = false
    this.#unregister()
    if (this.#closed) return
    if (typeof result === 'number') this.#native.giveBack(EMPTY, result)
    else this.#native.giveBack(result, 0)
  }

  #settle(result: Result): Buffer {
    if (typeof result === 'number') throw socketError('recv', result)
    if (this.#frame === FRAME_EXACTLY && result.length < this.#frameSize) return this.#incomplete(result, this.#frameSize)
    return result
  }

  #incomplete(partial: Buffer, expected: number): never {
    throw new IncompleteReadError(partial, expected)
  }

  /**
   * Sends all of `data` (a string as UTF-8): writes what the kernel takes,
   * queues what fits in the socket's 64 KiB queue, and resolves once every
   * byte is written or queued; otherwise waits for room (a peer that stops
   * reading makes it wait). Sends are made in call order: one called while
   * another waits for room waits its turn, as a greenlet wait (a kill or the
   * socket's timeout ends it, nothing of it sent). Rejects with the error of
   * an earlier queued write that failed (EPIPE, ECONNRESET...), ETIMEDOUT if
   * no room comes within the socket's timeout, EBADF if the socket is
   * closed meanwhile. A kill or Timeout while it waits for room leaves the
   * bytes sent so far sent, and the rest unsent.
   */
  sendall(data: Buffer | Uint8Array | string): Promise<void> {
    try {
      const bytes = toBytes(data)
      this.#checkSend()
      return this.#sendBusy ? this.#sendInTurn(bytes) : this.#send(bytes)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  #checkSend(): void {
    this.#check('send')
    if (this.#writeShut) throw socketError('send', EPIPE)
  }

  /** Sends what the socket takes now; the rest after waiting for room, holding the turn. */
  #send(bytes: Uint8Array): Promise<void> {
    const taken = net.send(this.#slot, this.#generation, bytes)
    if (taken < 0) throw socketError('send', taken)
    if (taken === bytes.length) return SENT
    this.#sendBusy = true
    return this.#sendRest(bytes, taken)
  }

  /**
   * Waits for the sendalls ahead of it, as a greenlet wait (a kill or the
   * socket's timeout ends it with nothing of it sent), then sends.
   */
  async #sendInTurn(bytes: Uint8Array): Promise<void> {
    if ((await drive(this.#waitTurn())) === TIMED_OUT_TURN) throw socketError('send', ETIMEDOUT)
    // The turn is this call's now (#sendBusy stayed set for it). A shutdown('write') since it was called waits for it.
    let sending: Promise<void>
    try {
      this.#check('send')
      sending = this.#send(bytes)
    } catch (err) {
      this.#passTurn()
      throw err
    }
    // All taken at once; otherwise #sendRest passes the turn on when done.
    if (sending === SENT) this.#passTurn()
    else await sending
  }

  *#waitTurn(): Blocking<true | typeof TIMED_OUT_TURN> {
    return yield this.#sendLine.request(this.#timeoutMs)
  }

  /** The sendall in progress is done: the next one in line goes on, or the socket is free to send. */
  #passTurn(): void {
    if (this.#sendLine.handOff(true) !== undefined) return
    this.#sendBusy = false
    if (this.#shutWhenSent && !this.#closed) {
      this.#shutWhenSent = false
      void this.#native.shutdown(1)
    }
  }

  /** Waits for room and sends the rest, then passes the turn on. */
  async #sendRest(bytes: Uint8Array, from: number): Promise<void> {
    const handle = this.#native
    try {
      while (from < bytes.length) {
        const result = await nativeWait(
          (id) => {
            this.#drainWait = id
            return handle.drainWait(id, SEND_LOW_WATER)
          },
          this.#timeoutMs,
          (id) => handle.cancelDrain(id),
          true,
        )
        this.#drainWait = 0
        if (result === TIMED_OUT) throw socketError('send', ETIMEDOUT)
        if (typeof result === 'number' && result < 0) throw socketError('send', result)
        // Closed meanwhile (its wait ended by close()).
        this.#check('send')
        const taken = net.send(this.#slot, this.#generation, bytes.subarray(from))
        if (taken < 0) throw socketError('send', taken)
        from += taken
      }
    } finally {
      this.#drainWait = 0
      this.#passTurn()
    }
  }

  /**
   * Shuts down reading (`'read'`/0), writing (`'write'`/1) or both
   * (`'both'`/2). Writing ends once the sendall in progress (and those
   * waiting for it, called before) are done; a sendall called after fails
   * with EPIPE.
   */
  shutdown(how: 'read' | 'write' | 'both' | 0 | 1 | 2): void {
    const mode = checkShutdown(how)
    this.#check('shutdown')
    if (mode !== 0) this.#writeShut = true
    if (mode !== 0 && this.#sendBusy) {
      if (mode === 2) this.#shutdownNow(0)
      this.#shutWhenSent = true
      return
    }
    this.#shutdownNow(mode)
  }

  #shutdownNow(mode: number): void {
    const status = this.#native.shutdown(mode)
    if (status < 0) throw socketError('shutdown', status)
  }

  /**
   * Closes the socket: a recv waiting in another greenlet rejects with
   * EBADF, and so do a sendall waiting for room (what it had queued is
   * sent, the rest not: gevent's "File descriptor was closed in another
   * greenlet"), those waiting for it, and later calls. Bytes queued are
   * written out first: for 10 s at most if the peer does not read, then
   * the connection is closed with the rest unsent. Idempotent.
   */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    // Still known once closed.
    void this.localAddress
    void this.remoteAddress
    const waiter = this.#waiter
    if (waiter !== undefined && this.#delivered === undefined) {
      this.#delivered = EBADF
      this.#wake(waiter)
    }
    this.#armed = false
    this.#unregister()
    if (this.#drainWait !== 0) net.complete(this.#drainWait, EBADF)
    this.#closeNative()
  }

  #closeNative(): void {
    if (this.#native.close() > 0) net.holdUntilClosed(this.#native)
  }

  /** The received chunks, until EOF. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer, void, undefined> {
    for (;;) {
      const chunk = await this.recv()
      if (chunk.length === 0) return
      yield chunk
    }
  }

  toString(): string {
    const r = this.remoteAddress
    return `<Socket ${r ? `${r.address}:${r.port}` : 'unconnected'}${this.#closed ? ' closed' : ''}>`
  }
}

/** @internal `recvLine`'s limit, checked. */
export function lineLimit(options: RecvLineOptions | undefined): number {
  const o = checkOptions('options', options)
  return o.maxBytes === undefined ? DEFAULT_LINE : checkByteCount('options.maxBytes', o.maxBytes, 1)
}

/** @internal The byte-count checks of the recv calls. */
export { checkByteCount, DEFAULT_RECV }

/**
 * Connects to `host:port` (an IP address or a name, resolved with the
 * system resolver). Rejects with ECONNREFUSED, ETIMEDOUT (after
 * `options.timeoutMs`), ENOTFOUND...
 */
export async function connect(host: string, port: number, options?: ConnectOptions): Promise<Socket> {
  if (typeof host !== 'string' || host === '') throw invalidType('host', 'a non-empty string', host)
  checkPort('port', port, 1)
  const o = checkOptions('options', options)
  const timeoutMs = checkMs('options.timeoutMs', o.timeoutMs, true)
  const ip = host === 'localhost' ? '127.0.0.1' : isIP(host) !== 0 ? host : await resolve(host)
  const peer = { address: ip, port }
  const client = net.native()
  let handle: NativeSocket | undefined
  const result = await nativeWait(
    (id) => {
      const made = client.connect(ip, port, id)
      if (typeof made === 'number') return made
      handle = made
      return 0
    },
    timeoutMs,
    () => {
      // Closing withdraws the connect; its result is dropped.
      handle?.close()
      return true
    },
  )
  if (result === TIMED_OUT) throw socketError('connect', ETIMEDOUT, peer)
  if (typeof result === 'number' && result < 0) {
    handle?.close()
    throw socketError('connect', result, peer)
  }
  return Socket._adopt(handle as NativeSocket)
}

/** The address of a host name (the resolver is loaded on first use: most connects name an address). */
async function resolve(host: string): Promise<string> {
  const { lookup } = require('node:dns/promises') as typeof import('node:dns/promises')
  return (await lookup(host)).address
}
