import { spawn as spawnChild } from 'node:child_process'
import { lookup } from 'node:dns/promises'
import { once } from 'node:events'
import { type AddressInfo, type Server, type Socket as NodeSocket, createServer } from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

import test from 'ava'

import { GreenletExit, Timeout, sleep, spawn } from '../index'
import { IncompleteReadError, type Socket, StreamServer, connect } from '../index'

// The hub is process-wide: keep tests from sharing turns.
const serial = test.serial

/** A Node `net` server on a free loopback port: the reference peer. */
async function peer(onConnection: (sock: NodeSocket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onConnection)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, port: (server.address() as AddressInfo).port }
}

async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

/** Connects to a peer that hands its side of the connection to the test. */
async function pair(): Promise<{ sock: Socket; remote: NodeSocket; done: () => Promise<void> }> {
  let accepted!: (s: NodeSocket) => void
  const remoteP = new Promise<NodeSocket>((resolve) => (accepted = resolve))
  const { server, port } = await peer((s) => accepted(s))
  const sock = await connect('127.0.0.1', port)
  const remote = await remoteP
  return {
    sock,
    remote,
    done: async () => {
      sock.close()
      remote.destroy()
      await closeServer(server)
    },
  }
}

serial('connect() to a port nobody listens on rejects with an Error whose code is ECONNREFUSED', async (t) => {
  const { server, port } = await peer(() => undefined)
  await closeServer(server)
  const err = await t.throwsAsync(connect('127.0.0.1', port))
  t.true(err instanceof Error)
  t.is((err as NodeJS.ErrnoException).code, 'ECONNREFUSED')
  t.is((err as NodeJS.ErrnoException).syscall, 'connect')
})

serial('connect() to a listener that never answers rejects with ETIMEDOUT after timeoutMs', async (t) => {
  // A listener whose accept queue (backlog 1) fills up and whose process
  // never accepts: Linux then drops SYNs, so a connect hangs. The child
  // blocks its thread for at most 5 s, then exits.
  const child = spawnChild(process.execPath, [
    '-e',
    `const s = require('net').createServer()
     s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
       console.log(s.address().port)
       Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5000)
       process.exit(0)
     })`,
  ])
  const fillers: Socket[] = []
  try {
    const [line] = (await once(child.stdout!, 'data')) as [Buffer]
    const port = Number(line.toString().trim())
    let err: NodeJS.ErrnoException | undefined
    let took = 0
    for (let i = 0; i < 8 && err === undefined; i++) {
      const started = Date.now()
      try {
        fillers.push(await connect('127.0.0.1', port, { timeoutMs: 200 }))
      } catch (e) {
        err = e as NodeJS.ErrnoException
        took = Date.now() - started
      }
    }
    t.is(err?.code, 'ETIMEDOUT')
    t.true(took >= 150, `gave up after ${took} ms`)
  } finally {
    for (const s of fillers) s.close()
    child.kill()
  }
})

serial('localAddress and remoteAddress report both loopback ends', async (t) => {
  const { sock, remote, done } = await pair()
  t.deepEqual(sock.remoteAddress, { address: '127.0.0.1', family: 'IPv4', port: remote.localPort })
  t.deepEqual(sock.localAddress, { address: '127.0.0.1', family: 'IPv4', port: remote.remotePort })
  await done()
})

serial('recv() resolves with the bytes sent, at most maxBytes at a time', async (t) => {
  const { sock, remote, done } = await pair()
  remote.write('Thread-1 say hello')
  let got = ''
  while (got.length < 18) {
    const chunk = await sock.recv(4)
    t.true(chunk.length >= 1 && chunk.length <= 4)
    got += chunk.toString()
  }
  t.is(got, 'Thread-1 say hello')
  await done()
})

serial('a socket dropped without close() is collected and its connection closed, also while its recv stays armed', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  let closed = false
  let remote: NodeSocket | undefined
  const { server, port } = await peer((s) => {
    remote = s
    s.on('close', () => (closed = true))
    // After the recv below waits: the reactor delivers and keeps the recv armed.
    setTimeout(() => s.write('hi'), 50)
  })
  try {
    await spawn(async () => {
      const sock = await connect('127.0.0.1', port)
      t.is((await sock.recv()).toString(), 'hi')
    }).join()
    for (let i = 0; i < 100 && !closed; i++) {
      gc()
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    t.true(closed, 'the peer still holds an open connection after 100 collections')
  } finally {
    remote?.destroy()
    await closeServer(server)
  }
})

serial('recv() resolves with an empty Buffer at EOF, and again on every later recv', async (t) => {
  const { sock, remote, done } = await pair()
  remote.end('bye')
  t.is((await sock.recv(100)).toString(), 'bye')
  t.is((await sock.recv(100)).length, 0)
  t.is((await sock.recv(100)).length, 0)
  await done()
})

serial('sendall() delivers the bytes in order; a string is sent as UTF-8', async (t) => {
  const { sock, remote, done } = await pair()
  const received: Buffer[] = []
  remote.on('data', (d) => received.push(d))
  await sock.sendall('héllo ')
  await sock.sendall(Buffer.from('wörld'))
  await sock.sendall(new Uint8Array([33]))
  sock.shutdown('write')
  await once(remote, 'end')
  t.is(Buffer.concat(received).toString('utf8'), 'héllo wörld!')
  await done()
})

serial('sendall() then close() delivers every byte before the peer sees EOF', async (t) => {
  const { sock, remote, done } = await pair()
  const received: Buffer[] = []
  remote.on('data', (d) => received.push(d))
  const big = Buffer.alloc(3 << 20, 0x61)
  // 3 MiB cannot all be in the kernel yet: close() must write out the queue.
  const sending = sock.sendall(big)
  await sleep(0)
  await sending
  sock.close()
  await once(remote, 'end')
  t.is(Buffer.concat(received).length, big.length)
  await done()
})

serial('1 MiB sent with sendall() comes back intact through recvExactly() while both directions flow', async (t) => {
  let remote: NodeSocket | undefined
  const { server, port } = await peer((s) => {
    remote = s
    s.pipe(s)
  })
  const sock = await connect('127.0.0.1', port)
  const data = Buffer.alloc(1 << 20)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff
  const reader = spawn(() => sock.recvExactly(data.length))
  await sock.sendall(data)
  const echoed = await reader.get({ timeoutMs: 20_000 })
  t.is(echoed.length, data.length)
  t.true(echoed.equals(data))
  sock.close()
  remote?.destroy()
  await closeServer(server)
})

serial('recvExactly() rejects with IncompleteReadError carrying the partial bytes when the peer closes early', async (t) => {
  const { sock, remote, done } = await pair()
  remote.end('abc')
  const err = await t.throwsAsync(sock.recvExactly(10))
  t.true(err instanceof IncompleteReadError)
  t.is((err as IncompleteReadError).partial.toString(), 'abc')
  t.is((err as IncompleteReadError).expected, 10)
  await done()
})

serial('recv() after setTimeout(ms) rejects with ETIMEDOUT, and bytes arriving later go to the next recv', async (t) => {
  const { sock, remote, done } = await pair()
  sock.setTimeout(50)
  t.is(sock.timeoutMs, 50)
  const started = Date.now()
  const err = await t.throwsAsync(sock.recv(10))
  t.is((err as NodeJS.ErrnoException).code, 'ETIMEDOUT')
  t.true(Date.now() - started >= 40)
  sock.setTimeout(null)
  remote.write('late')
  t.is((await sock.recv(10)).toString(), 'late')
  await done()
})

serial('sendall() with setTimeout(ms) rejects with ETIMEDOUT when the peer stops reading', async (t) => {
  const { sock, remote, done } = await pair()
  remote.pause()
  sock.setTimeout(200)
  const chunk = Buffer.alloc(1 << 20)
  let err: unknown
  // The kernel buffers take a few MiB; the queue then stays over 64 KiB.
  for (let i = 0; i < 64 && err === undefined; i++) {
    err = await sock.sendall(chunk).catch((e: unknown) => e)
  }
  t.is((err as NodeJS.ErrnoException | undefined)?.code, 'ETIMEDOUT')
  await done()
})

serial('killing a greenlet blocked in recv() rejects the recv at once with the kill exception, and later bytes are kept', async (t) => {
  const { sock, remote, done } = await pair()
  let raised: unknown
  const g = spawn(async () => {
    try {
      await sock.recv(10)
    } catch (err) {
      raised = err
      throw err
    }
  })
  await sleep(20)
  t.false(g.dead)
  const started = Date.now()
  await g.kill(new GreenletExit('stop reading'), { timeoutMs: 2000 })
  t.true(g.dead)
  t.true(Date.now() - started < 1000)
  t.true(raised instanceof GreenletExit)
  remote.write('kept')
  t.is((await sock.recv(10)).toString(), 'kept')
  await done()
})

serial('close() rejects a recv waiting in another greenlet with EBADF, and later calls too', async (t) => {
  const { sock, done } = await pair()
  const g = spawn(() => sock.recv(10))
  await sleep(20)
  sock.close()
  const err = await t.throwsAsync(g.get({ timeoutMs: 2000 }))
  t.is((err as NodeJS.ErrnoException).code, 'EBADF')
  t.true(sock.closed)
  t.is(((await t.throwsAsync(sock.sendall('x'))) as NodeJS.ErrnoException).code, 'EBADF')
  await done()
})

serial('a peer that resets the connection makes recv() reject with ECONNRESET', async (t) => {
  const { sock, remote, done } = await pair()
  remote.write('partial')
  t.is((await sock.recv(100)).toString(), 'partial')
  remote.resetAndDestroy()
  const err = await t.throwsAsync(sock.recv(100))
  t.is((err as NodeJS.ErrnoException).code, 'ECONNRESET')
  await done()
})

serial('sendall() to a peer that has reset rejects at that very call (nothing was sent), and the later ones too', async (t) => {
  const { sock, remote, done } = await pair()
  remote.resetAndDestroy()
  // Over loopback the RST arrives at once.
  await sleep(100)
  const first = await t.throwsAsync(sock.sendall('important'))
  t.true(['EPIPE', 'ECONNRESET'].includes((first as NodeJS.ErrnoException).code!), String((first as NodeJS.ErrnoException).code))
  const later = await t.throwsAsync(sock.sendall('later'))
  t.true(['EPIPE', 'ECONNRESET'].includes((later as NodeJS.ErrnoException).code!), String((later as NodeJS.ErrnoException).code))
  await done()
})

serial('shutdown("write") sends EOF to the peer while the socket can still receive', async (t) => {
  const { sock, remote, done } = await pair()
  remote.on('end', () => remote.end('reply after your EOF'))
  remote.resume()
  sock.shutdown('write')
  t.is((await sock.recvExactly(20)).toString(), 'reply after your EOF')
  await done()
})

serial('shutdown("read"): recv resolves with EOF (an empty Buffer) while the socket can still send', async (t) => {
  const { sock, remote, done } = await pair()
  const got: Buffer[] = []
  remote.on('data', (d: Buffer) => got.push(d))
  sock.shutdown('read')
  t.is((await sock.recv()).length, 0)
  await sock.sendall('still sending')
  while (Buffer.concat(got).length < 13) await new Promise((r) => setTimeout(r, 5))
  t.is(Buffer.concat(got).toString(), 'still sending')
  await done()
})

serial('shutdown("both"): the peer sees EOF, recv resolves with EOF, and sendall then fails with EPIPE', async (t) => {
  const { sock, remote, done } = await pair()
  const ended = once(remote, 'end')
  remote.resume()
  sock.shutdown('both')
  await ended
  t.is((await sock.recv()).length, 0)
  const err = await t.throwsAsync<NodeJS.ErrnoException>(sock.sendall('late'))
  t.is(err?.code, 'EPIPE')
  await done()
})

serial('connect() by host name: localhost, and a name the resolver looks up (this machine\'s)', async (t) => {
  const { server, port } = await peer((s) => s.end('hello by name'))
  const sock = await connect('localhost', port)
  t.is((await sock.recvExactly(13)).toString(), 'hello by name')
  sock.close()
  await closeServer(server)
  // The machine's own name goes through the system resolver (/etc/hosts): listen where it points.
  const name = os.hostname()
  const { address } = await lookup(name, { family: 4 })
  const named = createServer((s) => s.end('resolved'))
  named.listen(0, address)
  await once(named, 'listening')
  const viaName = await connect(name, (named.address() as AddressInfo).port)
  t.is((await viaName.recvExactly(8)).toString(), 'resolved')
  viaName.close()
  await closeServer(named)
})

serial('async iteration yields the received chunks until EOF', async (t) => {
  const { sock, remote, done } = await pair()
  remote.write('one,')
  setTimeout(() => remote.end('two'), 20)
  const chunks: string[] = []
  for await (const chunk of sock) chunks.push(chunk.toString())
  t.is(chunks.join(''), 'one,two')
  await done()
})

serial('a second concurrent recv() on one socket rejects with EALREADY', async (t) => {
  const { sock, remote, done } = await pair()
  const first = sock.recv(10)
  const err = await t.throwsAsync(sock.recv(10))
  t.is((err as NodeJS.ErrnoException).code, 'EALREADY')
  remote.write('x')
  t.is((await first).toString(), 'x')
  await done()
})

serial('recvLine() returns whole lines across chunk boundaries, what is left at EOF, then an empty Buffer', async (t) => {
  const { sock, remote, done } = await pair()
  remote.write('hel')
  const first = sock.recvLine()
  await sleep(20)
  remote.write('lo\nwor')
  t.is((await first).toString(), 'hello\n')
  setTimeout(() => remote.write('ld\n'), 20)
  t.is((await sock.recvLine()).toString(), 'world\n')
  remote.end('tail')
  t.is((await sock.recvLine()).toString(), 'tail')
  t.is((await sock.recvLine()).length, 0)
  t.is((await sock.recvLine()).length, 0)
  await done()
})

serial('recvLine({ maxBytes }) returns a longer line in pieces; lines, exact counts and recv share one stream', async (t) => {
  const { sock, remote, done } = await pair()
  remote.write('abcdefgh\nxyz12')
  t.is((await sock.recvLine({ maxBytes: 3 })).toString(), 'abc')
  t.is((await sock.recvLine({ maxBytes: 3 })).toString(), 'def')
  t.is((await sock.recvLine({ maxBytes: 3 })).toString(), 'gh\n')
  t.is((await sock.recvExactly(2)).toString(), 'xy')
  t.is((await sock.recv(10)).toString(), 'z12')
  await t.throwsAsync(sock.recvLine({ maxBytes: 0 }), { instanceOf: RangeError, message: /options\.maxBytes/ })
  await t.throwsAsync(sock.recvLine('x' as unknown as {}), { instanceOf: TypeError, message: /options/ })
  await done()
})

serial('a recvLine() killed while waiting keeps the partial line for the next one', async (t) => {
  const { sock, remote, done } = await pair()
  remote.write('half a ')
  const g = spawn(() => sock.recvLine())
  await sleep(30)
  await g.kill(new GreenletExit(), { timeoutMs: 2000 })
  remote.write('line\n')
  t.is((await sock.recvLine()).toString(), 'half a line\n')
  await done()
})

serial('sendall() to a peer that stops reading waits once the kernel buffers and the 64 KiB queue are full: memory stays bounded', async (t) => {
  const { sock, remote, done } = await pair()
  remote.pause()
  const data = Buffer.alloc(8 << 20)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 11)) & 0xff
  let resolved = false
  const sending = sock.sendall(data).then(() => (resolved = true))
  let mostQueued = 0
  for (let i = 0; i < 20; i++) {
    await sleep(10)
    mostQueued = Math.max(mostQueued, sock.queuedBytes)
  }
  t.false(resolved, 'sendall waits for room')
  t.true(mostQueued > 0, 'the queue was used')
  t.true(mostQueued <= 64 * 1024, `${mostQueued} bytes queued`)
  const received: Buffer[] = []
  let got = 0
  remote.on('data', (d: Buffer) => {
    received.push(d)
    got += d.length
  })
  remote.resume()
  await sending
  for (let i = 0; i < 500 && got < data.length; i++) await sleep(10)
  t.true(Buffer.concat(received).equals(data), 'the peer got every byte, in order')
  t.is(sock.queuedBytes, 0)
  await done()
})

serial('killing a greenlet blocked in sendall() rejects at once; what was taken is sent, the rest is not, and the socket goes on', async (t) => {
  const { sock, remote, done } = await pair()
  remote.pause()
  const data = Buffer.alloc(8 << 20, 0x61)
  let raised: unknown
  const g = spawn(async () => {
    try {
      await sock.sendall(data)
    } catch (err) {
      raised = err
      throw err
    }
  })
  await sleep(100)
  t.false(g.dead, 'blocked in sendall')
  const started = Date.now()
  await g.kill(new GreenletExit('stop sending'), { timeoutMs: 2000 })
  t.true(Date.now() - started < 1000)
  t.true(raised instanceof GreenletExit)
  const received: Buffer[] = []
  remote.on('data', (d: Buffer) => received.push(d))
  remote.resume()
  await sock.sendall('THE END')
  sock.shutdown('write')
  await once(remote, 'end')
  const all = Buffer.concat(received)
  t.true(all.length > 7 && all.length < data.length, `${all.length} bytes arrived`)
  t.is(all.subarray(all.length - 7).toString(), 'THE END')
  t.true(all.subarray(0, all.length - 7).every((b) => b === 0x61), 'a prefix of the killed sendall, then the next one')
  await done()
})

serial('bad arguments reject or throw TypeError or RangeError naming the argument', async (t) => {
  await t.throwsAsync(connect(42 as unknown as string, 80), { instanceOf: TypeError, message: /host/ })
  await t.throwsAsync(connect('127.0.0.1', 70000), { instanceOf: RangeError, message: /port/ })
  await t.throwsAsync(connect('127.0.0.1', 'x' as unknown as number), { instanceOf: TypeError, message: /port/ })
  await t.throwsAsync(connect('127.0.0.1', 80, { timeoutMs: -1 }), { instanceOf: RangeError, message: /timeoutMs/ })
  const { sock, done } = await pair()
  await t.throwsAsync(sock.recv(0), { instanceOf: RangeError, message: /maxBytes/ })
  await t.throwsAsync(sock.recv('10' as unknown as number), { instanceOf: TypeError, message: /maxBytes/ })
  await t.throwsAsync(sock.recvExactly(1.5), { instanceOf: RangeError, message: /\bn\b/ })
  await t.throwsAsync(sock.sendall(5 as unknown as string), { instanceOf: TypeError, message: /data/ })
  t.throws(() => sock.setTimeout(-5), { instanceOf: RangeError, message: /ms/ })
  t.throws(() => sock.shutdown('sideways' as 'read'), { instanceOf: TypeError, message: /how/ })
  // Names inherited from Object.prototype are not modes either.
  for (const inherited of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
    t.throws(() => sock.shutdown(inherited as 'read'), { instanceOf: TypeError, message: /how must be 'read', 'write', 'both'/ })
  }
  t.throws(() => sock.shutdown(3 as 0), { instanceOf: RangeError, message: /how/ })
  await done()
})

serial('close() with more queued than the peer reads leaves no runtime worker spinning, and connects go on', async (t) => {
  const held: NodeSocket[] = []
  const hold = createServer((c) => {
    c.pause()
    held.push(c)
  })
  await new Promise<void>((resolve) => hold.listen(0, '127.0.0.1', resolve))
  const sock = await connect('127.0.0.1', (hold.address() as AddressInfo).port)
  sock.setTimeout(100)
  // More than the kernel buffers hold: the rest stays queued in the socket.
  await sock.sendall(Buffer.alloc(8 << 20)).catch(() => undefined)
  const before = process.cpuUsage()
  sock.close()
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const used = process.cpuUsage(before)
  // A worker spinning on the queue burnt a whole core (about 1 s here).
  t.true(used.user + used.system < 500_000, `CPU used in the second after close(): ${(used.user + used.system) / 1000} ms`)
  const echo = new StreamServer({ port: 0 }, 'echo')
  echo.start()
  for (let i = 0; i < 4; i++) {
    const c = await connect('127.0.0.1', echo.address.port, { timeoutMs: 2000 })
    await c.sendall('ping')
    t.is((await c.recv()).toString(), 'ping')
    c.close()
  }
  for (const c of held) c.destroy()
  hold.close()
  await echo.stop()
})

serial('a closed socket whose peer stops reading keeps the process alive 10 s at most, then its fd is closed; a sendall waiting for room at close() rejects with EBADF', async (t) => {
  const held: NodeSocket[] = []
  const hold = createServer((c) => {
    c.pause()
    held.push(c)
  })
  await new Promise<void>((resolve) => hold.listen(0, '127.0.0.1', resolve))
  const port = (hold.address() as AddressInfo).port
  // A queue full, then one more sendall waiting for room when close() is called.
  const script = `
const G = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})
const fs = require('fs')
const sockets = () => new Set(fs.readdirSync('/proc/self/fd').map((fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd) } catch { return '' } }).filter((l) => l.startsWith('socket:')))
;(async () => {
  const s = await G.connect('127.0.0.1', ${port})
  const sending = s.sendall(Buffer.alloc(8 << 20)).then(() => 'sent', (e) => e.code)
  await G.sleep(300)
  const open = sockets()
  s.close()
  console.log('sendall ' + await sending)
  // Past the 10 s the queue has: its fd is closed, the rest unsent.
  setTimeout(() => {
    const now = sockets()
    console.log('fds released ' + [...open].filter((l) => !now.has(l)).length)
  }, 10_800)
})()`
  const started = Date.now()
  const child = spawnChild(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d))
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
  clearTimeout(killer)
  const took = Date.now() - started
  t.is(signal, null, 'the child had to be killed: it never exited')
  t.is(code, 0)
  t.true(took >= 9000, `exited after ${took} ms, before the queue had its 10 s`)
  t.regex(out, /^sendall EBADF$/m, 'a sendall waiting for room when close() came rejects with EBADF')
  t.regex(out, /^fds released [1-9]/m, `the closed socket still holds its fd after 10 s: ${out}`)
  for (const c of held) c.destroy()
  hold.close()
})

test('new Socket() from user code is a TypeError that says how to get one, in both modes', async (t) => {
  const { Socket: AsyncSocket } = await import('../index')
  const { Socket: SyncSocket } = await import('../sync')
  for (const SocketClass of [AsyncSocket, SyncSocket]) {
    t.throws(() => new (SocketClass as any)(), { instanceOf: TypeError, message: /Socket cannot be constructed directly: use connect\(\)/ })
  }
})

serial('a sendall waiting behind another is a greenlet wait: a kill or the socket timeout ends it, and none of its bytes go out', async (t) => {
  const { sock, remote, done } = await pair()
  remote.pause()
  const first = spawn(() => sock.sendall(Buffer.alloc(8 << 20, 0x41)))
  await sleep(100)
  const killed = spawn(() => sock.sendall('KILLED'))
  await sleep(20)
  await killed.kill(new GreenletExit(), { timeoutMs: 2_000 })
  t.true(killed.dead, 'a kill did not reach a sendall waiting for its turn')
  sock.setTimeout(100)
  const timedOut = spawn(() => sock.sendall('TIMED-OUT'))
  timedOut.linkException(() => {}) // looked at below
  await timedOut.join(2_000)
  t.is((timedOut.exception as NodeJS.ErrnoException | undefined)?.code, 'ETIMEDOUT')
  sock.setTimeout(null)
  const received: Buffer[] = []
  remote.on('data', (d: Buffer) => received.push(d))
  remote.resume()
  await first.get()
  await sock.sendall('LAST')
  sock.close()
  await once(remote, 'end')
  const all = Buffer.concat(received)
  t.is(all.length, (8 << 20) + 4)
  t.is(all.subarray(-4).toString(), 'LAST')
  await done()
})

serial("shutdown('write') while sendalls wait: they are written out first, those waiting their turn too; one called after fails with EPIPE", async (t) => {
  const { sock, remote, done } = await pair()
  remote.pause()
  const first = sock.sendall(Buffer.alloc(8 << 20, 0x42))
  const second = sock.sendall(Buffer.alloc(1 << 20, 0x43)) // waits its turn behind the first
  const third = sock.sendall('LAST')
  await sleep(50)
  sock.shutdown('write')
  await t.throwsAsync(sock.sendall('AFTER'), { code: 'EPIPE' })
  const received: Buffer[] = []
  remote.on('data', (d: Buffer) => received.push(d))
  remote.resume()
  await Promise.all([first, second, third])
  await once(remote, 'end')
  const all = Buffer.concat(received)
  t.is(all.length, (8 << 20) + (1 << 20) + 4)
  t.is(all[(8 << 20) + 5], 0x43)
  t.is(all.subarray(-4).toString(), 'LAST')
  sock.close()
  await done()
})

// As Node's net keeps the process alive for a pending write: a resolved sendall took the bytes.
serial('a process that ends with bytes a resolved sendall queued on an open socket writes them out before it exits', async (t) => {
  let received = 0
  let ended!: () => void
  const end = new Promise<void>((resolve) => (ended = resolve))
  const { server, port } = await peer((sock) => {
    sock.pause()
    setTimeout(() => sock.resume(), 500) // the child has run out of work by then
    sock.on('data', (d: Buffer) => (received += d.length))
    sock.on('end', () => {
      sock.destroy()
      ended()
    })
  })
  const entry = JSON.stringify(path.join(__dirname, '..', 'index.js'))
  // Sends until the kernel's buffers are full and the socket has queued the rest.
  const code = `const { connect } = require(${entry})
connect('127.0.0.1', ${port}).then(async (s) => {
  let sent = 0
  while (s.queuedBytes === 0 && sent < (256 << 20)) { await s.sendall(Buffer.alloc(65536, 120)); sent += 65536 }
  console.log(JSON.stringify({ sent, queued: s.queuedBytes }))
})`
  const child = spawnChild(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d))
  const [status] = (await once(child, 'exit')) as [number]
  await end
  const { sent, queued } = JSON.parse(out)
  t.is(status, 0)
  t.true(queued > 0, `bytes queued when the work ended: ${queued}`)
  t.is(received, sent)
  await closeServer(server)
})

serial('after Timeout.run gave up on a recv, the caller can recv on that socket at once: the killed recv has let go', async (t) => {
  const { sock, remote, done } = await pair()
  await t.throwsAsync(Timeout.run(30, () => sock.recvLine()), { instanceOf: Timeout })
  const next = sock.recvLine()
  remote.write('later\n')
  t.is((await next).toString(), 'later\n')
  await done()
})

// Delivered bytes are views into an arena that all sockets share, as Node's
// Buffer pool is shared: moving it to a worker would hand over other
// connections' bytes and detach the arena under the next delivery.
serial('a received chunk cannot move its shared memory away: a transfer copies it (Node 20) or is refused, and deliveries go on', async (t) => {
  const a = await pair()
  const b = await pair()
  try {
    // Armed before the bytes come: the reactor delivers them into its arena.
    const aliceP = a.sock.recv()
    const bobP = b.sock.recv()
    await sleep(10)
    a.remote.write('alice data')
    b.remote.write('bob data')
    const alice = await aliceP
    const bob = await bobP
    t.is(alice.toString(), 'alice data')
    t.true(alice.buffer.byteLength > alice.length, 'a view into a larger arena')
    try {
      const copy = structuredClone(alice, { transfer: [alice.buffer as ArrayBuffer] })
      t.is(Buffer.from(copy.buffer, copy.byteOffset, copy.length).toString(), 'alice data')
    } catch (err) {
      // DataCloneError (Node 22), TypeError "not detachable" (Node 24+).
      t.true(['DataCloneError', 'TypeError'].includes((err as Error).name), String(err))
    }
    t.is(alice.toString(), 'alice data', 'still readable: not detached')
    t.is(bob.toString(), 'bob data')
    const transfer = (ArrayBuffer.prototype as { transfer?: () => ArrayBuffer }).transfer
    try {
      // Detaches the arena where the runtime lets it (Node 22); refused from Node 24.
      transfer?.call(bob.buffer)
    } catch (err) {
      t.is((err as Error).name, 'TypeError')
    }
    const moreA = a.sock.recv()
    const moreB = b.sock.recv()
    await sleep(10)
    a.remote.write('more for alice')
    b.remote.write('more for bob')
    t.is((await moreA).toString(), 'more for alice')
    t.is((await moreB).toString(), 'more for bob')
  } finally {
    await a.done()
    await b.done()
  }
})
