/**
 * greenthread: gevent, greenlet and concurrent.futures for TypeScript, on a
 * Rust coroutine runtime. This is the async (Promise-based) mode.
 */
export { GreenletExit } from './src/errors'
export { sleep } from './src/hub'
export {
  Greenlet,
  getcurrent,
  joinall,
  killall,
  spawn,
  spawnLater,
  type GetOptions,
  type JoinAllOptions,
  type KillAllOptions,
  type KillOptions,
} from './src/greenlet'
export { Timeout, type TimeoutRunOptions } from './src/timeout'
export { allTasks, currentTask, gather, waitFor, type Awaitable, type GatherOptions } from './src/tasks'
export { configure, runtimeInfo, type ConfigureOptions, type RuntimeInfo } from './src/config'
export { AsyncResult, Event, type AsyncResultGetOptions, type ResultSource, type WaitOptions } from './src/event'
export {
  Channel,
  JoinableQueue,
  LifoQueue,
  PriorityQueue,
  Queue,
  QueueEmpty,
  QueueFull,
  QueueShutDown,
  type PriorityQueueOptions,
  type QueueGetOptions,
  type QueueOptions,
  type QueuePutOptions,
} from './src/queue'
export { BoundedSemaphore, Lock, RLock, Semaphore, type AcquireOptions, type GuardOptions } from './src/lock'
export {
  BaseGroup,
  Group,
  Pool,
  PoolFull,
  type GroupJoinOptions,
  type MapFunction,
  type MapInput,
  type ImapOptions,
  type MapIterator,
  type SpawnOptions,
} from './src/pool'
export {
  Executor,
  ProcessPoolExecutor,
  TaskQueueFull,
  ThreadPoolExecutor,
  type ExecutorOptions,
  type ExecutorStats,
  type ThreadPoolExecutorOptions,
  type MapOptions,
  type ShutdownOptions,
  type SubmitOptions,
} from './src/executor'
export { move, type TransferListItem } from './src/transfer'
export {
  ALL_COMPLETED,
  BrokenExecutor,
  BrokenProcessPool,
  BrokenThreadPool,
  CancelledError,
  FIRST_COMPLETED,
  FIRST_EXCEPTION,
  Future,
  InvalidStateError,
  TimeoutError,
  asCompleted,
  wait,
  type AsCompletedOptions,
  type FuturesWaitOptions,
  type FuturesWaitResult,
  type ResultOptions,
  type ReturnWhen,
} from './src/futures'
export { iwait, waitReady, type WaitReadyOptions, type Waitable } from './src/wait'
export { Local } from './src/local'
export { IncompleteReadError, Socket, connect, type AddressInfo, type ConnectOptions, type RecvLineOptions, type SocketError } from './src/socket'
export { StreamServer, type ConnectionHandler, type StopOptions, type StreamServerOptions } from './src/server'
export { DistributedExecutor, DistributedWorker, runWorker, type DistributedExecutorOptions, type DistributedMapOptions, type DistributedShutdownOptions, type RedisConnectionOptions, type RunWorkerOptions, type TaskModule, type WorkerCloseOptions } from './src/distributed'
