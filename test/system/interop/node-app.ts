/**
 * The sessionkit twin of `interop_site/views.py`: the same four routes, answering with the
 * session described the same way, served by sessionkit's `node:http` adapter on 127.0.0.1
 * port 0.
 */
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Session, Settings } from 'sessionkit'
import { withSessions, type SessionRequest } from 'sessionkit/node'

/** A session as the Node routes report it (the same fields as Django's `describe`). */
export interface NodeSession {
  key: string | null
  data: Record<string, unknown>
  expiryAge: number
  expiryDate: string
  browserClose: boolean
}

export function describeSession(session: Session): NodeSession {
  return {
    key: session.sessionKey,
    data: Object.fromEntries(session.entries()),
    expiryAge: session.getExpiryAge(),
    expiryDate: session.getExpiryDate().toISOString(),
    browserClose: session.getExpireAtBrowserClose(),
  }
}

async function body(req: SessionRequest): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  const text = Buffer.concat(chunks).toString('utf8')
  return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>)
}

export interface NodeApp {
  url: string
  close(): Promise<void>
}

/**
 * `POST /set` `{"values": {...}, "expiry": N | 0 | null}`, `GET /get`, `GET /expiry?n=N|none`,
 * `GET /flush`; each answers the session as JSON.
 */
export async function startNodeApp(settings: Partial<Settings>): Promise<NodeApp> {
  const listener = withSessions(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const session = req.session
    if (url.pathname === '/set' && req.method === 'POST') {
      const { values, ...rest } = await body(req)
      session.update((values ?? {}) as Record<string, unknown>)
      if ('expiry' in rest) session.setExpiry(rest.expiry as number | null)
    } else if (url.pathname === '/expiry') {
      const n = url.searchParams.get('n') ?? 'none'
      session.setExpiry(n === 'none' ? null : Number(n))
    } else if (url.pathname === '/flush') {
      await session.flush()
      res.setHeader('Content-Type', 'application/json')
      res.end(JSON.stringify({ flushed: true }))
      return
    } else if (url.pathname !== '/get') {
      res.statusCode = 404
      res.end()
      return
    }
    res.setHeader('Content-Type', 'application/json')
    res.end(JSON.stringify(describeSession(session)))
  }, settings)
  const server = createServer(listener)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await listener.close()
    },
  }
}

export interface NodeResponse {
  status: number
  body: unknown
  setCookie: string[]
  vary: string | null
}

/** One request to the Node app with `cookies` sent, as a browser would send them. */
export async function nodeRequest(
  app: NodeApp,
  path: string,
  options: { method?: string; cookies?: Record<string, string>; json?: unknown } = {},
): Promise<NodeResponse> {
  const headers: Record<string, string> = {}
  const cookies = Object.entries(options.cookies ?? {})
  if (cookies.length) headers['cookie'] = cookies.map(([name, value]) => `${name}=${value}`).join('; ')
  if (options.json !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(app.url + path, {
    method: options.method ?? 'GET',
    headers,
    body: options.json === undefined ? undefined : JSON.stringify(options.json),
    redirect: 'manual',
  })
  const text = await res.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, setCookie: res.headers.getSetCookie(), vary: res.headers.get('vary') }
}

/** The value of cookie `name` in `Set-Cookie` headers, or undefined. */
export function cookieValue(setCookie: readonly string[], name: string): string | undefined {
  for (const header of setCookie) {
    const [pair] = header.split(';', 1)
    const at = pair!.indexOf('=')
    if (pair!.slice(0, at).trim() === name) return pair!.slice(at + 1).trim()
  }
  return undefined
}
