/**
 * What the engines' session locks (`Engine.lock`) share: the lock token and the polling loop
 * of stores that cannot notify a waiter (Redis, SQL, files). Locks run on real time
 * (`Date.now`), never on `settings.now`: they are about real concurrency.
 */
import { randomBytes } from 'node:crypto'
import { SessionLocked } from './errors.js'

/** A fresh lock token (32 hex characters): only the holder can release what it took. */
export function lockToken(): string {
  return randomBytes(16).toString('hex')
}

/** Check `options` as engines receive them: whole milliseconds, `waitMs` ≥ 0, `ttlMs` ≥ 1. */
export function checkLockOptions(options: LockOptions): LockOptions {
  const { waitMs, ttlMs } = options ?? ({} as LockOptions)
  if (!Number.isSafeInteger(waitMs) || waitMs < 0) throw new TypeError(`sessionkit: lock waitMs must be a whole number of milliseconds ≥ 0, got ${String(waitMs)}`)
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) throw new TypeError(`sessionkit: lock ttlMs must be a whole number of milliseconds ≥ 1, got ${String(ttlMs)}`)
  return { waitMs, ttlMs }
}


/** Options of `Engine.lock`, in real-time milliseconds. */
export interface LockOptions {
  /** How long to wait for another holder before rejecting with `SessionLocked`; `0` tries once. */
  waitMs: number
  /** How long the lock lives unless released: a holder that died blocks the session for this long at most. */
  ttlMs: number
}

/** Releases a lock taken by `Engine.lock`: deletes it only if this caller still holds it. Never rejects for a lock that expired or was taken over. */
export type ReleaseLock = () => Promise<void>

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Call `attempt` until it takes the lock (`true`), with a jittered exponential backoff (5 ms
 * doubling to 100 ms, each pause drawn between half and all of it), for at most `waitMs`:
 * the last attempt runs at the deadline, then `SessionLocked`. Errors of `attempt` propagate.
 */
export async function pollLock(attempt: () => Promise<boolean> | boolean, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs
  for (let round = 0; ; round++) {
    if (await attempt()) return
    const left = deadline - Date.now()
    if (left <= 0) throw new SessionLocked(waitMs)
    const base = Math.min(5 * 2 ** round, 100)
    await sleep(Math.min(left, base / 2 + (Math.random() * base) / 2))
  }
}
