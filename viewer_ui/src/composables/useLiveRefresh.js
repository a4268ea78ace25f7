// Live refresh of a card whose data grows while its runs train (the scalar charts, the
// histogram rows, the media cards). Call from a component's setup.
//
// `count` (a ref or getter) moves when a live update says the card's series grew. While
// `follow()` holds, each move schedules `refresh` at most once per `interval` ms, counted
// from the start of the last fetch. With `visible` (a ref), a card that comes back into view
// refreshes at once when `ready()` holds and the data it shows is older than `count`.
//
// One timer serves the card's other delayed fetches too (`schedule`: the last call wins);
// it is cleared on unmount. A fetch calls `begin()` when it starts (the throttle counts
// from there) and, once its answer is shown, `shown(n)` with the count `begin()` returned.
import { onBeforeUnmount, toValue, watch } from 'vue'

export function useLiveRefresh(
  refresh,
  { count, follow = () => true, visible = null, ready = () => true, interval = 1000 },
) {
  let timer = 0
  let lastFetch = 0
  let shownCount = 0

  function schedule(delay) {
    clearTimeout(timer)
    timer = setTimeout(refresh, delay)
  }
  function begin() {
    lastFetch = Date.now()
    return toValue(count)
  }
  function shown(n) {
    shownCount = n
  }
  const stale = () => toValue(count) !== shownCount

  watch(count, () => {
    if (follow()) schedule(Math.max(0, interval - (Date.now() - lastFetch)))
  })
  if (visible) {
    watch(visible, (now) => {
      if (now && ready() && stale()) schedule(0)
    })
  }
  onBeforeUnmount(() => clearTimeout(timer))
  return { schedule, begin, shown, stale }
}
