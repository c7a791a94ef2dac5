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

/** @internal Hub command opcodes, outcome codes and buffer layout, as the runtime defines them. */
export const wire = {
  SPAWN: constant('SPAWN'),
  YIELD: constant('YIELD'),
  PARK: constant('PARK'),
  PARK_SWITCH: constant('PARK_SWITCH'),
  UNPARK: constant('UNPARK'),
  RESUMED: constant('RESUMED'),
  JOIN_WAIT: constant('JOIN_WAIT'),
  JOIN_WAIT_RAISE: constant('JOIN_WAIT_RAISE'),
  JOIN: constant('JOIN'),
  DIE: constant('DIE'),
  INTERRUPT: constant('INTERRUPT'),
  DISCARD: constant('DISCARD'),
  SET_PARENT: constant('SET_PARENT'),
  COMMAND_WIDTH: constant('COMMAND_WIDTH'),
  OUT_HEADER: constant('OUT_HEADER'),
  READY_WIDTH: constant('READY_WIDTH'),
  START: constant('START'),
  WAKE: constant('WAKE'),
  TIMER: constant('TIMER'),
  INTERRUPTED: constant('INTERRUPT_OUTCOME'),
} as const
