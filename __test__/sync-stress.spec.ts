/**
 * Sync mode against real-world code, in child processes so that a V8 abort
 * fails one test instead of killing the runner: fetch (whose HTTP parser is
 * WebAssembly) from many greenlets while others are suspended, WebAssembly
 * compiled, tiered up and dropped, sync servers and clients with hundreds of
 * connections, AsyncLocalStorage inside greenlets, a debugger stepping
 * through greenlets. Each program runs several
 * times plainly and several times under V8 stress flags that make the
 * crashes these guard against certain rather than 1 in 10: a scavenge every
 * 20 allocations, wasm code GC at every chance.
 */
import * as path from 'node:path'

import test from 'ava'

import { describeExit, runNode } from './_child'

const FIXTURES = path.join(__dirname, '..', '..', '__test__', 'fixtures', 'sync-stress')
const PLAIN_RUNS = 3
const STRESSED_RUNS = 3
const STRESS = ['--stress-scavenge=20']
const WASM_STRESS = ['--expose-gc', '--wasm-tiering-budget=1000', '--stress-wasm-code-gc']

/** Whether AsyncLocalStorage runs on AsyncContextFrame here (see src/sync/native.ts). */
const asyncContextFrame = process.execArgv.includes('--no-async-context-frame')
  ? false
  : typeof (require('node:async_hooks').AsyncLocalStorage.prototype as Record<string, unknown>)._propagate !== 'function'

/** Runs `fixture args` `PLAIN_RUNS` times with `flags` and `STRESSED_RUNS` times with `stress` too; returns each `ok` line. */
async function runRepeatedly(t: import('ava').ExecutionContext, fixture: string, args: string[], flags: string[], stress: string[]): Promise<string[]> {
  const lines: string[] = []
  const plan = [...Array<string[]>(PLAIN_RUNS).fill(flags), ...Array<string[]>(STRESSED_RUNS).fill([...flags, ...stress])]
  for (const runFlags of plan) {
    const r = await runNode([...runFlags, path.join(FIXTURES, fixture), ...args], { cwd: FIXTURES })
    const ok = r.stdout.split('\n').find((line) => line.startsWith('ok'))
    t.true(r.status === 0 && r.signal === null && ok !== undefined, `${fixture} ${args.join(' ')} with ${runFlags.join(' ')}: ${describeExit(r)}`)
    if (ok !== undefined) lines.push(ok)
  }
  return lines
}

test.serial("the README's sync example, with real fetch, never crashes", async (t) => {
  const lines = await runRepeatedly(t, 'readme.mjs', [], [], STRESS)
  for (const line of lines) t.is(line, 'ok 12 56 34 78 a 200 job0 job1 job2')
})

test.serial('20 greenlets fetch 10 times each while 20 others are suspended', async (t) => {
  const lines = await runRepeatedly(t, 'fetch.mjs', ['20', '10'], [], STRESS)
  for (const line of lines) t.is(line, 'ok fetched 200000 bytes')
})

test.serial('fetch used before greenthread/sync is loaded, then from greenlets', async (t) => {
  const lines = await runRepeatedly(t, 'fetch.mjs', ['3', '5', 'late'], [], [...STRESS, '--stress-wasm-code-gc'])
  for (const line of lines) t.is(line, 'ok fetched 15000 bytes')
})

test.serial('WebAssembly compiled, tiered up and dropped while greenlets are suspended', async (t) => {
  const lines = await runRepeatedly(t, 'wasm.mjs', [], ['--expose-gc'], [...WASM_STRESS, ...STRESS])
  for (const line of lines) t.is(line, 'ok 3200000')
})

test.serial('a sync server with 300 sync clients and 50 async ones', async (t) => {
  const lines = await runRepeatedly(t, 'echo.mjs', ['300'], [], STRESS)
  for (const line of lines) t.is(line, 'ok 1500 sync and 250 async round trips')
})

test.serial('a debugger with breakpoints set and hit in greenlets, stepping through blocking calls', async (t) => {
  const lines = await runRepeatedly(t, 'debugger.mjs', [], [], STRESS)
  for (const line of lines) t.is(line, 'ok 2 12 22 32 paused and stepped')
})

test.serial(
  `AsyncLocalStorage inside greenlets never crashes, and ${asyncContextFrame ? 'is per greenlet (AsyncContextFrame)' : 'is shared (async_hooks)'}`,
  async (t) => {
    const lines = await runRepeatedly(t, 'als.mjs', [], [], STRESS)
    // On async_hooks the store follows async resources, not greenlets.
    const expected = asyncContextFrame ? 'ok isolated' : 'ok shared'
    for (const line of lines) t.is(line, expected)
  },
)

if (Number.parseInt(process.versions.v8, 10) === 12) {
  test.serial('Node 22 with --experimental-async-context-frame refuses to load sync mode, saying why', async (t) => {
    const r = await runNode(['--experimental-async-context-frame', '-e', `require(${JSON.stringify(path.join(__dirname, '..', 'sync.js'))})`])
    t.not(r.status, 0)
    t.is(r.signal, null)
    t.regex(r.stderr, /cannot run with --experimental-async-context-frame on Node v22.*Run without that flag/s)
  })
}
