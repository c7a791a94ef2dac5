/**
 * The servers of bench/echo.ts, one per process, each doing the seeds'
 * talk(conn): recv up to 1024 bytes, send them back upper-cased.
 *
 *   [GREENTHREAD_WORKERS=n] node dist/bench/echo-server.js js|native|sync|node [maxSeconds]
 *
 * sync: greenthread/sync's StreamServer, talk(conn) without await in a sync
 * greenlet (an OS thread) per connection.
 *
 * Listens on 127.0.0.1 (a free port), prints "listening PORT", and exits by
 * itself after maxSeconds (default 120) if the driver does not stop it first.
 */
import { createServer } from 'node:net'

import { type Socket, StreamServer, configure } from '../index'
import type * as Sync from '../sync'

const A = 0x61
const Z = 0x7a

/** ASCII upper-casing in place, shared by the JS-handler and Node servers. */
function upper(data: Buffer): Buffer {
  for (let i = 0; i < data.length; i++) {
    const c = data[i]
    if (c >= A && c <= Z) data[i] = c - 32
  }
  return data
}

/** The seeds' talk(conn), as a greenthread handler. */
async function talk(conn: Socket): Promise<void> {
  for (;;) {
    const data = await conn.recv(1024)
    if (data.length === 0) break
    await conn.sendall(upper(data))
  }
}

/** The seeds' talk(conn) in a sync greenlet: blocking calls, no await. */
function talkSync(conn: Sync.Socket): void {
  for (;;) {
    const data = conn.recv(1024)
    if (data.length === 0) break
    conn.sendall(upper(data))
  }
}

function listening(port: number): void {
  process.stdout.write(`listening ${port}\n`)
}

const mode = process.argv[2]
const maxSeconds = Number(process.argv[3] ?? 120)
setTimeout(() => process.exit(0), maxSeconds * 1000).unref()
// Runtime workers (default: one per core), for runs that leave cores to the load.
if (process.env.GREENTHREAD_WORKERS) configure({ workers: Number(process.env.GREENTHREAD_WORKERS) })

if (mode === 'js' || mode === 'native') {
  const server = new StreamServer({ host: '127.0.0.1', port: 0 }, mode === 'js' ? talk : 'upper')
  server.start()
  listening(server.address.port)
  process.on('SIGTERM', () => void server.stop({ timeoutMs: 0 }).then(() => process.exit(0)))
} else if (mode === 'sync') {
  // Loaded only here: it needs the sync binary of this Node.
  const sync = require('../sync') as typeof Sync
  const server = new sync.StreamServer({ host: '127.0.0.1', port: 0 }, talkSync)
  server.start()
  listening(server.address.port)
  process.on('SIGTERM', () => void sync.run(() => server.stop({ timeoutMs: 0 })).then(() => process.exit(0)))
} else if (mode === 'node') {
  const server = createServer({ noDelay: true }, (sock) => {
    sock.on('data', (data) => sock.write(upper(data)))
    sock.on('error', () => sock.destroy())
  })
  server.listen(0, '127.0.0.1', () => listening((server.address() as { port: number }).port))
  process.on('SIGTERM', () => server.close(() => process.exit(0)))
} else {
  console.error('usage: echo-server.js js|native|sync|node [maxSeconds]')
  process.exit(2)
}
