// Seed 003 (shared/seeds/003_*.txt), "示例: yield 支持下的协程": the producer
// sends each baozi to two generator consumers, c1 and c2. A JS generator's
// gen.next(value) is Python's send(value), and the first gen.next() primes it
// like con.__next__(). The producer line is green, as the seed's
// '\033[32;1m...\033[0m' escape makes it (the blog page lost the backslash).
function* consumer(name: string): Generator<void, never, number> {
  console.log('--- 开始吃包子---')
  for (;;) {
    const newBaozi = yield
    console.log(`[${name}] 正在吃包子 ${newBaozi}`)
  }
}

function producer(): void {
  con.next(0) // the value of a priming next() is ignored, as with __next__()
  con2.next(0)
  let n = 0
  while (n < 5) {
    n += 1
    con.next(n)
    con2.next(n)
    console.log(`\x1b[32;1m[producer]\x1b[0m 正在做包子 ${n}`)
  }
}

const con = consumer('c1') // a generator object, nothing runs yet
const con2 = consumer('c2')
producer()

// A module, not a global script: its names stay its own.
export {}
