// The histogram routes (/api/histograms/...): steps with data, one step, a decimated range
// (the range in its binary form, decoded into the object the JSON form would give).
import { getBinary, getJSON, query } from '../api.js'

// JSON has no NaN/Inf: the server writes them as the strings "NaN", "Infinity" and
// "-Infinity", which Number() reads; null (no value) becomes NaN
export function num(v) {
  if (typeof v === 'number') return v
  return v == null ? NaN : Number(v)
}
const nums = (a) => (a || []).map(num)

const url = (route, params) => `/api/histograms/${route}?${query(params)}`

// the steps with data and their training steps: {steps, globalSteps} (ascending, paired)
export async function histSteps(board, name, signal) {
  const doc = await getJSON(url('steps', { board, name }), signal)
  return { steps: doc.steps, globalSteps: doc.global_steps || doc.steps }
}

// step < 0 or undefined: the latest; otherwise the nearest step with data
export async function histAt(board, name, step, signal) {
  const doc = await getJSON(url('at', { board, name, step: step >= 0 ? step : undefined }), signal)
  // null: the statistic does not exist (no finite value), shown as such, not as NaN data
  for (const k of ['min', 'max', 'mean', 'std']) doc[k] = doc[k] === null ? null : num(doc[k])
  doc.edges = nums(doc.edges)
  doc.counts = nums(doc.counts)
  return doc
}

// Decode a KBHR payload (see kohakuboard/viewer/histwire.py): a fixed header, JSON metadata,
// then count f64[K], mean/std/min/max f32|f64[K], percentiles f32|f64[K*P], row scale f32[K],
// quantised counts u8|u16[K*B] (a count is q * its row's scale). Every array is aligned to its
// width, so typed arrays view it in place; the result holds plain arrays, as JSON would.
export function decodeRange(buffer) {
  const view = new DataView(buffer)
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4))
  if (magic !== 'KBHR') throw new Error(`unexpected histogram payload (${magic})`)
  const version = view.getUint16(4, true)
  if (version !== 1) throw new Error(`unsupported histogram payload version ${version}`)
  const [cw, sw] = [view.getUint8(6), view.getUint8(7)]
  const [K, B, P, H] = [8, 12, 16, 20].map((at) => view.getUint32(at, true))
  const doc = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 24, H)))
  let at = 24 + H
  const take = (Type, n) => {
    const out = new Type(buffer, at, n)
    at += out.byteLength
    return out
  }
  const Stat = sw === 8 ? Float64Array : Float32Array
  doc.count = Array.from(take(Float64Array, K))
  for (const k of ['mean', 'std', 'min', 'max']) doc[k] = Array.from(take(Stat, K))
  const pct = take(Stat, K * P)
  const scale = take(Float32Array, K)
  const q = take(cw === 2 ? Uint16Array : Uint8Array, K * B)
  doc.percentiles = []
  doc.counts = []
  for (let i = 0; i < K; i++) {
    doc.percentiles.push(Array.from(pct.subarray(i * P, (i + 1) * P)))
    const s = scale[i]
    doc.counts.push(Array.from(q.subarray(i * B, (i + 1) * B), (v) => v * s))
  }
  doc.lo = num(doc.lo)
  doc.hi = num(doc.hi)
  doc.edges = doc.edges.map(num)
  return doc
}

export async function histRange(board, name, { maxSteps, bins, start, end }, signal) {
  const params = { board, name, max_steps: maxSteps, bins, start, end, format: 'bin' }
  return decodeRange(await getBinary(url('range', params), signal))
}
