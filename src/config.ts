/** Runtime configuration, accepted before the runtime starts (on first use). */
import { checkOptions, checkPositiveInteger } from './errors'
import { native } from './native'

export interface ConfigureOptions {
  /** Worker threads of the Rust runtime. @default the number of CPU cores */
  workers?: number
}

export interface RuntimeInfo {
  started: boolean
  workers: number
}

/**
 * Configures the runtime. Throws RangeError once the runtime has started
 * (the first greenlet, sleep or socket starts it).
 */
export function configure(options: ConfigureOptions): void {
  const o = checkOptions('options', options)
  if (o.workers !== undefined) {
    const workers = checkPositiveInteger('options.workers', o.workers)
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
