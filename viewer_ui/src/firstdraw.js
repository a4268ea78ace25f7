// Chart cards drawn so far on this page (ChartCard.vue counts each card's first drawing), and
// a wait for the first few: work that the first charts do not need (the cards below the
// first screen, the live state's first snapshot) waits for them, so that it does not take
// the CPU those charts are being computed and drawn with (the page and the server share it).
import { ref, watch } from 'vue'

export const drawnCards = ref(0)

// resolves once `n` more cards have been drawn, or after `wait` ms (charts without data, a
// page without charts)
export function afterCharts(n, wait) {
  const goal = drawnCards.value + n
  return new Promise((resolve) => {
    let stop = null
    const done = () => {
      clearTimeout(timer)
      if (stop) stop()
      resolve()
    }
    const timer = setTimeout(done, wait)
    stop = watch(drawnCards, (v) => v >= goal && done())
  })
}
