/**
 * What the benchmark cases need besides Node and node_modules, made ready
 * before anything is timed: the C load generator and the C epoll echo
 * server (built with `cc -O2` into target/bench/ when missing or older than
 * their source), the CPUs the echo servers and the load generator are
 * pinned to, and a Python with gevent for the seeds' own programs.
 *
 * GREENTHREAD_BENCH_LOADGEN names another load generator with the same
 * options and output; GREENTHREAD_BENCH_PIN=0 turns pinning off; GEVENT_PYTHON names a Python
 * with gevent; GREENTHREAD_BENCH_VENV where the venv goes.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { availableParallelism } from 'node:os'
import * as path from 'node:path'

export const root = path.resolve(__dirname, '..', '..')
const buildDir = path.join(root, 'target', 'bench')

export const loadgenPath = process.env.GREENTHREAD_BENCH_LOADGEN ?? path.join(buildDir, 'loadgen')
export const cServerPath = path.join(buildDir, 'echo_epoll')

/** Builds the C programs that are missing or older than their source; returns an error message or undefined. */
export function buildCPrograms(): string | undefined {
  const programs: Array<[string, string]> = [[cServerPath, 'echo_epoll.c']]
  if (process.env.GREENTHREAD_BENCH_LOADGEN === undefined) programs.push([loadgenPath, 'loadgen.c'])
  fs.mkdirSync(buildDir, { recursive: true })
  for (const [out, source] of programs) {
    const src = path.join(root, 'bench', 'c', source)
    if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(src).mtimeMs) continue
    try {
      execFileSync('cc', ['-O2', '-o', out, src], { stdio: ['ignore', 'ignore', 'pipe'] })
    } catch (err) {
      return `cc -O2 ${source} failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || String(err)}`
    }
  }
  return undefined
}

/** True when `command --version`-like probing finds it on PATH. */
export function hasCommand(command: string, args: string[] = ['--version']): boolean {
  const r = spawnSync(command, args, { stdio: 'ignore' })
  return r.error === undefined && r.status === 0
}

/**
 * Where echo servers and the load generator run. With taskset and at least
 * two CPUs (unless GREENTHREAD_BENCH_PIN=0): the load generator on CPU 0,
 * the servers on the others, so that the load never shares a core with the
 * server. Otherwise nothing is pinned.
 */
export function pinning(): { pinned: boolean; serverCpus: string; loadCpus: string; reason?: string } {
  const cpus = availableParallelism()
  const all = cpus > 1 ? `0-${cpus - 1}` : '0'
  if (process.env.GREENTHREAD_BENCH_PIN === '0') return { pinned: false, serverCpus: all, loadCpus: all, reason: 'GREENTHREAD_BENCH_PIN=0' }
  if (cpus < 2) return { pinned: false, serverCpus: all, loadCpus: all, reason: 'one CPU' }
  if (!hasCommand('taskset', ['-c', '0', 'true'])) return { pinned: false, serverCpus: all, loadCpus: all, reason: 'no taskset' }
  return { pinned: true, serverCpus: cpus === 2 ? '1' : `1-${cpus - 1}`, loadCpus: '0' }
}

const venv = process.env.GREENTHREAD_BENCH_VENV ?? '/tmp/gt-venv'

function pythonHasGevent(python: string): boolean {
  return spawnSync(python, ['-c', 'import gevent, greenlet'], { stdio: 'ignore' }).status === 0
}

/**
 * A Python with gevent: GEVENT_PYTHON if set, else a venv (default
 * /tmp/gt-venv, GREENTHREAD_BENCH_VENV) made with `python3 -m venv` and
 * `pip install gevent` from PyPI the first time. Returns the interpreter, or
 * the reason there is none.
 */
export function setupPython(log: (line: string) => void): { python?: string; version?: string; reason?: string } {
  const describe = (python: string) => {
    const r = spawnSync(python, ['-c', 'import sys, gevent, greenlet; print(sys.version.split()[0], gevent.__version__, greenlet.__version__)'], {
      encoding: 'utf8',
    })
    const [py, gevent, greenlet] = r.stdout.trim().split(' ')
    return `CPython ${py}, gevent ${gevent}, greenlet ${greenlet}`
  }
  if (process.env.GEVENT_PYTHON) {
    const python = process.env.GEVENT_PYTHON
    return pythonHasGevent(python) ? { python, version: describe(python) } : { reason: `GEVENT_PYTHON=${python} cannot import gevent` }
  }
  const python = path.join(venv, 'bin', 'python')
  if (fs.existsSync(python) && pythonHasGevent(python)) return { python, version: describe(python) }
  if (!hasCommand('python3')) return { reason: 'no python3 on PATH' }
  log(`setup: python3 -m venv ${venv} && ${venv}/bin/pip install gevent`)
  const made = spawnSync('python3', ['-m', 'venv', venv], { encoding: 'utf8', timeout: 120_000 })
  if (made.status !== 0) return { reason: `python3 -m venv failed: ${(made.stderr || String(made.error)).trim().split('\n').pop()}` }
  const pip = spawnSync(path.join(venv, 'bin', 'pip'), ['install', '--quiet', 'gevent'], { encoding: 'utf8', timeout: 600_000 })
  if (pip.status !== 0) return { reason: `pip install gevent failed: ${(pip.stderr || String(pip.error)).trim().split('\n').pop()}` }
  return pythonHasGevent(python) ? { python, version: describe(python) } : { reason: 'gevent installed but not importable' }
}
