// The steps with data of the histogram series on screen: the page's step slider snaps to
// their union. Rows register what /api/histograms/steps told them and leave when unmounted.
import { computed, reactive } from 'vue'
import { unionSteps } from './stepnav.js'

const known = reactive({}) // `${board}\u0000${name}` -> ascending steps

export function registerSteps(board, name, steps) {
  known[`${board}\u0000${name}`] = steps
}

export function forgetSteps(board, name) {
  delete known[`${board}\u0000${name}`]
}

export const histSliderSteps = computed(() => unionSteps(Object.values(known)))

// max_steps and bins asked from /api/histograms/range: only what a mode can draw
export function rangeRequest(mode, width) {
  const columns = Math.min(500, Math.max(50, Math.floor((width - 90) / 50) * 50))
  switch (mode) {
    case 'overlay':
      return { maxSteps: 16, bins: 64 }
    case 'distribution':
      return { maxSteps: columns, bins: 2 } // percentiles only: the counts are not drawn
    case 'heatmap':
      return { maxSteps: columns, bins: 64 }
    default:
      return { maxSteps: 40, bins: 64 }
  }
}

export const HIST_MODES = ['offset', 'overlay', 'distribution', 'heatmap']
export const histMode = (mode) => (HIST_MODES.includes(mode) ? mode : 'offset')
