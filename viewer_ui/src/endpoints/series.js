// The scalar series routes: one metric of several boards in the binary KBS1 form (smoothed
// and downsampled by the server), and the full-resolution CSV download.
import { check, getBinary, query } from '../api.js'

export function csvUrl(boards, metric, smoothing) {
  return '/api/series.csv?' + query({ board: boards, metric, smoothing })
}

// Decode a KBS1 payload (see kohakuboard/viewer/charts.py): header JSON + float64 arrays.
export function decodeSeries(buffer) {
  const bytes = new Uint8Array(buffer)
  const magic = String.fromCharCode(...bytes.subarray(0, 4))
  if (magic !== 'KBS1') throw new Error(`unexpected series payload (${magic})`)
  const size = new DataView(buffer).getUint32(4, true)
  const doc = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + size)))
  const base = 8 + size
  for (const s of doc.series) {
    const arrays = {}
    for (const [name, [offset, length]] of Object.entries(s.arrays)) {
      arrays[name] = new Float64Array(buffer, base + offset, length)
    }
    s.arrays = arrays
  }
  return doc
}

// xMin/xMax (a zoomed chart): only that x range, as finely as `points` allows there
export async function fetchSeries({ boards, metric, x, points, smoothing, xMin, xMax }, signal) {
  const url = '/api/series?' + query({ board: boards, metric, x, points, smoothing, x_min: xMin, x_max: xMax })
  return decodeSeries(await getBinary(url, signal))
}


// The first chart's answer asked by the page's head (public/early.js) before the app ran, or
// null. Taken by the first chart that asks; used if it was sent by then and that chart's request
// is the one asked (same runs, series, x axis and smoothing, no zoom) but for its points, which
// the head guessed from the window's width (within a quarter: a scrollbar, a resized window).
const head = (typeof window !== 'undefined' && window.__kohakuboardEarly) || {}

const sameList = (a, b) => a.length === b.length && a.every((v, i) => v === b[i])

export async function earlySeries({ boards, metric, x, points, smoothing, xMin, xMax }) {
  const early = head.chart
  if (!early) return null
  delete head.chart
  early.taken = true // not sent after this: a late answer would come after the card's own
  if (!early.sent) return null
  try {
    const want = await early.want
    const fits =
      want &&
      xMin === undefined &&
      xMax === undefined &&
      sameList(boards, want.boards) &&
      sameList(metric, [want.metric]) &&
      x === want.x &&
      smoothing === want.smoothing &&
      Math.abs(points - want.points) <= points / 4
    if (!fits) return null
    const response = await early.answer
    return response ? decodeSeries(await (await check(response)).arrayBuffer()) : null
  } catch {
    return null // asked again by the chart
  }
}
