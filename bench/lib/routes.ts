/**
 * What each benchmark route does with the session, written once per kind of session object.
 * Every server of every variant answers the same routes with the same bodies:
 *
 * | route | does | workload |
 * |---|---|---|
 * | `/init` | `n = 0` (makes the session) | set-up |
 * | `/rmw` | `n = n + 1` (read, modify, save) | (a), and (c) without a cookie |
 * | `/read` | reads `n` | (b) |
 * | `/plain` | never touches the session | (d) |
 * | `/set?k=K` | `K = 1` | (e) |
 * | `/count?n=N` | how many of `k0`…`k{N-1}` are set | (e), read back |
 */
import type { Session } from '../../src/session.ts'

/** The routes that use the session; `/plain` is handled apart, before any session code runs. */
export const SESSION_ROUTES = ['init', 'rmw', 'read', 'set', 'count'] as const
export type SessionRoute = (typeof SESSION_ROUTES)[number]

/** The body of `/plain`. */
export const PLAIN = 'ok'

/** The route of a request path (`/rmw`, `/set?k=…`), or `null` for none of ours. */
export function routeOf(url: string): SessionRoute | 'plain' | null {
  const q = url.indexOf('?')
  const path = q < 0 ? url.slice(1) : url.slice(1, q)
  return path === 'plain' || (SESSION_ROUTES as readonly string[]).includes(path) ? (path as SessionRoute | 'plain') : null
}

/** The `k` (or `n`) query parameter of `/set?k=…` (`/count?n=…`): the text after the first `=`. */
export function paramOf(url: string): string {
  const eq = url.indexOf('=')
  return eq < 0 ? '' : url.slice(eq + 1)
}

/** Sessions that are plain objects: express-session, cookie-session, iron-session, the limits' Map entries. */
export function objectRoute(route: SessionRoute, param: string, s: Record<string, unknown>): string {
  switch (route) {
    case 'init':
      s.n = 0
      return '0'
    case 'rmw': {
      const n = ((s.n as number | undefined) ?? 0) + 1
      s.n = n
      return String(n)
    }
    case 'read':
      return String((s.n as number | undefined) ?? 0)
    case 'set':
      s[param] = 1
      return PLAIN
    case 'count': {
      let present = 0
      for (let i = 0, n = Number(param); i < n; i++) if (s['k' + i] !== undefined) present++
      return String(present)
    }
  }
}

/** A session with `get`/`set` methods and synchronous access: sessionkit (loaded eagerly), @fastify/session. */
export interface GetSet {
  get(key: string): unknown
  set(key: string, value: unknown): void
}

export function getSetRoute(route: SessionRoute, param: string, s: GetSet): string {
  switch (route) {
    case 'init':
      s.set('n', 0)
      return '0'
    case 'rmw': {
      const n = ((s.get('n') as number | undefined) ?? 0) + 1
      s.set('n', n)
      return String(n)
    }
    case 'read':
      return String((s.get('n') as number | undefined) ?? 0)
    case 'set':
      s.set(param, 1)
      return PLAIN
    case 'count': {
      let present = 0
      for (let i = 0, n = Number(param); i < n; i++) if (s.get('k' + i) !== undefined) present++
      return String(present)
    }
  }
}

/** sessionkit with `lazy: true`: the awaited accessors (Django 5's `aget`/`aset`). */
export async function lazyRoute(route: SessionRoute, param: string, s: Session<Record<string, unknown>>): Promise<string> {
  switch (route) {
    case 'init':
      await s.aset('n', 0)
      return '0'
    case 'rmw': {
      const n = (((await s.aget('n')) as number | undefined) ?? 0) + 1
      s.set('n', n) // loaded by aget: the sync accessor is fine now
      return String(n)
    }
    case 'read':
      return String(((await s.aget('n')) as number | undefined) ?? 0)
    case 'set':
      await s.aset(param, 1)
      return PLAIN
    case 'count':
      await s.load()
      return getSetRoute('count', param, s as unknown as GetSet)
  }
}
