// Seed 002 (shared/seeds/002_*.txt), "并发协程" asyncio.gather: three factorial
// tasks run concurrently, printing interleaved steps. One unit is 50 ms.
import { gather, sleep, spawn } from '../../index'

async function factorial(name: string, number: number): Promise<number> {
  let f = 1
  for (let i = 2; i <= number; i++) {
    console.log(`Task ${name}: Compute factorial(${i})...`)
    await sleep(50)
    f *= i
  }
  console.log(`Task ${name}: factorial(${number}) = ${f}`)
  return f
}

void spawn(async () => {
  await gather(
    () => factorial('A', 2),
    () => factorial('B', 3),
    () => factorial('C', 4),
  )
}).get()
