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
import { Greenlet, Lock, Pool, PriorityQueue, Queue, StreamServer, ThreadPoolExecutor, Timeout, gather, joinall, sleep, spawn, spawnLater, type Future } from 'greenthread'
import * as sync from 'greenthread/sync'
import greenthread from 'greenthread'

// Arguments are checked against the function's parameters.
// @ts-expect-error a string where the function takes a number
spawn((n: number) => n, 'str')
// @ts-expect-error an argument missing
spawnLater(5, (a: number, b: string) => a + b, 1)
// @ts-expect-error Pool.spawn checks them too
void new Pool(1).spawn((n: number) => n, 'str')
// @ts-expect-error and the sync spawn
sync.spawn((n: number) => n, 'str')
// @ts-expect-error and new Greenlet (whose arguments may also come with its first switch)
void new Greenlet((n: number) => n, 'str')
void new Greenlet((n: number) => n)
void greenthread.spawn(() => 1)

async function typed(): Promise<void> {
  // Greenlets of different result types join together (the finished ones,
  // a subset with count or timeoutMs: their union, not a tuple).
  const [a, b] = await joinall([spawn(() => 1), spawn(async () => 'x')])
  const one: number | string | undefined = a.value
  const x: number | string | undefined = b.value
  // gather resolves with a typed tuple.
  const [n, s, v] = await gather(async () => 1, Promise.resolve('s'), spawn(() => true))
  const typedTuple: [number, string, boolean] = [n, s, v]
  void [one, x, typedTuple]
}
void typed

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
  const sq = new sync.PriorityQueue<[number, string]>({ maxsize: 2 })
  const lifo = new sync.LifoQueue<number>()
  const jq = new sync.JoinableQueue<number>()
  const chan = new sync.Channel<string>()
  const spool = new sync.Pool(2)
  const lock = new sync.RLock()
  const event = new sync.Event()
  const result = new sync.AsyncResult<number>()
  await sync.run(() => {
    sq.put([1, 'a'])
    const item: [number, string] = sq.get({ timeoutMs: 5 })
    lifo.putNowait(item[0])
    const joined: boolean = jq.join({ timeoutMs: 1 })
    const got: boolean = lock.acquire({ timeoutMs: 1 })
    using _guard = new sync.Semaphore(1).guard()
    const doubled: number[] = spool.map((x: number) => x * 2, [1, 2])
    for (const r of spool.imapUnordered((x: number) => String(x), [3])) void r.toUpperCase()
    const g: sync.Greenlet<string> = spool.spawn(() => chan.get())
    const set: boolean = event.wait({ timeoutMs: 1 })
    result.set(doubled.length)
    return [joined, got, set, g, result.get()] as const
  })
  const aq = new PriorityQueue<number>()
  await aq.put(1)
  const n: number = await aq.get()
  const apool = new Pool(2)
  const mapped: string[] = await apool.map(async (x: number) => String(x + n), [1])
  for await (const m of apool.imapUnordered((x: number) => x, [1])) void m.toFixed()
  await using _held = await new Lock().guard()
  void mapped
  return (await g.get()) + (await f.result())
}
void main
`

// Each resolution a consumer may use: node10 (`module: commonjs`) reads no
// `exports` map, so `greenthread/sync` needs `typesVersions` there.
const resolutions: Array<{ module: string; moduleResolution: string; esModuleInterop?: boolean }> = [
  { module: 'node16', moduleResolution: 'node16' },
  { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true },
  { module: 'esnext', moduleResolution: 'bundler' },
]

for (const { module, moduleResolution, esModuleInterop } of resolutions) {
  test(`the published declarations type-check in a strict consumer without skipLibCheck (module ${module}, moduleResolution ${moduleResolution})`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'greenthread-types-'))
    try {
      fs.mkdirSync(path.join(dir, 'node_modules'))
      fs.symlinkSync(root, path.join(dir, 'node_modules', 'greenthread'), 'dir')
      fs.symlinkSync(path.join(root, 'node_modules', '@types'), path.join(dir, 'node_modules', '@types'), 'dir')
      fs.writeFileSync(path.join(dir, 'consumer.ts'), consumer)
      fs.writeFileSync(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { strict: true, noEmit: true, skipLibCheck: false, module, moduleResolution, esModuleInterop, target: 'ES2022', types: ['node'] },
          files: ['consumer.ts'],
        }),
      )
      const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
      const result = await run(process.execPath, [tsc, '-p', dir], { timeout: 60_000 }).then(
        (r) => ({ ...r, code: 0 }),
        (err) => err,
      )
      t.is(`${result.stdout ?? ''}`.trim(), '', 'tsc reports no errors')
      // A crash, a timeout or a missing tsc print nothing either.
      t.is(result.code, 0, `tsc exited with ${result.code} ${result.signal ?? ''} ${result.stderr ?? ''}`)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
}
