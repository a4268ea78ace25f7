// The team server (`kobo serve`): who is signed in and which project the app shows.
// `kobo open` has no such routes: there `session.server` stays false and nothing changes.
import { reactive } from 'vue'

export const session = reactive({ server: false, user: null, admin: false, projects: [], project: '' })

const PROJECT_COOKIE = 'kohakuboard-project'

function currentProject() {
  const found = document.cookie.split('; ').find((c) => c.startsWith(PROJECT_COOKIE + '='))
  return found ? decodeURIComponent(found.slice(PROJECT_COOKIE.length + 1)) : ''
}

// the server answers 401 with this header: it has a login page
const LOGIN_HEADER = 'X-KohakuBoard-Login'

export async function loadSession() {
  const accept = { headers: { Accept: 'application/json' } }
  let response
  try {
    // /api/info exists under both kobo open and kobo serve; asking /api/server/me first would
    // be a 404 (a console error) under kobo open
    response = await fetch('/api/info', accept)
    if (response.status === 401 && response.headers.get(LOGIN_HEADER)) {
      session.server = true
      return
    }
    if (!response.ok || !('project' in (await response.json()))) return
    response = await fetch('/api/server/me', accept)
  } catch {
    return
  }
  if (!response.ok) return
  const me = await response.json()
  Object.assign(session, { server: true, user: me.name, admin: me.admin, projects: me.projects })
  session.project = me.project || currentProject()
}

// changes need the app's header (the server's cross-site request forgery check)
const HEADERS = { 'Content-Type': 'application/json', 'X-KohakuBoard': '1' }

export async function signIn(name, password) {
  const response = await fetch('/api/server/login', {
    method: 'POST',
    headers: HEADERS,
    body: JSON.stringify({ name, password }),
  })
  if (response.ok) return ''
  try {
    return (await response.json()).detail || response.statusText
  } catch {
    return response.statusText
  }
}

// a JSON call to the server's own routes; throws an Error with the server's detail
export async function serverCall(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: method === 'GET' ? { Accept: 'application/json' } : HEADERS,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  let doc = null
  try {
    doc = await response.json()
  } catch {
    // no JSON body
  }
  if (!response.ok) throw new Error((doc && doc.detail) || response.statusText)
  return doc
}

export async function signOut() {
  await fetch('/api/server/logout', { method: 'POST', headers: HEADERS })
  window.location.reload()
}

export function switchProject(name) {
  document.cookie = `${PROJECT_COOKIE}=${encodeURIComponent(name)}; Path=/; SameSite=Strict`
  window.location.reload()
}

loadSession() // once, when the app starts
