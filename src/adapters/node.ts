/**
 * `node:http` adapter: `withSessions(handler, settings)` wraps a request listener so that it gets
 * `req.session`, with Django's `SessionMiddleware` behaviour. The response plumbing it shares with
 * Express is in `hooks.ts`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { SessionError } from '../errors.js'
import { FAILURE_HEADERS, sessionFailure } from './failure.js'
import type { RequestSession, Sessions } from '../middleware.js'
import type { Session, SessionData } from '../session.js'
import type { Settings } from '../settings.js'
import { startSession } from './hooks.js'
import { sessionsOf, withHandle, type SessionsHandle } from './prologue.js'

export { hookResponse, startSession } from './hooks.js'

/** A `node:http` request with its session. */
export interface SessionRequest<T extends object = SessionData> extends IncomingMessage {
  session: Session<T>
}

/** A `node:http` request handler that receives `req.session`. */
export type SessionHandler<T extends object = SessionData> = (req: SessionRequest<T>, res: ServerResponse) => unknown

/** What {@link withSessions} returns: a request listener, plus the sessions it uses. */
export interface SessionListener extends SessionsHandle<any> {
  (req: IncomingMessage, res: ServerResponse): void
}

/**
 * Wrap a `node:http` request listener so that it gets `req.session`, with Django's
 * `SessionMiddleware` behaviour. A store that is down answers 503; an error thrown by the
 * handler answers 500 (no session save).
 *
 * ```ts
 * http.createServer(withSessions(async (req, res) => {
 *   req.session.set('visits', (req.session.get('visits') ?? 0) + 1)
 *   res.end('hi')
 * }, { secretKey: process.env.SECRET_KEY })).listen(8000)
 * ```
 */
export function withSessions<T extends object = SessionData>(
  handler: SessionHandler<T>,
  settings: Partial<Settings> | Sessions<T>,
): SessionListener {
  const sessions = sessionsOf(settings)
  const fail = (req: IncomingMessage, res: ServerResponse, error: unknown): void => {
    if (error instanceof SessionError) {
      // A failed load (503), or a session error the handler let through.
      const { status, body } = sessionFailure(error, sessions.settings, 'load')
      if (res.headersSent) return void res.destroy()
      res.writeHead(status, FAILURE_HEADERS).end(body)
      return
    }
    sessions.settings.logger.error('request handler failed', error)
    if (res.headersSent) return void res.destroy()
    res.statusCode = 500
    res.setHeader('Content-Type', 'text/plain; charset=utf-8')
    res.end('Internal Server Error\n')
  }
  const run = (req: IncomingMessage, res: ServerResponse, state: RequestSession<T>): void => {
    ;(req as SessionRequest<T>).session = state.session
    let result: unknown
    try {
      result = handler(req as SessionRequest<T>, res)
    } catch (error) {
      return fail(req, res, error)
    }
    if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') {
      ;(result as PromiseLike<unknown>).then(undefined, (error: unknown) => fail(req, res, error))
    }
  }
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    let started: RequestSession<T> | Promise<RequestSession<T>>
    try {
      started = startSession(sessions, req, res)
    } catch (error) {
      return fail(req, res, error) // not expected (start() rejects rather than throws), but never an uncaught exception
    }
    if (started instanceof Promise) started.then((state) => run(req, res, state), (error: unknown) => fail(req, res, error))
    else run(req, res, started)
  }
  return withHandle(listener, sessions)
}

