// The runs API (/api/runs...): the runs table, checkpoints and the annotation writes.
import { check, getJSON } from '../api.js'

// the server refuses writes without this header (a page of another site cannot set it)
const WRITE_HEADERS = { 'Content-Type': 'application/json', 'X-KohakuBoard': '1' }

export function listRuns({ includeDeleted = false } = {}, signal) {
  return getJSON(`/api/runs?include_deleted=${includeDeleted ? 1 : 0}`, signal)
}

export const runCheckpoints = (id, signal) =>
  getJSON(`/api/runs/${encodeURIComponent(id)}/checkpoints`, signal)

async function write(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: WRITE_HEADERS,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return (await check(response)).json()
}

const runPath = (id) => `/api/runs/${encodeURIComponent(id)}`

// body: {name?, notes?, tags?}
export const updateRun = (id, body) => write('PATCH', runPath(id), body)
export const deleteRun = (id) => write('DELETE', runPath(id))
export const restoreRun = (id) => write('POST', runPath(id) + '/restore')
