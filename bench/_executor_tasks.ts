/**
 * The task functions of `bench/executors.ts`, as a worker module for the peer
 * pools (piscina and tinypool import it by name; workerpool registers it when
 * its workerData says so).
 */
import { workerData } from 'node:worker_threads'

export function square(x: number): number {
  return x * x
}

export function fib(n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2)
}

if ((workerData as { workerpool?: boolean } | undefined)?.workerpool === true) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('workerpool').worker({ square, fib })
}
