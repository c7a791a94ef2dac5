/**
 * W4 cases of `npm run bench` (bench/run.ts): one echo server under
 * `clients` loopback clients, one 32-byte message in flight each,
 * upper-cased echo (the seeds' server and clients). Servers:
 *   - js: greenthread StreamServer with a JS handler (the seeds' talk(conn))
 *   - native: greenthread StreamServer with the native 'upper' handler
 *   - sync: greenthread/sync StreamServer, talk(conn) without await, one
 *     sync greenlet (OS thread) per connection
 *   - node: Node `net` (socket.on('data') -> socket.write)
 *   - c: a C epoll server (bench/c/echo_epoll.c, cc -O2): the limit
 *   - gevent: the seed's own gevent server (bench/gevent_echo_server.py),
 *     with GEVENT_PYTHON naming a Python that has gevent
 * The load comes from bench/c/loadgen.c (one thread, epoll), a separate process that stops by itself. With taskset
 * and two CPUs or more, the load generator runs on CPU 0 and the server on
 * the others (see _setup.ts), so that the two never share a core.
 *
 *   node dist/bench/echo.js <server> [--clients 500] [--seconds 3] [--warmup 1] [--workers N]
 *
 * prints one JSON line (the load generator's, plus where each side ran).
 * --workers sets the greenthread runtime's worker threads (default: one
 * per core).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'

import { buildCPrograms, cServerPath, loadgenPath, pinning, root } from './_setup'

type Load = { msgs: number; msgs_per_sec: number; p50_us: number; p99_us: number; errors: number; unfinished: number }

const nodeServer = path.join(__dirname, 'echo-server.js')

function serverCommand(id: string, clients: number, workers?: number): { command: string; args: string[]; env: Record<string, string> } {
  const env: Record<string, string> = workers === undefined ? {} : { GREENTHREAD_WORKERS: String(workers) }
  switch (id) {
    case 'js':
    case 'native':
    case 'node':
      return { command: process.execPath, args: [nodeServer, id], env }
    case 'sync':
      // A thread per connection: room for every client.
      return { command: process.execPath, args: [nodeServer, 'sync'], env: { ...env, GREENTHREAD_SYNC_MAX_THREADS: String(Math.max(1000, clients + 100)) } }
    case 'c':
      return { command: cServerPath, args: ['0'], env }
    case 'gevent': {
      const python = process.env.GEVENT_PYTHON
      if (!python) throw new Error('the gevent server needs GEVENT_PYTHON')
      return { command: python, args: [path.join(root, 'bench', 'gevent_echo_server.py'), '0'], env }
    }
    default:
      throw new Error(`unknown server ${id}; one of js, native, sync, node, c, gevent`)
  }
}

const pins = pinning()

/** `command args`, run under `taskset -c cpus` when pinning. */
function onCpus(cpus: string, command: string, args: string[]): [string, string[]] {
  return pins.pinned ? ['taskset', ['-c', cpus, command, ...args]] : [command, args]
}

/** Starts a server and resolves with its port once it prints "listening PORT". */
function startServer(
  command: string,
  args: string[],
  env: Record<string, string>,
  maxSeconds: number,
): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const [program, programArgs] = onCpus(pins.serverCpus, command, [...args, String(maxSeconds)])
    const child = spawn(program, programArgs, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } })
    let out = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${command} ${args.join(' ')} did not start listening`))
    }, 10_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const m = /listening (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({ child, port: Number(m[1]) })
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${command} exited with ${code} before listening`))
    })
  })
}

function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000)
    child.once('exit', () => {
      clearTimeout(kill)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/** User + system CPU seconds of process `pid` (all its threads), from /proc; `undefined` where there is none. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces): utime is the 14th field, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return undefined
  }
}

/** `getconf CLK_TCK`: 100 on Linux everywhere that matters. */
const CLOCK_TICKS = 100

function option(name: string, fallback: number | undefined): number | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}

async function main(): Promise<void> {
  const id = process.argv[2]
  const clients = option('clients', 500)!
  const seconds = option('seconds', 3)!
  const warmup = option('warmup', 1)!
  const workers = option('workers', undefined)
  const built = buildCPrograms()
  if (built !== undefined) throw new Error(built)
  const server = serverCommand(id, clients, workers)
  const { child, port } = await startServer(server.command, server.args, server.env, 2 * (seconds + warmup) + 60)
  try {
    const [program, args] = onCpus(pins.loadCpus, loadgenPath, [
      ...['--port', String(port), '--clients', String(clients), '--size', '32'],
      ...['--seconds', String(seconds), '--warmup', String(warmup)],
    ])
    // The server's CPU time (user + system, all threads) over the measured
    // seconds: sampled every 100 ms; the load generator measures its last
    // `seconds` before it prints (after connecting its clients and warming
    // up, however long that took), so the window is the one that ends when
    // its output arrives.
    const load = await new Promise<Load & { cpu_s?: number; measured_s?: number }>((resolve, reject) => {
      const gen = spawn(program, args, { stdio: ['ignore', 'pipe', 'inherit'] })
      let out = ''
      const samples: Array<{ cpu: number; at: number }> = []
      const sample = (): void => {
        const cpu = cpuSeconds(child.pid!)
        if (cpu !== undefined) samples.push({ cpu, at: performance.now() })
      }
      let measured: { cpu_s: number; measured_s: number } | undefined
      const sampler = setInterval(sample, 100)
      const kill = setTimeout(() => gen.kill('SIGKILL'), (2 * (seconds + warmup) + 60) * 1000)
      gen.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        if (measured !== undefined || !out.includes('\n')) return
        sample()
        const last = samples[samples.length - 1]
        const first = samples.find((x) => x.at >= last.at - seconds * 1000)
        if (last !== undefined && first !== undefined && last.at > first.at) {
          measured = { cpu_s: last.cpu - first.cpu, measured_s: (last.at - first.at) / 1000 }
        }
      })
      gen.on('error', reject)
      gen.on('exit', (code) => {
        clearInterval(sampler)
        clearTimeout(kill)
        if (code !== 0) return reject(new Error(`the load generator exited with ${code}`))
        const result = JSON.parse(out.trim().split('\n').pop()!) as Load
        resolve({ ...result, ...measured })
      })
    })
    const perMsg = load.cpu_s !== undefined && load.measured_s ? (load.cpu_s / (load.msgs_per_sec * load.measured_s)) * 1e6 : undefined
    console.log(
      JSON.stringify({
        case: id,
        ...load,
        // The server's CPU time per message (user + system), in microseconds.
        cpu_us_per_msg: perMsg === undefined ? undefined : Math.round(perMsg * 100) / 100,
        ops: load.msgs,
        ms: seconds * 1000,
        workers,
        pinned: pins.pinned,
        serverCpus: pins.serverCpus,
        loadCpus: pins.loadCpus,
      }),
    )
  } finally {
    await stopServer(child)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
