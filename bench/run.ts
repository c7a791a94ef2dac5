/**
 * `npm run bench`: runs every benchmark case in its own process, several
 * rounds interleaved (timings on this machine vary up to 2x between runs),
 * and prints a markdown table with ratios against the peer in the same run.
 *
 *   node dist/bench/run.js [rounds]
 */
import { execFileSync } from 'node:child_process'
import path from 'node:path'

type Row = { case: string; ms: number; opsPerSec: number; maxRssKiB: number }

/** Pairs of [ours, peer] with the target ratio from the issue. */
const comparisons: Array<{ id: string; ours: string; peer: string; metric: 'ops' | 'wall'; target: string }> = []
for (const [id, ours, peer, metric, target] of [
  ['W1 spawn+join 100k, sleep(0) each', 'w1-greenthread', 'w1-bare-promises', 'ops', '>= 0.7x throughput, <= 1.3x RSS'],
  ['W2 switch ping-pong, 1M transfers', 'w2-greenthread-switch', 'w2-bare-promise-pingpong', 'wall', '<= 1.3x wall'],
  ['W3 100k x sleep(10 ms)', 'w3-greenthread-sleep', 'w3-settimeout-promises', 'wall', '<= 1.0x wall'],
] as const) {
  comparisons.push({ id: `${id} vs bare`, ours, peer, metric, target })
  comparisons.push({ id: `${id} vs bare + ALS active`, ours, peer: `${peer}+als`, metric, target })
}

function runCase(name: string): Row {
  const out = execFileSync(process.execPath, [path.join(__dirname, 'core.js'), name], { encoding: 'utf8', timeout: 120_000 })
  return JSON.parse(out.trim().split('\n').pop()!)
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

const rounds = Number(process.argv[2] ?? 5)
const results = new Map<string, Row[]>()
for (let r = 0; r < rounds; r++) {
  for (const name of new Set(comparisons.flatMap((c) => [c.ours, c.peer]))) {
    const rows = results.get(name) ?? []
    rows.push(runCase(name))
    results.set(name, rows)
  }
}

console.log(`node ${process.version}, ${rounds} rounds, medians; each case in its own process\n`)
console.log('| workload | greenthread | peer | ratio | peak RSS ours / peer | target |')
console.log('| --- | --- | --- | --- | --- | --- |')
for (const c of comparisons) {
  const ours = results.get(c.ours)!
  const peer = results.get(c.peer)!
  const oursMs = median(ours.map((x) => x.ms))
  const peerMs = median(peer.map((x) => x.ms))
  const rss = median(ours.map((x) => x.maxRssKiB)) / median(peer.map((x) => x.maxRssKiB))
  const fmt = (rows: Row[], ms: number) =>
    c.metric === 'ops' ? `${Math.round(median(rows.map((x) => x.opsPerSec))).toLocaleString('en')}/s` : `${ms.toFixed(1)} ms`
  const ratio = c.metric === 'ops' ? `${(peerMs / oursMs).toFixed(2)}x throughput` : `${(oursMs / peerMs).toFixed(2)}x wall`
  console.log(`| ${c.id} | ${fmt(ours, oursMs)} | ${fmt(peer, peerMs)} | ${ratio} | ${rss.toFixed(2)}x | ${c.target} |`)
}
