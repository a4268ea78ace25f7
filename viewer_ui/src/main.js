import { createApp } from 'vue'
import 'uplot/dist/uPlot.min.css'
import './style.css'
import App from './App.vue'
import { readUrl, startUrlSync } from './state.js'
import { startStore } from './store.js'

const found = readUrl()
startUrlSync()
createApp(App).mount('#app')
startStore(found.has('boards'))
