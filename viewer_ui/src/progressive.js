// A long list of cards mounted a screenful first: `limit` starts at the cards of about one
// screen and grows by `step` in later tasks (idle time, or `wait` ms at the latest), so the
// first cards ask for their data and draw before the other ~200 are built and laid out
// (building them all at once kept the page busy ~250 ms before the first card asked).
// The cards past `limit` render as placeholders of a card's size. Call from a component's
// setup; once every card is mounted `limit` stays Infinity.
import { onBeforeUnmount, ref, watch } from 'vue'
import { drawnCards } from './firstdraw.js'

// The rest of the cards are built once the first screen's first few are drawn: building them
// earlier (~30-50 ms of the page's thread a batch of 24, and their layout and paint) took
// CPU from the server and the page while those charts were still being computed and drawn.
export const FIRST_DRAWN = 4 // cards drawn before the rest are built (or FIRST_WAIT ms)
const FIRST_WAIT = 2000

// cards on the first screen (and the observer's margin below it): a column per 440 px
// (the grid's minimum), a row per ~300 px
export function firstScreen() {
  const columns = Math.max(1, Math.floor(window.innerWidth / 440))
  const rows = Math.ceil((window.innerHeight + 300) / 300)
  return columns * rows
}

const idle = (fn, wait) =>
  typeof requestIdleCallback === 'function' ? requestIdleCallback(fn, { timeout: wait }) : setTimeout(fn, 0)
const cancelIdle = (id) => (typeof cancelIdleCallback === 'function' ? cancelIdleCallback(id) : clearTimeout(id))

export function useProgressive(total, { first = firstScreen(), step = 24, wait = 300 } = {}) {
  const limit = ref(first)
  let pending = 0
  const grow = () => {
    pending = 0
    if (limit.value >= total()) {
      limit.value = Infinity
      return
    }
    limit.value += step
    pending = idle(grow, wait)
  }
  // starts when there are more cards than the first screen (the list comes with the runs)
  // and the first of them are drawn (or after FIRST_WAIT ms: charts without data never draw)
  const begin = drawnCards.value + Math.min(FIRST_DRAWN, first)
  let started = false
  let timer = 0
  const start = () => {
    if (started) return
    started = true
    clearTimeout(timer)
    pending = idle(grow, wait)
  }
  const check = () => {
    if (started || total() <= limit.value) return
    if (drawnCards.value >= begin) start()
    else if (!timer) timer = setTimeout(start, FIRST_WAIT)
  }
  const stopTotal = watch(total, check, { immediate: true })
  const stopDrawn = watch(drawnCards, check)
  onBeforeUnmount(() => {
    stopTotal()
    stopDrawn()
    clearTimeout(timer)
    if (pending) cancelIdle(pending)
  })
  return limit
}
