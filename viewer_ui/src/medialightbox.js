// The image shown large over the media page (null when closed).
import { ref } from 'vue'

export const lightbox = ref(null) // {url, caption, step, stepTitle, name, run, runId, color}
