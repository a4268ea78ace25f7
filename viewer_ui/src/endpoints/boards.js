// The board routes: the viewer's title, the board list and the series of one board.
import { getJSON } from '../api.js'

export const info = (signal) => getJSON('/api/info', signal)
export const listBoards = (signal) => getJSON('/api/boards', signal)
export const boardMetrics = (id, signal) => getJSON(`/api/boards/${encodeURIComponent(id)}/metrics`, signal)
// the series of several boards in one request: {metrics: {id: [...]}, errors: {id: reason}}
export const MAX_METRIC_BOARDS = 64
export const boardsMetrics = (ids, signal) =>
  getJSON(`/api/metrics?${ids.map((id) => `board=${encodeURIComponent(id)}`).join('&')}`, signal)
