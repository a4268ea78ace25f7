// All view state lives in the URL query string, so a link (or a reload) restores the view.
// `view` is the one reactive object; `startUrlSync` keeps it and the address bar in step.
import { reactive, watch } from 'vue'

// Every URL field, once: name in `view` -> [query parameter, type, default]. Types: str, num
// (the smoothing: clamped), int, bool ('1'/'0'), list (comma-separated), json (an object).
const FIELDS = {
  boards: ['b', 'list', []], // selected board ids
  boardFilter: ['bf', 'str', ''], // regex over board names
  metricFilter: ['q', 'str', ''], // regex over series names
  tab: ['tab', 'str', ''], // namespace tab; '' = all
  smoothing: ['s', 'num', 0.6],
  x: ['x', 'str', ''], // '' (auto: global_step where a run advanced it, else step) | step | global_step | wall_time | relative_time | <series name>
  logY: ['ly', 'bool', false],
  logX: ['lx', 'bool', false],
  outliers: ['o', 'bool', false], // ignore outliers in y scaling
  raw: ['raw', 'bool', true], // show the raw line faintly under the smoothed one
  theme: ['theme', 'str', 'auto'], // auto | light | dark
  full: ['fs', 'str', ''], // the series shown full screen
  charts: ['c', 'json', {}], // per-chart overrides: {name: {s, x, ly, lx, o, y0, y1, m}}
  hidden: ['hide', 'list', []], // runs hidden from the charts (a click on their legend entry)
  pins: ['pin', 'list', []], // charts pinned to the top of the scalars page, in this order
  group: ['g', 'str', ''], // config key: runs sharing its value drawn as one mean ± std band
  page: ['p', 'str', 'scalars'], // scalars | histograms | media | tables | runs
  // histograms
  histMode: ['hm', 'str', 'offset'], // offset | overlay | distribution | heatmap
  histStep: ['hs', 'int', -1], // step shown by the step slider; -1 = latest
  // media
  mediaSteps: ['ms', 'json', {}], // {key: step} chosen per media key
  mediaFit: ['mf', 'str', 'fit'], // fit | actual
  // tables
  table: ['tb', 'str', ''], // the table key shown
  tableStep: ['ts', 'int', -1], // -1 = latest
  tableSort: ['tso', 'str', ''], // column name
  tableDesc: ['tsd', 'bool', false],
  tableFilter: ['tf', 'str', ''],
  tablePage: ['tp', 'int', 0],
  tableCompare: ['tc', 'bool', false], // one merged table of every selected run that logged the key
  tableSize: ['tps', 'int', 50], // rows per page: 25 | 50 | 100 | 200 | 500
  tableHidden: ['thc', 'json', {}], // columns hidden, per table key: {key: [column, ...]}
  // runs
  runsMetric: ['rm', 'str', ''], // metric for parallel coordinates / scatter
  runsParam: ['rx', 'str', ''], // hyperparameter on the scatter's x axis
  runsSort: ['rs', 'str', ''], // column of the runs table; '-' prefix = descending
  runsFilter: ['rf', 'str', ''],
  runsDeleted: ['rd', 'bool', false], // show soft-deleted runs
  runsConfig: ['rcc', 'list', []], // config columns picked; [] = the default ones, ['-'] = none
  runsMetrics: ['rmc', 'list', []], // metric columns picked; same rules
  runOpen: ['run', 'str', ''], // the run whose details are open
  runsValue: ['rv', 'str', 'last'], // what a metric column shows: last | min | max
  runsLog: ['rlg', 'list', []], // plot axes (config keys or metrics) drawn on a log scale
}

export const DEFAULTS = Object.freeze(
  Object.fromEntries(Object.entries(FIELDS).map(([key, [, , value]]) => [key, value])),
)

export const view = reactive(structuredClone(DEFAULTS))
// false until the URL was read and the board list loaded (the default selection is not
// written to the URL before that)
export const ready = reactive({ value: false })

const KEYS = Object.entries(FIELDS).map(([key, [param, kind]]) => [key, param, kind])

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
