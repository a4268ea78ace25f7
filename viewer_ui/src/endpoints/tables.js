// The tables API (/api/tables/...): the steps of a table and one server-side page of it, of
// one run (page) or of several runs merged into one table (compare).
import { getJSON, query } from '../api.js'

export const PAGE_SIZE = 50

export const tableSteps = (board, name, signal) =>
  getJSON('/api/tables/steps?' + query({ board, name }), signal)

// step < 0 (or absent): the latest step; the server answers with the nearest step with data
function pageParams({ name, step, page, sort, desc, filter }) {
  return {
    name,
    step: step >= 0 ? step : undefined,
    offset: Math.max(page, 0) * PAGE_SIZE,
    limit: PAGE_SIZE,
    sort,
    desc: sort ? (desc ? 1 : 0) : undefined,
    filter,
  }
}

export function tablePage(request, signal) {
  return getJSON('/api/tables/page?' + query({ board: request.board, ...pageParams(request) }), signal)
}

// request.boards: the runs, in the order their rows come; each run's table is taken at the
// step nearest request.step (its latest when < 0), and the answer says which (runs[].step)
export function tableCompare(request, signal) {
  return getJSON('/api/tables/compare?' + query({ board: request.boards, ...pageParams(request) }), signal)
}
