/**
 * What every adapter answers when the session layer itself fails, so that all of them answer
 * alike: 400 for a session ended by a concurrent request (Django's `SessionInterrupted`),
 * 503 for a store that is down, 500 for anything else. Framework-neutral; adapters only
 * write the result in their framework's terms.
 */
import { SessionError, SessionInterrupted, SessionLocked, StoreUnavailable } from '../errors.js'
import type { Settings } from '../settings.js'

/** The replacement response: status and a short plain-text body. */
export interface Failure {
  status: number
  body: string
}

/** The headers every failure response carries (the handler's own headers are dropped). */
export const FAILURE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Type': 'text/plain; charset=utf-8',
  'Cache-Control': 'no-store',
})

/**
 * Log `error` once and say what to answer. A `StoreUnavailable` has been logged by the core
 * already; a `SessionInterrupted` is a warning (a visitor logged out in another tab); anything
 * else is an error. `phase` says whether the session was being loaded or saved.
 */
export function sessionFailure(error: unknown, settings: Pick<Settings, 'logger'>, phase: 'load' | 'save'): Failure {
  const status = error instanceof SessionError ? error.status : 500
  // `session.lock()` waited in vain for another request of the visitor: busy, not broken.
  if (error instanceof SessionLocked) {
    settings.logger.warn(error.message)
    return { status, body: 'Service Unavailable: the session is busy with another request; retry\n' }
  }
  if (status === 400 && error instanceof SessionError) settings.logger.warn(error.message)
  else if (!(error instanceof StoreUnavailable)) settings.logger.error(`${phase === 'load' ? 'loading' : 'saving'} the session failed`, error)
  const body =
    error instanceof SessionInterrupted ? 'Bad Request: the session ended in another request\n'
    : status === 400 ? 'Bad Request\n'
    : status === 503 ? 'Service Unavailable: session store\n'
    : 'Internal Server Error\n'
  return { status, body }
}
