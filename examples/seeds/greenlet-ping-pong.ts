// Seed 003 (shared/seeds/003_*.txt), 示例二 "greenlet 下的协程": test1/test2 hand
// control to each other with switch(); prints 12 56 34 78.
import { Greenlet } from '../../index'

const gr1: Greenlet = new Greenlet(async () => {
  console.log('12')
  await gr2.switch()
  console.log('34')
  await gr2.switch()
})

const gr2: Greenlet = new Greenlet(async () => {
  console.log('56')
  await gr1.switch()
  console.log('78')
})

void gr1.switch()
