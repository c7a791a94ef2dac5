/**
 * greenthread/sync: gevent's programming model without `await`. Code inside
 * a sync greenlet calls `sleep(1000)`, `g.switch(v)`, `g.join()` or
 * `block(promise)` and simply blocks that greenlet, while the other
 * greenlets and the Node event loop keep running. Enter it with `run(fn)`.
 *
 * Each started sync greenlet runs on an OS thread of its own (pooled and
 * reused) that shares the main V8 isolate; exactly one runs JavaScript at a
 * time. They are scheduled by the same hub as the async module's greenlets
 * (timers, joins, kills, Timeouts behave the same) and can wait for each
 * other.
 *
 * Coordination: Event, AsyncResult, the queues, the locks and semaphores,
 * Group and Pool, with the async module's semantics (the same code) and
 * calls that block: `q.get()`, `lock.acquire()`, `pool.spawn(fn)`,
 * `for (const r of pool.imapUnordered(fn, items))`. Each mode waits on its
 * own classes; the non-blocking calls (`set`, `putNowait`, `release`...)
 * work from anywhere, so the two modes can feed each other.
 *
 * Sockets: `connect()` and `StreamServer` (a sync greenlet per connection)
 * give blocking `recv`/`recvExactly`/`sendall`, built on the async sockets.
 *
 * Limits:
 * - Node 20, 22, 24 and 26, main thread only: the native binary is built
 *   per Node ABI (`node scripts/build-sync.js`); elsewhere importing this
 *   module throws an Error that says so. The async module works everywhere.
 *   Loading it turns off V8's WebAssembly code GC and, under
 *   AsyncContextFrame (Node 24+), turns on precise object pinning for young
 *   GCs: see src/sync/native.ts for why.
 * - One OS thread (and process id) per live greenlet: a few tens of
 *   thousands at most (about 32k here, where `kernel.pid_max` is 32768 for
 *   the whole machine). `GREENTHREAD_SYNC_MAX_THREADS` caps the threads of
 *   a process; past the limit, starting a greenlet fails with an Error.
 * - Each suspended greenlet keeps its stack, which V8 scans at every GC:
 *   pauses grow with the number of suspended greenlets.
 * - Blocking calls outside sync greenlets throw. So do blocking calls made
 *   from link callbacks and Promise callbacks, which run on the main thread,
 *   and inside `vm` scripts run with `timeout` or `breakOnSigint` (whose
 *   watchdog terminates whatever JS runs when it fires).
 * - AsyncLocalStorage is per greenlet on AsyncContextFrame (Node 24+: each
 *   starts with no store) and shared on async_hooks (Node 20, 22). Do not
 *   block inside `AsyncResource#runInAsyncScope`, nor inside a callback that
 *   a native addon runs inside an N-API handle scope.
 * - A greenlet suspended forever (in `switch()` with nobody to switch back)
 *   keeps its thread until the process exits; kill it to release it.
 * - Thread-local state of native code (OpenSSL error queues, other addons)
 *   differs between greenlets.
 */
export { GreenletExit } from './src/errors'
export type { GetOptions, JoinAllOptions, KillAllOptions, KillOptions } from './src/greenlet'
export type { TimeoutRunOptions } from './src/timeout'
export { Greenlet, getcurrent, joinall, killall, spawn, spawnLater } from './src/sync/greenlet'
export { block, sleep } from './src/sync/waits'
export { Timeout } from './src/sync/timeout'
export { AsyncResult, Event } from './src/sync/event'
export type { AsyncResultGetOptions, ResultSource, WaitOptions } from './src/event'
export { Channel, JoinableQueue, LifoQueue, PriorityQueue, Queue } from './src/sync/queue'
export { QueueEmpty, QueueFull, QueueShutDown } from './src/queue'
export type { PriorityQueueOptions, QueueGetOptions, QueueOptions, QueuePutOptions } from './src/queue'
export { BoundedSemaphore, Lock, RLock, Semaphore } from './src/sync/lock'
export type { AcquireOptions, GuardOptions } from './src/lock'
export { BaseGroup, Group, Pool, type SyncMapIterator } from './src/sync/pool'
export { PoolFull } from './src/pool'
export type { GroupJoinOptions, MapFunction, MapInput, ImapOptions, SpawnOptions } from './src/pool'
export { iwait, waitReady } from './src/sync/wait'
export type { WaitReadyOptions, Waitable } from './src/wait'
export { Local } from './src/sync/local'
export { run } from './src/sync/run'
export { Socket, connect } from './src/sync/socket'
export { StreamServer } from './src/sync/server'
export type { ConnectionHandler, StopOptions, StreamServerOptions } from './src/sync/server'
export { IncompleteReadError } from './src/socket'
export type { AddressInfo, ConnectOptions, RecvLineOptions, SocketError } from './src/socket'
export * as monkey from './src/monkey'
