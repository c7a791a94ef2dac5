/**
 * `npm run demo`: a short guided tour of greenthread that finishes by itself
 * in well under a minute. Most stops run a seed program's TypeScript twin
 * (examples/seeds/) as it is; the rest run here, where a live display helps.
 */
import { execFileSync } from 'node:child_process'
import path from 'node:path'

import { joinall, sleep, spawn } from '../index'

function section(title: string): void {
  console.log(`\n\x1b[1m=== ${title}\x1b[0m`)
}

/** Runs one seed twin in its own process and shows its output. */
function seed(name: string, ...args: string[]): void {
  const file = path.join(__dirname, 'seeds', `${name}.js`)
  process.stdout.write(execFileSync(process.execPath, [file, ...args], { encoding: 'utf8', timeout: 60_000 }))
}

async function manyGreenlets(): Promise<void> {
  section('100,000 greenlets, each sleeping 10 ms, scheduled by the Rust hub')
  const start = Date.now()
  const gs = Array.from({ length: 100_000 }, () => spawn(() => sleep(10)))
  await joinall(gs)
  console.log(`all 100,000 done in ${Date.now() - start} ms (their sleeps overlap)`)
}

async function main(): Promise<void> {
  section('greenlet switching: explicit transfer of control (seed 003, prints 12 56 34 78)')
  seed('greenlet-ping-pong')
  section('gevent: play sleeps 5 units, eat 3; they overlap, ~5 units in all (seed 001)')
  seed('play-eat')
  section('three greenlets interleave only when they sleep (seed 004)')
  seed('greenlets-interleaved', '0')
  await manyGreenlets()
  section('asyncio-style gather and wait_for (seed 002)')
  seed('asyncio-gather')
  seed('asyncio-wait-for')
  section('executor pool with done callbacks (seed 001: 20 tasks on a 5-thread pool)')
  seed('pool', '--threads')
  console.log('\ndemo finished')
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
