// What the server told us: the board list, the series of each board and their live counts.
import { computed, reactive, toRaw, watch } from 'vue'
import { auth, check } from './api.js'
import { MAX_METRIC_BOARDS, boardsMetrics, info, listBoards } from './endpoints/boards.js'
import { connectLive } from './endpoints/live.js'
import { afterCharts } from './firstdraw.js'
import { ready, view } from './state.js'

export const store = reactive({
  title: '',
  boards: [], // /api/boards, oldest first
  loaded: false,
  error: '',
  metrics: {}, // board id -> [{name, kind, count, last_step}]
  counts: {}, // `${board}\u0000${series}` -> count (bumped by live updates)
  boardsSig: '', // the board list's identity (ids, status, names, tags): refetched when it moves
  progressSig: '', // every board's step count: moves on each commit of a live run
  globalSteps: {}, // board id -> its global_step (live state); see stepaxis.js
  liveLate: false, // no live state came within 2 s: the step axis stops waiting for it
})

export const seriesKey = (board, name) => `${board}\u0000${name}`

// The live count of one series summed over some boards: moves when any of them logs it again.
export const liveCountOf = (boardIds, name) =>
  boardIds.reduce((sum, id) => sum + (store.counts[seriesKey(id, name)] || 0), 0)

export const boardById = computed(() => Object.fromEntries(store.boards.map((b) => [b.id, b])))

export const selectedBoards = computed(() =>
  view.boards.map((id) => boardById.value[id]).filter(Boolean),
)

// Scalar series of the selected boards, in first-logged order (first board first).
export const scalarNames = computed(() => {
  const seen = new Set()
  for (const board of selectedBoards.value) {
    for (const m of store.metrics[board.id] || []) {
      if (m.kind === 'scalar') seen.add(m.name)
    }
  }
  return [...seen]
})

// Series of one kind ('histogram', 'media', ...) of the selected boards: key -> the boards
// that log it, in first-logged order (first board first).
export function keysOfKind(kind) {
  const found = new Map()
  for (const board of selectedBoards.value) {
    for (const m of store.metrics[board.id] || []) {
      if (m.kind !== kind) continue
      if (!found.has(m.name)) found.set(m.name, [])
      found.get(m.name).push(board)
    }
  }
  return found
}

// `train/loss` belongs to the section "train"; names without a `/` to NO_NAMESPACE.
export const NO_NAMESPACE = '(no namespace)'
export const namespaceOf = (name) => (name.includes('/') ? name.slice(0, name.indexOf('/')) : NO_NAMESPACE)

// The keys (of keysOfKind) that `search` (a format.js matcher) accepts, grouped by
// namespace: [{ns, cards: [{name, boards}]}].
export function sectionsOf(keys, search) {
  const groups = new Map()
  for (const [name, boards] of keys) {
    if (!search.test(name)) continue
    const ns = namespaceOf(name)
    if (!groups.has(ns)) groups.set(ns, [])
    groups.get(ns).push({ name, boards })
  }
  return [...groups].map(([ns, cards]) => ({ ns, cards }))
}

// Answers asked by the page's <head> before this code ran (public/early.js): path -> the
// promise of its response. Each is taken once, by the call that asks exactly that path; a
// network failure there is asked again here.
const headStart = (typeof window !== 'undefined' && window.__kohakuboardEarly) || {}

async function earlyOr(path, ask) {
  const answer = headStart[path]
  if (!answer) return ask()
  delete headStart[path]
  let response
  try {
    response = await answer
  } catch {
    return ask()
  }
  return (await check(response)).json()
}

// the path boardsMetrics asks (endpoints/boards.js), to find the head's answer
const metricsPath = (ids) =>
  `/api/metrics?${ids.map((id) => `board=${encodeURIComponent(id)}`).join('&')}`

export async function refreshBoards() {
  try {
    store.boards = await earlyOr('/api/boards', listBoards)
    store.error = ''
  } catch (err) {
    store.error = `cannot list boards: ${err.message}`
  }
  store.loaded = true
}

// The series lists of several boards: the counts go in as one new object, one change for Vue
// instead of one per series (6,000 for 30 runs of 200 series: ~40 ms before the first card).
function setMetrics(lists) {
  const counts = { ...toRaw(store.counts) }
  for (const [id, metrics] of lists) {
    for (const m of metrics) counts[seriesKey(id, m.name)] = m.count
  }
  for (const [id, metrics] of lists) store.metrics[id] = metrics
  store.counts = counts
}

// Answers of /api/metrics asked before the board list came (the runs of the page's URL):
// board id -> the promise of the answer that holds it.
const early = new Map()

function askMetrics(chunk) {
  const asked = chunk.every((id) => early.has(id)) ? early.get(chunk[0]) : null
  const ok = asked && chunk.every((id) => early.get(id) === asked)
  // used once: a run of the URL that did not exist then is asked again when it appears
  for (const [id, answer] of [...early]) if (answer === asked || chunk.includes(id)) early.delete(id)
  return ok ? asked : boardsMetrics(chunk)
}

// The series of the runs a page opens with (its URL's `b=`), asked at once, beside the board
// list (the charts wait for both); the answer is used when the list says the runs exist.
function prefetchMetrics(ids) {
  for (let i = 0; i < ids.length; i += MAX_METRIC_BOARDS) {
    const chunk = ids.slice(i, i + MAX_METRIC_BOARDS)
    const answer = earlyOr(metricsPath(chunk), () => boardsMetrics(chunk))
    answer.catch(() => {}) // a failure is met again (and reported) where it is used
    for (const id of chunk) early.set(id, answer)
  }
}

// The series of the boards `ids`: one request per 64 boards (not one per board).
async function loadMetrics(ids) {
  for (let i = 0; i < ids.length; i += MAX_METRIC_BOARDS) {
    const chunk = ids.slice(i, i + MAX_METRIC_BOARDS)
    try {
      const { metrics, global_steps: steps, errors } = await askMetrics(chunk)
      const lists = []
      for (const id of chunk) {
        // the default x axis is known now, not when the live state comes (charts wait for it)
        if (steps[id] !== undefined && store.globalSteps[id] === undefined) store.globalSteps[id] = steps[id]
        if (metrics[id]) lists.push([id, metrics[id]])
        else {
          store.metrics[id] = []
          store.error = `cannot read board ${id}: ${errors[id] || 'no answer'}`
        }
      }
      setMetrics(lists)
    } catch (err) {
      for (const id of chunk) store.metrics[id] = []
      store.error = `cannot read boards ${chunk.join(', ')}: ${err.message}`
    }
  }
}

async function boardsChanged() {
  const known = new Set(store.boards.map((b) => b.id))
  await refreshBoards()
  // a run started while the page was open with nothing selected: show it
  const fresh = store.boards.filter((b) => !known.has(b.id)).map((b) => b.id)
  if (fresh.length && !view.boards.length) view.boards = fresh.slice(-5)
}

// Steps of runs that are not selected (the list, the runs table) are refetched at most this
// often; selected runs take theirs from the live state at once.
const PROGRESS_REFRESH_MS = 10000
let progressTimer = null

function progressChanged() {
  if (progressTimer) return
  progressTimer = setTimeout(() => {
    progressTimer = null
    refreshBoards()
  }, PROGRESS_REFRESH_MS)
}

function applyLive(delta) {
  if (delta.boards_sig && delta.boards_sig !== store.boardsSig) {
    const first = !store.boardsSig
    store.boardsSig = delta.boards_sig
    if (!first) boardsChanged()
  }
  if (delta.progress_sig && delta.progress_sig !== store.progressSig) {
    const first = !store.progressSig
    store.progressSig = delta.progress_sig
    if (!first) progressChanged()
  }
  for (const [id, state] of Object.entries(delta.boards || {})) {
    const board = boardById.value[id]
    if (board && state.status) board.status = state.status
    if (board && state.steps !== undefined) board.steps = state.steps
    if (state.global_step !== undefined) store.globalSteps[id] = state.global_step
    if (!state.metrics) continue
    const list = store.metrics[id] || (store.metrics[id] = [])
    // looked up and compared unwrapped: the first state repeats the 6,000 counts of 30 runs'
    // lists, each a change through Vue's proxies before (~80 ms); only changes go through them
    const at = new Map(toRaw(list).map((m, i) => [m.name, i]))
    const counts = toRaw(store.counts)
    for (const [name, [kind, count, lastStep]] of Object.entries(state.metrics)) {
      const i = at.get(name)
      if (i === undefined) list.push({ name, kind, count, last_step: lastStep })
      else {
        const old = toRaw(list)[i]
        if (old.count !== count || old.last_step !== lastStep) Object.assign(list[i], { count, last_step: lastStep })
      }
      const key = seriesKey(id, name)
      if (counts[key] !== count) store.counts[key] = count
    }
  }
}

export async function startStore(urlHadBoards) {
  if (urlHadBoards && view.boards.length) prefetchMetrics(view.boards)
  // the title comes when it comes: the charts wait for the board list only
  info()
    .then((meta) => (store.title = meta.title || ''))
    .catch(() => {})
  await refreshBoards()
  if (auth.needed) return // the page says where the token is; nothing else can load
  if (!urlHadBoards) {
    // default: the five newest runs
    view.boards = store.boards.slice(-5).map((b) => b.id)
  }
  ready.value = true
  setTimeout(() => (store.liveLate = true), 2000)
  let disconnect = () => {}
  let turn = 0
  // the first live stream waits for the first series lists and the first chart (or 1.5 s):
  // on a cold server its first snapshot (every board's progress and series) took the CPU
  // the lists and that chart were computed with; later ones start at once
  let before = null
  // the selected runs that exist: an id of a run removed since (an old link) would make the
  // server refuse the whole stream; a board created after the page loaded joins when it appears
  watch(
    () => selectedBoards.value.map((b) => b.id).join(','),
    (joined) => {
      const ids = joined ? joined.split(',') : []
      const missing = ids.filter((id) => !store.metrics[id])
      const lists = missing.length ? loadMetrics(missing) : Promise.resolve()
      if (!before) before = lists.then(() => (view.page === 'scalars' && ids.length ? afterCharts(1, 1500) : null))
      const mine = ++turn
      before.then(() => {
        if (mine !== turn) return // a later selection connects instead
        disconnect()
        disconnect = connectLive(ids, applyLive)
      })
    },
    { immediate: true },
  )
}
