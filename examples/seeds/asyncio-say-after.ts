// Seed 002 (shared/seeds/002_*.txt), asyncio 二 "等待一个协程" and 三
// "create_task": awaited one after the other, say_after(1)/say_after(2) take 3
// units; as two tasks they run concurrently and take 2. One unit is 50 ms.
import { sleep, spawn } from '../../index'

const UNIT_MS = 50

async function sayAfter(delay: number, what: string): Promise<void> {
  await sleep(delay * UNIT_MS)
  console.log(what)
}

function units(since: number): string {
  return ((Date.now() - since) / UNIT_MS).toFixed(1)
}

async function sequential(): Promise<void> {
  const start = Date.now()
  console.log('started (sequential)')
  await sayAfter(1, 'hello')
  await sayAfter(2, 'world')
  console.log(`finished (sequential) after ${units(start)} units`)
}

async function concurrent(): Promise<void> {
  const start = Date.now()
  const task1 = spawn(sayAfter, 1, 'hello')
  const task2 = spawn(sayAfter, 2, 'world')
  console.log('started (create_task)')
  await task1.get()
  await task2.get()
  console.log(`finished (create_task) after ${units(start)} units`)
}

void spawn(async () => {
  await sequential()
  await concurrent()
}).get()
