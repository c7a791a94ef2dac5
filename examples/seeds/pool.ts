/**
 * Seed 001 (shared/seeds/001_*.txt, "进程池线程池介绍"), its pool program:
 * 20 tasks submitted to a pool, each printing its argument and the id of the
 * worker running it, sleeping, and returning n ** 2; a done callback prints
 * each result; shutdown waits for all of them. The seed sleeps 2 s per task:
 * here 50 ms, so it runs fast.
 *
 * Runs the program on a ThreadPoolExecutor (5 threads, as the seed's
 * commented-out line) and then on a ProcessPoolExecutor (CPU count, the
 * seed's default). `--threads` or `--processes` runs only one of them.
 *
 *   node dist/examples/seeds/pool.js [--threads | --processes]
 */
import { type Future, ProcessPoolExecutor, ThreadPoolExecutor } from '../../index'

/** Runs in the workers: sent by source, so it uses only its argument and globals. */
async function task(n: number): Promise<number> {
  const { threadId } = require('node:worker_threads')
  // 查看当前进程号 (and, in a thread pool, the thread's id)
  console.log(n, `pid=${process.pid}`, `thread=${threadId}`)
  await new Promise((resolve) => setTimeout(resolve, 50))
  return n ** 2
}

function callBack(f: Future<number>): void {
  // f.result() is a Promise; in a done callback the future is done, so it settles at once.
  void f.result().then((r) => console.log('拿到了异步提交任务的返回结果:', r))
}

async function run(pool: ThreadPoolExecutor | ProcessPoolExecutor, label: string): Promise<void> {
  console.log(`--- ${label} ---`)
  for (let i = 0; i < 20; i++) {
    // 提交任务的时候 绑定一个回调函数 一旦该任务有结果 立刻执行对应的回调函数
    pool.submit(task, i).addDoneCallback(callBack)
  }
  // 关闭池子 等待池子中所有的任务执行完毕之后 才会往下运行代码
  await pool.shutdown()
  console.log(`${label}: all 20 tasks done`)
}

async function main(): Promise<void> {
  const only = process.argv[2]
  if (only !== '--processes') await run(new ThreadPoolExecutor({ maxWorkers: 5 }), 'ThreadPoolExecutor(5)')
  if (only !== '--threads') await run(new ProcessPoolExecutor(), 'ProcessPoolExecutor()')
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
