// Seed 001 (shared/seeds/001_*.txt), "串行执行" vs "基于yield并发执行": the same
// compute loop run serially, and interleaved through a generator that is
// resumed with next() every iteration. Switching costs time and does not help
// compute-bound work; both times are printed. The sums are kept (in `sink`)
// so that V8 cannot drop the loops as dead code, which CPython never does.
// The ratio differs from CPython's (there the interleaved run, with half the
// additions, takes about as long as the serial one): V8 compiles the
// additions to a few machine instructions, and a generator resumption costs
// far more than one; what holds in both is that switching buys nothing here.
const N = 10_000_000
let sink = 0

function func1(): void {
  for (let i = 0; i < N; i++) sink += i + 1
}

function func2(): void {
  for (let i = 0; i < N; i++) sink += i + 1
}

function* func1Generator(): Generator<void, void, void> {
  for (;;) {
    sink += 10_000_000 + 1
    yield
  }
}

function func2WithYield(): void {
  const g = func1Generator()
  for (let i = 0; i < N; i++) {
    sink += i + 1
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
if (!Number.isFinite(sink)) process.exitCode = 1
