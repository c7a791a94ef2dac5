import test from 'ava'

import { Timeout, getcurrent, sleep, spawn } from '../index'

const serial = test.serial

serial('Timeout.run resolves with the result when the work is fast enough', async (t) => {
  t.is(await Timeout.run(500, async () => {
    await sleep(5)
    return 'done'
  }), 'done')
})

serial('Timeout.run rejects with the Timeout and kills the work inside', async (t) => {
  let cleanedUp = false
  const start = Date.now()
  const err = await t.throwsAsync(
    Timeout.run(30, async () => {
      try {
        await sleep(10_000)
      } finally {
        cleanedUp = true
      }
    }),
    { instanceOf: Timeout },
  )
  t.is(err?.ms, 30)
  t.true(Date.now() - start < 1000)
  t.true(cleanedUp)
})

serial('Timeout.run rejects with the given exception instead', async (t) => {
  const custom = new Error('too slow')
  await t.throwsAsync(Timeout.run(10, () => sleep(1000), { exception: custom }), { is: custom })
})

serial('a started Timeout raises in its greenlet at the current wait', async (t) => {
  const g = spawn(async () => {
    const timeout = new Timeout(20).start()
    t.true(timeout.pending)
    try {
      await sleep(10_000)
    } catch (err) {
      return err === timeout ? 'timed out' : `other: ${err}`
    }
    return 'slept'
  })
  t.is(await g.get(), 'timed out')
})

serial('a Timeout raised into busy code fires at the next wait', async (t) => {
  const g = spawn(async () => {
    Timeout.startNew(5)
    const until = Date.now() + 30
    while (Date.now() < until) {
      // busy: the timeout cannot interrupt plain computation
    }
    await sleep(1)
    return 'unreachable'
  })
  await t.throwsAsync(g.get(), { instanceOf: Timeout })
})

serial('a cancelled Timeout never fires, and `using` cancels it on scope exit', async (t) => {
  const g = spawn(async () => {
    const timeout = Timeout.startNew(10)
    timeout.cancel()
    t.false(timeout.pending)
    {
      using scoped = Timeout.startNew(10)
      t.true(scoped.pending)
    }
    await sleep(40)
    return 'survived'
  })
  t.is(await g.get(), 'survived')
})

serial('Timeout(null) never fires; a string becomes its message', async (t) => {
  const never = new Timeout(null)
  t.is(never.ms, null)
  const g = spawn(async () => {
    never.start()
    await sleep(20)
    return getcurrent() !== null
  })
  t.true(await g.get())
  t.is(new Timeout(5, 'custom message').message, 'custom message')
})

serial('Timeout.start outside a greenlet and bad durations are clear errors', (t) => {
  t.throws(() => new Timeout(10).start(), { message: /inside a greenlet/ })
  t.throws(() => new Timeout(-1), { instanceOf: RangeError, message: /ms/ })
  t.throws(() => new Timeout('1' as any), { instanceOf: TypeError, message: /ms must be a number/ })
})
