/** Local (gevent.local.local), the same suite in the async and the sync mode (see _modes.ts). */
import test from 'ava'

import { Local, sleep, spawn } from '../index'
import { both } from './_modes'

both('a Local cannot be frozen, sealed or made non-extensible: a TypeError that says so, and it stays usable', function* (t, m) {
  const local = new m.Local() as any
  local.a = 1
  for (const freeze of [Object.preventExtensions, Object.seal, Object.freeze]) {
    t.throws(() => freeze(local), { instanceOf: TypeError, message: /a Local cannot be made non-extensible/ })
  }
  local.b = 2
  t.deepEqual(Object.keys(local), ['a', 'b'])
  yield m.go(function* () {
    local.c = 3
    t.deepEqual(Object.keys(local), ['c'])
  }).join()
})

// Restates gevent's src/gevent/tests/test__local.py test_local_opts_not_subclassed and test_attribute_error.
both('a Local keeps separate properties per greenlet, and one set for code outside greenlets', function* (t, m) {
  const local = new m.Local() as any
  local.attr = 'outer'
  t.is(local.attr, 'outer')
  const seen: unknown[] = []
  const gs = ['a', 'b'].map((name) =>
    m.go(function* () {
      seen.push(local.attr)
      t.false('attr' in local)
      local.attr = name
      yield m.sleep(1)
      t.is(local.attr, name, 'still its own after other greenlets ran')
      t.deepEqual(Object.keys(local), ['attr'])
      delete local.attr
      t.is(local.attr, undefined)
      local.fizz = name
    }),
  )
  yield m.joinall(gs, { raiseError: true })
  t.deepEqual(seen, [undefined, undefined])
  t.is(local.attr, 'outer')
  t.is(local.fizz, undefined, 'what a greenlet set is not seen by the others')
  t.true(local instanceof m.Local)
})

/** A Local subclass of the mode's Local. */
function myLocal(Base: typeof Local) {
  return class MyLocal extends Base {
    count = 0

    get classProp(): number {
      return 42
    }

    bump(): number {
      return ++this.count
    }
  }
}

// Restates gevent's src/gevent/tests/test__local.py test_class_attr and test_create_local_subclass_init_args.
both("a Local subclass: methods and getters of its prototype act on the calling greenlet's properties", function* (t, m) {
  const MyLocal = myLocal(m.Local)
  const local = new MyLocal()
  t.true(local instanceof m.Local)
  t.is(local.count, 0, 'field initializers set the constructing greenlet\'s properties')
  t.is(local.bump(), 1)
  t.is(local.classProp, 42)
  const other = m.spawn(() => {
    t.is(local.count as number | undefined, undefined, 'another greenlet starts with none of its own')
    local.count = 10
    return [local.bump(), local.bump(), local.classProp]
  })
  t.deepEqual(yield other.get(), [11, 12, 42])
  t.is(local.count, 1)
  t.throws(() => new (m.Local as any)('foo'), { instanceOf: TypeError, message: /takes no constructor arguments/ })
})

test.serial('async: a Local follows its greenlet across awaits', async (t) => {
  const local = new Local() as Local & { id?: number }
  const gs = [1, 2, 3].map((id) =>
    spawn(async () => {
      local.id = id
      await sleep(id)
      await Promise.resolve()
      return local.id
    }),
  )
  t.deepEqual(await Promise.all(gs.map((g) => g.get())), [1, 2, 3])
  t.is(local.id, undefined)
})
