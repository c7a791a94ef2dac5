/**
 * DistributedExecutor over BullMQ on a real Redis: this suite starts its own
 * redis-server (a free port, a temporary directory, no persistence) and two
 * worker processes running the `greenthread-worker` CLI, and stops them at
 * the end. Without redis-server the suite is skipped, saying so, except
 * under CI=true, where that is a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'
import { Queue as BullQueue } from 'bullmq'

import { BrokenExecutor, CancelledError, DistributedExecutor, TimeoutError, asCompleted, runWorker, type Future } from '../index'
import { describeExit, runNode } from './_child'
import type * as Tasks from './_distributed-tasks'

const serial = test.serial
const root = path.join(__dirname, '..', '..')
const CLI = path.join(root, 'scripts', 'greenthread-worker.js')
const TASKS = path.join(__dirname, '_distributed-tasks.js')
const QUEUE = 'work'

const inCI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false' && process.env.CI !== '0'
const hasRedis = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0

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

/** Resolves once `child` printed a line matching `pattern`; rejects if it exits first or `ms` pass. */
function waitForLine(child: ChildProcess, pattern: RegExp, ms: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    const onData = (d: Buffer): void => {
      out += d
      const line = out.split('\n').find((l) => pattern.test(l))
      if (line !== undefined) finish(() => resolve(line))
    }
    const onExit = (code: number | null, signal: string | null): void => finish(() => reject(new Error(`${what} exited (${code ?? signal}) before ready:\n${out}`)))
    const timer = setTimeout(() => finish(() => reject(new Error(`${what} not ready after ${ms} ms:\n${out}`))), ms)
    const finish = (then: () => void): void => {
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      child.stderr!.off('data', onData)
      child.off('exit', onExit)
      then()
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.once('exit', onExit)
  })
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

/** Counts each future's done callbacks: a future settles exactly once. */
function counted<T>(fs: Future<T>[]): number[] {
  const calls = fs.map(() => 0)
  fs.forEach((f, i) => f.addDoneCallback(() => calls[i]++))
  return calls
}

if (!hasRedis) {
  if (inCI) {
    test('distributed: redis-server is installed (required under CI)', (t) => {
      t.fail('redis-server is not on PATH, and CI is set: install it (Debian: apt-get install -y redis-server) so that the DistributedExecutor suite runs')
    })
  } else {
    test.skip('distributed: skipped, redis-server is not on PATH (install it, e.g. apt-get install -y redis-server, to run this suite)', () => {})
  }
} else {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'greenthread-distributed-'))
  const marks = path.join(tmp, 'marks')
  fs.mkdirSync(marks)
  let port = 0
  let redis: ChildProcess | undefined
  const workers: ChildProcess[] = []
  const executors: DistributedExecutor<typeof Tasks>[] = []
  let keyCounter = 0
  const key = (name: string): string => `${name}-${++keyCounter}`
  const runs = (k: string): string[] => {
    const file = path.join(marks, k)
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : []
  }

  async function startRedis(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', tmp, '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    redis = child
    await waitForLine(child, /Ready to accept connections/, 10_000, 'redis-server')
  }

  async function stopRedis(): Promise<void> {
    const child = redis
    redis = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }

  async function startWorker(queue = QUEUE): Promise<ChildProcess> {
    const child = spawn(
      process.execPath,
      [CLI, '--redis', `127.0.0.1:${port}`, '--queue', queue, '--module', TASKS, '--concurrency', '2', '--stalled-interval', '500', '--lock-duration', '2000', '--quiet'],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: root },
    )
    workers.push(child)
    await waitForLine(child, new RegExp(`ready: queue ${queue} `), 20_000, 'greenthread-worker')
    return child
  }

  const live = (): ChildProcess[] => workers.filter((w) => w.exitCode === null && w.signalCode === null)

  function executor(options: { queue?: string; attempts?: number } = {}): DistributedExecutor<typeof Tasks> {
    const e = new DistributedExecutor<typeof Tasks>({ connection: { host: '127.0.0.1', port }, queue: options.queue ?? QUEUE, module: TASKS, attempts: options.attempts })
    executors.push(e)
    return e
  }

  test.before(async () => {
    port = await freePort()
    await startRedis()
    await Promise.all([startWorker(), startWorker()])
  })

  test.after.always(async () => {
    await Promise.all(executors.map((e) => e.shutdown({ wait: false, cancelFutures: true }).catch(() => {})))
    for (const w of live()) w.kill('SIGKILL')
    await stopRedis()
    fs.rmSync(tmp, { recursive: true, force: true })
  })

  serial('map yields the results in input order, and times out', async (t) => {
    const ex = executor()
    await ex.ready()
    const items = Array.from({ length: 60 }, (_, i) => i)
    const out: number[] = []
    for await (const v of ex.map('square', items)) out.push(v)
    t.deepEqual(out, items.map((i) => i * i))
    const slow = ex.map('nap', [2000], { timeoutMs: 100 })
    await t.throwsAsync(slow.next(), { instanceOf: TimeoutError, message: 'map(): the results were not all done within timeoutMs (100 ms)' })
    // With buffersize the input is read a few jobs ahead of the results taken (eagerly, this one would fail the call).
    let read = 0
    const endless = function* (): Generator<number> {
      for (let i = 0; ; i++) {
        if (++read > 100) throw new Error('the input was read far ahead of the results')
        yield i
      }
    }
    const lazy: number[] = []
    for await (const v of ex.map('square', endless(), { buffersize: 3 })) {
      lazy.push(v)
      t.true(read <= lazy.length + 4, `${read} items read with ${lazy.length} results taken`)
      if (lazy.length === 8) break
    }
    t.deepEqual(lazy, [0, 1, 4, 9, 16, 25, 36, 49])
    // Arguments and results are structured clones.
    const value = { when: new Date(0), list: [1n, 'two', new Map([[3, new Set([4])]])], bytes: new Uint8Array([5, 6]) }
    t.deepEqual(await ex.submit('echo', value).result(), value)
  })

  serial('a task error arrives with its name, message and properties, after the configured attempts', async (t) => {
    const ex = executor()
    const err = (await ex.submit('fail', 'boom').exception()) as Tasks.TaskError
    t.true(err instanceof Error)
    t.is(err.name, 'TaskError')
    t.is(err.message, 'boom')
    t.is(err.code, 'E_TASK')
    t.regex(err.stack!, /at fail /)
    const empty = (await ex.submit('failEmpty').exception()) as Tasks.TaskError
    t.deepEqual([empty.name, empty.message, empty.code], ['TaskError', '', 'E_TASK'])
    const caused = (await ex.submit('failCaused', 'outer').exception()) as Error
    const cause = caused.cause as RangeError & { code: string }
    t.true(cause instanceof RangeError)
    t.deepEqual([cause.message, cause.code], ['outer (cause)', 'E_CAUSE'])

    const retrying = executor({ attempts: 3 })
    const k1 = key('flaky')
    t.is(await retrying.submit('flaky', marks, k1, 2).result(), 3)
    t.is(runs(k1).length, 3)

    const twice = executor({ attempts: 2 })
    const k2 = key('flaky')
    const e2 = (await twice.submit('flaky', marks, k2, 99).exception()) as Tasks.TaskError
    t.is(e2.name, 'TaskError')
    t.is(e2.message, `run 2 of ${k2} fails`)
    t.is(runs(k2).length, 2)
    // An error named UnrecoverableError ends the attempts.
    const k3 = key('refuse')
    const e3 = (await twice.submit('refuse', marks, k3).exception()) as Error
    t.is(e3.name, 'UnrecoverableError')
    t.is(e3.message, `${k3} refused`)
    t.is(runs(k3).length, 1)

    // A name the workers' module lacks is refused by the worker (no retries), or here when options.module is set.
    const blind = new DistributedExecutor<typeof Tasks>({ connection: `redis://127.0.0.1:${port}`, queue: QUEUE, attempts: 3 })
    executors.push(blind)
    const unknown = (await blind.submit('nope' as 'echo', 1).exception()) as Error
    t.is(unknown.name, 'TypeError')
    t.regex(unknown.message, /no task named "nope"/)
    t.throws(() => ex.submit('nope' as 'echo', 1), { instanceOf: TypeError, message: /name "nope" is not a function export/ })
    t.throws(() => ex.map(42 as any, []), { instanceOf: TypeError, message: /^name must be the name of an export/ })
    t.throws(() => ex.map('square', 5 as any), { instanceOf: TypeError, message: /^iterable must be an iterable/ })
    t.throws(() => ex.map('square', [], { timeoutMs: -1 }), { instanceOf: RangeError, message: /^options\.timeoutMs/ })
    // What cannot be sent: a TypeError naming the argument, at once; a result that cannot come back fails its future.
    t.throws(() => ex.submit('echo', (() => 1) as any), { instanceOf: TypeError, message: /^args\[0\] cannot be sent through Redis/ })
    t.throws(() => ex.map('echo', [1, Symbol('s')] as any[]), { instanceOf: TypeError, message: /^iterable\[1\] cannot be sent/ })
    const unsendable = (await ex.submit('unsendable').exception()) as Error
    t.regex(unsendable.message, /could not be cloned/)
    // It would not be at the next attempt either: no retry.
    const kc = key('unsendable')
    t.regex(((await twice.submit('unsendable', marks, kc).exception()) as Error).message, /could not be cloned/)
    t.is(runs(kc).length, 1)
    // A task that kills its pool child fails with BrokenProcessPool; that worker carries on with a fresh pool.
    const crashed = (await ex.submit('crash').exception()) as Error
    t.is(crashed.name, 'BrokenProcessPool')
    t.regex(crashed.message, /exit code 3/)
    const after = Array.from({ length: 12 }, (_, i) => ex.submit('where', 100, i))
    const pids = new Set<number>()
    for (const f of after) pids.add((await f.result({ timeoutMs: 10_000 }))[1])
    t.is(pids.size, 2)
  })

  serial('bad options are TypeErrors and RangeErrors naming the option', async (t) => {
    const connection = { host: '127.0.0.1', port }
    t.throws(() => new DistributedExecutor(undefined as any), { instanceOf: TypeError, message: /^options must be/ })
    t.throws(() => new DistributedExecutor({ connection: 5 as any, queue: 'q' }), { instanceOf: TypeError, message: /^options\.connection must be/ })
    t.throws(() => new DistributedExecutor({ connection: 'http://x', queue: 'q' }), { instanceOf: TypeError, message: /^options\.connection must be a redis:\/\// })
    t.throws(() => new DistributedExecutor({ connection: { port: 70000 }, queue: 'q' }), { instanceOf: RangeError, message: /^options\.connection\.port/ })
    t.throws(() => new DistributedExecutor({ connection, queue: 'a:b' }), { instanceOf: RangeError, message: /^options\.queue/ })
    t.throws(() => new DistributedExecutor({ connection, queue: '' }), { instanceOf: TypeError, message: /^options\.queue/ })
    t.throws(() => new DistributedExecutor({ connection, queue: 'q', attempts: 0 }), { instanceOf: RangeError, message: /^options\.attempts/ })
    t.throws(() => new DistributedExecutor({ connection, queue: 'q', module: path.join(tmp, 'missing.js') }), { instanceOf: TypeError, message: /^options\.module/ })
    await t.throwsAsync(runWorker({ connection, queue: 'q', module: TASKS, pool: 'fiber' as any }), { instanceOf: TypeError, message: /^options\.pool/ })
    await t.throwsAsync(runWorker({ connection, queue: 'q', module: TASKS, concurrency: 0 }), { instanceOf: RangeError, message: /^options\.concurrency/ })
    await t.throwsAsync(runWorker({ connection, queue: 'q' } as any), { instanceOf: TypeError, message: /^options\.module/ })
    // Node's timers take at most 2^31 - 1 ms: longer ones fired at once (a connect given up at once, a stall check every 1 ms).
    t.throws(() => new DistributedExecutor({ connection, queue: 'q', connectTimeoutMs: 2 ** 31 }), { instanceOf: RangeError, message: /^options\.connectTimeoutMs must be at most/ })
    t.throws(() => new DistributedExecutor({ connection, queue: 'q', reconnectTimeoutMs: 1e10 }), { instanceOf: RangeError, message: /^options\.reconnectTimeoutMs must be at most/ })
    await t.throwsAsync(runWorker({ connection, queue: 'q', module: TASKS, stalledIntervalMs: 2 ** 31 }), { instanceOf: RangeError, message: /^options\.stalledIntervalMs must be at most/ })
    await t.throwsAsync(runWorker({ connection, queue: 'q', module: TASKS, connectTimeoutMs: 2 ** 31 }), { instanceOf: RangeError, message: /^options\.connectTimeoutMs must be at most/ })
    // No connection answers in 0 ms: that only ever failed, blaming Redis.
    t.throws(() => new DistributedExecutor({ connection, queue: 'q', connectTimeoutMs: 0 }), { instanceOf: RangeError, message: /^options\.connectTimeoutMs must be at least 1 ms/ })
    await t.throwsAsync(runWorker({ connection, queue: 'q', module: TASKS, connectTimeoutMs: 0 }), { instanceOf: RangeError, message: /^options\.connectTimeoutMs must be at least 1 ms/ })
    // A report every 0 ms flooded the terminal with NaN/s.
    const cli = spawnSync(process.execPath, [CLI, '--redis', '127.0.0.1:1', '--queue', 'q', '--module', TASKS, '--interval', '0'], { encoding: 'utf8', timeout: 10_000 })
    t.is(cli.status, 2)
    t.regex(cli.stderr, /--interval must be at least 1 ms/)
  })

  serial('a job whose worker died in a later attempt fails with that failure, not with what an earlier attempt threw', async (t) => {
    const queue = 'stale'
    const ex = executor({ queue, attempts: 2 })
    await ex.ready()
    // No stall allowed: a job whose worker went silent fails at the next check.
    const strictWorker = async (): Promise<ChildProcess> => {
      const args = [CLI, '--redis', `127.0.0.1:${port}`, '--queue', queue, '--module', TASKS, '--concurrency', '1']
      const child = spawn(process.execPath, [...args, '--stalled-interval', '500', '--lock-duration', '1000', '--max-stalled', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: root })
      workers.push(child)
      await waitForLine(child, new RegExp(`ready: queue ${queue} `), 20_000, 'greenthread-worker')
      return child
    }
    const first = await strictWorker()
    const k = key('stale')
    const f = ex.submit('numberThenHang', marks, k)
    await until('the second attempt runs', () => runs(k).length === 2, 20_000)
    first.kill('SIGKILL')
    const second = await strictWorker()
    try {
      const err = await f.exception({ timeoutMs: 30_000 })
      t.true(err instanceof Error, `got ${String(err)}`)
      t.regex((err as Error).message, /stalled/)
    } finally {
      // The other tests count the live workers of the main queue.
      second.kill('SIGKILL')
    }
  })

  serial('a job waiting for its retry (after a failed attempt) is not running, and cancel() takes it back', async (t) => {
    const ex = new DistributedExecutor<typeof Tasks>({ connection: { host: '127.0.0.1', port }, queue: 'backoff', module: TASKS, attempts: 2, backoffMs: 5000 })
    executors.push(ex)
    const worker = await runWorker({ connection: { host: '127.0.0.1', port }, queue: 'backoff', module: TASKS, concurrency: 1, pool: 'thread' })
    try {
      const k = key('backoff')
      const f = ex.submit('flaky', marks, k, 1)
      await until('the first attempt ran', () => runs(k).length === 1, 10_000)
      await until('the job waits for its retry', () => !f.running(), 3000)
      t.true(f.cancel())
      await t.throwsAsync(f.result(), { instanceOf: CancelledError })
      await sleep(6000)
      t.is(runs(k).length, 1, 'not retried after the cancel')
    } finally {
      await worker.close()
    }
  })

  serial('a Redis that takes no more clients while the executor sets up: ready() and the futures fail within connectTimeoutMs, and shutdown returns', async (t) => {
    const server = await ownRedis(['--save', ''])
    try {
      // The executor's first connection gets in; bullmq's find no room.
      t.is(spawnSync('redis-cli', ['-p', String(server.port), 'config', 'set', 'maxclients', '2'], { encoding: 'utf8' }).stdout.trim(), 'OK')
      const ex = new DistributedExecutor<typeof Tasks>({ connection: { host: '127.0.0.1', port: server.port }, queue: 'full', module: TASKS, connectTimeoutMs: 1000 })
      executors.push(ex)
      const f = ex.submit('square', 2)
      const started = performance.now()
      await t.throwsAsync(ex.ready(), { message: /did not answer within 1000 ms/ })
      t.true(performance.now() - started < 10_000, 'given up within a few connect timeouts')
      t.true((await f.exception({ timeoutMs: 5000 })) instanceof BrokenExecutor)
      await ex.shutdown({ cancelFutures: true })
    } finally {
      await server.stop()
    }
  })

  serial('runWorker against a Redis with one free client slot (enough for its probe, not for bullmq): rejects naming the address within connectTimeoutMs', async (t) => {
    const server = await ownRedis(['--save', ''])
    const hogs: net.Socket[] = []
    try {
      // maxclients 3, two taken: the probe gets in and leaves; bullmq needs two.
      t.is(spawnSync('redis-cli', ['-p', String(server.port), 'config', 'set', 'maxclients', '3'], { encoding: 'utf8' }).stdout.trim(), 'OK')
      for (let i = 0; i < 2; i++) {
        const hog = net.connect(server.port, '127.0.0.1')
        hog.on('error', () => {})
        hogs.push(hog)
        await new Promise((resolve) => hog.once('connect', resolve))
      }
      const started = performance.now()
      const worker = runWorker({ connection: { host: '127.0.0.1', port: server.port }, queue: 'one-slot', module: TASKS, concurrency: 1, pool: 'thread', connectTimeoutMs: 1000 })
      await t.throwsAsync(worker, { message: new RegExp(`Redis at 127.0.0.1:${server.port} did not take the worker's connections within 1000 ms`) })
      t.true(performance.now() - started < 10_000, 'given up within a few connect timeouts')
      // With room again, it starts.
      for (const hog of hogs.splice(0)) hog.destroy()
      const ready = await runWorker({ connection: { host: '127.0.0.1', port: server.port }, queue: 'one-slot', module: TASKS, concurrency: 1, pool: 'thread', connectTimeoutMs: 5000 })
      await ready.close()
    } finally {
      for (const hog of hogs) hog.destroy()
      await server.stop()
    }
  })

  serial('a Redis that stops answering the connections bullmq opens while the executor sets up: shutdown returns and no connection stays open', async (t) => {
    // The executor's first connection reaches Redis; later ones are accepted and never answered.
    const open = new Set<net.Socket>()
    let accepted = 0
    const proxy = net.createServer((client) => {
      open.add(client)
      client.on('close', () => open.delete(client))
      client.on('error', () => {})
      // Read (and drop) what comes: a paused socket would not see its peer's end.
      client.resume()
      if (++accepted === 1) {
        const upstream = net.connect(port, '127.0.0.1')
        client.pipe(upstream).pipe(client)
        upstream.on('error', () => client.destroy())
        client.on('close', () => upstream.destroy())
      }
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    try {
      const ex = new DistributedExecutor<typeof Tasks>({ connection: { host: '127.0.0.1', port: (proxy.address() as net.AddressInfo).port }, queue: 'mute', module: TASKS, connectTimeoutMs: 1000, reconnectTimeoutMs: 2000 })
      await t.throwsAsync(ex.ready(), { message: /did not answer within 1000 ms/ })
      const started = performance.now()
      const returned = await Promise.race([ex.shutdown().then(() => true), sleep(10_000).then(() => false)])
      t.true(returned, 'shutdown() returned')
      t.true(performance.now() - started < 5000)
      await until('every connection to the mute Redis is closed', () => open.size === 0, 5000)
      t.true(accepted >= 2)
    } finally {
      for (const socket of open) socket.destroy()
      proxy.close()
    }
  })

  serial('cancel removes a job no worker has taken; a running job cannot be cancelled', async (t) => {
    // A queue nobody serves yet: its jobs stay waiting.
    const idleQueue = 'idle'
    const ex = executor({ queue: idleQueue })
    await ex.ready()
    const k = key('cancelled')
    const doomed = ex.submit('marked', marks, k, 0)
    const kept = ex.submit('nap', 0, 'kept')
    await sleep(200)
    t.false(doomed.running())
    t.true(doomed.cancel())
    t.true(doomed.cancelled())
    await t.throwsAsync(doomed.result(), { instanceOf: CancelledError })
    await sleep(200)
    // A worker started now (in this process, on threads) finds only the job left.
    const worker = await runWorker({ connection: { host: '127.0.0.1', port }, queue: idleQueue, module: TASKS, concurrency: 1, pool: 'thread' })
    try {
      t.is(await kept.result({ timeoutMs: 10_000 }), 'kept')
      t.deepEqual(runs(k), [])
      t.is(worker.done, 1)
    } finally {
      await worker.close()
    }

    const busy = executor()
    const running = busy.submit('nap', 1500, 'ran')
    await until('the job to be taken', () => running.running(), 5000)
    t.false(running.cancel())
    t.is(await running.result(), 'ran')
  })

  serial('asCompleted across both workers yields every future once, in completion order', async (t) => {
    const ex = executor()
    // More jobs than one worker holds (2 running + 2 prefetched): both take some.
    const fs = Array.from({ length: 12 }, (_, i) => ex.submit('where', 150 + (i % 3) * 100, i))
    const order: number[] = []
    fs.forEach((f, i) => f.addDoneCallback(() => order.push(i)))
    const yielded: number[] = []
    const pids = new Set<number>()
    for await (const f of asCompleted(fs, { timeoutMs: 20_000 })) {
      yielded.push(fs.indexOf(f))
      const [value, pid] = await f.result()
      t.is(value, fs.indexOf(f))
      pids.add(pid)
    }
    t.deepEqual(yielded, order)
    t.is(new Set(yielded).size, 12)
    t.deepEqual([...pids].sort(), live().map((w) => w.pid!).sort())
  })

  serial('completion events trimmed from the stream before they were read: the futures still settle, soon', async (t) => {
    const ex = executor()
    const fs = [200, 300, 400, 500].map((ms, i) => ex.submit('nap', ms, i))
    await until('all four to be taken', () => fs.every((f) => f.running()), 10_000)
    // Another client trims the event stream while this thread is blocked (as by a long computation).
    const trimmer = spawn(
      process.execPath,
      ['-e', `const R = require('ioredis'); const r = new R(${port}, '127.0.0.1'); setTimeout(() => r.xtrim('bull:${QUEUE}:events', 'MAXLEN', 0).then(() => r.quit()), 900)`],
      { cwd: root, stdio: 'ignore' },
    )
    const trimmed = new Promise((resolve) => trimmer.once('exit', resolve))
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000)
    await trimmed
    // Well before the idle sweep (10 s): the watchdog sees the stream moved past what was read.
    const results = await Promise.all(fs.map((f) => f.result({ timeoutMs: 5000 })))
    t.deepEqual(results, [0, 1, 2, 3])
  })

  serial('shutdown waits for the jobs in flight; with cancelFutures it cancels those not taken', async (t) => {
    const ex = executor()
    const fs = Array.from({ length: 6 }, (_, i) => ex.submit('nap', 300, i))
    const calls = counted(fs)
    await ex.shutdown()
    t.true(fs.every((f) => f.done()))
    t.deepEqual(await Promise.all(fs.map((f) => f.result())), [0, 1, 2, 3, 4, 5])
    t.deepEqual(calls, [1, 1, 1, 1, 1, 1])
    t.throws(() => ex.submit('square', 1), { message: /after shutdown/ })

    const idle = executor({ queue: 'idle-2' })
    const queued = [idle.submit('square', 1), idle.submit('square', 2)]
    await idle.shutdown({ cancelFutures: true })
    t.true(queued.every((f) => f.cancelled()))

    // await using shuts down and waits too.
    let f!: Future<unknown>
    {
      await using scoped = new DistributedExecutor<typeof Tasks>({ connection: { host: '127.0.0.1', port }, queue: QUEUE })
      f = scoped.submit('nap', 200, 7)
    }
    t.true(f.done())
    t.is(await f.result(), 7)
  })

  serial('a worker killed mid-task: another worker runs the job again and the future settles once', async (t) => {
    const ex = executor()
    const k = key('killed')
    const f = ex.submit('marked', marks, k, 1500)
    const calls = counted([f])
    await until('the task to start', () => runs(k).length === 1, 10_000)
    const victimPid = Number(runs(k)[0])
    const victim = live().find((w) => w.pid === victimPid)
    t.truthy(victim, `the task ran in worker ${victimPid}, not one of ours`)
    victim!.kill('SIGKILL')
    // Its lock lapses (2 s), the other worker's stall check (every 0.5 s) puts the job back.
    const survivor = await f.result({ timeoutMs: 20_000 })
    t.not(survivor, victimPid)
    t.deepEqual(runs(k).map(Number), [victimPid, survivor])
    await sleep(300)
    t.deepEqual(calls, [1])
    await startWorker()
  })

  serial('Redis restarted mid-run (its data lost): every future settles, once, with its own result', async (t) => {
    const ex = executor()
    await ex.ready()
    const fs = Array.from({ length: 24 }, (_, i) => ex.submit('nap', 250, i))
    const calls = counted(fs)
    // Some done, some running, some waiting when it goes.
    await until('the first results', () => fs.filter((f) => f.done()).length >= 4, 15_000)
    await stopRedis()
    await sleep(300)
    await startRedis()
    const results = await Promise.all(fs.map((f) => f.result({ timeoutMs: 40_000 })))
    t.deepEqual(results, Array.from({ length: 24 }, (_, i) => i))
    await sleep(300)
    t.deepEqual(calls, Array(24).fill(1))
    // And the queue still works afterwards.
    t.is(await ex.submit('square', 9).result({ timeoutMs: 20_000 }), 81)
  })

  serial('Redis unreachable at start: a prompt Error naming the address, no endless reconnecting', async (t) => {
    const dead = await freePort()
    const started = Date.now()
    const ex = new DistributedExecutor({ connection: { host: '127.0.0.1', port: dead }, queue: 'q', connectTimeoutMs: 500 })
    const f = ex.submit('square', 2)
    const err = await t.throwsAsync(ex.ready(), { message: new RegExp(`cannot connect to Redis at 127\\.0\\.0\\.1:${dead}`) })
    t.true(Date.now() - started < 3000)
    const failed = await f.exception()
    t.true(failed instanceof BrokenExecutor)
    t.true((failed as Error).message.startsWith(err!.message))
    t.throws(() => ex.submit('square', 3), { instanceOf: BrokenExecutor })
    await t.throwsAsync(DistributedExecutor.connect({ connection: `redis://127.0.0.1:${dead}`, queue: 'q', connectTimeoutMs: 300 }), {
      message: new RegExp(`redis://127\\.0\\.0\\.1:${dead}`),
    })
    await t.throwsAsync(runWorker({ connection: { host: '127.0.0.1', port: dead }, queue: 'q', module: TASKS, connectTimeoutMs: 300 }), {
      message: new RegExp(`127\\.0\\.0\\.1:${dead}`),
    })
    // Nothing is left behind that keeps the process alive half a second later
    // (ioredis' disconnect of a refused connection armed a 2 s timer: a
    // process lingered that long; a connection attempt in flight at the
    // deadline is refused in a moment); the pipe is the child's stdout.
    const left = await runNode(
      [
        '-e',
        `const { DistributedExecutor, runWorker } = require(${JSON.stringify(root)})
        const connection = { host: '127.0.0.1', port: ${dead} }
        Promise.allSettled([
          new DistributedExecutor({ connection, queue: 'q', connectTimeoutMs: 300 }).ready(),
          DistributedExecutor.connect({ connection, queue: 'q', connectTimeoutMs: 300 }),
          runWorker({ connection, queue: 'q', module: ${JSON.stringify(TASKS)}, connectTimeoutMs: 300 }),
        ]).then((all) => setTimeout(() => setImmediate(() => console.log(all.map((r) => r.status).join(), JSON.stringify(process.getActiveResourcesInfo().filter((r) => r !== 'PipeWrap')))), 500))`,
      ],
      { timeoutMs: 20_000 },
    )
    t.is(left.status, 0, describeExit(left))
    t.is(left.stdout.trim(), 'rejected,rejected,rejected []')
    // The CLI, with its default timeout (3 s): exit code 1 and the address.
    const cliStarted = Date.now()
    const r = await runNode([CLI, '--redis', `127.0.0.1:${dead}`, '--queue', 'q', '--module', TASKS], { timeoutMs: 20_000, cwd: root })
    t.is(r.status, 1, describeExit(r))
    t.regex(r.stderr, new RegExp(`cannot connect to Redis at redis://127\\.0\\.0\\.1:${dead}`))
    t.true(Date.now() - cliStarted < 8000)
  })

  serial('a server that accepts the connection but never answers: ready() and runWorker() fail within connectTimeoutMs', async (t) => {
    const silent = net.createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const port = (silent.address() as net.AddressInfo).port
    try {
      const started = Date.now()
      const ex = new DistributedExecutor({ connection: { host: '127.0.0.1', port }, queue: 'q', connectTimeoutMs: 500 })
      await t.throwsAsync(ex.ready(), { message: new RegExp(`cannot connect to Redis at 127\\.0\\.0\\.1:${port}.*did not answer`) })
      t.true(Date.now() - started < 5000, `took ${Date.now() - started} ms`)
      await t.throwsAsync(runWorker({ connection: { host: '127.0.0.1', port }, queue: 'q', module: TASKS, connectTimeoutMs: 300 }), {
        message: /did not answer/,
      })
      // The connection given up leaves nothing that keeps a process alive half a
      // second later (ioredis' disconnect waited 2 s for a server that never
      // closes its side).
      const left = await runNode(
        [
          '-e',
          `require(${JSON.stringify(root)}).runWorker({ connection: { host: '127.0.0.1', port: ${port} }, queue: 'q', module: ${JSON.stringify(TASKS)}, connectTimeoutMs: 300 })
            .catch((err) => setTimeout(() => setImmediate(() => console.log(err.message.includes('did not answer'), JSON.stringify(process.getActiveResourcesInfo().filter((r) => r !== 'PipeWrap')))), 500))`,
        ],
        { timeoutMs: 20_000 },
      )
      t.is(left.status, 0, describeExit(left))
      t.is(left.stdout.trim(), 'true []')
    } finally {
      silent.close()
    }
  })

  serial('a Redis that stops answering without closing the connection breaks the executor after reconnectTimeoutMs; shutdown lets go', async (t) => {
    // SIGSTOP: the kernel keeps the connection open and takes what is sent, as across a network partition.
    const stoppedPort = await freePort()
    const stopped = spawn('redis-server', ['--port', String(stoppedPort), '--bind', '127.0.0.1', '--dir', tmp, '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    try {
      await waitForLine(stopped, /Ready to accept connections/, 10_000, 'redis-server')
      const ex = await DistributedExecutor.connect({ connection: { host: '127.0.0.1', port: stoppedPort }, queue: 'nobody-serves-this', reconnectTimeoutMs: 1000 })
      const f = ex.submit('square', 3)
      await sleep(200)
      stopped.kill('SIGSTOP')
      const stoppedAt = Date.now()
      const err = await f.exception({ timeoutMs: 15_000 })
      t.true(err instanceof BrokenExecutor, String(err))
      t.regex((err as Error).message, new RegExp(`Redis at 127\\.0\\.0\\.1:${stoppedPort} has not answered for more than 1000 ms`))
      t.true(Date.now() - stoppedAt < 8000, `broke after ${Date.now() - stoppedAt} ms`)
      t.throws(() => ex.submit('square', 4), { instanceOf: BrokenExecutor })
      const shutdownAt = Date.now()
      await ex.shutdown()
      t.true(Date.now() - shutdownAt < 8000, `shutdown took ${Date.now() - shutdownAt} ms`)
    } finally {
      stopped.kill('SIGKILL')
    }
    // A healthy Redis answers the executor's pings: a task longer than reconnectTimeoutMs still settles.
    const patient = new DistributedExecutor<typeof Tasks>({ connection: { host: '127.0.0.1', port }, queue: QUEUE, module: TASKS, reconnectTimeoutMs: 1000 })
    executors.push(patient)
    t.is(await patient.submit('nap', 2500, 'slow').result({ timeoutMs: 20_000 }), 'slow')
  })

  serial('jobs removed by another client without an event (Queue.drain, obliterate) cancel their futures; they are not added again', async (t) => {
    const cases = ['drain', 'obliterate'].map(async (how) => {
      const queue = `removed-by-${how}`
      const ex = new DistributedExecutor<typeof Tasks>({ connection: { host: '127.0.0.1', port }, queue, module: TASKS })
      executors.push(ex)
      await ex.ready()
      const fs = [1, 2, 3].map((i) => ex.submit('square', i))
      const other = new BullQueue(queue, { connection: { host: '127.0.0.1', port } })
      try {
        while ((await other.getWaitingCount()) < 3) await sleep(20)
        if (how === 'drain') await other.drain()
        else await other.obliterate({ force: true })
        for (const f of fs) {
          const cancelled = await f.exception({ timeoutMs: 25_000 }).then(
            () => false,
            (err: unknown) => err instanceof CancelledError,
          )
          t.true(cancelled, `${how}: ${f}`)
        }
        t.is(await other.getWaitingCount(), 0, `${how}: the jobs were added again`)
      } finally {
        await other.close()
      }
    })
    await Promise.all(cases)
  })

  /** A redis-server of its own (`args` added), for a test that stops, restarts or starves it. */
  async function ownRedis(args: string[], dir = tmp, redisPort?: number): Promise<{ port: number; child: ChildProcess; stop(): Promise<void> }> {
    const p = redisPort ?? (await freePort())
    const child = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'no', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    await waitForLine(child, /Ready to accept connections/, 10_000, 'redis-server')
    return {
      port: p,
      child,
      stop: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGKILL')
        await exited
      },
    }
  }

  serial('Redis restarted from an older snapshot (its newest jobs lost): those jobs are added again and run', async (t) => {
    const dir = fs.mkdtempSync(path.join(tmp, 'rdb-'))
    let server = await ownRedis(['--save', '', '--dbfilename', 'dump.rdb'], dir)
    const connection = { host: '127.0.0.1', port: server.port }
    const ex = new DistributedExecutor<typeof Tasks>({ connection, queue: 'snapshot', module: TASKS })
    executors.push(ex)
    try {
      await ex.ready()
      const before = ex.submit('square', 3)
      const admin = new BullQueue('snapshot', { connection })
      while ((await admin.getWaitingCount()) < 1) await sleep(20)
      await admin.close()
      t.is(spawnSync('redis-cli', ['-p', String(server.port), 'save'], { encoding: 'utf8' }).stdout.trim(), 'OK')
      const after = [ex.submit('square', 4), ex.submit('square', 5)]
      await sleep(300)
      await server.stop()
      server = await ownRedis(['--save', '', '--dbfilename', 'dump.rdb'], dir, server.port)
      const worker = await runWorker({ connection, queue: 'snapshot', module: TASKS })
      try {
        t.deepEqual(await Promise.all([before, ...after].map((f) => f.result({ timeoutMs: 30_000 }))), [9, 16, 25])
      } finally {
        await worker.close()
      }
    } finally {
      await ex.shutdown({ wait: false, cancelFutures: true })
      await server.stop()
    }
  })

  serial('a failed job removed by age before its event was read fails its future (not CancelledError)', async (t) => {
    // A queue of its own: the first events read start a sweep (the stream is younger than the reader).
    const worker = await startWorker('aged')
    const ex = new DistributedExecutor<typeof Tasks>({ connection: { host: '127.0.0.1', port }, queue: 'aged', module: TASKS, keepJobsMs: 1000 })
    executors.push(ex)
    await ex.ready()
    // Failures over about 3 s: bullmq removes the old ones by age (1 s) as later ones fail.
    const fs = Array.from({ length: 80 }, (_, i) => (i % 2 ? ex.submit('failAfter', 150, `boom ${i}`) : ex.submit('square', i)))
    await sleep(50)
    // This thread is busy meanwhile (a lagging reader): the failed jobs are removed before their events are read.
    const busyUntil = Date.now() + 5000
    while (Date.now() < busyUntil);
    const outcomes = await Promise.all(fs.map((f) => f.result({ timeoutMs: 30_000 }).then((v) => v, (e: Error) => e)))
    outcomes.forEach((o, i) => {
      if (i % 2 === 0) t.is(o, i * i)
      else t.true(o instanceof Error && !(o instanceof CancelledError) && o.message.includes(`boom ${i}`), `task ${i}: ${o}`)
    })
    worker.kill('SIGKILL')
  })

  serial('Redis out of memory in the middle of a batch: only the jobs it refused fail, the others run once', async (t) => {
    const server = await ownRedis(['--save', '', '--maxmemory', '8mb', '--maxmemory-policy', 'noeviction'])
    const connection = { host: '127.0.0.1', port: server.port }
    const ex = new DistributedExecutor<typeof Tasks>({ connection, queue: 'full', module: TASKS })
    executors.push(ex)
    try {
      await ex.ready()
      const pad = 'p'.repeat(200_000)
      const keys = Array.from({ length: 60 }, () => key('oom'))
      const fs = keys.map((k) => ex.submit('marked', marks, k, 0, pad))
      const early = await Promise.all(fs.map((f) => f.exception({ timeoutMs: 3000 }).then((e) => e, () => 'pending')))
      const refused = early.filter((e) => e instanceof Error && /OOM/.test(e.message)).length
      t.true(refused > 0 && refused < 60, `${refused} refused`)
      t.is(spawnSync('redis-cli', ['-p', String(server.port), 'config', 'set', 'maxmemory', '0'], { encoding: 'utf8' }).stdout.trim(), 'OK')
      const worker = await runWorker({ connection, queue: 'full', module: TASKS })
      try {
        for (const [i, f] of fs.entries()) {
          const ran = await f.result({ timeoutMs: 30_000 }).then(() => true, () => false)
          t.is(runs(keys[i]).length, ran ? 1 : 0, `job ${i}`)
        }
      } finally {
        await worker.close()
      }
    } finally {
      await ex.shutdown({ wait: false, cancelFutures: true })
      await server.stop()
    }
  })

  serial('runWorker close({ force: true }) stops at once with a job in hand, and the process can exit soon after', async (t) => {
    const script = `
      const { runWorker } = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))})
      ;(async () => {
        const worker = await runWorker({ connection: { host: '127.0.0.1', port: ${port} }, queue: 'forced', module: ${JSON.stringify(TASKS)}, concurrency: 1 })
        console.log('ready')
        while (worker.running === 0) await new Promise((r) => setTimeout(r, 20))
        const started = Date.now()
        await worker.close({ force: true })
        console.log('closed in', Date.now() - started)
        process.on('exit', () => console.log('exited after', Date.now() - started))
      })()
    `
    const child = runNode(['-e', script], { timeoutMs: 30_000, cwd: root })
    const ex = executor({ queue: 'forced' })
    await ex.ready()
    const f = ex.submit('nap', 5000, 'late')
    const r = await child
    t.is(r.status, 0, describeExit(r))
    const exitedAfter = Number(/exited after (\d+)/.exec(r.stdout)?.[1])
    // Neither the job's 5 s nap nor a retry timer of bullmq's (15 s) holds it.
    t.true(exitedAfter < 4000, describeExit(r))
    // The job stays active in Redis (another worker would run it once its lock lapses).
    t.false(f.done())
  })

  serial('a process that exits with futures pending fails them before it goes', async (t) => {
    const script = `
      const { DistributedExecutor } = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))})
      const ex = new DistributedExecutor({ connection: { host: '127.0.0.1', port: ${port} }, queue: 'nobody-serves-this' })
      ex.ready().then(() => {
        const f = ex.submit('square', 4)
        // 'exit' listeners run no more promise jobs: the future's tag tells how it ended.
        f.addDoneCallback(() => console.log('settled', Object.prototype.toString.call(f)))
        setTimeout(() => process.exit(0), 100)
      })
    `
    const r = await runNode(['-e', script], { timeoutMs: 20_000, cwd: root })
    t.is(r.status, 0, describeExit(r))
    t.regex(r.stdout, /settled \[object Future raised\]/)
  })
}
