// A CommonJS consumer of the installed package: both modes.
const assert = require('node:assert')
const { spawn, sleep, joinall, ThreadPoolExecutor } = require('greenthread')
const sync = require('greenthread/sync')

;(async () => {
  const a = spawn(async () => { await sleep(20); return 'a' })
  const b = spawn(async () => 'b')
  await joinall([a, b], { raiseError: true })
  assert.deepStrictEqual([a.value, b.value], ['a', 'b'])
  const pool = new ThreadPoolExecutor({ maxWorkers: 2 })
  assert.strictEqual(await pool.submit((x, y) => x * y, 6, 7).result(), 42)
  await pool.shutdown()
  const total = await sync.run(() => {
    const gs = [1, 2, 3].map((n) => sync.spawn(() => (sync.sleep(5 * n), n)))
    sync.joinall(gs)
    return gs.reduce((s, g) => s + g.value, 0)
  })
  assert.strictEqual(total, 6)
  console.log('cjs ok')
})()
