import test from 'ava'

import {
  Greenlet,
  GreenletExit,
  IncompleteReadError,
  type Socket,
  StreamServer,
  Timeout,
  connect,
  getcurrent,
  joinall,
  run,
  sleep,
  spawn,
} from '../sync'

// One hub and one baton per process: these tests must not interleave.
const serial = test.serial

/** The seeds' talk(conn), without await. */
function talk(conn: Socket): void {
  for (;;) {
    const data = conn.recv(1024)
    if (data.length === 0) break
    conn.sendall(data.toString('latin1').toUpperCase())
  }
}

serial('20 sync client greenlets talk to a sync StreamServer: upper-cased echo round trips', async (t) => {
  const result = await run(() => {
    const server = new StreamServer({ port: 0 }, talk)
    server.start()
    const port = server.address.port
    // Modest: each greenlet is an OS thread, and other suites share the 2 cores.
    const clients = Array.from({ length: 20 }, (_, i) =>
      spawn(() => {
        const sock = connect('127.0.0.1', port)
        const replies: string[] = []
        for (let m = 0; m < 5; m++) {
          const msg = `client ${i} message ${m}`
          sock.sendall(msg)
          replies.push(sock.recvExactly(Buffer.byteLength(msg)).toString())
        }
        sock.close()
        return replies.every((r, m) => r === `CLIENT ${i} MESSAGE ${m}`)
      }),
    )
    joinall(clients, { raiseError: true })
    const ok = clients.every((g) => g.value === true)
    const handlersBefore = server.handlers.size
    server.stop({ timeoutMs: 1000 })
    return { ok, closed: server.closed, handlersBefore, handlersAfter: server.handlers.size, port: port > 0 }
  })
  t.true(result.ok)
  t.true(result.closed)
  t.true(result.port)
  t.true(result.handlersBefore <= 20)
  t.is(result.handlersAfter, 0)
})

serial('EOF: recv returns an empty Buffer, recvExactly throws IncompleteReadError with the partial bytes', async (t) => {
  const result = await run(() => {
    const server = new StreamServer({ port: 0 }, (sock: Socket) => {
      let total = 0
      for (const chunk of sock) total += chunk.length
      sock.sendall(`got ${total}`)
      // Returning closes the socket: the client sees EOF.
    })
    server.start()
    const sock = connect('localhost', server.address.port)
    sock.sendall('abcdef')
    sock.shutdown('write')
    let incomplete: unknown
    try {
      sock.recvExactly(100)
    } catch (err) {
      incomplete = err
    }
    const eof = sock.recv(10)
    sock.close()
    server.stop()
    return {
      incomplete: incomplete instanceof IncompleteReadError,
      partial: (incomplete as IncompleteReadError).partial.toString(),
      eof: eof.length,
      remote: sock.remoteAddress?.port === server.address.port,
    }
  })
  t.deepEqual(result, { incomplete: true, partial: 'got 6', eof: 0, remote: true })
})

serial('a kill of a greenlet blocked in recv raises at once; bytes that arrive later go to the next recv', async (t) => {
  const result = await run(() => {
    let peer: Socket | undefined
    const server = new StreamServer({ port: 0 }, (sock: Socket) => {
      peer = sock
      sleep(10_000) // keeps the connection open until stopped
    })
    server.start()
    const sock = connect('127.0.0.1', server.address.port)
    while (peer === undefined) sleep(1)
    const reader = spawn(() => sock.recv(100))
    sleep(20) // reader is blocked in recv
    const started = performance.now()
    reader.kill()
    const killMs = performance.now() - started
    const killed = reader.dead && reader.successful() && reader.exception === undefined
    peer.sendall('late bytes')
    sleep(20)
    // The same socket, at once: no EALREADY, nothing lost.
    const next = sock.recv(100).toString()

    // A Timeout is an interrupt too: the greenlet goes on and reads what comes after.
    let timedOut = false
    try {
      Timeout.run(30, () => sock.recv(100))
    } catch (err) {
      timedOut = err instanceof Timeout
    }
    peer.sendall('after timeout')
    const afterTimeout = sock.recv(100).toString()
    sock.close()
    server.stop({ timeoutMs: 0 })
    return { killed, fast: killMs < 1000, next, timedOut, afterTimeout }
  })
  t.deepEqual(result, { killed: true, fast: true, next: 'late bytes', timedOut: true, afterTimeout: 'after timeout' })
})

serial('a kill from a greenlet resumed earlier in the same hub turn still reaches a recv whose wait ended in that turn', async (t) => {
  const result = await run(() => {
    const server = new StreamServer({ port: 0 }, () => sleep(10_000))
    server.start()
    const sock = connect('127.0.0.1', server.address.port)
    let caught: unknown
    const victim = spawn(() => {
      sock.setTimeout(60)
      try {
        sock.recv(100)
      } catch (err) {
        caught = err
      }
    })
    spawn(() => {
      sleep(20)
      victim.kill(undefined, { block: false })
    })
    sleep(5) // both are waiting now
    // Hold the baton past both deadlines: they expire in one hub turn, in
    // deadline order, so the killer runs first and the victim's recv has
    // already timed out when the kill is sent. (Under heavy load the
    // killer may run before the hold: the kill then ends the recv itself.)
    const until = performance.now() + 150
    while (performance.now() < until) {
      // busy
    }
    victim.join()
    sock.close()
    server.stop({ timeoutMs: 0 })
    return caught instanceof GreenletExit ? 'killed' : String(caught)
  })
  t.is(result, 'killed')
})

serial('killing a greenlet in serveForever stops the server: listener closed, handlers blocked in recv killed after the timeout', async (t) => {
  const result = await run(() => {
    const exits: string[] = []
    const server = new StreamServer({ port: 0 }, (sock: Socket) => {
      try {
        sock.recv(10)
      } catch (err) {
        exits.push(err instanceof GreenletExit ? 'GreenletExit' : String(err))
        throw err
      }
    })
    const forever = spawn(() => server.serveForever({ timeoutMs: 50 }))
    sleep(10)
    const port = server.address.port
    const socks = [connect('127.0.0.1', port), connect('127.0.0.1', port), connect('127.0.0.1', port)]
    while (server.handlers.size < 3) sleep(1)
    const started = performance.now()
    forever.kill()
    const stopMs = performance.now() - started
    const closed = server.closed
    let refused = ''
    try {
      connect('127.0.0.1', port)
    } catch (err) {
      refused = (err as { code: string }).code
    }
    for (const s of socks) s.close()
    return { exits, closed, refused, stopped: stopMs >= 40 && stopMs < 2000, handlers: server.handlers.size }
  })
  t.deepEqual(result, {
    exits: ['GreenletExit', 'GreenletExit', 'GreenletExit'],
    closed: true,
    refused: 'ECONNREFUSED',
    stopped: true,
    handlers: 0,
  })
})

serial('recvLine and recvExactly block for their whole frame; a line longer than maxBytes comes in pieces; EOF gives the rest', async (t) => {
  const result = await run(() => {
    const server = new StreamServer({ port: 0 }, (sock: Socket) => {
      sock.sendall('hel')
      sleep(20)
      sock.sendall('lo\nwor')
      sleep(20)
      sock.sendall('ld\nabcdefgh\nxyz12tail')
    })
    server.start()
    const sock = connect('127.0.0.1', server.address.port)
    const lines = [sock.recvLine(), sock.recvLine(), sock.recvLine({ maxBytes: 3 }), sock.recvLine({ maxBytes: 3 }), sock.recvLine({ maxBytes: 3 })]
    const exact = sock.recvExactly(5).toString()
    const rest = sock.recvLine().toString()
    const eof = sock.recvLine().length
    sock.close()
    server.stop()
    return { lines: lines.map(String), exact, rest, eof }
  })
  t.deepEqual(result, { lines: ['hello\n', 'world\n', 'abc', 'def', 'gh\n'], exact: 'xyz12', rest: 'tail', eof: 0 })
})

serial('a kill of a greenlet blocked in sendall raises at once; the queue stays bounded and the socket goes on', async (t) => {
  const result = await run(() => {
    let peer: Socket | undefined
    const server = new StreamServer({ port: 0 }, (sock: Socket) => {
      peer = sock
      sleep(10_000) // reads nothing until told
    })
    server.start()
    const sock = connect('127.0.0.1', server.address.port)
    while (peer === undefined) sleep(1)
    let raised: unknown
    const writer = spawn(() => {
      try {
        sock.sendall(Buffer.alloc(8 << 20, 0x61))
      } catch (err) {
        raised = err
        throw err
      }
    })
    sleep(100)
    const blocked = !writer.dead
    const queued = sock.queuedBytes
    const started = performance.now()
    writer.kill()
    const killMs = performance.now() - started
    const p = peer
    const reader = spawn(() => {
      const chunks: Buffer[] = []
      for (;;) {
        const chunk = p.recv(1 << 16)
        if (chunk.length === 0) return Buffer.concat(chunks)
        chunks.push(chunk)
      }
    })
    sock.sendall('THE END')
    sock.shutdown('write')
    const all = reader.get()
    sock.close()
    server.stop({ timeoutMs: 0 })
    return {
      blocked,
      bounded: queued > 0 && queued <= 64 * 1024,
      killed: raised instanceof GreenletExit && killMs < 1000,
      prefix: all.length > 7 && all.length < 8 << 20 && all.subarray(0, all.length - 7).every((b) => b === 0x61),
      end: all.subarray(all.length - 7).toString(),
    }
  })
  t.deepEqual(result, { blocked: true, bounded: true, killed: true, prefix: true, end: 'THE END' })
})

serial('blocking socket calls outside sync greenlets throw the sync module’s Error', async (t) => {
  const message = /blocks, and only code running in a sync greenlet can block/
  t.throws(() => connect('127.0.0.1', 1), { message })
  const server = new StreamServer({ port: 0 }, talk)
  server.start()
  t.false(server.closed)
  const sock = await run(() => connect('127.0.0.1', server.address.port))
  t.throws(() => sock.recv(10), { message: /^recv\(\) blocks/ })
  t.throws(() => sock.recvExactly(10), { message: /^recvExactly\(\) blocks/ })
  t.throws(() => sock.sendall('x'), { message: /^sendall\(\) blocks/ })
  t.throws(() => server.stop(), { message: /^stop\(\) blocks/ })
  t.is(getcurrent(), null)
  // Inside a greenlet the same socket works.
  const echoed = await run(() => {
    sock.sendall('works')
    const reply = sock.recv(10).toString()
    sock.close()
    server.stop()
    return reply
  })
  t.is(echoed, 'WORKS')
  t.true(server.closed)
  t.true(Greenlet !== undefined)
})

serial("the async StreamServer started from a sync greenlet fails with an Error that names the sync one, not a bad host", async (t) => {
  const { StreamServer: AsyncStreamServer } = await import('../index')
  const message = await run(() => {
    try {
      new AsyncStreamServer({ host: '127.0.0.1', port: 0 }, 'echo').start()
      return 'started'
    } catch (err) {
      return (err as Error).message
    }
  })
  t.regex(message, /greenthread\/sync's StreamServer/)
})
