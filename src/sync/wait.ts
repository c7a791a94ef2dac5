/**
 * `waitReady` (gevent's `wait`) and `iwait` for sync greenlets: the async
 * module's (see src/wait.ts, where their logic lives) blocking the calling
 * greenlet instead of returning Promises. Objects already ready need no
 * wait, so these work outside greenlets as long as they do not block.
 */
import { DONE, ReadyWatch, type WaitReadyOptions, type Waitable, readyList } from '../wait'
import { blockOn } from './waits'

/**
 * Blocks until every object is ready, or `count` of them are, or
 * `timeoutMs` expires, and returns the ready ones: those ready at the call
 * in input order, then the others in the order they became ready (gevent's
 * `wait(objects, timeout, count)`). Never throws a greenlet's or a Future's
 * failure: look at the objects.
 */
export function waitReady<T extends Waitable>(objects: Iterable<T>, options?: WaitReadyOptions): T[] {
  return blockOn(readyList(new ReadyWatch(objects, options)), 'waitReady()')
}

/**
 * Yields the objects as they become ready, blocking for each: those ready
 * at the first `next()` in input order, then the others; ends once all (or
 * `count`) were yielded, or when `timeoutMs` expires (gevent's `iwait`).
 * Leaving the loop early stops watching. Bad arguments throw at the call.
 */
export function iwait<T extends Waitable>(objects: Iterable<T>, options?: WaitReadyOptions): Generator<T, void, undefined> {
  return readyObjects(new ReadyWatch(objects, options))
}

function* readyObjects<T extends Waitable>(watch: ReadyWatch<T>): Generator<T, void, undefined> {
  try {
    for (let object = blockOn(watch.next(), 'iwait()'); object !== DONE; object = blockOn(watch.next(), 'iwait()')) yield object
  } finally {
    watch.close()
  }
}
