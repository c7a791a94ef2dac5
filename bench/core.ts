/**
 * Core benchmarks (W1-W3), one case per process so that peak RSS and
 * process-wide costs (AsyncLocalStorage hooks) belong to that case alone.
 *
 *   node dist/bench/core.js <case>    prints one JSON line
 */
import { AsyncLocalStorage } from 'node:async_hooks'

import { Greenlet, joinall, sleep, spawn } from '../index'

type Result = { ops: number; ms: number }

const W1_TASKS = 100_000
const W2_TRANSFERS = 1_000_000
const W3_TASKS = 100_000
const W3_SLEEP_MS = 10

const setImmediateYield = () => new Promise<void>((resolve) => setImmediate(resolve))
const timeoutSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

async function timed(ops: number, body: () => Promise<void>): Promise<Result> {
  const start = performance.now()
  await body()
  return { ops, ms: performance.now() - start }
}

const cases: Record<string, () => Promise<Result>> = {
  // W1: spawn + join of 100,000 greenlets that each yield once.
  'w1-greenthread': () =>
    timed(W1_TASKS, async () => {
      const gs = new Array<Greenlet>(W1_TASKS)
      for (let i = 0; i < W1_TASKS; i++) gs[i] = spawn(() => sleep(0))
      await joinall(gs)
    }),
  'w1-bare-promises': () =>
    timed(W1_TASKS, async () => {
      const ps = new Array<Promise<void>>(W1_TASKS)
      for (let i = 0; i < W1_TASKS; i++) ps[i] = (async () => setImmediateYield())()
      await Promise.all(ps)
    }),

  // W2: 1,000,000 transfers of control between two greenlets.
  'w2-greenthread-switch': () =>
    timed(W2_TRANSFERS, async () => {
      const rounds = W2_TRANSFERS / 2
      const ping: Greenlet = new Greenlet(async () => {
        for (let i = 0; i < rounds; i++) await pong.switch(i)
      })
      const pong: Greenlet = new Greenlet(async () => {
        for (;;) await ping.switch()
      })
      await ping.switch()
    }),
  'w2-bare-promise-pingpong': () =>
    timed(W2_TRANSFERS, async () => {
      const rounds = W2_TRANSFERS / 2
      let wakePing: (v: unknown) => void = () => undefined
      let wakePong: (v: unknown) => void = () => undefined
      const pong = (async () => {
        for (let i = 0; i < rounds; i++) {
          await new Promise((resolve) => (wakePong = resolve))
          wakePing(i)
        }
      })()
      for (let i = 0; i < rounds; i++) {
        const back = new Promise((resolve) => (wakePing = resolve))
        wakePong(i)
        await back
      }
      await pong
    }),

  // W3: 100,000 greenlets each sleeping 10 ms.
  'w3-greenthread-sleep': () =>
    timed(W3_TASKS, async () => {
      const gs = new Array<Greenlet>(W3_TASKS)
      for (let i = 0; i < W3_TASKS; i++) gs[i] = spawn(() => sleep(W3_SLEEP_MS))
      await joinall(gs)
    }),
  'w3-settimeout-promises': () =>
    timed(W3_TASKS, async () => {
      const ps = new Array<Promise<void>>(W3_TASKS)
      for (let i = 0; i < W3_TASKS; i++) ps[i] = (async () => timeoutSleep(W3_SLEEP_MS))()
      await Promise.all(ps)
    }),
}

// The same bare code in a process where AsyncLocalStorage is active, as it is
// with greenthread (getcurrent() must be right after every await) and in any
// app using OpenTelemetry and the like: on Node 20 every promise then pays
// the async_hooks promise hooks.
for (const name of ['w1-bare-promises', 'w2-bare-promise-pingpong', 'w3-settimeout-promises']) {
  const bare = cases[name]
  cases[`${name}+als`] = () => {
    new AsyncLocalStorage<number>().enterWith(0)
    return bare()
  }
}

export const coreCases = Object.keys(cases)

if (require.main === module) {
  const name = process.argv[2]
  const run = cases[name]
  if (!run) {
    console.error(`unknown case ${name}; one of: ${coreCases.join(', ')}`)
    process.exit(2)
  }
  run().then((r) => {
    const maxRssKiB = process.resourceUsage().maxRSS
    console.log(JSON.stringify({ case: name, ...r, opsPerSec: (r.ops / r.ms) * 1000, maxRssKiB }))
  })
}
