// The scalar series routes: one metric of several boards in the binary KBS1 form (smoothed
// and downsampled by the server), and the full-resolution CSV download.
import { getBinary, query } from '../api.js'

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

