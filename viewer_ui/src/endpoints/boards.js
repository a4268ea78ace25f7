// The board routes: the viewer's title, the board list and the series of one board.
import { getJSON } from '../api.js'

export const info = (signal) => getJSON('/api/info', signal)
export const listBoards = (signal) => getJSON('/api/boards', signal)
export const boardMetrics = (id, signal) => getJSON(`/api/boards/${encodeURIComponent(id)}/metrics`, signal)
