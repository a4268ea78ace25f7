// A stable colour per run: boards are numbered in creation order by the server, so a run
// keeps its colour across reloads, selections and overlays.
const PALETTE = [
  '#e8710a', // orange
  '#1a73e8', // blue
  '#12b5cb', // cyan
  '#e52592', // magenta
  '#7cb342', // green
  '#9334e6', // purple
  '#f9ab00', // amber
  '#d93025', // red
  '#00897b', // teal
  '#5c6bc0', // indigo
  '#a1887f', // brown
  '#78909c', // slate
]

export function colorOf(board) {
  const i = board && Number.isInteger(board.index) ? board.index : 0
  return PALETTE[i % PALETTE.length]
}

// `#rrggbb` with an alpha (0..1), as rgba()
export function fade(hex, alpha) {
  const n = parseInt(hex.slice(1), 16)
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`
}
