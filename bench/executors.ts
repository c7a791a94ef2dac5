/**
 * Executor cases of `npm run bench` (bench/run.ts, issue 5), one pool and
 * one workload per process, the pool warmed up first:
 *
 * - W5a: 20,000 tiny tasks (`x * x`), completion counted in done callbacks
 *   (`.then` for the peers). Reports the wall time (tasks/s).
 * - W5b: 200 x fib(27). Reports the wall time and the ideal, 200 x (one
 *   fib(27) on this thread, measured right before the run) / workers, so
 *   that both see about the same load from the rest of the machine. Also
 *   "cores busy": this process's CPU time over wall time during the run
 *   (threads only: child processes are not counted).
 *
 * Pools: greenthread's ThreadPoolExecutor and ProcessPoolExecutor, piscina,
 * tinypool and workerpool (threads), all with `workers` workers (default 2).
 *
 *   node dist/bench/executors.js <pool> w5a|w5b [workers]    prints one JSON line
 *
 * pool: thread | process | piscina | tinypool | workerpool
 */
import * as path from 'node:path'

import { ProcessPoolExecutor, ThreadPoolExecutor } from '../src/executor'
import { fib } from './_executor_tasks'

const dynamicImport = new Function('s', 'return import(s)') as (specifier: string) => Promise<any>

const TINY_TASKS = 20_000
const FIB_TASKS = 200
const FIB_N = 27
const TASKS_MODULE = path.join(__dirname, '_executor_tasks.js')

/** Submits `count` tasks and resolves once all have completed. */
type Runner = (name: 'square' | 'fib', count: number, arg: (i: number) => number) => Promise<void>

interface Pool {
  name: string
  run: Runner
  close(): Promise<unknown>
}

function sourceSquare(x: number): number {
  return x * x
}

function sourceFib(n: number): number {
  return n < 2 ? n : sourceFib(n - 1) + sourceFib(n - 2)
}

function greenthread(pool: ThreadPoolExecutor | ProcessPoolExecutor, name: string): Pool {
  return {
    name,
    run: (task, count, arg) =>
      new Promise<void>((resolve) => {
        const fn = task === 'square' ? sourceSquare : sourceFib
        let done = 0
        const onDone = (): void => {
          if (++done === count) resolve()
        }
        for (let i = 0; i < count; i++) pool.submit(fn, arg(i)).addDoneCallback(onDone)
      }),
    close: () => pool.shutdown(),
  }
}

function promises(name: string, call: (task: string, x: number) => PromiseLike<unknown>, close: () => Promise<unknown>): Pool {
  return {
    name,
    run: (task, count, arg) =>
      new Promise<void>((resolve, reject) => {
        let done = 0
        const onDone = (): void => {
          if (++done === count) resolve()
        }
        for (let i = 0; i < count; i++) call(task, arg(i)).then(onDone, reject)
      }),
    close,
  }
}

async function makePool(id: string, workers: number): Promise<Pool> {
  switch (id) {
    case 'thread':
      return greenthread(new ThreadPoolExecutor({ maxWorkers: workers }), 'greenthread ThreadPoolExecutor')
    case 'process':
      return greenthread(new ProcessPoolExecutor({ maxWorkers: workers }), 'greenthread ProcessPoolExecutor')
    case 'piscina': {
      const { Piscina } = await dynamicImport('piscina')
      const piscina = new Piscina({ filename: TASKS_MODULE, minThreads: workers, maxThreads: workers })
      return promises('piscina', (task, x) => piscina.run(x, { name: task }), () => piscina.destroy())
    }
    case 'tinypool': {
      const { Tinypool } = await dynamicImport('tinypool')
      const tinypool = new Tinypool({ filename: TASKS_MODULE, minThreads: workers, maxThreads: workers })
      return promises('tinypool', (task, x) => tinypool.run(x, { name: task }), () => tinypool.destroy())
    }
    case 'workerpool': {
      const workerpool = await dynamicImport('workerpool')
      const wp = (workerpool.default ?? workerpool).pool(TASKS_MODULE, {
        minWorkers: workers,
        maxWorkers: workers,
        workerType: 'thread',
        workerThreadOpts: { workerData: { workerpool: true } },
      })
      return promises('workerpool', (task, x) => wp.exec(task, [x]), () => wp.terminate())
    }
    default:
      throw new Error(`unknown pool ${id}; one of thread, process, piscina, tinypool, workerpool`)
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

function singleFibMs(): number {
  for (let i = 0; i < 5; i++) fib(FIB_N)
  const runs: number[] = []
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now()
    fib(FIB_N)
    runs.push(performance.now() - t0)
  }
  return median(runs)
}

async function main(): Promise<void> {
  const [id, workload, workersArg] = process.argv.slice(2)
  const workers = Number(workersArg ?? 2)
  if (workload !== 'w5a' && workload !== 'w5b') throw new Error('usage: executors.js <pool> w5a|w5b [workers]')
  const pool = await makePool(id, workers)
  // Warm-up: start every worker and compile both functions in each.
  await pool.run('square', 2_000, (i) => i)
  await pool.run('fib', 4 * workers, () => 20)
  let out: Record<string, number>
  if (workload === 'w5a') {
    const t0 = performance.now()
    await pool.run('square', TINY_TASKS, (i) => i)
    out = { ops: TINY_TASKS, ms: performance.now() - t0 }
  } else {
    const singleMs = singleFibMs()
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await pool.run('fib', FIB_TASKS, () => FIB_N)
    const ms = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    out = { ops: FIB_TASKS, ms, singleMs, idealMs: (FIB_TASKS * singleMs) / workers, coresBusy: (cpu.user + cpu.system) / 1000 / ms }
  }
  await pool.close()
  console.log(JSON.stringify({ case: `${id} ${workload} ${workers}`, workers, ...out, maxRssKiB: process.resourceUsage().maxRSS }))
  process.exit(0)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
