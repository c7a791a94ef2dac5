// Seed 003 (shared/seeds/003_*.txt), 示例三 "gevent 下的协程": foo and bar each
// sleep one unit; the sleeps switch between them. One unit is 50 ms here.
import { joinall, sleep, spawn } from '../../index'

const UNIT_MS = 50

async function foo(): Promise<void> {
  console.log('Running in foo')
  await sleep(UNIT_MS)
  console.log('Explicit context switch to foo again.')
}

async function bar(): Promise<void> {
  console.log('Explicit context to bar')
  await sleep(UNIT_MS)
  console.log('Implicit context switch back to bar.')
}

void joinall([spawn(foo), spawn(bar)])
