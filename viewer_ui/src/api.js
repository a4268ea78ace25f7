// The shared fetch machinery of the viewer API (/api/...): errors, the 401 (no token) state,
// query strings, JSON, binary answers and writes. The routes themselves are in endpoints/.
import { reactive } from 'vue'

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail)
    this.status = status
  }
}

// Set when the server answers 401: this browser has no access token (the viewer was opened
// without the URL `kobo open` printed, or the viewer restarted with a new token).
export const auth = reactive({ needed: false })

// the response, or an ApiError with the server's `detail`
export async function check(response) {
  if (response.ok) return response
  if (response.status === 401) auth.needed = true
  let detail = response.statusText
  try {
    detail = (await response.json()).detail || detail
  } catch {
    // not JSON: keep the status text
  }
  throw new ApiError(response.status, detail)
}

// A query string; an array value is a repeated parameter (board=a&board=b), and undefined,
// null and '' are left out (not given).
export function query(params) {
  const q = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue
    for (const v of Array.isArray(value) ? value : [value]) q.append(key, String(v))
  }
  return q.toString()
}

export async function getJSON(path, signal) {
  const response = await fetch(path, { signal, headers: { Accept: 'application/json' } })
  return (await check(response)).json()
}

// a binary answer (the series and histogram formats), for its endpoint module to decode
export async function getBinary(path, signal) {
  const response = await check(await fetch(path, { signal }))
  return response.arrayBuffer()
}

// the server refuses writes without this header (a page of another site cannot set it)
const WRITE_HEADERS = { 'Content-Type': 'application/json', 'X-KohakuBoard': '1' }

// a write (PATCH, POST, DELETE) with an optional JSON body; the answer's JSON
export async function sendJSON(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: WRITE_HEADERS,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return (await check(response)).json()
}
