// Canvas drawings of histograms (2D context): ridgeline (offset), overlay, percentile bands
// (distribution), heatmap over steps, and the bar histogram of one step. Colours come from
// the CSS variables, so the caller redraws when the theme changes.
import { fmtTicks, fmtValue } from './format.js'
import { edgePosition, mix, niceTicks, rgbOf } from './histmath.js'

const FONT = '10px system-ui, sans-serif'

export function themeColors() {
  const css = getComputedStyle(document.documentElement)
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback
  return {
    text: v('--text', '#1f2329'),
    muted: v('--muted', '#6b7280'),
    border: v('--border', '#e2e5ea'),
    accent: v('--accent', '#c8741c'),
    panel: v('--panel', '#ffffff'),
  }
}

// size the backing store for the screen's pixel ratio; draw in CSS pixels
export function prepare(canvas, width, height) {
  const dpr = window.devicePixelRatio || 1
  canvas.width = Math.max(1, Math.round(width * dpr))
  canvas.height = Math.max(1, Math.round(height * dpr))
  canvas.style.width = `${width}px`
  canvas.style.height = `${height}px`
  const ctx = canvas.getContext('2d')
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
  ctx.clearRect(0, 0, width, height)
  ctx.font = FONT
  return ctx
}

const maxOf = (rows) => rows.reduce((m, row) => row.reduce((a, v) => (v > a ? v : a), m), 0)
const scaleOf = (lo, hi, a, b) => (v) => a + ((v - lo) / (hi - lo || 1)) * (b - a)

// Value -> pixel along a histogram's value axis. A log grid (range.scale 'log': sign-aware
// log bins) gives every bin the same width, linear inside a bin; a linear grid is linear.
function gridScale(range, a, b) {
  const edges = range.edges
  const B = edges.length - 1
  if (range.scale !== 'log' || B < 1) return scaleOf(range.lo, range.hi, a, b)
  return (v) => a + (edgePosition(edges, v) / B) * (b - a)
}

// 2 significant digits, exponent form for the very small or large: fits a narrow margin
function shortValue(v) {
  if (v === 0 || !Number.isFinite(v)) return String(v)
  const a = Math.abs(v)
  return a < 0.01 || a >= 1e4 ? v.toExponential(1) : String(Number(v.toPrecision(2)))
}

// the edges of a log grid that are labelled: a few, evenly spaced in bins (0 in the middle)
function gridPicks(range) {
  const B = range.edges.length - 1
  const picks = [...new Set([0, B / 4, B / 2, (3 * B) / 4, B].map((j) => Math.round(j)))]
  return picks.map((j) => range.edges[j])
}

// the labels a vertical axis over [lo, hi] (valueAxis) or over a grid (gridAxis) shows
const valueLabels = (lo, hi) => fmtTicks(niceTicks(lo, hi, 4))
const gridLabels = (range) => (range.scale === 'log' ? gridPicks(range).map(shortValue) : valueLabels(range.lo, range.hi))

// a left margin wide enough for the widest label (1.00002e7 is wider than the usual 48 px)
function leftMargin(ctx, labels, least) {
  const widest = labels.reduce((m, label) => Math.max(m, ctx.measureText(label).width), 0)
  return Math.max(least, Math.ceil(widest) + 8)
}

// x of a label centred at x, moved in where it would stick out of the canvas (4 px margin)
function inside(ctx, label, x) {
  const half = ctx.measureText(label).width / 2 + 4
  const width = parseFloat(ctx.canvas.style.width) || Infinity // CSS px, set by prepare()
  return Math.max(half, Math.min(x, width - half))
}

// Labels of a log grid: a few of its edges, evenly spaced in bins (0 in the middle).
function gridAxis(ctx, box, range, theme, { vertical = false } = {}) {
  if (range.scale !== 'log') return valueAxis(ctx, box, range.lo, range.hi, theme, { vertical })
  const values = gridPicks(range)
  const labels = values.map(shortValue)
  const pos = gridScale(range, vertical ? box.b : box.l, vertical ? box.t : box.r)
  ctx.fillStyle = theme.muted
  ctx.strokeStyle = theme.border
  ctx.lineWidth = 1
  if (vertical) {
    ctx.textAlign = 'right'
    ctx.textBaseline = 'middle'
    values.forEach((v, i) => ctx.fillText(labels[i], box.l - 4, pos(v)))
  } else {
    ctx.textAlign = 'center'
    ctx.textBaseline = 'top'
    values.forEach((v, i) => ctx.fillText(labels[i], inside(ctx, labels[i], pos(v)), box.b + 4))
    ctx.beginPath()
    ctx.moveTo(box.l, box.b + 0.5)
    ctx.lineTo(box.r, box.b + 0.5)
    ctx.stroke()
  }
}

function valueAxis(ctx, box, lo, hi, theme, { vertical = false } = {}) {
  const ticks = niceTicks(lo, hi, vertical ? 4 : 5)
  const labels = fmtTicks(ticks)
  ctx.fillStyle = theme.muted
  ctx.strokeStyle = theme.border
  ctx.lineWidth = 1
  if (vertical) {
    const y = scaleOf(lo, hi, box.b, box.t)
    ctx.textAlign = 'right'
    ctx.textBaseline = 'middle'
    ticks.forEach((v, i) => {
      ctx.fillText(labels[i], box.l - 4, y(v))
      ctx.beginPath()
      ctx.moveTo(box.l, Math.round(y(v)) + 0.5)
      ctx.lineTo(box.r, Math.round(y(v)) + 0.5)
      ctx.stroke()
    })
  } else {
    const x = scaleOf(lo, hi, box.l, box.r)
    ctx.textAlign = 'center'
    ctx.textBaseline = 'top'
    ticks.forEach((v, i) => ctx.fillText(labels[i], inside(ctx, labels[i], x(v)), box.b + 4))
    ctx.beginPath()
    ctx.moveTo(box.l, box.b + 0.5)
    ctx.lineTo(box.r, box.b + 0.5)
    ctx.stroke()
  }
}

function centres(edges) {
  const out = []
  for (let i = 0; i + 1 < edges.length; i++) out.push((edges[i] + edges[i + 1]) / 2)
  return out
}

function ridgePath(ctx, xs, counts, x, base, height, peak, lo, hi) {
  ctx.beginPath()
  ctx.moveTo(x(lo), base)
  counts.forEach((c, j) => ctx.lineTo(x(xs[j]), base - (peak ? (c / peak) * height : 0)))
  ctx.lineTo(x(hi), base)
}

// TensorBoard's offset view: one ridge per step, the oldest at the back (top), later in front.
// `highlight`: {step, counts} on the range's grid (the slider's step), outlined in the text colour.
export function drawOffset(ctx, { w, h, range, highlight, color, theme }) {
  const box = { l: 8, t: 6, r: w - 52, b: h - 18 }
  const K = range.steps.length
  const xs = centres(range.edges)
  const x = gridScale(range, box.l, box.r)
  const peak = Math.max(maxOf(range.counts), highlight ? maxOf([highlight.counts]) : 0)
  const plotH = box.b - box.t
  const ridgeH = K > 1 ? Math.min(plotH * 0.45, Math.max(plotH / 4, 24)) : plotH
  const spacing = K > 1 ? (plotH - ridgeH) / (K - 1) : 0
  const base = (i) => box.t + ridgeH + i * spacing
  for (let i = 0; i < K; i++) {
    const f = K > 1 ? i / (K - 1) : 1
    ridgePath(ctx, xs, range.counts[i], x, base(i), ridgeH, peak, range.lo, range.hi)
    ctx.fillStyle = mix(theme.panel, color, 0.1 + 0.3 * f)
    ctx.fill()
    ctx.strokeStyle = mix(theme.panel, color, 0.45 + 0.55 * f)
    ctx.lineWidth = 1
    ctx.stroke()
  }
  let hy = null
  if (highlight && K) {
    hy = stepPosition(range.steps, highlight.step, base, spacing)
    ridgePath(ctx, xs, highlight.counts, x, hy, ridgeH, peak, range.lo, range.hi)
    ctx.strokeStyle = theme.text
    ctx.lineWidth = 2
    ctx.stroke()
  }
  // step labels on the right, as many as fit (always the newest)
  ctx.textAlign = 'left'
  ctx.textBaseline = 'middle'
  let last = Infinity
  for (let i = K - 1; i >= 0; i--) {
    const y = base(i)
    if (last - y < 11) continue
    if (hy !== null && Math.abs(y - hy) < 10) continue
    ctx.fillStyle = theme.muted
    ctx.fillText(String(range.steps[i]), box.r + 6, y)
    last = y
  }
  if (hy !== null) {
    ctx.fillStyle = theme.text
    ctx.font = `600 ${FONT}`
    ctx.fillText(String(highlight.step), box.r + 6, hy)
    ctx.font = FONT
  }
  gridAxis(ctx, box, range, theme)
}

// baseline of a step between the ridges of the picked steps (they are evenly spaced rows)
function stepPosition(steps, step, base, spacing) {
  const K = steps.length
  if (K === 1 || step <= steps[0]) return base(0)
  if (step >= steps[K - 1]) return base(K - 1)
  let i = 0
  while (i + 1 < K && steps[i + 1] < step) i++
  const f = (step - steps[i]) / (steps[i + 1] - steps[i] || 1)
  return base(i) + f * spacing
}

// All picked steps as lines on one axis, faint (early) to strong (late).
export function drawOverlay(ctx, { w, h, range, highlight, color, theme }) {
  const K = range.steps.length
  const xs = centres(range.edges)
  const peak = Math.max(maxOf(range.counts), highlight ? maxOf([highlight.counts]) : 0) || 1
  const box = { l: leftMargin(ctx, valueLabels(0, peak), 44), t: 8, r: w - 8, b: h - 18 }
  const x = gridScale(range, box.l, box.r)
  const y = scaleOf(0, peak, box.b, box.t)
  valueAxis(ctx, box, 0, peak, theme, { vertical: true })
  gridAxis(ctx, box, range, theme)
  const line = (counts) => {
    ctx.beginPath()
    counts.forEach((c, j) => (j ? ctx.lineTo(x(xs[j]), y(c)) : ctx.moveTo(x(xs[j]), y(c))))
    ctx.stroke()
  }
  ctx.lineWidth = 1.2
  for (let i = 0; i < K; i++) {
    ctx.strokeStyle = mix(theme.panel, color, 0.2 + 0.8 * (K > 1 ? i / (K - 1) : 1))
    line(range.counts[i])
  }
  if (highlight) {
    ctx.strokeStyle = theme.text
    ctx.lineWidth = 2.2
    line(highlight.counts)
  }
  ctx.fillStyle = theme.muted
  ctx.textAlign = 'right'
  ctx.textBaseline = 'top'
  if (K) ctx.fillText(`steps ${range.steps[0]} → ${range.steps[K - 1]}`, box.r, box.t)
}

// Percentile bands over steps: min-max, 7-93, 16-84, 31-69 and the median.
export function drawDistribution(ctx, { w, h, range, step, color, theme }) {
  let rows = range.steps
    .map((s, i) => [s, range.percentiles[i]])
    .filter(([, p]) => p && p.length === 9 && p.every(Number.isFinite))
  if (!rows.length) return
  // one step: its bands span a unit around it (a single column would have no width)
  if (rows.length === 1) rows = [-0.5, 0.5].map((d) => [rows[0][0] + d, rows[0][1]])
  let lo = Infinity
  let hi = -Infinity
  for (const [, p] of rows) {
    lo = Math.min(lo, p[0])
    hi = Math.max(hi, p[8])
  }
  if (hi <= lo) [lo, hi] = [lo - 0.5, hi + 0.5]
  const box = { l: leftMargin(ctx, valueLabels(lo, hi), 48), t: 8, r: w - 8, b: h - 18 }
  // the x axis spans every picked step: steps without a finite value (a run that diverged)
  // stay visible as an empty stretch, and so does the slider's step among them
  const s0 = Math.min(rows[0][0], range.steps[0])
  const s1 = Math.max(rows[rows.length - 1][0], range.steps[range.steps.length - 1])
  const x = scaleOf(s0, s1, box.l, box.r)
  const y = scaleOf(lo, hi, box.b, box.t)
  valueAxis(ctx, box, lo, hi, theme, { vertical: true })
  stepAxis(ctx, box, s0, s1, x, theme)
  const [r, g, b] = rgbOf(color)
  ;[0.14, 0.18, 0.24, 0.32].forEach((alpha, j) => {
    ctx.beginPath()
    rows.forEach(([s, p], i) => (i ? ctx.lineTo(x(s), y(p[8 - j])) : ctx.moveTo(x(s), y(p[8 - j]))))
    for (let i = rows.length - 1; i >= 0; i--) ctx.lineTo(x(rows[i][0]), y(rows[i][1][j]))
    ctx.closePath()
    ctx.fillStyle = `rgba(${r}, ${g}, ${b}, ${alpha})`
    ctx.fill()
  })
  ctx.beginPath()
  rows.forEach(([s, p], i) => (i ? ctx.lineTo(x(s), y(p[4])) : ctx.moveTo(x(s), y(p[4]))))
  ctx.strokeStyle = color
  ctx.lineWidth = 1.5
  ctx.stroke()
  stepMarker(ctx, box, step, x, theme)
}

function stepAxis(ctx, box, s0, s1, x, theme) {
  const ticks = niceTicks(s0, s1, 5).filter((v) => Number.isInteger(v))
  ctx.fillStyle = theme.muted
  ctx.textAlign = 'center'
  ctx.textBaseline = 'top'
  // the first and last labels sit at the plot's edges: moved in, not cut (inside)
  for (const v of ticks) ctx.fillText(String(v), inside(ctx, String(v), x(v)), box.b + 4)
}

function stepMarker(ctx, box, step, x, theme) {
  if (step === null || step === undefined) return
  const px = Math.round(x(step)) + 0.5
  ctx.strokeStyle = theme.text
  ctx.lineWidth = 1.5
  ctx.beginPath()
  ctx.moveTo(px, box.t)
  ctx.lineTo(px, box.b)
  ctx.stroke()
}

// Bins (y) x picked steps (x), the colour by log(1 + count). Returns the geometry for hovering.
export function drawHeatmap(ctx, { w, h, range, step, color, theme }) {
  const K = range.steps.length
  const B = range.edges.length - 1
  if (!K || B < 1) return null
  const box = { l: leftMargin(ctx, gridLabels(range), 48), t: 6, r: w - 44, b: h - 18 }
  const peak = maxOf(range.counts)
  const scale = Math.log1p(peak) || 1
  const bg = rgbOf(theme.panel)
  const fg = rgbOf(color)
  const image = new ImageData(K, B)
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < B; j++) {
      const t = Math.log1p(Math.max(0, range.counts[i][j])) / scale
      const o = ((B - 1 - j) * K + i) * 4
      for (let c = 0; c < 3; c++) image.data[o + c] = bg[c] + (fg[c] - bg[c]) * t
      image.data[o + 3] = 255
    }
  }
  const cells = document.createElement('canvas')
  cells.width = K
  cells.height = B
  cells.getContext('2d').putImageData(image, 0, 0)
  ctx.imageSmoothingEnabled = false
  ctx.drawImage(cells, box.l, box.t, box.r - box.l, box.b - box.t)
  gridAxis(ctx, { ...box, r: box.l }, range, theme, { vertical: true })
  // step labels under a few columns
  const colW = (box.r - box.l) / K
  const every = Math.max(1, Math.ceil(K / Math.max(1, Math.floor((box.r - box.l) / 60))))
  ctx.fillStyle = theme.muted
  ctx.textAlign = 'center'
  ctx.textBaseline = 'top'
  for (let i = 0; i < K; i += every) {
    const label = String(range.steps[i])
    ctx.fillText(label, inside(ctx, label, box.l + (i + 0.5) * colW), box.b + 4)
  }
  if (step !== null && step !== undefined) {
    let i = 0
    while (i + 1 < K && Math.abs(range.steps[i + 1] - step) <= Math.abs(range.steps[i] - step)) i++
    ctx.strokeStyle = theme.text
    ctx.lineWidth = 1.5
    ctx.strokeRect(box.l + i * colW + 0.5, box.t + 0.5, Math.max(colW - 1, 1), box.b - box.t - 1)
  }
  // colour scale: 0 at the bottom, the largest count (labelled) at the top, log spaced
  const lx = box.r + 8
  const top = box.t + 12
  const grad = ctx.createLinearGradient(0, box.b, 0, top)
  grad.addColorStop(0, theme.panel)
  grad.addColorStop(1, color)
  ctx.fillStyle = grad
  ctx.fillRect(lx, top, 8, box.b - top)
  ctx.strokeStyle = theme.border
  ctx.strokeRect(lx + 0.5, top + 0.5, 7, box.b - top - 1)
  ctx.fillStyle = theme.muted
  ctx.textAlign = 'right'
  ctx.textBaseline = 'top'
  ctx.fillText(fmtValue(Math.round(peak)), w - 2, box.t)
  ctx.fillText('0', w - 2, box.b + 4)
  return { box, K, B, peak }
}

// the (step, bin) under a point of a drawn heatmap, or null
export function heatmapCell(geom, range, px, py) {
  if (!geom) return null
  const { box, K, B } = geom
  if (px < box.l || px >= box.r || py < box.t || py >= box.b) return null
  const i = Math.min(K - 1, Math.floor(((px - box.l) / (box.r - box.l)) * K))
  const j = Math.min(B - 1, Math.floor(((box.b - py) / (box.b - box.t)) * B))
  return { step: range.steps[i], lo: range.edges[j], hi: range.edges[j + 1], count: range.counts[i][j] }
}

// The histogram of one step as bars. Log-binned histograms are drawn by bin index (their bins
// differ in width by orders of magnitude); linear ones by value.
export function drawBars(ctx, { w, h, at, color, theme }) {
  const box = { l: 4, t: 4, r: w - 4, b: h - 16 }
  const B = at.counts.length
  if (!B) return
  const byIndex = at.scale === 'log'
  const lo = at.edges[0]
  const hi = at.edges[B]
  const x = byIndex ? scaleOf(0, B, box.l, box.r) : scaleOf(lo, hi, box.l, box.r)
  const peak = maxOf([at.counts]) || 1 // not Math.max(...counts): 200k bins overflow the stack
  const y = scaleOf(0, peak, box.b, box.t)
  ctx.fillStyle = color
  for (let j = 0; j < B; j++) {
    const x0 = byIndex ? x(j) : x(at.edges[j])
    const x1 = byIndex ? x(j + 1) : x(at.edges[j + 1])
    const top = y(at.counts[j])
    ctx.fillRect(x0, top, Math.max(x1 - x0 - (x1 - x0 > 3 ? 1 : 0), 0.5), box.b - top)
  }
  ctx.strokeStyle = theme.border
  ctx.beginPath()
  ctx.moveTo(box.l, box.b + 0.5)
  ctx.lineTo(box.r, box.b + 0.5)
  ctx.stroke()
  const [a, b] = [fmtValue(lo), fmtValue(hi)]
  ctx.fillStyle = theme.muted
  ctx.textBaseline = 'top'
  ctx.textAlign = 'left'
  ctx.fillText(a, box.l, box.b + 3)
  ctx.textAlign = 'right'
  ctx.fillText(b, box.r, box.b + 3)
}
