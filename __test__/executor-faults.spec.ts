/**
 * Executor faults from the reliability sweep: cloning state that leaked
 * between messages, uncloneable initargs, fd exhaustion while spawning,
 * large frames, shared memory, and stopping runaway tasks.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'

import test from 'ava'

import {
  BrokenExecutor,
  BrokenProcessPool,
  BrokenThreadPool,
  CancelledError,
  GreenletExit,
  ProcessPoolExecutor,
  ThreadPoolExecutor,
  spawn,
  wait,
} from '../index'
import { MSG_HEADER, MessageParser, Msg } from '../src/_worker'

// Pools start real threads and processes on a 2-core machine: one test at a time.
const serial = test.serial
const run = promisify(execFile)
const root = path.join(__dirname, '..', '..')
const dist = JSON.stringify(path.join(root, 'dist/src/executor.js'))
const distIndex = JSON.stringify(path.join(root, 'dist/index.js'))

const kinds = [
  { name: 'ThreadPoolExecutor', make: (o?: object) => new ThreadPoolExecutor(o), Broken: BrokenThreadPool },
  { name: 'ProcessPoolExecutor', make: (o?: object) => new ProcessPoolExecutor(o), Broken: BrokenProcessPool },
] as const

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'greenthread-faults-'))
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** Runs `source` as a CommonJS script in a fresh node; resolves with stdout, rejects on a non-zero exit. */
async function script(name: string, source: string, options: { ulimit?: number; args?: string[] } = {}): Promise<string> {
  const file = path.join(tmp, `${name}.js`)
  fs.writeFileSync(file, source)
  const node = [process.execPath, ...(options.args ?? []), file].map((s) => `'${s}'`).join(' ')
  const { stdout } =
    options.ulimit === undefined
      ? await run(process.execPath, [...(options.args ?? []), file], { timeout: 60_000, cwd: root })
      : await run('bash', ['-c', `ulimit -n ${options.ulimit}; exec ${node}`], { timeout: 60_000, cwd: root })
  return stdout.trim()
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >>> 9) + seed) & 255
  return b
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

for (const kind of kinds) {
  serial(`${kind.name}: a done callback that destroys the executor leaves the results that had arrived with their futures`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    t.is(await pool.submit(() => 'warm').result(), 'warm')
    // A thread worker counts the tasks it ran, so that the main thread waits for all of them.
    const ran = kind.name === 'ThreadPoolExecutor' ? new Int32Array(new SharedArrayBuffer(4)) : undefined
    const futures = Array.from({ length: 8 }, (_, i) =>
      pool.submit(
        (n: number, counter?: Int32Array) => {
          if (counter !== undefined) Atomics.add(counter, 0, 1)
          if (n === 2) throw new Error('task 2 failed')
          return n
        },
        i,
        ran,
      ),
    )
    // Fail fast: the first failure destroys the executor.
    futures[2].addDoneCallback(() => void pool.destroy())
    await Promise.resolve() // the submissions go out (a microtask)
    // Busy: the results arrive before the main thread reads any of them.
    const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
    if (ran !== undefined) {
      for (const until = Date.now() + 10_000; Atomics.load(ran, 0) < 8 && Date.now() < until; ) sleepSync(5)
      sleepSync(100)
    } else {
      sleepSync(400)
    }
    const outcomes = await Promise.all(futures.map((f) => f.result().then((v) => v, (e: Error) => (f.cancelled() ? 'cancelled' : e.message))))
    // A thread pool's worker ran them all meanwhile. A child process gets its next batch only from
    // the main thread, so the tasks it had not been sent are cancelled; and its results leave as
    // each task ends, so those still in the pipe when it is killed fail as broken with it.
    const expected = [0, 1, 'task 2 failed', 3, 4, 5, 6, 7]
    if (ran !== undefined) t.deepEqual(outcomes, expected)
    else {
      outcomes.forEach((o, i) =>
        t.true(o === expected[i] || (i > 2 && (o === 'cancelled' || o === 'the executor was destroyed while the task was running')), `task ${i}: ${o}`),
      )
    }
  })

  serial(`${kind.name}: after shutdown(), a worker that leaves is not replaced while the tasks left are held by a busy worker`, async (t) => {
    const pool = kind.make({ maxWorkers: 2 })
    // Warm up: the workers' batches grow, so that the busy one takes the tasks behind its own.
    for (let round = 0; round < 5; round++) await Promise.all(Array.from({ length: 200 }, (_, i) => pool.submit((x: number) => x, i).result()))
    const futures = Array.from({ length: 20 }, (_, i) => pool.submit((x: number) => x, i))
    futures.push(pool.submit(() => (Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000), -1)))
    for (let i = 0; i < 20; i++) futures.push(pool.submit((x: number) => x, i))
    const closing = pool.shutdown({ wait: true })
    const samples: number[] = []
    const sampler = setInterval(() => samples.push(pool.stats().workers), 2)
    await closing
    clearInterval(sampler)
    t.is((await Promise.all(futures.map((f) => f.result()))).length, 41)
    // The idle worker leaves, and is not replaced (a new one would find nothing, leave, and be
    // replaced again): the busy one works alone for most of the second.
    const alone = samples.filter((n) => n === 1).length
    t.true(alone > samples.length / 2, `workers during shutdown: ${samples.join('')}`)
  })

  serial(`${kind.name}: results delivered before a worker dies resolve their futures; the rest fail with ${kind.Broken.name}`, async (t) => {
    const pool = kind.make({ maxWorkers: 2 })
    t.deepEqual(await Promise.all([0, 1].map(() => pool.submit(() => 'warm').result())), ['warm', 'warm'])
    const done = pool.submit(() => (Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300), 'done'))
    const dies = pool.submit(() => (Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600), process.exit(7)))
    await new Promise((resolve) => setTimeout(resolve, 100))
    // Busy: the first result is delivered, then the second worker dies, before the main thread looks.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1200)
    t.is(await done.result(), 'done')
    await t.throwsAsync(dies.result(), { instanceOf: kind.Broken })
  })

  serial(`${kind.name}: an object sent to an earlier task arrives intact in a later one (arguments)`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const config = { role: 'config' }
    t.is(await pool.submit((c: { role: string }) => c.role, config).result(), 'config')
    const third = await pool
      .submit((_a: unknown, _b: unknown, c: { role: string }) => c, { role: 'first' }, { role: 'second' }, config)
      .result()
    t.deepEqual(third, { role: 'config' })
    const shared = { a: 1, list: [1, 2, 3] }
    for (let i = 0; i < 3; i++) t.deepEqual(await pool.submit((o: unknown) => o, shared).result(), shared)
    // Within one message a shared reference stays shared.
    t.true(await pool.submit((o: unknown, p: unknown) => o === p, shared, shared).result())
    const cfg = { mult: 10 }
    const out: number[] = []
    for await (const v of pool.map((it: { n: number; cfg: { mult: number } }) => it.n * it.cfg.mult, [1, 2, 3, 4, 5, 6].map((n) => ({ n, cfg })))) {
      out.push(v)
    }
    t.deepEqual(out, [10, 20, 30, 40, 50, 60])
    await pool.shutdown()
  })

  serial(`${kind.name}: an object returned by an earlier task arrives intact in a later result`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const same = (): unknown => ((globalThis as any).__same ??= { b: 2, nested: { c: 3 } })
    for (let i = 0; i < 3; i++) t.deepEqual(await pool.submit(same).result(), { b: 2, nested: { c: 3 } })
    const later = await pool.submit(() => [{ role: 'first' }, { role: 'second' }, (globalThis as any).__same]).result()
    t.deepEqual(later, [{ role: 'first' }, { role: 'second' }, { b: 2, nested: { c: 3 } }])
    await pool.shutdown()
  })

  serial(`${kind.name}: cloned arguments and results are not kept alive (main thread and worker)`, async (t) => {
    const out = await script(
      `retention-${kind.name}`,
      `
      const { ${kind.name} } = require(${dist})
      const gcNow = async () => { for (let i = 0; i < 3; i++) { await new Promise((r) => setTimeout(r, 10)); gc() } }
      ;(async () => {
        const pool = new ${kind.name}({ maxWorkers: 1 })
        const sent = []
        const got = []
        // In a function of its own, so that no suspended frame of ours holds the last ones.
        const round = async (i) => {
          const arg = { i, payload: new Array(64).fill(i) }
          sent.push(new WeakRef(arg))
          const result = await pool.submit((o) => {
            const refs = (globalThis.__refs ??= [])
            refs.push(new WeakRef(o))
            const back = { i: o.i, back: new Array(64).fill(o.i) }
            refs.push(new WeakRef(back))
            return back
          }, arg).result()
          got.push(new WeakRef(result))
        }
        for (let i = 0; i < 5; i++) await round(i)
        await gcNow()
        const alive = (refs) => refs.filter((r) => r.deref() !== undefined).length
        console.log('main', alive(sent), alive(got))
        const inWorker = await pool.submit(async () => {
          require('node:v8').setFlagsFromString('--expose-gc')
          const gc = require('node:vm').runInNewContext('gc')
          for (let i = 0; i < 3; i++) { await new Promise((r) => setTimeout(r, 10)); gc() }
          return globalThis.__refs.filter((r) => r.deref() !== undefined).length
        }).result()
        console.log('worker', inWorker)
        await pool.shutdown()
      })()
      `,
      { args: ['--expose-gc'] },
    )
    t.is(out, 'main 0 0\nworker 0')
  })

  serial(`${kind.name}: uncloneable initargs throw a TypeError naming options.initargs at construction`, async (t) => {
    const err = t.throws(() => kind.make({ maxWorkers: 1, initializer: () => {}, initargs: [() => 1] }), { instanceOf: TypeError })
    t.regex(err!.message, /^options\.initargs cannot be sent to the workers/)
    t.is((err!.cause as Error)?.name, 'DataCloneError')
    // Nothing escapes later either: a child started with bad initargs would die uncaught.
    const out = await script(
      `initargs-${kind.name}`,
      `
      const { ${kind.name} } = require(${dist})
      try { new ${kind.name}({ maxWorkers: 1, initializer: () => {}, initargs: [Symbol('x')] }) } catch (e) { console.log(e.name) }
      `,
    )
    t.is(out, 'TypeError')
  })

  serial(`${kind.name}: a multi-megabyte argument and result cross byte for byte`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const big = pattern(12 << 20, 7)
    const digest = await pool.submit((b: Uint8Array) => require('node:crypto').createHash('sha256').update(b).digest('hex'), big).result()
    t.is(digest, sha256(big))
    const back = await pool
      .submit((n: number, seed: number) => {
        const b = new Uint8Array(n)
        for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >>> 9) + seed) & 255
        return b
      }, 20 << 20, 3)
      .result()
    t.is(back.length, 20 << 20)
    t.is(sha256(back), sha256(pattern(20 << 20, 3)))
    // Many frames in one go, some big, some small.
    const sizes = [1, 3 << 20, 0, 70_000, 5 << 20, 17]
    const lens = await Promise.all(sizes.map((n, i) => pool.submit((b: Uint8Array) => b.length, pattern(n, i)).result()))
    t.deepEqual(lens, sizes)
    await pool.shutdown()
  })

  serial(`${kind.name}: destroy() stops a task in an endless loop, settles every future and resolves once the workers are gone`, async (t) => {
    const pool = kind.make({ maxWorkers: 2 })
    const pid = await pool.submit(() => process.pid).result()
    const spinning = [pool.submit(() => {
      for (;;);
    }), pool.submit(() => {
      for (;;);
    })]
    while (!spinning.every((f) => f.running())) await new Promise((r) => setTimeout(r, 5))
    const queued = Array.from({ length: 5 }, (_, i) => pool.submit((x: number) => x, i))
    const started = Date.now()
    await pool.destroy()
    t.true(Date.now() - started < 10_000)
    for (const f of spinning) {
      t.true(f.done())
      t.false(f.cancelled())
      const err = await f.exception()
      t.true(err instanceof kind.Broken, String(err))
      t.true(err instanceof BrokenExecutor)
      t.regex((err as Error).message, /destroyed/)
    }
    for (const f of queued) {
      t.true(f.cancelled())
      await t.throwsAsync(f.result(), { instanceOf: CancelledError })
    }
    t.throws(() => pool.submit(() => 1), { message: /after shutdown/ })
    if (kind.name === 'ProcessPoolExecutor') {
      t.not(pid, process.pid)
      // Every child has exited (and been reaped) by the time destroy() resolves.
      const { stdout } = await run('ps', ['-o', 'pid=', '--ppid', String(process.pid)]).catch(() => ({ stdout: '' }))
      const children = stdout.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0)
      t.false(children.includes(pid), `child ${pid} still running`)
    }
    await pool.destroy()
    await pool.shutdown()
  })

  serial(`${kind.name}: destroy() releases a shutdown() that waits for a stuck task`, async (t) => {
    const pool = kind.make({ maxWorkers: 1 })
    const stuck = pool.submit(() => {
      for (;;);
    })
    while (!stuck.running()) await new Promise((r) => setTimeout(r, 5))
    const waiting = pool.shutdown()
    await new Promise((r) => setTimeout(r, 50))
    await pool.destroy()
    await waiting
    t.true((await stuck.exception()) instanceof kind.Broken)
  })
}

serial('ProcessPoolExecutor: running out of file descriptors while spawning breaks the pool with EMFILE and settles every future', async (t) => {
  const out = await script(
    'emfile',
    `
    const fs = require('node:fs')
    const { ProcessPoolExecutor, sleep } = require(${distIndex})
    ;(async () => {
      // The runtime is up (as in a process that runs out of descriptors later).
      await sleep(1)
      const pool = new ProcessPoolExecutor({ maxWorkers: 2 })
      const hog = []
      try { for (;;) hog.push(fs.openSync('/dev/null', 'r')) } catch (e) { console.log('hogged', e.code) }
      for (let i = 0; i < 3; i++) fs.closeSync(hog.pop())
      const futures = [1, 2, 3].map((i) => pool.submit((x) => x, i))
      for (const f of futures) {
        const e = await f.exception({ timeoutMs: 10000 })
        console.log(e && e.name, /EMFILE/.test(e && e.message), e && e.cause && e.cause.code)
      }
      try { pool.submit(() => 1) } catch (e) { console.log('submit', e.name) }
      for (const fd of hog) fs.closeSync(fd)
      await pool.shutdown()
      console.log('end')
    })()
    `,
    { ulimit: 40 },
  )
  t.is(
    out,
    [
      'hogged EMFILE',
      'BrokenProcessPool true EMFILE',
      'BrokenProcessPool true EMFILE',
      'BrokenProcessPool true EMFILE',
      'submit BrokenProcessPool',
      'end',
    ].join('\n'),
  )
})

serial('ThreadPoolExecutor: a worker that cannot start for lack of file descriptors breaks the pool naming EMFILE', async (t) => {
  const out = await script(
    'emfile-threads',
    `
    const fs = require('node:fs')
    const { ThreadPoolExecutor, sleep } = require(${distIndex})
    ;(async () => {
      // The runtime is up (as in a process that runs out of descriptors later).
      await sleep(1)
      const pool = new ThreadPoolExecutor({ maxWorkers: 2 })
      const hog = []
      try { for (;;) hog.push(fs.openSync('/dev/null', 'r')) } catch (e) { console.log('hogged', e.code) }
      for (let i = 0; i < 3; i++) fs.closeSync(hog.pop())
      const futures = [1, 2].map((i) => pool.submit((x) => x, i))
      for (const f of futures) {
        const e = await f.exception({ timeoutMs: 10000 })
        console.log(e && e.name, /could not be started.*EMFILE/.test(e && e.message))
      }
      for (const fd of hog) fs.closeSync(fd)
      await pool.shutdown()
      console.log('end')
    })()
    `,
    { ulimit: 40 },
  )
  t.is(out, ['hogged EMFILE', 'BrokenThreadPool true', 'BrokenThreadPool true', 'end'].join('\n'))
})

/** A task that blocks its worker for `ms`, as a CPU-bound call does, without using a core; returns `tag`. */
function nap(ms: number, tag: string): string {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
  return tag
}

for (const Pool of [ThreadPoolExecutor, ProcessPoolExecutor]) {
  serial(`${Pool.name}: a result goes out when its task ends, not with the rest of its batch; destroy() then keeps it`, async (t) => {
    const ex = new Pool({ maxWorkers: 1 })
    try {
      // Tiny tasks first: the worker then takes tasks in large batches.
      for (let round = 0; round < 5; round++) await Promise.all(Array.from({ length: 500 }, (_, i) => ex.submit(nap, 0, String(i)).result()))
      for (let trial = 0; trial < 3; trial++) {
        const fast = ex.submit(nap, 0, 'fast')
        const slow = ex.submit(nap, 2000, 'slow')
        t.is(await fast.result({ timeoutMs: 1500 }), 'fast')
        t.false(slow.done())
        await slow.result()
      }
      const fast = ex.submit(nap, 0, 'fast')
      const endless = ex.submit(nap, 60_000, 'endless')
      t.is(await fast.result({ timeoutMs: 1500 }), 'fast')
      // Started (a task still queued at destroy() is cancelled, not broken).
      while (!endless.running()) await new Promise((resolve) => setTimeout(resolve, 5))
      await ex.destroy()
      t.is(await fast.result(), 'fast')
      t.true((await endless.exception()) instanceof BrokenExecutor)
    } finally {
      await ex.destroy()
    }
  })
}

serial('ThreadPoolExecutor: tasks held behind a long one are not running, can be cancelled, and an idle worker takes them over', async (t) => {
  const ex = new ThreadPoolExecutor({ maxWorkers: 2 })
  try {
    // Two at once: both workers start.
    await Promise.all([ex.submit(nap, 100, 'a').result(), ex.submit(nap, 100, 'b').result()])
    for (let round = 0; round < 5; round++) await Promise.all(Array.from({ length: 500 }, (_, i) => ex.submit(nap, 0, String(i)).result()))
    t.is(ex.stats().workers, 2)
    const slow = ex.submit(nap, 1500, 'slow')
    const fast = Array.from({ length: 20 }, (_, i) => ex.submit(nap, 0, `fast${i}`))
    // The other worker runs them, long before the slow one ends.
    t.deepEqual(await Promise.all(fast.map((f) => f.result({ timeoutMs: 1000 }))), fast.map((_, i) => `fast${i}`))
    t.false(slow.done())
    await slow.result()

    // With one worker, none is taken over: held behind the long task, not running, cancellable.
    const single = new ThreadPoolExecutor({ maxWorkers: 1 })
    try {
      for (let round = 0; round < 5; round++) await Promise.all(Array.from({ length: 500 }, (_, i) => single.submit(nap, 0, String(i)).result()))
      const long = single.submit(nap, 1000, 'long')
      const held = Array.from({ length: 20 }, (_, i) => single.submit(nap, 0, `held${i}`))
      await new Promise((r) => setTimeout(r, 200))
      t.true(long.running())
      t.true(held.every((f) => !f.running() && !f.done()))
      t.true(held[0].cancel())
      await single.shutdown({ cancelFutures: true })
      t.true(held.every((f) => f.cancelled()))
      t.is(await long.result(), 'long')
    } finally {
      await single.destroy()
    }
  } finally {
    await ex.destroy()
  }
})

serial('ThreadPoolExecutor: a task taken over by an idle worker runs once, though its first holder gives the rest of its batch back', async (t) => {
  const runTwiceCheck = (runs: SharedArrayBuffer, i: number, ms: number): number => {
    Atomics.add(new Int32Array(runs), i, 1)
    if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
    return i
  }
  for (let trial = 0; trial < 4; trial++) {
    const pool = new ThreadPoolExecutor({ maxWorkers: 2 })
    try {
      const n = 200
      const runs = new SharedArrayBuffer(4 * (n + 10))
      await Promise.all(Array.from({ length: n }, (_, i) => pool.submit(runTwiceCheck, runs, i, 0).result()))
      // A long task, then tasks long enough that the holder's batch is overdue when it gets back to them.
      const fs = Array.from({ length: 10 }, (_, k) => pool.submit(runTwiceCheck, runs, n + k, k === 0 ? 40 : 80))
      t.deepEqual(await Promise.all(fs.map((f) => f.result())), fs.map((_, k) => n + k))
      const counts = [...new Int32Array(runs)]
      t.deepEqual(counts.map((c, i) => [i, c]).filter(([, c]) => c !== 1), [], `trial ${trial}`)
    } finally {
      await pool.shutdown()
    }
  }
})

for (const Pool of [ThreadPoolExecutor, ProcessPoolExecutor]) {
  serial(`${Pool.name}: maxTasksPerChild counts the tasks a worker ran, not those it handed back unstarted`, async (t) => {
    const pool = new Pool({ maxWorkers: 1, maxTasksPerChild: 10 })
    const whoAsync = (i: number): Promise<[string, number]> =>
      new Promise((resolve) => setTimeout(() => resolve([`${process.pid}:${require('node:worker_threads').threadId}`, i]), 1))
    try {
      const results = await Promise.all(Array.from({ length: 60 }, (_, i) => pool.submit(whoAsync, i).result()))
      const perWorker = new Map<string, number>()
      for (const [worker] of results) perWorker.set(worker, (perWorker.get(worker) ?? 0) + 1)
      t.deepEqual([...perWorker.values()], Array(6).fill(10))
    } finally {
      await pool.shutdown()
    }
  })
}

serial('MessageParser reassembles a big message from many chunks copying each byte a bounded number of times', (t) => {
  const body = pattern(4 << 20, 1)
  const small = Buffer.from('tail')
  const stream = Buffer.concat([header(Msg.RESULTS, body.length), body, header(Msg.READY, 0), header(Msg.RETURN, small.length), small])
  const got: [Msg, string][] = []
  const parser = new MessageParser((type, b) => got.push([type, sha256(b)]))
  const concat = Buffer.concat
  let copied = 0
  Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
    const out = concat(list, total)
    copied += out.length
    return out
  }) as typeof Buffer.concat
  try {
    // 64 KiB chunks, as a pipe delivers them, cut at odd places.
    for (let at = 0; at < stream.length; at += 65_531) parser.push(stream.subarray(at, at + 65_531))
  } finally {
    Buffer.concat = concat
  }
  t.deepEqual(got, [
    [Msg.RESULTS, sha256(body)],
    [Msg.READY, sha256(Buffer.alloc(0))],
    [Msg.RETURN, sha256(small)],
  ])
  t.true(copied <= 2 * stream.length, `copied ${copied} bytes for a ${stream.length}-byte stream`)
  // Split headers and one byte at a time work too.
  const bytes: [Msg, string][] = []
  const slow = new MessageParser((type, b) => bytes.push([type, b.toString()]))
  const msg = Buffer.concat([header(Msg.RETURN, 3), Buffer.from('abc'), header(Msg.READY, 0)])
  for (let i = 0; i < msg.length; i++) slow.push(msg.subarray(i, i + 1))
  t.deepEqual(bytes, [
    [Msg.RETURN, 'abc'],
    [Msg.READY, ''],
  ])
})

function header(type: Msg, len: number): Buffer {
  const h = Buffer.alloc(MSG_HEADER)
  h[0] = type
  h.writeUInt32LE(len, 1)
  return h
}

serial('ThreadPoolExecutor: a SharedArrayBuffer argument is shared memory, both ways', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  const sab = new SharedArrayBuffer(16)
  const view = new Int32Array(sab)
  view[2] = 5
  // The worker writes, the main thread sees it, and the other way round while the task runs.
  const f = pool.submit((v: Int32Array) => {
    Atomics.store(v, 0, v[2] + 1)
    Atomics.notify(v, 0)
    Atomics.wait(v, 1, 0, 10_000)
    return Atomics.load(v, 1)
  }, view)
  while (Atomics.load(view, 0) === 0) await new Promise((r) => setTimeout(r, 5))
  t.is(view[0], 6)
  Atomics.store(view, 1, 99)
  Atomics.notify(view, 1)
  t.is(await f.result(), 99)
  // A bare SharedArrayBuffer, sent twice, and inside a structure with a second one.
  const other = new SharedArrayBuffer(4)
  await pool.submit((s: SharedArrayBuffer) => {
    new Uint8Array(s)[15] = 7
  }, sab).result()
  t.is(new Uint8Array(sab)[15], 7)
  t.true(
    await pool
      .submit((o: { a: SharedArrayBuffer; b: SharedArrayBuffer; again: SharedArrayBuffer }) => {
        new Uint8Array(o.b)[0] = 9
        return o.a === o.again && o.a.byteLength === 16
      }, { a: sab, b: other, again: sab })
      .result(),
  )
  t.is(new Uint8Array(other)[0], 9)
  // A SharedArrayBuffer made in the worker comes back shared.
  const made = await pool.submit(() => ((globalThis as any).__sab = new SharedArrayBuffer(8))).result()
  t.true(made instanceof SharedArrayBuffer)
  await pool.submit(() => {
    new Int32Array((globalThis as any).__sab)[1] = 1234
  }).result()
  t.is(new Int32Array(made)[1], 1234)
  // Returned by the task it was given to.
  const echoed = await pool.submit((s: SharedArrayBuffer) => s, sab).result()
  new Uint8Array(echoed)[3] = 33
  t.is(new Uint8Array(sab)[3], 33)
  // Workers started later see the memory of tasks queued before them.
  const wide = new ThreadPoolExecutor({ maxWorkers: 3 })
  const cells = new Int32Array(new SharedArrayBuffer(12))
  await Promise.all([0, 1, 2].map((i) => wide.submit(async (c: Int32Array, k: number) => {
    await new Promise((r) => setTimeout(r, 30))
    Atomics.add(c, k, k + 1)
  }, cells, i).result()))
  t.deepEqual([...cells], [1, 2, 3])
  await wide.shutdown()
  await pool.shutdown()
})

serial('ProcessPoolExecutor: a SharedArrayBuffer argument or result is a clear TypeError', async (t) => {
  const pool = new ProcessPoolExecutor({ maxWorkers: 1 })
  t.throws(() => pool.submit((_a: number, s: unknown) => s, 1, new SharedArrayBuffer(8)), {
    instanceOf: TypeError,
    message: /^args\[1\] contains a SharedArrayBuffer, which ProcessPoolExecutor cannot send: a child process does not share memory/,
  })
  t.throws(() => pool.submit((o: unknown) => o, { view: new Int32Array(new SharedArrayBuffer(8)) }), {
    instanceOf: TypeError,
    message: /^args\[0\] contains a SharedArrayBuffer, which ProcessPoolExecutor cannot send/,
  })
  t.throws(() => new ProcessPoolExecutor({ initializer: () => {}, initargs: [new SharedArrayBuffer(4)] }), {
    instanceOf: TypeError,
    message: /^options\.initargs cannot be sent to the workers.*SharedArrayBuffer/,
  })
  const back = await pool.submit(() => new SharedArrayBuffer(8)).exception()
  t.true(back instanceof TypeError, String(back))
  t.regex((back as Error).message, /SharedArrayBuffer/)
  // The pool still works.
  t.is(await pool.submit((x: number) => x + 1, 1).result(), 2)
  await pool.shutdown()
})

serial('ThreadPoolExecutor: SharedArrayBuffer initargs are shared with every worker', async (t) => {
  const cells = new Int32Array(new SharedArrayBuffer(4))
  const pool = new ThreadPoolExecutor({
    maxWorkers: 2,
    initializer: (c: Int32Array) => {
      Atomics.add(c, 0, 1)
    },
    initargs: [cells],
  })
  await Promise.all([pool.submit(async () => new Promise((r) => setTimeout(r, 50))).result(), pool.submit(async () => new Promise((r) => setTimeout(r, 50))).result()])
  await pool.shutdown()
  t.is(cells[0], 2)
})

serial('shutdown({ wait: true }) awaited inside a greenlet is interrupted by kill', async (t) => {
  for (const kind of kinds) {
    const pool = kind.make({ maxWorkers: 1 })
    const f = pool.submit(async (ms: number) => new Promise((r) => setTimeout(() => r('done'), ms)), 600)
    const g = spawn(() => pool.shutdown({ wait: true }))
    await new Promise((r) => setTimeout(r, 100))
    await g.kill()
    t.true(g.dead)
    t.true(g.exception instanceof GreenletExit || g.exception === undefined)
    t.false(f.done(), `${kind.name}: the shutdown wait ended at once`)
    t.is(await f.result(), 'done')
    // The executor is shut down all the same, and a later shutdown waits as usual.
    t.throws(() => pool.submit(() => 1), { message: /after shutdown/ })
    await pool.shutdown()
  }
})

serial('submitting a class is a TypeError that says a class cannot be called', (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  class Task {}
  const err = t.throws(() => pool.submit(Task as any), { instanceOf: TypeError })
  t.regex(err!.message, /^fn must be a function.*got the class Task/)
  t.notRegex(err!.message, /got a function/)
  t.throws(() => new ThreadPoolExecutor({ initializer: class {} as any }), { instanceOf: TypeError, message: /^options.initializer .*class/ })
})

serial('a method that reads `this`, submitted by source, fails with a clear TypeError instead of a wrong result', async (t) => {
  const pool = new ThreadPoolExecutor({ maxWorkers: 1 })
  const obj = {
    k: 2,
    times(x: number): number {
      return x * this.k
    },
  }
  const err = await pool.submit(obj.times, 3).exception()
  t.true(err instanceof TypeError, String(err))
  t.regex((err as Error).message, /this\.k.*without its object/)
  // Functions that do not touch `this`, or use it for their own objects, are unaffected.
  t.is(await pool.submit(function (x: number) {
    return x + 1
  }, 1).result(), 2)
  t.is(await pool.submit((x: number) => {
    class Box {
      constructor(public v: number) {}
      get twice(): number {
        return this.v * 2
      }
    }
    return new Box(x).twice
  }, 4).result(), 8)
  await pool.shutdown()
})

serial('destroy() on an idle or never-used executor resolves at once', async (t) => {
  for (const kind of kinds) {
    const unused = kind.make()
    await unused.destroy()
    const idle = kind.make({ maxWorkers: 1 })
    t.is(await idle.submit(() => 1).result(), 1)
    const { notDone } = await wait([idle.submit(() => 2)])
    t.is(notDone.size, 0)
    await idle.destroy()
    t.throws(() => idle.submit(() => 1), { message: /after shutdown/ })
  }
})

serial('ProcessPoolExecutor: a child stuck in a busy task dies when its parent is SIGKILLed', async (t) => {
  const script = `
const { ProcessPoolExecutor } = require(${distIndex})
const ex = new ProcessPoolExecutor({ maxWorkers: 1 })
ex.submit(() => process.pid).result().then((pid) => {
  ex.submit(() => { for (;;); })
  setTimeout(() => console.log(pid), 300)
})`
  const { spawn } = await import('node:child_process')
  const parent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  parent.stdout.on('data', (d: Buffer) => (out += d))
  for (let i = 0; i < 200 && !out.includes('\n'); i++) await new Promise((resolve) => setTimeout(resolve, 25))
  const childPid = Number(out.trim())
  t.true(Number.isInteger(childPid) && childPid > 0, `no child pid: ${out}`)
  // A zombie (dead, not yet reaped by whoever adopted it) counts as gone.
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0)
    } catch {
      return false
    }
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  }
  t.true(alive(childPid), 'the child runs its busy task')
  parent.kill('SIGKILL')
  let gone = false
  for (let i = 0; i < 100 && !gone; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    gone = !alive(childPid)
  }
  if (!gone) process.kill(childPid, 'SIGKILL')
  t.true(gone, 'the child outlived its parent by 5 s')
})

serial("ProcessPoolExecutor: a task closing fd 3, or opening a file there, leaves the pool's pipe alone", async (t) => {
  const pool = new ProcessPoolExecutor({ maxWorkers: 1 })
  const file = path.join(tmp, 'fd3-task.txt')
  try {
    t.is(await pool.submit((x: number) => x * 2, 21).result(), 42)
    // The pipe to the parent no longer has the number the child inherited.
    const closed = await pool.submit((name: string) => {
      const fs = require('node:fs')
      let error = ''
      try {
        fs.closeSync(3)
      } catch (err) {
        error = (err as NodeJS.ErrnoException).code ?? 'thrown'
      }
      // A file opened now may well get that number: nothing of the pool's goes into it.
      const fd = fs.openSync(name, 'w')
      fs.writeSync(fd, 'mine')
      fs.closeSync(fd)
      return error
    }, file).result()
    t.true(closed === '' || closed === 'EBADF', `closeSync(3): ${closed}`)
    t.is(await pool.submit((x: number) => x + 1, 6).result(), 7)
    t.is(fs.readFileSync(file, 'utf8'), 'mine')
    // Processes a task spawns do not hold the pipe: the child's end is its own.
    const pipes = await pool.submit(() => {
      const { execFileSync } = require('node:child_process')
      const count = "find /proc/$$/fd -mindepth 1 -lname 'socket:*' | grep -vc '/fd/[012]$' || true"
      return execFileSync('sh', ['-c', count], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()
    }).result()
    t.is(pipes, '0')
  } finally {
    await pool.shutdown()
  }
})

serial('ProcessPoolExecutor: a child that closes its pipe to the pool and lives on breaks the pool (its futures settle)', async (t) => {
  const pool = new ProcessPoolExecutor({ maxWorkers: 1 })
  try {
    t.is(await pool.submit(() => 1).result(), 1)
    const f = pool.submit(() => {
      const fs = require('node:fs')
      for (const name of fs.readdirSync('/proc/self/fd')) {
        let target = ''
        try {
          target = fs.readlinkSync(`/proc/self/fd/${name}`)
        } catch {}
        if (target.startsWith('socket:')) fs.closeSync(Number(name))
      }
      return 5
    })
    const err = await t.throwsAsync(f.exception({ timeoutMs: 20_000 }).then((e) => Promise.reject(e)))
    t.true(err instanceof BrokenProcessPool, String(err))
    t.regex(String((err as Error).cause), /closed its pipe/)
  } finally {
    await pool.shutdown()
  }
})

for (const kind of kinds) {
  serial(`${kind.name}: a worker whose task or module left a timer open still retires and shuts down`, async (t) => {
    const module = path.join(tmp, `keeps-alive-${kind.name}.js`)
    // As client libraries do at load: a timer for the life of the process.
    fs.writeFileSync(module, 'setInterval(() => {}, 1000)\nexports.twice = (x) => x * 2\n')
    const leaveInterval = (): string => {
      setInterval(() => {}, 1000)
      return 'left'
    }
    const within = <T>(ms: number, p: Promise<T>, what: string): Promise<T> =>
      Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not done in ${ms} ms`)), ms).unref())])
    // A worker retired after its one task starts again for the next.
    const retiring = kind.make({ maxWorkers: 1, maxTasksPerChild: 1 })
    try {
      t.is(await retiring.submit(leaveInterval).result(), 'left')
      t.is(await within(20_000, retiring.submit((x: number) => x + 1, 1).result(), 'the task after a retirement'), 2)
    } finally {
      await within(20_000, retiring.shutdown(), 'shutdown after retirements')
    }
    const withModule = kind.make({ maxWorkers: 1, module })
    t.is(await withModule.submit('twice', 21).result(), 42)
    t.is(await withModule.submit(leaveInterval).result(), 'left')
    await t.notThrowsAsync(within(20_000, withModule.shutdown(), 'shutdown'))
    t.is(withModule.stats().workers, 0)
  })
}

for (const kind of kinds) {
  serial(`${kind.name}: a big argument and result do not stay allocated once their task is done`, async (t) => {
    const out = await script(
      `big-message-${kind.name}`,
      `
const { ${kind.name} } = require(${distIndex})
const settle = () => new Promise((resolve) => setTimeout(resolve, 50))
;(async () => {
  const pool = new ${kind.name}({ maxWorkers: 1 })
  const before = process.memoryUsage().arrayBuffers
  // In a call of its own: the suspended caller keeps no reference to the last result.
  const roundTrip = async (i) => {
    const echoed = await pool.submit((b) => b, Buffer.alloc(64 << 20, i)).result()
    if (echoed.length !== 64 << 20 || echoed[12345] !== i) throw new Error('wrong bytes back')
  }
  for (let i = 0; i < 2; i++) await roundTrip(i)
  await pool.submit((x) => x, 1).result()
  // Released memory may take a few collections to show (under load, finalizers run late): up to 2 s.
  let keptMiB
  for (let tries = 0; tries < 40; tries++) {
    global.gc(); await settle(); global.gc()
    keptMiB = (process.memoryUsage().arrayBuffers - before) / 2 ** 20
    if (keptMiB < 16) break
  }
  console.log(JSON.stringify({ keptMiB }))
  await pool.shutdown()
})()`,
      { args: ['--expose-gc'] },
    )
    const { keptMiB } = JSON.parse(out.split('\n').pop()!) as { keptMiB: number }
    // Kept, the writer that encoded them holds 64 MiB or more.
    t.true(keptMiB < 16, `${keptMiB.toFixed(1)} MiB of ArrayBuffers kept`)
  })
}
