/**
 * What `npm run bench` makes of its runs: medians, min-max and paired
 * ratios per Node, the targets met or not, the tables (terminal and
 * BENCHMARKS.md) and the chart (SVG, written by hand: one panel per
 * workload, bars as ratios to the best peer, the targets as lines).
 */
import { type Case, type Target, type Workload } from './cases'

export interface NodeInfo {
  /** Key of its runs: the version, e.g. v24.22.3. */
  key: string
  path: string
  version: string
  label: string
}

export interface CaseResult {
  ops: number
  ms: number
  maxRssKiB?: number
  idealMs?: number
  [k: string]: unknown
}

export interface RunRecord {
  /** The Node's key, or null for cases that do not run on Node. */
  node: string | null
  case: string
  round: number
  ok: boolean
  result?: CaseResult
  error?: string
  wallMs: number
}

export interface NotRun {
  case: string
  reason: string
}

export interface Results {
  version: 1
  date: string
  quick: boolean
  only?: string[]
  command: string
  fullCommand: string
  durationS: number
  rounds: number
  machine: Record<string, unknown>
  nodes: NodeInfo[]
  python: { python?: string; version?: string; reason?: string }
  pinning: { pinned: boolean; serverCpus: string; loadCpus: string; reason?: string }
  workloads: Workload[]
  cases: Array<Omit<Case, 'command'> & { command: string }>
  targets: Target[]
  notRun: NotRun[]
  runs: RunRecord[]
}

interface Stats {
  median: number
  min: number
  max: number
}

interface CaseSummary {
  case: Case | Results['cases'][number]
  /** Higher is better. */
  score?: Stats
  /** What is displayed: ops/s, ms, ns per op, or x ideal. */
  shown?: Stats
  /** ops per second, whatever the metric. */
  rate?: Stats
  /** score(case) / score(reference), paired per round. */
  ratio?: Stats
  /** peak RSS(case) / peak RSS(reference), paired per round. */
  rssRatio?: Stats
  rssMiB?: number
  failure?: string
}

export interface TargetResult {
  target: Target
  node: string
  measured?: number
  shown: string
  met?: boolean
}

function stats(xs: number[]): Stats | undefined {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  // Even counts: the geometric mean of the middle two, so that the median of
  // inverted values (wall vs throughput ratios) is the inverted median.
  const median = s.length % 2 === 1 ? s[mid] : Math.sqrt(s[mid - 1] * s[mid])
  return { median, min: s[0], max: s[s.length - 1] }
}

export function score(w: Workload, r: CaseResult): number {
  return w.metric === 'efficiency' ? (r.idealMs ?? NaN) / r.ms : (r.ops / r.ms) * 1000
}

function shownValue(w: Workload, r: CaseResult): number {
  switch (w.display) {
    case 'rate':
      return (r.ops / r.ms) * 1000
    case 'ms':
      return r.ms
    case 'nsPerOp':
      return (r.ms * 1e6) / r.ops
    case 'xIdeal':
      return r.ms / (r.idealMs ?? NaN)
  }
}

export class Summary {
  readonly byNode = new Map<string, Map<string, CaseSummary>>()

  constructor(readonly results: Results) {
    for (const node of results.nodes) {
      const m = new Map<string, CaseSummary>()
      for (const c of results.cases) m.set(c.id, this.#summarize(node.key, c))
      this.byNode.set(node.key, m)
    }
  }

  workload(id: string): Workload {
    return this.results.workloads.find((w) => w.id === id)!
  }

  /** The runs of a case that pair with `node`. */
  #runs(node: string, c: { id: string; runtime: string }): RunRecord[] {
    const key = c.runtime === 'node' ? node : null
    return this.results.runs.filter((r) => r.case === c.id && r.node === key)
  }

  #summarize(node: string, c: Results['cases'][number]): CaseSummary {
    const notRun = this.results.notRun.find((n) => n.case === c.id)
    if (notRun) return { case: c, failure: `not run: ${notRun.reason}` }
    const w = this.workload(c.workload)
    const runs = this.#runs(node, c)
    const ok = runs.filter((r) => r.ok && r.result)
    if (ok.length === 0) {
      const err = runs.find((r) => !r.ok)?.error
      return { case: c, failure: err ? `failed: ${err}` : 'not run' }
    }
    const summary: CaseSummary = {
      case: c,
      score: stats(ok.map((r) => score(w, r.result!))),
      shown: stats(ok.map((r) => shownValue(w, r.result!))),
      rate: stats(ok.map((r) => (r.result!.ops / r.result!.ms) * 1000)),
    }
    const rss = ok.map((r) => r.result!.maxRssKiB).filter((x): x is number => typeof x === 'number')
    if (rss.length > 0) summary.rssMiB = stats(rss)!.median / 1024
    const ref = this.results.cases.find((x) => x.id === w.reference)
    if (ref) {
      const refRuns = this.#runs(node, ref)
      const ratios: number[] = []
      const rssRatios: number[] = []
      for (const r of ok) {
        const p = refRuns.find((x) => x.round === r.round && x.ok && x.result)
        if (!p) continue
        ratios.push(score(w, r.result!) / score(w, p.result!))
        if (r.result!.maxRssKiB && p.result!.maxRssKiB) rssRatios.push(r.result!.maxRssKiB / p.result!.maxRssKiB)
      }
      summary.ratio = stats(ratios)
      summary.rssRatio = stats(rssRatios)
    }
    return summary
  }

  get(node: string, caseId: string): CaseSummary | undefined {
    return this.byNode.get(node)?.get(caseId)
  }

  casesOf(workload: string): Results['cases'] {
    return this.results.cases.filter((c) => c.workload === workload)
  }

  /** The best median score among the peers of a workload, for `node`. */
  bestPeer(node: string, workload: string): number | undefined {
    const scores = this.casesOf(workload)
      .filter((c) => !c.ours)
      .map((c) => this.get(node, c.id)?.score?.median)
      .filter((x): x is number => x !== undefined && Number.isFinite(x))
    return scores.length > 0 ? Math.max(...scores) : undefined
  }

  /** The score a target asks of its case, for `node` (undefined if its reference did not run). */
  threshold(node: string, t: Target): number | undefined {
    if (t.measure === 'rss') return undefined
    if (t.ref === undefined) return t.min
    const ref = this.get(node, t.ref)?.score?.median
    return ref === undefined ? undefined : t.min * ref
  }

  targetResults(): TargetResult[] {
    const out: TargetResult[] = []
    for (const node of this.results.nodes) {
      for (const t of this.results.targets) {
        const s = this.get(node.key, t.ours)
        if (!s || s.failure || !s.score) {
          out.push({ target: t, node: node.key, shown: s?.failure ? shorten(s.failure, 60) : 'not run' })
          continue
        }
        let measured: number | undefined
        let shown = ''
        let met: boolean | undefined
        if (t.measure === 'rss') {
          measured = s.rssRatio?.median
          if (measured !== undefined) {
            shown = `${measured.toFixed(2)}x RSS`
            met = measured <= 1 / t.min + 1e-9
          }
        } else if (t.ref !== undefined) {
          const ratio = s.ratio && t.ref === this.workload(t.workload).reference ? s.ratio.median : this.#pairedRatio(node.key, t.ours, t.ref)
          if (ratio !== undefined) {
            measured = ratio
            met = ratio >= t.min - 1e-9
            shown = t.measure === 'wall' ? `${fmtX(1 / ratio)}x wall` : `${fmtX(ratio)}x`
          }
        } else {
          measured = s.score.median
          met = measured >= t.min - 1e-9
          shown = t.measure === 'nsPerOp' ? `${Math.round(1e9 / measured).toLocaleString('en')} ns` : `${(1 / measured).toFixed(2)}x ideal`
        }
        out.push({ target: t, node: node.key, measured, shown: shown || 'no pair', met })
      }
    }
    return out
  }

  #pairedRatio(node: string, a: string, b: string): number | undefined {
    const ca = this.results.cases.find((c) => c.id === a)!
    const cb = this.results.cases.find((c) => c.id === b)!
    const w = this.workload(ca.workload)
    const runsA = this.#runs(node, ca).filter((r) => r.ok && r.result)
    const runsB = this.#runs(node, cb).filter((r) => r.ok && r.result)
    const ratios: number[] = []
    for (const r of runsA) {
      const p = runsB.find((x) => x.round === r.round)
      if (p) ratios.push(score(w, r.result!) / score(w, p.result!))
    }
    return stats(ratios)?.median
  }
}

function shorten(s: string, n: number): string {
  const one = s.replace(/\s+/g, ' ').trim()
  return one.length > n ? `${one.slice(0, n - 1)}…` : one
}

function fmtNumber(x: number): string {
  if (!Number.isFinite(x)) return '-'
  if (x >= 100) return Math.round(x).toLocaleString('en')
  if (x >= 10) return x.toFixed(1)
  return x.toFixed(2)
}

function fmtShown(w: Workload, s: Stats, withRange: boolean): string {
  const unit = { rate: '/s', ms: ' ms', nsPerOp: ' ns', xIdeal: 'x' }[w.display]
  const main = `${fmtNumber(s.median)}${unit}`
  if (!withRange || s.min === s.max) return main
  return `${main} (${fmtNumber(s.min)}-${fmtNumber(s.max)})`
}

function fmtRatio(w: Workload, r: Stats, withRange: boolean): string {
  // Shown the way the workload is read: throughput ratios for rates,
  // wall-time ratios for wall times (lower is better there).
  const range = (lo: number, hi: number) => (withRange && lo !== hi ? ` (${fmtX(lo)}-${fmtX(hi)})` : '')
  if (w.display === 'rate') return `${fmtX(r.median)}x${range(r.min, r.max)}`
  return `${fmtX(1 / r.median)}x wall${range(1 / r.max, 1 / r.min)}`
}

/** The label of a case, or of its namesake at another size (`w1-bare@100k` for `w1-bare@1M`). */
function caseLabel(summary: Summary, id: string): string {
  const cases = summary.results.cases
  const stem = id.replace(/(@.*|-1w)$/, '')
  return (cases.find((c) => c.id === id) ?? cases.find((c) => c.id.replace(/(@.*|-1w)$/, '') === stem))?.label ?? id
}

/** Markdown tables, one per workload, a column pair per Node. */
export function workloadTables(summary: Summary, opts: { descriptions: boolean }): string {
  const { results } = summary
  const lines: string[] = []
  const multi = results.rounds > 1
  for (const w of results.workloads) {
    const cs = summary.casesOf(w.id)
    if (cs.length === 0) continue
    const anyRun = cs.some((c) => results.nodes.some((n) => summary.get(n.key, c.id)?.score))
    if (!anyRun && results.quick && !w.quick) continue
    lines.push(`#### ${w.title}`, '')
    if (opts.descriptions) lines.push(w.description, '')
    const valueHead = { rate: 'per second', ms: 'wall', nsPerOp: 'per transfer', xIdeal: 'wall / ideal' }[w.display]
    const ref = caseLabel(summary, w.reference)
    const head = ['case']
    for (const n of results.nodes) {
      head.push(`${n.label}: ${valueHead}${multi ? ' (min-max)' : ''}`, `vs ${ref}${multi ? ' (min-max)' : ''}`)
      if (w.id.startsWith('W1')) head.push('peak RSS')
    }
    lines.push(`| ${head.join(' | ')} |`, `| --- |${' ---: |'.repeat(head.length - 1)}`)
    for (const c of cs) {
      const row = [c.ours ? `**${c.label}**` : c.label]
      for (const n of results.nodes) {
        const s = summary.get(n.key, c.id)
        if (!s?.shown) {
          row.push(shorten(s?.failure ?? 'not run', 70), '')
          if (w.id.startsWith('W1')) row.push('')
          continue
        }
        row.push(fmtShown(w, s.shown, multi), c.id === w.reference ? '1' : s.ratio ? fmtRatio(w, s.ratio, multi) : '')
        if (w.id.startsWith('W1')) row.push(s.rssMiB === undefined ? '' : `${Math.round(s.rssMiB)} MiB`)
      }
      lines.push(`| ${row.join(' | ')} |`)
    }
    lines.push('')
  }
  return lines.join('\n')
}

/** The targets from the issues next to what this run measured. */
export function targetTable(summary: Summary): string {
  const { results } = summary
  const tr = summary.targetResults()
  const head = ['target', 'issue', ...results.nodes.map((n) => n.label)]
  const lines = [`| ${head.join(' | ')} |`, `| --- | --- |${' --- |'.repeat(results.nodes.length)}`]
  for (const t of results.targets) {
    const w = summary.workload(t.workload)
    const row = [`${w.title.split(',')[0]}: ${t.text}`, t.issue]
    for (const n of results.nodes) {
      const r = tr.find((x) => x.target === t && x.node === n.key)!
      row.push(r.met === undefined ? r.shown : `${r.shown}: ${r.met ? 'met' : '**not met**'}`)
    }
    lines.push(`| ${row.join(' | ')} |`)
  }
  return lines.join('\n')
}

/** How cost grows with work (W1 sizes, W4 clients) and with cores (W4 native and W5 with 1 and 2 workers). */
export function scalingTables(summary: Summary): string {
  const { results } = summary
  const out: string[] = []
  const has = (id: string) => results.nodes.some((n) => summary.get(n.key, id)?.score)
  const cell = (node: string, id: string, f: (s: CaseSummary) => string) => {
    const s = summary.get(node, id)
    return s?.score ? f(s) : '-'
  }
  const perNode = (title: string, rows: Array<{ label: string; cells: (node: string) => string[] }>, cols: string[]) => {
    out.push(`#### ${title}`, '')
    const head = ['', ...results.nodes.flatMap((n) => cols.map((c) => `${n.label}: ${c}`))]
    out.push(`| ${head.join(' | ')} |`, `| --- |${' ---: |'.repeat(head.length - 1)}`)
    for (const r of rows) out.push(`| ${r.label} | ${results.nodes.flatMap((n) => r.cells(n.key)).join(' | ')} |`)
    out.push('')
  }
  const sizes = ['10k', '100k', '1M']
  if (has('w1-greenthread@10k') || has('w1-greenthread@1M')) {
    const impls = ['greenthread', 'bare', 'effect', 'gevent']
    perNode(
      'W1: microseconds per greenlet (spawn + yield + join) as the count grows',
      impls
        .filter((i) => sizes.some((k) => results.cases.some((c) => c.id === `w1-${i}@${k}`)))
        .map((i) => ({
          label: caseLabel(summary, `w1-${i}@100k`),
          cells: (node) => sizes.map((k) => cell(node, `w1-${i}@${k}`, (s) => (1e6 / s.score!.median).toFixed(2))),
        })),
      sizes,
    )
  }
  const clients = ['50', '500', '5000']
  if (has('w4-js@50') || has('w4-js@5000')) {
    perNode(
      'W4: msgs/s as the clients grow',
      ['js', 'native', 'sync', 'node', 'gevent', 'c'].map((s) => ({
        label: caseLabel(summary, `w4-${s}@500`),
        cells: (node) => clients.map((n) => cell(node, `w4-${s}@${n}`, (x) => fmtNumber(x.score!.median))),
      })),
      clients.map((c) => `${c} clients`),
    )
  }
  if (has('w4-native-1w@500') || has('w5a-thread-1w')) {
    const rows: Array<{ label: string; cells: (node: string) => string[] }> = []
    const pair = (label: string, one: string, two: string, f: (s: CaseSummary) => number, fmt: (x: number) => string) =>
      rows.push({
        label,
        cells: (node) => {
          const a = summary.get(node, one)?.score ? f(summary.get(node, one)!) : undefined
          const b = summary.get(node, two)?.score ? f(summary.get(node, two)!) : undefined
          return [a === undefined ? '-' : fmt(a), b === undefined ? '-' : fmt(b), a && b ? `${(b / a).toFixed(2)}x` : '-']
        },
      })
    // With 2 CPUs, the default (one worker per core) is the 2-worker case.
    const twoWorkers = results.cases.some((c) => c.id === 'w4-native-2w@500') ? 'w4-native-2w@500' : 'w4-native@500'
    pair("W4 native 'upper', 500 clients (msgs/s)", 'w4-native-1w@500', twoWorkers, (s) => s.score!.median, fmtNumber)
    for (const p of ['thread', 'process', 'piscina']) {
      pair(`W5a ${caseLabel(summary, `w5a-${p}`)} (tasks/s)`, `w5a-${p}-1w`, `w5a-${p}`, (s) => s.score!.median, fmtNumber)
    }
    for (const p of ['thread', 'process', 'piscina']) {
      // W5b in tasks/s rather than x ideal, so that the speed-up reads directly.
      pair(`W5b ${caseLabel(summary, `w5b-${p}`)} (tasks/s)`, `w5b-${p}-1w`, `w5b-${p}`, (s) => s.rate!.median, fmtNumber)
    }
    const where = results.pinning.pinned ? `; the echo servers run on CPU ${results.pinning.serverCpus}, so that their workers share what the load generator leaves` : ''
    perNode(`With cores: 1 worker and 2 workers (executors unpinned${where})`, rows, ['1 worker', '2 workers', 'speed-up'])
  }
  return out.join('\n')
}

// ---------------------------------------------------------------- the chart

const COLORS = ['#2b6cb0', '#dd6b20', '#2f855a', '#805ad5', '#b83280']

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function fmtTick(x: number): string {
  return x >= 1 ? `${x}x` : `1/${Math.round(1 / x)}x`
}

function fmtX(x: number): string {
  return x < 0.1 ? x.toPrecision(2) : x.toFixed(2)
}

/**
 * One panel per workload; in each, a row per case and a bar per Node: the
 * case's score over the best peer's (log scale, 1x = the best peer, right
 * is faster). A red tick on a row is where its target lies.
 */
export function chartSvg(summary: Summary): string {
  const { results } = summary
  const width = 900
  const labelW = 310
  const plotX = labelW + 10
  const plotW = width - plotX - 60
  const barH = 9
  const gap = 6
  const nodes = results.nodes
  const parts: string[] = []
  let y = 0
  const title = `greenthread vs peers, ${results.date}${results.quick ? ' (--quick: 1 round, indicative only)' : `, ${results.rounds} rounds`}`
  parts.push(`<text x="10" y="${(y += 22)}" font-size="15" font-weight="bold">${esc(title)}</text>`)
  y += 8
  // Legend.
  let lx = 10
  for (const [i, n] of nodes.entries()) {
    parts.push(`<rect x="${lx}" y="${y}" width="14" height="10" fill="${COLORS[i % COLORS.length]}"/>`)
    parts.push(`<text x="${lx + 18}" y="${y + 9}" font-size="11">${esc(n.label)}</text>`)
    lx += 30 + n.label.length * 6.5
  }
  parts.push(`<rect x="${lx}" y="${y}" width="14" height="10" fill="#718096" opacity="0.4"/>`)
  parts.push(`<text x="${lx + 18}" y="${y + 9}" font-size="11">peers light, greenthread solid</text>`)
  lx += 200
  parts.push(`<line x1="${lx}" y1="${y - 2}" x2="${lx}" y2="${y + 12}" stroke="#c53030" stroke-width="2"/>`)
  parts.push(`<text x="${lx + 6}" y="${y + 9}" font-size="11">target (issue)</text>`)
  y += 18
  parts.push(`<text x="10" y="${(y += 12)}" font-size="11" fill="#4a5568">bars: score / best peer's score on the same Node (log scale; 1x = the best peer, longer = faster)</text>`)
  y += 10

  for (const w of results.workloads) {
    const cs = summary.casesOf(w.id)
    const any = cs.some((c) => nodes.some((n) => summary.get(n.key, c.id)?.score))
    if (!any) continue
    // Values and target positions, relative to the best peer per Node.
    const rel = (node: string, id: string) => {
      const best = summary.bestPeer(node, w.id)
      const s = summary.get(node, id)?.score?.median
      return best && s ? s / best : undefined
    }
    const targetsHere = results.targets.filter((t) => t.workload === w.id && t.measure !== 'rss')
    const values: number[] = []
    for (const n of nodes) {
      for (const c of cs) {
        const v = rel(n.key, c.id)
        if (v) values.push(v)
      }
      for (const t of targetsHere) {
        const th = summary.threshold(n.key, t)
        const best = summary.bestPeer(n.key, w.id)
        if (th && best) values.push(th / best)
      }
    }
    const lo = Math.min(1 / 4, 2 ** Math.floor(Math.log2(Math.min(...values)) - 0.1))
    const hi = Math.max(2, 2 ** Math.ceil(Math.log2(Math.max(...values)) + 0.1))
    const x = (v: number) => plotX + ((Math.log2(v) - Math.log2(lo)) / (Math.log2(hi) - Math.log2(lo))) * plotW
    y += 26
    parts.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${esc(w.title)}</text>`)
    y += 8
    const top = y
    const rowH = nodes.length * barH + gap
    const panelH = cs.length * rowH + 4
    // Grid: powers of 2 (labels every other one when crowded).
    const steps = Math.log2(hi) - Math.log2(lo)
    for (let e = Math.log2(lo); e <= Math.log2(hi) + 1e-9; e++) {
      const v = 2 ** e
      const gx = x(v)
      parts.push(`<line x1="${gx.toFixed(1)}" y1="${top}" x2="${gx.toFixed(1)}" y2="${top + panelH}" stroke="${e === 0 ? '#1a202c' : '#e2e8f0'}" stroke-width="${e === 0 ? 1.2 : 1}"/>`)
      if (steps <= 10 || e % 2 === 0) parts.push(`<text x="${gx.toFixed(1)}" y="${top + panelH + 11}" font-size="9" text-anchor="middle" fill="#4a5568">${fmtTick(v)}</text>`)
    }
    for (const [ci, c] of cs.entries()) {
      const ry = top + 2 + ci * rowH
      parts.push(
        `<text x="${labelW}" y="${ry + (nodes.length * barH) / 2 + 4}" font-size="11" text-anchor="end"${c.ours ? ' font-weight="bold"' : ' fill="#4a5568"'}>${esc(shorten(c.label, 46))}</text>`,
      )
      for (const [ni, n] of nodes.entries()) {
        const by = ry + ni * barH
        const v = rel(n.key, c.id)
        if (v === undefined) {
          const s = summary.get(n.key, c.id)
          parts.push(`<text x="${plotX + 4}" y="${by + barH - 1}" font-size="8" fill="#a0aec0">${esc(shorten(s?.failure ?? 'not run', 80))}</text>`)
          continue
        }
        const bw = Math.max(1, x(v) - plotX)
        parts.push(
          `<rect x="${plotX}" y="${by}" width="${bw.toFixed(1)}" height="${barH - 1}" fill="${COLORS[ni % COLORS.length]}"${c.ours ? '' : ' opacity="0.4"'}><title>${esc(`${c.label}, ${n.label}: ${v.toFixed(3)}x the best peer`)}</title></rect>`,
        )
        parts.push(`<text x="${(plotX + bw + 3).toFixed(1)}" y="${by + barH - 1}" font-size="8" fill="#2d3748">${fmtX(v)}x</text>`)
      }
      for (const t of targetsHere.filter((t) => t.ours === c.id)) {
        for (const [ni, n] of nodes.entries()) {
          const th = summary.threshold(n.key, t)
          const best = summary.bestPeer(n.key, w.id)
          if (!th || !best) continue
          const tx = x(th / best)
          const by = ry + ni * barH
          parts.push(
            `<line x1="${tx.toFixed(1)}" y1="${by - 1}" x2="${tx.toFixed(1)}" y2="${by + barH}" stroke="#c53030" stroke-width="2"><title>${esc(`${t.text} (${t.issue}), ${n.label}`)}</title></line>`,
          )
        }
      }
    }
    y = top + panelH + 14
  }
  const height = y + 10
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n')
}
