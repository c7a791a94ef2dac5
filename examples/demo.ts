/**
 * `npm run demo`: a short guided tour of greenthread that finishes by itself
 * in well under a minute. Most stops run a seed program's TypeScript twin
 * (examples/seeds/) as it is; the rest run here, where a live display helps.
 */
import { execFileSync } from 'node:child_process'
import path from 'node:path'

import { type Socket, StreamServer, connect, joinall, sleep, spawn } from '../index'

function section(title: string): void {
  console.log(`\n\x1b[1m=== ${title}\x1b[0m`)
}

/** Runs one seed twin in its own process and shows its output. */
function seed(name: string, ...args: string[]): void {
  const file = path.join(__dirname, 'seeds', `${name}.js`)
  process.stdout.write(execFileSync(process.execPath, [file, ...args], { encoding: 'utf8', timeout: 60_000 }))
}

async function manyGreenlets(): Promise<void> {
  section('100,000 greenlets, each sleeping 10 ms, scheduled by the Rust hub')
  const start = Date.now()
  const gs = Array.from({ length: 100_000 }, () => spawn(() => sleep(10)))
  await joinall(gs)
  console.log(`all 100,000 done in ${Date.now() - start} ms (their sleeps overlap)`)
}

/** The seed echo server (talk: recv -> upper -> send) and its 500 clients, for a few seconds. */
async function echoServer(seconds: number): Promise<void> {
  section(`the seed echo server: one thread, 500 concurrent clients, ${seconds} s (seeds 000/001)`)
  const server = new StreamServer({ host: '127.0.0.1', port: 0 }, async (conn: Socket) => {
    for (;;) {
      const data = await conn.recv(1024)
      if (data.length === 0) break
      await conn.sendall(data.toString('latin1').toUpperCase())
    }
  })
  server.start()
  const { port } = server.address
  let replies = 0
  const deadline = Date.now() + seconds * 1000
  const client = async (name: string) => {
    const sock = await connect('127.0.0.1', port, { timeoutMs: 5000 })
    try {
      for (let n = 0; Date.now() < deadline; n++) {
        const msg = `${name} say hello ${n}`
        await sock.sendall(msg)
        const reply = await sock.recvExactly(Buffer.byteLength(msg))
        if (reply.toString() !== msg.toUpperCase()) throw new Error(`bad reply ${reply}`)
        replies++
      }
    } finally {
      sock.close()
    }
  }
  const start = Date.now()
  // The live line only makes sense on a terminal.
  const progress = setInterval(() => {
    if (!process.stdout.isTTY) return
    const elapsed = (Date.now() - start) / 1000
    process.stdout.write(`\r  ${replies.toLocaleString('en')} replies, ${Math.round(replies / elapsed).toLocaleString('en')} msgs/s   `)
  }, 250)
  const clients = Array.from({ length: 500 }, (_, i) => spawn(client, `Thread-${i + 1}`))
  await joinall(clients)
  clearInterval(progress)
  await server.stop({ timeoutMs: 1000 })
  const elapsed = (Date.now() - start) / 1000
  const failed = clients.filter((g) => !g.successful()).length
  console.log(`\r  500 clients: ${replies.toLocaleString('en')} upper-cased replies in ${elapsed.toFixed(1)} s = ${Math.round(replies / elapsed).toLocaleString('en')} msgs/s, ${failed} clients failed`)
}

async function main(): Promise<void> {
  section('greenlet switching: explicit transfer of control (seed 003, prints 12 56 34 78)')
  seed('greenlet-ping-pong')
  section('gevent: play sleeps 5 units, eat 3; they overlap, ~5 units in all (seed 001)')
  seed('play-eat')
  section('sync mode: the same ping-pong without a single await (greenthread/sync)')
  seed('greenlet-ping-pong-sync')
  section('sync mode: play/eat calling a blocking sleep, monkey-patched to yield (seed 001)')
  seed('play-eat-sync')
  section('sync mode: the baozi producer/consumer on a blocking Queue (seed 003)')
  seed('queue-producer-consumer-sync')
  section('three greenlets interleave only when they sleep (seed 004)')
  seed('greenlets-interleaved', '0')
  await manyGreenlets()
  await echoServer(4)
  section('asyncio-style gather and wait_for (seed 002)')
  seed('asyncio-gather')
  seed('asyncio-wait-for')
  section('executor pool with done callbacks (seed 001: 20 tasks on a 5-thread pool)')
  seed('pool', '--threads')
  console.log('\ndemo finished')
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
