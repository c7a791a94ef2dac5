// Seed 002 (shared/seeds/002_*.txt), "内省": current_task() returns the running
// task (None outside any), all_tasks() the unfinished ones.
import { allTasks, currentTask, sleep, spawn } from '../../index'

async function worker(name: string): Promise<void> {
  console.log(`${name}: current task is ${currentTask()?.name}`)
  await sleep(20)
}

console.log(`outside any task: ${currentTask()}`)
const workers = ['w1', 'w2'].map((name) => {
  const g = spawn(worker, name)
  g.name = name
  return g
})
void spawn(async () => {
  await sleep(1)
  console.log(`all tasks: ${allTasks().map((t) => t.name).sort().join(', ')}`)
  for (const w of workers) await w.join()
  console.log(`all tasks after join: ${allTasks().map((t) => t.name).join(', ')}`)
}).get()
