// An ESM consumer of the installed package: both modes, named imports.
import assert from 'node:assert'
import { Queue, sleep, spawn, Timeout } from 'greenthread'
import { run, spawn as syncSpawn, Greenlet, block } from 'greenthread/sync'

const q = new Queue()
const consumer = spawn(async () => { const got = []; for (let i = 0; i < 3; i++) got.push(await q.get()); return got })
for (const n of [1, 2, 3]) await q.put(n)
assert.deepStrictEqual(await consumer.get(), [1, 2, 3])
await assert.rejects(Timeout.run(20, () => sleep(10_000)), /timed out after 20 ms/)
const lines = await run(() => {
  const out = []
  const g1 = new Greenlet(() => { out.push(12); g2.switch(); out.push(34); g2.switch() })
  const g2 = new Greenlet(() => { out.push(56); g1.switch(); out.push(78) })
  g1.switch()
  out.push(block(Promise.resolve('awaited')))
  syncSpawn(() => out.push('spawned')).join()
  return out
})
assert.deepStrictEqual(lines, [12, 56, 34, 78, 'awaited', 'spawned'])
console.log('esm ok')
