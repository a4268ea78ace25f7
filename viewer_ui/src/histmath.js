// Numbers behind the histogram drawings: rebinning, axis ticks, colour mixing.

// Where x lies among ascending `edges`, in bins: 0 at the first edge, edges.length - 1 at
// the last, linear inside a bin (clamped outside).
export function edgePosition(edges, x) {
  const n = edges.length - 1
  if (x <= edges[0]) return 0
  if (x >= edges[n]) return n
  let lo = 0
  let hi = n
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (edges[mid] <= x) lo = mid
    else hi = mid
  }
  return lo + (x - edges[lo]) / (edges[lo + 1] - edges[lo] || 1)
}

// Move a histogram onto other edges, keeping mass: interpolate the cumulative counts at the
// new edges (mass outside the new range is dropped). `log`: the target is a sign-aware log
// grid, whose centre keeps the histogram's centre bins (as the server's rebinning does).
export function rebin(sourceEdges, counts, target, { log = false } = {}) {
  let edges = sourceEdges
  let cum = [0]
  for (const c of counts) cum.push(cum[cum.length - 1] + (Number.isFinite(c) ? c : 0))
  if (log) [edges, cum] = centreAtZero(edges, cum, target.reduce((m, x) => (x > 0 && x < m ? x : m), Infinity) / 2)
  const at = (x) => {
    const p = edgePosition(edges, x)
    const i = Math.min(Math.floor(p), cum.length - 2)
    return cum[i] + (p - i) * (cum[i + 1] - cum[i])
  }
  const out = []
  let prev = at(target[0])
  for (let i = 1; i < target.length; i++) {
    const next = at(target[i])
    out.push(Math.max(0, next - prev))
    prev = next
  }
  return out
}

// A log-binned histogram's centre bins ([-a, a), or [-a, 0) and [0, a)) hold the values
// "about zero": on a grid of finer centre bins their counts go within nearZero of 0 instead
// of being spread evenly up to +-a (see centre_at_zero in kohakuboard/viewer/histview.py).
export function centreAtZero(edges, cum, nearZero) {
  const below = edges.findLastIndex((x) => x < 0)
  const above = edges.findIndex((x) => x > 0)
  if (!(nearZero > 0) || below < 0 || above < 0 || Math.min(-edges[below], edges[above]) <= nearZero) {
    return [edges, cum]
  }
  return [
    [...edges.slice(0, below + 1), -nearZero, ...edges.slice(below + 1, above), nearZero, ...edges.slice(above)],
    [...cum.slice(0, below + 1), cum[below], ...cum.slice(below + 1, above), cum[above], ...cum.slice(above)],
  ]
}

// A round distance (1, 2, 2.5 or 5 times a power of ten) that cuts [lo, hi] into about n parts
export function niceStep(lo, hi, n = 5) {
  const raw = (hi - lo) / n
  const mag = 10 ** Math.floor(Math.log10(raw))
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw
}

// About `n` round tick values in [lo, hi]
export function niceTicks(lo, hi, n = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return []
  if (hi <= lo) return [lo]
  const step = niceStep(lo, hi, n)
  const ticks = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v)
  }
  return ticks
}

// '#rgb' | '#rrggbb' | 'rgb(a)(...)' -> [r, g, b]
export function rgbOf(color) {
  const c = (color || '').trim()
  if (c.startsWith('#')) {
    const hex = c.length === 4 ? [...c.slice(1)].map((h) => h + h).join('') : c.slice(1, 7)
    const n = parseInt(hex, 16)
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255]
  }
  const m = c.match(/[\d.]+/g)
  return m ? m.slice(0, 3).map(Number) : [128, 128, 128]
}

// a + (b - a) * t, per channel, as rgb()
export function mix(a, b, t) {
  const x = rgbOf(a)
  const y = rgbOf(b)
  const ch = x.map((v, i) => Math.round(v + (y[i] - v) * t))
  return `rgb(${ch[0]}, ${ch[1]}, ${ch[2]})`
}
