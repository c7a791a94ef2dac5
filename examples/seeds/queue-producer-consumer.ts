// Seed 003 (shared/seeds/003_*.txt), the baozi producer/consumer of
// "示例: yield 支持下的协程", rewritten the gevent way: consumer greenlets c1
// and c2 take baozi from a Queue instead of being sent them through a
// generator. The producer takes 10 ms to make each one; waiting consumers
// are served first come, first served, so c1 and c2 alternate. Shutting the
// queue down ends both consumers' loops.
import { Queue, joinall, sleep, spawn } from '../../index'

const baozi = new Queue<number>()

async function consumer(name: string): Promise<void> {
  console.log(`--- ${name} 开始吃包子---`)
  for await (const newBaozi of baozi) console.log(`[${name}] 正在吃包子 ${newBaozi}`)
}

async function producer(): Promise<void> {
  for (let n = 1; n <= 5; n++) {
    await sleep(10)
    console.log(`\x1b[32;1m[producer]\x1b[0m 正在做包子 ${n}`)
    await baozi.put(n)
  }
  baozi.shutdown()
}

void joinall([spawn(consumer, 'c1'), spawn(consumer, 'c2'), spawn(producer)], { raiseError: true })
