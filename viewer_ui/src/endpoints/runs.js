// The runs API (/api/runs...): the runs table, checkpoints and the annotation writes.
import { getJSON, sendJSON } from '../api.js'

export function listRuns({ includeDeleted = false } = {}, signal) {
  return getJSON(`/api/runs?include_deleted=${includeDeleted ? 1 : 0}`, signal)
}

export const runCheckpoints = (id, signal) =>
  getJSON(`/api/runs/${encodeURIComponent(id)}/checkpoints`, signal)

const runPath = (id) => `/api/runs/${encodeURIComponent(id)}`

// body: {name?, notes?, tags?}
export const updateRun = (id, body) => sendJSON('PATCH', runPath(id), body)
export const deleteRun = (id) => sendJSON('DELETE', runPath(id))
export const restoreRun = (id) => sendJSON('POST', runPath(id) + '/restore')
