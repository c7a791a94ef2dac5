/**
 * Executor benchmarks (issue 5), with piscina, tinypool and workerpool in the
 * same run, every pool on 2 worker threads and warmed up first:
 *
 * - W5a: 20,000 tiny tasks (`x * x`), completion counted in done callbacks
 *   (`.then` for the peers). Reports tasks/s and the ratio to piscina
 *   (target: >= 5x).
 * - W5b: 200 x fib(27). Reports wall time and the ratio to the ideal,
 *   200 x (one fib(27) on this thread) / 2 workers (target: <= 1.05x). The
 *   single-task time is measured right before each run, so that both see
 *   about the same load from the rest of the machine; the ratio is the
 *   median of the per-run ratios.
 *
 * Each case runs `rounds` times (default 5) and the median is reported. The
 * W5b "cores busy" column is this process's CPU time over wall time during
 * the run (threads only: child processes are not counted): about 2 when the
 * two workers had the two cores to themselves, less when something else on
 * the machine took them, in which case the ratio to the ideal means little.
 *
 *   node dist/bench/executors.js [rounds]
 */
import * as path from 'node:path'

import { ProcessPoolExecutor, ThreadPoolExecutor } from '../src/executor'
import { fib } from './_executor_tasks'

const dynamicImport = new Function('s', 'return import(s)') as (specifier: string) => Promise<any>

const WORKERS = 2
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

async function pools(): Promise<Pool[]> {
  const { Piscina } = await dynamicImport('piscina')
  const { Tinypool } = await dynamicImport('tinypool')
  const workerpool = await dynamicImport('workerpool')
  const piscina = new Piscina({ filename: TASKS_MODULE, minThreads: WORKERS, maxThreads: WORKERS })
  const tinypool = new Tinypool({ filename: TASKS_MODULE, minThreads: WORKERS, maxThreads: WORKERS })
  const wp = (workerpool.default ?? workerpool).pool(TASKS_MODULE, {
    minWorkers: WORKERS,
    maxWorkers: WORKERS,
    workerType: 'thread',
    workerThreadOpts: { workerData: { workerpool: true } },
  })
  return [
    greenthread(new ThreadPoolExecutor({ maxWorkers: WORKERS }), 'greenthread ThreadPoolExecutor'),
    greenthread(new ProcessPoolExecutor({ maxWorkers: WORKERS }), 'greenthread ProcessPoolExecutor'),
    promises('piscina', (task, x) => piscina.run(x, { name: task }), () => piscina.destroy()),
    promises('tinypool', (task, x) => tinypool.run(x, { name: task }), () => tinypool.destroy()),
    promises('workerpool', (task, x) => wp.exec(task, [x]), () => wp.terminate()),
  ]
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function timed(fn: () => Promise<void>, cores?: number[]): Promise<number> {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await fn()
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  cores?.push((cpu.user + cpu.system) / 1000 / ms)
  return ms
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
  const rounds = Number(process.argv[2] ?? 5)
  const all = await pools()
  // Warm-up: start every worker and compile both functions in each.
  for (const p of all) {
    await p.run('square', 2_000, (i) => i)
    await p.run('fib', 4 * WORKERS, () => 20)
  }
  const tiny = new Map<string, number[]>()
  const fibs = new Map<string, number[]>()
  const busyCores = new Map<string, number[]>()
  const ratios = new Map<string, number[]>()
  const singles: number[] = []
  for (let r = 0; r < rounds; r++) {
    for (const p of all) {
      tiny.set(p.name, [...(tiny.get(p.name) ?? []), await timed(() => p.run('square', TINY_TASKS, (i) => i))])
    }
    for (const p of all) {
      const single = singleFibMs()
      singles.push(single)
      const cores = busyCores.get(p.name) ?? []
      busyCores.set(p.name, cores)
      const wall = await timed(() => p.run('fib', FIB_TASKS, () => FIB_N), cores)
      fibs.set(p.name, [...(fibs.get(p.name) ?? []), wall])
      ratios.set(p.name, [...(ratios.get(p.name) ?? []), wall / ((FIB_TASKS * single) / WORKERS)])
    }
  }
  await Promise.all(all.map((p) => p.close()))

  const piscinaRate = TINY_TASKS / (median(tiny.get('piscina')!) / 1000)
  const single = median(singles)
  const ideal = (FIB_TASKS * single) / WORKERS
  console.log(`executors, ${WORKERS} workers each, median of ${rounds} rounds (node ${process.version})`)
  console.log('')
  console.log(
    `| pool | W5a ${TINY_TASKS} x (x*x): ms | tasks/s | vs piscina | W5b ${FIB_TASKS} x fib(${FIB_N}): ms | vs ideal (median ${ideal.toFixed(0)} ms) | W5b cores busy |`,
  )
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const p of all) {
    const ms = median(tiny.get(p.name)!)
    const rate = TINY_TASKS / (ms / 1000)
    const wall = median(fibs.get(p.name)!)
    console.log(
      `| ${p.name} | ${ms.toFixed(1)} | ${Math.round(rate).toLocaleString('en-US')} | ${(rate / piscinaRate).toFixed(2)}x | ${wall.toFixed(0)} | ${median(ratios.get(p.name)!).toFixed(3)}x | ${
        p.name.includes('Process') ? '-' : median(busyCores.get(p.name)!).toFixed(2)
      } |`,
    )
  }
  console.log('')
  console.log(`one fib(${FIB_N}) on the main thread: median ${single.toFixed(2)} ms; targets: W5a >= 5x piscina, W5b <= 1.05x ideal`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
