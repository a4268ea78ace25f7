// The histogram routes (/api/histograms/...): steps with data, one step, a decimated range.
import { getJSON } from '../api.js'

// JSON has no NaN/Inf: the server writes them as the strings "NaN", "Infinity" and
// "-Infinity", which Number() reads; null (no value) becomes NaN
export function num(v) {
  if (typeof v === 'number') return v
  return v == null ? NaN : Number(v)
}
const nums = (a) => (a || []).map(num)

function url(route, params) {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v))
  return `/api/histograms/${route}?${q}`
}

export async function histSteps(board, name, signal) {
  const doc = await getJSON(url('steps', { board, name }), signal)
  return doc.steps
}

// step < 0 or undefined: the latest; otherwise the nearest step with data
export async function histAt(board, name, step, signal) {
  const doc = await getJSON(url('at', { board, name, step: step >= 0 ? step : undefined }), signal)
  for (const k of ['min', 'max', 'mean', 'std']) doc[k] = num(doc[k])
  doc.edges = nums(doc.edges)
  doc.counts = nums(doc.counts)
  return doc
}

export async function histRange(board, name, { maxSteps, bins, start, end }, signal) {
  const doc = await getJSON(url('range', { board, name, max_steps: maxSteps, bins, start, end }), signal)
  doc.lo = num(doc.lo)
  doc.hi = num(doc.hi)
  doc.edges = nums(doc.edges)
  doc.counts = (doc.counts || []).map(nums)
  doc.percentiles = (doc.percentiles || []).map(nums)
  for (const k of ['mean', 'std', 'min', 'max', 'count']) doc[k] = nums(doc[k])
  return doc
}
