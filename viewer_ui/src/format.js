// Number, time and duration formatting for axes, legends and the board list.

export function fmtValue(v) {
  if (v === null || v === undefined) return '–'
  if (typeof v === 'string') return v === 'Infinity' ? '+Inf' : v === '-Infinity' ? '-Inf' : v
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf'
  const a = Math.abs(v)
  if (a !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(3)
  return Number(v.toPrecision(5)).toString()
}

// Axis labels: plain numbers, or exponents with just enough digits to tell ticks apart.
// (Blank labels, as a log axis leaves between decades, are not duplicates.)
export function fmtTicks(ticks) {
  const finite = ticks.filter((v) => v != null && Number.isFinite(v))
  const big = finite.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
  const distinct = (labels) => new Set(labels.filter(Boolean)).size === labels.filter(Boolean).length
  const label = (fmt) => ticks.map((v) => (v == null ? '' : fmt(v)))
  if (big === 0 || (big < 1e5 && big >= 1e-3)) {
    const plain = label((v) => String(Number(v.toPrecision(8))))
    if (distinct(plain)) return plain
  }
  for (let digits = 0; digits < 8; digits++) {
    const labels = label((v) => (v === 0 ? '0' : v.toExponential(digits).replace('e+', 'e')))
    if (distinct(labels)) return labels
  }
  // ticks close together far from zero (1e7 ± 0.01): the decimals their spacing needs
  const gaps = finite.slice(1).map((v, i) => Math.abs(v - finite[i])).filter((g) => g > 0)
  if (big < 1e21 && gaps.length) {
    const decimals = Math.min(Math.max(Math.ceil(-Math.log10(Math.min(...gaps)) - 1e-3), 0), 20)
    const fixed = label((v) => v.toFixed(decimals))
    if (distinct(fixed)) return fixed
  }
  return label((v) => v.toExponential(15))
}

export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds)) return '–'
  const sign = seconds < 0 ? '-' : ''
  let s = Math.abs(seconds)
  if (s < 60) return sign + (s < 10 ? s.toFixed(1) : Math.round(s)) + 's'
  const d = Math.floor(s / 86400)
  s -= d * 86400
  const h = Math.floor(s / 3600)
  s -= h * 3600
  const m = Math.floor(s / 60)
  s = Math.round(s - m * 60)
  if (d) return `${sign}${d}d ${h}h`
  if (h) return `${sign}${h}h ${m}m`
  return `${sign}${m}m ${s}s`
}

export function fmtTime(epochSeconds) {
  if (!Number.isFinite(epochSeconds) || epochSeconds <= 0) return '–'
  const d = new Date(epochSeconds * 1000)
  const pad = (n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

// An integer exactly, with digit groups (1,797,000,000), as the tables and the runs table show
// counts and ids; other numbers (and integers past 2^53, which JSON cannot carry exactly) as
// fmtValue does.
const GROUPED = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0, useGrouping: true })
export function fmtInteger(v) {
  return Number.isSafeInteger(v) ? GROUPED.format(v) : fmtValue(v)
}

// The local date and time of an epoch in seconds, to the millisecond when it has a fraction
function fmtStamp(seconds) {
  const ms = new Date(seconds * 1000).getMilliseconds()
  return ms ? `${fmtTime(seconds)}.${String(ms).padStart(3, '0')}` : fmtTime(seconds)
}

// Table columns of wall-clock times: the name says time (time, timestamp, date, created_at,
// wall_time, ...) and every number in it is a plausible Unix time, in seconds (2001-2096) or
// in milliseconds. A relative time (seconds since the start) is too small to pass.
const TIME_NAME = /(^|[^a-z])(time|timestamp|ts|date|datetime|created|updated|started|finished|ended|wall)([^a-z]|$)|_at$|[a-z]time(stamp)?$/i
const EPOCH = { s: [1e9, 4e9, 1], ms: [1e12, 4e12, 1e-3] }

// How each column of a page of rows is shown: 'time-s' or 'time-ms' (a wall-clock column,
// see above), else 'value' (each cell by its own type: integers exact, other numbers fmtValue).
export function columnFormats(columns, rows) {
  return columns.map((name, i) => {
    if (!TIME_NAME.test(name)) return 'value'
    const present = rows.map((r) => r.cells[i]).filter((v) => v !== null && v !== undefined)
    const numbers = present.filter((v) => typeof v === 'number')
    if (!numbers.length || numbers.length !== present.length) return 'value'
    for (const [unit, [lo, hi]] of Object.entries(EPOCH)) {
      if (numbers.every((v) => v >= lo && v <= hi)) return 'time-' + unit
    }
    return 'value'
  })
}

// One number of a table cell, in the format of its column: [text, title]
export function fmtCell(v, format = 'value') {
  if (format.startsWith('time-')) {
    const seconds = v * EPOCH[format.slice(5)][2]
    return [fmtStamp(seconds), `${v} (${new Date(seconds * 1000).toISOString()})`]
  }
  return [Number.isInteger(v) ? fmtInteger(v) : fmtValue(v), String(v)]
}

export function fmtX(axis, v) {
  if (!Number.isFinite(v)) return '–'
  if (axis === 'wall_time') return fmtTime(v)
  if (axis === 'relative_time') return fmtDuration(v)
  if (axis === 'step' || axis === 'global_step') return String(Math.round(v))
  return fmtValue(v)
}

// A search pattern from user input (bf, q, rf): a linear-time regex subset, see pattern.js
export { matcher } from './pattern.js'

export const X_AXES = ['step', 'global_step', 'wall_time', 'relative_time']
