// Seed 001 (shared/seeds/001_*.txt), "gevent模块", in sync mode with the seed's
// monkey patching: play and eat call a plain *blocking* sleep (JS's
// time.sleep: Atomics.wait), which monkey.patchAll() turns into a yield to the
// other greenlets, so the two overlap: ~5 units in all, not 8. One unit is
// 50 ms here.
import { joinall, monkey, run, spawn } from '../../sync'

monkey.patchAll() // 检测所有的IO行为

const UNIT_MS = 50
const cell = new Int32Array(new SharedArrayBuffer(4))

/** Blocks the calling thread for `ms`, like Python's time.sleep. */
function timeSleep(ms: number): void {
  Atomics.wait(cell, 0, 0, ms)
}

function play(name: string): void {
  console.log(`${name} play 1`)
  timeSleep(5 * UNIT_MS)
  console.log(`${name} play 2`)
}

function eat(name: string): void {
  console.log(`${name} eat 1`)
  timeSleep(3 * UNIT_MS)
  console.log(`${name} eat 2`)
}

void run(() => {
  const start = Date.now()
  const g1 = spawn(play, '刘清正')
  const g2 = spawn(eat, '刘清正')
  joinall([g1, g2])
  console.log('主', ((Date.now() - start) / UNIT_MS).toFixed(1), 'units')
})
