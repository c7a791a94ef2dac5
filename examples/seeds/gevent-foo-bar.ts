// Seed 002 (shared/seeds/002_*.txt), "Gevent" 示例一 "主动切换": foo sleeps 2 units,
// bar 1 unit; gevent switches to whoever is ready. One unit is 50 ms here.
import { joinall, sleep, spawn } from '../../index'

const UNIT_MS = 50

async function foo(x: string): Promise<void> {
  console.log(`${x} at foo_1`)
  await sleep(2 * UNIT_MS)
  console.log(`${x} at foo_2`)
}

async function bar(y: string): Promise<void> {
  console.log(`${y} at bar_1`)
  await sleep(UNIT_MS)
  console.log(`${y} at bar_2`)
}

void joinall([spawn(foo, 'yang'), spawn(bar, 'Elijah')])
