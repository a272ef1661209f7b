/**
 * Express 5 adapter: `app.use(sessions(settings))`, then `req.session` in every handler,
 * with Django's `SessionMiddleware` behaviour.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { Sessions } from '../middleware.js'
import type { Session, SessionData } from '../session.js'
import type { Settings } from '../settings.js'
import { startSession } from './hooks.js'
import { FAILURE_HEADERS, sessionFailure } from './failure.js'
import { sessionsOf, withHandle, type SessionsHandle } from './prologue.js'
import { SessionError } from '../errors.js'

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The visitor's session (sessionkit). Type its data with `declare module 'sessionkit' { interface SessionData { … } }`. */
      session: Session<SessionData>
    }
  }
}

/** The middleware, with the sessions it serves (for `migrate()`, `close()`, scripts and tests). */
export interface SessionMiddleware<T extends object = SessionData> extends RequestHandler, SessionsHandle<T> {}

/**
 * Express middleware giving each request `req.session`.
 *
 * - A request without a session cookie costs no store round trip; one with a cookie is
 *   loaded before the handler runs (or, with `lazy: true`, when the handler awaits it).
 * - The session is saved, and the cookie set, before the response is sent: a redirect
 *   right after login never races the write (express-session#360).
 * - A store that is down answers 503 (logged), never a silent logout; a session logged out
 *   by a concurrent request answers 400 (Django's `SessionInterrupted`).
 *
 * Django: `django.contrib.sessions.middleware.SessionMiddleware`.
 *
 * ```ts
 * import express from 'express'
 * import { sessions } from 'sessionkit/express'
 * const app = express()
 * app.use(sessions({ secretKey: process.env.SECRET_KEY }))
 * app.get('/', (req, res) => {
 *   req.session.set('visits', ((req.session.get('visits') as number) ?? 0) + 1)
 *   res.send(`visits: ${req.session.get('visits')}`)
 * })
 * ```
 */
export function sessions<T extends object = SessionData>(settings: Partial<Settings> | Sessions<T>): SessionMiddleware<T> {
  const core = sessionsOf(settings)
  const middleware = function sessionkit(req: Request, res: Response, next: NextFunction): void {
    if (req.session !== undefined) return next()
    const started = startSession(core, req, res)
    if (!(started instanceof Promise)) {
      req.session = started.session as unknown as Session<SessionData>
      return next()
    }
    started.then(
      (state) => {
        req.session = state.session as unknown as Session<SessionData>
        next()
      },
      (error: unknown) => {
        // A store that is down answers 503 here, as every adapter does, whatever the app's
        // error handler would make of `err.status`.
        if (!(error instanceof SessionError)) return next(error)
        const { status, body } = sessionFailure(error, core.settings, 'load')
        res.writeHead(status, FAILURE_HEADERS).end(body)
      },
    )
  }
  return withHandle(middleware, core)
}
