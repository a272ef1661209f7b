/**
 * Web `Request` → `Response` adapter: `withSessions(handler, settings)` for any server that
 * speaks the Fetch API — Bun, Deno, Cloudflare-style workers, `@hono/node-server` and other
 * Node bridges — with Django's `SessionMiddleware` behaviour.
 *
 * ```ts
 * import { withSessions } from 'sessionkit/fetch'
 *
 * type Data = { visits: number }
 * const fetch = withSessions<Data>(async (request, session) => {
 *   session.set('visits', (session.get('visits') ?? 0) + 1)
 *   return new Response(`visits: ${session.get('visits')}`)
 * }, { secretKey: process.env.SECRET_KEY!, engine: 'signed_cookies' })
 *
 * Bun.serve({ fetch })          // Bun
 * Deno.serve(fetch)             // Deno
 * // Node: serve({ fetch }) from '@hono/node-server'
 * ```
 */
import { patchVary, type RequestSession, type ResponseDecision, type Sessions } from '../middleware.js'
import type { Session, SessionData } from '../session.js'
import type { Settings } from '../settings.js'
import { appendSetCookies, failureResponse, sessionsOf, withHandle, type SessionsHandle } from './prologue.js'

/**
 * A fetch handler that also receives the visitor's session. Any arguments the server passes
 * after the request (Bun's `server`, Deno's `info`, a worker's `env` and `ctx`) follow the session.
 */
export type SessionFetchHandler<T extends object = SessionData, A extends unknown[] = []> = (
  request: Request,
  session: Session<T>,
  ...rest: A
) => Response | Promise<Response>

/** What {@link withSessions} returns: a fetch handler, plus the sessions it uses. */
export interface SessionFetch<T extends object = SessionData, A extends unknown[] = []> extends SessionsHandle<T> {
  (request: Request, ...rest: A): Promise<Response>
}

/**
 * `response` with the session's `Vary`, `Cache-Control` and `Set-Cookie` (the session's, then
 * the layers') added. A response whose headers are
 * immutable (`Response.redirect()`, a `fetch()` result passed through) is copied first; the
 * body is carried over as a stream, not read.
 */
export function applyToResponse(response: Response, decision: ResponseDecision): Response {
  if (!decision.vary && !decision.setCookie && !decision.cookies && !decision.cacheControl) return response
  try {
    write(response.headers, decision)
    return response
  } catch (error) {
    if (!(error instanceof TypeError)) throw error
    const copy = new Response(response.body, response)
    write(copy.headers, decision)
    return copy
  }
}

function write(headers: Headers, decision: ResponseDecision): void {
  if (decision.vary) headers.set('Vary', patchVary(headers.get('Vary')))
  appendSetCookies(decision, (cookie) => headers.append('Set-Cookie', cookie))
  if (decision.cacheControl) headers.set('Cache-Control', decision.cacheControl)
}

/**
 * Wrap a fetch handler so that it receives the visitor's session.
 *
 * - A request without a session cookie costs no store round trip; one with a cookie is
 *   loaded before the handler runs (or, with `lazy: true`, when the handler awaits it).
 * - The session is saved, and its cookie added, before the `Response` is returned: nothing
 *   of it has been sent yet. A streamed body streams after.
 * - A store that is down answers 503 (logged); a session logged out by a concurrent
 *   request answers 400 (Django's `SessionInterrupted`). The handler's response is then
 *   discarded (its body cancelled).
 * - An error thrown by the handler propagates to the server (which answers 500); nothing is saved.
 *
 * Django: `django.contrib.sessions.middleware.SessionMiddleware`.
 */
export function withSessions<T extends object = SessionData, A extends unknown[] = []>(
  handler: SessionFetchHandler<T, A>,
  settings: Partial<Settings> | Sessions<T>,
): SessionFetch<T, A> {
  const core = sessionsOf(settings)
  const fetch = async function sessionkit(request: Request, ...rest: A): Promise<Response> {
    let state: RequestSession<T>
    try {
      // A promise only when the session must be loaded first: no tick otherwise.
      const started = core.start(request.headers.get('Cookie'))
      state = started instanceof Promise ? await started : started
    } catch (error) {
      return failureResponse(error, core.settings, 'load')
    }
    let response: Response
    try {
      response = await handler(request, state.session, ...rest)
    } catch (error) {
      await core.abandon(state) // release a session lock the handler took
      throw error
    }
    let decision: ResponseDecision
    try {
      const finished = core.finish(state, response.status)
      decision = finished instanceof Promise ? await finished : finished
    } catch (error) {
      response.body?.cancel().catch(() => undefined)
      return failureResponse(error, core.settings, 'save')
    }
    return applyToResponse(response, decision)
  }
  return withHandle(fetch, core)
}

/** @deprecated Renamed {@link withSessions}, the name the `node:http` adapter uses; this name goes in the next release. */
export const withSession = withSessions
