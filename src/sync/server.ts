/**
 * gevent's `StreamServer` for sync greenlets: `handler(socket, address)`
 * runs for each connection in a sync greenlet of its own and blocks in
 * `socket.recv()`/`sendall()` like gevent code. The async server
 * (server.ts) does the accepting and the stopping; only the greenlets that
 * run handlers differ. Each live connection holds an OS thread (see
 * greenthread/sync's limits), so GREENTHREAD_SYNC_MAX_THREADS caps the
 * connections served at once; a connection whose greenlet cannot start is
 * closed, and its greenlet fails with the Error.
 */
import { planJoinAll } from '../lifecycle'
import { hub, suspend } from '../hub'
import {
  type ConnectionHandler as AsyncConnectionHandler,
  type HandlerMode,
  type StopOptions,
  StreamServer as AsyncStreamServer,
  checkServeForever,
  type StreamServerOptions,
} from '../server'
import type { AddressInfo, Socket as AsyncSocket } from '../socket'
import { type Greenlet, getcurrent, spawn } from './greenlet'
import { Socket, blockOn } from './socket'

export type { StopOptions, StreamServerOptions } from '../server'

/** Runs for each connection, in its own sync greenlet. The socket is closed when it returns. */
export type ConnectionHandler = (socket: Socket, address: AddressInfo) => unknown

/** The sync greenlet serving one connection. */
function serve(sock: Socket, handler: ConnectionHandler, handlers: Set<Greenlet>): void {
  try {
    handler(sock, sock.remoteAddress as AddressInfo)
  } finally {
    sock.close()
    handlers.delete(getcurrent() as Greenlet)
  }
}

/** Waits (async, for the server's stop()) until `list` has finished or `ms` (-1: no limit) has passed. */
async function joinFromAsync(list: Greenlet[], ms: number): Promise<void> {
  const { pending, missing } = planJoinAll<Greenlet>(list, { timeoutMs: ms < 0 ? undefined : ms })
  if (missing > 0) await suspend((waiter) => hub.joinWait(waiter, pending, missing, false, ms))
}

const syncMode: HandlerMode<Greenlet> = {
  current: getcurrent,
  serve: (sock: AsyncSocket, handler, handlers) => {
    const g = spawn(serve, Socket._wrap(sock), handler, handlers)
    // Not started (no thread left): serve() never runs, so close here.
    g._rawlink(() => {
      if (!sock.closed) sock.close()
      handlers.delete(g)
    })
    return g
  },
  async stopHandlers(running, timeoutMs) {
    await joinFromAsync(running, timeoutMs)
    const left = running.filter((g) => !g.dead)
    for (const g of left) g.kill(undefined, { block: false })
    await joinFromAsync(left, timeoutMs)
  },
}

/**
 * Accepts TCP connections and runs `handler(socket, address)` for each in
 * its own sync greenlet. `start()` works anywhere; `stop()` and
 * `serveForever()` block, so they need a sync greenlet.
 */
export class StreamServer {
  readonly #server: AsyncStreamServer

  /**
   * @param listener where to listen
   * @param handler a function run per connection in a sync greenlet, or a
   *   built-in native handler: `'echo'` or `'upper'`
   */
  constructor(listener: StreamServerOptions, handler: ConnectionHandler | 'echo' | 'upper') {
    this.#server = AsyncStreamServer._withMode(listener, handler as AsyncConnectionHandler | 'echo' | 'upper', syncMode)
  }

  /** Listening: between `start()` and `stop()`. */
  get started(): boolean {
    return this.#server.started
  }

  /** Not listening (before `start()` and after `stop()`), as in gevent. */
  get closed(): boolean {
    return this.#server.closed
  }

  /** The address listened on (the real port once started, if port 0 was asked). */
  get address(): AddressInfo {
    return this.#server.address
  }

  /** Handler greenlets still running. */
  get handlers(): ReadonlySet<Greenlet> {
    return this.#server.handlers as unknown as ReadonlySet<Greenlet>
  }

  /** Connections being served by the built-in handler. */
  get liveConnections(): number {
    return this.#server.liveConnections
  }

  /** Binds and starts accepting. Throws EADDRINUSE, EACCES... as Errors with `code`; throws if already started. */
  start(): void {
    if (getcurrent() === null) return this.#server.start()
    // The runtime creates the listener's native object on the main thread
    // only: a greenlet blocks until a callback there has started it.
    blockOn(
      'start()',
      () =>
        new Promise<void>((resolve, reject) =>
          setImmediate(() => {
            try {
              this.#server.start()
              resolve()
            } catch (err) {
              reject(err)
            }
          }),
        ),
    )
  }

  /**
   * Closes the listener (freeing the port), lets running handlers finish for
   * `options.timeoutMs` (default 1000; `null`: no limit), then kills those
   * that remain and blocks until they have died. Returns at once if not
   * started. A handler may stop its own server: it is not waited for.
   */
  stop(options?: StopOptions): void {
    blockOn('stop()', () => this.#server.stop(options))
  }

  /**
   * Starts the server if needed and blocks until it is stopped. If the
   * blocked greenlet is killed, the server is stopped (with `stop`).
   */
  serveForever(stop?: StopOptions): void {
    // Bad options fail before the server starts, as in the async mode.
    checkServeForever(stop)
    if (!this.started) this.start()
    blockOn('serveForever()', () => this.#server.serveForever(stop))
  }

  toString(): string {
    return this.#server.toString()
  }
}
