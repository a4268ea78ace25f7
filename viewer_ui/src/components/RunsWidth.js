// The width of an element, kept up to date: the Runs page's SVG plots draw in pixels so their
// text keeps its size at any width.
import { onBeforeUnmount, onMounted, ref } from 'vue'

export function useWidth(fallback) {
  const el = ref(null)
  const width = ref(fallback)
  let observer = null
  onMounted(() => {
    observer = new ResizeObserver(([entry]) => {
      const w = Math.floor(entry.contentRect.width)
      if (w > 0) width.value = w
    })
    if (el.value) observer.observe(el.value)
  })
  onBeforeUnmount(() => observer && observer.disconnect())
  return { el, width }
}
