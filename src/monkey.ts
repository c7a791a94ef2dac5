/**
 * Monkey patching for sync greenlets, like gevent's `monkey.patch_all()`.
 *
 * After `patchAll()`, the blocking calls people write in sync code yield to
 * other greenlets when made inside a sync greenlet: the call runs the
 * asynchronous version of the same operation and blocks only the calling
 * greenlet until it completes (`block()`), so other greenlets and the event
 * loop keep running. Outside sync greenlets every patched function behaves
 * exactly as before (it calls the original).
 *
 * Patched (each returns and throws what the original does):
 * - `fs`: `readFileSync`, `writeFileSync`, `appendFileSync`, `readdirSync`,
 *   `statSync`, `lstatSync`, `fstatSync`, `accessSync`, `existsSync`,
 *   `mkdirSync`, `mkdtempSync`, `rmSync`, `rmdirSync`, `unlinkSync`,
 *   `renameSync`, `copyFileSync`, `cpSync`, `realpathSync` (and `.native`),
 *   `readlinkSync`, `symlinkSync`, `linkSync`, `chmodSync`, `chownSync`,
 *   `truncateSync`, `ftruncateSync`, `utimesSync`, `openSync`, `closeSync`,
 *   `readSync`, `writeSync`, `fsyncSync` (through their callback versions,
 *   which take the same arguments: paths, URLs, Buffers and fds);
 * - `child_process`: `spawnSync`, `execSync`, `execFileSync` (through
 *   `spawn`, with `input`, `timeout`, `killSignal`, `maxBuffer`, `encoding`
 *   and `stdio` handled as the sync versions do);
 * - `Atomics.wait` (through `Atomics.waitAsync`).
 *
 * ES module named imports of `node:fs` and `node:child_process` see the
 * patches too (`module.syncBuiltinESMExports()`). Node's own internal uses
 * (module loading...) are not affected.
 */
// `import x = require()`: the module objects themselves are patched, not
// the read-only namespace copies that `import * as` would give.
import childProcess = require('node:child_process')
import fs = require('node:fs')
import Module = require('node:module')
import { syncBuiltinESMExports } from 'node:module'
import { promisify } from 'node:util'

import { checkFlag, checkOptions } from './errors'
import { currentGreenlet } from './sync/scheduler'
import { onOwnStack } from './sync/stack'
import { block } from './sync/waits'
import { underWatchdog } from './sync/watchdog'
import { KEEP_ALIVE_MS } from './_keep-alive'

export interface PatchOptions {
  /** Patch the sync functions of `node:fs`. @default true */
  fs?: boolean
  /** Patch `spawnSync`, `execSync`, `execFileSync` of `node:child_process`. @default true */
  childProcess?: boolean
  /** Patch `Atomics.wait`. @default true */
  atomics?: boolean
}

type AnyFunction = (...args: any[]) => any

/** What was replaced, to restore it. */
const originals: { target: Record<string, unknown>; name: string; value: unknown }[] = []

/**
 * `require()`s in progress. Node's module loader reads files through the
 * patched `fs`: a load that yielded there would leave its half-made module
 * in the cache, and a concurrent `require()` of it would get its empty
 * exports. Loading makes the real calls.
 */
let loading = 0

/**
 * Whether a blocking call can suspend the caller; elsewhere (outside
 * greenlets, under a vm watchdog, on a WebAssembly JSPI stack, inside a
 * `require()`) the real call blocks.
 */
function inGreenlet(): boolean {
  return currentGreenlet() !== null && loading === 0 && !underWatchdog() && onOwnStack()
}

type ModuleLoad = (this: unknown, ...args: unknown[]) => unknown

function patchModuleLoading(): void {
  const m = Module as unknown as { _load: ModuleLoad }
  const load = m._load
  replace(m, '_load', function _load(this: unknown, ...args: unknown[]): unknown {
    loading++
    try {
      return load.apply(this, args)
    } finally {
      loading--
    }
  })
}

function replace(target: object, name: string, value: unknown): void {
  const t = target as Record<string, unknown>
  originals.push({ target: t, name, value: t[name] })
  t[name] = value
}

/** A function that runs `viaAsync` (blocking the greenlet) inside greenlets, `original` elsewhere. */
function yielding(name: string, original: AnyFunction, viaAsync: (...args: any[]) => unknown): AnyFunction {
  const patched = {
    [name](this: unknown, ...args: unknown[]): unknown {
      return inGreenlet() ? viaAsync(...args) : original.apply(this, args)
    },
  }[name]
  Object.defineProperty(patched, 'length', { value: original.length })
  return patched
}

/** fs sync functions whose callback version takes the same arguments and calls back with the same result. */
const FS_SAME_RESULT = [
  'readFile',
  'writeFile',
  'appendFile',
  'readdir',
  'fstat',
  'access',
  'mkdir',
  'mkdtemp',
  'rm',
  'rmdir',
  'unlink',
  'rename',
  'copyFile',
  'cp',
  'readlink',
  'symlink',
  'link',
  'chmod',
  'chown',
  'truncate',
  'ftruncate',
  'utimes',
  'open',
  'close',
  'fsync',
] as const

function patchFs(): void {
  patchModuleLoading()
  const f = fs as unknown as Record<string, AnyFunction>
  for (const name of FS_SAME_RESULT) {
    if (typeof f[name] !== 'function' || typeof f[`${name}Sync`] !== 'function') continue
    const viaAsync = promisify(f[name])
    replace(fs, `${name}Sync`, yielding(`${name}Sync`, f[`${name}Sync`], (...args) => block(viaAsync(...args))))
  }
  for (const name of ['stat', 'lstat'] as const) {
    const viaAsync = promisify(f[name])
    const original = f[`${name}Sync`]
    replace(
      fs,
      `${name}Sync`,
      yielding(`${name}Sync`, original, (path: unknown, options?: { throwIfNoEntry?: boolean }) => {
        try {
          return block(viaAsync(path, options))
        } catch (err) {
          // No entry: the sync call answers as this Node's does (`undefined`
          // for ENOENT; ENOTDIR differs between Node lines), at once.
          const code = (err as NodeJS.ErrnoException | null)?.code
          if (options?.throwIfNoEntry === false && (code === 'ENOENT' || code === 'ENOTDIR')) return original(path, options)
          throw err
        }
      }),
    )
  }
  const access = promisify(fs.access)
  replace(
    fs,
    'existsSync',
    yielding('existsSync', fs.existsSync, (path: unknown) => {
      try {
        block(access(path as fs.PathLike))
        return true
      } catch {
        return false
      }
    }),
  )
  const read = promisify(fs.read) as (...args: unknown[]) => Promise<{ bytesRead: number }>
  replace(
    fs,
    'readSync',
    yielding('readSync', fs.readSync, (...args) => {
      // readSync(fd, buffer, offset, length) reads at the current position; read() would take its callback for the position.
      if (args.length === 4) args.push(null)
      return block(read(...args)).bytesRead
    }),
  )
  const write = promisify(fs.write) as (...args: unknown[]) => Promise<{ bytesWritten: number }>
  replace(fs, 'writeSync', yielding('writeSync', fs.writeSync, (...args) => block(write(...args)).bytesWritten))
  const realpath = promisify(fs.realpath)
  const realpathNative = promisify(fs.realpath.native)
  const realpathSync = yielding('realpathSync', fs.realpathSync, (...args) =>
    block((realpath as AnyFunction)(...args)),
  ) as AnyFunction & { native?: AnyFunction }
  realpathSync.native = yielding('native', fs.realpathSync.native, (...args) =>
    block((realpathNative as AnyFunction)(...args)),
  )
  replace(fs, 'realpathSync', realpathSync)
}

/** What `spawnSync` returns. */
interface SpawnResult {
  pid: number
  output: (Buffer | string | null)[] | null
  stdout: Buffer | string | null
  stderr: Buffer | string | null
  status: number | null
  signal: NodeJS.Signals | null
  error?: Error
}

type SyncSpawnOptions = childProcess.SpawnSyncOptions & { input?: string | NodeJS.ArrayBufferView }

const MAX_BUFFER = 1024 * 1024

/** A spawn error shaped like spawnSync's (`spawnSync <file> <CODE>`). */
function spawnError(code: string, errno: number, file: string, args: readonly string[]): Error {
  return Object.assign(new Error(`spawnSync ${file} ${code}`), {
    errno,
    code,
    syscall: `spawnSync ${file}`,
    path: file,
    spawnargs: [...args],
  })
}

/** `spawnSync`'s result, produced by `spawn` without blocking the thread. */
function spawnAsync(file: string, args: readonly string[], options: SyncSpawnOptions): Promise<SpawnResult> {
  return new Promise<SpawnResult>((resolve) => {
    // What spawn() does not take, or would handle differently (its own
    // timeout kills without the ETIMEDOUT error spawnSync reports).
    const { input, timeout, killSignal, maxBuffer = MAX_BUFFER, encoding: rawEncoding, ...spawnOptions } = options
    if (timeout !== undefined && timeout !== null && !(Number.isInteger(timeout) && timeout >= 0)) {
      // Node's validateTimeout, which spawnSync runs too.
      throw Object.assign(new RangeError(`The value of "timeout" is out of range. It must be an unsigned integer. Received ${String(timeout)}`), {
        code: 'ERR_OUT_OF_RANGE',
      })
    }
    const encoding = rawEncoding && rawEncoding !== 'buffer' ? rawEncoding : undefined
    const stdio = normalizeStdio(options.stdio)
    if (input !== undefined && input !== null) stdio[0] = 'pipe'
    // Argument errors reject, so block() throws them, as spawnSync would.
    const child = childProcess.spawn(file, args, { ...spawnOptions, stdio } as childProcess.SpawnOptions)
    // Every piped fd but stdin is collected (`output[fd]`), as spawnSync does.
    const chunks: Buffer[][] = child.stdio.map(() => [])
    let buffered = 0
    let error: Error | undefined
    let timer: NodeJS.Timeout | undefined
    const kill = (err: Error): void => {
      error ??= err
      child.kill(killSignal ?? 'SIGTERM')
      // spawnSync stops reading once it has killed the child: a grandchild
      // holding the pipes (a shell's command) must not keep the call waiting.
      child.once('exit', () => {
        for (const stream of child.stdio) stream?.destroy()
      })
    }
    child.stdio.forEach((stream, i) => {
      if (i === 0) return
      stream?.on('data', (chunk: Buffer) => {
        if (error) return
        buffered += chunk.length
        if (buffered > maxBuffer) {
          chunks[i].push(chunk.subarray(0, chunk.length - (buffered - maxBuffer)))
          kill(spawnError('ENOBUFS', -105, file, args))
        } else {
          chunks[i].push(chunk)
        }
      })
    })
    if (timeout !== undefined && timeout > 0) {
      timer = setTimeout(() => kill(spawnError('ETIMEDOUT', -110, file, args)), timeout)
    }
    if (child.stdin) {
      child.stdin.on('error', () => {}) // EPIPE if the child does not read its input
      if (typeof input === 'string') child.stdin.end(Buffer.from(input, Buffer.isEncoding(encoding ?? '') ? encoding : 'utf8'))
      else if (input) child.stdin.end(Buffer.from(input.buffer, input.byteOffset, input.byteLength))
      else child.stdin.end()
    }
    const text = (bufs: Buffer[]): Buffer | string => {
      const b = Buffer.concat(bufs)
      return encoding ? b.toString(encoding) : b
    }
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      // The process could not start: spawnSync reports it in `error`, named as its own.
      const error = spawnError(err.code ?? 'UNKNOWN', err.errno ?? 0, file, args)
      resolve({ pid: 0, output: null, stdout: null, stderr: null, status: null, signal: null, error })
    })
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      const output = child.stdio.map((stream, i) => (i > 0 && stream ? text(chunks[i]) : null))
      const stdout = output[1] ?? null
      const stderr = output[2] ?? null
      const result: SpawnResult = { pid: child.pid ?? 0, output, stdout, stderr, status, signal }
      if (error) result.error = error
      resolve(result)
    })
  })
}

function normalizeStdio(stdio: childProcess.StdioOptions | undefined): childProcess.StdioPipe[] {
  if (stdio === undefined) return ['pipe', 'pipe', 'pipe']
  if (typeof stdio === 'string') return [stdio, stdio, stdio] as childProcess.StdioPipe[]
  return [...stdio] as childProcess.StdioPipe[]
}

/** execSync's and execFileSync's error for a failed run (Node's checkExecSyncError). */
function execError(ret: SpawnResult, args: readonly string[] | undefined, command: string | undefined): Error | undefined {
  if (ret.error) return Object.assign(ret.error, ret)
  if (ret.status === 0) return undefined
  let message = `Command failed: ${command ?? (args ?? []).join(' ')}`
  if (ret.stderr && ret.stderr.length > 0) message += `\n${ret.stderr.toString()}`
  return Object.assign(new Error(message), ret)
}

/** `file, args?, options?` as the sync spawn functions take them. */
/** As Node's spawn arguments: `args` omitted, `undefined` or `null` leaves `options` in third place. */
function splitArgs(args: unknown, options: unknown): [string[], SyncSpawnOptions] {
  if (Array.isArray(args)) return [args.map(String), { ...(options as SyncSpawnOptions) }]
  if (args === undefined || args === null) return [[], { ...(options as SyncSpawnOptions) }]
  return [[], { ...(args as SyncSpawnOptions) }]
}

function patchChildProcess(): void {
  replace(
    childProcess,
    'spawnSync',
    yielding('spawnSync', childProcess.spawnSync, (file: string, args?: unknown, options?: unknown) => {
      const [argv, o] = splitArgs(args, options)
      return block(spawnAsync(file, argv, o))
    }),
  )
  replace(
    childProcess,
    'execFileSync',
    yielding('execFileSync', childProcess.execFileSync, (file: string, args?: unknown, options?: unknown) => {
      const [argv, o] = splitArgs(args, options)
      const ret = block(spawnAsync(file, argv, o))
      if (!o.stdio && ret.stderr) process.stderr.write(ret.stderr)
      const err = execError(ret, [o.argv0 ?? file, ...argv], undefined)
      if (err) throw err
      return ret.stdout
    }),
  )
  replace(
    childProcess,
    'execSync',
    yielding('execSync', childProcess.execSync, (command: string, options?: SyncSpawnOptions) => {
      const o: SyncSpawnOptions = { ...options, shell: typeof options?.shell === 'string' ? options.shell : true }
      const ret = block(spawnAsync(command, [], o))
      if (!o.stdio && ret.stderr) process.stderr.write(ret.stderr)
      const err = execError(ret, undefined, command)
      if (err) throw err
      return ret.stdout
    }),
  )
}


function noop(): void {}

function patchAtomics(): void {
  const waitAsync = (Atomics as unknown as { waitAsync?: AnyFunction }).waitAsync
  if (typeof waitAsync !== 'function') return
  replace(
    Atomics,
    'wait',
    yielding('wait', Atomics.wait, (array: Int32Array, index: number, value: number, timeout?: number) => {
      const r = waitAsync.call(Atomics, array, index, value, timeout) as { async: boolean; value: unknown }
      if (!r.async) return r.value
      // waitAsync's timer does not keep Node's event loop alive, but the
      // blocking wait it stands for holds the process: hold it until settled.
      const hold = setInterval(noop, typeof timeout === 'number' && timeout < KEEP_ALIVE_MS ? Math.max(1, timeout) : KEEP_ALIVE_MS)
      try {
        return block(r.value as Promise<string>)
      } finally {
        clearInterval(hold)
      }
    }),
  )
}

/** Whether `patchAll()` is in effect. */
export function isPatched(): boolean {
  return originals.length > 0
}

/**
 * Patches the blocking functions listed in this module's documentation so
 * that, inside sync greenlets, they block only the calling greenlet. Calling
 * it again changes nothing; `unpatchAll()` undoes it.
 */
export function patchAll(options?: PatchOptions): void {
  const o = checkOptions('options', options)
  const fs = checkFlag('options.fs', o.fs, true)
  const childProcess = checkFlag('options.childProcess', o.childProcess, true)
  const atomics = checkFlag('options.atomics', o.atomics, true)
  if (isPatched()) return
  if (fs) patchFs()
  if (childProcess) patchChildProcess()
  if (atomics) patchAtomics()
  syncBuiltinESMExports()
}

/** Restores every function `patchAll()` replaced. */
export function unpatchAll(): void {
  for (const { target, name, value } of originals.splice(0).reverse()) target[name] = value
  syncBuiltinESMExports()
}
