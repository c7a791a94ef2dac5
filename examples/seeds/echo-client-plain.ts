// Seed 003 (shared/seeds/003_*.txt), 示例四, client side: reads lines after a
// '>>>:' prompt, sendall()s each and prints `Received b'...'` with what comes
// back. Exits at the end of its input.
//
//   node dist/examples/seeds/echo-client-plain.js [port]
import { createInterface } from 'node:readline'

import { connect, spawn } from '../../index'

const port = Number(process.argv[2] ?? 8001)

void spawn(async () => {
  const s = await connect('127.0.0.1', port)
  const lines = createInterface({ input: process.stdin, terminal: false })
  const prompt = () => process.stdin.isTTY && process.stdout.write('>>>:')
  prompt()
  for await (const line of lines) {
    await s.sendall(Buffer.from(line, 'utf8'))
    const data = await s.recv(1024)
    console.log('Received', `b'${data.toString('latin1')}'`)
    prompt()
  }
  s.close()
}).get()
