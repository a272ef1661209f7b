/**
 * `session_data` as Django writes it: `signing.dumps(data, salt="django.contrib.sessions.SessionStore",
 * compress=True)`, read back without a max age (the store's expiry rules instead).
 */
import { BadSignature } from './errors.js'
import { b62Decode, TimestampSigner } from './signing.js'
import { EXPIRY_KEY, parsePythonIso } from './session.js'
import type { Settings, SuspiciousEvent } from './settings.js'
import type { SessionMap } from './engine.js'

/** Django's salt for every built-in server-side store: `"django.contrib.sessions." + "SessionStore"`. */
export const SESSION_STORE_SALT = 'django.contrib.sessions.SessionStore'

/** Cap on the inflated size of stored session data (16 MiB): far above any real session, far below a bomb. */
export const MAX_SESSION_DATA_BYTES = 16 * 1024 * 1024

/** Encodes and decodes stored session data. */
export interface SessionCodec {
  /** Django: `SessionBase.encode(session_dict)`. */
  encode(data: SessionMap): string
  /**
   * Django: `SessionBase.decode(session_data)`. Never throws: a bad signature is reported
   * as `tampered` (and logged once as Django's "Session data corrupted"), an undecodable
   * payload as `corrupt`; both give an empty `Map`.
   */
  decode(encoded: string, engine: string): SessionMap
}

/** Turn a decoded JSON object into session data, or `null` when it is not an object. */
export function toSessionMap(value: unknown): SessionMap | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null
  return new Map(Object.entries(value))
}

/** Report a suspicious event to the logger and the `onSuspicious` hook, never with a key. */
export function reportSuspicious(settings: Readonly<Settings>, event: SuspiciousEvent): void {
  // An unknown key is mostly an expired session coming back: the hook hears of it, the log does not.
  if (event.kind !== 'unknown-key') settings.logger.warn(`${event.kind === 'tampered' ? 'Session data corrupted' : 'Suspicious session'} (${event.kind}, engine ${event.engine}): ${event.detail}`)
  if (settings.onSuspicious) {
    try {
      settings.onSuspicious(event)
    } catch (error) {
      settings.logger.error('onSuspicious hook threw', error)
    }
  }
}

/** The codec for `settings`, with the signer (and its derived keys) made once. */
export function createCodec(settings: Readonly<Settings>, salt = SESSION_STORE_SALT): SessionCodec {
  const signer = new TimestampSigner({
    key: settings.secretKey,
    salt,
    fallbackKeys: [...settings.secretKeyFallbacks],
    now: settings.now,
  })
  const serializer = settings.serializer
  return {
    encode: (data) => signer.signObject(data, { serializer, compress: true }),
    decode(encoded, engine) {
      try {
        const map = toSessionMap(signer.unsignObject(encoded, { serializer, maxDecompressedBytes: MAX_SESSION_DATA_BYTES }))
        if (map) return map
        reportSuspicious(settings, { kind: 'corrupt', engine, detail: 'session data is not a JSON object' })
      } catch (error) {
        const tampered = error instanceof BadSignature
        reportSuspicious(settings, {
          kind: tampered ? 'tampered' : 'corrupt',
          engine,
          detail: tampered ? 'signature does not match' : `undecodable payload (${(error as Error).message})`,
        })
      }
      return new Map()
    },
  }
}

/**
 * When a stored session expires, in ms: its ISO `_session_expiry` date, or the signing time
 * inside the stored string (`payload:timestamp:signature`) plus its `setExpiry` seconds or
 * `cookieAge` — what `expire_date` was computed from at the same save. `NaN` when the string is
 * not in the signed format (the codec has reported it already). Cache-backed engines check it
 * against `settings.now`, since the cache's own TTL runs on the cache's clock.
 */
export function storedExpiresAt(stored: string, data: SessionMap, cookieAge: number): number {
  const expiry = data.get(EXPIRY_KEY)
  if (typeof expiry === 'string') {
    const at = parsePythonIso(expiry)
    if (!Number.isNaN(at)) return at
  }
  const end = stored.lastIndexOf(':')
  const start = stored.lastIndexOf(':', end - 1)
  if (start < 0) return Number.NaN
  let signedAt: number
  try {
    signedAt = b62Decode(stored.slice(start + 1, end)) * 1000
  } catch {
    return Number.NaN
  }
  const age = typeof expiry === 'number' && expiry !== 0 ? expiry : cookieAge
  return signedAt + age * 1000
}
