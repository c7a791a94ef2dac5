// Seeds 000 and 001 (shared/seeds/000_*.txt, 001_*.txt), the gevent server:
// one thread serves every client; talk(conn) loops recv(1024) -> print ->
// send(data.upper()) until the client closes, each connection in its own
// greenlet. Listens on 127.0.0.1:8080 (or the port given); Ctrl-C stops it.
//
//   node dist/examples/seeds/echo-server.js [port] [--quiet] [--native]
//
// --native serves with the built-in 'upper' handler instead: the same
// behaviour, entirely in Rust coroutines (nothing is printed per message).
import { type Socket, StreamServer } from '../../index'

const args = process.argv.slice(2)
const port = Number(args.find((a) => /^\d+$/.test(a)) ?? 8080)
const quiet = args.includes('--quiet')

async function talk(conn: Socket): Promise<void> {
  try {
    for (;;) {
      const data = await conn.recv(1024)
      if (data.length === 0) break
      if (!quiet) console.log(`b'${data.toString('latin1')}'`)
      await conn.sendall(data.toString('latin1').toUpperCase())
    }
  } catch (err) {
    // As the seed: print the error and let this client go.
    console.log(String(err))
  }
}

const server = new StreamServer({ host: '127.0.0.1', port }, args.includes('--native') ? 'upper' : talk)
server.start()
console.log(`serving on ${server.address.address}:${server.address.port}`)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void server.stop({ timeoutMs: 1000 }).then(() => console.log('stopped'))
  })
}
