/**
 * Loads the greenthread/sync native binary, built once per Node ABI
 * (`scripts/build-sync.js`), after making the process safe for it. Internal.
 *
 * The binary drives V8 directly (v8::Locker), so it only works on the Node
 * whose headers built it. Loading refuses, with an Error that says why, on
 * any other Node, off the main thread, and where V8 cannot run archived
 * threads safely (see `crates/sync/shim/locker.cc` for the list):
 * - WebAssembly code GC aborts the process while any thread is archived
 *   (V8 11.3 to 14.6), and undici's `fetch` runs WebAssembly: wasm code GC
 *   is turned off here, before the first greenlet exists.
 * - AsyncLocalStorage built on AsyncContextFrame (the default from Node 24,
 *   `--experimental-async-context-frame` on 22) keeps its current frame in
 *   one isolate-wide slot that a scavenge visits once per thread and moves
 *   again at each visit: young-generation objects reachable from the running
 *   thread are pinned instead (V8 13+). Node 22's V8 cannot, so there the
 *   flag is refused.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as v8 from 'node:v8'
import { isMainThread } from 'node:worker_threads'

import { usesAsyncContextFrame } from '../hub'
import { avoidThreadLocalAddons } from './thread-local-addons'

/** What the binary exports (crates/sync/src/lib.rs). */
export interface SyncBinding {
  install(runner: () => number, drain: () => void, nodeAbi: number): void
  acquire(): number
  switchTo(slot: number, expectLong: boolean): boolean
  prepare(slot: number): void
  threadStats(): { threads: number; idle: number }
  stackRoom(): number
  ignoreStraySigprof(): void
}

interface PlatformScript {
  platformName(): string
  syncNodeByAbi(): Record<string, string>
}

// Compiled to dist/src/sync/: the binaries and scripts sit at the package root.
const root = path.join(__dirname, '..', '..', '..')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { platformName, syncNodeByAbi } = require(path.join(root, 'scripts', 'platform.js')) as PlatformScript

/** Where npm installed `greenthread-<platform>`, if it did. */
function platformPackageDir(platform: string): string | undefined {
  try {
    return path.dirname(require.resolve(`greenthread-${platform}/package.json`, { paths: [root] }))
  } catch {
    return undefined
  }
}

function supportedNodes(): string {
  return Object.values(syncNodeByAbi())
    .map((major) => `Node ${major}`)
    .join(', ')
}

function load(): SyncBinding {
  if (!isMainThread) {
    throw new Error('greenthread/sync runs on the main thread only: sync greenlets share the main V8 isolate')
  }
  const platform = platformName()
  const abi = process.versions.modules
  const name = `greenthread-sync.${platform}.abi${abi}.node`
  // Built in a checkout, or shipped in the platform package npm installed.
  const file = [root, platformPackageDir(platform)].map((dir) => dir && path.join(dir, name)).find((f) => f && fs.existsSync(f))
  if (file === undefined) {
    const supported = syncNodeByAbi()[abi] !== undefined
    throw new Error(
      `greenthread/sync has no native binary for Node ${process.version} (ABI ${abi}) on ${platform}. ` +
        `It supports ${supportedNodes()}: prebuilt for linux-x64-gnu (the optional dependency greenthread-${platform}), ` +
        `built from source elsewhere` +
        (supported ? ' (clone the repository and run `npm install` there, which builds it for the running Node)' : '') +
        `. The async module 'greenthread' works on any Node.`,
    )
  }
  if (usesAsyncContextFrame()) {
    // V8 visits the continuation-preserved embedder data slot (where the
    // current AsyncContextFrame lives) once per thread, archived ones too,
    // and a scavenge evacuates a young object again at every visit after the
    // first: whatever the first visit updated is left pointing at a stale
    // copy. Pinning what the running thread's stack and handles reach (that
    // slot among them) keeps the object in place, so every visit agrees.
    if (Number.parseInt(process.versions.v8, 10) < 13) {
      throw new Error(
        `greenthread/sync cannot run with --experimental-async-context-frame on Node ${process.version}: ` +
          `its V8 corrupts the heap once a thread that shares the isolate has used AsyncLocalStorage, ` +
          `and lacks the pinning that avoids it. Run without that flag.`,
      )
    }
    v8.setFlagsFromString('--scavenger-precise-object-pinning')
  }
  // V8 aborts a wasm code GC while another thread is archived; dead wasm
  // code is then kept until its module dies.
  v8.setFlagsFromString('--no-wasm-code-gc')
  // A GC inside a fast API call (Node 24's Buffer.byteLength flattening a
  // string allocates) while another thread is archived corrupts the heap:
  // SIGSEGV, or "unreachable code" in the scavenger, on Node 24 and 26 in a
  // loop of a dozen lines. Code optimized from here on makes regular API
  // calls instead (what was optimized before loading keeps its fast calls:
  // load greenthread/sync at start-up). Set on every line, as the others
  // have fast calls too.
  v8.setFlagsFromString('--no-turbo-fast-api-calls')
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as SyncBinding
  } catch (err) {
    throw new Error(`greenthread/sync: cannot load ${path.basename(file)} on Node ${process.version}: ${(err as Error).message}`)
  }
}

/** @internal */
export const syncNative: SyncBinding = load()
avoidThreadLocalAddons()
