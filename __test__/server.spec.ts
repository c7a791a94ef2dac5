import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { connect as nodeConnect } from 'node:net'
import path from 'node:path'

import test from 'ava'

import { GreenletExit, type Greenlet, getcurrent, joinall, sleep, spawn } from '../index'
import { type AddressInfo, type Socket, StreamServer, type StreamServer as ServerType, connect } from '../index'

// The hub is process-wide: keep tests from sharing turns.
const serial = test.serial

/** The seeds' talk(conn): recv up to 1024 bytes, send them back upper-cased, until EOF. */
async function talk(conn: Socket): Promise<void> {
  for (;;) {
    const data = await conn.recv(1024)
    if (data.length === 0) break
    await conn.sendall(data.toString('latin1').toUpperCase())
  }
}

/** The seeds' client: sends '%s say hello %s' and checks each reply, `rounds` times. */
async function client(port: number, name: string, rounds: number): Promise<string[]> {
  const sock = await connect('127.0.0.1', port)
  sock.setTimeout(10_000)
  const replies: string[] = []
  try {
    for (let n = 0; n < rounds; n++) {
      const msg = `${name} say hello ${n}`
      await sock.sendall(msg)
      replies.push((await sock.recvExactly(msg.length)).toString())
    }
  } finally {
    sock.close()
  }
  return replies
}

async function manyClients(server: ServerType, clients: number, rounds: number): Promise<void> {
  const gs = Array.from({ length: clients }, (_, i) => spawn(client, server.address.port, `Thread-${i}`, rounds))
  const done = await joinall(gs, { raiseError: true, timeoutMs: 60_000 })
  if (done.length !== clients) throw new Error(`${clients - done.length} clients did not finish`)
  for (const [i, g] of gs.entries()) {
    const replies = await g.get()
    for (let n = 0; n < rounds; n++) {
      if (replies[n] !== `THREAD-${i} SAY HELLO ${n}`) throw new Error(`client ${i} got ${JSON.stringify(replies[n])}`)
    }
  }
}

serial('200 concurrent clients each get every message back upper-cased from a JS handler', async (t) => {
  const server = new StreamServer({ host: '127.0.0.1', port: 0 }, talk)
  server.start()
  await manyClients(server, 200, 10)
  t.pass()
  await server.stop()
})

serial("the native 'upper' handler serves 200 concurrent clients with the seeds' behaviour", async (t) => {
  const server = new StreamServer({ port: 0 }, 'upper')
  server.start()
  await manyClients(server, 200, 10)
  t.pass()
  await server.stop()
  t.is(server.liveConnections, 0)
})

serial("the native 'echo' handler sends bytes back unchanged and closes the connection at EOF", async (t) => {
  const server = new StreamServer({ port: 0 }, 'echo')
  server.start()
  const sock = await connect('127.0.0.1', server.address.port)
  await sock.sendall('Mixed Case 123')
  t.is((await sock.recvExactly(14)).toString(), 'Mixed Case 123')
  sock.shutdown('write')
  t.is((await sock.recv(10)).length, 0)
  sock.close()
  await server.stop()
})

serial('binding port 0 starts listening on a free port that address reports', async (t) => {
  const server = new StreamServer({ port: 0 }, talk)
  t.true(server.closed)
  t.is(server.address.port, 0)
  server.start()
  t.false(server.closed)
  t.true(server.started)
  t.is(server.address.address, '127.0.0.1')
  t.true(server.address.port > 0)
  const replies = await client(server.address.port, 'Thread-1', 1)
  t.deepEqual(replies, ['THREAD-1 SAY HELLO 0'])
  await server.stop()
  t.true(server.closed)
})

serial('starting a server on a busy port throws an Error whose code is EADDRINUSE', async (t) => {
  const first = new StreamServer({ port: 0 }, 'echo')
  first.start()
  const second = new StreamServer({ port: first.address.port }, 'echo')
  const err = t.throws(() => second.start())
  t.is((err as NodeJS.ErrnoException).code, 'EADDRINUSE')
  t.true(second.closed)
  await first.stop()
  // Once stopped, the port is free again.
  second.start()
  t.is(second.address.port, first.address.port)
  await second.stop()
})

serial('the handler runs in its own greenlet with the socket and the peer address, and the socket is closed after it returns', async (t) => {
  let seen: { address: AddressInfo; greenlet: Greenlet | null; sock: Socket } | undefined
  const { getcurrent } = await import('../index')
  const server = new StreamServer({ port: 0 }, (sock: Socket, address: AddressInfo) => {
    seen = { address, greenlet: getcurrent(), sock }
  })
  server.start()
  const sock = await connect('127.0.0.1', server.address.port)
  t.is((await sock.recv(10)).length, 0, 'the server closed its end when the handler returned')
  t.deepEqual(seen?.address, sock.localAddress)
  t.truthy(seen?.greenlet)
  t.true(seen?.sock.closed)
  sock.close()
  await server.stop()
})

serial('a handler whose peer resets mid-message fails alone with ECONNRESET; the server keeps serving', async (t) => {
  const failures: string[] = []
  const server = new StreamServer({ port: 0 }, async (sock: Socket) => {
    try {
      for (;;) {
        const data = await sock.recv(1024)
        if (data.length === 0) return
      }
    } catch (err) {
      failures.push((err as NodeJS.ErrnoException).code ?? String(err))
      throw err
    }
  })
  server.start()
  const rude = nodeConnect(server.address.port, '127.0.0.1')
  await once(rude, 'connect')
  rude.write('half a mess')
  await sleep(50)
  const [handler] = server.handlers
  const failed = new Promise<unknown>((resolve) => handler.linkException((g) => resolve(g.exception)))
  rude.resetAndDestroy()
  t.is(((await failed) as NodeJS.ErrnoException).code, 'ECONNRESET')
  t.deepEqual(failures, ['ECONNRESET'])
  t.true(server.started)
  const polite = new StreamServer({ port: 0 }, talk)
  polite.start()
  t.deepEqual(await client(polite.address.port, 'Thread-2', 2), ['THREAD-2 SAY HELLO 0', 'THREAD-2 SAY HELLO 1'])
  await polite.stop()
  // The first server still accepts too.
  const again = await connect('127.0.0.1', server.address.port)
  again.close()
  await server.stop()
})

serial('stop() closes the listener, lets handlers finish within timeoutMs, then kills the rest', async (t) => {
  const ended: string[] = []
  const server = new StreamServer({ port: 0 }, async (sock: Socket) => {
    const first = (await sock.recv(100)).toString()
    try {
      if (first === 'quick') {
        await sleep(30)
        ended.push('quick finished')
      } else {
        await sock.recv(100) // never answered
      }
    } catch (err) {
      ended.push(err instanceof GreenletExit ? 'slow killed' : `slow failed: ${err}`)
    }
  })
  server.start()
  const port = server.address.port
  const quick = await connect('127.0.0.1', port)
  const slow = await connect('127.0.0.1', port)
  await quick.sendall('quick')
  await slow.sendall('slow')
  for (let i = 0; i < 100 && server.handlers.size < 2; i++) await sleep(5)
  t.is(server.handlers.size, 2)
  const started = Date.now()
  await server.stop({ timeoutMs: 300 })
  const took = Date.now() - started
  t.deepEqual([...ended].sort(), ['quick finished', 'slow killed'])
  t.true(took >= 250, `stop took ${took} ms`)
  t.true(took < 5000, `stop took ${took} ms`)
  t.is(server.handlers.size, 0)
  t.is(((await t.throwsAsync(connect('127.0.0.1', port))) as NodeJS.ErrnoException).code, 'ECONNREFUSED')
  quick.close()
  slow.close()
})

serial('stop({ timeoutMs }) returns while a handler sits in a foreign await, having aborted its signal', async (t) => {
  let aborted = false
  let handlerStarted = false
  const server = new StreamServer({ port: 0 }, async () => {
    handlerStarted = true
    const me = getcurrent()!
    me.signal.addEventListener('abort', () => (aborted = true))
    // Not a library wait: the kill cannot interrupt it.
    await new Promise((resolve) => setTimeout(resolve, 20_000).unref())
  })
  server.start()
  const client = await connect('127.0.0.1', server.address.port)
  for (let i = 0; i < 100 && !handlerStarted; i++) await sleep(5)
  const stopped = server.stop({ timeoutMs: 100 }).then(() => 'stopped')
  const outcome = await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 5000, 'still pending'))])
  t.is(outcome, 'stopped')
  t.true(aborted)
  client.close()
})

serial('stop() ends native connections still open after timeoutMs', async (t) => {
  const server = new StreamServer({ port: 0 }, 'upper')
  server.start()
  const sock = await connect('127.0.0.1', server.address.port)
  await sock.sendall('hi')
  t.is((await sock.recvExactly(2)).toString(), 'HI')
  t.is(server.liveConnections, 1)
  await server.stop({ timeoutMs: 50 })
  t.is(server.liveConnections, 0)
  sock.setTimeout(2000)
  t.is((await sock.recv(10)).length, 0, 'the server closed the connection')
  sock.close()
})

serial('serveForever() resolves once stop() is called, and killing its greenlet stops the server', async (t) => {
  const server = new StreamServer({ port: 0 }, 'echo')
  const forever = spawn(() => server.serveForever())
  await sleep(20)
  t.true(server.started)
  await server.stop()
  t.true(await forever.join(2000))
  t.true(forever.successful())

  const again = new StreamServer({ port: 0 }, 'echo')
  const g = spawn(() => again.serveForever())
  await sleep(20)
  t.true(again.started)
  await g.kill(new GreenletExit(), { timeoutMs: 2000 })
  t.true(again.closed)
})

serial('bad constructor arguments throw TypeError or RangeError naming the argument', (t) => {
  t.throws(() => new StreamServer(null as unknown as { port: number }, talk), { instanceOf: TypeError, message: /listener/ })
  t.throws(() => new StreamServer({ port: -1 }, talk), { instanceOf: RangeError, message: /listener\.port/ })
  t.throws(() => new StreamServer({ port: '80' as unknown as number }, talk), { instanceOf: TypeError, message: /listener\.port/ })
  t.throws(() => new StreamServer({ port: 0, backlog: 0 }, talk), { instanceOf: RangeError, message: /listener\.backlog/ })
  t.throws(() => new StreamServer({ port: 0, host: 7 as unknown as string }, talk), { instanceOf: TypeError, message: /listener\.host/ })
  t.throws(() => new StreamServer({ port: 0 }, 'shout' as 'echo'), { instanceOf: RangeError, message: /handler/ })
  t.throws(() => new StreamServer({ port: 0 }, 42 as unknown as 'echo'), { instanceOf: TypeError, message: /handler/ })
  const named = new StreamServer({ port: 0, host: 'example.com' }, talk)
  t.throws(() => named.start(), { instanceOf: TypeError, message: /listener\.host/ })
})

/** Runs `body` in a fresh Node process (with `StreamServer` and `connect` in scope) for at most 3 s. */
function runScript(body: string): { status: number | null; stdout: string; timedOut: boolean } {
  const src = path.join(__dirname, '..', 'src')
  const script = `
    const { StreamServer } = require(${JSON.stringify(path.join(src, 'server.js'))})
    const { connect } = require(${JSON.stringify(path.join(src, 'socket.js'))})
    ;(async () => { ${body} })()`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 3000 })
  return { status: r.status, stdout: r.stdout, timedOut: r.signal !== null }
}

serial('a listening server keeps the process alive; a stopped one and an idle closed socket do not', (t) => {
  const stopped = runScript(`
    const server = new StreamServer({ port: 0 }, 'upper')
    server.start()
    const sock = await connect('127.0.0.1', server.address.port)
    await sock.sendall('hi')
    await sock.recvExactly(2)
    sock.close()
    await server.stop()
    console.log('stopped')`)
  t.false(stopped.timedOut, 'a process whose server was stopped exits by itself')
  t.is(stopped.status, 0)
  t.regex(stopped.stdout, /stopped/)
  const listening = runScript(`
    new StreamServer({ port: 0 }, 'upper').start()
    console.log('listening')`)
  t.true(listening.timedOut, 'a process with a listening server stays alive')
  t.regex(listening.stdout, /listening/)
})

serial('5,000 concurrent connections are served by one JS-handler server, each with every reply', (t) => {
  const clients = 5000
  // Both ends of every connection live in the child: about 10,000 descriptors.
  const hard = spawnSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim()
  if (hard !== 'unlimited' && Number(hard) < 2 * clients + 200) {
    t.log(`skipped: the descriptor limit is ${hard}`)
    t.pass()
    return
  }
  const dist = path.join(__dirname, '..')
  const script = `
    const { StreamServer, connect, spawn, joinall, sleep } = require(${JSON.stringify(path.join(dist, 'index.js'))})
    ;(async () => {
      const N = ${clients}
      const server = new StreamServer({ port: 0, backlog: 4096 }, async (sock) => {
        for (;;) {
          const data = await sock.recv(1024)
          if (data.length === 0) break
          await sock.sendall(data.toString('latin1').toUpperCase())
        }
      })
      server.start()
      const port = server.address.port
      const socks = []
      for (let i = 0; i < N; i += 500) {
        const wave = Array.from({ length: Math.min(500, N - i) }, () => connect('127.0.0.1', port, { timeoutMs: 20000 }))
        socks.push(...(await Promise.all(wave)))
      }
      for (let i = 0; i < 2000 && server.handlers.size < N; i++) await sleep(10)
      const concurrent = server.handlers.size
      const gs = socks.map((s, i) => spawn(async () => {
        for (let r = 0; r < 3; r++) {
          const m = 'client ' + i + ' round ' + r
          await s.sendall(m)
          const reply = (await s.recvExactly(m.length)).toString()
          if (reply !== m.toUpperCase()) throw new Error('client ' + i + ' got ' + reply)
        }
        s.close()
      }))
      await joinall(gs, { raiseError: true, timeoutMs: 60000 })
      const ok = gs.filter((g) => g.successful()).length
      await server.stop()
      console.log(JSON.stringify({ concurrent, ok }))
    })()`
  const r = spawnSync('bash', ['-c', `ulimit -n ${2 * clients + 1000} && exec "$0" -e "$1"`, process.execPath, script], {
    encoding: 'utf8',
    timeout: 110_000,
  })
  t.is(r.status, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { concurrent: clients, ok: clients })
})

serial('killing the greenlet in serveForever() stops the server: its handlers are killed after timeoutMs and clients see the end', async (t) => {
  const events: string[] = []
  const server = new StreamServer({ port: 0 }, async (sock: Socket) => {
    try {
      await sock.recv()
      events.push('handler got data')
    } catch (err) {
      events.push(`handler: ${(err as Error).name}`)
    }
  })
  const forever = spawn(() => server.serveForever({ timeoutMs: 100 }))
  await sleep(20)
  const client = nodeConnect((server.address as AddressInfo).port, '127.0.0.1')
  const ended = new Promise<string>((resolve) => client.on('end', () => resolve('end')).on('close', () => resolve('closed')))
  await once(client, 'connect')
  await sleep(50)
  await forever.kill()
  t.true(server.closed)
  t.is(server.handlers.size, 0)
  t.deepEqual(events, ['handler: GreenletExit'])
  t.not(await Promise.race([ended, sleep(2000).then(() => 'nothing within 2 s')]), 'nothing within 2 s')
  client.destroy()
})


test('serveForever() raced and left behind: a kill stops the server, kills its handlers, and is raised at the greenlet’s next wait too', async (t) => {
  const events: string[] = []
  let handler: Greenlet | undefined
  const server = new StreamServer({ host: '127.0.0.1', port: 0 }, async () => {
    handler = getcurrent()!
    try {
      await sleep(5000)
      events.push('handler finished')
    } catch (err) {
      events.push(`handler ${(err as Error).name}`)
    }
  })
  const g = spawn(async () => {
    try {
      await Promise.race([server.serveForever({ timeoutMs: 50 }), sleep(10)])
      // A foreign await: the kill comes here.
      await new Promise((resolve) => setTimeout(resolve, 100))
      await sleep(5000)
      events.push('slept on')
    } catch (err) {
      events.push(`g ${(err as Error).name}`)
    }
  })
  await sleep(20)
  const client = await connect('127.0.0.1', server.address!.port)
  try {
    while (handler === undefined) await sleep(5)
    await sleep(20)
    await g.kill(new GreenletExit(), { timeoutMs: 3000 })
    await handler.join(3000)
    t.true(server.closed)
    t.deepEqual(events.sort(), ['g GreenletExit', 'handler GreenletExit'])
  } finally {
    client.close()
  }
})
