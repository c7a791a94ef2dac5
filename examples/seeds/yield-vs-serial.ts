// Seed 001 (shared/seeds/001_*.txt), "串行执行" vs "基于yield并发执行": the same
// compute loop run serially, and interleaved through a generator that is
// resumed with next() every iteration. Switching costs time and does not help
// compute-bound work; both times are printed.
const N = 10_000_000

function func1(): void {
  for (let i = 0; i < N; i++) void (i + 1)
}

function func2(): void {
  for (let i = 0; i < N; i++) void (i + 1)
}

function* func1Generator(): Generator<void, void, void> {
  for (;;) {
    void (10_000_000 + 1)
    yield
  }
}

function func2WithYield(): void {
  const g = func1Generator()
  for (let i = 0; i < N; i++) {
    void (i + 1)
    g.next()
  }
}

let start = performance.now()
func1()
func2()
const serial = performance.now() - start
console.log(`serial: ${(serial / 1000).toFixed(4)} s`)

start = performance.now()
func2WithYield()
const interleaved = performance.now() - start
console.log(`yield: ${(interleaved / 1000).toFixed(4)} s`)
