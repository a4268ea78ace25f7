// Asked before the app's bundle is even parsed: the board list and, for the runs the page's URL
// names (`b=`), their series lists. A classic script in the page's <head> (the CSP allows no
// inline script); store.js takes each answer once, for exactly its URL, and asks again itself
// on any other URL or a network failure. The requests are the ones store.js would make: same
// URLs (64 boards a request, as endpoints/boards.js), same Accept header, same cookies.
;(() => {
  const MAX_METRIC_BOARDS = 64
  const early = {}
  const ask = (path) => {
    early[path] = fetch(path, { headers: { Accept: 'application/json' } })
    early[path].catch(() => {}) // store.js meets a failure (and asks again)
  }
  try {
    ask('/api/boards')
    const params = new URLSearchParams(window.location.search)
    const ids = params.has('b') ? params.get('b').split(',').filter(Boolean) : []
    for (let i = 0; i < ids.length; i += MAX_METRIC_BOARDS) {
      const chunk = ids.slice(i, i + MAX_METRIC_BOARDS)
      ask(`/api/metrics?${chunk.map((id) => `board=${encodeURIComponent(id)}`).join('&')}`)
    }
  } catch {
    // the app asks for everything itself
  }
  window.__kohakuboardEarly = early
})()
