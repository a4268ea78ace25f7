// Cards draw only near the viewport: `visible` is true while the element is in (or within
// `margin` of) the viewport, `seen` once it has been (a card keeps its drawing from then on);
// `onFirst` runs the first time it is seen. Call from a component's setup.
//
// With `now`, a card mounted within the margin of the viewport is seen at once, in its
// mounted hook, not when the observer first reports, a frame or more later (~0.1 s on a
// page that has just built its cards).
//
// One IntersectionObserver per margin serves every card, and each of its reports is handled
// in page order: the cards a page opens with ask for their data top first (with an observer
// each, Chromium reported them in no useful order, and the first chart came fifth or sixth).
import { onBeforeUnmount, onMounted, ref } from 'vue'

const observers = new Map() // margin -> {observer, handlers: Map(element -> handler)}

function pageOrder(a, b) {
  if (a === b) return 0
  return a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1
}

// `margin` as the observer takes it ('300px 0px'): the vertical part, in px
function verticalMargin(margin) {
  const px = Number.parseFloat(margin)
  return Number.isFinite(px) ? px : 0
}

function nearNow(el, margin) {
  const r = el.getBoundingClientRect()
  const m = verticalMargin(margin)
  return (r.width > 0 || r.height > 0) && r.bottom >= -m && r.top <= window.innerHeight + m
}

function shared(margin) {
  let entry = observers.get(margin)
  if (!entry) {
    const handlers = new Map()
    const observer = new IntersectionObserver(
      (entries) => {
        const latest = new Map() // an element reported twice: its last report counts
        for (const e of entries) latest.set(e.target, e.isIntersecting)
        for (const el of [...latest.keys()].sort(pageOrder)) {
          const handler = handlers.get(el)
          if (handler) handler(latest.get(el))
        }
      },
      { rootMargin: margin },
    )
    entry = { observer, handlers }
    observers.set(margin, entry)
  }
  return entry
}

export function useNearViewport(el, { margin = '200px 0px', onFirst = null, now = false } = {}) {
  const visible = ref(false)
  const seen = ref(false)
  let target = null
  onMounted(() => {
    target = el.value
    const { observer, handlers } = shared(margin)
    handlers.set(target, (near) => {
      visible.value = near
      if (near && !seen.value) {
        seen.value = true
        if (onFirst) onFirst()
      }
    })
    observer.observe(target)
    if (now && nearNow(target, margin)) handlers.get(target)(true)
  })
  onBeforeUnmount(() => {
    if (!target) return
    const { observer, handlers } = shared(margin)
    observer.unobserve(target)
    handlers.delete(target)
  })
  return { visible, seen }
}
