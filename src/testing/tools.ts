/**
 * Small tools of the conformance suites, exported by `sessionkit/testing` for tests of your own:
 * a clock moved by hand, a logger that keeps what it is given, and the data of a load result.
 */
import type { Logger } from '../settings.js'
import type { LoadedSession, SessionMap } from '../engine.js'

/** A clock the tests move by hand. */
export interface ManualClock {
  (): number
  set(ms: number): void
  advance(seconds: number): void
}

/** A clock starting at `start` ms (default 1700000000000, the reference's pinned time). */
export function manualClock(start = 1_700_000_000_000): ManualClock {
  let t = start
  return Object.assign(() => t, {
    set: (ms: number) => void (t = ms),
    advance: (seconds: number) => void (t += seconds * 1000),
  })
}

/** A logger that keeps what it is given, for assertions. */
export function capturingLogger(): Logger & { warnings: string[]; errors: string[] } {
  const warnings: string[] = []
  const errors: string[] = []
  return {
    warnings,
    errors,
    warn: (m) => void warnings.push(m),
    error: (m, e) => void errors.push(e === undefined ? m : `${m} ${String(e)}`),
  }
}

/** The data of an engine's `load` result, whether the engine keeps versions or not. */
export function dataOf(result: LoadedSession | SessionMap | null): SessionMap | null {
  return result === null || result instanceof Map ? result : result.data
}

/** The secret the suite signs with. */
export const SUITE_SECRET = 'sessionkit-conformance-secret-0123456789'
