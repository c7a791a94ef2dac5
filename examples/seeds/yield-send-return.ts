// Seed 004 (shared/seeds/004_*.txt), "yield": produce(c) sends n to the
// consumer() generator and gets its reply back from the same call,
// r = c.send(n) (here c.next(n).value), until it closes the generator. A
// falsy n would make the consumer return, as in the seed.
function* consumer(): Generator<string, void, number> {
  let r = ''
  for (;;) {
    const n = yield r
    if (!n) return
    console.log(`[CONSUMER] Consuming ${n}....`)
    r = '200 OK'
  }
}

function produce(c: Generator<string, void, number>): void {
  c.next(0) // c.next() in the seed: runs the consumer up to its first yield
  let n = 0
  while (n < 5) {
    n = n + 1
    console.log(`[PRODUCER] Producing ${n}...`)
    const r = c.next(n).value
    // The seed's print('...%s\n' % r) ends with a blank line.
    console.log(`[PRODUCER] Consumer return: ${r}\n`)
  }
  c.return()
}

const c = consumer()
produce(c)

// A module, not a global script: its names stay its own.
export {}
