/**
 * Native addons that keep their state per OS thread, set up on the thread
 * that loaded them: on a sync greenlet's thread it is not there. msgpackr's
 * and cbor-x's optional string decoders (msgpackr-extract, cbor-extract: a
 * C++ `thread_local` set in the module's init) dereference it and crash the
 * process (SIGSEGV) at the first decode of a long string in a greenlet;
 * lmdb and esbuild decode through msgpackr. Both libraries read an
 * environment variable when they load to use their JavaScript decoder
 * instead: set here, unless the user set it, before they load. Internal.
 */
import { emitWarning } from 'node:process'

/** The switch of each library, and the native module it turns off. */
const threadLocalDecoders: Array<{ variable: string; addon: string; library: string }> = [
  { variable: 'MSGPACKR_NATIVE_ACCELERATION_DISABLED', addon: 'msgpackr-extract', library: 'msgpackr' },
  { variable: 'CBOR_NATIVE_ACCELERATION_DISABLED', addon: 'cbor-extract', library: 'cbor-x' },
]

/** @internal Sets the variables; warns about a decoder that loaded before `greenthread/sync` (too late to turn off). */
export function avoidThreadLocalAddons(): void {
  const loaded = Object.keys(require.cache)
  for (const { variable, addon, library } of threadLocalDecoders) {
    if (process.env[variable] !== undefined) continue
    process.env[variable] = 'true'
    if (loaded.some((file) => file.includes(addon) && file.endsWith('.node'))) {
      emitWarning(
        `${library}'s native decoder (${addon}) was loaded before greenthread/sync: it keeps its state per thread and crashes the process when it decodes in a sync greenlet. Load greenthread/sync first, or set ${variable}=true.`,
        { code: 'GREENTHREAD_THREAD_LOCAL_ADDON' },
      )
    }
  }
}
