// The viewer API (/api/...): JSON routes, the binary series format and live updates.
import { reactive } from 'vue'

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail)
    this.status = status
  }
}

// Set when the server answers 401: this browser has no access token (the viewer was opened
// without the URL `kobo open` printed, or the viewer restarted with a new token).
export const auth = reactive({ needed: false })

// the response, or an ApiError with the server's `detail`
export async function check(response) {
  if (response.ok) return response
  if (response.status === 401) auth.needed = true
  let detail = response.statusText
  try {
    detail = (await response.json()).detail || detail
  } catch {
    // not JSON: keep the status text
  }
  throw new ApiError(response.status, detail)
}

export async function getJSON(path, signal) {
  const response = await fetch(path, { signal, headers: { Accept: 'application/json' } })
  return (await check(response)).json()
}

function query(params) {
  const q = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) q.append(key, String(v))
  }
  return q.toString()
}

export const listBoards = (signal) => getJSON('/api/boards', signal)
export const boardMetrics = (id, signal) => getJSON(`/api/boards/${encodeURIComponent(id)}/metrics`, signal)
export const info = (signal) => getJSON('/api/info', signal)

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

export async function fetchSeries({ boards, metric, x, points, smoothing }, signal) {
  const url = '/api/series?' + query({ board: boards, metric, x, points, smoothing })
  const response = await check(await fetch(url, { signal }))
  return decodeSeries(await response.arrayBuffer())
}

// Live state of some boards: server-sent events, or polling /api/state when the stream
// cannot be held open. `onState(delta)` gets the first full state and then differences.
export function connectLive(boardIds, onState, { pollMs = 2000 } = {}) {
  const params = query({ board: boardIds })
  let closed = false
  let source = null
  let timer = 0
  let failures = 0
  let opened = false
  let previous = null

  const poll = async () => {
    if (closed || auth.needed) return
    try {
      const state = await getJSON('/api/state?' + params)
      onState(diff(previous, state))
      previous = state
    } catch {
      // the server may be restarting: try again later
    }
    if (!closed) timer = setTimeout(poll, pollMs)
  }

  const startPolling = () => {
    if (source) source.close()
    source = null
    live.mode = 'polling'
    poll()
  }

  if (typeof EventSource === 'undefined' || window.__KB_FORCE_POLLING__) {
    startPolling()
  } else {
    source = new EventSource('/api/events?' + params)
    live.mode = 'connecting'
    source.addEventListener('open', () => {
      opened = true
      failures = 0
      live.mode = 'stream'
    })
    source.addEventListener('state', (event) => onState(JSON.parse(event.data)))
    source.addEventListener('error', () => {
      failures += 1
      if (!opened && failures >= 2) startPolling()
      else if (source && source.readyState === EventSource.CLOSED) startPolling()
    })
  }
  return () => {
    closed = true
    clearTimeout(timer)
    if (source) source.close()
  }
}

// How live updates arrive: off | connecting | stream | polling (shown in the header).
export const live = reactive({ mode: 'off' })

// What the stream would have sent: per board, the changed fields and series.
function diff(old, next) {
  if (!old) return { ...next, full: true }
  const boards = {}
  for (const [id, state] of Object.entries(next.boards)) {
    const before = old.boards[id] || {}
    const delta = {}
    for (const [k, v] of Object.entries(state)) {
      if (k === 'metrics') {
        const changed = {}
        for (const [name, m] of Object.entries(v)) {
          if (JSON.stringify((before.metrics || {})[name]) !== JSON.stringify(m)) changed[name] = m
        }
        if (Object.keys(changed).length) delta.metrics = changed
      } else if (JSON.stringify(before[k]) !== JSON.stringify(v)) delta[k] = v
    }
    if (Object.keys(delta).length) boards[id] = delta
  }
  return { boards_sig: next.boards_sig, boards, full: false }
}
