// Which step the viewer counts in. `step` is the count of log() calls; `global_step` is the
// training step (Board.step(), or set by every integration). Where a run has advanced its
// global_step, the training step is the charts' default x axis and the step the media,
// histogram and table pages navigate by.
import { store } from './store.js'

const globalStepOf = (board) => board.global_step ?? store.globalSteps[board.id]

// 'global_step' when any of `boards` has advanced its global_step, else 'step'; null while
// the live state that says so has not arrived yet (at most ~2 s after the page opened)
export function trainingAxis(boards) {
  let known = true
  for (const b of boards) {
    const g = globalStepOf(b)
    if (g === undefined || g === null) known = false
    else if (g > 0) return 'global_step'
  }
  return known || store.liveLate ? 'step' : null
}

// what an entry of the media/histogram/table routes ({step, global_step}) is navigated by
export const navValue = (entry, axis) => (axis === 'global_step' ? entry.global_step : entry.step)

// how a slider labels its position
export const navTitle = (axis) =>
  axis === 'global_step' ? 'training step (global_step)' : 'step (count of log() calls)'
