// Seed 002 (shared/seeds/002_*.txt), asyncio 一: asyncio.run(main()) where main
// prints hello, sleeps one unit, prints world. One unit is 50 ms here.
import { sleep, spawn } from '../../index'

async function main(): Promise<void> {
  console.log('hello')
  await sleep(50)
  console.log('world')
}

void spawn(main).get()
