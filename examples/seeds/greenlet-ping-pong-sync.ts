// Seed 003 (shared/seeds/003_*.txt), 示例二 "greenlet 下的协程", in sync mode:
// test1/test2 switch to each other with no await at all, exactly as the
// Python code reads; prints 12 56 34 78.
import { Greenlet, run } from '../../sync'

void run(() => {
  const gr1: Greenlet = new Greenlet(() => {
    console.log('12')
    gr2.switch()
    console.log('34')
    gr2.switch()
  })
  const gr2: Greenlet = new Greenlet(() => {
    console.log('56')
    gr1.switch()
    console.log('78')
  })
  gr1.switch()
})
