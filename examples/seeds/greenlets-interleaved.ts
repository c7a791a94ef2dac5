// Seed 004 (shared/seeds/004_*.txt), second program: the same three greenlets
// call sleep() after each line, giving up control, so they alternate. One
// unit is 20 ms here; sleep(0) interleaves the same way.
import { getcurrent, sleep, spawn } from '../../index'

const UNIT_MS = Number(process.argv[2] ?? 20)

async function f(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    console.log(`${getcurrent()} ${i}`)
    await sleep(UNIT_MS)
  }
}

const g1 = spawn(f, 3)
const g2 = spawn(f, 3)
const g3 = spawn(f, 3)
void g1.join().then(() => g2.join()).then(() => g3.join())
