// The live routes (/api/events, /api/state): how an open page learns that its boards grew.
import { reactive } from 'vue'
import { auth, getJSON, query } from '../api.js'

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
  return { boards_sig: next.boards_sig, progress_sig: next.progress_sig, boards, full: false }
}
