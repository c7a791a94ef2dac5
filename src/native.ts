/** Loads the native binding and its hub wire protocol. Internal. */
// `native-binding` is mapped in tsconfig to the napi-generated index.d.ts at the
// package root (the public entry index.ts shadows that path otherwise).
import type * as Binding from 'native-binding'

/**
 * The napi-generated loader (at the package root) finds the addon next to
 * itself (a checkout) or in the platform package npm installed
 * (`greenthread-<platform>`). Where neither exists, say what to do.
 */
function load(): typeof Binding {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('../../index.js') as typeof Binding
  } catch (err) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { platformName } = require('../../scripts/platform.js') as { platformName(): string }
    const platform = platformName()
    throw new Error(
      `greenthread has no native binary for ${platform} (Node ${process.version}, ABI ${process.versions.modules}). ` +
        `Prebuilt binaries come in the optional dependency greenthread-${platform} for linux-x64-gnu; ` +
        `reinstall if it was skipped (npm install --include=optional). Elsewhere, build from source: ` +
        `clone the greenthread repository and run \`npm install\` there (needs cargo and a C++ compiler), ` +
        `then install that directory.`,
      { cause: err },
    )
  }
}

/** @internal */
export const native: typeof Binding = load()

const protocol = native.hubProtocol()

function constant(name: string): number {
  const value = protocol[name]
  if (value === undefined) throw new Error(`greenthread: native binding lacks hub constant ${name}; rebuild it`)
  return value
}

/** @internal The native hub's timer commands and buffer layout, as the runtime defines them. */
export const wire = {
  ADD_TIMER: constant('ADD_TIMER'),
  CANCEL_TIMER: constant('CANCEL_TIMER'),
  COMMAND_WIDTH: constant('COMMAND_WIDTH'),
  OUT_HEADER: constant('OUT_HEADER'),
  EVENT_WIDTH: constant('EVENT_WIDTH'),
} as const
