// An ESM consumer of the installed package: both modes, named imports.
import assert from 'node:assert'
import http from 'node:http'
import { Queue, sleep, spawn, Timeout } from 'greenthread'
import { run, spawn as syncSpawn, Greenlet, block } from 'greenthread/sync'

const q = new Queue()
const consumer = spawn(async () => { const got = []; for (let i = 0; i < 3; i++) got.push(await q.get()); return got })
for (const n of [1, 2, 3]) await q.put(n)
assert.deepStrictEqual(await consumer.get(), [1, 2, 3])
await assert.rejects(Timeout.run(20, () => sleep(10_000)), /timed out after 20 ms/)
const server = http.createServer((req, res) => res.end('fetched'))
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const url = `http://127.0.0.1:${server.address().port}/`
const lines = await run(() => {
  const out = []
  const g1 = new Greenlet(() => { out.push(12); g2.switch(); out.push(34); g2.switch() })
  const g2 = new Greenlet(() => { out.push(56); g1.switch(); out.push(78) })
  g1.switch()
  out.push(block(Promise.resolve('awaited')))
  // The README's example: real fetch (its HTTP parser is WebAssembly) from sync greenlets.
  const bodies = [1, 2, 3].map(() => syncSpawn(() => block(block(fetch(url)).text())))
  for (const g of bodies) out.push(g.get())
  syncSpawn(() => out.push('spawned')).join()
  return out
})
server.close()
assert.deepStrictEqual(lines, [12, 56, 34, 78, 'awaited', 'fetched', 'fetched', 'fetched', 'spawned'])
console.log('esm ok')
