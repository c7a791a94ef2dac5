/**
 * DistributedExecutor benchmarks (issue 18): W5a (20,000 tiny tasks, x * x)
 * and W5b (200 x fib(27)) through Redis and BullMQ, served by two
 * `greenthread-worker` processes (one local process worker each, so two
 * task processes, as in the other pools; once with the default prefetch
 * of 1, once with 16), next to ProcessPoolExecutor
 * (2 processes) and piscina (2 threads) in the same run, all running the
 * exports of `bench/_executor_tasks.ts` and warmed up first. Completion is
 * counted in done callbacks (`.then` for piscina).
 *
 * Starts its own redis-server (a free port, a temporary directory, no
 * persistence) and stops it at the end. Reports the median of `rounds` runs
 * (default 3) and the cost Redis adds per task: (its wall time - the
 * ProcessPoolExecutor's) / tasks.
 *
 *   node dist/bench/distributed.js [rounds]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'

import { DistributedExecutor } from '../src/distributed'
import { ProcessPoolExecutor } from '../src/executor'
import type { Future } from '../src/futures'

const dynamicImport = new Function('s', 'return import(s)') as (specifier: string) => Promise<any>

const WORKERS = 2
const TINY_TASKS = 20_000
const FIB_TASKS = 200
const FIB_N = 27
const TASKS_MODULE = path.join(__dirname, '_executor_tasks.js')
const CLI = path.join(__dirname, '..', '..', 'scripts', 'greenthread-worker.js')

type Runner = (name: 'square' | 'fib', count: number, arg: (i: number) => number) => Promise<void>

interface Pool {
  name: string
  run: Runner
  close(): Promise<unknown>
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

function started(child: ChildProcess, pattern: RegExp, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = ''
    const onData = (d: Buffer): void => {
      out += d
      if (pattern.test(out)) {
        child.stdout!.off('data', onData)
        child.off('exit', onExit)
        resolve()
      }
    }
    const onExit = (): void => reject(new Error(`${what} exited before it was ready:\n${out}`))
    child.stdout!.on('data', onData)
    child.once('exit', onExit)
  })
}

/** Submits by done callbacks, as bench/executors.ts does for greenthread's pools. */
function futures(name: string, submit: (task: 'square' | 'fib', x: number) => Future<unknown>, close: () => Promise<unknown>): Pool {
  return {
    name,
    run: (task, count, arg) =>
      new Promise<void>((resolve, reject) => {
        let done = 0
        const onDone = (f: Future<unknown>): void => {
          if (f.cancelled()) reject(new Error('cancelled'))
          if (++done === count) resolve()
        }
        for (let i = 0; i < count; i++) submit(task, arg(i)).addDoneCallback(onDone)
      }),
    close,
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now()
  await fn()
  return performance.now() - t0
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3)
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('redis-server is not on PATH (Debian: apt-get install -y redis-server)')
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'greenthread-bench-redis-'))
  const port = await freePort()
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const workers: ChildProcess[] = []
  try {
    await started(redis, /Ready to accept connections/, 'redis-server')
    // Two queues: workers with the default prefetch (1 job waiting beside the running one) and with 16.
    for (const [queue, prefetch] of [['bench', '1'], ['bench-prefetch', '16']]) {
      for (let i = 0; i < WORKERS; i++) {
        const args = [CLI, '--redis', `127.0.0.1:${port}`, '--queue', queue, '--module', TASKS_MODULE, '--concurrency', '1', '--prefetch', prefetch, '--quiet']
        const w = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
        workers.push(w)
        await started(w, new RegExp(`ready: queue ${queue} `), 'greenthread-worker')
      }
    }
    const connection = { host: '127.0.0.1', port }
    const distributed = await DistributedExecutor.connect({ connection, queue: 'bench' })
    const prefetching = await DistributedExecutor.connect({ connection, queue: 'bench-prefetch' })
    const processes = new ProcessPoolExecutor({ maxWorkers: WORKERS, module: TASKS_MODULE })
    const { Piscina } = await dynamicImport('piscina')
    const piscina = new Piscina({ filename: TASKS_MODULE, minThreads: WORKERS, maxThreads: WORKERS })
    const all: Pool[] = [
      futures(`DistributedExecutor (Redis, ${WORKERS} workers, prefetch 1)`, (task, x) => distributed.submit(task, x), () => distributed.shutdown()),
      futures(`DistributedExecutor (Redis, ${WORKERS} workers, prefetch 16)`, (task, x) => prefetching.submit(task, x), () => prefetching.shutdown()),
      futures(`ProcessPoolExecutor (${WORKERS} processes)`, (task, x) => processes.submit(task, x), () => processes.shutdown()),
      {
        name: `piscina (${WORKERS} threads)`,
        run: (task, count, arg) =>
          new Promise<void>((resolve, reject) => {
            let done = 0
            for (let i = 0; i < count; i++) piscina.run(arg(i), { name: task }).then(() => ++done === count && resolve(), reject)
          }),
        close: () => piscina.destroy(),
      },
    ]
    for (const p of all) {
      await p.run('square', 2_000, (i) => i)
      await p.run('fib', 4 * WORKERS, () => 20)
    }
    const tiny = new Map<string, number[]>()
    const fibs = new Map<string, number[]>()
    for (let r = 0; r < rounds; r++) {
      for (const p of all) tiny.set(p.name, [...(tiny.get(p.name) ?? []), await timed(() => p.run('square', TINY_TASKS, (i) => i))])
      for (const p of all) fibs.set(p.name, [...(fibs.get(p.name) ?? []), await timed(() => p.run('fib', FIB_TASKS, () => FIB_N))])
    }
    await Promise.all(all.map((p) => p.close()))

    const base = all[2].name
    console.log(`distributed executor, median of ${rounds} rounds (node ${process.version}, ${os.availableParallelism()} CPUs, Redis on this machine)`)
    console.log('')
    console.log(`| pool | W5a ${TINY_TASKS.toLocaleString('en-US')} x (x*x): ms | tasks/s | added per task vs ProcessPoolExecutor | W5b ${FIB_TASKS} x fib(${FIB_N}): ms | added per task |`)
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |')
    for (const p of all) {
      const ms = median(tiny.get(p.name)!)
      const wall = median(fibs.get(p.name)!)
      const addedTiny = ((ms - median(tiny.get(base)!)) / TINY_TASKS) * 1000
      const addedFib = (wall - median(fibs.get(base)!)) / FIB_TASKS
      const us = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(0)} us`
      console.log(
        `| ${p.name} | ${ms.toFixed(0)} | ${Math.round(TINY_TASKS / (ms / 1000)).toLocaleString('en-US')} | ${p.name === base ? '-' : us(addedTiny)} | ${wall.toFixed(0)} | ${
          p.name === base ? '-' : `${addedFib >= 0 ? '+' : ''}${addedFib.toFixed(2)} ms`
        } |`,
      )
    }
  } finally {
    for (const w of workers) w.kill('SIGTERM')
    redis.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
