/**
 * Cooperative TCP sockets, gevent style: `await sock.recv(1024)` suspends
 * only the calling greenlet, while the socket's I/O runs on the Rust runtime
 * (one `may` coroutine per socket on the epoll reactor). Node's `net` is not
 * involved.
 *
 * Semantics:
 * - `recv(n)` resolves with 1 to `n` bytes as soon as any are available, and
 *   with an empty Buffer at EOF. Bytes arriving after a recv timed out or
 *   was killed are kept for the next recv.
 * - `sendall(data)` writes what the kernel takes at once and queues a copy
 *   of the rest on the socket, to be written in order by the runtime, and
 *   resolves at once while at most 64 KiB are queued (otherwise once the queue has drained to that): the queue works
 *   like a larger kernel send buffer. A write that fails later makes the
 *   next `sendall` reject with its error; `close()` still writes out what is
 *   queued before closing, and keeps the process alive until it has.
 * - Waits are hub waits: inside a greenlet, kill and Timeout interrupt them
 *   at once; with `setTimeout(ms)` each recv/sendall rejects with ETIMEDOUT.
 * - Failures are Errors with Node's fields: `code` (ECONNREFUSED,
 *   ECONNRESET, ETIMEDOUT, EBADF...), `errno`, `syscall`.
 * - A socket with a pending operation keeps the process alive.
 *
 * Crossing into Rust is batched: completions are copied out of the hub's
 * inbox with one call per hub turn. `sendall` writes at once on this thread
 * when the socket has nothing queued (non-blocking, like Node's first try at
 * a write); the runtime only finishes writes that meet a full kernel buffer.
 */
import { Buffer } from 'node:buffer'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { constants } from 'node:os'
import { getSystemErrorName } from 'node:util'
import { isUint8Array } from 'node:util/types'

import type { NativeNet, NativeSocket } from 'native-binding'
import { checkMs, checkOptions, invalidType } from './errors'
import { type HubRecord, Outcome, currentStorage, hub, suspendFresh } from './hub'
import { native } from './native'
import { KEEP_ALIVE_MS } from './_keep-alive'

const protocol = native.netProtocol()
const ENTRY_WIDTH = protocol.ENTRY_WIDTH
const MAX_DELIVERY = protocol.MAX_DELIVERY
const NOTHING_YET = protocol.NOTHING_YET
const ENTRIES_PER_DRAIN = 4096
/** Room for several full deliveries per drain. */
const DRAIN_BYTES = 4 * MAX_DELIVERY
const DEFAULT_RECV = 64 * 1024
/** `sendall` waits while more than this many bytes are queued on the socket. */
const SEND_HIGH_WATER = 64 * 1024
/** How long a closed socket's unwritten queue keeps the process alive. */
const CLOSE_LINGER_MS = 10_000
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
 * @internal The socket side of this thread's hub: completed results by wait
 * id, and the process keep-alive.
 */
class NetClient {
  #native: NativeNet | undefined
  readonly #results = new Map<number, Result>()
  /** Waits whose completion is still to be taken; completions of others are dropped. */
  readonly #expected = new Set<number>()
  readonly #meta = new Float64Array(ENTRIES_PER_DRAIN * ENTRY_WIDTH)
  readonly #bytes = Buffer.allocUnsafeSlow(DRAIN_BYTES)
  readonly #submissions = new Map<number, Submission>()
  /** Submissions still to run. */
  #open: Submission[] = []
  #holds = 0
  #keepAlive: NodeJS.Timeout | undefined

  native(): NativeNet {
    return (this.#native ??= new native.NativeNet(hub.native()))
  }

  expect(id: number): void {
    this.#expected.add(id)
  }

  /** The completion of `id`, copying out the inbox if it is not here yet; `undefined` if it has not completed. */
  poll(id: number): Result | undefined {
    let result = this.#results.get(id)
    while (result === undefined && this.#drain() > 0) result = this.#results.get(id)
    if (result !== undefined) this.forget(id)
    return result
  }

  /** The completion of a wait the hub has ended with WAKE: it is in the inbox or here. */
  take(id: number): Result {
    const result = this.poll(id)
    if (result === undefined) throw new Error(`greenthread: the completion of socket wait ${id} is missing`)
    return result
  }

  forget(id: number): void {
    this.#results.delete(id)
    this.#expected.delete(id)
  }

  /** One napi call copies out every completed result that fits. */
  #drain(): number {
    const meta = this.#meta
    const bytes = this.#bytes
    const count = this.native().drain(meta, bytes)
    for (let i = 0, at = 0; i < count; i++, at += ENTRY_WIDTH) {
      const id = meta[at]
      if (!this.#expected.has(id)) continue
      const len = meta[at + 3]
      if (len === 0) {
        this.#results.set(id, meta[at + 1])
      } else {
        const data = Buffer.allocUnsafe(len)
        bytes.copy(data, 0, meta[at + 2], meta[at + 2] + len)
        this.#results.set(id, data)
      }
    }
    return count
  }

  /**
   * Registers the native operation `op` of the wait `id`, whose PARK the
   * caller has just issued, in a microtask. `op` returns 0, or -errno if it
   * could not register (the wait then ends with that status).
   *
   * It may complete at once, from a runtime thread: the hub applies the
   * commands of a turn (this PARK) before the unparks of runtime threads,
   * so the completion still finds its wait. The microtask runs on the main
   * thread even when a sync greenlet's thread submits, and the runtime can
   * only create native objects (connect's socket) on the main thread.
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

  /** Ends the wait `id` with `status` if its operation could not register (`status < 0`). */
  registered(id: number, status: number): void {
    if (status < 0) {
      this.#results.set(id, status)
      hub.unparkId(id)
    }
  }

  /**
   * Keeps the process alive until a closed socket has written out its
   * queue, for `CLOSE_LINGER_MS` at most: a peer that stops reading must
   * not keep it alive forever (the runtime goes on writing meanwhile).
   */
  holdUntilClosed(handle: NativeSocket): void {
    // Outside any greenlet: killing the one that closed must not end the wait.
    currentStorage.exit(() => {
      void nativeWait((id) => (handle.closeWait(id), 0), CLOSE_LINGER_MS, () => true)
    })
  }

  /** Keeps the process alive while anything holds it (pending waits, listening servers). */
  hold(): void {
    if (this.#holds++ === 0) (this.#keepAlive ??= setInterval(noop, KEEP_ALIVE_MS)).ref()
  }

  release(): void {
    if (--this.#holds === 0) this.#keepAlive?.unref()
  }
}

/** @internal */
export const net = new NetClient()

/** @internal What {@link nativeWait} resolves with when its timeout expired first. */
export const TIMED_OUT = Symbol('timed out')

/**
 * @internal Suspends until the native operation `op` (registered by
 * `net.submit`) completes, and resolves with its result; or with
 * {@link TIMED_OUT} once `timeoutMs` has passed (-1: never), unless it
 * completed meanwhile. On timeout or kill the operation is withdrawn with
 * `cancel(id)`, which returns `false` only if the operation has completed
 * (its result is then in the inbox); a killed wait drops such a result and
 * rejects with the kill exception.
 */
export async function nativeWait(
  op: (id: number) => number,
  timeoutMs: number,
  cancel: (id: number) => boolean,
): Promise<Result | typeof TIMED_OUT> {
  let id = 0
  let outcome: number
  net.hold()
  try {
    outcome = await suspendFresh((waiter) => {
      id = waiter.id
      net.expect(id)
      hub.park(waiter, timeoutMs)
      net.submit(id, op)
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

function addressInfo(a: { address: string; family: string; port: number } | null): AddressInfo | null {
  return a === null ? null : { address: a.address, family: a.family as AddressInfo['family'], port: a.port }
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

/**
 * A connected TCP socket. Obtained from {@link connect} or handed to a
 * {@link StreamServer} handler.
 */
/** What the internal constructor calls pass, so that `new Socket()` from outside throws. */
const ADOPT = Symbol('adopt')

export class Socket {
  #native: NativeSocket
  #timeoutMs = -1
  #closed = false
  #reading = false
  /** Bytes (or an end) that came back from an interrupted recv or recvExactly. */
  #unread: Result | undefined = undefined
  #local: AddressInfo | null | undefined = undefined
  #remote: AddressInfo | null | undefined = undefined

  private constructor(token: typeof ADOPT, handle: NativeSocket) {
    if (token !== ADOPT) throw new TypeError('Socket cannot be constructed directly: use connect(), or the socket a StreamServer handler receives')
    this.#native = handle
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

  #check(syscall: string): void {
    if (this.#closed) throw socketError(syscall, EBADF)
  }

  /**
   * Resolves with up to `maxBytes` bytes (at least 1), as soon as any are
   * available; with an empty Buffer at EOF. One recv at a time per socket.
   */
  recv(maxBytes: number = DEFAULT_RECV): Promise<Buffer> {
    // The hot path of every server: one hub wait, no async layers.
    try {
      const now = this._recvNow(maxBytes)
      return now !== undefined ? Promise.resolve(now) : this._recvWait()
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * @internal recv's checks, and its result if it need not wait (bytes kept
   * from an interrupted recv, or already received); `undefined` if it must
   * wait: `_recvWait()` then waits for up to `maxBytes` bytes. Throws what
   * recv rejects with. Shared by the sync mode's blocking recv.
   */
  _recvNow(maxBytes: number): Buffer | undefined {
    const max = Math.min(checkByteCount('maxBytes', maxBytes, 1), MAX_DELIVERY)
    this.#check('recv')
    if (this.#reading) throw Object.assign(new Error('another recv is already waiting on this socket'), { code: 'EALREADY' })
    if (this.#unread !== undefined) return this.#takeUnread(max)
    const now = this.#native.tryRecv(max)
    if (typeof now !== 'number') return now
    if (now !== NOTHING_YET) throw socketError('recv', now)
    this.#recvMax = max
    return undefined
  }

  /** @internal The wait of a recv that `_recvNow` found nothing for. */
  _recvWait(): Promise<Buffer> {
    this.#reading = true
    net.hold()
    return suspendFresh(this.#issueRecv).then(this.#recvWoken, this.#recvKilled)
  }

  /**
   * @internal The wait of a recv that `_recvNow` found nothing for, made by
   * blocking `waiter`, the current sync greenlet: the same wait under a
   * fresh id, without Promises.
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

  /** The wait id and size of the recv waiting for data. */
  #recvId = 0
  #recvMax = 0

  readonly #issueRecv = (waiter: HubRecord): void => {
    const id = waiter.id
    this.#recvId = id
    net.expect(id)
    hub.park(waiter, this.#timeoutMs)
    // Registered at once, not through `net.submit`: no native object is
    // created, so any thread may do it, and the hot path saves a microtask.
    net.registered(id, this.#native.recvWait(id, this.#recvMax))
  }

  readonly #recvWoken = (outcome: number): Buffer => {
    const id = this.#recvId
    this.#reading = false
    net.release()
    if (outcome !== Outcome.TIMER) return this.#settle(net.take(id))
    // Timed out, unless bytes arrived meanwhile: they win.
    const early = net.poll(id)
    if (early !== undefined) return this.#settle(early)
    if (!this.#native.cancelRecv()) return this.#settle(net.take(id))
    net.forget(id)
    throw socketError('recv', ETIMEDOUT)
  }

  readonly #recvKilled = (err: unknown): never => {
    const id = this.#recvId
    this.#reading = false
    net.release()
    // Withdraw the recv; bytes it had already received go to the next one.
    if (this.#native.cancelRecv()) net.forget(id)
    else this.#unread = net.take(id)
    throw err
  }

  #settle(result: Result): Buffer {
    if (typeof result !== 'number') return result
    if (result < 0) throw socketError('recv', result)
    return EMPTY
  }

  #takeUnread(max: number): Buffer {
    const unread = this.#unread as Result
    if (typeof unread === 'number' || unread.length <= max) {
      // An end stays: Rust reports EOF again at the next recv anyway.
      this.#unread = undefined
      return this.#settle(unread)
    }
    this.#unread = unread.subarray(max)
    return unread.subarray(0, max)
  }

  /**
   * Resolves with exactly `n` bytes; rejects with {@link IncompleteReadError}
   * if the stream ends first. If it fails otherwise (timeout, kill), the
   * bytes it had received are returned by the next recv.
   */
  async recvExactly(n: number): Promise<Buffer> {
    const size = checkByteCount('n', n, 0)
    const chunks: Buffer[] = []
    let got = 0
    try {
      while (got < size) {
        const chunk = await this.recv(Math.min(size - got, MAX_DELIVERY))
        if (chunk.length === 0) throw new IncompleteReadError(Buffer.concat(chunks, got), size)
        chunks.push(chunk)
        got += chunk.length
      }
    } catch (err) {
      if (got > 0 && !(err instanceof IncompleteReadError) && !this.#closed) this.#unshift(Buffer.concat(chunks, got))
      throw err
    }
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)
  }

  #unshift(data: Buffer): void {
    const unread = this.#unread
    this.#unread = unread === undefined ? data : typeof unread === 'number' ? data : Buffer.concat([data, unread])
  }

  /**
   * Sends all of `data` (a string as UTF-8): queues it, and resolves once at
   * most 64 KiB are left queued on the socket. Rejects with the error of an
   * earlier queued write that failed (EPIPE, ECONNRESET...), or ETIMEDOUT if
   * the queue does not drain within the socket's timeout.
   */
  sendall(data: Buffer | Uint8Array | string): Promise<void> {
    try {
      const bytes = toBytes(data)
      this.#check('send')
      const queued = this.#native.send(bytes)
      if (queued < 0) throw socketError('send', queued)
      return queued <= SEND_HIGH_WATER ? SENT : this.#drainQueue()
    } catch (err) {
      return Promise.reject(err)
    }
  }

  async #drainQueue(): Promise<void> {
    const handle = this.#native
    const result = await nativeWait(
      (id) => handle.drainWait(id, SEND_HIGH_WATER),
      this.#timeoutMs,
      (id) => handle.cancelDrain(id),
    )
    if (result === TIMED_OUT) throw socketError('send', ETIMEDOUT)
    if (typeof result === 'number' && result < 0) throw socketError('send', result)
  }

  /** Shuts down reading (`'read'`/0), writing (`'write'`/1) or both (`'both'`/2). */
  shutdown(how: 'read' | 'write' | 'both' | 0 | 1 | 2): void {
    const mode = checkShutdown(how)
    this.#check('shutdown')
    const status = this.#native.shutdown(mode)
    if (status < 0) throw socketError('shutdown', status)
  }

  /**
   * Closes the socket: waits of other greenlets on it reject with EBADF;
   * bytes still queued by `sendall` are written first. Idempotent.
   */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#unread = undefined
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
  const ip = host === 'localhost' ? '127.0.0.1' : isIP(host) !== 0 ? host : (await lookup(host)).address
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
