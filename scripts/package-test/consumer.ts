// A strict TypeScript consumer of the published types of both entries.
import { Greenlet, Pool, Queue, ThreadPoolExecutor, joinall, spawn, type Future } from 'greenthread'
import * as sync from 'greenthread/sync'

async function main(): Promise<number> {
  const g: Greenlet<number> = spawn(async (n: number) => n * 2, 21)
  const q = new Queue<string>({ maxsize: 2 })
  await q.put('x')
  const s: string = await q.get()
  const pool = new Pool(4)
  const doubled: number[] = await pool.map(async (n: number) => n * 2, [1, 2, 3])
  const ex = new ThreadPoolExecutor({ maxWorkers: 1 })
  const f: Future<number> = ex.submit((a: number, b: number) => a + b, 1, 2)
  const sum: number = await f.result()
  await ex.shutdown()
  await joinall([g])
  const fromSync: number = await sync.run(() => sync.spawn(() => 5).get())
  return (g.value ?? 0) + s.length + doubled.length + sum + fromSync
}
void main()
