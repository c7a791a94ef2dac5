/**
 * gevent's `StreamServer`: accepts TCP connections and runs
 * `handler(socket, address)` for each in its own greenlet.
 *
 * Accepting runs on this thread, in the sockets' reactor (see socket.ts):
 * connections reach JS in batches and each handler greenlet talks to its
 * {@link Socket}. When the handler
 * returns or fails, its socket is closed; a failing handler (a peer that
 * resets mid-message...) ends only its own greenlet, whose failure is
 * reported like any unobserved greenlet failure, and the server keeps
 * serving.
 *
 * The built-in handlers `'echo'` and `'upper'` serve each connection entirely
 * in Rust coroutines on every runtime worker (the seeds' `talk(conn)`: recv
 * up to 1024 bytes, send them back as they are or upper-cased, close at
 * EOF): per message no JS runs at all.
 *
 * A started server keeps the process alive until it is stopped, like Node's
 * `net.Server`.
 */
import { isIP } from 'node:net'

import type { NativeListener, NativeServer } from 'native-binding'
import { checkFunction, checkMs, checkOptions, invalidType } from './errors'
import { type Greenlet, getcurrent, joinall, killall, spawn } from './greenlet'
import { type HubRecord, currentStorage, hub, suspendFresh } from './hub'
import { type AddressInfo, Socket, TIMED_OUT, addressInfo, checkPort, nativeWait, net, socketError } from './socket'
import { Timeout } from './timeout'

export interface StreamServerOptions {
  /** An IP address, or `'localhost'`. @default '127.0.0.1' */
  host?: string
  /** The port to listen on; 0 picks a free one (see `address`). */
  port: number
  /** Connections the kernel queues before they are accepted. @default 511 */
  backlog?: number
}

export interface StopOptions {
  /**
   * How long handlers may run on after the listener is closed before they
   * are killed; `null` waits for them however long they take. @default 1000
   */
  timeoutMs?: number | null
}

/** Runs for each connection, in its own greenlet. The socket is closed when it returns. */
export type ConnectionHandler = (socket: Socket, address: AddressInfo) => unknown

/**
 * @internal How a server runs its function handler: each connection in an
 * async greenlet (the default), or in a sync one (greenthread/sync).
 */
export interface HandlerMode<G extends { readonly dead: boolean }> {
  /** The greenlet running the calling code (stop() does not wait for it), or `null`. */
  current(): G | null
  /** Starts a greenlet serving `sock` with `handler`; it closes the socket and leaves `handlers` as it ends. */
  serve(sock: Socket, handler: (...args: any[]) => unknown, handlers: Set<G>): G
  /** Waits up to `timeoutMs` (-1: no limit) for `running` to finish, then kills those left and waits as long again for them. */
  stopHandlers(running: G[], timeoutMs: number): Promise<void>
}

const asyncMode: HandlerMode<Greenlet> = {
  current: getcurrent,
  serve: (sock, handler, handlers) => spawn(serve, sock, handler, handlers),
  async stopHandlers(running, timeoutMs) {
    const limit = timeoutMs < 0 ? undefined : timeoutMs
    await joinall(running, { timeoutMs: limit })
    // A handler inside a foreign await sees the kill only once that settles
    // (its signal aborts at once): the wait for it is bounded too.
    // Those still alive then are left to die when their await lets go.
    await killall(
      running.filter((g) => !g.dead),
      { timeoutMs: limit },
    ).catch((err: unknown) => {
      if (!(err instanceof Timeout)) throw err
    })
  },
}

/** The native servers listening now: see `start()`. */
const listening = new Set<NativeServer | NativeListener>()

/** serveForever's options, checked before anything starts. */
export function checkServeForever(stop: unknown): StopOptions {
  const o = checkOptions('stop', stop)
  if (o.timeoutMs !== undefined && o.timeoutMs !== null) checkMs('stop.timeoutMs', o.timeoutMs, false)
  return o as StopOptions
}

const DEFAULT_HOST = '127.0.0.1'
const DEFAULT_BACKLOG = 511
const DEFAULT_STOP_MS = 1000
const BUILTIN = new Set(['echo', 'upper'])

export class StreamServer {
  readonly #host: string
  readonly #port: number
  readonly #backlog: number
  readonly #handler: ConnectionHandler | 'echo' | 'upper'
  #native: NativeServer | NativeListener | undefined = undefined
  /** The native server being stopped, whose built-in connections may still run. */
  #stopping: NativeServer | NativeListener | undefined = undefined
  #address: AddressInfo | undefined = undefined
  readonly #handlers = new Set<Greenlet>()
  #mode: HandlerMode<any> = asyncMode
  /** Hub waits of `serveForever()` callers, ended when the server stops. */
  readonly #foreverWaits = new Set<HubRecord>()

  /**
   * @param listener where to listen
   * @param handler a function run per connection, or a built-in native
   *   handler: `'echo'` or `'upper'`
   */
  constructor(listener: StreamServerOptions, handler: ConnectionHandler | 'echo' | 'upper') {
    if (listener === null || typeof listener !== 'object') throw invalidType('listener', 'an options object', listener)
    const host = listener.host ?? DEFAULT_HOST
    if (typeof host !== 'string') throw invalidType('listener.host', 'an IP address string', host)
    this.#host = host
    this.#port = checkPort('listener.port', listener.port, 0)
    const backlog = listener.backlog ?? DEFAULT_BACKLOG
    if (typeof backlog !== 'number') throw invalidType('listener.backlog', 'a positive integer', backlog)
    if (!Number.isInteger(backlog) || backlog < 1) {
      throw new RangeError(`listener.backlog must be a positive integer, got ${backlog}`)
    }
    // The kernel caps it (somaxconn) anyway; past 2^31 - 1 it would wrap around on its way to listen().
    this.#backlog = Math.min(backlog, 2 ** 31 - 1)
    if (typeof handler === 'string') {
      if (!BUILTIN.has(handler)) throw new RangeError(`handler must be a function, 'echo' or 'upper', got '${handler}'`)
    } else {
      checkFunction('handler', handler)
    }
    this.#handler = handler
  }

  /** @internal A server whose function handler runs in the greenlets of `mode`. */
  static _withMode<G extends { readonly dead: boolean }>(
    listener: StreamServerOptions,
    handler: ConnectionHandler | 'echo' | 'upper',
    mode: HandlerMode<G>,
  ): StreamServer {
    const server = new StreamServer(listener, handler)
    server.#mode = mode
    return server
  }

  /** Listening: between `start()` and `stop()`. */
  get started(): boolean {
    return this.#native !== undefined
  }

  /** Not listening (before `start()` and after `stop()`), as in gevent. */
  get closed(): boolean {
    return this.#native === undefined
  }

  /** The address listened on (the real port once started, if port 0 was asked). */
  get address(): AddressInfo {
    return this.#address ?? { address: this.#host, family: this.#host.includes(':') ? 'IPv6' : 'IPv4', port: this.#port }
  }

  /** Handler greenlets still running. */
  get handlers(): ReadonlySet<Greenlet> {
    return this.#handlers
  }

  /**
   * Binds and starts accepting. Throws EADDRINUSE, EACCES... as Errors with
   * `code`; throws if already started.
   */
  start(): void {
    if (this.#native !== undefined) throw new Error('the server has already started')
    const handler = this.#handler
    const client = net.native()
    let made: NativeServer | NativeListener | number
    try {
      made =
        typeof handler === 'string'
          ? client.serve(this.#host, this.#port, this.#backlog, handler)
          : client.listen(this.#host, this.#port, this.#backlog)
    } catch (err) {
      // The runtime rejects hosts that are not IP addresses.
      if (isIP(this.#host) === 0 && this.#host !== 'localhost') {
        throw Object.assign(new TypeError(`listener.host must be an IP address or 'localhost', got '${this.#host}'`), { cause: err })
      }
      // napi-rs makes its classes on the main thread only; a sync greenlet runs on a thread of its own.
      const message = String((err as Error)?.message)
      if (/constructor of class/.test(message)) {
        throw new Error("StreamServer.start() cannot run in a sync greenlet: use greenthread/sync's StreamServer there", { cause: err })
      }
      throw new Error(`StreamServer.start() could not create its listener: ${message}`, { cause: err })
    }
    if (typeof made === 'number') throw socketError('listen', made, { address: this.#host, port: this.#port })
    this.#native = made
    // Listening until stopped, referenced or not (as net.Server): nothing of
    // a built-in handler's server holds it otherwise, and its collection
    // would close the listener while `net.hold()` keeps the process waiting.
    listening.add(made)
    this.#address = addressInfo(made.address()) ?? undefined
    net.hold()
    if (typeof handler === 'function') {
      // Outside any greenlet's context: killing the greenlet that started the
      // server must not stop accepting, and handlers have no parent, as in gevent.
      currentStorage.exit(() => void this.#accept(made as NativeListener, handler))
    }
  }

  async #accept(listener: NativeListener, handler: ConnectionHandler): Promise<void> {
    for (;;) {
      for (const handle of listener.takeAccepted()) {
        const g = this.#mode.serve(Socket._adopt(handle), handler, this.#handlers)
        this.#handlers.add(g)
      }
      const result = await nativeWait(
        (id) => listener.acceptWait(id),
        -1,
        () => listener.cancelAccept(),
        true,
      )
      if (result !== 0) return // EBADF: closed
    }
  }

  /**
   * Starts the server if needed and waits until it is stopped. If the
   * waiting greenlet is killed, the server is stopped.
   */
  async serveForever(stop?: StopOptions): Promise<void> {
    const o = checkServeForever(stop)
    if (this.#native === undefined) this.start()
    let forever: HubRecord | undefined
    try {
      await suspendFresh((waiter) => {
        forever = waiter
        this.#foreverWaits.add(waiter)
        hub.park(waiter, -1)
      })
    } catch (err) {
      if (forever !== undefined) this.#foreverWaits.delete(forever)
      // A kill raised here may wait for the greenlet's next wait as well (this
      // call was raced against others): not the waits of stopping. (A sync
      // greenlet blocks in this call alone.)
      const current = this.#mode === asyncMode ? getcurrent() : null
      const raiseLater = current !== null && current._withdrawRaise(err)
      try {
        await this.stop(o as StopOptions)
      } finally {
        if (raiseLater) current._raise(err)
      }
      throw err
    }
  }

  /**
   * Closes the listener (freeing the port), lets running handlers finish for
   * `options.timeoutMs`, then kills those that remain and waits for them to
   * die. Resolves at once if not started.
   */
  async stop(options?: StopOptions): Promise<void> {
    const o = checkOptions('options', options)
    const timeoutMs = o.timeoutMs === undefined ? DEFAULT_STOP_MS : checkMs('options.timeoutMs', o.timeoutMs, true)
    const server = this.#native
    if (server === undefined) return
    const current = this.#mode.current()
    this.#native = undefined
    this.#stopping = server
    listening.delete(server)
    try {
      if (typeof this.#handler === 'string') {
        // Abandoned if this greenlet is killed meanwhile: the listener closes anyway.
        await nativeWait((id) => ((server as NativeServer).close(id), 0), -1, () => true)
      } else {
        // Closed at once (the port is free); the accept loop ends.
        ;(server as NativeListener).close()
        net.pollNow()
      }
    } finally {
      net.release()
    }
    try {
      if (typeof this.#handler === 'string') await this.#stopBuiltin(server as NativeServer, timeoutMs)
      else await this.#mode.stopHandlers([...this.#handlers].filter((g) => g !== current), timeoutMs)
    } finally {
      this.#stopping = undefined
    }
    for (const waiter of this.#foreverWaits) hub.unpark(waiter)
    this.#foreverWaits.clear()
  }

  async #stopBuiltin(server: NativeServer, timeoutMs: number): Promise<void> {
    const idle = (ms: number) =>
      nativeWait(
        (id) => (server.idleWait(id), 0),
        ms,
        (id) => server.cancelIdle(id),
      )
    if ((await idle(timeoutMs)) !== TIMED_OUT) return
    server.killConnections()
    await idle(-1)
  }

  /** Connections being served by the built-in handler. */
  get liveConnections(): number {
    if (typeof this.#handler !== 'string') return 0
    return ((this.#native ?? this.#stopping) as NativeServer | undefined)?.liveConnections() ?? 0
  }

  toString(): string {
    const a = this.address
    return `<StreamServer ${a.address}:${a.port} ${this.closed ? 'closed' : 'listening'}>`
  }
}

async function serve(sock: Socket, handler: ConnectionHandler, handlers: Set<Greenlet>): Promise<void> {
  try {
    await handler(sock, sock.remoteAddress as AddressInfo)
  } finally {
    sock.close()
    handlers.delete(getcurrent() as Greenlet)
  }
}
