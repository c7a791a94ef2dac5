/** Runtime configuration, accepted before the runtime starts (on first use). */
import { checkOptions, checkPositiveInteger } from './errors'
import { native } from './native'

export interface ConfigureOptions {
  /** Worker threads of the Rust runtime, 1 to {@link MAX_RUNTIME_WORKERS}. @default the number of CPU cores */
  workers?: number
}

/** The most runtime workers `configure` accepts: each is an OS thread with its own event loop. */
export const MAX_RUNTIME_WORKERS = 256

export interface RuntimeInfo {
  started: boolean
  workers: number
}

/**
 * Configures the runtime. Throws RangeError once the runtime has started
 * (the first StreamServer with a built-in handler starts it; greenlets,
 * timers, executors and sockets with JS handlers do not).
 */
export function configure(options: ConfigureOptions): void {
  const o = checkOptions('options', options)
  if (o.workers !== undefined) {
    const workers = checkPositiveInteger('options.workers', o.workers)
    if (workers > MAX_RUNTIME_WORKERS) {
      throw new RangeError(`options.workers must be at most ${MAX_RUNTIME_WORKERS}, got ${workers}`)
    }
    if (native.runtimeInfo().started) {
      throw new RangeError('options.workers cannot change: the runtime has already started; call configure() before first use')
    }
    native.configureRuntime(workers)
  }
}

/** Whether the runtime has started, and with how many workers. */
export function runtimeInfo(): RuntimeInfo {
  return native.runtimeInfo()
}
