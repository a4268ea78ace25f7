// Runs grouped by a config value (view.group, e.g. `lr` for runs that differ only in their
// seed): one line per group and metric, the mean over its runs, with a ± one standard
// deviation band. Each run's line is read at the x of the group's densest run (linear
// interpolation between its points; none outside its own x range).

export const NO_VALUE = '(none)'

export function groupValue(board, key) {
  const v = (board.config_summary || {})[key]
  return v === undefined || v === null ? NO_VALUE : String(v)
}

// config keys the selected runs have (the group menu)
export function configKeys(boards) {
  const keys = new Set()
  for (const b of boards) for (const k of Object.keys(b.config_summary || {})) keys.add(k)
  return [...keys].sort()
}

function valueAt(xs, ys, x) {
  const n = xs.length
  if (!n || x < xs[0] || x > xs[n - 1]) return NaN
  let lo = 0
  let hi = n - 1
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (xs[mid] <= x) lo = mid
    else hi = mid
  }
  if (xs[lo] === x || lo === hi) return ys[lo]
  if (xs[hi] === x) return ys[hi]
  return ys[lo] + ((ys[hi] - ys[lo]) * (x - xs[lo])) / (xs[hi] - xs[lo])
}

export function groupTraces(traces, key) {
  const groups = new Map()
  for (const t of traces) {
    const id = `${t.metric}\u0000${groupValue(t.board, key)}`
    if (!groups.has(id)) groups.set(id, [])
    groups.get(id).push(t)
  }
  const out = []
  for (const [id, members] of groups) {
    const drawn = members.filter((m) => m.count)
    const first = members[0]
    const value = groupValue(first.board, key)
    const base = {
      key: `group\u0000${id}`,
      board: first.board,
      metric: first.metric,
      label: `${key}=${value}` + (first.label.includes(' · ') ? ` · ${first.metric}` : ''),
      members: members.length,
      ids: members.map((m) => m.board.id),
      dash: first.dash,
      hidden: members.every((m) => m.hidden),
      color: first.color,
      smoothed: null,
      total: members.reduce((s, m) => s + m.total, 0),
      nonfinite: {},
      last: null,
      missing: drawn.length ? null : first.missing,
    }
    if (!drawn.length) {
      out.push({ ...base, x: new Float64Array(0), y: new Float64Array(0), count: 0 })
      continue
    }
    const grid = drawn.reduce((a, m) => (m.count > a.count ? m : a), drawn[0]).x
    const xs = []
    const mean = []
    const hi = []
    const lo = []
    for (const x of grid) {
      const vals = []
      for (const m of drawn) {
        const v = valueAt(m.x, m.smoothed || m.y, x)
        if (Number.isFinite(v)) vals.push(v)
      }
      if (!vals.length) continue
      const mu = vals.reduce((s, v) => s + v, 0) / vals.length
      const sd = Math.sqrt(vals.reduce((s, v) => s + (v - mu) ** 2, 0) / vals.length)
      xs.push(x)
      mean.push(mu)
      hi.push(mu + sd)
      lo.push(mu - sd)
    }
    out.push({
      ...base,
      x: Float64Array.from(xs),
      y: Float64Array.from(mean),
      band: { hi: Float64Array.from(hi), lo: Float64Array.from(lo) },
      count: xs.length,
    })
  }
  return out
}
