/** Loads the native binding and its hub wire protocol. Internal. */
// `native-binding` is mapped in tsconfig to the napi-generated index.d.ts at the
// package root (the public entry index.ts shadows that path otherwise).
import type * as Binding from 'native-binding'

// The napi-generated loader sits at the package root, next to the binaries.
// eslint-disable-next-line @typescript-eslint/no-require-imports
/** @internal */
export const native: typeof Binding = require('../../index.js')

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
  COMMAND_WIDTH: constant('COMMAND_WIDTH'),
  OUT_HEADER: constant('OUT_HEADER'),
  READY_WIDTH: constant('READY_WIDTH'),
  START: constant('START'),
  WAKE: constant('WAKE'),
  TIMER: constant('TIMER'),
  INTERRUPTED: constant('INTERRUPT_OUTCOME'),
} as const
