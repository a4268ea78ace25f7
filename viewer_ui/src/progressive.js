// A long list of cards mounted a screenful first: `limit` starts at the cards of about one
// screen and grows by `step` in later tasks (idle time, or `wait` ms at the latest), so the
// first cards ask for their data and draw before the other ~200 are built and laid out
// (building them all at once kept the page busy ~250 ms before the first card asked).
// The cards past `limit` render as placeholders of a card's size. Call from a component's
// setup; once every card is mounted `limit` stays Infinity.
import { onBeforeUnmount, ref, watch } from 'vue'

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
  const stop = watch(total, (n) => {
    if (n > limit.value && !pending) {
      stop()
      pending = idle(grow, wait)
    }
  })
  onBeforeUnmount(() => {
    stop()
    if (pending) cancelIdle(pending)
  })
  return limit
}
