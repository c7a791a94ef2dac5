// Seed 002 (shared/seeds/002_*.txt), "超时" asyncio.wait_for: eternity() sleeps
// an hour; waitFor gives up after one unit (20 ms), kills it and prints
// timeout!.
import { Timeout, sleep, spawn, waitFor } from '../../index'

async function eternity(): Promise<void> {
  await sleep(3_600_000)
  console.log('yay!')
}

void spawn(async () => {
  try {
    await waitFor(eternity, 20)
  } catch (err) {
    if (err instanceof Timeout) console.log('timeout!')
    else throw err
  }
}).get()
