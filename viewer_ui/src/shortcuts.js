// Keyboard shortcuts of the viewer (App.vue listens; ShortcutsHelp.vue lists them on `?`).
// Nothing fires while the user types in a text box, a select or an editable element, or holds
// Ctrl/Cmd/Alt (the browser's own shortcuts stay theirs).

// `g` then a letter switches the page (within SEQUENCE_MS)
export const GO = { s: 'scalars', c: 'scalars', h: 'histograms', m: 'media', t: 'tables', r: 'runs' }
const SEQUENCE_MS = 1500

export const SHORTCUTS = [
  ['/', 'focus the search box of the page (the run filter where the page has none)'],
  ['g s', 'Scalars (or g c: charts)'],
  ['g h', 'Histograms'],
  ['g m', 'Media'],
  ['g t', 'Tables'],
  ['g r', 'Runs'],
  ['?', 'show or hide this help'],
  ['Esc', 'close this help or the full-screen chart; leave a search box'],
]

// keys typed here are text, not shortcuts
const NOT_TEXT = new Set(['checkbox', 'radio', 'range', 'button', 'submit', 'reset', 'color', 'file'])
export function isTyping(target) {
  if (!target || !target.tagName) return false
  const tag = target.tagName
  if (tag === 'TEXTAREA' || tag === 'SELECT' || target.isContentEditable) return true
  return tag === 'INPUT' && !NOT_TEXT.has((target.type || 'text').toLowerCase())
}

// The search box `/` focuses: the first one shown in the page's main area, else the run filter
// of the list on the left.
export function searchBox(root = document) {
  const shown = (el) => el && el.offsetParent !== null && !el.disabled
  const inMain = [...root.querySelectorAll('main input[type="search"]')].find(shown)
  return inMain || [...root.querySelectorAll('.board-list input[type="search"]')].find(shown) || null
}

// A keydown handler. actions: {go(page), search(), toggleHelp(), escape()}; each returns
// nothing. The handler prevents the default of the keys it uses.
export function keyHandler(actions, now = () => Date.now()) {
  let pendingG = 0
  return (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return
    if (event.key === 'Escape') {
      if (isTyping(event.target)) event.target.blur()
      actions.escape()
      return
    }
    if (isTyping(event.target)) return
    const key = event.key
    if (pendingG && now() - pendingG <= SEQUENCE_MS && key in GO) {
      pendingG = 0
      event.preventDefault()
      actions.go(GO[key])
      return
    }
    pendingG = 0
    if (key === 'g') {
      pendingG = now()
    } else if (key === '/') {
      event.preventDefault()
      actions.search()
    } else if (key === '?') {
      event.preventDefault()
      actions.toggleHelp()
    }
  }
}
