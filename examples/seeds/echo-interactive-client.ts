// Seed 002 (shared/seeds/002_*.txt), the interactive client: connects to
// 127.0.0.1:8080, reads lines ('>>: '), skips empty ones, sends each, and
// prints the reply of recv(1024). Exits at the end of its input (Ctrl-D).
//
//   node dist/examples/seeds/echo-interactive-client.js [port]
import { createInterface } from 'node:readline'

import { spawn } from '../../index'
import { connect } from '../../index'

const port = Number(process.argv[2] ?? 8080)

void spawn(async () => {
  const client = await connect('127.0.0.1', port)
  const lines = createInterface({ input: process.stdin, terminal: false })
  const prompt = () => process.stdin.isTTY && process.stdout.write('>>: ')
  prompt()
  for await (const line of lines) {
    const msg = line.trim()
    if (msg) {
      await client.sendall(msg)
      const reply = await client.recv(1024)
      if (reply.length === 0) break // the server closed the connection
      console.log(reply.toString('utf8'))
    }
    prompt()
  }
  client.close()
})
  .get()
  .catch((err: unknown) => {
    console.error(String(err))
    process.exitCode = 1
  })
