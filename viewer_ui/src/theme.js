// Light/dark: `view.theme` is auto | light | dark; auto follows the system setting.
import { computed, ref } from 'vue'
import { view } from './state.js'

const media = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null
const systemDark = ref(media ? media.matches : false)
if (media) media.addEventListener('change', (e) => (systemDark.value = e.matches))

export const dark = computed(() => (view.theme === 'auto' ? systemDark.value : view.theme === 'dark'))

// Chart colours (canvas drawing cannot read CSS variables by itself)
export const chartTheme = computed(() =>
  dark.value
    ? { axis: '#a8b0bd', grid: 'rgba(255,255,255,0.08)', bg: '#1b1f26', text: '#e6e9ef' }
    : { axis: '#5f6673', grid: 'rgba(0,0,0,0.07)', bg: '#ffffff', text: '#1f2329' },
)
