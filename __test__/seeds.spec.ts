/**
 * Every seed program's TypeScript twin (examples/seeds/) runs and shows what
 * the seed shows: output order, which tasks overlap in time, results,
 * error/timeout messages.
 */
import { type ChildProcess, execFile, spawn as spawnProcess } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'

import anyTest from 'ava'

// One program at a time: the seeds' orderings rest on sleeps tens of ms apart.
const test = anyTest.serial

const execFileAsync = promisify(execFile)
const sleepMs = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const seeds = path.join(__dirname, '..', 'examples', 'seeds')

async function runSeed(name: string, args: string[] = []): Promise<{ lines: string[]; ms: number }> {
  const start = Date.now()
  const { stdout } = await execFileAsync(process.execPath, [path.join(seeds, `${name}.js`), ...args], { timeout: 60_000 })
  return { lines: stdout.trimEnd().split('\n'), ms: Date.now() - start }
}

test('greenlet ping-pong prints 12 56 34 78', async (t) => {
  t.deepEqual((await runSeed('greenlet-ping-pong')).lines, ['12', '56', '34', '78'])
})

test('foo/bar switch with arguments runs in transfer order', async (t) => {
  t.deepEqual((await runSeed('greenlet-switch-args')).lines, ['yang at foo_1', 'Elijah at bar_1', 'yang at foo_2', 'Elijah at bar_2'])
})

test('gevent foo/bar with sleep: the shorter sleeper finishes first', async (t) => {
  t.deepEqual((await runSeed('gevent-foo-bar')).lines, ['yang at foo_1', 'Elijah at bar_1', 'Elijah at bar_2', 'yang at foo_2'])
})

test('gevent context switch example alternates foo and bar', async (t) => {
  t.deepEqual((await runSeed('gevent-context-switch')).lines, [
    'Running in foo',
    'Explicit context to bar',
    'Explicit context switch to foo again.',
    'Implicit context switch back to bar.',
  ])
})

test('play/eat overlap: about 5 units in total, not 8', async (t) => {
  const { lines } = await runSeed('play-eat')
  t.deepEqual(lines.slice(0, 4), ['刘清正 play 1', '刘清正 eat 1', '刘清正 eat 2', '刘清正 play 2'])
  const units = Number(lines[4].split(' ')[1])
  t.true(units >= 4.9 && units < 7.5, `took ${units} units`)
})

test('three greenlets that never yield run one after another', async (t) => {
  const { lines } = await runSeed('greenlets-sequential')
  t.is(lines.length, 15)
  const owners = lines.map((l) => l.split(':')[0])
  t.deepEqual(owners, [...Array(5).fill(owners[0]), ...Array(5).fill(owners[5]), ...Array(5).fill(owners[10])])
  t.is(new Set(owners).size, 3)
  t.deepEqual(lines.map((l) => l.at(-1)), ['0', '1', '2', '3', '4', '0', '1', '2', '3', '4', '0', '1', '2', '3', '4'])
})

test('three greenlets that sleep 3 units each take about 3 units together, not 9', async (t) => {
  const { lines, ms } = await runSeed('greenlets-interleaved', ['300'])
  t.is(lines.length, 9)
  // Overlap, with room for a slow start: the sum would be 2,700 ms.
  t.true(ms >= 900 && ms < 2200, `took ${ms} ms`)
})

for (const unit of ['20', '0']) {
  test(`three greenlets that sleep(${unit}) after each line alternate`, async (t) => {
    const { lines } = await runSeed('greenlets-interleaved', [unit])
    t.is(lines.length, 9)
    const owners = lines.map((l) => l.split(':')[0])
    t.is(new Set(owners).size, 3)
    t.deepEqual(owners, [...owners.slice(0, 3), ...owners.slice(0, 3), ...owners.slice(0, 3)])
    t.deepEqual(lines.map((l) => l.at(-1)), ['0', '0', '0', '1', '1', '1', '2', '2', '2'])
  })
}

test('concurrent URL fetches finish in response order, not start order', async (t) => {
  const { lines } = await runSeed('url-fetch')
  t.true(lines.slice(0, 3).every((l) => l.startsWith('GET: ')))
  // In the order the pages answer, each followed by a blank line, as the seed prints them.
  t.deepEqual(
    lines.slice(3).map((l) => l.replace(/http:\/\/127\.0\.0\.1:\d+/, '')),
    ['[227] bytes received from /baidu.com/', '', '[14667] bytes received from /kaituorensheng/', '', '[47348] bytes received from /python.org/'],
  )
})

test('yield vs serial prints both timings', async (t) => {
  const { lines } = await runSeed('yield-vs-serial')
  t.regex(lines[0], /^serial: \d+\.\d+ s$/)
  t.regex(lines[1], /^yield: \d+\.\d+ s$/)
})

test('asyncio run prints hello then world', async (t) => {
  t.deepEqual((await runSeed('asyncio-run')).lines, ['hello', 'world'])
})

test('awaiting one by one takes 3 units, create_task 2', async (t) => {
  const { lines } = await runSeed('asyncio-say-after')
  t.deepEqual(lines.map((l) => l.replace(/ after .*/, '')), [
    'started (sequential)', 'hello', 'world', 'finished (sequential)',
    'started (create_task)', 'hello', 'world', 'finished (create_task)',
  ])
  const units = (line: string) => Number(/after (\d+\.\d+) units/.exec(line)![1])
  t.true(units(lines[3]) >= 2.9, lines[3])
  t.true(units(lines[7]) >= 1.9, lines[7])
  // Overlap: the two tasks together take about one unit less than in sequence.
  t.true(units(lines[7]) < units(lines[3]) - 0.5, `${lines[7]} vs ${lines[3]}`)
})

test('gather runs the factorial tasks interleaved, as in the seed output', async (t) => {
  t.deepEqual((await runSeed('asyncio-gather')).lines, [
    'Task A: Compute factorial(2)...',
    'Task B: Compute factorial(2)...',
    'Task C: Compute factorial(2)...',
    'Task A: factorial(2) = 2',
    'Task B: Compute factorial(3)...',
    'Task C: Compute factorial(3)...',
    'Task B: factorial(3) = 6',
    'Task C: Compute factorial(4)...',
    'Task C: factorial(4) = 24',
  ])
})

test('wait_for prints timeout! and does not wait an hour', async (t) => {
  const { lines, ms } = await runSeed('asyncio-wait-for')
  t.deepEqual(lines, ['timeout!'])
  t.true(ms < 10_000)
})

test('current_task and all_tasks report the running and unfinished tasks', async (t) => {
  const { lines } = await runSeed('asyncio-introspection')
  t.is(lines[0], 'outside any task: null')
  t.deepEqual(lines.slice(1, 3).sort(), ['w1: current task is w1', 'w2: current task is w2'])
  t.regex(lines[3], /^all tasks: .*w1, w2$/)
  t.notRegex(lines[4], /w1|w2/)
})

test('yield-based baozi producer/consumer: each baozi goes to c1 then c2, then is made', async (t) => {
  const { lines } = await runSeed('yield-producer-consumer')
  const expected = ['--- 开始吃包子---', '--- 开始吃包子---']
  for (let n = 1; n <= 5; n++) expected.push(`[c1] 正在吃包子 ${n}`, `[c2] 正在吃包子 ${n}`, `\x1b[32;1m[producer]\x1b[0m 正在做包子 ${n}`)
  t.deepEqual(lines, expected)
})

test('send() with a return value: the consumer answers 200 OK to each of five items', async (t) => {
  const { lines } = await runSeed('yield-send-return')
  const expected: string[] = []
  for (let n = 1; n <= 5; n++) {
    expected.push(`[PRODUCER] Producing ${n}...`, `[CONSUMER] Consuming ${n}....`, '[PRODUCER] Consumer return: 200 OK', '')
  }
  t.deepEqual(lines, expected.slice(0, -1))
})

for (const seed of ['queue-producer-consumer', 'queue-producer-consumer-sync']) {
  test(`queue-based producer/consumer (${seed}): greenlets c1 and c2 take turns, first come first served`, async (t) => {
    const { lines } = await runSeed(seed)
    const eaten = lines.filter((l) => l.includes('正在吃包子')).map((l) => l.replace(/\x1b\[[0-9;]*m/g, ''))
    t.deepEqual(eaten, ['[c1] 正在吃包子 1', '[c2] 正在吃包子 2', '[c1] 正在吃包子 3', '[c2] 正在吃包子 4', '[c1] 正在吃包子 5'])
    const made = lines.findIndex((l) => l.includes('正在做包子 1'))
    t.true(made >= 0 && made < lines.findIndex((l) => l.includes('[c1] 正在吃包子 1')))
  })
}

test('pool program: 20 tasks per pool run on the pool workers, every done callback prints n*n, shutdown waits', async (t) => {
  const { lines } = await runSeed('pool')
  const sections = lines.join('\n').split(/^--- .* ---$/m).slice(1)
  t.is(sections.length, 2, 'a thread pool run and a process pool run')
  for (const [i, section] of sections.entries()) {
    const rows = section.trim().split('\n')
    const tasks = rows.filter((l) => /^\d+ pid=/.test(l))
    const results = rows.filter((l) => l.startsWith('拿到了异步提交任务的返回结果: ')).map((l) => Number(l.split(': ')[1]))
    t.deepEqual(tasks.map((l) => Number(l.split(' ')[0])).sort((a, b) => a - b), [...Array(20).keys()])
    t.deepEqual(results.sort((a, b) => a - b), [...Array(20).keys()].map((n) => n * n))
    const workers = new Set(tasks.map((l) => (i === 0 ? l.split(' ')[2] : l.split(' ')[1])))
    // Pooled: a fixed set of workers is reused, as the seed says.
    t.true(workers.size > 1 && workers.size <= (i === 0 ? 5 : 32), `${workers.size} workers`)
  }
})

/** Starts the seed echo server on a free port; resolves once it listens. */
function startEchoServer(...args: string[]): Promise<{ server: ChildProcess; port: number; output: string[] }> {
  const variants: Record<string, string> = { '--plain': 'echo-server-plain.js', '--sync': 'echo-server-sync.js' }
  const program = variants[args[0]] ?? 'echo-server.js'
  const rest = args[0] in variants ? args.slice(1) : args
  const server = spawnProcess(process.execPath, [path.join(seeds, program), '0', ...rest], { stdio: ['ignore', 'pipe', 'inherit'] })
  const output: string[] = []
  return new Promise((resolve, reject) => {
    let buffered = ''
    server.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop()!
      for (const line of lines) {
        output.push(line)
        const m = /^serving on 127\.0\.0\.1:(\d+)$/.exec(line)
        if (m) resolve({ server, port: Number(m[1]), output })
      }
    })
    server.once('exit', (code) => reject(new Error(`echo server exited with ${code}`)))
  })
}

function stopped(server: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    server.once('exit', () => resolve())
    server.kill('SIGTERM')
  })
}

for (const mode of ['JS handler', 'native upper handler']) {
  test(`echo server (${mode}) serves the 500 seed clients from one thread, every reply upper-cased`, async (t) => {
    const { server, port, output } = await startEchoServer(...(mode === 'JS handler' ? ['--quiet'] : ['--native']))
    try {
      const { lines } = await runSeed('echo-clients', [String(port), '--clients', '500', '--messages', '5', '--quiet'])
      t.regex(lines.at(-1)!, /^500 clients, 2500 replies \(0 wrong\) in .* 0 clients failed$/)
    } finally {
      await stopped(server)
    }
    t.is(output.at(-1), 'stopped')
  })
}

test('echo server prints what each client says, as the seed does', async (t) => {
  const { server, port, output } = await startEchoServer()
  try {
    const { lines } = await runSeed('echo-clients', [String(port), '--clients', '3', '--messages', '2'])
    t.deepEqual(lines.slice(0, -1).sort(), ['Thread-1', 'Thread-2', 'Thread-3'].flatMap((n) => [0, 1].map((i) => `b'${n.toUpperCase()} SAY HELLO ${i}'`)).sort())
  } finally {
    await stopped(server)
  }
  t.deepEqual(
    output.filter((l) => l.startsWith("b'")).sort(),
    ['Thread-1', 'Thread-2', 'Thread-3'].flatMap((n) => [0, 1].map((i) => `b'${n} say hello ${i}'`)).sort(),
  )
})

test('interactive client sends each non-empty line and prints the reply', async (t) => {
  const { server, port } = await startEchoServer('--quiet')
  try {
    const client = execFile(process.execPath, [path.join(seeds, 'echo-interactive-client.js'), String(port)], { timeout: 20_000 })
    let stdout = ''
    client.stdout!.on('data', (c: Buffer) => (stdout += c.toString()))
    client.stdin!.end('hello\n\n  world  \n')
    await new Promise((resolve) => client.once('exit', resolve))
    t.deepEqual(stdout.trim().split('\n'), ['HELLO', 'WORLD'])
  } finally {
    await stopped(server)
  }
})

test('sync mode: greenlet ping-pong without await prints 12 56 34 78', async (t) => {
  t.deepEqual((await runSeed('greenlet-ping-pong-sync')).lines, ['12', '56', '34', '78'])
})

test('sync mode: play/eat with monkey-patched blocking sleep overlap, ~5 units not 8', async (t) => {
  const { lines } = await runSeed('play-eat-sync')
  t.deepEqual(lines.slice(0, 4), ['刘清正 play 1', '刘清正 eat 1', '刘清正 eat 2', '刘清正 play 2'])
  const units = Number(lines[4].split(' ')[1])
  t.true(units >= 4.9 && units < 7.5, `took ${units} units`)
})

test('gevent.socket echo server (seed 003) echoes unchanged and prints what it receives', async (t) => {
  const { server, port, output } = await startEchoServer('--plain')
  try {
    const client = execFile(process.execPath, [path.join(seeds, 'echo-client-plain.js'), String(port)], { timeout: 20_000 })
    let stdout = ''
    client.stdout!.on('data', (c: Buffer) => (stdout += c.toString()))
    client.stdin!.end('hello\nworld\n')
    await new Promise((resolve) => client.once('exit', resolve))
    t.deepEqual(stdout.trim().split('\n'), ["Received b'hello'", "Received b'world'"])
    await sleepMs(200)
  } finally {
    await stopped(server)
  }
  // As the seed: the empty read is echoed, writing shut down, the next empty read's echo fails (EPIPE).
  t.deepEqual(output.filter((l) => l.startsWith('recv:')), ["recv: b'hello'", "recv: b'world'", "recv: b''", "recv: b''"])
  t.true(output.some((l) => /EPIPE/.test(l)), output.join('\n'))
})

test('echo server in sync mode (the talk loop without await) serves concurrent seed clients', async (t) => {
  const { server, port, output } = await startEchoServer('--sync', '--quiet')
  try {
    const { lines } = await runSeed('echo-clients', [String(port), '--clients', '50', '--messages', '5', '--quiet'])
    t.regex(lines.at(-1)!, /^50 clients, 250 replies \(0 wrong\) in .* 0 clients failed$/)
  } finally {
    await stopped(server)
  }
  t.is(output.at(-1), 'stopped')
})
