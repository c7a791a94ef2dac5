// Seed 001 (shared/seeds/001_*.txt), "gevent模块": play sleeps 5 units and eat 3;
// spawned as greenlets they overlap, so the total is ~5 units, not 8. One unit
// is 50 ms here. (The seed uses monkey-patched time.sleep; the sync-mode twin
// is play-eat-sync.ts.)
import { joinall, sleep, spawn } from '../../index'

const UNIT_MS = 50

async function play(name: string): Promise<void> {
  console.log(`${name} play 1`)
  await sleep(5 * UNIT_MS)
  console.log(`${name} play 2`)
}

async function eat(name: string): Promise<void> {
  console.log(`${name} eat 1`)
  await sleep(3 * UNIT_MS)
  console.log(`${name} eat 2`)
}

const start = Date.now()
const g1 = spawn(play, '刘清正')
const g2 = spawn(eat, '刘清正')
void joinall([g1, g2]).then(() => console.log('主', ((Date.now() - start) / UNIT_MS).toFixed(1), 'units'))
