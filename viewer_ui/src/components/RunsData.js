// Plain helpers of the Runs page: column values, sorting, config differences and plot axes.
import { fmtTicks, fmtValue } from '../format.js'
import { niceStep } from '../histmath.js'
import { view } from '../state.js'

// charts.jnum writes NaN, Infinity, -Infinity
const NON_FINITE = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity }

// a JSON number of the API (non-finite floats arrive as strings) as a JS number, else null
export function asNumber(v) {
  if (typeof v === 'number') return v
  if (typeof v === 'string' && v in NON_FINITE) return NON_FINITE[v]
  return null
}

export function fmtConfig(v) {
  if (v === undefined) return '–'
  if (v === null) return 'null'
  const n = asNumber(v)
  // an integer (a seed, a batch size) exactly: 1234567, not 1.235e+6
  if (n !== null) return Number.isSafeInteger(n) ? String(n) : fmtValue(n)
  return String(v)
}

export const metricOf = (run, name) => (run.metrics || {})[name] || null

// Which summary of a metric the page shows (view.runsValue): the last value, or the minimum or
// maximum (the best one, for a loss or an accuracy)
export const SUMMARIES = ['last', 'min', 'max']
export const summaryKind = () => (SUMMARIES.includes(view.runsValue) ? view.runsValue : 'last')
export const summaryOf = (run, name) => (metricOf(run, name) || {})[summaryKind()]

// Column ids: name, status, duration, steps, tags, c:<config key>, m:<metric>
export function columnValue(run, column) {
  if (column.startsWith('c:')) return (run.config || {})[column.slice(2)]
  if (column.startsWith('m:')) {
    return summaryOf(run, column.slice(2))
  }
  if (column === 'tags') return (run.tags || []).join(' ')
  if (column === 'steps') return run.steps
  return run[column]
}

// numbers, then NaN, then text, then missing values, in both directions (only the order
// inside each group flips)
function compare(a, b, desc) {
  const rank = (v) => {
    const n = asNumber(v)
    if (n !== null) return Number.isNaN(n) ? 1 : 0
    if (v === undefined || v === null || v === '') return 3
    return 2
  }
  const ra = rank(a)
  const rb = rank(b)
  if (ra !== rb) return ra - rb
  let out = 0
  if (ra === 0) out = asNumber(a) - asNumber(b)
  else if (ra === 2) out = String(a).localeCompare(String(b), undefined, { numeric: true })
  if (!Number.isFinite(out)) out = asNumber(a) === asNumber(b) ? 0 : asNumber(a) < asNumber(b) ? -1 : 1
  return desc ? -out : out
}

// view.runsSort: a column id, '-' in front for descending
export function sortRuns(runs, sort) {
  if (!sort) return runs
  const desc = sort.startsWith('-')
  const column = desc ? sort.slice(1) : sort
  return runs
    .map((run, i) => [run, i])
    .sort(([a, i], [b, j]) => compare(columnValue(a, column), columnValue(b, column), desc) || i - j)
    .map(([run]) => run)
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

// the config keys whose values are not the same in every run (missing counts as a value)
export function differingKeys(runs, keys) {
  return keys.filter((key) => runs.some((run) => !same((run.config || {})[key], (runs[0].config || {})[key])))
}

// An axis over some values: numeric when every present value is a number and some are
// finite, else evenly spaced categories (sorted). A numeric axis spans round bounds around the
// finite values with round ticks; with `log` (and only positive values) it is logarithmic.
// pos(v) is in 0..1, or null when v is missing or not finite (a diverged run's NaN loss must
// not turn the other runs' losses into categories). `logRefused` tells that a log scale was
// asked for values that cannot have one. A category axis labels at most `maxLabels` of its
// categories, evenly spread, so 50 of them do not print over each other.
export function axisFor(values, { log = false, maxLabels = 12 } = {}) {
  const present = values.filter((v) => v !== undefined && v !== null)
  const numbers = present.map(asNumber)
  const finite = numbers.filter((n) => n !== null && Number.isFinite(n))
  if (finite.length && numbers.every((n) => n !== null)) {
    const positive = finite.every((n) => n > 0)
    if (log && positive) return logAxis(finite)
    return { ...linearAxis(finite), logRefused: log }
  }
  const cats = [...new Set(present.map((v) => fmtConfig(v)))].sort((a, b) =>
    a.localeCompare(b, undefined, { numeric: true }),
  )
  const at = (i) => (cats.length === 1 ? 0.5 : i / (cats.length - 1))
  const pos = (v) => (v === undefined || v === null ? null : at(cats.indexOf(fmtConfig(v))))
  const every = Math.ceil(cats.length / Math.max(1, maxLabels))
  const ticks = cats.map((label, i) => ({ at: at(i), label })).filter((_, i) => i % every === 0)
  return { kind: 'cat', pos, ticks, logRefused: log }
}

function scaled(toAxis, lo, hi, tickValues) {
  const pos = (v) => {
    const n = asNumber(v)
    return n === null || !Number.isFinite(n) ? null : (toAxis(n) - lo) / (hi - lo)
  }
  const labels = fmtTicks(tickValues)
  return { pos, ticks: tickValues.map((v, i) => ({ at: pos(v), label: labels[i] })) }
}

// round bounds around the values (a single value sits in the middle of a round span)
function linearAxis(numbers) {
  let lo = Math.min(...numbers)
  let hi = Math.max(...numbers)
  if (lo === hi) {
    const half = lo === 0 ? 1 : 10 ** Math.floor(Math.log10(Math.abs(lo)))
    lo -= half
    hi += half
  }
  const step = niceStep(lo, hi, 4)
  lo = Math.floor(lo / step + 1e-9) * step
  hi = Math.ceil(hi / step - 1e-9) * step
  const ticks = []
  for (let i = 0; lo + i * step <= hi + step * 1e-6; i++) ticks.push(Number((lo + i * step).toPrecision(12)))
  return { kind: 'num', ...scaled((n) => n, lo, hi, ticks) }
}

// a log axis from the round value (1, 2 or 5 times a power of ten) at or below the smallest
// value to the one at or above the largest; ticks at those round values while there is room,
// else at powers of ten
function logAxis(numbers) {
  const min = Math.min(...numbers)
  const max = Math.max(...numbers)
  const round = []
  for (let e = Math.floor(Math.log10(min)) - 1; e <= Math.ceil(Math.log10(max)) + 1; e++) {
    for (const m of [1, 2, 5]) round.push(Number((m * 10 ** e).toPrecision(6)))
  }
  const lo = round.filter((v) => v <= min * (1 + 1e-9)).at(-1)
  let hi = round.find((v) => v >= max * (1 - 1e-9))
  if (hi <= lo) hi = round[round.indexOf(lo) + 1]
  let ticks = round.filter((v) => v >= lo && v <= hi)
  if (ticks.length > 7) ticks = ticks.filter((v) => Math.abs(Math.log10(v) % 1) < 1e-9)
  return { kind: 'log', ...scaled(Math.log10, Math.log10(lo), Math.log10(hi), ticks) }
}

// The value of a plot axis for a run: a config key, or the shown summary of a metric
export const plotValue = (run, axis) => (axis.metric ? summaryOf(run, axis.key) : (run.config || {})[axis.key])

// the id of a plot axis in view.runsLog: c:<config key> or m:<metric>, like the table columns
export const axisId = (axis) => (axis.metric ? 'm:' : 'c:') + axis.key
export const isLog = (axis) => view.runsLog.includes(axisId(axis))
export function toggleLog(axis) {
  const id = axisId(axis)
  view.runsLog = isLog(axis) ? view.runsLog.filter((x) => x !== id) : [...view.runsLog, id]
}
