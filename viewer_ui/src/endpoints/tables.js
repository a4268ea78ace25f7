// The tables API (/api/tables/...): the steps of a table and one server-side page of it, of
// one run (page) or of several runs merged into one table (compare).
import { getJSON, query } from '../api.js'

export const PAGE_SIZE = 50 // rows per page unless the page asks for another size
export const PAGE_SIZES = [25, 50, 100, 200, 500]
export const pageSizeOf = (size) => (PAGE_SIZES.includes(size) ? size : PAGE_SIZE)

export const tableSteps = (board, name, signal) =>
  getJSON('/api/tables/steps?' + query({ board, name }), signal)

// step < 0 (or absent): the latest step; the server answers with the nearest step with data
function pageParams({ name, step, page, size, sort, desc, filter }) {
  const limit = pageSizeOf(size)
  return {
    name,
    step: step >= 0 ? step : undefined,
    offset: Math.max(page, 0) * limit,
    limit,
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
