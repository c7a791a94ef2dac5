// Seeds 000 and 001 in sync mode: the gevent server written without await.
// talk(conn) loops recv(1024) -> print -> send(data.upper()) until the
// client closes, each connection in its own sync greenlet (an OS thread).
// Listens on 127.0.0.1:8080 (or the port given, 0 = any); Ctrl-C stops it.
//
//   node dist/examples/seeds/echo-server-sync.js [port] [--quiet]
import { type Socket, StreamServer, spawn } from '../../sync'

const args = process.argv.slice(2)
const port = Number(args.find((a) => /^\d+$/.test(a)) ?? 8080)
const quiet = args.includes('--quiet')

function talk(conn: Socket): void {
  try {
    for (;;) {
      const data = conn.recv(1024)
      if (data.length === 0) break
      if (!quiet) console.log(`b'${data.toString('latin1')}'`)
      conn.sendall(data.toString('latin1').toUpperCase())
    }
  } catch (err) {
    // As the seed: print the error and let this client go.
    console.log(String(err))
  }
}

const server = new StreamServer({ host: '127.0.0.1', port }, talk)
server.start()
console.log(`serving on ${server.address.address}:${server.address.port}`)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // stop() blocks: it runs in a sync greenlet of its own.
    spawn(() => {
      server.stop({ timeoutMs: 1000 })
      console.log('stopped')
    })
  })
}
