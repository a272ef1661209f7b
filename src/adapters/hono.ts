/**
 * Hono adapter: `app.use(sessions(settings))`, then `c.get('session')` in every handler,
 * with Django's `SessionMiddleware` behaviour. Runs wherever Hono runs (Node through
 * `@hono/node-server`, Bun, Deno, workers), given an engine that does.
 *
 * ```ts
 * import { Hono } from 'hono'
 * import { serve } from '@hono/node-server'
 * import { sessions, type SessionEnv } from 'sessionkit/hono'
 *
 * type Data = { visits: number }
 * const app = new Hono<SessionEnv<Data>>()
 * app.use(sessions<Data>({ secretKey: process.env.SECRET_KEY! }))
 * app.get('/', (c) => {
 *   const session = c.get('session')
 *   session.set('visits', (session.get('visits') ?? 0) + 1)
 *   return c.text(`visits: ${session.get('visits')}`)
 * })
 * serve({ fetch: app.fetch, port: 8000 })
 * ```
 *
 * Without `SessionEnv`, `c.get('session')` is still typed, as `Session<SessionData>`.
 */
import type { Context, MiddlewareHandler } from 'hono'
import type { RequestSession, ResponseDecision, Sessions } from '../middleware.js'
import type { Session, SessionData } from '../session.js'
import type { Settings } from '../settings.js'
import { failureResponse, sessionsOf, withHandle, type SessionsHandle } from './prologue.js'
import { applyToResponse } from './fetch.js'

declare module 'hono' {
  interface ContextVariableMap {
    /** The visitor's session (sessionkit). Type its data per app with `new Hono<SessionEnv<Data>>()`. */
    session: Session<SessionData>
  }
}

/** Hono's environment with `c.get('session')` typed: `new Hono<SessionEnv<Data>>()`; intersect with your own bindings. */
export type SessionEnv<T extends object = SessionData> = { Variables: { session: Session<T> } }

/** The middleware, with the sessions it serves (for `migrate()`, `close()`, scripts and tests). */
export interface SessionMiddleware<T extends object = SessionData> extends MiddlewareHandler<SessionEnv<T>>, SessionsHandle<T> {}

/** Replace `c.res` as is: Hono's setter would merge the previous response's headers into it. */
function replaceResponse(c: Context, response: Response): void {
  if (response === c.res) return
  c.res = undefined
  c.res = response
}

/**
 * Hono middleware giving each request `c.get('session')`.
 *
 * - A request without a session cookie costs no store round trip; one with a cookie is
 *   loaded before the handler runs (or, with `lazy: true`, when the handler awaits it).
 * - The session is saved, and the cookie set on `c.res`, before the response is handed back
 *   to Hono: nothing of it has been sent yet. A response with immutable headers (one from
 *   `fetch()`, or `Response.redirect()`) is copied, its body carried over as a stream.
 * - A store that is down answers 503 (logged); a session logged out by a concurrent request
 *   answers 400 (Django's `SessionInterrupted`). A handler error becomes Hono's error
 *   response (500 by default) before this middleware sees it: nothing is saved.
 *
 * Django: `django.contrib.sessions.middleware.SessionMiddleware`.
 */
export function sessions<T extends object = SessionData>(settings: Partial<Settings> | Sessions<T>): SessionMiddleware<T> {
  const core = sessionsOf(settings)
  const middleware: MiddlewareHandler<SessionEnv<T>> = async function sessionkit(c, next) {
    if (c.get('session') !== undefined) return next()
    let state: RequestSession<T>
    try {
      // A promise only when the session must be loaded first: no tick otherwise.
      const started = core.start(c.req.header('Cookie'))
      state = started instanceof Promise ? await started : started
    } catch (error) {
      return failureResponse(error, core.settings, 'load')
    }
    c.set('session', state.session)
    await next()
    let decision: ResponseDecision
    try {
      const finished = core.finish(state, c.res.status)
      decision = finished instanceof Promise ? await finished : finished
    } catch (error) {
      c.res.body?.cancel().catch(() => undefined)
      replaceResponse(c, failureResponse(error, core.settings, 'save'))
      return
    }
    replaceResponse(c, applyToResponse(c.res, decision))
  }
  return withHandle(middleware, core)
}
