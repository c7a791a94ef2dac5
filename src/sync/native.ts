/**
 * Loads the greenthread/sync native binary, built once per Node ABI
 * (`scripts/build-sync.js`). Internal.
 *
 * The binary drives V8 directly (v8::Locker), so it only works on the Node
 * whose headers built it. On any other Node, or off the main thread, loading
 * throws an Error that says why; it never loads a binary of another ABI.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { isMainThread } from 'node:worker_threads'

/** What the binary exports (crates/sync/src/lib.rs). */
export interface SyncBinding {
  install(runner: () => number, drain: () => void, nodeAbi: number): void
  acquire(): number
  switchTo(slot: number, expectLong: boolean): boolean
  prepare(slot: number): void
  threadStats(): { threads: number; idle: number }
}

/** Node majors by module ABI, for error messages. */
const NODE_BY_ABI: Readonly<Record<string, string>> = { 108: '18', 115: '20', 120: '21', 127: '22', 131: '23', 137: '24' }
/** The ABIs that CI builds and tests. */
const SUPPORTED = ['115', '127']

/** napi-rs's platform naming (as in scripts/build-sync.js). */
function platformName(): string {
  const { platform, arch } = process
  if (platform === 'linux') {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
    return `linux-${arch}-${header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function describeAbi(abi: string): string {
  const major = NODE_BY_ABI[abi]
  return major ? `Node ${major} (ABI ${abi})` : `ABI ${abi}`
}

function load(): SyncBinding {
  if (!isMainThread) {
    throw new Error('greenthread/sync runs on the main thread only: sync greenlets share the main V8 isolate')
  }
  // Compiled to dist/src/sync/: the binaries sit at the package root.
  const root = path.join(__dirname, '..', '..', '..')
  const platform = platformName()
  const abi = process.versions.modules
  const file = path.join(root, `greenthread-sync.${platform}.abi${abi}.node`)
  if (!fs.existsSync(file)) {
    const prefix = `greenthread-sync.${platform}.abi`
    const built = fs
      .readdirSync(root)
      .filter((f) => f.startsWith(prefix) && f.endsWith('.node'))
      .map((f) => describeAbi(f.slice(prefix.length, -'.node'.length)))
    throw new Error(
      `greenthread/sync has no native binary for Node ${process.version} (ABI ${abi}) on ${platform}. ` +
        `It supports ${SUPPORTED.map(describeAbi).join(' and ')}; ` +
        `binaries present: ${built.length > 0 ? built.join(', ') : 'none'}. ` +
        `Build one for this Node with \`node scripts/build-sync.js\` (the async module 'greenthread' works on any Node).`,
    )
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as SyncBinding
  } catch (err) {
    throw new Error(`greenthread/sync: cannot load ${path.basename(file)} on Node ${process.version}: ${(err as Error).message}`)
  }
}

/** @internal */
export const syncNative: SyncBinding = load()
