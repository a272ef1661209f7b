/**
 * When a session expires: Django's reserved `_session_expiry` key, Python's ISO dates, and the
 * one formula every engine and `Session` use ({@link expiresAt}). A leaf module: it imports nothing.
 */

/** Django's reserved key holding a per-session expiry. */
export const EXPIRY_KEY = '_session_expiry'

/**
 * sessionkit's reserved key holding the session's creation time, in whole seconds since the
 * epoch, when the `absoluteAge` setting is on. Written at the first save, kept by `cycleKey()`,
 * dropped by `flush()` and `clear()`. No Django equivalent.
 */
export const CREATED_KEY = '_session_created'

/** Python's `datetime.isoformat()` of an aware UTC datetime: `2030-01-02T03:04:05.678000+00:00`. */
export function toPythonIso(date: Date): string {
  const iso = date.toISOString() // 2030-01-02T03:04:05.678Z
  const ms = date.getUTCMilliseconds()
  return iso.slice(0, 19) + (ms === 0 ? '' : `.${String(ms).padStart(3, '0')}000`) + '+00:00'
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-]\d{2}:?\d{2}(?::?\d{2})?)?$/

/**
 * Parse what Python's `datetime.fromisoformat` reads (the subset Django writes). A value
 * without an offset is taken as UTC. Returns milliseconds, or `NaN` when unreadable.
 */
export function parsePythonIso(value: string): number {
  const m = ISO.exec(value)
  if (!m) return Number.NaN
  const [, y, mo, d, h, mi, s, frac, tz] = m
  let ms = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, s ? +s : 0, frac ? Math.floor(+frac.padEnd(6, '0') / 1000) : 0)
  if (tz && tz !== 'Z') {
    const sign = tz[0] === '-' ? -1 : 1
    const digits = tz.slice(1).replace(/:/g, '')
    ms -= sign * ((+digits.slice(0, 2) * 60 + +digits.slice(2, 4)) * 60 + (+digits.slice(4, 6) || 0)) * 1000
  }
  return ms
}

/** The fixed date of an expiry value, in ms: a `Date`, or the ISO text `setExpiry(date)` stores; `null` for anything else. */
export function fixedExpiry(expiry: unknown): number | null {
  if (expiry instanceof Date) return expiry.getTime()
  if (typeof expiry !== 'string') return null
  const at = parsePythonIso(expiry)
  return Number.isNaN(at) ? null : at
}

/** The seconds of a relative expiry value (a finite number other than `0`); `null` for anything else. */
export function relativeExpiry(expiry: unknown): number | null {
  return typeof expiry === 'number' && expiry !== 0 && Number.isFinite(expiry) ? expiry : null
}

/**
 * When a session expires, in milliseconds, given its `_session_expiry` value (`expiry`), the
 * time of its last save (`modifiedAt`, ms) and the `cookieAge` setting (seconds):
 * - a fixed date ({@link fixedExpiry}): that date;
 * - a number of seconds ({@link relativeExpiry}): that long after `modifiedAt`;
 * - anything else (`0`, no expiry, an unreadable date): `cookieAge` seconds after `modifiedAt`.
 *
 * Django: `SessionBase.get_expiry_date(modification=…, expiry=…)`. Each engine supplies its own
 * `modifiedAt` (the save time the codec signed, a file's mtime, a signed cookie's timestamp) and
 * decides whether the instant itself is already past (`<=`, as Django's `expire_date > now`) or
 * still valid (`<`, as the signer's `maxAge`).
 */
export function expiresAt(expiry: unknown, modifiedAt: number, cookieAge: number): number {
  return fixedExpiry(expiry) ?? modifiedAt + (relativeExpiry(expiry) ?? cookieAge) * 1000
}
