// The Runs page's filter (rf): words of the form KEY OP VALUE are conditions on a run, the rest
// of the text is a search pattern (pattern.js) over the run's name, tags and notes. A run is
// shown when it passes every condition and the pattern. Syntax in docs/viewer.md ("Runs").
//
//   lr>0.01  optimizer.name=adam  momentum!=0.9  val/acc>=0.9  status=running  ^resnet
//
// KEY: a flattened config key (optimizer.name), else a metric (its shown summary: last, min
// or max), else a run field (status, steps, global_step, duration, project); a key that
// names no config key but ends one (`name` for `optimizer.name`, when only one does) means it.
// OP: = (or ==) and != compare numbers as numbers and anything else as text, ignoring case;
// < <= > >= compare numbers (a run without a number there fails). VALUE may be quoted ("a b").
import { matcher } from './pattern.js'
import { asNumber, summaryOf } from './components/RunsData.js'

const CONDITION = /^([A-Za-z_][\w./-]*?)(>=|<=|!=|==|=|>|<)(.*)$/
const WORD = /(?:[^\s"]+|"[^"]*")+/g
const FIELDS = ['status', 'steps', 'global_step', 'duration', 'project']

// whether a filter has conditions (the board list then needs the runs' configs)
export const hasConditions = (text) => ((text || '').match(WORD) || []).some((w) => CONDITION.test(w))

// a run's value (of GET /api/runs) where runFilter resolved a key
export const runValue = (run, [where, key]) =>
  where === 'config' ? (run.config || {})[key] : where === 'metric' ? summaryOf(run, key) : run[key]

const unquote = (text) => text.replace(/"/g, '')
const lower = (v) => (typeof v === 'string' ? v : JSON.stringify(v)).toLowerCase()

function numberOf(text) {
  if (text.trim() === '') return null
  const n = Number(text)
  return Number.isFinite(n) ? n : null
}

// where a key's value lives: ['config', key] | ['metric', name] | ['field', name] | null
function resolve(key, { configKeys, metricNames }) {
  if (configKeys.includes(key)) return ['config', key]
  if (metricNames.includes(key)) return ['metric', key]
  if (FIELDS.includes(key)) return ['field', key]
  const ends = configKeys.filter((k) => k.endsWith('.' + key))
  return ends.length === 1 ? ['config', ends[0]] : null
}

function test(op, have, want) {
  if (have === null && want.toLowerCase() === 'null') return op === '=' || op === '=='
  if (have === undefined || have === null) return op === '!='
  const a = asNumber(have)
  const b = numberOf(want)
  if (op === '=' || op === '==' || op === '!=') {
    const equal = a !== null && b !== null ? a === b : lower(have) === want.toLowerCase()
    return op === '!=' ? !equal : equal
  }
  if (a === null || b === null || Number.isNaN(a)) return false
  if (op === '<') return a < b
  if (op === '<=') return a <= b
  if (op === '>') return a > b
  return a >= b
}

// {test(run, valueOf), valid, reason, conditions: [{key, op, value, where}], pattern}
// valueOf(run, where) gives a run's value of a resolved key (the page knows the shown summary).
export function runFilter(text, known) {
  const conditions = []
  const problems = []
  let rest = text || ''
  for (const word of (text || '').match(WORD) || []) {
    const m = CONDITION.exec(word)
    if (!m) continue
    const [, key, op, raw] = m
    const where = resolve(key, known)
    if (!where) problems.push(`no run has a config key, metric or field "${key}"`)
    conditions.push({ key, op, value: unquote(raw), where })
    rest = rest.replace(word, ' ')
  }
  const pattern = rest.trim()
  const search = matcher(pattern)
  if (!search.valid) problems.push(`the pattern is searched as plain text: ${search.reason}`)
  return {
    conditions,
    pattern,
    valid: !problems.length,
    reason: problems.join('; '),
    test(run, valueOf, texts) {
      for (const c of conditions) {
        if (!c.where || !test(c.op, valueOf(run, c.where), c.value)) return false
      }
      return !pattern || texts.some((t) => search.test(t))
    },
  }
}
