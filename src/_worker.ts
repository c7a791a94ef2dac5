/**
 * Worker entry of the executors: runs tasks in a worker thread (pulling
 * batches from the Rust queue) or in a child process (batches over fd 3).
 * Internal: the executors start it; it does nothing when imported otherwise.
 *
 * A worker runs one task at a time, as a Python pool worker does; a task
 * that returns a promise is awaited before the next starts. Results are
 * pushed back per batch, and before any await so that finished results never
 * wait behind a slow task.
 */
import { createRequire } from 'node:module'
import * as net from 'node:net'
import * as path from 'node:path'
import { isMainThread, parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads'

import {
  DefKind,
  FRAME_HEADER,
  Reader,
  Status,
  type ResolveHook,
  type ShareHook,
  TaskFlag,
  Writer,
  forEachFrame,
  writeCancelled,
  writeThrown,
} from './_codec'
import { rebuildError } from './_error-record'
import { KEEP_ALIVE_MS } from './_keep-alive'
import { movedOf, type TransferListItem } from './transfer'

/** What every worker needs to know before its first task. */
export interface WorkerConfig {
  /** URL of `options.module`, imported on first use. */
  moduleUrl: string | undefined
  /** Definition bytes of the initializer. */
  initializer: Uint8Array | undefined
  initargs: unknown[]
  /** Tasks to run before retiring; 0: no limit. */
  maxTasks: number
  /** Idle this long (ms), a worker retires; 0: never. */
  idleMs: number
}

/** `workerData` of a thread worker. */
export interface ThreadWorkerData {
  greenthreadExecutor: true
  poolId: number
  /** Int32Array: [BELL] bumped on new work, [CLOSED] set at shutdown, [SHARED_SEQ] last shared-memory id. */
  bell: SharedArrayBuffer
  /** Int32Array(1): how this worker ended, written before it exits. */
  status: SharedArrayBuffer
  config: WorkerConfig
  /** Shared memory of queued tasks, by id, when the worker started. */
  shared: [number, SharedArrayBuffer][]
  /** Shared memory by id, {@link SharedMessage}s both ways. */
  sharePort: MessagePort
}

/**
 * Over a thread worker's share port. Executor → worker: `sab` set, the
 * memory of id `id` (queued tasks may refer to it); `sab` unset, id `id` is
 * no longer used. Worker → executor: the memory of id `id` in a result (each
 * result gets new ids).
 */
export interface SharedMessage {
  id: number
  sab?: SharedArrayBuffer
  /** Worker → executor: the values a result moves (`move()`), under the id its value carries. */
  moved?: unknown[]
}

/**
 * Over a thread worker's own port, for a task that moves values
 * (`TaskFlag.TRANSFER`). Worker → executor: `{ type, id }`, it took task
 * `id`; executor → worker: the task's transfer list (moved, not copied), or
 * `list` unset and `error`.
 */
export interface TransferMessage {
  type: typeof TRANSFER_REQUEST
  id: number
  list?: TransferListItem[]
  error?: string
}

export const BELL = 0
export const CLOSED = 1
export const SHARED_SEQ = 2
/** Int32 slots of the doorbell. */
export const BELL_SLOTS = 3
export const enum ExitStatus {
  RUNNING = 0,
  /** Retired (maxTasksPerChild) or shut down: not a crash. */
  CLEAN = 1,
  INIT_FAILED = 2,
}

/** Messages over a child process's fd 3: `[type u8][len u32][body]`. */
export const enum Msg {
  /** parent → child: v8 clone of the WorkerConfig. */
  INIT = 1,
  /** parent → child: frames `[fnId][len][definition]`. */
  DEFS = 2,
  /** parent → child: a batch of task frames. */
  TASKS = 3,
  /** parent → child: `[id u32][value]`, the abort reason. */
  ABORT = 4,
  /** parent → child: finish the queued batches, then exit. */
  CLOSE = 5,
  /** child → parent: initializer done. */
  READY = 6,
  /** child → parent: `[status][value]` of the initializer's exception. */
  INIT_FAILED = 7,
  /** child → parent: `[lastOfBatch u8][ms f64][result frames]`. */
  RESULTS = 8,
  /** child → parent: task frames of its batch that it gives back unstarted. */
  RETURN = 9,
}
export const MSG_HEADER = 5

const ABORT_REASON = 'greenthread:abort'
export const TRANSFER_REQUEST = 'greenthread:transfer'
/** Batches aim to take about this long, so that workers share slow tasks fairly. */
const BATCH_TARGET_MS = 2
/** A batch still running after this long gives its unstarted tasks back to the queue. */
const BATCH_OVERDUE_MS = 4 * BATCH_TARGET_MS
const MAX_BATCH = 1024
const CLOSURE_HINT =
  ' (a function submitted by source runs in the worker without its closure:' +
  ' pass outer values as arguments, or export the function from options.module and submit its name)'

const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<Record<string, unknown>>

function noop(): void {}

/**
 * `this` of a function submitted by source: it runs without the object it
 * may have been a method of, so reading or writing a property of `this` is a
 * clear error instead of `undefined` (and a silently wrong result).
 */
const UNBOUND_THIS: object = new Proxy(
  {},
  {
    get(_target, key) {
      if (typeof key === 'symbol' || key === 'then') return undefined
      throw unboundThis('read', key)
    },
    set(_target, key) {
      throw unboundThis('set', key)
    },
    has(_target, key) {
      throw unboundThis('looked up', key)
    },
  },
)

function unboundThis(how: string, key: string | symbol): TypeError {
  return new TypeError(
    `the submitted function ${how} this.${String(key)}, but a function submitted by source runs without its object: ` +
      '`this` is not bound in the worker (pass the object as an argument, or submit a function that calls the method on it)',
  )
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as any).then === 'function'
}

/** The next batch size: about {@link BATCH_TARGET_MS} of work, growing at most twofold. */
export function nextBatchSize(size: number, ran: number, ms: number): number {
  if (ran === 0) return size
  const fit = ms > 0 ? Math.floor((BATCH_TARGET_MS * ran) / ms) : MAX_BATCH
  return Math.max(1, Math.min(fit, size * 2, MAX_BATCH))
}

/** How a thread worker receives the values a task moves, and moves a result's back. */
interface Transfers {
  /** The transfer list of task `id`, from the executor. */
  fetch(id: number): Promise<readonly unknown[]>
  /** A new id for the values of a result. */
  next(): number
  /** Moves `list` to the executor under `id` (posted before the result). */
  post(id: number, list: readonly unknown[]): void
}

/** `value` without its `move()` marker, and what the marker moves (the results of a chunk: each's). */
function unwrapMoved(value: unknown, chunk: boolean): [unknown, TransferListItem[] | undefined] {
  if (!chunk) {
    const m = movedOf(value)
    return m === undefined ? [value, undefined] : [m.value, m.transfer]
  }
  let list: TransferListItem[] | undefined
  const items = value as unknown[]
  for (let i = 0; i < items.length; i++) {
    const m = movedOf(items[i])
    if (m === undefined) continue
    items[i] = m.value
    list ??= []
    for (const t of m.transfer) if (!list.includes(t)) list.push(t)
  }
  return [value, list]
}

type Fn = (this: unknown, ...args: unknown[]) => unknown
interface Entry {
  fn: Fn
  bySource: boolean
}

function call(entry: Entry, args: unknown[]): unknown {
  return entry.fn.apply(entry.bySource ? UNBOUND_THIS : undefined, args)
}

/** Compiles a function's source in the worker's global scope, with `require` from the cwd. */
function compile(source: string, req: NodeJS.Require): Fn {
  const make = (text: string): unknown => new Function('require', `return (${text})`)(req)
  let fn: unknown
  try {
    fn = make(source)
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err
    // Method shorthand (`name(x) { ... }`) is only valid inside an object literal.
    fn = Object.values(make(`{${source}}`) as object)[0]
  }
  if (typeof fn !== 'function') throw new TypeError(`greenthread: the submitted source is not a function: ${source.slice(0, 60)}`)
  return fn as Fn
}

function withClosureHint(err: unknown): unknown {
  if (err instanceof ReferenceError && !err.message.includes(CLOSURE_HINT)) {
    const original = err.message
    // V8 formats the stack on first access: read it before changing the message.
    const stack = err.stack
    err.message = original + CLOSURE_HINT
    if (typeof stack === 'string') err.stack = stack.replace(original, err.message)
  }
  return err
}

/** Resolves functions and runs batches; transport-independent. */
class Runner {
  readonly #fns = new Map<number, Entry>()
  readonly #controllers = new Map<number, AbortController>()
  readonly #require = createRequire(path.join(process.cwd(), 'noop.js'))
  #module: Promise<Record<string, unknown>> | undefined

  constructor(
    private readonly config: WorkerConfig,
    private readonly definition: (fnId: number) => Uint8Array | undefined,
    /** Shared memory of arguments: thread workers only. */
    private readonly resolveShared?: ResolveHook,
    /** Moved values: thread workers only (a child process receives and returns copies). */
    private readonly transfers?: Transfers,
  ) {}

  async init(): Promise<void> {
    const def = this.config.initializer
    if (def === undefined) return
    const entry = await this.#resolve(Buffer.from(def.buffer, def.byteOffset, def.byteLength))
    const r = call(entry, this.config.initargs)
    if (isThenable(r)) await r
  }

  /**
   * A batch reached this worker: its tasks that take a signal get their
   * AbortController now, so that an abort that comes before a task starts
   * (while an earlier one runs, or its module loads) is not lost: the task
   * is then cancelled instead of run.
   */
  admit(batch: Buffer): void {
    forEachFrame(batch, (id, start) => {
      if (batch[start + 4] & TaskFlag.SIGNAL) this.#controllers.set(id, new AbortController())
    })
  }

  /** Tasks of `rest` go back to the queue unstarted: their aborts are the queue's business again. */
  #release(rest: Buffer): Buffer {
    forEachFrame(rest, (id) => this.#controllers.delete(id))
    return rest
  }

  abort(id: number, reason: unknown): void {
    this.#controllers.get(id)?.abort(reason ?? new DOMException('the task was aborted', 'AbortError'))
  }

  async #resolve(def: Buffer): Promise<Entry> {
    const text = def.toString('utf16le', 1)
    if (def[0] === DefKind.SOURCE) return { fn: compile(text, this.#require), bySource: true }
    const url = this.config.moduleUrl
    if (url === undefined) throw new TypeError(`greenthread: cannot run export ${JSON.stringify(text)}: options.module is not set`)
    const mod = await (this.#module ??= dynamicImport(url))
    let fn = mod[text]
    // A CommonJS module's exports may only be reachable through `default`.
    if (typeof fn !== 'function' && mod.default !== null && typeof mod.default === 'object') fn = (mod.default as Record<string, unknown>)[text]
    if (typeof fn !== 'function') throw new TypeError(`greenthread: options.module ${url} has no function export named ${JSON.stringify(text)}`)
    return { fn: fn as Fn, bySource: false }
  }

  async #fn(fnId: number): Promise<Entry> {
    const def = this.definition(fnId)
    if (def === undefined) throw new Error(`greenthread: worker has no definition for function ${fnId}`)
    const entry = await this.#resolve(Buffer.from(def.buffer, def.byteOffset, def.byteLength))
    this.#fns.set(fnId, entry)
    return entry
  }

  #writeResult(out: Writer, id: number, chunk: boolean, failed: boolean, value: unknown): void {
    const mark = out.beginFrame(id)
    if (!failed) {
      const start = out.length
      try {
        out.u8(Status.OK)
        const [v, moved] = unwrapMoved(value, chunk)
        if (moved !== undefined && this.transfers !== undefined) {
          const tid = this.transfers.next()
          out.transferred(v, 'the result', tid, moved)
          this.transfers.post(tid, moved)
        } else {
          // A child process copies what the task moves.
          out.value(v, 'the result')
        }
      } catch (err) {
        out.truncate(start)
        writeThrown(out, err)
      }
    } else {
      writeThrown(out, value)
    }
    out.endFrame(mark)
  }

  /**
   * Runs the task frames of `batch` in order, writing result frames to `out`;
   * `flush` is called before every await. Before awaiting a task, or once
   * the batch is overdue, the tasks not started yet go to `giveBack` (so
   * that idle workers can take them) and the batch ends. `claim` is called
   * right before each task starts: it sends the results written before it,
   * so that a later task of the batch that runs long (a call cannot be
   * interrupted) neither delays them nor, should the worker die or be
   * destroyed meanwhile, loses them; and a thread worker, whose batch is
   * only held (see the runtime's executor module), skips a task whose claim
   * fails (cancelled, or taken over by an idle worker meanwhile). Returns
   * the number of tasks run.
   */
  async runBatch(batch: Buffer, out: Writer, flush: () => void, giveBack: (rest: Buffer) => void, claim: (id: number) => boolean): Promise<number> {
    const r = new Reader(batch, 0, this.resolveShared)
    const started = performance.now()
    let ran = 0
    let stop = false
    while (!stop && r.at + FRAME_HEADER <= batch.length) {
      const id = r.u32()
      const end = r.u32() + r.at
      const fnId = r.u32()
      const flags = r.u8()
      const controller = flags & TaskFlag.SIGNAL ? this.#controllers.get(id) : undefined
      let value: unknown
      let failed = false
      let cancelled = false
      try {
        let entry = this.#fns.get(fnId)
        if (entry === undefined) {
          flush()
          entry = await this.#fn(fnId)
        }
        if (!claim(id)) {
          r.at = end
          continue
        }
        // Aborted before it started (while an earlier task ran, or its function loaded): not run.
        if (controller?.signal.aborted) cancelled = true
        else {
          try {
            let transferred: readonly unknown[] | undefined
            if (flags & TaskFlag.TRANSFER) {
              if (this.transfers === undefined) throw new Error('greenthread: a task that moves values reached a worker that cannot receive them')
              // The executor hands them over on request: let the rest of the batch go meanwhile.
              if (end < batch.length) {
                giveBack(this.#release(batch.subarray(end)))
                stop = true
              }
              flush()
              transferred = await this.transfers.fetch(id)
            }
            const args = r.args(transferred)
            if (flags & TaskFlag.CHUNK) {
              const results: unknown[] = []
              for (const item of args[0] as unknown[]) {
                let v = call(entry, [item])
                if (isThenable(v)) {
                  flush()
                  v = await v
                }
                results.push(v)
              }
              value = results
            } else {
              if (controller !== undefined) args.push(controller.signal)
              value = call(entry, args)
              if (isThenable(value)) {
                if (end < batch.length) {
                  giveBack(this.#release(batch.subarray(end)))
                  stop = true
                }
                flush()
                value = await value
              }
            }
          } catch (err) {
            throw entry.bySource ? withClosureHint(err) : err
          }
        }
      } catch (err) {
        failed = true
        value = err
      } finally {
        this.#controllers.delete(id)
      }
      r.at = end
      ran++
      if (cancelled) writeCancelled(out, [id])
      else this.#writeResult(out, id, (flags & TaskFlag.CHUNK) !== 0, failed, value)
      if (!stop && end < batch.length && performance.now() - started > BATCH_OVERDUE_MS) {
        giveBack(this.#release(batch.subarray(end)))
        stop = true
      }
    }
    return ran
  }
}

/** Reads the abort reason written by the executor (see `Msg.ABORT`). */
function readReason(buf: Buffer, at: number): unknown {
  if (at >= buf.length) return undefined
  const r = new Reader(buf, at)
  const status = r.u8()
  const v = r.value()
  return status === Status.ERROR ? rebuildError(v as any) : v
}

async function threadMain(data: ThreadWorkerData): Promise<void> {
  // Atomics.waitAsync does not keep a worker alive; this does, until we leave.
  const keepAlive = setInterval(noop, KEEP_ALIVE_MS)
  const bell = new Int32Array(data.bell)
  const status = new Int32Array(data.status)
  const port = parentPort!
  const { native } = require('./native') as typeof import('./native')
  const slot = new native.NativeExecutorSlot(data.poolId)
  // Shared memory: what queued tasks refer to arrives (in order) on the share
  // port before the tasks reach the queue, so a task's ids can be looked up
  // by reading the port synchronously.
  const shared = new Map<number, SharedArrayBuffer>(data.shared)
  const sharePort = data.sharePort
  const onShared = (m: SharedMessage): void => {
    if (m.sab !== undefined) shared.set(m.id, m.sab)
    else shared.delete(m.id)
  }
  sharePort.on('message', onShared)
  sharePort.unref()
  const resolveShared: ResolveHook = (id) => {
    for (;;) {
      const sab = shared.get(id)
      if (sab !== undefined) return sab
      const m = receiveMessageOnPort(sharePort)
      if (m === undefined) throw new Error(`greenthread: the shared memory ${id} of a task never reached its worker`)
      onShared(m.message as SharedMessage)
    }
  }
  const share: ShareHook = (sab) => {
    const id = Atomics.add(bell, SHARED_SEQ, 1) + 1
    sharePort.postMessage({ id, sab } satisfies SharedMessage)
    return id
  }
  // Moved values: a task's are asked for when the task is taken (whichever worker takes it).
  const fetching = new Map<number, { resolve: (list: readonly unknown[]) => void; reject: (err: Error) => void }>()
  const transfers: Transfers = {
    fetch: (id) =>
      new Promise((resolve, reject) => {
        fetching.set(id, { resolve, reject })
        port.postMessage({ type: TRANSFER_REQUEST, id } satisfies TransferMessage)
      }),
    next: () => Atomics.add(bell, SHARED_SEQ, 1) + 1,
    post: (id, list) => sharePort.postMessage({ id, moved: list as unknown[] } satisfies SharedMessage, list as TransferListItem[]),
  }
  const runner = new Runner(data.config, (id) => slot.definition(id) ?? undefined, resolveShared, transfers)
  port.on('message', (m: { type: string; id: number; reason: Uint8Array } | TransferMessage) => {
    if (m?.type === ABORT_REASON) runner.abort(m.id, readReason(Buffer.from((m as { reason: Uint8Array }).reason), 0))
    else if (m?.type === TRANSFER_REQUEST) {
      const waiting = fetching.get(m.id)
      fetching.delete(m.id)
      const { list, error } = m as TransferMessage
      if (list !== undefined) waiting?.resolve(list)
      else waiting?.reject(new Error(`greenthread: the values moved with the task never reached its worker${error ? `: ${error}` : ''}`))
    }
  })
  port.unref()
  const leave = (how: ExitStatus): void => {
    slot.detach()
    Atomics.store(status, 0, how)
    // Tasks given back by the slot may be waiting: wake the siblings.
    Atomics.add(bell, BELL, 1)
    Atomics.notify(bell, BELL)
    clearInterval(keepAlive)
    sharePort.close()
    // Now, not once the event loop is empty: a task or the module may have
    // left a timer or a socket open, and the pool waits for this exit.
    process.exit(0)
  }
  try {
    await runner.init()
  } catch (err) {
    const w = new Writer()
    writeThrown(w, err)
    port.postMessage({ type: 'init-failed', error: w.take() })
    leave(ExitStatus.INIT_FAILED)
    return
  }
  const out = new Writer(16 * 1024, share)
  const flush = (): void => {
    if (out.length > 0) {
      slot.complete(out.view())
      out.reset()
    }
  }
  const giveBack = (rest: Buffer): void => {
    // Those aborted meanwhile are not queued again: they end cancelled.
    writeCancelled(out, slot.giveBackHeld(rest))
    Atomics.add(bell, BELL, 1)
    Atomics.notify(bell, BELL)
  }
  const waitAsync = (Atomics as any).waitAsync as (a: Int32Array, i: number, v: number, ms?: number) => { async: boolean; value: Promise<unknown> | string }
  const idleMs = data.config.idleMs > 0 ? data.config.idleMs : Infinity
  let size = 1
  let remaining = data.config.maxTasks > 0 ? data.config.maxTasks : Infinity
  // The results written so far go out with the claim of the next task: one native call per task.
  const claim = (id: number): boolean => {
    if (out.length === 0) return slot.claim(id)
    const claimed = slot.completeAndClaim(out.view(), id)
    out.reset()
    return claimed
  }
  while (remaining > 0) {
    const seen = Atomics.load(bell, BELL)
    const batch = slot.takeHeld(Math.min(size, remaining))
    if (!Buffer.isBuffer(batch)) {
      if (Atomics.load(bell, CLOSED) !== 0) break
      // A sibling holds tasks that it may soon be too busy to start: look again then.
      const retryMs = typeof batch === 'number' ? Math.max(1, Math.ceil(batch)) : undefined
      const w = waitAsync(bell, BELL, seen, Math.min(retryMs ?? Infinity, idleMs))
      // Idle for options.idleTimeout: retire, as after maxTasksPerChild (the pool starts another when work comes).
      if (w.async && (await w.value) === 'timed-out' && Atomics.load(bell, BELL) === seen && retryMs === undefined) break
      continue
    }
    const t0 = performance.now()
    runner.admit(batch)
    const ran = await runner.runBatch(batch, out, flush, giveBack, claim)
    flush()
    remaining -= ran
    size = nextBatchSize(size, ran, performance.now() - t0)
  }
  leave(ExitStatus.CLEAN)
}

/** Sends one `[type][len][body]` message. */
export function sendMessage(sock: net.Socket, type: Msg, body?: Uint8Array): void {
  const header = Buffer.allocUnsafe(MSG_HEADER)
  header[0] = type
  header.writeUInt32LE(body?.length ?? 0, 1)
  if (body === undefined || body.length === 0) {
    sock.write(header)
    return
  }
  sock.cork()
  sock.write(header)
  sock.write(body)
  sock.uncork()
}

/**
 * Splits a byte stream into `[type][len][body]` messages. Chunks of an
 * incomplete message are kept as they come and joined once the message is
 * complete, so a message costs one copy however many chunks it arrives in.
 */
export class MessageParser {
  #chunks: Buffer[] = []
  #size = 0
  /** Bytes needed before the next message can be cut: its header, then all of it. */
  #need = MSG_HEADER

  constructor(private readonly onMessage: (type: Msg, body: Buffer) => void) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#size += chunk.length
    if (this.#size < this.#need) return
    let buf = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#size)
    this.#chunks = []
    this.#size = 0
    this.#need = MSG_HEADER
    while (buf.length >= MSG_HEADER) {
      const end = MSG_HEADER + buf.readUInt32LE(1)
      if (buf.length < end) {
        this.#need = end
        break
      }
      this.onMessage(buf[0] as Msg, buf.subarray(MSG_HEADER, end))
      buf = buf.subarray(end)
    }
    if (buf.length > 0) {
      this.#chunks.push(buf)
      this.#size = buf.length
    }
  }
}

function processMain(): void {
  // Die with the parent even while a task keeps this thread busy (the pipe
  // closing would only be noticed between tasks). The parent passes its pid.
  const parent = Number(process.argv[process.argv.indexOf(CHILD_FLAG) + 1])
  const { native } = require('./native') as typeof import('./native')
  native.dieWithParent(parent)
  // Reads here; a native thread writes (see the runtime's pipe module):
  // each result leaves as its task ends, even while the next one keeps this
  // thread busy, and fast results still go out merged.
  // On a descriptor of its own: a task closing or reopening fd 3 must not cut the channel or get its bytes.
  const fd = native.takePipeFd(3)
  const sock = new net.Socket({ fd, readable: true, writable: false })
  const writer = new native.NativePipeWriter(fd, Msg.RESULTS)
  const defs = new Map<number, Uint8Array>()
  const queue: Buffer[] = []
  let runner: Runner | undefined
  let closing = false
  let running = false
  const out = new Writer()
  let batchStart = 0
  const send = (last: boolean): void => {
    if (out.length === 0 && !last) return
    writer.results(last, last ? performance.now() - batchStart : 0, out.view())
    out.reset()
  }
  const flush = (): void => send(false)
  // Every task's results go to the writer before the next task starts.
  const claim = (): boolean => {
    flush()
    return true
  }
  const giveBack = (rest: Buffer): void => writer.message(Msg.RETURN, rest)
  const exit = (): void => {
    writer.finish()
    process.exit(0)
  }
  const drainQueue = async (): Promise<void> => {
    if (running || runner === undefined) return
    running = true
    while (queue.length > 0) {
      batchStart = performance.now()
      await runner.runBatch(queue.shift()!, out, flush, giveBack, claim)
      send(true)
    }
    running = false
    if (closing) exit()
  }
  const parser = new MessageParser((type, body) => {
    switch (type) {
      case Msg.INIT: {
        const config = new Reader(body).cloned() as WorkerConfig
        runner = new Runner(config, (id) => defs.get(id))
        runner.init().then(
          () => {
            writer.message(Msg.READY)
            void drainQueue()
          },
          (err: unknown) => {
            const w = new Writer()
            writeThrown(w, err)
            writer.message(Msg.INIT_FAILED, w.take())
            exit()
          },
        )
        break
      }
      case Msg.DEFS:
        forEachFrame(body, (id, start, end) => defs.set(id, Buffer.from(body.subarray(start, end))))
        break
      case Msg.TASKS:
        runner?.admit(body)
        queue.push(Buffer.from(body))
        void drainQueue()
        break
      case Msg.ABORT:
        runner?.abort(body.readUInt32LE(0), readReason(body, 4))
        break
      case Msg.CLOSE:
        closing = true
        if (!running) exit()
        break
    }
  })
  sock.on('data', (chunk: Buffer) => parser.push(chunk))
  // The parent is gone (or closed the pipe): nobody wants the results.
  sock.on('end', () => process.exit(0))
  sock.on('error', () => process.exit(0))
}

export const CHILD_FLAG = '--greenthread-executor-child'

/**
 * The head of a child's RESULTS message, before its result frames:
 * `[last u8][ms f64 LE]`: whether the batch is done, and then how long it
 * ran. The child's pipe writer (crates/runtime/src/pipe.rs) writes it.
 */
const RESULTS_HEAD = 1 + 8

export function readResultsHead(body: Buffer): { last: boolean; ms: number; frames: Buffer } {
  return { last: body[0] === 1, ms: body.readDoubleLE(1), frames: body.subarray(RESULTS_HEAD) }
}

export { ABORT_REASON }

if (!isMainThread && (workerData as ThreadWorkerData | undefined)?.greenthreadExecutor === true) {
  void threadMain(workerData as ThreadWorkerData)
} else if (isMainThread && require.main === module && process.argv.includes(CHILD_FLAG)) {
  processMain()
}
