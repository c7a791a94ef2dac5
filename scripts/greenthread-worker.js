#!/usr/bin/env node
'use strict'
// greenthread-worker: serves a BullMQ queue with a local process (or thread)
// pool, for DistributedExecutor. Prints one line when ready, then jobs
// done/failed per second and how many are running. SIGINT/SIGTERM close it
// after the jobs in hand finish; a second signal stops at once (those jobs
// run again on another worker once their locks lapse).
const path = require('node:path')
const { parseArgs } = require('node:util')

const usage = `usage: greenthread-worker --redis <redis://host:port | host:port> --queue <name> --module <path or package>
  [--concurrency <n>] [--pool process|thread] [--prefetch <n>]
  [--stalled-interval <ms>] [--lock-duration <ms>] [--max-stalled <n>]
  [--connect-timeout <ms>] [--interval <ms>] [--quiet]`

function fail(message) {
  console.error(`greenthread-worker: ${message}`)
  process.exit(2)
}

let values
try {
  ;({ values } = parseArgs({
    options: {
      redis: { type: 'string' },
      queue: { type: 'string' },
      module: { type: 'string' },
      concurrency: { type: 'string' },
      pool: { type: 'string' },
      prefetch: { type: 'string' },
      'stalled-interval': { type: 'string' },
      'lock-duration': { type: 'string' },
      'max-stalled': { type: 'string' },
      'connect-timeout': { type: 'string' },
      interval: { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  }))
} catch (err) {
  fail(`${err.message}\n${usage}`)
}
if (values.help) {
  console.log(usage)
  process.exit(0)
}
for (const required of ['redis', 'queue', 'module']) if (values[required] === undefined) fail(`--${required} is required\n${usage}`)

/** An integer flag, or undefined when absent; exits on anything else. */
function int(flag) {
  const text = values[flag]
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text)) fail(`--${flag} must be a whole number, got ${JSON.stringify(text)}`)
  return Number(text)
}

// `host:port` as a shorthand; anything with a scheme goes to ioredis as a URL.
const connection = /^[a-z][a-z0-9+.-]*:\/\//i.test(values.redis) ? values.redis : `redis://${values.redis}`
const interval = int('interval') ?? 1000
// A report every 0 ms divides by it and floods the terminal.
if (interval < 1) fail(`--interval must be at least 1 ms, got ${interval}`)

// The compiled library, next to this script in a checkout and in the package.
const { runWorker } = require(path.join(__dirname, '..', 'dist', 'src', 'distributed.js'))

async function main() {
  let worker
  try {
    worker = await runWorker({
      connection,
      queue: values.queue,
      module: values.module,
      concurrency: int('concurrency'),
      pool: values.pool,
      prefetch: int('prefetch'),
      stalledIntervalMs: int('stalled-interval'),
      lockDurationMs: int('lock-duration'),
      maxStalledCount: int('max-stalled'),
      connectTimeoutMs: int('connect-timeout'),
    })
  } catch (err) {
    console.error(`greenthread-worker: ${err.message}`)
    process.exit(1)
  }
  console.log(`greenthread-worker ${process.pid} ready: queue ${worker.queue} on ${worker.address}, tasks ${worker.tasks.join(', ') || '(none)'}`)

  let lastDone = 0
  let lastFailed = 0
  const timer = setInterval(() => {
    const done = worker.done
    const failed = worker.failed
    const perSecond = (n) => Math.round((n * 1000) / interval)
    if (!values.quiet) {
      console.log(`done ${perSecond(done - lastDone)}/s failed ${perSecond(failed - lastFailed)}/s running ${worker.running} (total done ${done}, failed ${failed})`)
    }
    lastDone = done
    lastFailed = failed
  }, interval)

  let signals = 0
  const stop = (signal) => {
    signals++
    const force = signals > 1
    console.log(`greenthread-worker ${process.pid}: ${signal}, ${force ? 'stopping now' : `closing after ${worker.running} running jobs (again to stop now)`}`)
    worker.close({ force }).then(
      () => {
        clearInterval(timer)
        console.log(`greenthread-worker ${process.pid}: closed (done ${worker.done}, failed ${worker.failed})`)
        process.exit(0)
      },
      (err) => {
        console.error(`greenthread-worker: closing failed: ${err.message}`)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

main()
