// The media routes: the steps of one media key with their items (each with a file URL).
import { getJSON } from '../api.js'

export async function mediaSteps(board, name, signal) {
  const q = new URLSearchParams({ board, name })
  const doc = await getJSON(`/api/media/steps?${q}`, signal)
  return doc.steps
}
