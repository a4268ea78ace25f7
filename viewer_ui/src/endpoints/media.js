// The media routes: the steps of one media key with their items (each with a file URL).
import { getJSON, query } from '../api.js'

export async function mediaSteps(board, name, signal) {
  const doc = await getJSON(`/api/media/steps?${query({ board, name })}`, signal)
  return doc.steps
}
