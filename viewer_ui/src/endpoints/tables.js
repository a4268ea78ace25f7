// The tables API (/api/tables/...): the steps of a table and one server-side page of it.
import { getJSON } from '../api.js'

export const PAGE_SIZE = 50

function query(params) {
  const q = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') q.set(key, String(value))
  }
  return q.toString()
}

export const tableSteps = (board, name, signal) =>
  getJSON('/api/tables/steps?' + query({ board, name }), signal)

// step < 0 (or absent): the latest step; the server answers with the nearest step with data
export function tablePage({ board, name, step, page, sort, desc, filter }, signal) {
  const params = {
    board,
    name,
    step: step >= 0 ? step : undefined,
    offset: Math.max(page, 0) * PAGE_SIZE,
    limit: PAGE_SIZE,
    sort,
    desc: sort ? (desc ? 1 : 0) : undefined,
    filter,
  }
  return getJSON('/api/tables/page?' + query(params), signal)
}
