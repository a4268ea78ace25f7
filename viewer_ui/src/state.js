// All view state lives in the URL query string, so a link (or a reload) restores the view.
// `view` is the one reactive object; `startUrlSync` keeps it and the address bar in step.
import { reactive, watch } from 'vue'

export const DEFAULTS = Object.freeze({
  boards: [], // selected board ids (b)
  boardFilter: '', // regex over board names (bf)
  metricFilter: '', // regex over series names (q)
  tab: '', // namespace tab; '' = all (tab)
  smoothing: 0.6, // (s)
  x: 'step', // step | global_step | wall_time | relative_time | <series name> (x)
  logY: false, // (ly)
  logX: false, // (lx)
  outliers: false, // ignore outliers in y scaling (o)
  raw: true, // show the raw line faintly under the smoothed one (raw)
  theme: 'auto', // auto | light | dark (theme)
  full: '', // the series shown full screen (fs)
  charts: {}, // per-chart overrides: {name: {s, x, ly, lx, o}} (c)
  page: 'scalars', // scalars | histograms | media | tables | runs (p)
  // histograms
  histMode: 'offset', // offset | overlay | distribution | heatmap (hm)
  histStep: -1, // step shown by the step slider; -1 = latest (hs)
  // media
  mediaSteps: {}, // {key: step} chosen per media key (ms)
  mediaFit: 'fit', // fit | actual (mf)
  // tables
  table: '', // the table key shown (tb)
  tableStep: -1, // -1 = latest (ts)
  tableSort: '', // column name (tso)
  tableDesc: false, // (tsd)
  tableFilter: '', // (tf)
  tablePage: 0, // (tp)
  tableCompare: false, // one merged table of every selected run that logged the key (tc)
  // runs
  runsMetric: '', // metric for parallel coordinates / scatter (rm)
  runsParam: '', // hyperparameter on the scatter's x axis (rx)
  runsSort: '', // column of the runs table; '-' prefix = descending (rs)
  runsFilter: '', // (rf)
  runsDeleted: false, // show soft-deleted runs (rd)
  runsConfig: [], // config columns picked; [] = the default ones, ['-'] = none (rcc)
  runsMetrics: [], // metric columns picked; same rules (rmc)
  runOpen: '', // the run whose details are open (run)
  runsValue: 'last', // what a metric column shows: last | min | max (rv)
  runsLog: [], // plot axes (config keys or metrics) drawn on a log scale (rlg)
})

export const view = reactive(structuredClone(DEFAULTS))
// false until the URL was read and the board list loaded (the default selection is not
// written to the URL before that)
export const ready = reactive({ value: false })

const KEYS = [
  ['boards', 'b', 'list'],
  ['boardFilter', 'bf', 'str'],
  ['metricFilter', 'q', 'str'],
  ['tab', 'tab', 'str'],
  ['smoothing', 's', 'num'],
  ['x', 'x', 'str'],
  ['logY', 'ly', 'bool'],
  ['logX', 'lx', 'bool'],
  ['outliers', 'o', 'bool'],
  ['raw', 'raw', 'bool'],
  ['theme', 'theme', 'str'],
  ['full', 'fs', 'str'],
  ['charts', 'c', 'json'],
  ['page', 'p', 'str'],
  ['histMode', 'hm', 'str'],
  ['histStep', 'hs', 'int'],
  ['mediaSteps', 'ms', 'json'],
  ['mediaFit', 'mf', 'str'],
  ['table', 'tb', 'str'],
  ['tableStep', 'ts', 'int'],
  ['tableSort', 'tso', 'str'],
  ['tableDesc', 'tsd', 'bool'],
  ['tableFilter', 'tf', 'str'],
  ['tablePage', 'tp', 'int'],
  ['tableCompare', 'tc', 'bool'],
  ['runsMetric', 'rm', 'str'],
  ['runsParam', 'rx', 'str'],
  ['runsSort', 'rs', 'str'],
  ['runsFilter', 'rf', 'str'],
  ['runsDeleted', 'rd', 'bool'],
  ['runsConfig', 'rcc', 'list'],
  ['runsMetrics', 'rmc', 'list'],
  ['runOpen', 'run', 'str'],
  ['runsValue', 'rv', 'str'],
  ['runsLog', 'rlg', 'list'],
]

function parse(kind, text, fallback) {
  switch (kind) {
    case 'list':
      return text.split(',').filter(Boolean)
    case 'num':
      return Number.isFinite(Number(text)) ? smoothingOf(text) : fallback
    case 'int': {
      const v = Number.parseInt(text, 10)
      return Number.isFinite(v) ? v : fallback
    }
    case 'bool':
      return text === '1'
    case 'json':
      try {
        const v = JSON.parse(text)
        return v && typeof v === 'object' && !Array.isArray(v) ? v : fallback
      } catch {
        return fallback
      }
    default:
      return text
  }
}

function format(kind, value) {
  switch (kind) {
    case 'list':
      return value.join(',')
    case 'num':
      return String(Math.round(value * 1000) / 1000)
    case 'bool':
      return value ? '1' : '0'
    case 'json':
      return JSON.stringify(value)
    default:
      return value
  }
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b)
}

export function readUrl(search = window.location.search) {
  const params = new URLSearchParams(search)
  const found = new Set()
  for (const [key, param, kind] of KEYS) {
    if (params.has(param)) {
      view[key] = parse(kind, params.get(param), structuredClone(DEFAULTS[key]))
      found.add(key)
    } else {
      view[key] = structuredClone(DEFAULTS[key])
    }
  }
  return found
}

export function urlFor(state = view) {
  const params = new URLSearchParams()
  for (const [key, param, kind] of KEYS) {
    const value = state[key]
    const empty = (kind === 'list' && value.length === 0) || (kind === 'json' && !Object.keys(value).length)
    if (!same(value, DEFAULTS[key]) && !empty) params.set(param, format(kind, value))
  }
  const text = params.toString()
  return window.location.pathname + (text ? '?' + text : '')
}

export function startUrlSync() {
  let timer = 0
  watch(
    view,
    () => {
      if (!ready.value) return
      clearTimeout(timer)
      // replaceState for slider drags; a new history entry once the view settles
      timer = setTimeout(() => {
        const url = urlFor()
        if (url !== window.location.pathname + window.location.search) {
          window.history.pushState(null, '', url)
        }
      }, 250)
    },
    { deep: true },
  )
  window.addEventListener('popstate', () => readUrl())
}

// Smoothing as the server accepts it (0..0.999): a number typed out of range is clamped and
// a cleared box is 0, instead of every chart failing its request.
export function smoothingOf(value) {
  const v = Number(value)
  return Number.isFinite(v) ? Math.min(Math.max(v, 0), 0.999) : 0
}

// Effective settings of one chart: its overrides on top of the global ones.
export function chartSettings(name) {
  const o = view.charts[name] || {}
  return {
    smoothing: smoothingOf(o.s ?? view.smoothing),
    x: o.x ?? view.x,
    logY: o.ly ?? view.logY,
    logX: o.lx ?? view.logX,
    outliers: o.o ?? view.outliers,
    overridden: Object.keys(o).length > 0,
  }
}

export function setChartOverride(name, key, value) {
  const next = { ...(view.charts[name] || {}) }
  if (value === undefined) delete next[key]
  else next[key] = value
  const charts = { ...view.charts }
  if (Object.keys(next).length) charts[name] = next
  else delete charts[name]
  view.charts = charts
}
