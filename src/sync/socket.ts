/**
 * Blocking TCP sockets for sync greenlets: `sock.recv(1024)` blocks only
 * the calling greenlet. A thin layer over the async sockets (socket.ts), so
 * the semantics (partial recv, EOF as an empty Buffer, framing, the sendall
 * queue, timeouts, errors with `code`) are the async ones: `recv`,
 * `recvExactly` and `recvLine` take their frame from the reactor's batch at
 * once when it is there, else make the async recv's own hub wait, blocking
 * (the greenlet's thread gets the baton back when the frame comes: one
 * hand-off, no Promise); the other calls run the async operation and block
 * until its Promise settles.
 *
 * Kill and Timeout interrupt a blocked call at once, as any sync wait, and
 * are passed on to the async operation's own hub waits, which withdraw it
 * exactly as in async mode: bytes that a recv had received (or that arrive
 * later) are kept for the next recv; the call throws once the operation has
 * let go of the socket, so the next call may follow at once.
 */
import type { Buffer } from 'node:buffer'

import { HubRecord, type TransientWait, type WaitOwner, currentStorage, hub } from '../hub'
import {
  type AddressInfo,
  type ConnectOptions,
  DEFAULT_RECV,
  FRAME_ANY,
  FRAME_EXACTLY,
  FRAME_LINE,
  type RecvLineOptions,
  SENT,
  type Socket as AsyncSocket,
  checkByteCount,
  connect as asyncConnect,
  lineLimit,
} from '../socket'
import { type Greenlet, blockingGreenlet } from './greenlet'

function noop(): void {}

const NONE = Symbol('none')

/**
 * The owner of the hub waits of an async operation run on behalf of a sync
 * greenlet (the async code sees it as its current greenlet): the greenlet's
 * interrupt is passed on to its current waits, or to the next one if it has
 * none (as an async greenlet's interrupt is raised once: a wait made while
 * handling it, such as stopping a server, is not interrupted).
 */
class Delegate extends HubRecord implements WaitOwner {
  readonly dead = false
  /** Always "busy", so that every wait of the operation is a transient one, owned here. */
  _waiting = true
  _sleeping = false
  _resolve: ((outcome: number) => void) | undefined = undefined
  _extraWaits: Set<TransientWait> | undefined = new DelegateWaits(this)
  /** An interrupt for the next wait, if it came between waits. */
  pending: unknown = NONE

  constructor() {
    super(true)
  }

  _resume(): void {}

  /** Its interrupts go to the next wait's start instead (`DelegateWaits`). */
  _takeRaiseForWait(): undefined {
    return undefined
  }

  /** The greenlet raises it once the operation has settled (`windDown`) in any case. */
  _raiseAtNextWait(): void {}

  interrupt(exception: unknown): void {
    let delivered = false
    for (const wait of this._extraWaits ?? []) delivered = interruptWait(wait, exception) || delivered
    if (!delivered) this.pending = exception
  }
}

/** The waits of a {@link Delegate}: the first one that starts after an undelivered interrupt gets it. */
class DelegateWaits extends Set<TransientWait> {
  constructor(private readonly delegate: Delegate) {
    super()
  }

  override add(wait: TransientWait): this {
    super.add(wait)
    // Ended once its PARK has been issued (right after this, in the same call).
    const exception = this.delegate?.pending ?? NONE
    if (exception !== NONE) {
      this.delegate.pending = NONE
      queueMicrotask(() => interruptWait(wait, exception))
    }
    return this
  }
}

function interruptWait(wait: TransientWait, exception: unknown): boolean {
  if (hub.resumables.get(wait.id) !== wait) return false
  hub.interruptTransient(wait, exception)
  return true
}

/**
 * @internal Runs the async operation `start()` for the current sync
 * greenlet and blocks it until the operation settles: returns its value or
 * throws its reason. `what` names the call in the Error thrown outside sync
 * greenlets. A kill or Timeout of the greenlet is raised in the operation's
 * hub waits too; this throws it once the operation has settled (so it has
 * withdrawn from the socket), one or two hub turns later.
 */
export function blockOn<T>(what: string, start: () => Promise<T>): T {
  const g = blockingGreenlet(what)
  const delegate = new Delegate()
  return settle(g, delegate, currentStorage.run(delegate, start))
}

/** Blocks `g` until `op`, started for `delegate`, settles (see {@link blockOn}). */
function settle<T>(g: Greenlet, delegate: Delegate, op: Promise<T>): T {
  let settled = false
  const done = op.then(
    (value) => ((settled = true), value),
    (err: unknown) => {
      settled = true
      throw err
    },
  )
  try {
    return g._await(done)
  } catch (err) {
    if (settled) throw err
    windDown(g, delegate, done, err)
    throw err
  }
}

/** Passes the interrupt `err` on to the operation and blocks until it has settled. */
function windDown(g: Greenlet, delegate: Delegate, done: Promise<unknown>, err: unknown): void {
  delegate.interrupt(err)
  const over = done.then(noop, noop)
  let later: unknown = NONE
  for (;;) {
    try {
      g._await(over)
      break
    } catch (again) {
      later = again // another interrupt meanwhile: raised again at the next wait
    }
  }
  if (later !== NONE) g._raise(later)
}

/** What the internal constructor call passes, so that `new Socket()` from outside throws. */
const WRAP = Symbol('wrap')

/**
 * A connected TCP socket whose calls block the calling sync greenlet.
 * Obtained from {@link connect} or handed to a sync `StreamServer` handler.
 */
export class Socket {
  readonly #socket: AsyncSocket

  private constructor(token: typeof WRAP, socket: AsyncSocket) {
    if (token !== WRAP) throw new TypeError('Socket cannot be constructed directly: use connect(), or the socket a StreamServer handler receives')
    this.#socket = socket
  }

  /** @internal */
  static _wrap(socket: AsyncSocket): Socket {
    return new Socket(WRAP, socket)
  }

  /** `close()` has been called. */
  get closed(): boolean {
    return this.#socket.closed
  }

  get localAddress(): AddressInfo | null {
    return this.#socket.localAddress
  }

  get remoteAddress(): AddressInfo | null {
    return this.#socket.remoteAddress
  }

  /** The timeout of each recv and sendall, in milliseconds; `null` for none. */
  get timeoutMs(): number | null {
    return this.#socket.timeoutMs
  }

  /** Sets the timeout of each later recv and sendall (`null`/`undefined`: none), like gevent's `settimeout`. */
  setTimeout(ms: number | null | undefined): void {
    this.#socket.setTimeout(ms)
  }

  /**
   * Returns up to `maxBytes` bytes (at least 1) as soon as any are
   * available, blocking until then; an empty Buffer at EOF. Throws ETIMEDOUT
   * after the socket's timeout, and the exception of a kill or Timeout (bytes
   * are then kept for the next recv).
   */
  recv(maxBytes: number = DEFAULT_RECV): Buffer {
    return this.#recv('recv()', FRAME_ANY, checkByteCount('maxBytes', maxBytes, 1))
  }

  /**
   * Returns exactly `n` bytes, blocking until they have arrived; throws
   * `IncompleteReadError` if the stream ends first. If interrupted, the
   * bytes it had received are returned by the next recv.
   */
  recvExactly(n: number): Buffer {
    return this.#recv('recvExactly()', FRAME_EXACTLY, checkByteCount('n', n, 0))
  }

  /**
   * Returns the bytes through the next `\n` (included), blocking until it
   * has arrived; at EOF what is left (no `\n`), then an empty Buffer. A line
   * longer than `options.maxBytes` (default 64 KiB) comes in pieces of that
   * size. gevent code reads lines with `sock.makefile().readline()`.
   */
  recvLine(options?: RecvLineOptions): Buffer {
    return this.#recv('recvLine()', FRAME_LINE, lineLimit(options))
  }

  #recv(what: string, frame: number, size: number): Buffer {
    const g = blockingGreenlet(what)
    const socket = this.#socket
    // The hot path of every sync server: the frame at once if it is there,
    // else one hub wait, no Promise.
    const now = socket._recvNow(frame, size)
    return now !== undefined ? now : socket._recvBlocking(g)
  }

  /** Bytes that `sendall` has queued on the socket and the kernel has not taken yet. */
  get queuedBytes(): number {
    return this.#socket.queuedBytes
  }

  /**
   * Sends all of `data` (a string as UTF-8): queues it, and blocks only while
   * more than 64 KiB are queued on the socket (see the async `sendall`).
   */
  sendall(data: Buffer | Uint8Array | string): void {
    const g = blockingGreenlet('sendall()')
    const delegate = new Delegate()
    const sent = currentStorage.run(delegate, () => this.#socket.sendall(data))
    // Queued without waiting: the usual case, no hub turn.
    if (sent !== SENT) settle(g, delegate, sent)
  }

  /** Shuts down reading (`'read'`/0), writing (`'write'`/1) or both (`'both'`/2). */
  shutdown(how: 'read' | 'write' | 'both' | 0 | 1 | 2): void {
    this.#socket.shutdown(how)
  }

  /** Closes the socket (bytes still queued by `sendall` are written first). Idempotent. */
  close(): void {
    this.#socket.close()
  }

  /** The received chunks, until EOF. */
  *[Symbol.iterator](): Generator<Buffer, void, undefined> {
    for (;;) {
      const chunk = this.recv()
      if (chunk.length === 0) return
      yield chunk
    }
  }

  toString(): string {
    return this.#socket.toString()
  }
}

/**
 * Connects to `host:port`, blocking the calling sync greenlet. Throws
 * ECONNREFUSED, ETIMEDOUT (after `options.timeoutMs`), ENOTFOUND...
 */
export function connect(host: string, port: number, options?: ConnectOptions): Socket {
  return Socket._wrap(blockOn('connect()', () => asyncConnect(host, port, options)))
}
