/**
 * `vm` scripts that Node runs under a watchdog, and why no sync greenlet may
 * block inside one. Internal.
 *
 * A script run with `timeout` (or `breakOnSigint`) is stopped by V8's
 * TerminateExecution, called from the watchdog's own thread: it ends
 * whatever JS the isolate runs at that moment. If the greenlet running the
 * script blocked and handed the baton on, that would be another greenlet
 * (left unfinished: its joiners would wait forever) or the main thread (the
 * process exits). So, while such a script runs, the calling greenlet's
 * blocking calls throw instead of handing over (the monkey patches make the
 * real blocking call instead), and nothing but that script can run when
 * the watchdog fires; Node then turns the termination into its usual
 * ERR_SCRIPT_EXECUTION_TIMEOUT for the caller.
 *
 * Node runs every such script through `vm.Script`'s `runInContext` or
 * `runInThisContext` (`runInNewContext` and the module-level functions call
 * them), and `vm.Module#evaluate` where vm modules are enabled: those are
 * wrapped, once, when sync mode loads. The inspector's `Runtime.evaluate`
 * and `Debugger.evaluateOnCallFrame` with a `timeout` are the same hazard
 * (V8's inspector terminates from a thread of its own): see ./inspector.ts.
 * Only one thread runs JS at a time and the script's thread cannot switch
 * while it runs, so one count is enough.
 */
import * as vm from 'node:vm'

let depth = 0

/** Whether the running code is inside a `vm` script that a watchdog may terminate. */
export function underWatchdog(): boolean {
  return depth > 0
}

/** The Error a blocking call throws inside such a script. */
export function blockedByWatchdog(what: string): Error {
  return new Error(
    `${what} blocks, and a sync greenlet cannot block inside a vm script run with a timeout or breakOnSigint (or an inspector evaluation with a timeout): ` +
      'Node stops that script by terminating whatever JavaScript runs when its watchdog fires, which would be ' +
      'another greenlet or the main thread. Run the script, then block (or run it without a timeout).',
  )
}

/** Whether Node arms a watchdog for a run with these options (it validates them itself). */
function armsWatchdog(options: unknown): boolean {
  if (options === null || typeof options !== 'object') return false
  const { timeout, breakOnSigint } = options as { timeout?: unknown; breakOnSigint?: unknown }
  return timeout !== undefined || breakOnSigint === true
}

/** Runs `run`, which may arm a watchdog: blocking inside it throws. */
export function watched<T>(run: () => T): T {
  depth++
  try {
    return run()
  } finally {
    depth--
  }
}

type RunInContext = (this: vm.Script, context: vm.Context, options?: vm.RunningScriptOptions) => unknown
type RunInThisContext = (this: vm.Script, options?: vm.RunningScriptOptions) => unknown
type Evaluate = (this: object, options?: { timeout?: number; breakOnSigint?: boolean }) => Promise<void>

const script = vm.Script.prototype as unknown as { runInContext: RunInContext; runInThisContext: RunInThisContext }
const runInContext = script.runInContext
const runInThisContext = script.runInThisContext
script.runInContext = {
  runInContext(this: vm.Script, context: vm.Context, options?: vm.RunningScriptOptions) {
    return armsWatchdog(options) ? watched(() => runInContext.call(this, context, options)) : runInContext.call(this, context, options)
  },
}.runInContext as RunInContext
script.runInThisContext = {
  runInThisContext(this: vm.Script, options?: vm.RunningScriptOptions) {
    return armsWatchdog(options) ? watched(() => runInThisContext.call(this, options)) : runInThisContext.call(this, options)
  },
}.runInThisContext as RunInThisContext

// vm.Module exists with --experimental-vm-modules only. Its evaluate() runs
// the module body before its first await, so the count covers the body.
const vmModule = (vm as { Module?: { prototype: { evaluate: Evaluate } } }).Module
if (vmModule !== undefined) {
  const evaluate = vmModule.prototype.evaluate
  vmModule.prototype.evaluate = {
    evaluate(this: object, options?: { timeout?: number; breakOnSigint?: boolean }) {
      return armsWatchdog(options) ? watched(() => evaluate.call(this, options)) : evaluate.call(this, options)
    },
  }.evaluate as Evaluate
}
