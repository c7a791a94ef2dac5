/**
 * `npm run demo`: a short guided tour of greenthread. Finishes by itself.
 */
import { Greenlet, Timeout, gather, joinall, sleep, spawn } from '../index'

function section(title: string): void {
  console.log(`\n=== ${title}`)
}

async function switching(): Promise<void> {
  section('greenlet switching: explicit transfer of control (seed ping-pong)')
  const out: number[] = []
  const gr1: Greenlet = new Greenlet(async () => {
    out.push(12)
    await gr2.switch()
    out.push(34)
    await gr2.switch()
  })
  const gr2: Greenlet = new Greenlet(async () => {
    out.push(56)
    await gr1.switch()
    out.push(78)
  })
  await gr1.switch()
  console.log(out.join(' '))
}

async function cooperative(): Promise<void> {
  section('gevent-style: two greenlets sleeping 50 and 30 ms overlap')
  const start = Date.now()
  const play = spawn(async (name: string) => {
    console.log(`${name} play 1`)
    await sleep(50)
    console.log(`${name} play 2`)
  }, 'demo')
  const eat = spawn(async (name: string) => {
    console.log(`${name} eat 1`)
    await sleep(30)
    console.log(`${name} eat 2`)
  }, 'demo')
  await joinall([play, eat])
  console.log(`total ${Date.now() - start} ms (not 80)`)
}

async function manyGreenlets(): Promise<void> {
  section('100,000 greenlets, each sleeping 10 ms, on the Rust hub')
  const start = Date.now()
  const gs = Array.from({ length: 100_000 }, () => spawn(() => sleep(10)))
  await joinall(gs)
  console.log(`all done in ${Date.now() - start} ms`)
}

async function timeouts(): Promise<void> {
  section('Timeout.run kills work that takes too long')
  try {
    await Timeout.run(30, () => sleep(3_600_000))
  } catch (err) {
    console.log(`${(err as Error).name}: ${(err as Error).message}`)
  }
  section('gather: asyncio-style concurrent factorials')
  const factorial = async (name: string, n: number) => {
    let f = 1
    for (let i = 2; i <= n; i++) {
      console.log(`Task ${name}: Compute factorial(${i})...`)
      await sleep(10)
      f *= i
    }
    console.log(`Task ${name}: factorial(${n}) = ${f}`)
    return f
  }
  console.log(await gather(() => factorial('A', 2), () => factorial('B', 3), () => factorial('C', 4)))
}

async function main(): Promise<void> {
  await switching()
  await cooperative()
  await manyGreenlets()
  await timeouts()
  console.log('\ndemo finished')
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
