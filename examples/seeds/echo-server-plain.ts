// Seed 003 (shared/seeds/003_*.txt), 示例四 "通过 gevent 实现单线程下的多 socket
// 并发", server side: every connection in its own greenlet; handle_request
// prints what it receives and sends it back unchanged; on an empty read it
// shuts down its writing side and loops: the next read is empty again, and
// sending it fails (EPIPE, the seed's "[Errno 32] Broken pipe"), which ends
// the handler; the connection is closed. Port 8001 as in the seed, or the
// port given (0: any free port).
//
//   node dist/examples/seeds/echo-server-plain.js [port]
import { type Socket, StreamServer } from '../../index'

const port = Number(process.argv[2] ?? 8001)

async function handleRequest(conn: Socket): Promise<void> {
  try {
    for (;;) {
      const data = await conn.recv(1024)
      console.log('recv:', `b'${data.toString('latin1')}'`)
      await conn.sendall(data)
      if (data.length === 0) conn.shutdown('write')
    }
  } catch (ex) {
    console.log(String(ex))
  }
}

const server = new StreamServer({ host: '127.0.0.1', port }, handleRequest)
server.start()
console.log(`serving on ${server.address.address}:${server.address.port}`)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void server.stop({ timeoutMs: 1000 }).then(() => console.log('stopped'))
  })
}
