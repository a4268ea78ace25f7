// Step sliders shared by the histogram and media pages: snapping to the steps with data, and
// whether Shift is held (Shift + slider/arrow keys moves every media card together).

// index of the step nearest to `target` in ascending `steps` (-1 when empty; target < 0 = last)
export function nearestIndex(steps, target) {
  if (!steps.length) return -1
  if (target < 0 || target >= steps[steps.length - 1]) return steps.length - 1
  let lo = 0
  let hi = steps.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (steps[mid] < target) lo = mid + 1
    else hi = mid
  }
  // steps[lo] >= target: the one before may be closer (ties go to the earlier step)
  return lo > 0 && target - steps[lo - 1] <= steps[lo] - target ? lo - 1 : lo
}

export function nearestStep(steps, target) {
  const i = nearestIndex(steps, target)
  return i < 0 ? null : steps[i]
}

// sorted union of several ascending step lists
export function unionSteps(lists) {
  const all = new Set()
  for (const list of lists) for (const s of list) all.add(s)
  return [...all].sort((a, b) => a - b)
}

// Shift state for pointer drags (input events do not say whether Shift is down)
export const keys = { shift: false }
if (typeof window !== 'undefined') {
  const track = (e) => (keys.shift = e.shiftKey)
  window.addEventListener('keydown', track, true)
  window.addEventListener('keyup', track, true)
  window.addEventListener('pointerdown', track, true)
  window.addEventListener('blur', () => (keys.shift = false))
}
