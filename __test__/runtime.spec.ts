import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'

import test from 'ava'

import { configure, runtimeInfo } from '../index'
import { native } from '../src/native'

const run = promisify(execFile)
const root = path.join(__dirname, '..', '..')

function node(args: string[], timeout = 20_000) {
  return run(process.execPath, args, { cwd: root, timeout })
}

test('configure validates workers and refuses changes after the runtime started', (t) => {
  t.throws(() => configure({ workers: 0 }), { instanceOf: RangeError, message: /options.workers must be a positive integer/ })
  t.throws(() => configure({ workers: 1.5 }), { instanceOf: RangeError })
  t.throws(() => configure({ workers: '2' as any }), { instanceOf: TypeError, message: /options.workers/ })
  t.throws(() => configure(7 as any), { instanceOf: TypeError, message: /options must be an options object/ })
  // A count the process cannot create wrapped around (2^32 + 1 became 1) or panicked inside may.
  t.throws(() => configure({ workers: 2 ** 32 + 1 }), { instanceOf: RangeError, message: /options.workers must be at most 256, got 4294967297/ })
  t.throws(() => configure({ workers: 100_000 }), { instanceOf: RangeError, message: /at most 256/ })
})

test('the runtime starts lazily, at the first built-in server, with the configured worker count', async (t) => {
  // Greenlets, yields and timers are the JS thread's and the hub's clock's: no runtime worker starts for them.
  const script = `
    const gt = require('./dist/index.js')
    const before = gt.runtimeInfo().started
    gt.configure({ workers: 3 })
    gt.spawn(() => gt.sleep(1)).join().then(async () => {
      const afterTimers = gt.runtimeInfo().started
      const server = new gt.StreamServer({ port: 0, host: '127.0.0.1' }, 'echo')
      server.start()
      await server.stop()
      const info = gt.runtimeInfo()
      let late = ''
      try { gt.configure({ workers: 2 }) } catch (e) { late = e.constructor.name }
      console.log(JSON.stringify({ before, afterTimers, started: info.started, workers: info.workers, late }))
    })`
  const { stdout } = await node(['-e', script])
  t.deepEqual(JSON.parse(stdout), { before: false, afterTimers: false, started: true, workers: 3, late: 'RangeError' })
  t.true(typeof runtimeInfo().workers === 'number')
})

test('the process exits on its own once greenlets are done, even with one left suspended in switch', async (t) => {
  const script = `
    const gt = require('./dist/index.js')
    const a = new gt.Greenlet(async () => { await b.switch() })
    const b = new gt.Greenlet(async () => { await a.switch(); })
    ;(async () => {
      await gt.joinall([gt.spawn(() => gt.sleep(20)), gt.spawn(() => gt.sleep(0))])
      const t = gt.spawn(() => gt.sleep(60_000)); await gt.sleep(1); await t.kill()
      a.switch(); await gt.sleep(5)
      console.log('done')
    })()`
  const start = Date.now()
  const { stdout } = await node(['-e', script])
  t.is(stdout.trim(), 'done')
  t.true(Date.now() - start < 10_000)
})

test('a sleeping greenlet keeps the process alive until it wakes', async (t) => {
  const { stdout } = await node(['-e', `require('./dist/index.js').spawn(async () => { await require('./dist/index.js').sleep(200); console.log('woke') })`])
  t.is(stdout.trim(), 'woke')
})

test('ESM and CommonJS consumers both load the package', async (t) => {
  const esm = await node(['--input-type=module', '-e', `import { spawn, sleep } from 'greenthread'; console.log(await spawn(async () => { await sleep(1); return 'esm' }).get())`])
  t.is(esm.stdout.trim(), 'esm')
  const cjs = await node(['-e', `require('greenthread').spawn(() => 'cjs').get().then(console.log)`])
  t.is(cjs.stdout.trim(), 'cjs')
})

test('malformed hub commands reach JS as an Error, not a crash', (t) => {
  const hub = new native.NativeHub(() => undefined)
  const out = new Float64Array(16)
  t.throws(() => hub.flush(new Float64Array([99, 1, 0, 0]), 1, out, 0), { message: /unknown hub command/ })
  t.throws(() => hub.flush(new Float64Array(4), 2, out, 0), { message: /command count exceeds the buffer/ })
})

test('out of file descriptors, the runtime fails to start with EMFILE and starts once some are free', async (t) => {
  const script = `
const G = require(${JSON.stringify(root)}); const fs = require('fs'); const net = require('net')
;(async () => {
  const srv = net.createServer((c) => c.end()); await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  const hog = []; try { for (;;) hog.push(fs.openSync('/dev/null', 'r')) } catch {}
  const first = await G.connect('127.0.0.1', srv.address().port).then(() => 'connected', (e) => e.code)
  let server; try { new G.StreamServer({ port: 0 }, 'echo').start(); server = 'started' } catch (e) { server = e.code }
  for (const fd of hog) fs.closeSync(fd)
  const second = await G.connect('127.0.0.1', srv.address().port).then((s) => (s.close(), 'connected'), (e) => e.code)
  console.log(JSON.stringify({ first, server, second }))
  srv.close()
})()`
  // The descriptor limit is the child's alone: bash sets it, then runs node.
  const { stdout } = await run('bash', ['-c', 'ulimit -n 64 && exec "$0" -e "$1"', process.execPath, script], { cwd: root, timeout: 20_000 })
  t.deepEqual(JSON.parse(stdout.trim().split('\n').pop()!), { first: 'EMFILE', server: 'EMFILE', second: 'connected' })
})

test('the addon works in worker threads and when the module is loaded again, and the process exits normally', async (t) => {
  const script = `
const { Worker, isMainThread, parentPort } = require('node:worker_threads')
const entry = ${JSON.stringify(root)}
const roundTrip = async (G) => {
  const g = G.spawn(async () => { await G.sleep(5); return 'greenlet' })
  const s = new G.StreamServer({ port: 0 }, async (sock) => { await sock.sendall(await sock.recv()) })
  s.start()
  const c = await G.connect('127.0.0.1', s.address.port)
  await c.sendall('echo')
  const got = (await c.recv()).toString()
  c.close()
  await s.stop()
  return [await g.get(), got]
}
if (isMainThread) {
  ;(async () => {
    const first = await roundTrip(require(entry))
    const workers = await Promise.all([1, 2].map(() => new Promise((resolve, reject) => {
      const w = new Worker(process.argv[1] ?? __filename, { eval: false, argv: [] })
      w.on('message', resolve)
      w.on('error', reject)
    })))
    for (const k of Object.keys(require.cache)) if (k.startsWith(entry)) delete require.cache[k]
    const again = await roundTrip(require(entry))
    console.log(JSON.stringify({ first, workers, again }))
  })()
} else {
  roundTrip(require(entry)).then((r) => parentPort.postMessage(r))
}`
  const file = path.join(require('node:os').tmpdir(), `greenthread-reload-${process.pid}.js`)
  require('node:fs').writeFileSync(file, script)
  try {
    const { stdout } = await run(process.execPath, [file], { cwd: root, timeout: 30_000 })
    const pair = ['greenlet', 'echo']
    t.deepEqual(JSON.parse(stdout.trim()), { first: pair, workers: [pair, pair], again: pair })
  } finally {
    require('node:fs').rmSync(file, { force: true })
  }
})
