/** Running node in a child process, for tests whose failure may be a crash. */
import { spawn } from 'node:child_process'

export interface ChildResult {
  status: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/**
 * Runs this node with `args` (flags, then a script or `-e` code) and
 * collects its output; SIGKILLs it after `timeoutMs`. Never rejects: a V8
 * abort or a hang shows in `status`/`signal`.
 */
export function runNode(
  args: string[],
  { timeoutMs = 90_000, env = {}, cwd }: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, cwd })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      resolve({ status, signal, stdout, stderr })
    })
  })
}

/** A one-line account of how a child ended, for assertion messages. */
export function describeExit(r: ChildResult): string {
  const tail = (s: string) => s.trim().split('\n').slice(-12).join('\n')
  return `status ${r.status} signal ${r.signal}\nstdout:\n${tail(r.stdout)}\nstderr:\n${tail(r.stderr)}`
}
