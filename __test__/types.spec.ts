/**
 * The published type declarations (dist/*.d.ts, through the package's
 * `exports`) type-check in a strict consumer that does not skip library
 * checks: stripInternal must never remove something a public type refers to.
 */
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

import test from 'ava'

const run = promisify(execFile)
const root = path.join(__dirname, '..', '..')

const consumer = `
import { Greenlet, Queue, StreamServer, ThreadPoolExecutor, Timeout, joinall, sleep, spawn, type Future } from 'greenthread'
import * as sync from 'greenthread/sync'

async function main(): Promise<number> {
  const g: Greenlet<number> = spawn(async (x: number) => { await sleep(1); return x }, 1)
  await joinall([g], { timeoutMs: 10 })
  const q = new Queue<string>({ maxsize: 1 })
  await q.put('x')
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  const f: Future<number> = pool.submit((n: number) => n * n, 3)
  f.addDoneCallback(() => undefined)
  await pool.shutdown()
  const server = new StreamServer({ host: '127.0.0.1', port: 0 }, 'upper')
  void server
  void Timeout.run(5, () => 1)
  const s: sync.Greenlet<number> = sync.spawn(() => 2)
  void s
  return (await g.get()) + (await f.result())
}
void main
`

test('the published declarations type-check in a strict consumer without skipLibCheck', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'greenthread-types-'))
  try {
    fs.mkdirSync(path.join(dir, 'node_modules'))
    fs.symlinkSync(root, path.join(dir, 'node_modules', 'greenthread'), 'dir')
    fs.symlinkSync(path.join(root, 'node_modules', '@types'), path.join(dir, 'node_modules', '@types'), 'dir')
    fs.writeFileSync(path.join(dir, 'consumer.ts'), consumer)
    fs.writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, skipLibCheck: false, module: 'node16', moduleResolution: 'node16', target: 'ES2022', types: ['node'] },
        files: ['consumer.ts'],
      }),
    )
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const result = await run(process.execPath, [tsc, '-p', dir], { timeout: 60_000 }).catch((err) => err)
    t.is(`${result.stdout ?? ''}`.trim(), '', 'tsc reports no errors')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
