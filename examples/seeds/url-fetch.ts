// Seed 004 (shared/seeds/004_*.txt), last program: three greenlets fetch URLs
// concurrently and switch automatically while waiting for I/O; they finish in
// the order the responses arrive, not the order they started. Against a local
// HTTP server started here (never the internet), whose pages answer after
// different delays.
import http from 'node:http'
import type { AddressInfo } from 'node:net'

import { joinall, spawn } from '../../index'

const pages: Record<string, { delayMs: number; bytes: number }> = {
  '/kaituorensheng/': { delayMs: 60, bytes: 14667 },
  '/python.org/': { delayMs: 90, bytes: 47348 },
  '/baidu.com/': { delayMs: 10, bytes: 227 },
}

function get(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve(Buffer.concat(chunks)))
      res.on('error', reject)
    }).on('error', reject)
  })
}

async function f(url: string): Promise<void> {
  console.log(`GET: ${url}`)
  const data = await get(url)
  // The seed's print ends in "\n" too: a blank line after each result.
  console.log(`[${data.length}] bytes received from ${url}\n`)
}

const server = http.createServer((req, res) => {
  const page = pages[req.url ?? ''] ?? { delayMs: 0, bytes: 0 }
  setTimeout(() => res.end(Buffer.alloc(page.bytes, 'x')), page.delayMs)
})

server.listen(0, '127.0.0.1', async () => {
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  await joinall(Object.keys(pages).map((path) => spawn(f, base + path)))
  server.close()
})
