// A stable colour per run: boards are numbered in creation order by the server, so a run
// keeps its colour across reloads, selections and overlays. The first 30 colours are picked
// to stay apart (CIE76 distance >= 17 between any two, on light and dark backgrounds); later
// runs get generated ones. A colour the user picked for a run (its legend swatch) wins and is
// kept in this browser (localStorage).
import { reactive } from 'vue'

export const PALETTE = [
  '#e8710a', '#1a73e8', '#12b5cb', '#e52592', '#7cb342', '#9334e6', '#f9ab00', '#d93025',
  '#00897b', '#5c6bc0', '#a1887f', '#78909c', '#0d47a1', '#ff8a80', '#2e7d32', '#c51162',
  '#6d4c41', '#aeea00', '#7b1fa2', '#ffb74d', '#01579b', '#f06292', '#827717', '#b388ff',
  '#004d40', '#ff5722', '#880e4f', '#64dd17', '#1de9b6', '#c0ca33',
]

const STORAGE_KEY = 'kohakuboard.colors'
const HEX = /^#[0-9a-f]{6}$/

function loadPicked() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || '{}')
    return Object.fromEntries(Object.entries(saved).filter(([, c]) => HEX.test(c)))
  } catch {
    return {} // no storage (a locked-down browser) or a damaged entry
  }
}

// run id -> '#rrggbb' chosen by the user
export const picked = reactive(loadPicked())

export function pickColor(boardId, hex) {
  if (hex && HEX.test(hex)) picked[boardId] = hex
  else delete picked[boardId]
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(picked))
  } catch {
    // storage full or refused: the colour holds until the page closes
  }
}

const hex2 = (v) => Math.round(v * 255).toString(16).padStart(2, '0')

// beyond the palette: hues a golden angle apart, in three lightness steps
function generated(i) {
  const h = (i * 137.508) % 360
  const s = 0.65
  const l = [0.45, 0.6, 0.35][i % 3]
  const k = (n) => (n + h / 30) % 12
  const a = s * Math.min(l, 1 - l)
  const f = (n) => l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1))
  return `#${hex2(f(0))}${hex2(f(8))}${hex2(f(4))}`
}

export function paletteColor(i) {
  return i < PALETTE.length ? PALETTE[i] : generated(i)
}

export function colorOf(board) {
  if (board && picked[board.id]) return picked[board.id]
  const i = board && Number.isInteger(board.index) ? board.index : 0
  return paletteColor(i)
}

// `#rrggbb` with an alpha (0..1), as rgba()
export function fade(hex, alpha) {
  const n = parseInt(hex.slice(1), 16)
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`
}
