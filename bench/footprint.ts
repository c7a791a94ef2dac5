/**
 * What one greenlet costs before any work: bytes of heap per suspended
 * greenlet next to a suspended async function, and the time to load the
 * module and to run the first spawn + join in a fresh process.
 *
 *   node dist/bench/footprint.js            prints a markdown table
 */
import { execFileSync } from 'node:child_process'
import path from 'node:path'

const N = 20_000
const root = path.join(__dirname, '..', '..')

/** Heap bytes per task of `kind`, all suspended, measured after full GCs in a fresh process. */
const heapProbe = (kind: string) => `
const v8 = require('v8')
const gt = require(${JSON.stringify(root)} + '/dist/index.js')
;(async () => {
  await gt.spawn(() => gt.sleep(0)).join()
  gc(); gc()
  const before = v8.getHeapStatistics().used_heap_size
  const keep = []
  for (let i = 0; i < ${N}; i++) {
    keep.push(${kind === 'greenlet' ? 'gt.spawn(() => gt.sleep(60000))' : '(async () => { await new Promise((r) => setTimeout(r, 60000)) })()'})
  }
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r))
  gc(); gc()
  console.log(Math.round((v8.getHeapStatistics().used_heap_size - before) / ${N}))
  process.exit(0)
})()`

const startupProbe = `
const t0 = performance.now()
const gt = require(${JSON.stringify(root)} + '/dist/index.js')
const t1 = performance.now()
gt.spawn(() => 1).join().then(() => {
  const t2 = performance.now()
  console.log(JSON.stringify({ require: t1 - t0, firstSpawnJoin: t2 - t1 }))
})`

function node(args: string[]): string {
  return execFileSync(process.execPath, args, { encoding: 'utf8', timeout: 60_000 }).trim()
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

const rounds = 5
const bytes = (kind: string) => median(Array.from({ length: rounds }, () => Number(node(['--expose-gc', '-e', heapProbe(kind)]))))
const greenlet = bytes('greenlet')
const asyncFn = bytes('async')
const startup = Array.from({ length: rounds }, () => JSON.parse(node(['-e', startupProbe])) as { require: number; firstSpawnJoin: number })

console.log(`node ${process.version}, medians of ${rounds} fresh processes\n`)
console.log('| measure | value |')
console.log('| --- | ---: |')
console.log(`| heap per greenlet suspended in sleep(60 s) | ${greenlet} B |`)
console.log(`| heap per async function suspended in a setTimeout Promise | ${asyncFn} B |`)
console.log(`| ratio | ${(greenlet / asyncFn).toFixed(2)}x |`)
console.log(`| require('greenthread') | ${median(startup.map((s) => s.require)).toFixed(1)} ms |`)
console.log(`| first spawn + join after it | ${median(startup.map((s) => s.firstSpawnJoin)).toFixed(2)} ms |`)
