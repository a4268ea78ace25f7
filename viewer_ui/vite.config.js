// Builds the viewer into the Python package (kohakuboard/viewer/static), which is committed:
// `pip install kohakuboard` needs no Node.js. `nox -s ui` rebuilds it from the lockfile and
// records the source hash that tests/viewer/test_bundle.py checks.
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// KB_UI_OUT: build somewhere else (a scratch bundle for tests), leaving the committed one alone
const outDir = process.env.KB_UI_OUT || fileURLToPath(new URL('../kohakuboard/viewer/static', import.meta.url))

export default defineConfig({
  plugins: [vue()],
  define: {
    __VUE_OPTIONS_API__: 'false',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
  },
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: 'assets',
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    sourcemap: false,
  },
  server: {
    // `npm run dev` against a running `kobo open --port 48889`
    proxy: { '/api': 'http://127.0.0.1:48889' },
  },
})
