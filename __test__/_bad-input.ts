/**
 * The adversarial input sweep run by `bad-input.spec.ts`: a table of calls
 * of every public function, constructor and method of both entries with
 * wrong types, NaN, negative and huge numbers, hostile objects, dead and
 * foreign greenlets, closed sockets, stopped executors and uncloneable
 * values, each with the outcome it must have.
 *
 * This module is also the child process that runs them (a crash or a hang
 * must fail one case, not the test runner):
 *
 *   node dist/__test__/_bad-input.js --list            one "index<TAB>area<TAB>id" line per case
 *   node dist/__test__/_bad-input.js --run 3,4,5       runs those cases, in order
 *
 * Per case it prints `BEGIN <index>` before the call and
 * `END <index> <json verdict>` after it (written synchronously, so that a
 * crash leaves the BEGIN of the case that caused it as the last line), then
 * `ALIVE` once a final greenlet round trip still works.
 */
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import * as vm from 'node:vm'
import { MessageChannel } from 'node:worker_threads'

type AsyncApi = typeof import('../index')
type SyncApi = typeof import('../sync')

/** Where the outcome must come from: a synchronous throw, a rejected Promise, or either. */
type How = 'throw' | 'reject' | 'either'

type Expect =
  /** A TypeError/RangeError whose message names `name` (an argument, `options.x`, `args[i]`...). */
  | { kind: 'arg'; cls: 'TypeError' | 'RangeError' | 'TypeOrRange'; name: string; how: How }
  /** An Error (of class `cls`, if given) whose message says what is wrong. */
  | { kind: 'state'; match: RegExp; cls?: string; how: How }
  /** Exactly this value is thrown or rejected with (the user's own error, an abort reason). */
  | { kind: 'is'; value: unknown; how: How }
  /** Succeeds; `check` returns a problem, or nothing. */
  | { kind: 'ok'; how: 'return' | 'resolve' | 'either'; check?: (value: any, fx: any) => string | undefined | Promise<string | undefined> }

export interface Case {
  area: string
  /** `sync` runs the call inside a sync greenlet; `sync-outside` loads greenthread/sync but calls from plain code. */
  mode: 'async' | 'sync' | 'sync-outside'
  label: string
  /** Fixtures, made in async code before the call; the call gets them as `fx`. */
  prep?: (env: Env) => unknown
  call: (fx: any, env: Env) => unknown
  expect: Expect
  /** Turns to wait after the call for late failures (unobserved-failure reports, link callbacks). */
  settleMs?: number
}

const CASE_MS = 4000

// ---------------------------------------------------------------- values

const revoked = (() => {
  const r = Proxy.revocable({}, {})
  r.revoke()
  return r.proxy
})()
const hostile = {
  'a null-prototype object': Object.create(null),
  'a revoked Proxy': revoked,
  'an object whose toPrimitive throws': {
    [Symbol.toPrimitive]() {
      throw new Error('toPrimitive called')
    },
  },
  'an object whose toStringTag getter throws': {
    get [Symbol.toStringTag](): string {
      throw new Error('toStringTag read')
    },
  },
} as Record<string, unknown>

/** Values of the wrong type for a number argument (never a number). */
const notNumbers: [string, unknown][] = [
  ['"10"', '10'],
  ['true', true],
  ['{}', {}],
  ['[]', []],
  ['10n', 10n],
  ['Symbol()', Symbol('s')],
  ['a function', () => 10],
  ...Object.entries(hostile),
]
/** Numbers no time in milliseconds can be. */
const badMs: [string, number][] = [
  ['-1', -1],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['-0.5', -0.5],
]
/** Numbers no positive integer (count, size) can be. */
const badPositiveInt: [string, number][] = [
  ['0', 0],
  ['-1', -1],
  ['1.5', 1.5],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
]
const badNonNegativeInt: [string, number][] = [
  ['-1', -1],
  ['1.5', 1.5],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-2**53', -(2 ** 53)],
]
/** Values of the wrong type for an options object (undefined and null mean defaults). */
const notOptions: [string, unknown][] = [
  ['5', 5],
  ['"x"', 'x'],
  ['true', true],
  ['Symbol()', Symbol('o')],
  ['10n', 10n],
  ['a function', () => ({})],
]
const notFunctions: [string, unknown][] = [
  ['undefined (left out)', undefined],
  ['5', 5],
  ['"fn"', 'fn'],
  ['null', null],
  ['{}', {}],
  ['Symbol()', Symbol('f')],
  ['10n', 10n],
  ...Object.entries(hostile),
]
const notSignals: [string, unknown][] = [
  ['{}', {}],
  ['5', 5],
  ['"abort"', 'abort'],
  ['an EventTarget', new EventTarget()],
  ['an AbortController', new AbortController()],
  ['a null-prototype object', Object.create(null)],
]
/** Not an iterable (greenlets, futures): the name, the value. */
const notIterables: [string, unknown][] = [
  ['null', null],
  ['5', 5],
  ['{}', {}],
  ['Symbol()', Symbol('i')],
  ['a function', () => []],
]
/** A huge time: finite and accepted, so a timer far in the future. */
const hugeMs: [string, number][] = [
  ['2**53', 2 ** 53],
  ['2**32+1', 2 ** 32 + 1],
  ['Number.MAX_VALUE', Number.MAX_VALUE],
]

function throwingIterable(error: Error): Iterable<unknown> {
  return {
    [Symbol.iterator]() {
      return {
        next(): IteratorResult<unknown> {
          throw error
        },
      }
    },
  }
}

// ---------------------------------------------------------------- expectations

const arg = (cls: 'TypeError' | 'RangeError' | 'TypeOrRange', name: string, how: How): Expect => ({ kind: 'arg', cls, name, how })
const state = (match: RegExp, how: How, cls?: string): Expect => ({ kind: 'state', match, how, cls })
const is = (value: unknown, how: How): Expect => ({ kind: 'is', value, how })
const ok = (how: 'return' | 'resolve' | 'either' = 'either', check?: (value: any, fx: any) => string | undefined | Promise<string | undefined>): Expect => ({
  kind: 'ok',
  how,
  check,
})

function eq(what: string, got: unknown, want: unknown): string | undefined {
  return Object.is(got, want) ? undefined : `${what}: expected ${String(want)}, got ${String(got)}`
}

// ---------------------------------------------------------------- fixtures

/** Per child process: the APIs and fixtures cases use. Cleanups run after each case. */
export class Env {
  readonly A: AsyncApi = require('../index')
  #S: SyncApi | undefined
  readonly cleanups: (() => unknown)[] = []
  #echo: number | undefined
  #pools = new Map<string, any>()

  get S(): SyncApi {
    return (this.#S ??= require('../sync'))
  }

  defer(fn: () => unknown): void {
    this.cleanups.push(fn)
  }

  async cleanup(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await within(Promise.resolve(fn()), 3000)
      } catch {
        // A fixture that fails to clean up must not fail the next case.
      }
    }
  }

  /** The port of an echo StreamServer shared by the child's cases. */
  echoPort(): number {
    if (this.#echo === undefined) {
      const server = new this.A.StreamServer({ port: 0 }, 'echo')
      server.start()
      this.#echo = server.address.port
    }
    return this.#echo
  }

  async socket(): Promise<any> {
    const sock = await this.A.connect('127.0.0.1', this.echoPort())
    this.defer(() => sock.close())
    return sock
  }

  async closedSocket(): Promise<any> {
    const sock = await this.socket()
    sock.close()
    return sock
  }

  /** A port nobody listens on (it was free a moment ago). */
  async refusedPort(): Promise<number> {
    const server = net.createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as net.AddressInfo).port
    await new Promise((resolve) => server.close(resolve))
    return port
  }

  /** A live async greenlet, sleeping. */
  alive(): any {
    const g = this.A.spawn(() => this.A.sleep(60_000))
    this.defer(() => g.kill(undefined, { block: false }))
    return g
  }

  async dead(): Promise<any> {
    const g = this.A.spawn(() => 'done')
    await g.join()
    return g
  }

  syncNew(): any {
    return new this.S.Greenlet(() => 'sync')
  }

  async syncDead(): Promise<any> {
    const g = this.S.spawn(() => 'sync done')
    await new Promise((resolve) => g.link(resolve))
    return g
  }

  syncAlive(): any {
    const g = this.S.spawn(() => this.S.sleep(60_000))
    this.defer(() => g.kill(undefined, { block: false }))
    return g
  }

  /** A working pool shared by the child's cases. */
  pool(kind: 'thread' | 'process'): any {
    let pool = this.#pools.get(kind)
    if (pool === undefined) {
      pool = kind === 'thread' ? new this.A.ThreadPoolExecutor({ maxWorkers: 1 }) : new this.A.ProcessPoolExecutor({ maxWorkers: 1 })
      this.#pools.set(kind, pool)
    }
    return pool
  }

  newPool(kind: 'thread' | 'process', options: object = { maxWorkers: 1 }): any {
    const pool = kind === 'thread' ? new this.A.ThreadPoolExecutor(options) : new this.A.ProcessPoolExecutor(options)
    this.defer(() => pool.destroy())
    return pool
  }

  async shutPool(kind: 'thread' | 'process'): Promise<any> {
    const pool = this.newPool(kind)
    await pool.shutdown()
    return pool
  }

  async destroyedPool(kind: 'thread' | 'process'): Promise<any> {
    const pool = this.newPool(kind)
    await pool.submit(() => 1).result()
    await pool.destroy()
    return pool
  }

  async brokenPool(kind: 'thread' | 'process'): Promise<any> {
    const pool = this.newPool(kind)
    await pool.submit(() => process.exit(7)).exception()
    return pool
  }

  async doneFuture(): Promise<any> {
    const f = this.pool('thread').submit(() => 'result')
    await f.result()
    return f
  }
}

/** Settles with the outcome of `p`, or `'pending'` after `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)))]).finally(() => clearTimeout(timer))
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as any).then === 'function'
}

/**
 * Runs a body written once for both modes: `yield x` stands for `await x`.
 * The async mode awaits what is yielded (and returns a Promise); in the sync
 * mode every call has already blocked, and a yielded Promise is waited for
 * with `block`.
 */
function drive(api: any, body: () => Generator<unknown, unknown, any>): unknown {
  const it = body()
  if (typeof api.block === 'function') {
    let step = it.next()
    while (!step.done) {
      let value: unknown
      try {
        value = isThenable(step.value) ? api.block(step.value) : step.value
      } catch (err) {
        step = it.throw(err)
        continue
      }
      step = it.next(value)
    }
    return step.value
  }
  return (async () => {
    let step = it.next()
    while (!step.done) {
      let value: unknown
      try {
        value = await step.value
      } catch (err) {
        step = it.throw(err)
        continue
      }
      step = it.next(value)
    }
    return step.value
  })()
}

/** For APIs that return an (async) iterator: calls `make` (a throw stays a throw) and returns its first `next()`. */
function firstNext(make: () => any): unknown {
  const it = make()
  return it.next()
}

// ---------------------------------------------------------------- the table

const cases: Case[] = []

/** Adds a case of one mode. */
function add(area: string, mode: Case['mode'], label: string, call: Case['call'], expect: Expect, more: Partial<Case> = {}): void {
  cases.push({ area, mode, label, call, expect, ...more })
}

/**
 * Adds the case to both modes: `call` gets the mode's API. A Promise
 * outcome of the async mode (`reject`, `resolve`) is a throw or a return in
 * the sync mode, where every call blocks.
 */
function both(
  area: string,
  label: string,
  call: (api: any, fx: any, env: Env) => unknown,
  expect: Expect,
  more: Partial<Case> & { syncPrep?: Case['prep']; inGreenlet?: boolean } = {},
): void {
  const { syncPrep, inGreenlet, ...rest } = more
  // Sync cases always run in a greenlet; async ones only when asked (then a throw is a rejection).
  const asyncCall: Case['call'] = inGreenlet ? (fx, env) => env.A.spawn(() => call(env.A, fx, env)).get() : (fx, env) => call(env.A, fx, env)
  add(area, 'async', label, asyncCall, expect, rest)
  const how = expect.how === 'reject' ? 'throw' : expect.how === 'resolve' ? 'return' : expect.how
  add(area, 'sync', label, (fx, env) => call(env.S, fx, env), { ...expect, how } as Expect, { ...rest, prep: syncPrep ?? rest.prep })
}

/** Every wrong type and bad number for a time argument (`optional`: undefined/null mean no limit). */
function msArg(area: string, label: (v: string) => string, name: string, call: (api: any, v: unknown, fx: any, env: Env) => unknown, how: How, more: Partial<Case> & { optional?: boolean; syncPrep?: Case['prep'] } = {}): void {
  const { optional, ...rest } = more
  for (const [text, v] of notNumbers) both(area, label(text), (api, fx, env) => call(api, v, fx, env), arg('TypeError', name, how), rest)
  for (const [text, v] of badMs) both(area, label(text), (api, fx, env) => call(api, v, fx, env), arg('RangeError', name, how), rest)
  if (optional === false) {
    for (const [text, v] of [['undefined', undefined], ['null', null]] as const) both(area, label(text), (api, fx, env) => call(api, v, fx, env), arg('TypeError', name, how), rest)
  }
}

function optionsArg(area: string, label: (v: string) => string, call: (api: any, v: unknown, fx: any, env: Env) => unknown, how: How, more: Partial<Case> & { syncPrep?: Case['prep']; name?: string } = {}): void {
  const { name = 'options', ...rest } = more
  for (const [text, v] of notOptions) both(area, label(text), (api, fx, env) => call(api, v, fx, env), arg('TypeError', name, how), rest)
}

function signalArg(area: string, label: (v: string) => string, call: (api: any, options: object, fx: any, env: Env) => unknown, how: How, more: Partial<Case> & { syncPrep?: Case['prep'] } = {}): void {
  for (const [text, v] of notSignals) both(area, label(`{ signal: ${text} }`), (api, fx, env) => call(api, { signal: v }, fx, env), arg('TypeError', 'options.signal', how), more)
  const reason = new Error(`aborted before ${label('…')}`)
  both(area, label('{ signal: aborted }'), (api, fx, env) => call(api, { signal: AbortSignal.abort(reason) }, fx, env), is(reason, how), more)
}

function fnArg(area: string, label: (v: string) => string, name: string, call: (api: any, v: unknown, fx: any, env: Env) => unknown, how: How, more: Partial<Case> & { syncPrep?: Case['prep']; only?: 'async' | 'sync' } = {}): void {
  const { only, ...rest } = more
  for (const [text, v] of notFunctions) {
    if (only === undefined) both(area, label(text), (api, fx, env) => call(api, v, fx, env), arg('TypeError', name, how), rest)
    else add(area, only, label(text), (fx, env) => call(only === 'async' ? env.A : env.S, v, fx, env), arg('TypeError', name, only === 'sync' && how === 'reject' ? 'throw' : how), rest)
  }
}

function intArg(
  area: string,
  label: (v: string) => string,
  name: string,
  call: (api: any, v: unknown, fx: any, env: Env) => unknown,
  how: How,
  bad: [string, number][],
  more: Partial<Case> & { syncPrep?: Case['prep']; only?: 'async' | 'sync' } = {},
): void {
  const { only, ...rest } = more
  const each = (text: string, v: unknown, expect: Expect): void => {
    if (only === undefined) both(area, label(text), (api, fx, env) => call(api, v, fx, env), expect, rest)
    else add(area, only, label(text), (fx, env) => call(only === 'async' ? env.A : env.S, v, fx, env), expect, rest)
  }
  for (const [text, v] of notNumbers) each(text, v, arg('TypeError', name, how))
  for (const [text, v] of bad) each(text, v, arg('RangeError', name, how))
}

function greenletListArg(area: string, label: (v: string) => string, call: (api: any, v: unknown, fx: any, env: Env) => unknown, how: How): void {
  for (const [text, v] of notIterables) both(area, label(text), (api, fx, env) => call(api, v, fx, env), arg('TypeError', 'greenlets', how))
  both(area, label('"abc" (a string)'), (api, fx, env) => call(api, 'abc', fx, env), arg('TypeError', 'greenlets', how))
  for (const [text, v] of [['[5]', [5]], ['[null]', [null]], ['[{}]', [{}]], ['new Set([5])', new Set([5])], ['[a Promise]', [Promise.resolve()]]] as const) {
    both(area, label(text), (api, fx, env) => call(api, v, fx, env), arg('TypeError', 'greenlets[0]', how))
  }
  const boom = new Error(`the iterable of ${label('…')} threw`)
  both(area, label('an iterable that throws'), (api, fx, env) => call(api, throwingIterable(boom), fx, env), is(boom, how))
  // Foreign: a greenlet of the other mode.
  add(area, 'async', label('[a sync Greenlet]'), (fx, env) => call(env.A, [fx], fx, env), arg('TypeError', 'greenlets[0]', how), { prep: (env) => env.syncNew() })
  add(area, 'sync', label('[an async Greenlet]'), (fx, env) => call(env.S, [fx], fx, env), arg('TypeError', 'greenlets[0]', 'throw'), { prep: (env) => env.alive() })
}

// ---- greenlets
{
  const area = 'greenlet'
  fnArg(area, (v) => `spawn(fn=${v})`, 'fn', (api, v) => api.spawn(v), 'throw')
  fnArg(area, (v) => `new Greenlet(fn=${v})`, 'fn', (api, v) => new api.Greenlet(v), 'throw')
  fnArg(area, (v) => `Greenlet.spawn(fn=${v})`, 'fn', (api, v) => api.Greenlet.spawn(v), 'throw')
  fnArg(area, (v) => `spawnLater(10, fn=${v})`, 'fn', (api, v) => api.spawnLater(10, v), 'throw')
  msArg(area, (v) => `spawnLater(ms=${v}, fn)`, 'ms', (api, v) => api.spawnLater(v, () => 1), 'throw', { optional: false })
  msArg(area, (v) => `new Greenlet(fn).startLater(ms=${v})`, 'ms', (api, v) => new api.Greenlet(() => 1).startLater(v), 'throw', { optional: false })
  for (const [text, v] of hugeMs) {
    both(area, `spawnLater(ms=${text}, fn) is accepted and killable before it starts`, (api) =>
      drive(api, function* () {
        let ran = false
        const g = api.spawnLater(v, () => (ran = true))
        yield g.kill()
        return [g.dead, ran]
      }), ok('either', (r) => (r[0] === true && r[1] === false ? undefined : `dead, ran: ${r}`)))
    both(area, `sleep(ms=${text}) in a greenlet is accepted; a kill ends it`, (api) =>
      drive(api, function* () {
        let caught: unknown
        const g = api.spawn(() =>
          drive(api, function* () {
            try {
              yield api.sleep(v)
            } catch (err) {
              caught = err
              throw err
            }
          }),
        )
        yield api.sleep(5)
        const start = Date.now()
        yield g.kill()
        return [caught instanceof api.GreenletExit, Date.now() - start]
      }), ok('either', (r) => (r[0] === true && r[1] < 2000 ? undefined : `GreenletExit raised: ${r[0]}, kill took ${r[1]} ms`)))
  }
  msArg(area, (v) => `sleep(ms=${v})`, 'ms', (api, v) => api.sleep(v), 'reject')
  both(area, 'sleep(ms=null)', (api) => api.sleep(null), arg('TypeError', 'ms', 'reject'))
  both(area, 'sleep(Number.MIN_VALUE) is a short sleep', (api) => api.sleep(Number.MIN_VALUE), ok())
  both(area, 'sleep(-0) is sleep(0)', (api) => api.sleep(-0), ok())

  // join / get / kill on live, dead, foreign greenlets
  msArg(area, (v) => `alive.join(timeoutMs=${v})`, 'timeoutMs', (_api, v, g) => g.join(v), 'reject', { prep: (env) => env.alive(), syncPrep: (env) => env.syncAlive() })
  msArg(area, (v) => `dead.join(timeoutMs=${v})`, 'timeoutMs', (_api, v, g) => g.join(v), 'reject', { prep: (env) => env.dead(), syncPrep: (env) => env.syncDead() })
  for (const [text, v] of hugeMs) {
    both(area, `dead.join(timeoutMs=${text}) is true`, (_api, g) => g.join(v), ok('either', (r) => eq('join', r, true)), { prep: (env) => env.dead(), syncPrep: (env) => env.syncDead() })
    both(area, `alive.join(timeoutMs=${text}) waits and is true once it ends`, (api) =>
      drive(api, function* () {
        const g = api.spawn(() => api.sleep(20))
        return yield g.join(v)
      }), ok('either', (r) => eq('join', r, true)))
  }
  optionsArg(area, (v) => `alive.get(options=${v})`, (_api, v, g) => g.get(v), 'reject', { prep: (env) => env.alive(), syncPrep: (env) => env.syncAlive() })
  msArg(area, (v) => `alive.get({ timeoutMs: ${v} })`, 'options.timeoutMs', (_api, v, g) => g.get({ timeoutMs: v }), 'reject', { prep: (env) => env.alive(), syncPrep: (env) => env.syncAlive() })
  both(area, 'alive.get({ block: false }) is a Timeout saying it has not finished', (_api, g) => g.get({ block: false }), state(/has not finished/, 'reject', 'Timeout'), {
    prep: (env) => env.alive(),
    syncPrep: (env) => env.syncAlive(),
  })
  both(area, 'dead.get() is its value', (_api, g) => g.get(), ok('either', (v) => (v === 'done' || v === 'sync done' ? undefined : `value ${v}`)), {
    prep: (env) => env.dead(),
    syncPrep: (env) => env.syncDead(),
  })
  optionsArg(area, (v) => `alive.kill(undefined, options=${v})`, (_api, v, g) => g.kill(undefined, v), 'reject', { prep: (env) => env.alive(), syncPrep: (env) => env.syncAlive() })
  msArg(area, (v) => `alive.kill(undefined, { timeoutMs: ${v} })`, 'options.timeoutMs', (_api, v, g) => g.kill(undefined, { timeoutMs: v }), 'reject', {
    prep: (env) => env.alive(),
    syncPrep: (env) => env.syncAlive(),
  })
  both(area, 'dead.kill(new Error()) changes nothing', (api, g) =>
    drive(api, function* () {
      yield g.kill(new Error('late'))
      return g.successful()
    }), ok('either', (r) => eq('successful', r, true)), { prep: (env) => env.dead(), syncPrep: (env) => env.syncDead() })
  both(area, 'kill(a Symbol) of a sleeping greenlet makes it fail with the Symbol', (api) =>
    drive(api, function* () {
      const reason = Symbol('reason')
      const g = api.spawn(() => api.sleep(60_000))
      yield api.sleep(1)
      yield g.kill(reason)
      return g.exception === reason && g.dead
    }), ok('either', (r) => eq('failed with the symbol', r, true)), { settleMs: 20 })
  both(area, 'dead.start() and dead.startLater(5) change nothing', (_api, g) => g.start().startLater(5).dead, ok('return', (r) => eq('dead', r, true)), {
    prep: (env) => env.dead(),
    syncPrep: (env) => env.syncDead(),
  })
  // link() also takes an object with a callback (an AsyncResult): it reads `callback` of objects.
  const trapped = new Error('a property of the link target was read')
  const trapping = new Proxy({}, {
    get() {
      throw trapped
    },
  })
  for (const method of ['link', 'linkValue', 'linkException']) {
    for (const [text, v] of notFunctions.filter(([, x]) => x !== revoked)) {
      both(area, `g.${method}(callback=${text})`, (_api, g) => g[method](v), arg('TypeError', 'callback', 'throw'), { prep: (env) => env.dead(), syncPrep: (env) => env.syncDead() })
    }
    both(area, `g.${method}(an object whose property reads throw) throws that error`, (_api, g) => g[method](trapping), is(trapped, 'throw'), {
      prep: (env) => env.dead(),
      syncPrep: (env) => env.syncDead(),
    })
  }
  both(area, 'g.unlink(5) of a callback never linked changes nothing', (_api, g) => g.unlink(5), ok('return'), { prep: (env) => env.dead(), syncPrep: (env) => env.syncDead() })
  for (const [text, v] of [['5', 5], ['null', null], ['a Symbol', Symbol('n')], ['a null-prototype object', Object.create(null)]] as const) {
    both(area, `g.name = ${text}`, (api) => {
      new api.Greenlet(() => 1).name = v
    }, arg('TypeError', 'name', 'throw'))
  }
  both(area, 'g.name = "" is accepted', (api) => {
    const g = new api.Greenlet(() => 1)
    g.name = ''
    return String(g)
  }, ok('return'))

  // switch / throw
  both(area, 'dead.switch() says it has finished', (_api, g) => g.switch(), state(/has finished/, 'reject'), { prep: (env) => env.dead(), syncPrep: (env) => env.syncDead() })
  {
    // As in greenlet: a dead greenlet "dies again", raising err in the caller.
    const err = new Error('thrown into a dead greenlet')
    both(area, 'dead.throw(err) raises err', (_api, g) => g.throw(err), is(err, 'reject'), { prep: (env) => env.dead(), syncPrep: (env) => env.syncDead() })
  }
  both(area, 'alive.switch() says it is not suspended in switch()', (_api, g) => g.switch(), state(/not suspended in switch/, 'reject'), {
    prep: (env) => env.alive(),
    syncPrep: (env) => env.syncAlive(),
  })
  {
    const err = new Error('thrown into a new greenlet')
    both(area, 'new Greenlet(fn).throw(err) kills it without running and raises err', (api) => new api.Greenlet(() => 1).throw(err), is(err, 'reject'))
  }
  add(area, 'async', 'a greenlet joining itself is told it cannot', (_fx, env) => env.A.spawn(() => env.A.getcurrent()!.join()).get(), state(/cannot join itself/, 'reject'))
  add(area, 'sync', 'a greenlet joining itself is told it cannot', (_fx, env) => env.S.getcurrent()!.join(), state(/cannot join itself/, 'throw'))
  add(area, 'async', 'joinall([current]) in a greenlet is told it would wait forever', (_fx, env) => env.A.spawn(() => env.A.joinall([env.A.getcurrent()!])).get(), state(/would wait forever/, 'reject'))
  add(area, 'sync', 'joinall([current]) in a greenlet is told it would wait forever', (_fx, env) => env.S.joinall([env.S.getcurrent()!]), state(/would wait forever/, 'throw'))
  {
    const reason = new Error('suicide')
    add(area, 'async', 'getcurrent().kill(err) rejects at once with err', (_fx, env) => env.A.spawn(() => env.A.getcurrent()!.kill(reason)).get(), is(reason, 'reject'))
    add(area, 'sync', 'getcurrent().kill(err) throws err at once', (_fx, env) => env.S.getcurrent()!.kill(reason), is(reason, 'throw'))
  }
  // Foreign greenlets: the other mode's.
  add(area, 'async', 'an async greenlet calling switch() of a sync greenlet is told switch() blocks', (g, env) => env.A.spawn(() => g.switch()).get(), state(/blocks, and only code running in a sync greenlet/, 'reject'), {
    prep: (env) => env.syncNew(),
  })
  add(area, 'sync-outside', 'sync Greenlet.switch() from plain code is told it blocks', (g) => g.switch(), state(/blocks, and only code running in a sync greenlet/, 'throw'), {
    prep: (env) => env.syncNew(),
  })
  add(area, 'sync', 'an async greenlet joined from a sync greenlet (async join returns a Promise)', (g) => g.join(), ok('resolve', (r) => eq('join', r, true)), { prep: (env) => env.dead() })

  // joinall / killall
  greenletListArg(area, (v) => `joinall(${v})`, (api, v) => api.joinall(v), 'reject')
  greenletListArg(area, (v) => `killall(${v})`, (api, v) => api.killall(v), 'reject')
  optionsArg(area, (v) => `joinall([g], options=${v})`, (api, v, g) => api.joinall([g], v), 'reject', { prep: (env) => env.dead(), syncPrep: (env) => env.syncDead() })
  optionsArg(area, (v) => `killall([g], options=${v})`, (api, v, g) => api.killall([g], v), 'reject', { prep: (env) => env.dead(), syncPrep: (env) => env.syncDead() })
  msArg(area, (v) => `joinall([alive], { timeoutMs: ${v} })`, 'options.timeoutMs', (api, v, g) => api.joinall([g], { timeoutMs: v }), 'reject', {
    prep: (env) => env.alive(),
    syncPrep: (env) => env.syncAlive(),
  })
  msArg(area, (v) => `killall([alive], { timeoutMs: ${v} })`, 'options.timeoutMs', (api, v, g) => api.killall([g], { timeoutMs: v }), 'reject', {
    prep: (env) => env.alive(),
    syncPrep: (env) => env.syncAlive(),
  })
  intArg(area, (v) => `joinall([alive], { count: ${v} })`, 'options.count', (api, v, g) => api.joinall([g], { count: v }), 'reject', badNonNegativeInt, {
    prep: (env) => env.alive(),
    syncPrep: (env) => env.syncAlive(),
  })
  both(area, 'joinall([alive], { count: 2**53, timeoutMs: 2**53 }) waits for all', (api) =>
    drive(api, function* () {
      const gs = [api.spawn(() => api.sleep(5)), api.spawn(() => 1)]
      return (yield api.joinall(gs, { count: 2 ** 53, timeoutMs: 2 ** 53 })).length
    }), ok('either', (n) => eq('finished', n, 2)))
  both(area, 'joinall([]) and killall([]) are immediate', (api) =>
    drive(api, function* () {
      return [yield api.joinall([]), yield api.killall([])]
    }), ok())
  both(area, 'joinall([dead, dead]) (the same greenlet twice) returns both', (api, g) => api.joinall([g, g]), ok('either', (r) => eq('length', r.length, 2)), {
    prep: (env) => env.dead(),
    syncPrep: (env) => env.syncDead(),
  })
}

// ---- Timeout, gather, waitFor, configure
{
  const area = 'timeout'
  msArg(area, (v) => `new Timeout(ms=${v})`, 'ms', (api, v) => new api.Timeout(v), 'throw')
  msArg(area, (v) => `Timeout.startNew(ms=${v})`, 'ms', (api, v) => api.Timeout.startNew(v), 'throw')
  for (const [text, v] of hugeMs) {
    both(area, `new Timeout(${text}) keeps its ms`, (api) => new api.Timeout(v).ms, ok('return', (ms) => eq('ms', ms, v)))
    both(area, `Timeout.startNew(${text}) in a greenlet, then cancel()`, (api) => {
      const t = api.Timeout.startNew(v)
      const pending = t.pending
      t.cancel()
      return [pending, t.pending]
    }, ok('either', (r) => (r[0] === true && r[1] === false ? undefined : `pending before/after cancel: ${r}`)), { inGreenlet: true })
    both(area, `Timeout.run(${text}, fn) returns fn's value`, (api) => api.Timeout.run(v, () => 7), ok('either', (r) => eq('value', r, 7)))
  }
  add(area, 'async', 'Timeout.startNew(10) outside greenlets says it needs one', (_fx, env) => env.A.Timeout.startNew(10), state(/must be called inside a running greenlet/, 'throw'))
  add(area, 'sync-outside', 'sync Timeout.startNew(10) outside greenlets says it needs one', (_fx, env) => env.S.Timeout.startNew(10), state(/must be called inside a sync greenlet/, 'throw'))
  msArg(area, (v) => `Timeout.run(ms=${v}, fn)`, 'ms', (api, v) => api.Timeout.run(v, () => 1), 'reject')
  fnArg(area, (v) => `Timeout.run(10, fn=${v})`, 'fn', (api, v) => api.Timeout.run(10, v), 'reject')
  optionsArg(area, (v) => `Timeout.run(10, fn, options=${v})`, (api, v) => api.Timeout.run(10, () => 1, v), 'reject')
  {
    const custom = new Error('custom timeout exception')
    both(area, 'Timeout.run(5, slow, { exception }) raises exactly that exception', (api) => api.Timeout.run(5, () => api.sleep(5000), { exception: custom }), is(custom, 'reject'))
  }
  add(area, 'sync-outside', 'sync Timeout.run() from plain code is told it blocks', (_fx, env) => env.S.Timeout.run(10, () => 1), state(/blocks, and only code running in a sync greenlet/, 'throw'))

  const tasks = 'tasks'
  // A last plain object is gather's options: only non-objects can be wrong awaitables there.
  for (const [text, v] of notFunctions.filter(([, x]) => x !== null && typeof x !== 'object')) {
    add(tasks, 'async', `gather(${text})`, (_fx, env) => env.A.gather(v as any), arg('TypeError', 'awaitables[0]', 'reject'))
    add(tasks, 'async', `gather(Promise, ${text})`, (_fx, env) => env.A.gather(Promise.resolve(1), v as any), arg('TypeError', 'awaitables[1]', 'reject'))
    add(tasks, 'async', `gather(${text}, Promise)`, (_fx, env) => env.A.gather(v as any, Promise.resolve(1)), arg('TypeError', 'awaitables[0]', 'reject'))
  }
  for (const [text, v] of [['{}', {}], ['a null-prototype object', Object.create(null)]] as const) {
    add(tasks, 'async', `gather(${text}, Promise) (not last: an awaitable)`, (_fx, env) => env.A.gather(v as any, Promise.resolve(1)), arg('TypeError', 'awaitables[0]', 'reject'))
  }
  for (const [text, v] of notFunctions.filter(([, x]) => x !== revoked)) {
    add(tasks, 'async', `waitFor(${text}, 10)`, (_fx, env) => env.A.waitFor(v as any, 10), arg('TypeError', 'awaitable', 'reject'))
  }
  add(tasks, 'async', 'gather(a sync Greenlet) (foreign)', (g, env) => env.A.gather(g), arg('TypeError', 'awaitables[0]', 'reject'), { prep: (env) => env.syncNew() })
  add(tasks, 'async', 'waitFor(a sync Greenlet, 10) (foreign)', (g, env) => env.A.waitFor(g, 10), arg('TypeError', 'awaitable', 'reject'), { prep: (env) => env.syncNew() })
  for (const [text, v] of notOptions.filter(([, x]) => typeof x !== 'function')) {
    add(tasks, 'async', `gather(fn, options=${text}) takes ${text} as an awaitable`, (_fx, env) => env.A.gather(() => 1, v as any), arg('TypeError', 'awaitables[1]', 'reject'))
  }
  add(tasks, 'async', 'gather(fn, { returnExceptions: true }) puts the failure in the results', (_fx, env) => env.A.gather(() => Promise.reject(new Error('f')), { returnExceptions: true }), ok('resolve', (r) => (r[0] instanceof Error ? undefined : `results ${r}`)))
  add(tasks, 'async', 'gather() of nothing is []', (_fx, env) => env.A.gather(), ok('resolve', (r) => eq('length', r.length, 0)))
  for (const [text, v] of [...notNumbers, ...badMs]) {
    add(tasks, 'async', `waitFor(Promise, timeoutMs=${text})`, (_fx, env) => env.A.waitFor(Promise.resolve(1), v as any), arg(typeof v === 'number' ? 'RangeError' : 'TypeError', 'timeoutMs', 'reject'))
  }
  for (const [text, v] of hugeMs) {
    add(tasks, 'async', `waitFor(fn, ${text}) returns its value`, (_fx, env) => env.A.waitFor(() => 3, v), ok('resolve', (r) => eq('value', r, 3)))
    add(tasks, 'async', `waitFor(Promise, ${text}) returns its value`, (_fx, env) => env.A.waitFor(Promise.resolve(4), v), ok('resolve', (r) => eq('value', r, 4)))
  }
  add(tasks, 'async', 'waitFor(dead greenlet, 10) returns its value', (g, env) => env.A.waitFor(g, 10), ok('resolve', (r) => eq('value', r, 'done')), { prep: (env) => env.dead() })

  const config = 'config'
  for (const [text, v] of notOptions) add(config, 'async', `configure(options=${text})`, (_fx, env) => env.A.configure(v as any), arg('TypeError', 'options', 'throw'))
  add(config, 'async', 'configure() with nothing changes nothing', (_fx, env) => (env.A.configure as any)(), ok('return'))
  for (const [text, v] of notNumbers) add(config, 'async', `configure({ workers: ${text} })`, (_fx, env) => env.A.configure({ workers: v as any }), arg('TypeError', 'options.workers', 'throw'))
  for (const [text, v] of [...badPositiveInt, ['2**53', 2 ** 53], ['2**32+1', 2 ** 32 + 1], ['257', 257]] as [string, number][]) {
    add(config, 'async', `configure({ workers: ${text} })`, (_fx, env) => env.A.configure({ workers: v }), arg('RangeError', 'options.workers', 'throw'))
  }
  add(config, 'async', 'configure({ workers: 2 }) after the runtime started says it has started', async (_fx, env) => {
    // Only native work starts the runtime (a built-in handler's server, an executor); greenlets and sockets do not.
    const server = new env.A.StreamServer({ port: 0 }, 'echo')
    server.start()
    await server.stop()
    return env.A.configure({ workers: 2 })
  }, state(/already started/, 'reject', 'RangeError'))
  add(config, 'async', 'runtimeInfo() describes the runtime', (_fx, env) => env.A.runtimeInfo(), ok('return', (r) => (typeof r.workers === 'number' ? undefined : `runtimeInfo ${JSON.stringify(r)}`)))
}

// ---- Event, AsyncResult
{
  const area = 'event'
  const kinds = [
    ['Event.wait', (api: any, o: unknown) => new api.Event().wait(o)],
    ['AsyncResult.get', (api: any, o: unknown) => new api.AsyncResult().get(o)],
    ['AsyncResult.wait', (api: any, o: unknown) => new api.AsyncResult().wait(o)],
  ] as const
  for (const [name, call] of kinds) {
    optionsArg(area, (v) => `${name}(options=${v})`, (api, v) => call(api, v), 'reject')
    msArg(area, (v) => `${name}({ timeoutMs: ${v} })`, 'options.timeoutMs', (api, v) => call(api, { timeoutMs: v }), 'reject')
    signalArg(area, (v) => `${name}(${v})`, (api, o) => call(api, o), 'reject')
    for (const [text, v] of hugeMs) {
      both(area, `${name}({ timeoutMs: ${text} }) waits until set`, (api) =>
        drive(api, function* () {
          const e = name === 'Event.wait' ? new api.Event() : new api.AsyncResult()
          const waiter = api.spawn(() => (name === 'AsyncResult.get' ? e.get({ timeoutMs: v }) : e.wait({ timeoutMs: v })))
          yield api.sleep(2)
          if (name === 'Event.wait') e.set()
          else e.set('v')
          return yield waiter.get()
        }), ok('either', (r) => (r === true || r === 'v' ? undefined : `got ${r}`)))
    }
  }
  for (const [text, v] of [['undefined', undefined], ['null', null], ['5', 5], ['{}', {}]] as const) {
    both(area, `AsyncResult.callback(${text})`, (api) => new api.AsyncResult().callback(v), arg('TypeError', 'source', 'throw'))
  }
  both(area, 'AsyncResult.get({ block: false }) before set is a Timeout saying it is not ready', (api) => new api.AsyncResult().get({ block: false }), state(/not ready/, 'reject', 'Timeout'))
  {
    const stored = Symbol('stored exception')
    both(area, 'AsyncResult.setException(a Symbol) is raised by get()', (api) => {
      const r = new api.AsyncResult()
      r.setException(stored)
      return r.get()
    }, is(stored, 'reject'))
  }
  both(area, 'AsyncResult.set(a function, a Symbol) keeps values as they are (no cloning)', (api) => {
    const r = new api.AsyncResult()
    const value = [() => 1, Symbol('v')]
    r.set(value)
    return r.get().then ? r.get().then((got: unknown) => got === value) : r.get() === value
  }, ok('either', (r) => eq('same value', r, true)))
  add(area, 'sync-outside', 'sync Event.wait() from plain code is told it blocks', (_fx, env) => new env.S.Event().wait(), state(/Event\.wait\(\) blocks/, 'throw'))
  add(area, 'sync-outside', 'sync AsyncResult.get() from plain code is told it blocks', (_fx, env) => new env.S.AsyncResult().get(), state(/AsyncResult\.get\(\) blocks/, 'throw'))
}

// ---- queues
{
  const area = 'queue'
  const ctors = ['Queue', 'LifoQueue', 'PriorityQueue', 'JoinableQueue'] as const
  for (const ctor of ctors) {
    optionsArg(area, (v) => `new ${ctor}(options=${v})`, (api, v) => new api[ctor](v), 'throw')
    intArg(area, (v) => `new ${ctor}({ maxsize: ${v} })`, 'options.maxsize', (api, v) => new api[ctor]({ maxsize: v }), 'throw', badPositiveInt.filter(([t]) => t !== 'Infinity'))
    for (const [text, v] of [['2**53', 2 ** 53], ['2**32+1', 2 ** 32 + 1], ['Infinity', Infinity]] as const) {
      both(area, `new ${ctor}({ maxsize: ${text} }) holds items`, (api) => {
        const q = new api[ctor]({ maxsize: v })
        q.putNowait(1)
        q.putNowait(2)
        return [q.maxsize, q.qsize(), q.full()]
      }, ok('return', (r) => (r[0] === v && r[1] === 2 && r[2] === false ? undefined : `maxsize, qsize, full: ${r}`)))
    }
  }
  for (const [text, v] of notFunctions.filter(([, x]) => x !== null && x !== undefined)) {
    both(area, `new PriorityQueue({ compare: ${text} })`, (api) => new api.PriorityQueue({ compare: v }), arg('TypeError', 'options.compare', 'throw'))
  }
  const ops = [
    ['put', (q: any, o: unknown) => q.put('x', o), () => ({ maxsize: 1 }), (q: any) => q.putNowait('full')],
    ['get', (q: any, o: unknown) => q.get(o), () => undefined, () => undefined],
    ['JoinableQueue.join', (q: any, o: unknown) => q.join(o), () => undefined, (q: any) => q.putNowait('unfinished')],
  ] as const
  for (const [name, call, options, fill] of ops) {
    const make = (api: any): any => {
      const q = name === 'JoinableQueue.join' ? new api.JoinableQueue(options()) : new api.Queue(options())
      fill(q)
      return q
    }
    optionsArg(area, (v) => `${name}(options=${v})`, (api, v) => call(make(api), v), 'reject')
    msArg(area, (v) => `${name}({ timeoutMs: ${v} })`, 'options.timeoutMs', (api, v) => call(make(api), { timeoutMs: v }), 'reject')
    signalArg(area, (v) => `${name}(${v})`, (api, o) => call(make(api), o), 'reject')
    for (const [text, v] of hugeMs.slice(0, 1)) {
      both(area, `${name}({ timeoutMs: ${text} }) waits until it can go on`, (api) =>
        drive(api, function* () {
          const q = make(api)
          const g = api.spawn(() => call(q, { timeoutMs: v }))
          yield api.sleep(2)
          if (name === 'put') q.getNowait()
          else if (name === 'get') q.putNowait('item')
          else {
            q.getNowait()
            q.taskDone()
          }
          return yield g.get()
        }), ok('either', (r) => (r === undefined || r === 'item' || r === true ? undefined : `got ${r}`)))
    }
  }
  both(area, 'putNowait() on a full queue is QueueFull', (api) => {
    const q = new api.Queue({ maxsize: 1 })
    q.putNowait(1)
    q.putNowait(2)
  }, state(/full/, 'throw', 'QueueFull'))
  both(area, 'getNowait() on an empty queue is QueueEmpty', (api) => new api.Queue().getNowait(), state(/empty/, 'throw', 'QueueEmpty'))
  both(area, 'Channel.putNowait() without a waiting getter is QueueFull', (api) => new api.Channel().putNowait(1), state(/full/, 'throw', 'QueueFull'))
  both(area, 'Channel.getNowait() without a waiting putter is QueueEmpty', (api) => new api.Channel().getNowait(), state(/empty/, 'throw', 'QueueEmpty'))
  both(area, 'taskDone() more often than items were put says so', (api) => new api.JoinableQueue().taskDone(), state(/taskDone\(\) called more times/, 'throw'))
  both(area, 'put() after shutdown() is QueueShutDown', (api) => {
    const q = new api.Queue()
    q.shutdown()
    return q.put(1)
  }, state(/shut down/, 'reject', 'QueueShutDown'))
  both(area, 'putNowait() after shutdown() is QueueShutDown', (api) => {
    const q = new api.Queue()
    q.shutdown()
    q.putNowait(1)
  }, state(/shut down/, 'throw', 'QueueShutDown'))
  both(area, 'get() on a drained, shut-down queue is QueueShutDown', (api) => {
    const q = new api.Queue()
    q.shutdown()
    return q.get()
  }, state(/shut down/, 'reject', 'QueueShutDown'))
  both(area, 'uncloneable items (functions, Symbols) pass through a queue as they are', (api) => {
    const q = new api.Queue()
    const items = [() => 1, Symbol('item')]
    for (const item of items) q.putNowait(item)
    return q.getNowait() === items[0] && q.getNowait() === items[1]
  }, ok('return', (r) => eq('same items', r, true)))
  {
    const broken = new Error('compare broke')
    both(area, 'a PriorityQueue compare that throws fails that put with its error', (api) => {
      const q = new api.PriorityQueue({
        compare: () => {
          throw broken
        },
      })
      q.putNowait(1)
      q.putNowait(2)
    }, is(broken, 'throw'))
  }
  add(area, 'sync-outside', 'sync Queue.get() from plain code is told it blocks', (_fx, env) => new env.S.Queue().get(), state(/Queue\.get\(\) blocks/, 'throw'))
  add(area, 'sync-outside', 'sync Queue.put() on a full queue from plain code is told it blocks', (_fx, env) => {
    const q = new env.S.Queue({ maxsize: 1 })
    q.putNowait(1)
    q.put(2)
  }, state(/Queue\.put\(\) blocks/, 'throw'))
}

// ---- locks
{
  const area = 'lock'
  for (const ctor of ['Semaphore', 'BoundedSemaphore'] as const) {
    intArg(area, (v) => `new ${ctor}(value=${v})`, 'value', (api, v) => new api[ctor](v), 'throw', badNonNegativeInt)
    for (const [text, v] of [['null', null]] as const) both(area, `new ${ctor}(value=${text})`, (api) => new api[ctor](v), arg('TypeError', 'value', 'throw'))
    for (const [text, v] of [['2**53', 2 ** 53], ['2**32+1', 2 ** 32 + 1], ['0', 0]] as const) {
      both(area, `new ${ctor}(${text}) counts its permits`, (api) => {
        const s = new api[ctor](v)
        return [s.value, s.tryAcquire()]
      }, ok('return', (r) => (r[0] === v && r[1] === (v > 0) ? undefined : `value, tryAcquire: ${r}`)))
    }
  }
  const locks = [
    ['Semaphore', (api: any) => new api.Semaphore(0)],
    ['Lock', (api: any) => {
      const l = new api.Lock()
      l.tryAcquire()
      return l
    }],
    ['RLock', (api: any) => new api.RLock()],
  ] as const
  for (const [name, make] of locks) {
    for (const method of ['acquire', 'guard'] as const) {
      optionsArg(area, (v) => `${name}.${method}(options=${v})`, (api, v) => make(api)[method](v), 'reject')
      msArg(area, (v) => `${name}.${method}({ timeoutMs: ${v} })`, 'options.timeoutMs', (api, v) => make(api)[method]({ timeoutMs: v }), 'reject')
      signalArg(area, (v) => `${name}.${method}(${v})`, (api, o) => make(api)[method](o), 'reject')
    }
    if (name !== 'RLock') {
      both(area, `${name}.acquire({ timeoutMs: 2**53 }) waits for a release`, (api) =>
        drive(api, function* () {
          const l = make(api)
          const g = api.spawn(() => l.acquire({ timeoutMs: 2 ** 53 }))
          yield api.sleep(2)
          l.release()
          return yield g.get()
        }), ok('either', (r) => eq('acquired', r, true)))
    }
  }
  both(area, 'BoundedSemaphore released more than acquired says so', (api) => new api.BoundedSemaphore(1).release(), state(/released more times than it was acquired/, 'throw'))
  both(area, 'Lock released while unlocked says so', (api) => new api.Lock().release(), state(/released more times than it was acquired/, 'throw'))
  both(area, 'RLock released by a greenlet that does not hold it says so', (api) => new api.RLock().release(), state(/does not hold/, 'throw'))
  both(area, 'RLock held by another greenlet, released here, says so', (api) =>
    drive(api, function* () {
      const l = new api.RLock()
      yield api.spawn(() => l.acquire()).join()
      l.release()
    }), state(/does not hold/, 'either'))
  both(area, 'a guard disposed twice releases once', (api) =>
    drive(api, function* () {
      const l = new api.Lock()
      const guard = yield l.guard()
      guard[Symbol.dispose]()
      guard[Symbol.dispose]()
      return l.locked()
    }), ok('either', (r) => eq('locked', r, false)))
  add(area, 'sync-outside', 'sync Lock.acquire() from plain code is told it blocks', (_fx, env) => {
    const l = new env.S.Lock()
    l.tryAcquire()
    l.acquire()
  }, state(/Semaphore\.acquire\(\) blocks/, 'throw'))
}

// ---- groups and pools
{
  const area = 'pool'
  // A Pool's size, as gevent's: undefined, null and Infinity are no limit; 0 is a pool nothing fits in.
  intArg(area, (v) => `new Pool(size=${v})`, 'size', (api, v) => new api.Pool(v), 'throw', badNonNegativeInt.filter(([t]) => t !== 'Infinity'))
  for (const [text, v] of [['undefined', undefined], ['null', null], ['Infinity', Infinity]] as const) {
    both(area, `new Pool(size=${text}) has no limit`, (api) => new api.Pool(v).size, ok('return', (n) => eq('size', n, Infinity)))
  }
  both(area, 'new Pool(size=0) is valid and full', (api) => new api.Pool(0).full(), ok('return', (full) => eq('full()', full, true)))
  for (const [text, v] of [['2**53', 2 ** 53], ['2**32+1', 2 ** 32 + 1]] as const) {
    both(area, `new Pool(${text}) runs greenlets`, (api) =>
      drive(api, function* () {
        const p = new api.Pool(v)
        const g = yield p.spawn(() => 5)
        return [p.free() === v - 1 || p.free() === v, yield g.get()]
      }), ok('either', (r) => (r[0] === true && r[1] === 5 ? undefined : `free ok, value: ${r}`)))
  }
  const groups = [
    ['Group', (api: any) => new api.Group(), 'throw'],
    ['Pool', (api: any) => new api.Pool(2), 'reject'],
  ] as const
  for (const [name, make, spawnHow] of groups) {
    fnArg(area, (v) => `${name}.spawn(fn=${v})`, 'fn', (api, v) => make(api).spawn(v), spawnHow)
    for (const [text, v] of [['5', 5], ['null', null], ['{}', {}], ['a Promise', Promise.resolve()]] as const) {
      both(area, `${name}.add(greenlet=${text})`, (api) => make(api).add(v), arg('TypeError', 'greenlet', spawnHow))
    }
    add(area, 'async', `${name}.add(a sync Greenlet) (foreign)`, (g, env) => make(env.A).add(g), arg('TypeError', 'greenlet', spawnHow), { prep: (env) => env.syncNew() })
    add(area, 'sync', `${name}.add(an async Greenlet) (foreign)`, (g, env) => make(env.S).add(g), arg('TypeError', 'greenlet', 'throw'), { prep: (env) => env.alive() })
    both(area, `${name}.add(dead) adds nothing`, (_api, g, env) => {
      const group = make(g.constructor === env.A.Greenlet ? env.A : env.S)
      const added = group.add(g)
      return isThenable(added) ? (added as Promise<void>).then(() => group.length) : group.length
    }, ok('either', (n) => eq('length', n, 0)), { prep: (env) => env.dead(), syncPrep: (env) => env.syncDead() })
    optionsArg(area, (v) => `${name}.join(options=${v})`, (api, v) => make(api).join(v), 'reject')
    msArg(area, (v) => `${name}.join({ timeoutMs: ${v} })`, 'options.timeoutMs', (api, v) => make(api).join({ timeoutMs: v }), 'reject')
    signalArg(area, (v) => `${name}.join(${v})`, (api, o) => make(api).join(o), 'reject')
    optionsArg(area, (v) => `${name}.kill(options=${v})`, (api, v) => make(api).kill(v), 'reject')
    fnArg(area, (v) => `${name}.map(fn=${v}, [1])`, 'fn', (api, v) => make(api).map(v, [1]), 'reject')
    for (const [text, v] of notIterables) {
      both(area, `${name}.map(fn, iterable=${text})`, (api) => make(api).map((x: unknown) => x, v), arg('TypeError', 'iterable', 'reject'))
    }
    for (const method of ['imap', 'imapUnordered'] as const) {
      fnArg(area, (v) => `${name}.${method}(fn=${v}, [1]) (the first next())`, 'fn', (api, v) => firstNext(() => make(api)[method](v, [1])), 'either')
      for (const [text, v] of notIterables) {
        both(area, `${name}.${method}(fn, iterable=${text}) (the first next())`, (api) => firstNext(() => make(api)[method]((x: unknown) => x, v)), arg('TypeError', 'iterable', 'either'))
      }
      optionsArg(area, (v) => `${name}.${method}(fn, [1], options=${v}) (the first next())`, (api, v) => firstNext(() => make(api)[method]((x: unknown) => x, [1], v)), 'either')
      intArg(
        area,
        (v) => `${name}.${method}(fn, [1], { maxsize: ${v} }) (the first next())`,
        'options.maxsize',
        (api, v) => firstNext(() => make(api)[method]((x: unknown) => x, [1], { maxsize: v })),
        'either',
        badPositiveInt.filter(([t]) => t !== 'Infinity'),
      )
    }
    {
      const boom = new Error(`the input of ${name}.map threw`)
      both(area, `${name}.map(fn, an iterable that throws) fails with its error`, (api) => make(api).map((x: unknown) => x, throwingIterable(boom)), is(boom, 'reject'))
    }
    both(area, `${name}.map(fn, [a function, a Symbol]) passes items as they are`, (api) => {
      const items = [() => 1, Symbol('x')]
      const r = make(api).map((x: unknown) => x, items)
      const check = (got: unknown[]): boolean => got[0] === items[0] && got[1] === items[1]
      return isThenable(r) ? (r as Promise<unknown[]>).then(check) : check(r as unknown[])
    }, ok('either', (r) => eq('same items', r, true)))
  }
  add(area, 'sync-outside', 'sync Pool.spawn() on a full pool from plain code is told it blocks', (_fx, env) => {
    const pool = new env.S.Pool(1)
    const first = pool.spawn(() => env.S.sleep(60_000))
    env.defer(() => first.kill(undefined, { block: false }))
    return pool.spawn(() => 1)
  }, state(/Pool\.spawn\(\) blocks/, 'throw'))
  add(area, 'sync-outside', 'sync Pool.spawn() with a free slot works from plain code (it does not block)', (_fx, env) => new env.S.Pool(1).spawn(() => 1), ok('return'))
  add(area, 'sync-outside', 'sync Group.join() from plain code is told it blocks', (_fx, env) => {
    const group = new env.S.Group()
    group.spawn(() => env.S.sleep(10))
    return group.join()
  }, state(/Group\.join\(\) blocks/, 'throw'))
}

// ---- sockets and servers
{
  const area = 'socket'
  for (const [text, v] of [['42', 42], ['""', ''], ['null', null], ['undefined', undefined], ['Symbol()', Symbol('h')], ['{}', {}], ['a revoked Proxy', revoked]] as const) {
    both(area, `connect(host=${text}, 80)`, (api) => api.connect(v, 80), arg('TypeError', 'host', 'reject'))
  }
  for (const [text, v] of notNumbers) both(area, `connect("127.0.0.1", port=${text})`, (api) => api.connect('127.0.0.1', v), arg('TypeError', 'port', 'reject'))
  for (const [text, v] of [
    ['0', 0],
    ['-1', -1],
    ['65536', 65536],
    ['1.5', 1.5],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['2**53', 2 ** 53],
    ['2**32+1', 2 ** 32 + 1],
    ['2**32+80 (wraps to 80 as a u32)', 2 ** 32 + 80],
  ] as const) {
    both(area, `connect("127.0.0.1", port=${text})`, (api) => api.connect('127.0.0.1', v), arg('RangeError', 'port', 'reject'))
  }
  for (const [text, v] of [['undefined', undefined], ['null', null]] as const) both(area, `connect("127.0.0.1", port=${text})`, (api) => api.connect('127.0.0.1', v), arg('TypeError', 'port', 'reject'))
  optionsArg(area, (v) => `connect(host, port, options=${v})`, (api, v, _fx, env) => api.connect('127.0.0.1', env.echoPort(), v), 'reject')
  msArg(area, (v) => `connect(host, port, { timeoutMs: ${v} })`, 'options.timeoutMs', (api, v, _fx, env) => api.connect('127.0.0.1', env.echoPort(), { timeoutMs: v }), 'reject')
  for (const [text, v] of hugeMs) {
    both(area, `connect(host, port, { timeoutMs: ${text} }) connects`, (api, _fx, env) => {
      const sock = api.connect('127.0.0.1', env.echoPort(), { timeoutMs: v })
      const done = (s: any): boolean => (s.close(), true)
      return isThenable(sock) ? (sock as Promise<unknown>).then(done) : done(sock)
    }, ok('either', (r) => eq('connected', r, true)))
  }
  both(area, 'connect() to a port nobody listens on is ECONNREFUSED', (api, port) => api.connect('127.0.0.1', port), state(/ECONNREFUSED/, 'reject'), { prep: (env) => env.refusedPort() })
  both(area, 'connect("localhost", port) connects', (api, _fx, env) => {
    const sock = api.connect('localhost', env.echoPort())
    const done = (s: any): boolean => (s.close(), true)
    return isThenable(sock) ? (sock as Promise<unknown>).then(done) : done(sock)
  }, ok('either', (r) => eq('connected', r, true)))
  add(area, 'sync-outside', 'sync connect() from plain code is told it blocks', (_fx, env) => env.S.connect('127.0.0.1', env.echoPort()), state(/connect\(\) blocks/, 'throw'))

  // Methods of an open socket: async sockets are made before the call; sync ones inside the greenlet.
  const open = { prep: (env: Env) => env.socket() }
  const openSync = (env: Env): any => {
    const sock = env.S.connect('127.0.0.1', env.echoPort())
    env.defer(() => sock.close())
    return sock
  }
  const sockCase = (label: string, call: (sock: any, api: any) => unknown, expect: Expect): void => {
    add(area, 'async', label, (sock, env) => call(sock, env.A), expect, open)
    const how = expect.how === 'reject' ? 'throw' : expect.how === 'resolve' ? 'return' : expect.how
    add(area, 'sync', label, (_fx, env) => call(openSync(env), env.S), { ...expect, how } as Expect)
  }
  for (const [text, v] of notNumbers) sockCase(`sock.recv(maxBytes=${text})`, (s) => s.recv(v), arg('TypeError', 'maxBytes', 'reject'))
  for (const [text, v] of [...badPositiveInt, ['2**31+1', 2 ** 31 + 1], ['2**53', 2 ** 53], ['2**32+1', 2 ** 32 + 1]] as [string, number][]) {
    sockCase(`sock.recv(maxBytes=${text})`, (s) => s.recv(v), arg('RangeError', 'maxBytes', 'reject'))
  }
  sockCase('sock.recv(maxBytes=2**31) after a send gets the bytes', (s, api) =>
    drive(api, function* () {
      yield s.sendall('ping')
      return yield s.recv(2 ** 31)
    }), ok('either', (b) => eq('echo', String(b), 'ping')))
  for (const [text, v] of notNumbers) sockCase(`sock.recvExactly(n=${text})`, (s) => s.recvExactly(v), arg('TypeError', 'n', 'reject'))
  for (const [text, v] of [['-1', -1], ['1.5', 1.5], ['NaN', NaN], ['Infinity', Infinity], ['2**53', 2 ** 53], ['2**31+1', 2 ** 31 + 1]] as [string, number][]) {
    sockCase(`sock.recvExactly(n=${text})`, (s) => s.recvExactly(v), arg('RangeError', 'n', 'reject'))
  }
  sockCase('sock.recvExactly(0) is an empty Buffer', (s) => s.recvExactly(0), ok('either', (b) => eq('length', b.length, 0)))
  for (const [text, v] of [
    ['5', 5],
    ['null', null],
    ['undefined', undefined],
    ['{}', {}],
    ['[1, 2]', [1, 2]],
    ['Symbol()', Symbol('d')],
    ['10n', 10n],
    ['an ArrayBuffer', new ArrayBuffer(4)],
    ['a DataView', new DataView(new ArrayBuffer(4))],
    ['a revoked Proxy', revoked],
    ['a null-prototype object', Object.create(null)],
  ] as const) {
    sockCase(`sock.sendall(data=${text})`, (s) => s.sendall(v), arg('TypeError', 'data', 'reject'))
  }
  sockCase('sock.sendall("") and an empty Buffer send nothing', (s, api) =>
    drive(api, function* () {
      yield s.sendall('')
      yield s.sendall(Buffer.alloc(0))
      yield s.sendall('after')
      return yield s.recv()
    }), ok('either', (b) => eq('echo', String(b), 'after')))
  sockCase('sock.sendall(a Uint8Array of another realm) sends it', (s, api) =>
    drive(api, function* () {
      yield s.sendall(vm.runInNewContext('new Uint8Array([111, 107])'))
      return yield s.recv()
    }), ok('either', (b) => eq('echo', String(b), 'ok')))
  for (const [text, v] of [...notNumbers, ...badMs] as [string, unknown][]) {
    sockCase(`sock.setTimeout(ms=${text})`, (s) => s.setTimeout(v), arg(typeof v === 'number' ? 'RangeError' : 'TypeError', 'ms', 'throw'))
  }
  for (const [text, v] of hugeMs) {
    sockCase(`sock.setTimeout(${text}) then an echo round trip`, (s, api) =>
      drive(api, function* () {
        s.setTimeout(v)
        yield s.sendall('hi')
        return yield s.recv()
      }), ok('either', (b) => eq('echo', String(b), 'hi')))
  }
  for (const [text, v] of [['"sideways"', 'sideways'], ['"toString"', 'toString'], ['null', null], ['{}', {}], ['Symbol()', Symbol('w')]] as const) {
    sockCase(`sock.shutdown(how=${text})`, (s) => s.shutdown(v), arg('TypeError', 'how', 'throw'))
  }
  for (const [text, v] of [['3', 3], ['-1', -1], ['1.5', 1.5], ['NaN', NaN]] as const) sockCase(`sock.shutdown(how=${text})`, (s) => s.shutdown(v), arg('RangeError', 'how', 'throw'))
  // Closed sockets.
  const closedCase = (label: string, call: (sock: any) => unknown, expect: Expect): void => {
    add(area, 'async', `closed ${label}`, (sock) => call(sock), expect, { prep: (env) => env.closedSocket() })
    const how = expect.how === 'reject' ? 'throw' : expect.how === 'resolve' ? 'return' : expect.how
    add(area, 'sync', `closed ${label}`, (_fx, env) => {
      const sock = openSync(env)
      sock.close()
      return call(sock)
    }, { ...expect, how } as Expect)
  }
  closedCase('sock.recv() is EBADF', (s) => s.recv(), state(/EBADF/, 'reject'))
  closedCase('sock.recvExactly(4) is EBADF', (s) => s.recvExactly(4), state(/EBADF/, 'reject'))
  closedCase('sock.sendall("x") is EBADF', (s) => s.sendall('x'), state(/EBADF/, 'reject'))
  closedCase('sock.shutdown("write") is EBADF', (s) => s.shutdown('write'), state(/EBADF/, 'throw'))
  closedCase('sock.close() again changes nothing', (s) => s.close(), ok('return'))
  closedCase('sock.setTimeout(10) is accepted', (s) => s.setTimeout(10), ok('return'))
  closedCase('sock.recv(maxBytes=-1) still names maxBytes', (s) => s.recv(-1), arg('RangeError', 'maxBytes', 'reject'))
  closedCase('sock addresses and toString() still work', (s) => [s.localAddress, s.remoteAddress, String(s)], ok('return', (r) => (/closed/.test(r[2]) ? undefined : `toString ${r[2]}`)))
  add(area, 'async', 'closed sock: for await ends with EBADF', async (sock) => {
    for await (const _chunk of sock) return 'yielded'
  }, state(/EBADF/, 'reject'), { prep: (env) => env.closedSocket() })
  for (const [text, v] of [['Socket', 'Socket']] as const) {
    both(area, `new ${text}() from user code says how to get one`, (api) => new api[v](), state(/cannot be constructed directly/, 'throw', 'TypeError'))
  }

  const server = 'server'
  for (const [text, v] of [['null', null], ['5', 5], ['"port"', 'port'], ['undefined', undefined], ['Symbol()', Symbol('l')]] as const) {
    both(server, `new StreamServer(listener=${text}, "echo")`, (api) => new api.StreamServer(v, 'echo'), arg('TypeError', 'listener', 'throw'))
  }
  for (const [text, v] of [...notNumbers, ['undefined', undefined], ['null', null]] as [string, unknown][]) {
    both(server, `new StreamServer({ port: ${text} }, "echo")`, (api) => new api.StreamServer({ port: v }, 'echo'), arg('TypeError', 'listener.port', 'throw'))
  }
  for (const [text, v] of [['-1', -1], ['65536', 65536], ['1.5', 1.5], ['NaN', NaN], ['Infinity', Infinity], ['2**53', 2 ** 53], ['2**32+1', 2 ** 32 + 1]] as const) {
    both(server, `new StreamServer({ port: ${text} }, "echo")`, (api) => new api.StreamServer({ port: v }, 'echo'), arg('RangeError', 'listener.port', 'throw'))
  }
  // null and undefined mean the default host.
  for (const [text, v] of [['5', 5], ['{}', {}], ['Symbol()', Symbol('h')]] as const) {
    both(server, `new StreamServer({ port: 0, host: ${text} }, "echo")`, (api) => new api.StreamServer({ port: 0, host: v }, 'echo'), arg('TypeError', 'listener.host', 'throw'))
  }
  for (const [text, v] of [['"example.invalid"', 'example.invalid'], ['"999.1.1.1"', '999.1.1.1'], ['" 127.0.0.1"', ' 127.0.0.1'], ['"127.1"', '127.1']] as const) {
    both(server, `StreamServer({ port: 0, host: ${text} }).start()`, (api) => new api.StreamServer({ port: 0, host: v }, 'echo').start(), arg('TypeError', 'listener.host', 'throw'))
  }
  for (const [text, v] of notNumbers) {
    both(server, `new StreamServer({ port: 0, backlog: ${text} }, "echo")`, (api) => new api.StreamServer({ port: 0, backlog: v }, 'echo'), arg('TypeError', 'listener.backlog', 'throw'))
  }
  for (const [text, v] of badPositiveInt) {
    both(server, `new StreamServer({ port: 0, backlog: ${text} }, "echo")`, (api) => new api.StreamServer({ port: 0, backlog: v }, 'echo'), arg('RangeError', 'listener.backlog', 'throw'))
  }
  // A huge backlog is what the kernel allows (somaxconn), as with 2^31; it must not wrap around as a u32 (2^32 + 1 would listen with 1).
  // As in Node, an empty host is every interface.
  add(server, 'async', 'StreamServer({ port: 0, host: "" }) listens on every interface', (_fx, env) => {
    const s = new env.A.StreamServer({ port: 0, host: '' }, 'echo')
    s.start()
    env.defer(() => s.stop())
    return s.address.address
  }, ok('return', (a) => eq('address', a, '0.0.0.0')))
  for (const [text, v] of [['2**31', 2 ** 31], ['2**32+1', 2 ** 32 + 1], ['2**53', 2 ** 53], ['2**40+5', 2 ** 40 + 5]] as const) {
    add(server, 'async', `StreamServer({ port: 0, backlog: ${text} }) listens with the kernel's maximum backlog`, (_fx, env) => {
      const s = new env.A.StreamServer({ port: 0, backlog: v }, 'echo')
      s.start()
      env.defer(() => s.stop())
      return listenBacklog(s.address.port)
    }, ok('return', (backlog) => eq('listen backlog (ss Send-Q)', backlog, somaxconn())))
  }
  for (const [text, v] of [['5', 5], ['null', null], ['{}', {}], ['"ECHO"', 'ECHO'], ['""', '']] as const) {
    both(server, `new StreamServer({ port: 0 }, handler=${text})`, (api) => new api.StreamServer({ port: 0 }, v), arg(typeof v === 'string' ? 'RangeError' : 'TypeError', 'handler', 'throw'))
  }
  both(server, 'StreamServer.start() twice says it has started', (api) => {
    const s = new api.StreamServer({ port: 0 }, 'echo')
    s.start()
    try {
      s.start()
    } finally {
      s.stop()
    }
  }, state(/already started/, 'throw'))
  both(server, 'StreamServer on a busy port is EADDRINUSE', (api, _fx, env) => new api.StreamServer({ port: env.echoPort() }, 'echo').start(), state(/EADDRINUSE/, 'throw'))
  for (const stopped of [false, true]) {
    const what = stopped ? 'a stopped' : 'a never started'
    optionsArg(server, (v) => `${what} StreamServer.stop(options=${v})`, (api, v) => {
      const s = new api.StreamServer({ port: 0 }, 'echo')
      if (stopped) {
        s.start()
        s.stop()
      }
      return s.stop(v)
    }, 'reject')
  }
  msArg(server, (v) => `StreamServer.stop({ timeoutMs: ${v} })`, 'options.timeoutMs', (api, v) => new api.StreamServer({ port: 0 }, 'echo').stop({ timeoutMs: v }), 'reject')
  both(server, 'StreamServer.stop() twice changes nothing', (api) => {
    const s = new api.StreamServer({ port: 0 }, 'echo')
    s.start()
    const first = s.stop()
    const second = s.stop()
    return isThenable(first) ? Promise.all([first, second]).then(() => s.closed) : s.closed
  }, ok('either', (closed) => eq('closed', closed, true)))
  optionsArg(server, (v) => `StreamServer.serveForever(stop=${v})`, (api, v) => new api.StreamServer({ port: 0 }, 'echo').serveForever(v), 'reject', { name: 'stop' })
  msArg(server, (v) => `StreamServer.serveForever({ timeoutMs: ${v} })`, 'stop.timeoutMs', (api, v) => new api.StreamServer({ port: 0 }, 'echo').serveForever({ timeoutMs: v }), 'reject')
  for (const [text, v] of [['5', 5], ['{ timeoutMs: -1 }', { timeoutMs: -1 }]] as const) {
    both(server, `serveForever(stop=${text}) fails before it starts the server`, (api) => {
      const s = new api.StreamServer({ port: 0 }, 'echo')
      const after = (err: unknown): unknown[] => {
        const started = s.started
        if (started) void s.stop()
        return [err instanceof Error ? `${err.name}: ${err.message}` : 'no error', started]
      }
      let outcome: unknown
      try {
        outcome = s.serveForever(v)
      } catch (err) {
        return after(err)
      }
      return isThenable(outcome) ? (outcome as Promise<unknown>).then(() => after(undefined), after) : after(undefined)
    }, ok('either', (r) => (/Error: stop(\.timeoutMs)? must be/.test(r[0]) && r[1] === false ? undefined : `error, started: ${r}`)), {
      syncPrep: undefined,
    })
  }
  add(server, 'sync-outside', 'sync StreamServer.stop() from plain code is told it blocks', (_fx, env) => {
    const s = new env.S.StreamServer({ port: 0 }, 'echo')
    s.start()
    env.defer(() => new Promise((resolve) => env.S.run(() => s.stop()).then(resolve, resolve)))
    s.stop()
  }, state(/stop\(\) blocks/, 'throw'))
}

// ---- executors
{
  const area = 'executor'
  const kinds = [
    ['ThreadPoolExecutor', 'thread'],
    ['ProcessPoolExecutor', 'process'],
  ] as const
  for (const [ctor, kind] of kinds) {
    const a = (label: string, call: (fx: any, env: Env) => unknown, expect: Expect, more: Partial<Case> = {}): void => add(area, 'async', `${ctor}: ${label}`, call, expect, more)
    for (const [text, v] of notOptions) a(`new (options=${text})`, (_fx, env) => new env.A[ctor](v as any), arg('TypeError', 'options', 'throw'))
    for (const option of ['maxWorkers', 'maxTasksPerChild'] as const) {
      for (const [text, v] of [...notNumbers, ['null', null]] as [string, unknown][]) a(`new ({ ${option}: ${text} })`, (_fx, env) => new env.A[ctor]({ [option]: v }), arg('TypeError', `options.${option}`, 'throw'))
      for (const [text, v] of badPositiveInt) a(`new ({ ${option}: ${text} })`, (_fx, env) => new env.A[ctor]({ [option]: v }), arg('RangeError', `options.${option}`, 'throw'))
    }
    a('new ({ maxWorkers: 2**53, maxTasksPerChild: 2**32+1 }) runs tasks', (_fx, env) => {
      const pool = env.newPool(kind, { maxWorkers: 2 ** 53, maxTasksPerChild: 2 ** 32 + 1 })
      return pool.submit((x: number) => x + 1, 1).result()
    }, ok('resolve', (r) => eq('result', r, 2)))
    for (const [text, v] of [['5', 5], ['"a"', 'a'], ['{ length: 1 }', { length: 1 }], ['null', null]] as const) {
      a(`new ({ initargs: ${text} })`, (_fx, env) => new env.A[ctor]({ initargs: v as any }), arg('TypeError', 'options.initargs', 'throw'))
    }
    for (const [text, v] of [['[() => 1]', [() => 1]], ['[Symbol()]', [Symbol('i')]], ['[new WeakMap()]', [new WeakMap()]], ['[a Proxy]', [new Proxy({}, {})]]] as const) {
      a(`new ({ initializer, initargs: ${text} }) (uncloneable)`, (_fx, env) => new env.A[ctor]({ initializer: () => undefined, initargs: v as unknown as unknown[] }), arg('TypeError', 'options.initargs', 'throw'))
    }
    for (const [text, v] of [['5', 5], ['{}', {}], ['null', null], ['Symbol()', Symbol('i')]] as const) {
      a(`new ({ initializer: ${text} })`, (_fx, env) => new env.A[ctor]({ initializer: v as any }), arg('TypeError', 'options.initializer', 'throw'))
    }
    a('new ({ initializer: "init" }) without options.module says so', (_fx, env) => new env.A[ctor]({ initializer: 'init' }), state(/options\.module is not set/, 'throw', 'TypeError'))
    a('new ({ initializer: Math.max }) (native) says it cannot be sent', (_fx, env) => new env.A[ctor]({ initializer: Math.max }), arg('TypeError', 'options.initializer', 'throw'))
    for (const [text, v] of [['5', 5], ['""', ''], ['{}', {}], ['null', null]] as const) a(`new ({ module: ${text} })`, (_fx, env) => new env.A[ctor]({ module: v as any }), arg('TypeError', 'options.module', 'throw'))
    a('a module path that does not exist is refused at construction, naming it', (_fx, env) => env.newPool(kind, { maxWorkers: 1, module: '/nonexistent/greenthread-module.mjs' }), arg('TypeError', 'options.module', 'throw'))
    a('a module URL that does not exist fails the task that needs it, clearly', (_fx, env) => env.newPool(kind, { maxWorkers: 1, module: 'file:///nonexistent/greenthread-module.mjs' }).submit('f').result(), state(/nonexistent\/greenthread-module\.mjs|Cannot find module/, 'reject'))

    // submit / submitWith / map on a working pool
    for (const [text, v] of [...notFunctions.filter(([, x]) => typeof x !== 'string'), ['Math.max (native)', Math.max], ['a bound function', (() => 1).bind(null)]] as [string, unknown][]) {
      a(`submit(fn=${text})`, (_fx, env) => env.pool(kind).submit(v), arg('TypeError', 'fn', 'throw'))
    }
    a('submit(a class) says a class cannot be called', (_fx, env) => env.pool(kind).submit(class Task {} as any), arg('TypeError', 'fn', 'throw'))
    a('submit("name") without options.module says so', (_fx, env) => env.pool(kind).submit('square'), state(/options\.module is not set/, 'throw', 'TypeError'))
    for (const [text, v, at] of [
      ['() => 1', () => 1, 0],
      ['Symbol()', Symbol('a'), 0],
      ['{ f() {} }', { f() {} }, 0],
      ['new WeakMap()', new WeakMap(), 0],
      ['a Proxy', new Proxy({}, {}), 0],
      ['1, 2, () => 3 (the third)', () => 3, 2],
      ['[() => 1] (nested)', [() => 1], 0],
    ] as const) {
      a(`submit(fn, ${text}) (uncloneable argument)`, (_fx, env) => {
        const args = at === 2 ? [1, 2, v] : [v]
        return env.pool(kind).submit((...xs: unknown[]) => xs.length, ...args)
      }, arg('TypeError', `args[${at}]`, 'throw'))
    }
    a('submit(fn, an uncloneable argument) leaves the pool working', async (_fx, env) => {
      const pool = env.pool(kind)
      try {
        pool.submit((x: unknown) => x, () => 1)
      } catch {
        // expected
      }
      return pool.submit((x: number) => x * 2, 21).result()
    }, ok('resolve', (r) => eq('result', r, 42)))
    if (kind === 'process') {
      a('submit(fn, a SharedArrayBuffer) names it', (_fx, env) => env.pool(kind).submit((x: unknown) => x, 1, new SharedArrayBuffer(8)), arg('TypeError', 'args[1]', 'throw'))
    }
    for (const [text, fn, match] of [
      ['a task returning a function', () => () => 1, /could not be cloned/],
      ['a task returning a Symbol', () => Symbol('r'), /could not be cloned/],
      ['a task returning a revoked Proxy', () => {
        const r = Proxy.revocable({}, {})
        r.revoke()
        return r.proxy
      }, /revoked/],
      ['a task throwing a function', () => {
        throw () => 2
      }, /uncloneable value/],
      ['a task throwing a Symbol', () => {
        throw Symbol('t')
      }, /uncloneable value/],
      ['a task throwing an Error whose own property getter throws', () => {
        throw Object.defineProperty(new Error('kept message'), 'code', {
          get() {
            throw new Error('getter')
          },
          enumerable: true,
        })
      }, /kept message/],
      ['a task throwing an Error whose name getter throws', () => {
        const e = new Error('unnamed')
        Object.defineProperty(e, 'name', {
          get() {
            throw new Error('name getter')
          },
        })
        throw e
      }, /could not be read.*name getter/],
      ['a task throwing an Error whose message is a null-prototype object', () => {
        const e = new Error()
        ;(e as any).message = Object.create(null)
        throw e
      }, /object/],
      ['a task throwing a revoked Proxy', () => {
        const r = Proxy.revocable({}, {})
        r.revoke()
        throw r.proxy
      }, /revoked|could not be read/],
    ] as [string, () => unknown, RegExp][]) {
      a(`${text} fails that future only`, async (_fx, env) => {
        const pool = env.pool(kind)
        const err = await pool.submit(fn).exception({ timeoutMs: 20_000 })
        const next = await pool.submit(() => 'next').result({ timeoutMs: 20_000 })
        return [err, next]
      }, ok('resolve', ([err, next]) => (err instanceof Error && match.test(`${err.name}: ${err.message}`) && next === 'next' ? undefined : `exception ${String(err?.name)}: ${String(err?.message)}, next task ${next}`)))
    }
    for (const [text, v] of notOptions) a(`submitWith(options=${text}, fn)`, (_fx, env) => env.pool(kind).submitWith(v, () => 1), arg('TypeError', 'options', 'throw'))
    for (const [text, v] of notSignals) a(`submitWith({ signal: ${text} }, fn)`, (_fx, env) => env.pool(kind).submitWith({ signal: v }, () => 1), arg('TypeError', 'options.signal', 'throw'))
    a('submitWith({ signal: aborted }, fn) is cancelled at once', (_fx, env) => env.pool(kind).submitWith({ signal: AbortSignal.abort() }, () => 1).cancelled(), ok('return', (r) => eq('cancelled', r, true)))
    for (const [text, v] of [['5', 5], ['"x"', 'x'], ['an ArrayBuffer', new ArrayBuffer(1)], ['{ length: 0 }', { length: 0 }], ['null', null], ...Object.entries(hostile)] as [string, unknown][]) {
      a(`submitWith({ transferList: ${text} }, fn)`, (_fx, env) => env.pool(kind).submitWith({ transferList: v as any }, () => 1), arg('TypeError', 'options.transferList', 'throw'))
    }
    for (const [text, v] of [['5', 5], ['{}', {}], ['a Uint8Array', new Uint8Array(2)], ['a SharedArrayBuffer', new SharedArrayBuffer(2)], ['a function', () => 1], ...Object.entries(hostile)] as [string, unknown][]) {
      a(`submitWith({ transferList: [${text}] }, fn)`, (_fx, env) => env.pool(kind).submitWith({ transferList: [v as any] }, () => 1), arg('TypeError', 'options.transferList[0]', 'throw'))
    }
    a('submitWith({ transferList: [ab, ab] }, fn) names the repeated item', (_fx, env) => {
      const ab = new ArrayBuffer(4)
      return env.pool(kind).submitWith({ transferList: [ab, ab] }, (b: ArrayBuffer) => b.byteLength, ab)
    }, arg('TypeError', 'options.transferList[1]', 'throw'))
    a('submitWith({ transferList: [a detached ArrayBuffer] }, fn) says it is detached', (_fx, env) => {
      const ab = new ArrayBuffer(4)
      structuredClone(ab, { transfer: [ab] })
      return env.pool(kind).submitWith({ transferList: [ab] }, () => 1)
    }, arg('TypeError', 'options.transferList[0]', 'throw'))
    a('submitWith({ transferList: [ab] }, fn, ab) moves it and resolves', async (_fx, env) => {
      const ab = new ArrayBuffer(4)
      const f = env.pool(kind).submitWith({ transferList: [ab] }, (b: ArrayBuffer) => b.byteLength, ab)
      return [ab.byteLength, await f.result({ timeoutMs: 20_000 })].join(',')
    }, ok('resolve', (r) => eq('detached here, size there', r, '0,4')))
    if (kind === 'process') {
      a('submitWith({ transferList: [a MessagePort] }, fn) says a child process cannot receive it', (_fx, env) => {
        const { port1, port2 } = new MessageChannel()
        env.defer(() => port1.close())
        return env.pool(kind).submitWith({ transferList: [port2] }, () => 1)
      }, arg('TypeError', 'options.transferList[0]', 'throw'))
    }
    a('submitWith({ signal } aborted with a revoked Proxy reason) reaches a running task', async (_fx, env) => {
      const pool = env.pool(kind)
      const c = new AbortController()
      const f = pool.submitWith({ signal: c.signal }, (signal: AbortSignal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve('aborted'))))
      while (!f.running()) await new Promise((r) => setTimeout(r, 5))
      c.abort(revoked)
      return f.result({ timeoutMs: 20_000 })
    }, ok('resolve', (r) => eq('result', r, 'aborted')))
    fnArg(area, (v) => `${ctor}: map(fn=${v}, [1])`, 'fn', (_api, v, _fx, env) => env.pool(kind).map(v, [1]), 'throw', { only: 'async' })
    for (const [text, v] of notIterables) a(`map(fn, iterable=${text})`, (_fx, env) => env.pool(kind).map((x: unknown) => x, v), arg('TypeError', 'iterable', 'throw'))
    for (const [text, v] of notOptions) a(`map(fn, [1], options=${text})`, (_fx, env) => env.pool(kind).map((x: unknown) => x, [1], v), arg('TypeError', 'options', 'throw'))
    for (const [text, v] of [...notNumbers, ...badMs] as [string, unknown][]) {
      a(`map(fn, [1], { timeoutMs: ${text} })`, (_fx, env) => env.pool(kind).map((x: unknown) => x, [1], { timeoutMs: v }), arg(typeof v === 'number' ? 'RangeError' : 'TypeError', 'options.timeoutMs', 'throw'))
    }
    for (const [text, v] of [...notNumbers, ...badPositiveInt] as [string, unknown][]) {
      a(`map(fn, [1], { chunksize: ${text} })`, (_fx, env) => env.pool(kind).map((x: unknown) => x, [1], { chunksize: v }), arg(typeof v === 'number' ? 'RangeError' : 'TypeError', 'options.chunksize', 'throw'))
    }
    for (const [text, v] of [...notNumbers, ...badPositiveInt.filter(([t]) => t !== 'Infinity')] as [string, unknown][]) {
      a(`map(fn, [1], { buffersize: ${text} })`, (_fx, env) => env.pool(kind).map((x: unknown) => x, [1], { buffersize: v as number }), arg(typeof v === 'number' ? 'RangeError' : 'TypeError', 'options.buffersize', 'throw'))
    }
    a('map(fn, items, { buffersize: 2**53 | Infinity | null }) yields every result', async (_fx, env) => {
      const out: number[] = []
      for (const buffersize of [2 ** 53, Infinity, null]) {
        for await (const v of env.pool(kind).map((x: number) => x * 2, [1, 2, 3], { buffersize })) out.push(v as number)
      }
      return out.join(',')
    }, ok('resolve', (r) => eq('results', r, '2,4,6,2,4,6,2,4,6')))
    a('map(fn, items, { chunksize: 2**53, timeoutMs: 2**53 }) yields every result', async (_fx, env) => {
      const out: number[] = []
      for await (const v of env.pool(kind).map((x: number) => x * 2, [1, 2, 3], { chunksize: 2 ** 53, timeoutMs: 2 ** 53 })) out.push(v as number)
      return out.join(',')
    }, ok('resolve', (r) => eq('results', r, '2,4,6')))
    for (const chunksize of [1, 2]) {
      a(`map(fn, [1, 2, () => 3], { chunksize: ${chunksize} }) names the uncloneable item`, (_fx, env) => env.pool(kind).map((x: unknown) => x, [1, 2, () => 3], { chunksize }), arg('TypeError', 'iterable[2]', 'throw'))
    }
    a('map(fn, an iterable that throws) throws its error and cancels what it submitted', (_fx, env) => {
      const boom = new Error('map input threw')
      const pool = env.pool(kind)
      function* items(): Generator<number> {
        yield 1
        throw boom
      }
      try {
        pool.map((x: number) => x, items())
      } catch (err) {
        return err === boom
      }
      return 'no throw'
    }, ok('return', (r) => eq('threw the input error', r, true)))
    for (const [text, v] of notOptions) a(`shutdown(options=${text})`, (_fx, env) => env.newPool(kind).shutdown(v), arg('TypeError', 'options', 'reject'))
    for (const option of ['wait', 'cancelFutures'] as const) {
      for (const [text, v] of [['"yes"', 'yes'], ['1', 1], ['null', null], ['{}', {}]] as const) {
        a(`shutdown({ ${option}: ${text} })`, (_fx, env) => env.newPool(kind).shutdown({ [option]: v }), arg('TypeError', `options.${option}`, 'reject'))
      }
    }
    // Stopped pools
    for (const [how, prep] of [
      ['shut-down', (env: Env) => env.shutPool(kind)],
      ['destroyed', (env: Env) => env.destroyedPool(kind)],
    ] as const) {
      a(`${how} pool: submit() says it is shut down`, (pool) => pool.submit(() => 1), state(/after shutdown/, 'throw'), { prep })
      a(`${how} pool: submitWith() says it is shut down`, (pool) => pool.submitWith({}, () => 1), state(/after shutdown/, 'throw'), { prep })
      a(`${how} pool: map() says it is shut down`, (pool) => pool.map((x: number) => x, [1, 2]), state(/after shutdown/, 'throw'), { prep })
      a(`${how} pool: map(fn, []) of nothing is an empty iteration`, async (pool) => {
        const out: unknown[] = []
        for await (const v of pool.map((x: number) => x, [])) out.push(v)
        return out.length
      }, ok('resolve', (n) => eq('results', n, 0)), { prep })
      a(`${how} pool: shutdown() again resolves`, (pool) => pool.shutdown(), ok('resolve'), { prep })
      a(`${how} pool: destroy() resolves`, (pool) => pool.destroy(), ok('resolve'), { prep })
      a(`${how} pool: submit(fn=5) still names fn, or says it is shut down`, (pool) => pool.submit(5), state(/fn must be|after shutdown/, 'throw'), { prep })
    }
    a('broken pool: submit() throws the Broken error', (pool) => pool.submit(() => 1), state(/exited abruptly|terminated abruptly/, 'throw', kind === 'thread' ? 'BrokenThreadPool' : 'BrokenProcessPool'), {
      prep: (env) => env.brokenPool(kind),
    })
    a('broken pool: shutdown() resolves', (pool) => pool.shutdown(), ok('resolve'), { prep: (env) => env.brokenPool(kind) })
  }
  for (const [text, v] of [['5', 5], ['"x"', 'x'], ['{}', {}], ['null', null], ['undefined', undefined], ['a SharedArrayBuffer', new SharedArrayBuffer(2)], ['a DataView on a SharedArrayBuffer', new DataView(new SharedArrayBuffer(2))], ...Object.entries(hostile)] as [string, unknown][]) {
    add(area, 'async', `move(value=${text})`, (_fx, env) => env.A.move(v as any), arg('TypeError', 'value', 'throw'))
  }
  add(area, 'async', 'move(a detached ArrayBuffer) says it is detached', (_fx, env) => {
    const ab = new ArrayBuffer(4)
    structuredClone(ab, { transfer: [ab] })
    return env.A.move(ab)
  }, arg('TypeError', 'value', 'throw'))
  add(area, 'async', 'new Executor() (the abstract base) says which classes to use', (_fx, env) => new (env.A.Executor as any)({ maxWorkers: 1 }), state(/Executor is abstract/, 'throw', 'TypeError'))
  add(area, 'async', 'new Executor() (the abstract base) with bad options says it is abstract first', (_fx, env) => new (env.A.Executor as any)(5), state(/Executor is abstract/, 'throw', 'TypeError'))
  // Futures
  const fut = 'future'
  add(fut, 'async', 'new Future() from user code is a standalone future, pending', (_fx, env) => new (env.A.Future as any)(), ok('return', (f) => eq('done', f.done(), false)))
  add(fut, 'async', "setResult() on a done standalone future is an InvalidStateError", (_fx, env) => {
    const f = new (env.A.Future as any)()
    f.setResult(1)
    return f.setResult(2)
  }, state(/setResult\(\) on a future that is finished/, 'throw', 'InvalidStateError'))
  add(fut, 'async', "setResult() on an executor's future says its executor settles it", (f) => f.setResult(1), state(/its executor settles it/, 'throw', 'InvalidStateError'), { prep: (env) => env.doneFuture() })
  for (const method of ['result', 'exception'] as const) {
    for (const [text, v] of notOptions) add(fut, 'async', `f.${method}(options=${text})`, (f) => f[method](v), arg('TypeError', 'options', 'reject'), { prep: (env) => env.doneFuture() })
    for (const [text, v] of [...notNumbers, ...badMs] as [string, unknown][]) {
      add(fut, 'async', `f.${method}({ timeoutMs: ${text} })`, (f) => f[method]({ timeoutMs: v }), arg(typeof v === 'number' ? 'RangeError' : 'TypeError', 'options.timeoutMs', 'reject'), {
        prep: (env) => env.doneFuture(),
      })
    }
    for (const [text, v] of hugeMs) {
      add(fut, 'async', `f.${method}({ timeoutMs: ${text} }) of a running task waits for it`, (_fx, env) => env.pool('thread').submit(async () => {
        await new Promise((r) => setTimeout(r, 20))
        return 'late'
      })[method]({ timeoutMs: v }), ok('resolve', (r) => (r === 'late' || r === null ? undefined : `got ${r}`)))
    }
  }
  for (const [text, v] of notFunctions) add(fut, 'async', `f.addDoneCallback(fn=${text})`, (f) => f.addDoneCallback(v), arg('TypeError', 'fn', 'throw'), { prep: (env) => env.doneFuture() })
  for (const [text, thrown] of [['an Error', new Error('cb')], ['a null-prototype object', Object.create(null)], ['a revoked Proxy', revoked], ['a Symbol', Symbol('cb')]] as const) {
    add(fut, 'async', `a done callback throwing ${text} is reported; the next callback runs`, async (_fx, env) => {
      const f = env.pool('thread').submit(() => 1)
      let second = false
      f.addDoneCallback(() => {
        throw thrown
      })
      f.addDoneCallback(() => (second = true))
      const value = await f.result()
      return [value, second]
    }, ok('resolve', (r) => (r[0] === 1 && r[1] === true ? undefined : `value, second callback ran: ${r}`)), { settleMs: 20 })
  }
  add(fut, 'async', 'cancel() of a done future is false', (f) => f.cancel(), ok('return', (r) => eq('cancel', r, false)), { prep: (env) => env.doneFuture() })
  for (const [name, call] of [
    ['wait', (env: Env, fs: unknown, o?: unknown) => env.A.wait(fs as any, o as any)],
    ['asCompleted', (env: Env, fs: unknown, o?: unknown) => firstNext(() => env.A.asCompleted(fs as any, o as any))],
  ] as const) {
    const how: How = name === 'wait' ? 'reject' : 'either'
    for (const [text, v] of notIterables) add(fut, 'async', `${name}(fs=${text})`, (_fx, env) => call(env, v), arg('TypeError', 'fs', how))
    for (const [text, v] of [['[5]', [5]], ['[null]', [null]], ['"ab" (a string)', 'ab'], ['[a Promise]', [Promise.resolve()]], ['[{}]', [{}]]] as const) {
      add(fut, 'async', `${name}(fs=${text})`, (_fx, env) => call(env, v), arg('TypeError', 'fs[0]', how))
    }
    {
      const boom = new Error(`the futures of ${name} threw`)
      add(fut, 'async', `${name}(an iterable that throws)`, (_fx, env) => call(env, throwingIterable(boom)), is(boom, how))
    }
    for (const [text, v] of notOptions) add(fut, 'async', `${name}([f], options=${text})`, (f, env) => call(env, [f], v), arg('TypeError', 'options', how), { prep: (env) => env.doneFuture() })
    for (const [text, v] of [...notNumbers, ...badMs] as [string, unknown][]) {
      add(fut, 'async', `${name}([f], { timeoutMs: ${text} })`, (f, env) => call(env, [f], { timeoutMs: v }), arg(typeof v === 'number' ? 'RangeError' : 'TypeError', 'options.timeoutMs', how), {
        prep: (env) => env.doneFuture(),
      })
    }
    add(fut, 'async', `${name}([f, f]) of one done future, twice`, (f, env) => call(env, [f, f], { timeoutMs: 2 ** 53 }), ok('resolve'), { prep: (env) => env.doneFuture() })
  }
  // null and undefined mean ALL_COMPLETED.
  for (const [text, v] of [['"SOMETIMES"', 'SOMETIMES'], ['5', 5], ['a null-prototype object', Object.create(null)], ['Symbol()', Symbol('w')]] as const) {
    add(fut, 'async', `wait([f], { returnWhen: ${text} })`, (f, env) => env.A.wait([f], { returnWhen: v as any }), arg('RangeError', 'options.returnWhen', 'reject'), { prep: (env) => env.doneFuture() })
  }
}

// ---- sync mode: run, block, monkey
{
  const area = 'sync'
  fnArg(area, (v) => `run(fn=${v})`, 'fn', (_api, v, _fx, env) => env.S.run(v as any), 'reject', { only: 'async' })
  {
    const err = new Error('run failed')
    add(area, 'async', 'run(fn that throws) rejects with its error', (_fx, env) => env.S.run(() => {
      throw err
    }), is(err, 'reject'))
  }
  add(area, 'async', 'run(fn, a function, a Symbol) passes arguments as they are', (_fx, env) => {
    const args = [() => 1, Symbol('a')]
    return env.S.run((a: unknown, b: unknown) => a === args[0] && b === args[1], ...args)
  }, ok('resolve', (r) => eq('same arguments', r, true)))
  for (const [text, v] of [['5', 5], ['null', null], ['undefined', undefined], ['{ then: 5 }', { then: 5 }], ['a null-prototype object', Object.create(null)]] as const) {
    add(area, 'sync', `block(${text}) returns it as it is`, (_fx, env) => env.S.block(v as any) === v, ok('return', (r) => eq('same value', r, true)))
  }
  {
    const reason = new Error('block rejected')
    add(area, 'sync', 'block(a rejected Promise) throws its reason', (_fx, env) => env.S.block(Promise.reject(reason)), is(reason, 'throw'))
    const thenErr = new Error('then threw')
    add(area, 'sync', 'block(a thenable whose then throws) throws that', (_fx, env) => env.S.block({
      then() {
        throw thenErr
      },
    }), is(thenErr, 'throw'))
  }
  add(area, 'sync-outside', 'block() from plain code is told it blocks', (_fx, env) => env.S.block(Promise.resolve(1)), state(/block\(\) blocks/, 'throw'))
  add(area, 'sync-outside', 'sleep() from plain code is told it blocks', (_fx, env) => env.S.sleep(1), state(/sleep\(\) blocks/, 'throw'))
  add(area, 'sync-outside', 'sync joinall() of a live greenlet from plain code is told it blocks', (g, env) => env.S.joinall([g]), state(/joinall\(\) blocks/, 'throw'), { prep: (env) => env.syncAlive() })
  // Started: one that has not started dies at once, with nothing to wait for.
  add(area, 'sync-outside', 'sync kill() of a live greenlet from plain code is told to pass { block: false }', (g) => g.kill(), state(/block: false/, 'throw'), {
    prep: async (env) => {
      const g = env.syncAlive()
      await new Promise((resolve) => setTimeout(resolve, 5))
      return g
    },
  })
  add(area, 'sync-outside', 'sync kill() of a greenlet not started yet from plain code ends it at once', (g) => (g.kill(), g.dead), ok('return', (r) => eq('dead', r, true)), { prep: (env) => env.syncAlive() })
  add(area, 'sync-outside', 'sync kill(undefined, { block: false }) from plain code works', (g) => g.kill(undefined, { block: false }), ok('return'), { prep: (env) => env.syncAlive() })
  for (const [text, v] of notOptions) add(area, 'sync-outside', `monkey.patchAll(options=${text})`, (_fx, env) => env.S.monkey.patchAll(v as any), arg('TypeError', 'options', 'throw'))
  add(area, 'sync-outside', 'monkey.unpatchAll() without patchAll() changes nothing', (_fx, env) => (env.S.monkey.unpatchAll(), env.S.monkey.isPatched()), ok('return', (r) => eq('patched', r, false)))
}

// ---- hostile values inside greenlets: arguments without a string form
{
  const area = 'report'
  for (const [text, v] of Object.entries(hostile)) {
    add(area, 'async', `an unobserved failure of a greenlet spawned with ${text} is reported`, (_fx, env) => {
      env.A.spawn((_x: unknown) => {
        throw new Error('unobserved')
      }, v)
    }, ok('return'), { settleMs: 30 })
    add(area, 'async', `a throwing link callback of a greenlet spawned with ${text} is reported; the next link runs`, async (_fx, env) => {
      const g = env.A.spawn((x: unknown) => x, v)
      let second = false
      g.link(() => {
        throw new Error('link threw')
      })
      g.link(() => (second = true))
      await g.join()
      await new Promise((r) => setTimeout(r, 5))
      return second
    }, ok('resolve', (r) => eq('second link ran', r, true)), { settleMs: 30 })
    add(area, 'async', `a greenlet spawned with ${text} joining itself gets the Error`, (_fx, env) => env.A.spawn((_x: unknown) => env.A.getcurrent()!.join(), v).get(), state(/cannot join itself/, 'reject'))
    add(area, 'async', `joinall([g]) in a greenlet spawned with ${text} waiting for itself gets the Error`, (_fx, env) => env.A.spawn((_x: unknown) => env.A.joinall([env.A.getcurrent()!]), v).get(), state(/would wait forever/, 'reject'))
    add(area, 'sync', `a sync greenlet spawned with ${text} fails and is reported`, (_fx, env) => {
      const g = env.S.spawn((_x: unknown) => {
        throw new Error('sync unobserved')
      }, v)
      env.S.sleep(5)
      return g.dead
    }, ok('return', (r) => eq('dead', r, true)), { settleMs: 30 })
    add(area, 'async', `a link callback throwing ${text} is reported; the next link runs`, async (_fx, env) => {
      const g = env.A.spawn(() => 1)
      let second = false
      g.link(() => {
        throw v
      })
      g.link(() => (second = true))
      await g.join()
      await new Promise((r) => setTimeout(r, 5))
      return second
    }, ok('resolve', (r) => eq('second link ran', r, true)), { settleMs: 30 })
    both(area, `an unobserved greenlet failure with ${text} is reported`, (api) => {
      api.spawn(() => {
        throw v
      })
    }, ok('return'), { settleMs: 30 })
    both(area, `a greenlet that throws ${text} dies with it`, (api) =>
      drive(api, function* () {
        const g = api.spawn(() => {
          throw v
        })
        yield g.join(2000)
        return [g.dead, g.exception === v]
      }), ok('either', (r) => (r[0] === true && r[1] === true ? undefined : `dead, exception: ${r}`)), { settleMs: 30 })
    add(area, 'async', `kill(${text}) of a sleeping greenlet fails it with that value`, async (_fx, env) => {
      const g = env.A.spawn(() => env.A.sleep(60_000))
      await env.A.sleep(1)
      await g.kill(v)
      return g.exception === v
    }, ok('resolve', (r) => eq('exception', r, true)), { settleMs: 30 })
  }
  // Functions whose name is no string, whose name getter throws, or a revoked Proxy of one (bundler output, wrappers).
  const oddlyNamed: [string, () => (...args: any[]) => unknown][] = [
    ['a name of undefined', () => Object.defineProperty(() => 7, 'name', { value: undefined })],
    ['a name getter that throws', () => Object.defineProperty(() => 7, 'name', { get: () => { throw new Error('name read') } })],
    ['a name that is an object', () => Object.defineProperty(() => 7, 'name', { value: { toString: () => { throw new Error('toString') } } })],
  ]
  for (const [text, make] of oddlyNamed) {
    both(area, `a greenlet of a function with ${text} runs it and describes itself`, (api) =>
      drive(api, function* () {
        const g = api.spawn(make())
        const value = yield g.get()
        return [value, typeof String(g)]
      }), ok('either', (r) => (r[0] === 7 && r[1] === 'string' ? undefined : `value, String(g): ${r}`)))
    both(area, `an unobserved failure of a function with ${text} is reported`, (api) => {
      const fn = make()
      api.spawn(Object.defineProperty(() => {
        throw new Error(`failed with ${text}`)
      }, 'name', Object.getOwnPropertyDescriptor(fn, 'name')!))
    }, ok('return'), { settleMs: 30 })
  }
  const { proxy: revokedFn, revoke: revokeFn } = Proxy.revocable(() => 7, {})
  revokeFn()
  both(area, 'a greenlet of a revoked function Proxy fails with its TypeError and describes itself', (api) =>
    drive(api, function* () {
      const g = api.spawn(revokedFn)
      yield g.join()
      return [g.exception instanceof TypeError, typeof String(g)]
    }), ok('either', (r) => (r[0] === true && r[1] === 'string' ? undefined : `TypeError, String(g): ${r}`)))
}

// ---- boolean options: 0 and 1 (Python's truthiness), strings and null are refused, never read as `=== false`
{
  const area = 'flags'
  const notFlags = [['0', 0], ['1', 1], ['"yes"', 'yes'], ['null', null]] as const
  const flagArg = (label: string, name: string, call: (api: any, v: unknown, fx: any, env: Env) => unknown, more: Partial<Case> & { syncPrep?: Case['prep'] } = {}): void => {
    for (const [text, v] of notFlags) both(area, label.replace('$', text), (api, fx, env) => call(api, v, fx, env), arg('TypeError', name, 'reject'), more)
  }
  const alive = { prep: (env: Env) => env.alive(), syncPrep: (env: Env) => env.syncAlive() }
  flagArg('alive.get({ block: $ })', 'options.block', (_api, v, g) => g.get({ block: v }), alive)
  flagArg('alive.kill(undefined, { block: $ })', 'options.block', (_api, v, g) => g.kill(undefined, { block: v }), alive)
  flagArg('joinall([alive], { raiseError: $ })', 'options.raiseError', (api, v, g) => api.joinall([g], { raiseError: v }), alive)
  flagArg('killall([alive], { block: $ })', 'options.block', (api, v, g) => api.killall([g], { block: v }), alive)
  flagArg('AsyncResult.get({ block: $ })', 'options.block', (api, v) => new api.AsyncResult().get({ block: v }))
  flagArg('Semaphore(0).acquire({ blocking: $ })', 'options.blocking', (api, v) => new api.Semaphore(0).acquire({ blocking: v }))
  flagArg('RLock.acquire({ blocking: $ })', 'options.blocking', (api, v) => new api.RLock().acquire({ blocking: v }))
  flagArg('Group.join({ raiseError: $ })', 'options.raiseError', (api, v) => new api.Group().join({ raiseError: v }))
  flagArg('Pool(1).spawnWith({ block: $ }, fn)', 'options.block', (api, v) => new api.Pool(1).spawnWith({ block: v }, () => 1))
  for (const [text, v] of notFlags) {
    add(area, 'async', `gather(fn, { returnExceptions: ${text} })`, (_fx, env) => env.A.gather(() => 1, { returnExceptions: v }), arg('TypeError', 'options.returnExceptions', 'reject'))
  }
}

// ---- canaries: cases that must fail, to show the harness catches each kind of failure (bad-input.spec.ts runs them)
if (process.env.GREENTHREAD_BAD_INPUT_CANARY === '1') {
  const area = 'canary'
  add(area, 'async', 'fine', () => 1, ok('return'))
  add(area, 'async', 'an unclear message', () => {
    throw new Error('oops')
  }, arg('TypeError', 'x', 'throw'))
  add(area, 'async', 'a throw where a rejection is due', () => {
    throw new TypeError('x must be a number')
  }, arg('TypeError', 'x', 'reject'))
  add(area, 'async', 'a Promise that never settles', () => new Promise(() => undefined), ok('resolve'))
  add(area, 'async', 'an escaped exception', () => {
    setImmediate(() => {
      throw new Error('escaped')
    })
  }, ok('return'))
  add(area, 'async', 'a segfault', () => {
    process.kill(process.pid, 'SIGSEGV')
    for (;;);
  }, ok('return'))
  add(area, 'async', 'fine after the crash', () => 2, ok('return'))
  add(area, 'async', 'a busy loop', () => {
    for (;;);
  }, ok('return'))
  add(area, 'async', 'fine after the hang', () => 3, ok('return'))
}

// ---------------------------------------------------------------- kernel facts

function somaxconn(): number {
  return Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim())
}

/** The backlog a listening socket was given, as `ss` reports it (Send-Q of a LISTEN socket). */
function listenBacklog(port: number): number {
  const { execFileSync } = require('node:child_process') as typeof import('node:child_process')
  let out: string[]
  try {
    out = execFileSync('ss', ['-ltnH', `sport = :${port}`]).toString().trim().split(/\s+/)
  } catch (err) {
    throw new Error(`reading the listen backlog needs \`ss\` (iproute2): ${(err as Error).message}`)
  }
  return Number(out[2])
}

// ---------------------------------------------------------------- running

/** Every case, with a unique id. */
export function allCases(): (Case & { id: string })[] {
  const seen = new Map<string, number>()
  return cases.map((c) => {
    const base = `${c.mode}: ${c.area}: ${c.label}`
    const n = (seen.get(base) ?? 0) + 1
    seen.set(base, n)
    return { ...c, id: n === 1 ? base : `${base} #${n}` }
  })
}

let theEnv: Env | undefined
function env(): Env {
  return (theEnv ??= new Env())
}

type Outcome =
  | { kind: 'threw'; value: unknown }
  | { kind: 'rejected'; value: unknown }
  | { kind: 'returned'; value: unknown }
  | { kind: 'resolved'; value: unknown }
  | { kind: 'pending' }

function describeValue(x: unknown): string {
  try {
    if (x instanceof Error) return `${x.constructor?.name ?? 'Error'}: ${x.message}`
    if (typeof x === 'symbol') return x.toString()
    return require('node:util').inspect(x, { depth: 1, breakLength: Infinity }).slice(0, 200)
  } catch {
    return '(unprintable)'
  }
}

/** What is wrong with `outcome`, if anything. */
function judge(expect: Expect, outcome: Outcome): string | undefined {
  const got = outcome.kind === 'pending' ? 'still pending (a hang)' : `${outcome.kind} ${describeValue(outcome.value)}`
  if (expect.kind === 'ok') {
    const fine = expect.how === 'return' ? ['returned'] : expect.how === 'resolve' ? ['resolved'] : ['returned', 'resolved']
    return fine.includes(outcome.kind) ? undefined : `expected success (${expect.how}), ${got}`
  }
  const fine = expect.how === 'throw' ? ['threw'] : expect.how === 'reject' ? ['rejected'] : ['threw', 'rejected']
  if (!fine.includes(outcome.kind)) {
    return `expected to ${expect.how === 'either' ? 'throw or reject' : expect.how}, ${got}`
  }
  const value = (outcome as { value: unknown }).value
  if (expect.kind === 'is') return value === expect.value ? undefined : `expected ${describeValue(expect.value)} itself, ${got}`
  if (!(value instanceof Error)) return `expected an Error, ${got}`
  if (expect.kind === 'state') {
    if (expect.cls !== undefined && value.name !== expect.cls && value.constructor?.name !== expect.cls) return `expected ${expect.cls}, ${got}`
    return expect.match.test(value.message) ? undefined : `expected a message matching ${expect.match}, ${got}`
  }
  const classOk =
    expect.cls === 'TypeOrRange' ? value instanceof TypeError || value instanceof RangeError : expect.cls === 'TypeError' ? value instanceof TypeError : value instanceof RangeError
  if (!classOk) return `expected ${expect.cls} naming ${expect.name}, ${got}`
  // What it got, said once: "got undefined", not "got undefined undefined".
  if (/\b(undefined|null) \1\b/.test(value.message)) return `expected the message to say what it got once, ${got}`
  const escaped = expect.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(`(^|[^\\w.\\[])${escaped}($|[^\\w\\[])`).test(value.message) ? undefined : `expected the message to name ${expect.name}, ${got}`
}

/** Runs one case; never rejects. */
async function runCase(c: Case & { id: string }, escaped: unknown[]): Promise<{ ok: boolean; why?: string; ms: number }> {
  const e = env()
  const started = Date.now()
  let outcome: Outcome
  try {
    const fx = c.prep === undefined ? undefined : await c.prep(e)
    if (c.mode === 'sync') {
      const S = e.S
      const g = S.spawn((): Outcome => {
        try {
          return { kind: 'returned', value: c.call(fx, e) }
        } catch (err) {
          return { kind: 'threw', value: err }
        }
      })
      const linked = new Promise<Outcome>((resolve) => g.link(() => resolve(g.successful() ? (g.value as Outcome) : { kind: 'threw', value: g.exception })))
      const result = await within(linked, CASE_MS)
      if (result === 'pending') {
        g.kill(undefined, { block: false })
        outcome = { kind: 'pending' }
      } else outcome = result
    } else {
      if (c.mode === 'sync-outside') void e.S
      try {
        outcome = { kind: 'returned', value: c.call(fx, e) }
      } catch (err) {
        outcome = { kind: 'threw', value: err }
      }
    }
    if (outcome.kind === 'returned' && isThenable(outcome.value)) {
      const settled = await within(
        Promise.resolve(outcome.value).then(
          (value): Outcome => ({ kind: 'resolved', value }),
          (value: unknown): Outcome => ({ kind: 'rejected', value }),
        ),
        CASE_MS,
      )
      outcome = settled === 'pending' ? { kind: 'pending' } : settled
    }
    let why = judge(c.expect, outcome)
    if (why === undefined && c.expect.kind === 'ok' && c.expect.check !== undefined) {
      why = (await c.expect.check((outcome as { value: unknown }).value, fx)) ?? undefined
    }
    // Late failures: an unobserved-failure report or a link callback that escapes.
    if (c.settleMs !== undefined) await new Promise((r) => setTimeout(r, c.settleMs))
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
    if (why === undefined && escaped.length > 0) why = `escaped to the event loop: ${escaped.map(describeValue).join('; ')}`
    return { ok: why === undefined, why, ms: Date.now() - started }
  } catch (err) {
    return { ok: false, why: `the case itself failed: ${describeValue(err)}`, ms: Date.now() - started }
  } finally {
    await e.cleanup()
  }
}

async function main(argv: string[]): Promise<void> {
  const list = allCases()
  const out = (line: string): void => void fs.writeSync(1, line + '\n')
  if (argv[0] === '--list') {
    for (const [i, c] of list.entries()) out(`${i}\t${c.area}\t${c.id}`)
    return
  }
  if (argv[0] !== '--run') throw new Error(`usage: node ${path.basename(__filename)} --list | --run i,j,k`)
  const escaped: unknown[] = []
  process.on('uncaughtException', (err) => escaped.push(err))
  process.on('unhandledRejection', (err) => escaped.push(err))
  // Reported, as designed: not failures.
  process.on('warning', () => undefined)
  for (const index of argv[1].split(',').map(Number)) {
    const c = list[index]
    out(`BEGIN ${index}`)
    escaped.length = 0
    const verdict = await runCase(c, escaped)
    out(`END ${index} ${JSON.stringify(verdict)}`)
  }
  // The hub still works after all that.
  const A = env().A
  const alive = await within(A.spawn(async () => (await A.sleep(1), 'alive')).get(), 5000)
  out(alive === 'alive' ? 'ALIVE' : `NOT ALIVE ${String(alive)}`)
  process.exit(0)
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err)
    process.exit(70)
  })
}
