/**
 * What `DistributedExecutor` and `runWorker` share: loading bullmq and
 * ioredis (lazily, so that importing greenthread never pays for them), the
 * Redis connection options, the first connection (which gives up, naming the
 * address, instead of reconnecting forever), and the wire format of
 * arguments, results and errors in job data. Internal.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import { debuglog } from 'node:util'
import * as v8 from 'node:v8'

import type * as BullMQ from 'bullmq'
import type IORedis from 'ioredis'

import { type ErrorRecord, errorRecord, rebuildError } from './_error-record'
import { checkOptions, checkTimerMs, invalidType, safeString } from './errors'

/** `NODE_DEBUG=greenthread` shows what the Redis side reports (errors while reconnecting, sweeps). */
/** @internal */
export const debug = debuglog('greenthread')

/** @internal */
export type RedisClient = IORedis

/** @internal */
export function loadBullmq(): typeof BullMQ {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('bullmq') as typeof BullMQ
}

function loadIORedis(): typeof IORedis {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require('ioredis') as { default?: typeof IORedis } & typeof IORedis
  return mod.default ?? mod
}

/** Where Redis is: `{ host, port }` (and any other ioredis option, such as `password`, `db` or `tls`) or a `redis://` / `rediss://` URL. */
export type RedisConnectionOptions = string | { host?: string; port?: number; username?: string; password?: string; db?: number; [option: string]: unknown }

/** @internal A checked connection: bullmq's form, ioredis' form, and the address for messages. */
export interface Connection {
  /** What bullmq's `connection` option takes. */
  bullmq: Record<string, unknown>
  url: string | undefined
  options: Record<string, unknown>
  /** The address, without credentials. */
  address: string
}

/** @internal */
export function checkConnection(name: string, value: unknown): Connection {
  if (typeof value === 'string') {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      throw new TypeError(`${name} must be a redis:// or rediss:// URL or { host, port }, got the string ${JSON.stringify(value.slice(0, 60))}`)
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new TypeError(`${name} must be a redis:// or rediss:// URL or { host, port }, got a ${url.protocol} URL`)
    }
    return { bullmq: { url: value }, url: value, options: {}, address: `${url.protocol}//${url.hostname || '127.0.0.1'}:${url.port || 6379}` }
  }
  if (value === null || typeof value !== 'object') throw invalidType(name, 'a redis:// URL or { host, port }', value)
  const o = value as Record<string, unknown>
  if (o.host !== undefined && (typeof o.host !== 'string' || o.host === '')) throw invalidType(`${name}.host`, 'a host name or address', o.host)
  if (o.port !== undefined) {
    if (typeof o.port !== 'number') throw invalidType(`${name}.port`, 'a port number', o.port)
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new RangeError(`${name}.port must be an integer from 1 to 65535, got ${o.port}`)
  }
  const options = { ...o }
  return { bullmq: { ...o }, url: undefined, options, address: `${(o.host as string | undefined) ?? '127.0.0.1'}:${(o.port as number | undefined) ?? 6379}` }
}

/** @internal */
export function checkQueueName(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw invalidType(name, 'a non-empty queue name', value)
  // bullmq builds its keys as `bull:<queue>:...`.
  if (value.includes(':')) throw new RangeError(`${name} must not contain ':', got ${JSON.stringify(value)}`)
  return value
}

/** @internal */
export function checkConnectTimeout(name: string, value: unknown): number {
  if (value === undefined) return 3000
  const ms = checkTimerMs(name, value)
  // No connection can answer in no time: 0 only ever failed, blaming Redis.
  if (ms < 1) throw new RangeError(`${name} must be at least 1 ms, got ${value}`)
  return ms
}

/** @internal Waits for `work`; rejects with an Error saying `what` did not happen if it has not settled within `ms`. */
export async function withDeadline(work: Promise<unknown>, ms: number, what: string): Promise<void> {
  if (!(await answersWithin(work, ms))) throw new Error(`${what} within ${ms} ms`)
}

/** @internal */
export function options(name: string, value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) throw invalidType(name, 'an options object', value)
  return checkOptions(name, value)
}

/**
 * A path (relative to the current directory), a `file:` URL or a package
 * name, as the URL that the local executors import.
 */
/** @internal */
export function resolveModule(name: string, value: unknown): string {
  if (value instanceof URL) return value.href
  if (typeof value !== 'string' || value === '') throw invalidType(name, 'a path, a URL or a package name', value)
  if (/^[a-z][a-z0-9+.-]+:/i.test(value) && !path.isAbsolute(value)) return value
  if (path.isAbsolute(value) || value.startsWith('.') || fs.existsSync(path.resolve(value))) return pathToFileURL(path.resolve(value)).href
  try {
    // A package name, resolved from the current directory as the user's own code would.
    return pathToFileURL(require.resolve(value, { paths: [process.cwd()] })).href
  } catch (err) {
    throw new TypeError(`${name} ${JSON.stringify(value)} is neither a path (start it with ./ or /) nor a package that can be found from ${process.cwd()}`, {
      cause: err,
    })
  }
}

/** A function a task name can stand for (a class cannot be called without new). */
/** @internal */
export function isTask(value: unknown): boolean {
  return typeof value === 'function' && !/^class\b/.test(Function.prototype.toString.call(value))
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** @internal Whether `attempt` resolves within `ms` (false: it was too late; its rejection is then dropped). */
export async function answersWithin(attempt: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms), false)))
  try {
    return await Promise.race([attempt.then(() => true), late])
  } finally {
    clearTimeout(timer)
    attempt.catch(() => {})
  }
}

/**
 * Connects a client of our own (not bullmq's), retrying for `timeoutMs`;
 * then fails with an Error naming the address, instead of ioredis'
 * reconnecting forever. Once connected, it reconnects like bullmq's own
 * connections. Its commands fail at once while it is disconnected (no
 * offline queue): the callers retry on their own schedule.
 */
/** @internal */
export async function connect(conn: Connection, timeoutMs: number): Promise<RedisClient> {
  const Redis = loadIORedis()
  let connected = false
  let lastError: unknown
  const options = {
    ...conn.options,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: Math.max(100, Math.min(timeoutMs, 10_000)),
    // Read at every reconnect: give up before the first connection, then keep trying.
    retryStrategy: (times: number) => (connected ? Math.min(100 * times, 1000) : null),
  }
  const client = conn.url !== undefined ? new Redis(conn.url, options) : new Redis(options)
  // connect() only says "Connection is closed"; the cause comes as an event.
  client.on('error', (err: unknown) => {
    lastError = err
    debug('redis %s: %s', conn.address, safeString((err as Error)?.message ?? err))
  })
  const deadline = performance.now() + timeoutMs
  for (;;) {
    try {
      // Bounded: a server that accepts the connection but never answers
      // leaves ioredis' ready check waiting with no timeout of its own.
      if (await answersWithin(client.connect(), deadline - performance.now())) {
        connected = true
        return client
      }
      lastError ??= new Error('the server accepted the connection but did not answer')
      break
    } catch (err) {
      lastError ??= err
    }
    const left = deadline - performance.now()
    if (left <= 0) break
    await delay(Math.min(200, left))
  }
  // Not once ioredis has given up ('end'): its disconnect() would arm a 2 s
  // timer for a stream that has closed already, and keep the process alive.
  // A server that took the connection and never answered would not close its
  // side either (the same timer): the stream, given up, is destroyed at once.
  if (client.status !== 'end') {
    client.disconnect()
    ;(client as { stream?: { destroy(): void } }).stream?.destroy()
  }
  const why = lastError instanceof Error ? lastError.message : safeString(lastError)
  throw new Error(`cannot connect to Redis at ${conn.address} (tried for ${timeoutMs} ms): ${why}`, { cause: lastError })
}

// --- wire format: v8 (structured clone) bytes, base64 in JSON job data ---

/**
 * One value as base64 of `v8.serialize`: a fresh serializer per message, so
 * nothing of one message (object identities, a transfer map) leaks into the
 * next. Throws v8's Error for what cannot be cloned.
 */
/** @internal */
export function encode(value: unknown): string {
  return v8.serialize(value).toString('base64')
}

/** @internal */
export function decode(text: unknown): unknown {
  if (typeof text !== 'string') throw new TypeError(`greenthread: a job carried ${safeString(typeof text)} where an encoded value belongs`)
  return v8.deserialize(Buffer.from(text, 'base64'))
}

/**
 * The arguments of a task, or a TypeError that names the one that cannot be
 * sent (`args[i]`, or what `naming` says).
 */
/** @internal */
export function encodeArgs(args: unknown[], name: (index: number) => string): string {
  try {
    return encode(args)
  } catch (err) {
    const at = args.findIndex((value) => {
      try {
        v8.serialize(value)
        return false
      } catch {
        return true
      }
    })
    const what = at < 0 ? 'the arguments' : name(at)
    throw new TypeError(`${what} cannot be sent through Redis: ${(err as Error).message} (arguments and results are structured clones: no functions, symbols or shared memory)`, {
      cause: err,
    })
  }
}

/** What a task threw (see src/_error-record.ts). */
/** @internal */
export function encodeError(err: unknown): string {
  try {
    return encode(errorRecord(err))
  } catch {
    return encode(errorRecord(new Error(`task threw a value that cannot be sent through Redis: ${safeString(err)}`)))
  }
}

/** @internal */
export function decodeError(text: string): unknown {
  return rebuildError(decode(text) as ErrorRecord)
}

/** What a job's data holds: `a` the encoded arguments; `e` the encoded error of the latest failed attempt. */
/** @internal */
export interface JobData {
  a: string
  e?: string
}
