// Asked before the app's bundle is even parsed: the board list and, for the runs the page's URL
// names (`b=`), their series lists and the first chart (see firstChart below). A classic script in the page's <head> (the CSP allows no
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
    if (ids.length && ids.length <= MAX_METRIC_BOARDS) firstChart(params, ids)
  } catch {
    // the app asks for everything itself
  }
  window.__kohakuboardEarly = early

  // The first chart of the Scalars page, asked as soon as the series lists come (before the
  // app has built its cards): the first scalar of the first run, on the default axis, its
  // points from the window's width (the layout of style.css: runs list 300 px, cards at
  // least 440 px, 3 points a pixel). Only for a page whose first chart is that one (no pinned
  // charts, tab, search, per-chart settings or full-screen chart in the URL). ChartCard.vue
  // takes the answer once, if its own request is this one but for a few points (the
  // window's scrollbar) and it was sent before that card asked; any other request is asked
  // as before. `early.chart`: promises of what is asked ({boards, metric, x, points,
  // smoothing}, or null) and of its response; `sent`; `taken` (by the app: not sent after).
  function firstChart(params, ids) {
    const page = params.get('p') || 'scalars'
    if (page !== 'scalars' || ['pin', 'tab', 'q', 'c', 'fs'].some((k) => params.get(k))) return
    const asked = Number(params.get('s'))
    const smoothing = params.has('s') && Number.isFinite(asked) ? Math.min(Math.max(asked, 0), 0.999) : 0.6
    const lists = early[`/api/metrics?${ids.map((id) => `board=${encodeURIComponent(id)}`).join('&')}`]
    const content = Math.max(window.innerWidth - 300, 0) - 32
    const columns = Math.max(1, Math.floor((content + 12) / 452))
    const width = (content - (columns - 1) * 12) / columns - 2 - 24
    const points = Math.min(Math.max(Math.round(width * 3), 400), 12000)
    const want = lists
      .then((response) => (response.ok ? response.clone().json() : null))
      .then((doc) => {
        if (!doc || ids.some((id) => !doc.metrics[id] || doc.global_steps[id] === undefined)) return null
        let metric = null
        for (const id of ids) {
          const first = doc.metrics[id].find((m) => m.kind === 'scalar')
          if (first) {
            metric = first.name
            break
          }
        }
        if (metric === null) return null
        const x = params.get('x') || (ids.some((id) => doc.global_steps[id] > 0) ? 'global_step' : 'step')
        return { boards: ids, metric, x, points, smoothing }
      })
    const chart = { want, answer: null, sent: false, taken: false }
    const answer = want.then((w) => {
      // a card that asked first (a page slow to parse the lists here) asked for itself
      if (!w || chart.taken) return null
      chart.sent = true
      const query = new URLSearchParams()
      for (const id of w.boards) query.append('board', id)
      query.append('metric', w.metric)
      query.append('x', w.x)
      query.append('points', String(w.points))
      query.append('smoothing', String(w.smoothing))
      return fetch(`/api/series?${query}`)
    })
    want.catch(() => {}) // the chart asks itself
    answer.catch(() => {})
    chart.answer = answer
    early.chart = chart
  }
})()
