/**
 * What sync mode does around the in-process inspector and CPU profiles.
 * Internal.
 *
 * - `Runtime.evaluate` and `Debugger.evaluateOnCallFrame` with a `timeout`
 *   run under a watchdog of V8's inspector, which terminates whatever JS
 *   runs when it fires: an in-process `Session#post` evaluates before it
 *   returns, so blocking is refused inside it (./watchdog.ts).
 * - Before a CPU profile starts (`Profiler.start`, `v8.startCpuProfile()`),
 *   SIGPROF found back at its default action is set to be ignored again
 *   (crates/sync/shim/locker.cc, rule 7): a profile may then be stopped on
 *   another greenlet's thread.
 *
 * `inspector/promises` keeps its own reference to the callback API's
 * `post`, taken when it loads (before this module in an ES module graph),
 * so its `Session#post` is wrapped as well.
 */
import { syncBuiltinESMExports } from 'node:module'

import { syncNative } from './native'
import { watched } from './watchdog'

type Post = (this: object, ...args: unknown[]) => unknown

function wrapPost(proto: { post: Post }): void {
  const post = proto.post
  proto.post = {
    post(this: object, ...args: unknown[]) {
      const [method, params] = args
      if (method === 'Profiler.start') syncNative.ignoreStraySigprof()
      const evaluates = method === 'Runtime.evaluate' || method === 'Debugger.evaluateOnCallFrame'
      const timed = evaluates && params !== null && typeof params === 'object' && (params as { timeout?: unknown }).timeout !== undefined
      return timed ? watched(() => post.apply(this, args)) : post.apply(this, args)
    },
  }.post
}

/** A builtin module, or `undefined` where this Node lacks it (built without the inspector, or before 19). */
function builtin<T>(name: string): T | undefined {
  try {
    return require(name) as T
  } catch {
    return undefined
  }
}

for (const name of ['node:inspector', 'node:inspector/promises']) {
  const session = builtin<{ Session: { prototype: { post: Post } } }>(name)?.Session
  if (session !== undefined) wrapPost(session.prototype)
}

// Node 24 and later. The module object itself (an import namespace is read-only).
const v8 = require('node:v8') as { startCpuProfile?: (...args: unknown[]) => unknown }
const startCpuProfile = v8.startCpuProfile
if (typeof startCpuProfile === 'function') {
  v8.startCpuProfile = {
    startCpuProfile(...args: unknown[]) {
      syncNative.ignoreStraySigprof()
      return startCpuProfile.apply(v8, args)
    },
  }.startCpuProfile
  // ES modules that import it see this one too.
  syncBuiltinESMExports()
}
