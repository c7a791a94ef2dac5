// Seed 003 (shared/seeds/003_*.txt), the baozi producer/consumer, in sync
// mode: the gevent program as written there, without await. Consumer
// greenlets c1 and c2 block on a Queue; the producer makes a baozi every
// 10 ms. Waiting consumers are served first come, first served, so c1 and c2
// alternate; shutting the queue down ends both consumers' loops.
import { Queue, joinall, run, sleep, spawn } from '../../sync'

const baozi = new Queue<number>()

function consumer(name: string): void {
  console.log(`--- ${name} 开始吃包子---`)
  for (const newBaozi of baozi) console.log(`[${name}] 正在吃包子 ${newBaozi}`)
}

function producer(): void {
  for (let n = 1; n <= 5; n++) {
    sleep(10)
    console.log(`\x1b[32;1m[producer]\x1b[0m 正在做包子 ${n}`)
    baozi.put(n)
  }
  baozi.shutdown()
}

void run(() => joinall([spawn(consumer, 'c1'), spawn(consumer, 'c2'), spawn(producer)], { raiseError: true }))
