/**
 * Injected faults: workers that throw at the top level of their module, exit,
 * run out of memory or are SIGKILLed mid-task; a peer that resets the
 * connection in the middle of a multi-megabyte sendall; a kill in every kind
 * of wait, in both modes, with the kill exception arriving and nothing lost;
 * throwing link and done callbacks; running out of file descriptors while
 * serving; and how a process full of greenlets, servers, pools and suspended
 * sync greenlets ends (process.exit, SIGTERM, naturally). Whatever may take a
 * process down runs in a child process.
 *
 * Covered elsewhere, not repeated here: a task in an endless loop stopped by
 * destroy() and fd exhaustion while spawning workers
 * (executor-faults.spec.ts), a worker that exits after a delay and a child
 * SIGKILLed from outside (executor.spec.ts), a throwing done callback
 * (futures.spec.ts), fd exhaustion at runtime start (runtime.spec.ts), small
 * writes to a reset peer (socket.spec.ts).
 */
import { spawn as spawnChild } from 'node:child_process'
import { once } from 'node:events'
import * as fs from 'node:fs'
import { type AddressInfo, type Server, type Socket as NodeSocket, createServer } from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'

import test, { type ExecutionContext } from 'ava'

import { type ChildResult, describeExit, runNode } from './_child'
import { type Body, type Mode, both } from './_modes'

import * as asyncApi from '../index'
import * as syncApi from '../sync'

const serial = test.serial
const root = path.join(__dirname, '..', '..')
const INDEX = JSON.stringify(path.join(root, 'dist', 'index.js'))
const SYNC = JSON.stringify(path.join(root, 'dist', 'sync.js'))

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'greenthread-faults-'))
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** Writes `source` to a file of `tmp` and returns its path. */
function file(name: string, source: string): string {
  const p = path.join(tmp, name)
  fs.writeFileSync(p, source)
  return p
}

/** Runs `source` (CommonJS) in a fresh node with `INDEX`/`SYNC` defined. */
function script(name: string, source: string, options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; args?: string[] } = {}): Promise<ChildResult> {
  const p = file(`${name}.js`, `const INDEX = ${INDEX}; const SYNC = ${SYNC};\n${source}`)
  return runNode([...(options.args ?? []), p], { timeoutMs: options.timeoutMs ?? 60_000, env: options.env, cwd: root })
}

/** The last line of a child's stdout, parsed as JSON. */
function report(r: ChildResult): any {
  const lines = r.stdout.trim().split('\n')
  try {
    return JSON.parse(lines[lines.length - 1])
  } catch {
    throw new Error(`no JSON report: ${describeExit(r)}`)
  }
}

/** The full API of a mode (`Mode` carries only what both modes share). */
function full(m: Mode): any {
  return m.name === 'async' ? asyncApi : syncApi
}

/** A Node `net` server on a free loopback port. */
async function nodeServer(onConnection: (sock: NodeSocket) => void): Promise<{ server: Server; port: number; close: () => Promise<void> }> {
  const server = createServer(onConnection)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  return { server, port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

// ------------------------------------------------------------------ executor workers

const kinds = ['ThreadPoolExecutor', 'ProcessPoolExecutor'] as const
const brokenName = { ThreadPoolExecutor: 'BrokenThreadPool', ProcessPoolExecutor: 'BrokenProcessPool' } as const

for (const kind of kinds) {
  serial(`${kind}: a module whose top level throws fails each task that needs it with that error; the pool stays usable`, async (t) => {
    const mod = file(`throws-${kind}.mjs`, `export function f(x) { return x }\nthrow new Error('module top level broke')\n`)
    const pool = new asyncApi[kind]({ maxWorkers: 1, module: mod })
    try {
      for (const f of [pool.submit('f', 1), pool.submit('f', 2)]) {
        const err = (await f.exception({ timeoutMs: 20_000 })) as Error
        t.is(err?.message, 'module top level broke')
      }
      t.is(await pool.submit(() => 'by source').result({ timeoutMs: 20_000 }), 'by source')
    } finally {
      await pool.shutdown()
    }
  })

  serial(`${kind}: an initializer from a module whose top level throws breaks the pool, with that error as cause, and settles every future`, async (t) => {
    const mod = file(`throws-init-${kind}.mjs`, `export function init() {}\nthrow new Error('module top level broke')\n`)
    const pool = new asyncApi[kind]({ maxWorkers: 2, module: mod, initializer: 'init' })
    const futures = Array.from({ length: 6 }, (_, i) => pool.submit((x: number) => x, i))
    const { notDone } = await asyncApi.wait(futures, { timeoutMs: 30_000 })
    t.is(notDone.size, 0)
    for (const f of futures) {
      const err = (await f.exception()) as Error
      t.is(err?.name, brokenName[kind])
      t.regex(err.message, /initializer failed/)
      t.is((err.cause as Error)?.message, 'module top level broke')
    }
    await pool.shutdown()
  })

  serial(`${kind}: a module whose top level calls process.exit breaks the pool and settles every future`, async (t) => {
    const mod = file(`exits-${kind}.mjs`, `export function f(x) { return x }\nprocess.exit(5)\n`)
    const pool = new asyncApi[kind]({ maxWorkers: 1, module: mod })
    const futures = [pool.submit('f', 1), ...Array.from({ length: 4 }, (_, i) => pool.submit((x: number) => x, i))]
    const { notDone } = await asyncApi.wait(futures, { timeoutMs: 30_000 })
    t.is(notDone.size, 0)
    const first = (await futures[0].exception()) as Error
    t.is(first?.name, brokenName[kind])
    t.regex(first.message, /exit code 5/)
    await pool.shutdown()
  })

  serial(`${kind}: a module whose top-level await never settles leaves its task pending until destroy() settles it`, async (t) => {
    const mod = file(`hangs-${kind}.mjs`, `export function f(x) { return x }\nawait new Promise(() => setInterval(() => {}, 1000))\n`)
    const pool = new asyncApi[kind]({ maxWorkers: 1, module: mod })
    const f = pool.submit('f', 1)
    await t.throwsAsync(f.result({ timeoutMs: 300 }), { instanceOf: asyncApi.TimeoutError })
    await pool.destroy()
    t.true(f.done())
    // Not started (a thread worker holds it until its module loads): cancelled; else broken with the worker.
    if (!f.cancelled()) t.true((await f.exception()) instanceof asyncApi.BrokenExecutor)
  })

  serial(`${kind}: process.exit(0) inside a task (a clean-looking exit) breaks the pool and settles every future`, async (t) => {
    const pool = new asyncApi[kind]({ maxWorkers: 2 })
    t.is(await pool.submit(() => 1).result(), 1)
    const exiting = pool.submit(() => process.exit(0))
    const napping = Array.from({ length: 3 }, () =>
      pool.submit(async () => {
        await new Promise((r) => setTimeout(r, 10_000))
        return 'woke'
      }),
    )
    const queued = Array.from({ length: 20 }, (_, i) => pool.submit((x: number) => x, i))
    const { notDone } = await asyncApi.wait([exiting, ...napping, ...queued], { timeoutMs: 30_000 })
    t.is(notDone.size, 0)
    const err = (await exiting.exception()) as Error
    t.is(err?.name, brokenName[kind])
    t.regex(err.message, /exit code 0/)
    for (const f of napping) t.is(((await f.exception()) as Error)?.name, brokenName[kind])
    t.throws(() => pool.submit(() => 1), { name: brokenName[kind] })
    await pool.shutdown()
  })

  serial(`${kind}: a task that allocates until the worker runs out of memory breaks the pool; every future settles and the parent lives on`, async (t) => {
    // The heap limit comes from NODE_OPTIONS, which the pool's threads and children share with the parent.
    const r = await script(
      `oom-${kind}`,
      `
const G = require(INDEX)
;(async () => {
  const pool = new G.${kind}({ maxWorkers: 2 })
  await pool.submit(() => 1).result()
  const hog = pool.submit(() => { const keep = []; for (;;) keep.push(new Array(1e5).fill(Math.random())) })
  const others = Array.from({ length: 6 }, (_, i) => pool.submit(async (ms) => { await new Promise((r) => setTimeout(r, ms)); return ms }, 5000 + i))
  const { notDone } = await G.wait([hog, ...others], { timeoutMs: 60000 })
  const err = await hog.exception()
  const names = await Promise.all(others.map((f) => f.exception().then((e) => e && e.name)))
  let after
  try { pool.submit(() => 1) } catch (e) { after = e.name }
  await pool.shutdown()
  const fresh = new G.${kind}({ maxWorkers: 1 })
  const again = await fresh.submit((x) => x * 2, 21).result()
  await fresh.shutdown()
  console.log(JSON.stringify({ notDone: notDone.size, hog: err && err.name, message: err && err.message, names: [...new Set(names)], after, again }))
})()`,
      { env: { NODE_OPTIONS: '--max-old-space-size=64' }, timeoutMs: 90_000 },
    )
    t.is(r.status, 0, describeExit(r))
    t.is(r.signal, null)
    const out = report(r)
    t.is(out.notDone, 0)
    t.is(out.hog, brokenName[kind])
    t.regex(out.message, kind === 'ThreadPoolExecutor' ? /exited abruptly/ : /terminated abruptly \((signal SIGABRT|exit code \d+)\)/)
    t.deepEqual(out.names, [brokenName[kind]])
    t.is(out.after, brokenName[kind])
    t.is(out.again, 42)
  })

  serial(`${kind}: greenlets waiting in result(), wait() and asCompleted() for a task in an endless loop are settled by destroy()`, async (t) => {
    const pool = new asyncApi[kind]({ maxWorkers: 1 })
    const looping = pool.submit(() => {
      for (;;);
    })
    const queued = pool.submit(() => 'never')
    while (!looping.running()) await asyncApi.sleep(5)
    const outcomes: string[] = []
    const record = (label: string, p: Promise<unknown>): Promise<void> =>
      p.then(
        () => void outcomes.push(`${label}: resolved`),
        (e: Error) => void outcomes.push(`${label}: ${e.name}`),
      )
    const waiters = [
      asyncApi.spawn(() => record('result', looping.result())),
      asyncApi.spawn(() => record('queued', queued.result())),
      asyncApi.spawn(() => record('wait', asyncApi.wait([looping]))),
      asyncApi.spawn(() =>
        record(
          'asCompleted',
          (async () => {
            for await (const f of asyncApi.asCompleted([looping])) return f
          })(),
        ),
      ),
    ]
    await asyncApi.sleep(50)
    await pool.destroy()
    await asyncApi.joinall(waiters, { timeoutMs: 10_000 })
    t.true(waiters.every((g) => g.dead))
    t.deepEqual(outcomes.sort(), ['asCompleted: resolved', 'queued: CancelledError', `result: ${brokenName[kind]}`, 'wait: resolved'])
  })
}

serial('ProcessPoolExecutor: a child SIGKILLed in the middle of a busy task breaks the pool; waits settle, shutdown resolves, a new pool works', async (t) => {
  const pool = new asyncApi.ProcessPoolExecutor({ maxWorkers: 2 })
  const busy = pool.submit(() => {
    const until = Date.now() + 60_000
    while (Date.now() < until);
    return process.pid
  })
  const others = Array.from({ length: 8 }, () => pool.submit(async () => new Promise((r) => setTimeout(r, 60_000))))
  while (!busy.running()) await asyncApi.sleep(5)
  // The task's child is one of the pool's: SIGKILL them all, mid-task.
  const pids = childPids()
  t.true(pids.length > 0, 'the pool has child processes')
  const waiter = asyncApi.spawn(() => busy.result())
  const lister = asyncApi.spawn(() => asyncApi.wait([busy, ...others]))
  await asyncApi.sleep(20)
  for (const pid of pids) process.kill(pid, 'SIGKILL')
  const err = await t.throwsAsync(waiter.get({ timeoutMs: 20_000 }))
  t.is(err?.name, 'BrokenProcessPool')
  t.regex(err!.message, /SIGKILL/)
  const { notDone } = await lister.get({ timeoutMs: 20_000 })
  t.is(notDone.size, 0)
  await pool.shutdown()
  const fresh = new asyncApi.ProcessPoolExecutor({ maxWorkers: 1 })
  t.is(await fresh.submit((x: number) => x + 1, 1).result({ timeoutMs: 20_000 }), 2)
  await fresh.shutdown()
})

/** The pids of this process's children running the executor's worker. */
function childPids(): number[] {
  const pids: number[] = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      if (ppid === process.pid && cmd.includes('--greenthread-executor-child')) pids.push(Number(entry))
    } catch {
      // Gone meanwhile.
    }
  }
  return pids
}

// ------------------------------------------------------------------ peer reset mid-sendall

both('a peer that resets the connection while megabytes are being sent fails sendall (or the next call) with ECONNRESET/EPIPE, promptly', function* (t, m) {
  const api = full(m)
  let received = 0
  const peer: { port: number; close: () => Promise<void> } = yield nodeServer((sock) => {
    sock.on('data', (chunk: Buffer) => {
      received += chunk.length
      // After a megabyte, reset: RST, with the rest of the sender's queue unsent.
      if (received >= 1 << 20 && !sock.destroyed) sock.resetAndDestroy()
    })
    sock.on('error', () => undefined)
  })
  const sock = yield api.connect('127.0.0.1', peer.port)
  sock.setTimeout(10_000)
  const chunk = Buffer.alloc(1 << 20, 7)
  const started = Date.now()
  let err: NodeJS.ErrnoException | undefined
  let sent = 0
  for (let i = 0; i < 64 && err === undefined; i++) {
    try {
      yield sock.sendall(chunk)
      sent++
    } catch (e) {
      err = e as NodeJS.ErrnoException
    }
  }
  t.true(err !== undefined, `sendall never failed (${sent} MiB queued)`)
  t.true(['ECONNRESET', 'EPIPE'].includes(err?.code ?? ''), `code ${err?.code}: ${String(err)}`)
  t.true(Date.now() - started < 8000, `took ${Date.now() - started} ms`)
  // Later calls fail too, at once; close is quiet.
  const again = yield* m.throws(t, () => sock.sendall('more'))
  t.true(['ECONNRESET', 'EPIPE'].includes((again as NodeJS.ErrnoException)?.code ?? ''), String(again))
  sock.close()
  // The runtime is fine: a new connection works.
  const echo = new api.StreamServer({ port: 0 }, 'echo')
  echo.start()
  const c = yield api.connect('127.0.0.1', echo.address.port)
  yield c.sendall('still fine')
  t.is(String(yield c.recv()), 'still fine')
  c.close()
  yield echo.stop()
  yield peer.close()
})

serial('a StreamServer handler streaming megabytes to a client that resets fails alone with ECONNRESET/EPIPE; the server keeps serving', async (t) => {
  const failures: string[] = []
  const server = new asyncApi.StreamServer({ port: 0 }, async (sock) => {
    const chunk = Buffer.alloc(1 << 20, 1)
    try {
      for (let i = 0; i < 256; i++) await sock.sendall(chunk)
    } catch (err) {
      failures.push((err as NodeJS.ErrnoException).code ?? String(err))
      throw err
    }
  })
  server.start()
  const { connect: nodeConnect } = await import('node:net')
  const rude = nodeConnect(server.address.port, '127.0.0.1')
  rude.on('error', () => undefined)
  let got = 0
  await new Promise<void>((resolve) =>
    rude.on('data', (d: Buffer) => {
      got += d.length
      if (got >= 1 << 20) {
        rude.resetAndDestroy()
        resolve()
      }
    }),
  )
  const deadline = Date.now() + 10_000
  while (failures.length === 0 && Date.now() < deadline) await asyncApi.sleep(20)
  t.true(['ECONNRESET', 'EPIPE'].includes(failures[0] ?? ''), `handler failures: ${failures}`)
  const c = await asyncApi.connect('127.0.0.1', server.address.port)
  t.is((await c.recvExactly(1 << 10)).length, 1 << 10)
  c.close()
  await server.stop({ timeoutMs: 1000 })
})

// ------------------------------------------------------------------ a kill in every kind of wait

/** The victim's wait, and what must hold once it has been killed there. */
interface Wait {
  wait: () => Body<unknown>
  after?: (t: ExecutionContext) => Body<void>
}

/** A loopback listener whose accept queue is full and that never accepts: connects to it hang. */
async function stuckListener(): Promise<{ port: number; done: () => void }> {
  const child = spawnChild(process.execPath, [
    '-e',
    `const s = require('net').createServer()
     s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
       console.log(s.address().port)
       Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20000)
       process.exit(0)
     })`,
  ])
  const [line] = (await once(child.stdout!, 'data')) as [Buffer]
  const port = Number(line.toString().trim())
  const fillers: asyncApi.Socket[] = []
  for (let i = 0; i < 8; i++) {
    try {
      fillers.push(await asyncApi.connect('127.0.0.1', port, { timeoutMs: 200 }))
    } catch {
      break
    }
  }
  return {
    port,
    done: () => {
      for (const s of fillers) s.close()
      child.kill()
    },
  }
}

const threads = new asyncApi.ThreadPoolExecutor({ maxWorkers: 2 })
test.after.always(() => threads.destroy())

/** Waits a greenlet can be killed in: the name, and a setup that returns the wait (run in the victim). */
const waits: [string, (m: Mode, api: any) => Body<Wait>, ('async' | 'sync')[]?][] = [
  ['sleep', function* (_m, api) {
    return { wait: function* () { yield api.sleep(60_000) } }
  }],
  ['join', function* (m, api) {
    const target = m.go(function* () { yield api.sleep(60_000) })
    return {
      wait: function* () { yield target.join() },
      after: function* (t) {
        t.false(target.dead, 'the joined greenlet runs on')
        yield target.kill()
      },
    }
  }],
  ['joinall', function* (m, api) {
    const target = m.go(function* () { yield api.sleep(60_000) })
    return {
      wait: function* () { yield api.joinall([target]) },
      after: function* (t) {
        t.false(target.dead)
        yield target.kill()
      },
    }
  }],
  ['Event.wait', function* (m, api) {
    const e = new api.Event()
    const other = m.go(function* () { return yield e.wait() })
    return {
      wait: function* () { yield e.wait() },
      after: function* (t) {
        e.set()
        t.true(yield other.get(), 'the other waiter still wakes')
      },
    }
  }],
  ['AsyncResult.get', function* (m, api) {
    const r = new api.AsyncResult()
    const other = m.go(function* () { return yield r.get() })
    return {
      wait: function* () { yield r.get() },
      after: function* (t) {
        r.set('value')
        t.is(yield other.get(), 'value')
      },
    }
  }],
  ['Queue.get', function* (_m, api) {
    const q = new api.Queue()
    return {
      wait: function* () { yield q.get() },
      after: function* (t) {
        q.putNowait('item')
        t.is(q.qsize(), 1, 'no dead getter took the item')
        t.is(q.getNowait(), 'item')
      },
    }
  }],
  ['Queue.put (full)', function* (_m, api) {
    const q = new api.Queue({ maxsize: 1 })
    q.putNowait('first')
    return {
      wait: function* () { yield q.put('killed put') },
      after: function* (t) {
        t.is(q.getNowait(), 'first')
        t.true(q.empty(), 'the killed put left its item out')
      },
    }
  }],
  ['Channel.put', function* (_m, api) {
    const ch = new api.Channel()
    return {
      wait: function* () { yield ch.put('killed put') },
      after: function* (t) {
        t.throws(() => ch.getNowait(), { name: 'QueueEmpty' })
      },
    }
  }],
  ['JoinableQueue.join', function* (_m, api) {
    const q = new api.JoinableQueue()
    q.putNowait('work')
    return {
      wait: function* () { yield q.join() },
      after: function* (t) {
        t.is(q.unfinishedTasks, 1)
        q.getNowait()
        q.taskDone()
        t.true(yield q.join({ timeoutMs: 1000 }))
      },
    }
  }],
  ['Lock.acquire', function* (_m, api) {
    const l = new api.Lock()
    l.tryAcquire()
    return {
      wait: function* () { yield l.acquire() },
      after: function* (t) {
        l.release()
        t.false(l.locked(), 'the lock was not handed to the dead waiter')
      },
    }
  }],
  ['Semaphore.acquire', function* (_m, api) {
    const s = new api.Semaphore(1)
    s.tryAcquire()
    return {
      wait: function* () { yield s.acquire() },
      after: function* (t) {
        s.release()
        t.is(s.value, 1, 'no permit lost to the dead waiter')
      },
    }
  }],
  ['RLock.acquire', function* (m, api) {
    const l = new api.RLock()
    const go = new api.Event()
    const holder = m.go(function* () {
      yield l.acquire()
      yield go.wait()
      l.release()
    })
    yield api.sleep(5)
    return {
      wait: function* () { yield l.acquire() },
      after: function* (t) {
        go.set()
        yield holder.join()
        t.false(l.locked(), 'the RLock was not handed to the dead waiter')
      },
    }
  }],
  ['Pool.spawn (full)', function* (m, api) {
    const pool = new api.Pool(1)
    let ran = false
    yield pool.spawn(() => m.sleep(60_000))
    return {
      wait: function* () {
        yield pool.spawn(() => {
          ran = true
        })
      },
      after: function* (t) {
        t.is(pool.free(), 0)
        yield pool.kill()
        t.is(pool.free(), 1, 'no slot lost')
        t.false(ran, 'the killed spawn never ran its function')
      },
    }
  }],
  ['Group.join', function* (m, api) {
    const group = new api.Group()
    const member = group.spawn(() => m.sleep(60_000))
    return {
      wait: function* () { yield group.join() },
      after: function* (t) {
        t.false(member.dead, 'members run on')
        yield group.kill()
      },
    }
  }],
  ['switch', function* (m, api) {
    // The victim starts a partner by switch(); the partner sleeps, so the victim stays suspended in switch().
    const partner = new api.Greenlet(() => m.sleep(60_000))
    return {
      wait: function* () { yield partner.switch() },
      after: function* (t) {
        t.false(partner.dead)
        yield partner.kill()
      },
    }
  }],
  ['Socket.recv', function* (_m, api) {
    const echo = new api.StreamServer({ port: 0 }, 'echo')
    echo.start()
    const sock = yield api.connect('127.0.0.1', echo.address.port)
    return {
      wait: function* () { yield sock.recv() },
      after: function* (t) {
        yield sock.sendall('kept')
        t.is(String(yield sock.recv()), 'kept', 'bytes after the kill go to the next recv')
        sock.close()
        yield echo.stop()
      },
    }
  }],
  ['Socket.recvExactly (with bytes already received)', function* (_m, api) {
    let remote!: NodeSocket
    const peer = yield nodeServer((s) => (remote = s))
    const sock = yield api.connect('127.0.0.1', peer.port)
    yield api.sleep(20)
    remote.write('abcd')
    return {
      wait: function* () { yield sock.recvExactly(10) },
      after: function* (t) {
        remote.write('efghij')
        t.is(String(yield sock.recvExactly(10)), 'abcdefghij', 'the partial bytes were kept for the next read')
        sock.close()
        remote.destroy()
        yield peer.close()
      },
    }
  }],
  ['Socket.sendall (peer not reading)', function* (_m, api) {
    const held: NodeSocket[] = []
    const peer = yield nodeServer((s) => {
      s.pause()
      held.push(s)
    })
    const sock = yield api.connect('127.0.0.1', peer.port)
    return {
      wait: function* () {
        for (;;) yield sock.sendall(Buffer.alloc(4 << 20))
      },
      after: function* () {
        sock.close()
        for (const s of held) s.destroy()
        yield peer.close()
      },
    }
  }],
  ['connect (to a listener that never answers)', function* (_m, api) {
    const stuck = yield stuckListener()
    return {
      wait: function* () { yield api.connect('127.0.0.1', stuck.port) },
      after: function* (t) {
        stuck.done()
        const echo = new api.StreamServer({ port: 0 }, 'echo')
        echo.start()
        const c = yield api.connect('127.0.0.1', echo.address.port)
        yield c.sendall('ok')
        t.is(String(yield c.recv()), 'ok')
        c.close()
        yield echo.stop()
      },
    }
  }],
  ['Future.result', function* (m) {
    const f = threads.submit(async () => {
      await new Promise((r) => setTimeout(r, 300))
      return 'late'
    })
    return {
      // Futures are async: a sync greenlet blocks on them.
      wait: function* () { yield m.name === 'sync' ? syncApi.block(f.result()) : f.result() },
      after: function* (t) {
        t.is(yield f.result({ timeoutMs: 10_000 }), 'late', 'the task ran on and its result is there')
      },
    }
  }],
  ['futures wait()', function* () {
    const f = threads.submit(async () => {
      await new Promise((r) => setTimeout(r, 300))
      return 'late'
    })
    return {
      wait: function* () { yield asyncApi.wait([f]) },
      after: function* (t) {
        t.is(yield f.result({ timeoutMs: 10_000 }), 'late')
      },
    }
  }],
  ['asCompleted', function* () {
    const f = threads.submit(async () => {
      await new Promise((r) => setTimeout(r, 300))
      return 'late'
    })
    return {
      wait: function* () { yield asyncApi.asCompleted([f]).next() },
      after: function* (t) {
        t.is(yield f.result({ timeoutMs: 10_000 }), 'late')
      },
    }
  }],
  ['Timeout.run', function* (m, api) {
    let inner: any
    return {
      wait: function* () {
        yield api.Timeout.run(60_000, () => {
          inner = api.getcurrent()
          return m.sleep(60_000)
        })
      },
      after: function* (t) {
        yield api.sleep(10)
        t.true(inner?.dead, 'the work inside was killed too')
      },
    }
  }],
  ['StreamServer.serveForever', function* (_m, api) {
    const server = new api.StreamServer({ port: 0 }, 'echo')
    return {
      wait: function* () { yield server.serveForever({ timeoutMs: 500 }) },
      after: function* (t) {
        t.true(server.closed, 'the server stopped')
      },
    }
  }],
  ['block(a Promise)', function* () {
    return { wait: function* () { syncApi.block(new Promise((r) => setTimeout(r, 60_000).unref())) } }
  }, ['sync']],
]

for (const [name, setup, modes] of waits) {
  const title = `a kill of a greenlet waiting in ${name} raises the kill exception there at once, and nothing is lost`
  const body = function* (t: ExecutionContext, m: Mode): Body<void> {
    const api = full(m)
    const w: Wait = yield* setup(m, api)
    const exc = new Error(`killed in ${name}`)
    let caught: unknown = 'nothing caught'
    let returned = false
    const victim = m.go(function* () {
      try {
        yield* w.wait()
        returned = true
      } catch (err) {
        caught = err
        throw err
      }
    })
    yield m.sleep(50)
    t.false(victim.dead, `the victim is in ${name}`)
    const started = Date.now()
    yield victim.kill(exc, { timeoutMs: 5000 })
    const took = Date.now() - started
    t.true(victim.dead, 'the victim died')
    t.false(returned, 'the wait did not return')
    t.is(caught, exc, `the wait raised ${String(caught)}`)
    t.is(victim.exception, exc)
    t.true(took < 2000, `the kill took ${took} ms`)
    if (w.after) yield* w.after(t)
  }
  if (modes === undefined) both(title, body)
  else
    test.serial(`sync: ${title}`, async (t) => {
      await syncApi.run(() => {
        const it = body(t, { ...syncApi, name: 'sync', go: (b: () => Body) => syncApi.spawn(() => drain(b())), sleep: syncApi.sleep } as unknown as Mode)
        drain(it)
      })
    })
}

/** Drives a generator body in a sync greenlet: a yielded Promise is waited for with block(). */
function drain(it: Body): unknown {
  let step = it.next()
  while (!step.done) {
    let value: unknown
    try {
      const v = step.value
      value = v !== null && typeof (v as PromiseLike<unknown>)?.then === 'function' ? syncApi.block(v as PromiseLike<unknown>) : v
    } catch (err) {
      step = it.throw(err)
      continue
    }
    step = it.next(value)
  }
  return step.value
}

// ------------------------------------------------------------------ throwing callbacks

test.serial('throwing link callbacks (both modes) and done callbacks are reported and break nothing: other callbacks, groups, pools and the hub go on', async (t) => {
  const r = await script(
    'throwing-callbacks',
    `
const A = require(INDEX)
const S = require(SYNC)
let escaped = 0
process.on('uncaughtException', () => escaped++)
process.on('unhandledRejection', () => escaped++)
const warnings = []
process.on('warning', (w) => warnings.push(w.name))
;(async () => {
  const ran = []
  // Async greenlets: many links, every other one throwing something odd.
  const odd = [new Error('link bug'), Object.create(null), Symbol('s'), { get [Symbol.toStringTag]() { throw new Error('tag') } }, undefined]
  const gs = Array.from({ length: 50 }, (_, i) => A.spawn((x) => { if (i % 7 === 0) throw new Error('task ' + i); return x }, i))
  for (const [i, g] of gs.entries()) {
    g.link(() => { throw odd[i % odd.length] })
    g.link(() => ran.push(i))
  }
  const group = new A.Group()
  const member = group.spawn(() => A.sleep(5))
  member.link(() => { throw new Error('group member link bug') })
  await A.joinall(gs)
  await group.join({ timeoutMs: 5000 })
  // Sync greenlets.
  const syncRan = await S.run(() => {
    const out = []
    const hs = Array.from({ length: 20 }, (_, i) => S.spawn(() => { S.sleep(1); return i }))
    for (const h of hs) { h.link(() => { throw new Error('sync link bug') }); h.link(() => out.push(h.value)) }
    S.joinall(hs)
    S.sleep(5)
    return out.length
  })
  // Done callbacks.
  const pool = new A.ThreadPoolExecutor({ maxWorkers: 2 })
  const fs = Array.from({ length: 30 }, (_, i) => pool.submit((x) => x, i))
  let done = 0
  for (const [i, f] of fs.entries()) { f.addDoneCallback(() => { throw odd[i % odd.length] }); f.addDoneCallback(() => done++) }
  await A.wait(fs)
  const after = await pool.submit(() => 'pool alive').result()
  await pool.shutdown()
  await new Promise((r) => setTimeout(r, 20))
  const hub = await A.spawn(async () => { await A.sleep(1); return 'hub alive' }).get()
  console.log(JSON.stringify({ ran: ran.length, groupEmpty: group.length, syncRan, done, after, hub, escaped, callbackWarnings: warnings.filter((w) => w === 'FutureCallbackError').length }))
})()`,
  )
  t.is(r.status, 0, describeExit(r))
  const out = report(r)
  t.deepEqual(out, { ran: 50, groupEmpty: 0, syncRan: 20, done: 30, after: 'pool alive', hub: 'hub alive', escaped: 0, callbackWarnings: 30 })
  t.is((r.stderr.match(/greenthread: link callback of <Greenlet .*> threw:/g) ?? []).length, 50 + 1 + 20, r.stderr.slice(0, 2000))
})

// ------------------------------------------------------------------ file descriptors

test.serial('out of file descriptors while serving: connect fails with EMFILE, the server keeps its listener and accepts once descriptors are free', async (t) => {
  const p = file(
    'fd-serve.js',
    `const G = require(${INDEX}); const fs = require('fs')
;(async () => {
  await G.spawn(() => G.sleep(1)).join()   // the runtime is running before the descriptors run out
  const served = []
  const server = new G.StreamServer({ port: 0 }, async (sock) => { served.push(1); await sock.sendall(await sock.recv()) })
  server.start()
  const echo = new G.StreamServer({ port: 0 }, 'echo')
  echo.start()
  process.stdout.write(JSON.stringify({ port: server.address.port, echo: echo.address.port }) + '\\n')
  const hog = []; try { for (;;) hog.push(fs.openSync('/dev/null', 'r')) } catch {}
  const connectCode = await G.connect('127.0.0.1', server.address.port, { timeoutMs: 2000 }).then((s) => (s.close(), 'connected'), (e) => e.code)
  const before = process.cpuUsage()
  // The parent connects now, while this process has no descriptor left for the accept.
  await new Promise((r) => process.stdin.once('data', r))
  process.stdin.destroy()
  await new Promise((r) => setTimeout(r, 500))
  const cpu = process.cpuUsage(before)
  const servedWhileOut = served.length
  for (const fd of hog) fs.closeSync(fd)
  await new Promise((r) => setTimeout(r, 1500))
  const c = await G.connect('127.0.0.1', server.address.port, { timeoutMs: 2000 })
  await c.sendall('after'); const back = String(await c.recv()); c.close()
  console.log(JSON.stringify({ connectCode, servedWhileOut, servedAfter: served.length, back, cpuMs: Math.round((cpu.user + cpu.system) / 1000) }))
  await server.stop(); await echo.stop()
})()`,
  )
  const child = spawnChild('bash', ['-c', 'ulimit -n 64 && exec "$0" "$1"', process.execPath, p], { stdio: ['pipe', 'pipe', 'pipe'], cwd: root })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d))
  child.stderr.on('data', (d: Buffer) => (stderr += d))
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  while (!stdout.includes('\n') && child.exitCode === null) await new Promise((r) => setTimeout(r, 10))
  const { port, echo } = JSON.parse(stdout.split('\n')[0])
  await new Promise((r) => setTimeout(r, 300))
  // Two connections the child cannot accept yet: they wait in its backlog.
  const { connect: nodeConnect } = await import('node:net')
  const waiting = [port, echo].map((p2: number) => {
    const s = nodeConnect(p2, '127.0.0.1')
    s.on('error', () => undefined)
    return s
  })
  const replies = waiting.map(
    (s) =>
      new Promise<string>((resolve) => {
        let got = ''
        s.on('data', (d: Buffer) => {
          got += d
          if (got.length >= 4) resolve(got)
        })
        s.on('close', () => resolve(got))
      }),
  )
  for (const s of waiting) s.write('late')
  child.stdin.write('go\n')
  const [code] = (await once(child, 'exit')) as [number | null]
  clearTimeout(killer)
  t.is(code, 0, `${stdout}\n${stderr}`)
  const out = JSON.parse(stdout.trim().split('\n').pop()!)
  t.is(out.connectCode, 'EMFILE')
  t.is(out.servedWhileOut, 0)
  t.true(out.servedAfter >= 2, `served ${out.servedAfter}`)
  t.is(out.back, 'after')
  // Out of descriptors, the accept loop backs off instead of spinning on the pending connection.
  t.true(out.cpuMs < 300, `CPU while out of descriptors: ${out.cpuMs} ms in 0.5 s`)
  t.deepEqual(await Promise.all(replies), ['late', 'late'], 'the connections that waited in the backlog were served, by the JS handler and the native one')
  for (const s of waiting) s.destroy()
})

// ------------------------------------------------------------------ how a busy process ends

/** A process with live greenlets, servers (listening and stopped), pools (running and shut down) and suspended sync greenlets. */
const busyProcess = `
const A = require(INDEX)
const S = require(SYNC)
const fs = require('fs')
const state = { pids: [] }
async function setUp() {
  // Async greenlets: sleeping, suspended in switch(), blocked in recv().
  for (let i = 0; i < 100; i++) A.spawn(() => A.sleep(1e9))
  const a = new A.Greenlet(async () => { await b.switch() })
  const b = new A.Greenlet(async () => { await a.switch() })
  a.switch()
  const server = new A.StreamServer({ port: 0 }, async (sock) => { for (;;) { const d = await sock.recv(); if (d.length === 0) return; await sock.sendall(d) } })
  server.start()
  const echo = new A.StreamServer({ port: 0 }, 'echo')
  echo.start()
  const stopped = new A.StreamServer({ port: 0 }, 'upper')
  stopped.start()
  await stopped.stop()
  const client = await A.connect('127.0.0.1', server.address.port)
  state.client = client
  A.spawn(() => client.recv())
  // Pools: running tasks (one endless), and one shut down.
  const threads = new A.ThreadPoolExecutor({ maxWorkers: 2 })
  const procs = new A.ProcessPoolExecutor({ maxWorkers: 2 })
  threads.submit(() => { for (;;); })
  procs.submit(() => { for (;;); })
  threads.submit(() => new Promise(() => {}))
  procs.submit(() => new Promise(() => {}))
  const done = new A.ThreadPoolExecutor({ maxWorkers: 1 })
  await done.submit(() => 1).result()
  await done.shutdown()
  while (state.pids.length < 2) {
    state.pids = fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).filter((p) => {
      try { return fs.readFileSync('/proc/' + p + '/cmdline', 'utf8').includes('--greenthread-executor-child') && fs.readFileSync('/proc/' + p + '/stat', 'utf8').split(') ')[1].split(' ')[1] === String(process.pid) } catch { return false }
    }).map(Number)
    await new Promise((r) => setTimeout(r, 20))
  }
  // Sync greenlets: suspended in switch(), sleeping, blocked in recv() on a sync socket.
  await S.run(() => {
    for (let i = 0; i < 20; i++) new S.Greenlet(() => S.getcurrent().parent.switch()).switch()
    state.syncSleeper = S.spawn(() => S.sleep(1e9))
    const sock = S.connect('127.0.0.1', echo.address.port)
    state.syncSock = sock
    S.spawn(() => sock.recv())
    S.sleep(20)
  })
  return { server, echo, threads, procs, a, b }
}
`

/** Runs the busy process with `ending`, and checks the exit and that its pool children are gone. */
async function ending(t: ExecutionContext, name: string, ending: string, expect: { status: number | null; signal: NodeJS.Signals | null }, signal?: NodeJS.Signals): Promise<void> {
  const p = file(`ending-${name}.js`, `const INDEX = ${INDEX}; const SYNC = ${SYNC};\n${busyProcess}\nsetUp().then(async (s) => { console.log(JSON.stringify({ ready: true, pids: state.pids })); ${ending} })`)
  const child = spawnChild(process.execPath, [p], { stdio: ['ignore', 'pipe', 'pipe'], cwd: root })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d))
  child.stderr.on('data', (d: Buffer) => (stderr += d))
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  while (!stdout.includes('"ready"') && child.exitCode === null && child.signalCode === null) await new Promise((r) => setTimeout(r, 10))
  const ready = JSON.parse(stdout.split('\n').find((l) => l.includes('"ready"')) ?? '{"pids":[]}')
  const started = Date.now()
  if (signal !== undefined) child.kill(signal)
  const [status, sig] = await exited
  const took = Date.now() - started
  clearTimeout(killer)
  t.deepEqual({ status, signal: sig }, expect, `took ${took} ms\n${stdout}\n${stderr.slice(-2000)}`)
  t.true(took < 10_000, `ended ${took} ms after the ${signal ?? 'ending'}`)
  t.false(/Segmentation|Abort|FATAL|Check failed/i.test(stderr), stderr.slice(-2000))
  t.is(ready.pids.length, 2, 'two pool children were running')
  // The pool's children die with their parent.
  const deadline = Date.now() + 5000
  let alive: number[] = ready.pids
  while (alive.length > 0 && Date.now() < deadline) {
    alive = alive.filter((pid: number) => fs.existsSync(`/proc/${pid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')))
    if (alive.length > 0) await new Promise((r) => setTimeout(r, 50))
  }
  t.deepEqual(alive, [], 'pool children outlived their parent')
}

serial('a busy process (greenlets, servers, pools, suspended sync greenlets) exits with process.exit(0) from plain code', (t) =>
  ending(t, 'exit-main', `process.exit(0)`, { status: 0, signal: null }),
)

serial('a busy process exits with process.exit(3) from inside an async greenlet', (t) =>
  ending(t, 'exit-async', `A.spawn(async () => { await A.sleep(1); process.exit(3) })`, { status: 3, signal: null }),
)

serial('a busy process exits with process.exit(4) from inside a sync greenlet', (t) =>
  ending(t, 'exit-sync', `S.run(() => { S.sleep(1); process.exit(4) })`, { status: 4, signal: null }),
)

serial('a busy process dies by SIGTERM, promptly', (t) => ending(t, 'sigterm', ``, { status: null, signal: 'SIGTERM' }, 'SIGTERM'))

serial('a busy process dies by SIGINT, promptly', (t) => ending(t, 'sigint', ``, { status: null, signal: 'SIGINT' }, 'SIGINT'))

serial('a busy process ends on its own once servers are stopped, pools shut down and sleepers killed, with greenlets left suspended in switch()', (t) =>
  ending(
    t,
    'natural',
    `await s.server.stop({ timeoutMs: 100 }); await s.echo.stop({ timeoutMs: 100 })
     await s.threads.destroy(); await s.procs.destroy()
     await A.killall(A.allTasks().filter((g) => g !== s.a && g !== s.b), { timeoutMs: 2000 })
     state.client.close()
     state.syncSleeper.kill(undefined, { block: false })
     state.syncSock.close()
     await S.run(() => S.sleep(1))
     console.log('left alone')`,
    { status: 0, signal: null },
  ),
)

// ------------------------------------------------------------------ lifetime

// The native side's wake callback reached the executor strongly from outside
// the JS heap (executor -> NativeExecutor -> Rust Pool -> TSFN -> #drain ->
// executor): no executor was ever collected, and a program making a pool per
// job grew by every pool it made. The callback now holds it through a WeakRef.
for (const kind of kinds) {
  serial(`${kind}: an executor that was shut down and is no longer referenced is garbage-collected`, async (t) => {
    const r = await script(
      `collect-${kind}`,
      `
const G = require(INDEX)
;(async () => {
  const refs = []
  // One function per pool: an async function's context would keep its last
  // loop variable alive.
  const use = async (i) => {
    const pool = new G.${kind}({ maxWorkers: 1 })
    refs.push(new WeakRef(pool))
    await pool.submit((x) => x, { i }).result()
    await pool.shutdown()
  }
  for (let i = 0; i < 10; i++) await use(i)
  refs.push(new WeakRef(new G.${kind}({ maxWorkers: 1 })))
  for (let i = 0; i < 10; i++) { gc(); await new Promise((r) => setTimeout(r, 20)) }
  console.log(JSON.stringify({ alive: refs.filter((r) => r.deref() !== undefined).length, of: refs.length }))
})()`,
      { args: ['--expose-gc'] },
    )
    t.is(r.status, 0, describeExit(r))
    t.deepEqual(report(r), { alive: 0, of: 11 })
  })
}
