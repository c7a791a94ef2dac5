// Seed 004 (shared/seeds/004_*.txt), "gevent" first program: three greenlets
// run f(5) without ever yielding, so they run one after another, not
// interleaved.
import { getcurrent, spawn } from '../../index'

function f(n: number): void {
  for (let i = 0; i < n; i++) console.log(`${getcurrent()} ${i}`)
}

const g1 = spawn(f, 5)
const g2 = spawn(f, 5)
const g3 = spawn(f, 5)
void g1.join().then(() => g2.join()).then(() => g3.join())
