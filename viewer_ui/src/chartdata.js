// Turning decoded series into uPlot data and options, and chart exports.
import uPlot from 'uplot'
import { colorOf, fade } from './colors.js'
import { fmtDuration, fmtTicks } from './format.js'

// One entry per (board, series) of the answer: its own (x, raw, smoothed) arrays. With
// several metrics on one chart (`metrics`), each gets its own dash pattern and the legend
// names both; `hidden` holds the ids of runs the user hid (their legend entry stays).
export function tracesOf(doc, boards, { metrics = null, hidden = [] } = {}) {
  const byId = Object.fromEntries(boards.map((b) => [b.id, b]))
  const multi = !!metrics && metrics.length > 1
  const traces = []
  for (const s of doc ? doc.series : []) {
    const board = byId[s.board]
    if (!board) continue
    const m = metrics ? Math.max(metrics.indexOf(s.metric), 0) : 0
    traces.push({
      key: `${s.board}\u0000${s.metric}`,
      board,
      metric: s.metric,
      label: multi ? `${board.name} · ${s.metric}` : board.name,
      dash: m,
      hidden: hidden.includes(board.id),
      color: colorOf(board),
      x: s.arrays.x || new Float64Array(0),
      y: s.arrays.y || new Float64Array(0),
      smoothed: s.arrays.smoothed || null,
      total: s.total,
      count: s.count,
      nonfinite: s.nonfinite || {},
      last: s.last,
      missing: s.missing,
    })
  }
  return traces
}

// Line styles of the 1st, 2nd, ... metric of a chart (the first solid)
const DASHES = [undefined, [6, 4], [2, 3], [10, 3, 2, 3]]
const dashOf = (t) => DASHES[t.dash % DASHES.length]

// The uPlot series of the traces, in order: per trace with points its faint raw line (when
// smoothed and shown), its main line (smoothed, raw, or a group's mean) and, for a group, the
// upper and lower edge of its band. `main[k]` is the series index of trace k's main line (or
// -1), `owner[i]` the trace of series i.
export function seriesLayout(traces, showRaw) {
  const main = []
  const owner = [-1]
  traces.forEach((t, k) => {
    if (!t.count) return main.push(-1)
    if (t.smoothed && showRaw) owner.push(k)
    main.push(owner.length)
    owner.push(k)
    if (t.band) owner.push(k, k)
  })
  return { main, owner }
}

const positive = (arr) => Array.from(arr, (v) => (v > 0 ? v : null))

// The x of a trace's NaN/Inf markers join its columns with no y, so the x scale reaches
// them (a loss that diverged after its last finite point still shows where it did).
function withMarkerXs(t, cols) {
  const extra = Object.values(t.nonfinite).flatMap((nf) => nf.x)
  if (!extra.length) return cols
  const rows = Array.from(t.x, (x, i) => cols.map((c) => c[i]))
  for (const x of extra) rows.push([x, ...cols.slice(1).map(() => null)])
  rows.sort((a, b) => a[0] - b[0])
  return cols.map((_, j) => rows.map((r) => r[j]))
}

// uPlot's aligned data: one shared x column; per trace a raw and (if smoothed) a smoothed column.
export function alignedData(traces, { logY, showRaw }) {
  const tables = []
  for (const t of traces) {
    if (!t.count) continue
    const cols = [t.x]
    const shown = (arr) => (logY ? positive(arr) : arr)
    if (!t.smoothed || showRaw) cols.push(shown(t.y))
    if (t.smoothed) cols.push(shown(t.smoothed))
    if (t.band) cols.push(shown(t.band.hi), shown(t.band.lo))
    tables.push(withMarkerXs(t, cols))
  }
  if (!tables.length) return [[]]
  return tables.length === 1 ? tables[0] : joinSorted(tables)
}

// uPlot.join for tables whose x columns are sorted (every trace's are): one shared x column,
// the union of theirs, and each other column spread onto it (undefined where a table has no
// point; a null stays null). A sort and a merge instead of hashing every x.
export function joinSorted(tables) {
  let total = 0
  for (const t of tables) total += t[0].length
  const all = new Float64Array(total)
  let at = 0
  for (const t of tables) {
    all.set(t[0], at)
    at += t[0].length
  }
  all.sort()
  let n = 0
  for (let i = 0; i < total; i++) if (n === 0 || all[i] !== all[n - 1]) all[n++] = all[i]
  const xs = all.slice(0, n)
  const data = [xs]
  for (const t of tables) {
    const x = t[0]
    const where = new Int32Array(x.length)
    let j = 0
    for (let i = 0; i < x.length; i++) {
      while (xs[j] < x[i]) j++
      where[i] = j
    }
    for (let c = 1; c < t.length; c++) {
      const col = t[c]
      const out = new Array(n).fill(undefined)
      for (let i = 0; i < where.length; i++) out[where[i]] = col[i]
      data.push(out)
    }
  }
  return data
}

function quantile(sorted, q) {
  if (!sorted.length) return NaN
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
}

// y range that ignores the outer 2% of points on each side (TensorBoard's "ignore outliers")
export function robustRange(traces, showRaw) {
  const values = []
  for (const t of traces) {
    if (t.hidden) continue
    if (t.band) values.push(...t.band.hi, ...t.band.lo)
    if (t.smoothed) values.push(...t.smoothed)
    if (!t.smoothed || showRaw) values.push(...t.y)
  }
  values.sort((a, b) => a - b)
  const lo = quantile(values, 0.02)
  const hi = quantile(values, 0.98)
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return null
  const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 1
  return [lo - pad, hi + pad]
}

function xAxisValues(axis) {
  if (axis === 'wall_time') return undefined // uPlot's own time ticks
  if (axis === 'relative_time') {
    return (u, ticks) => {
      const labels = ticks.map((v) => fmtDuration(v))
      // ticks closer than a tenth of a second: seconds with the digits that tell them apart
      return new Set(labels).size === labels.length ? labels : fmtTicks(ticks).map((l) => l && `${l}s`)
    }
  }
  return (u, ticks) => fmtTicks(ticks)
}

// room for the longest y label (uPlot's default assumes short ones)
function ySize(u, values) {
  const longest = (values || []).reduce((m, v) => Math.max(m, String(v ?? '').length), 0)
  return Math.max(40, longest * 7 + 18)
}

// on a log scale, grid lines and labels at powers of ten only (if there are two or more)
function decades(u, splits) {
  const keep = splits.map((v) => (v > 0 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9 ? v : null))
  return keep.filter((v) => v !== null).length >= 2 ? keep : splits
}

// uPlot rounds scale ranges and ticks to at most 24 decimals, so values below ~1e-16 drew
// as a flat line on a 0..100 axis: such charts get their own range and ticks.
const TINY = 1e-12

export function tinyValues(traces) {
  let big = 0
  for (const t of traces) {
    for (const arr of [t.y, t.smoothed]) {
      for (const v of arr || []) {
        const a = Math.abs(v)
        if (!(a < TINY)) return false // one value is enough to say no (NaN too, as before)
        if (a > big) big = a
      }
    }
  }
  return big > 0
}

function tinyRange(u, min, max) {
  if (min == null || max == null) return [null, null]
  const pad = (max - min) * 0.1 || Math.max(Math.abs(min), Math.abs(max)) * 0.1
  return [min - pad, max + pad]
}

// about five evenly spaced round ticks between min and max (1, 2 or 5 times a power of ten)
function tinySplits(u, axisIdx, min, max) {
  const rough = (max - min) / 5
  const unit = 10 ** Math.floor(Math.log10(rough))
  const step = unit * ([1, 2, 5].find((m) => m * unit >= rough) || 10)
  const ticks = []
  for (let k = Math.ceil(min / step); k * step <= max; k++) ticks.push(k * step)
  return ticks
}

// one x value only (a single point, or all points at one global_step): a span around it,
// where uPlot would pick 0..100 or years of wall time
function xRange(u, min, max) {
  const xs = u.data[0] || []
  if (xs.length && xs[0] === xs[xs.length - 1]) return [xs[0] - 1, xs[0] + 1]
  return [min, max]
}

// a line needs two points: a series with one is drawn as a dot
const lonePoint = (t) => t.count === 1

// y range: the data's (padded, as uPlot pads it) with the chart's manual min/max on top
function manualRange(y0, y1, log) {
  return (u, min, max) => {
    if (min == null || max == null) return [y0 ?? null, y1 ?? null]
    const [a, b] = log ? uPlot.rangeLog(min, max, 10, true) : uPlot.rangeNum(min, max, 0.1, true)
    return [y0 ?? a, y1 ?? b]
  }
}

// The first index of sorted `xs` whose value is >= v (xs.length when none is)
function lowerBound(xs, v) {
  let lo = 0
  let hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (xs[mid] < v) lo = mid + 1
    else hi = mid
  }
  return lo
}

// A line through one trace's own points (`xs` sorted, `ys` finite), for uPlot's `paths`.
// uPlot's own line walks the chart's shared x column, which holds the x of every run (with
// 30 runs, ~20x more entries than one run has points, nearly all of them gaps); this visits
// the trace's points inside the x range, and one beyond each edge so the line runs on to it.
// Log y: values <= 0 are left out (as the shared columns leave them out).
// Linear scales are mapped here (uPlot's own valToPos per point was ~20 ms of a chart of 30
// runs x 1,300 points); log and other scales go through uPlot.
export function ownLine(xs, ys, logY) {
  return (u) => {
    const stroke = new Path2D()
    const n = xs.length
    const sx = u.scales.x
    const sy = u.scales.y
    const { min, max } = sx
    const from = Math.max(lowerBound(xs, min) - 1, 0)
    const to = Math.min(lowerBound(xs, max) + 1, n)
    const { left, top, width, height } = u.bbox
    const linX = sx.distr === 1 && max > min
    const linY = sy.distr === 1 && sy.max > sy.min
    const kx = width / (max - min)
    const ky = height / (sy.max - sy.min)
    const bottom = top + height
    let started = false
    for (let i = from; i < to; i++) {
      const y = ys[i]
      if (logY && !(y > 0)) continue
      const px = linX ? left + (xs[i] - min) * kx : u.valToPos(xs[i], 'x', true)
      const py = linY ? bottom - (y - sy.min) * ky : u.valToPos(y, 'y', true)
      if (started) stroke.lineTo(px, py)
      else {
        stroke.moveTo(px, py)
        started = true
      }
    }
    return { stroke, fill: null, clip: null, band: null, gaps: null, flags: 0 }
  }
}

// A line's width: 1.75 px (a smoothed line or a group's mean) or 1.5 px, and 1 px where the
// trace has more points than the chart has pixels across. Such a line is a dense zigzag that
// a thicker stroke only blurs, and at 1 device pixel the browser strokes it as a hairline:
// ~8x faster in software rendering (30 runs of 1,300 points: ~13 ms instead of ~100 ms, the
// most of a chart's cost on a machine without a GPU).
export function lineWidth(t, width) {
  if (t.count > width) return 1
  return t.smoothed || t.band ? 1.75 : 1.5
}

export function chartOptions({ traces, settings, showRaw, theme, width, height, hooks }) {
  const series = [{ label: settings.x }]
  const bands = []
  for (const t of traces) {
    if (!t.count) continue
    const common = { spanGaps: true, points: { show: lonePoint(t) }, show: !t.hidden, dash: dashOf(t) }
    // a group's band is filled between its edges' paths: uPlot's own lines there
    const own = (ys) => (t.band ? {} : { paths: ownLine(t.x, ys, settings.logY) })
    if (t.smoothed && showRaw) {
      series.push({ ...common, ...own(t.y), label: `${t.label} (raw)`, stroke: fade(t.color, 0.28), width: 1 })
    }
    const main = t.smoothed || t.y
    series.push({ ...common, ...own(main), label: t.label, stroke: t.color, width: lineWidth(t, width) })
    if (t.band) {
      const edge = { show: !t.hidden, spanGaps: true, stroke: 'transparent', width: 0, points: { show: false } }
      series.push({ ...edge, label: `${t.label} +std` }, { ...edge, label: `${t.label} -std` })
      bands.push({ series: [series.length - 2, series.length - 1], fill: fade(t.color, 0.18) })
    }
  }
  const range = settings.outliers ? robustRange(traces, showRaw) : null
  const manual = settings.y0 != null || settings.y1 != null
  const tiny = !settings.logY && tinyValues(traces)
  const axisFor = (log) => {
    const only = log ? { filter: decades } : {}
    return {
      stroke: theme.axis,
      grid: { stroke: theme.grid, width: 1, ...only },
      ticks: { stroke: theme.grid, width: 1, ...only },
      ...only,
    }
  }
  return {
    width,
    height,
    legend: { show: false },
    cursor: {
      sync: { key: `kb-${settings.x}`, setSeries: false },
      y: false, // no horizontal hair: it would show at the same height on every synced chart
      // a drag zooms x, or y when it is mostly vertical (uni: px before the direction is fixed)
      drag: { x: true, y: true, uni: 24, setScale: true },
      points: { size: 6 },
      focus: { prox: 24 }, // the line nearest the pointer is drawn strong, the others faint
    },
    focus: { alpha: 0.3 },
    bands,
    scales: {
      x: {
        time: settings.x === 'wall_time',
        distr: settings.logX ? 3 : 1,
        ...(settings.logX ? {} : { range: xRange }),
      },
      y: {
        distr: settings.logY ? 3 : 1,
        ...(tiny ? { range: tinyRange } : {}),
        ...(range && !settings.logY ? { range: () => range } : {}),
        ...(manual ? { range: manualRange(settings.y0, settings.y1, settings.logY) } : {}),
      },
    },
    axes: [
      { ...axisFor(settings.logX), values: xAxisValues(settings.x), space: 60 },
      {
        ...axisFor(settings.logY),
        ...(tiny ? { splits: tinySplits } : {}),
        values: (u, ticks) => fmtTicks(ticks),
        size: ySize,
      },
    ],
    series,
    hooks,
  }
}

// The index of the point of `xs` (sorted) nearest to `x`
export function nearest(xs, x) {
  if (!xs.length || !Number.isFinite(x)) return -1
  let lo = 0
  let hi = xs.length - 1
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (xs[mid] < x) lo = mid
    else hi = mid
  }
  return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi
}

// Triangles for +Inf (top) and -Inf (bottom), a cross for NaN, at the x where they occur.
export function drawNonFinite(u, traces) {
  const { ctx } = u
  const { left, top, width, height } = u.bbox
  const size = 5 * devicePixelRatio
  ctx.save()
  for (const t of traces) {
    if (t.hidden) continue
    ctx.fillStyle = t.color
    ctx.strokeStyle = t.color
    ctx.lineWidth = 1.5 * devicePixelRatio
    for (const [kind, { x: xs }] of Object.entries(t.nonfinite)) {
      for (const xv of xs) {
        const px = u.valToPos(xv, 'x', true)
        if (px < left - 1 || px > left + width + 1) continue
        ctx.beginPath()
        if (kind === 'posinf') {
          ctx.moveTo(px, top + size * 1.6)
          ctx.lineTo(px - size, top)
          ctx.lineTo(px + size, top)
          ctx.fill()
        } else if (kind === 'neginf') {
          ctx.moveTo(px, top + height - size * 1.6)
          ctx.lineTo(px - size, top + height)
          ctx.lineTo(px + size, top + height)
          ctx.fill()
        } else {
          const cy = top + height - size * 3
          ctx.moveTo(px - size, cy - size)
          ctx.lineTo(px + size, cy + size)
          ctx.moveTo(px + size, cy - size)
          ctx.lineTo(px - size, cy + size)
          ctx.stroke()
        }
      }
    }
  }
  ctx.restore()
}

// The chart drawn again, off screen, `m` times larger in every dimension (lines, fonts, axis
// sizes): a PNG sharper than the screen's canvas (which has the device's pixel ratio only).
function scaledCanvas(opts, data, m) {
  const mul = (f) => (typeof f === 'function' ? (...args) => f(...args) * m : f == null ? f : f * m)
  const scaled = {
    ...opts,
    width: opts.width * m,
    height: opts.height * m,
    cursor: { show: false },
    hooks: { draw: opts.hooks?.draw || [] },
    series: opts.series.map((se, i) =>
      i === 0
        ? se
        : {
            ...se,
            width: (se.width ?? 1) * m,
            dash: se.dash && se.dash.map((d) => d * m),
            points: { ...(se.points || {}), size: 6 * m },
          },
    ),
    axes: opts.axes.map((ax, i) => ({
      ...ax,
      font: `${12 * m}px system-ui, sans-serif`,
      size: ax.size ? mul(ax.size) : 50 * m,
      gap: 5 * m,
      space: (ax.space ?? (i === 0 ? 50 : 30)) * m,
      ticks: { ...(ax.ticks || {}), size: 10 * m, width: (ax.ticks?.width ?? 1) * m },
      grid: { ...(ax.grid || {}), width: (ax.grid?.width ?? 1) * m },
    })),
  }
  const host = document.createElement('div')
  host.style.position = 'fixed'
  host.style.left = '-100000px'
  host.style.top = '0'
  document.body.appendChild(host)
  const u = new uPlot(scaled, data, host)
  const scales = opts.exportScales
  if (scales) u.batch(() => Object.entries(scales).forEach(([k, [min, max]]) => u.setScale(k, { min, max })))
  const canvas = document.createElement('canvas')
  canvas.width = u.ctx.canvas.width
  canvas.height = u.ctx.canvas.height
  canvas.getContext('2d').drawImage(u.ctx.canvas, 0, 0)
  u.destroy()
  host.remove()
  return canvas
}

// A PNG of the chart with its title and a legend (each run's name and value), drawn on the
// chart's background at twice the screen's resolution at least.
export function chartPng(u, baseOpts, title, rows, theme) {
  const dpr = devicePixelRatio || 1
  const m = Math.max(2, dpr) / dpr
  // the runs hidden since the chart was built stay hidden in the picture
  const series = baseOpts.series.map((se, i) => ({ ...se, show: u.series[i] ? u.series[i].show : se.show }))
  const opts = { ...baseOpts, series, width: u.width, height: u.height, exportScales: { x: [u.scales.x.min, u.scales.x.max], y: [u.scales.y.min, u.scales.y.max] } }
  const src = scaledCanvas(opts, u.data, m)
  const k = m * dpr // canvas pixels per CSS pixel
  const line = 18 * k
  const shown = rows.filter((r) => !r.hidden)
  const canvas = document.createElement('canvas')
  canvas.width = src.width
  canvas.height = src.height + line * (shown.length + 2)
  const ctx = canvas.getContext('2d')
  ctx.fillStyle = theme.bg
  ctx.fillRect(0, 0, canvas.width, canvas.height)
  ctx.fillStyle = theme.text
  ctx.font = `${13 * k}px system-ui, sans-serif`
  ctx.textBaseline = 'middle'
  ctx.fillText(title, 8 * k, line * 0.7)
  ctx.drawImage(src, 0, line * 1.2)
  let y = src.height + line * 1.8
  for (const r of shown) {
    ctx.fillStyle = r.color
    ctx.fillRect(8 * k, y - 5 * k, 10 * k, 10 * k)
    ctx.fillStyle = theme.text
    const value = r.value === undefined ? 'no data' : `${r.value}  @ ${r.at}`
    ctx.fillText(`${r.name}   ${value}`, 24 * k, y)
    y += line
  }
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/png'))
}

export function download(blobOrUrl, filename) {
  const a = document.createElement('a')
  const url = typeof blobOrUrl === 'string' ? blobOrUrl : URL.createObjectURL(blobOrUrl)
  a.href = url
  a.download = filename
  document.body.appendChild(a)
  a.click()
  a.remove()
  if (typeof blobOrUrl !== 'string') setTimeout(() => URL.revokeObjectURL(url), 1000)
}
