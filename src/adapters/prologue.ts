/**
 * What every adapter does besides translating its framework: take the application's `Sessions`
 * (or make them from settings), hand its own function back with them attached, write the
 * `Set-Cookie` values of a decision in order, and answer a session failure as a Web `Response`
 * where the framework speaks Fetch. An adapter is then its framework's glue around
 * `sessions.start()` and `sessions.finish()`, and nothing else.
 */
import { createSessions, Sessions, type ResponseDecision } from '../middleware.js'
import type { SessionData } from '../session.js'
import type { Settings } from '../settings.js'
import { FAILURE_HEADERS, sessionFailure } from './failure.js'

/** What every adapter's factory returns beside its framework's own function. */
export interface SessionsHandle<T extends object = SessionData> {
  /** The sessions it serves (for `migrate()`, scripts and tests). */
  readonly sessions: Sessions<T>
  /** Close the engine's connections; call it on shutdown. */
  close(): Promise<void>
}

/**
 * The sessions an adapter serves: `settings` itself when it is a `Sessions` (shared with the rest
 * of the app), else new ones made from the settings (`createSessions`, which validates them).
 */
export function sessionsOf<T extends object = SessionData>(settings: Partial<Settings> | Sessions<T>): Sessions<T> {
  return settings instanceof Sessions ? settings : createSessions<T>(settings)
}

/** `fn` with `sessions` and `close()` attached (see {@link SessionsHandle}). */
export function withHandle<F extends object, T extends object>(fn: F, sessions: Sessions<T>): F & SessionsHandle<T> {
  return Object.assign(fn, { sessions, close: () => sessions.close() })
}

/**
 * Call `append` with every `Set-Cookie` value of `decision`, the session's first, then the
 * layers' (`decision.cookies`), in order.
 */
export function appendSetCookies(decision: ResponseDecision, append: (value: string) => void): void {
  if (decision.setCookie) append(decision.setCookie)
  if (decision.cookies) for (const cookie of decision.cookies) append(cookie)
}

/** The answer to a session failure as a Web `Response` (see `sessionFailure`); logged there. */
export function failureResponse(error: unknown, settings: Pick<Settings, 'logger'>, phase: 'load' | 'save'): Response {
  const { status, body } = sessionFailure(error, settings, phase)
  return new Response(body, { status, headers: FAILURE_HEADERS })
}
