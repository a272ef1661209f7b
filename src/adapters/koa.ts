/**
 * Koa adapter: `app.use(sessions(settings))`, then `ctx.session` in every later middleware,
 * with Django's `SessionMiddleware` behaviour.
 *
 * ```ts
 * import Koa from 'koa'
 * import { sessions, type SessionContext } from 'sessionkit/koa'
 *
 * type Data = { visits: number }
 * const app = new Koa<Koa.DefaultState, SessionContext<Data>>()
 * app.use(sessions<Data>({ secretKey: process.env.SECRET_KEY! }))
 * app.use((ctx) => {
 *   ctx.session.set('visits', (ctx.session.get('visits') ?? 0) + 1)
 *   ctx.body = `visits: ${ctx.session.get('visits')}`
 * })
 * app.listen(8000)
 * ```
 *
 * Chaining types it too: `new Koa().use(sessions<Data>(settings)).use((ctx) => …)`.
 */
import type { Context, Middleware, ParameterizedContext } from 'koa'
import { patchVary, type RequestSession, type ResponseDecision, type Sessions } from '../middleware.js'
import type { Session, SessionData } from '../session.js'
import type { Settings } from '../settings.js'
import { FAILURE_HEADERS, sessionFailure } from './failure.js'
import { appendSetCookies, sessionsOf, withHandle, type SessionsHandle } from './prologue.js'

/** The context this middleware adds to: `new Koa<Koa.DefaultState, SessionContext<Data>>()`. */
export interface SessionContext<T extends object = SessionData> {
  /** The visitor's session (sessionkit). */
  session: Session<T>
}

/** The middleware, with the sessions it serves (for `migrate()`, `close()`, scripts and tests). */
export interface SessionMiddleware<T extends object = SessionData> extends Middleware<Record<never, never>, SessionContext<T>>, SessionsHandle<T> {}

/** Replace the response by the answer to a session failure: the handler's headers and body are dropped. */
function respondWithFailure(ctx: ParameterizedContext, error: unknown, settings: Pick<Settings, 'logger'>, phase: 'load' | 'save'): void {
  const { status, body } = sessionFailure(error, settings, phase)
  const previous: unknown = ctx.body
  if (previous !== null && typeof previous === 'object' && typeof (previous as { destroy?: unknown }).destroy === 'function') {
    ;(previous as { destroy(): void }).destroy()
  }
  for (const name of ctx.response.headers ? Object.keys(ctx.response.headers) : []) ctx.remove(name)
  ctx.status = status
  ctx.set(FAILURE_HEADERS)
  ctx.body = body
}

/**
 * Koa middleware giving each request `ctx.session`. Mount it before the middleware that
 * use the session.
 *
 * - A request without a session cookie costs no store round trip; one with a cookie is
 *   loaded before the downstream middleware run (or, with `lazy: true`, when they await it).
 * - After `await next()`, the session is saved and `Set-Cookie` appended (`ctx.append`)
 *   with `ctx.status`: before Koa writes the response. A streamed `ctx.body` streams after.
 * - A store that is down answers 503 (logged); a session logged out by a concurrent request
 *   answers 400 (Django's `SessionInterrupted`).
 * - An error thrown downstream propagates unchanged (Koa answers 500, or your error
 *   middleware decides): nothing is saved. A response written around Koa
 *   (`ctx.respond = false`) is not seen by this middleware.
 *
 * Django: `django.contrib.sessions.middleware.SessionMiddleware`.
 */
export function sessions<T extends object = SessionData>(settings: Partial<Settings> | Sessions<T>): SessionMiddleware<T> {
  const core = sessionsOf(settings)
  const middleware = async function sessionkit(ctx: ParameterizedContext<Record<never, never>, SessionContext<T>>, next: () => Promise<unknown>): Promise<void> {
    if (ctx.session !== undefined) return void (await next())
    let state: RequestSession<T>
    try {
      // A promise only when the session must be loaded first: no tick otherwise.
      const started = core.start(ctx.get('Cookie'))
      state = started instanceof Promise ? await started : started
    } catch (error) {
      return respondWithFailure(ctx as unknown as Context, error, core.settings, 'load')
    }
    ctx.session = state.session
    try {
      await next()
    } catch (error) {
      await core.abandon(state) // release a session lock the handler took; Koa answers the error
      throw error
    }
    let decision: ResponseDecision
    try {
      const finished = core.finish(state, ctx.status)
      decision = finished instanceof Promise ? await finished : finished
    } catch (error) {
      return respondWithFailure(ctx as unknown as Context, error, core.settings, 'save')
    }
    if (decision.vary) ctx.set('Vary', patchVary(ctx.response.get('Vary')))
    appendSetCookies(decision, (cookie) => ctx.append('Set-Cookie', cookie))
    if (decision.cacheControl) ctx.set('Cache-Control', decision.cacheControl)
  }
  return withHandle(middleware, core)
}
