// Seed 002 (shared/seeds/002_*.txt), "Greenlet" 示例: foo(x)/bar(y) switch with
// arguments. The first switch() passes the function's arguments.
import { Greenlet } from '../../index'

const g1: Greenlet = new Greenlet(async (x: string) => {
  console.log(`${x} at foo_1`)
  await g2.switch('Elijah')
  console.log(`${x} at foo_2`)
  await g2.switch()
})

const g2: Greenlet = new Greenlet(async (y: string) => {
  console.log(`${y} at bar_1`)
  await g1.switch()
  console.log(`${y} at bar_2`)
})

void g1.switch('yang')
