// The runs API (/api/runs...): the runs table, checkpoints and the annotation writes.
import { getJSON, query, sendJSON } from '../api.js'

// `metrics` (names) and `firstMetrics` (a count): summaries of those series only (plus the
// first N names), instead of every series of every run (5.6 MB for 2,000 runs of 20 series).
// The answer's `summarised` names what it holds (null or absent: every series).
export function listRuns({ includeDeleted = false, metrics = undefined, firstMetrics = undefined } = {}, signal) {
  const q = query({ include_deleted: includeDeleted ? 1 : 0, metric: metrics, first_metrics: firstMetrics })
  return getJSON(`/api/runs?${q}`, signal)
}

export const runCheckpoints = (id, signal) =>
  getJSON(`/api/runs/${encodeURIComponent(id)}/checkpoints`, signal)

const runPath = (id) => `/api/runs/${encodeURIComponent(id)}`

// body: {name?, notes?, tags?}
export const updateRun = (id, body) => sendJSON('PATCH', runPath(id), body)
export const deleteRun = (id) => sendJSON('DELETE', runPath(id))
export const restoreRun = (id) => sendJSON('POST', runPath(id) + '/restore')
