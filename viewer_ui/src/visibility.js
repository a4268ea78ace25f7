// Cards draw only near the viewport: `visible` is true while the element is in (or within
// `margin` of) the viewport, `seen` once it has been (a card keeps its drawing from then on);
// `onFirst` runs the first time it is seen. Call from a component's setup.
import { onBeforeUnmount, onMounted, ref } from 'vue'

export function useNearViewport(el, { margin = '200px 0px', onFirst = null } = {}) {
  const visible = ref(false)
  const seen = ref(false)
  let observer = null
  onMounted(() => {
    observer = new IntersectionObserver(
      (entries) => {
        visible.value = entries[entries.length - 1].isIntersecting
        if (visible.value && !seen.value) {
          seen.value = true
          if (onFirst) onFirst()
        }
      },
      { rootMargin: margin },
    )
    observer.observe(el.value)
  })
  onBeforeUnmount(() => {
    if (observer) observer.disconnect()
  })
  return { visible, seen }
}
