// Seeds 000 and 001 (shared/seeds/000_*.txt, 001_*.txt), the 500 clients: each
// connects to 127.0.0.1:8080, sends '%s say hello %s' (its name and a counter)
// and prints the reply, over and over. The seeds' threads become greenlets,
// and they stop by themselves: after --messages replies each (default 20)
// or --seconds (default 5), whichever comes first. Then a summary is printed.
//
//   node dist/examples/seeds/echo-clients.js [port] [--clients 500] [--messages 20] [--seconds 5] [--quiet]
import { joinall, spawn } from '../../index'
import { connect } from '../../index'

const args = process.argv.slice(2)
function option(name: string, fallback: number): number {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : fallback
}
const port = Number(args.find((a, i) => /^\d+$/.test(a) && !args[i - 1]?.startsWith('--')) ?? 8080)
const clients = option('--clients', 500)
const messages = option('--messages', 20)
const seconds = option('--seconds', 5)
const quiet = args.includes('--quiet')
const deadline = Date.now() + seconds * 1000

let replies = 0
let wrong = 0

async function socketClient(name: string): Promise<void> {
  const client = await connect('127.0.0.1', port, { timeoutMs: 5000 })
  client.setTimeout(5000)
  try {
    for (let n = 0; n < messages && Date.now() < deadline; n++) {
      const ss = `${name} say hello ${n}`
      await client.sendall(ss)
      const data = await client.recvExactly(Buffer.byteLength(ss))
      if (!quiet) console.log(`b'${data.toString('latin1')}'`)
      replies++
      if (data.toString() !== ss.toUpperCase()) wrong++
    }
  } finally {
    client.close()
  }
}

void (async () => {
  const started = performance.now()
  const gs = Array.from({ length: clients }, (_, i) => spawn(socketClient, `Thread-${i + 1}`))
  await joinall(gs)
  const failed = gs.filter((g) => !g.successful())
  const elapsed = (performance.now() - started) / 1000
  console.log(
    `${clients} clients, ${replies} replies (${wrong} wrong) in ${elapsed.toFixed(2)} s: ` +
      `${Math.round(replies / elapsed)} replies/s; ${failed.length} clients failed` +
      (failed.length > 0 ? ` (first: ${String(failed[0].exception)})` : ''),
  )
  process.exitCode = failed.length > 0 || wrong > 0 ? 1 : 0
})()
