/**
 * The `signed_cookies` engine: the session data travels in the cookie itself, signed
 * exactly as Django's `django.contrib.sessions.backends.signed_cookies`, so a Django app
 * with the same `SECRET_KEY` reads it.
 *
 * The data is readable by the visitor (signed, not encrypted) and a cookie cannot be
 * revoked before it ages out: logout empties the browser's cookie, but a copy taken earlier
 * stays valid until `cookieAge` (Django documents the same replay risk).
 */
import { BadSignature, SessionTooLarge, SignatureExpired } from '../errors.js'
import { TimestampSigner } from '../signing.js'
import { MAX_SESSION_DATA_BYTES, reportSuspicious, toSessionMap } from '../codec.js'
import { parsePythonIso, EXPIRY_KEY } from '../session.js'
import type { Engine, EngineContext, SessionMap } from '../engine.js'

/** Django's salt for the cookie value. */
export const SIGNED_COOKIES_SALT = 'django.contrib.sessions.backends.signed_cookies'

/** What browsers keep of one cookie, name and value together (RFC 6265bis; Chrome, Firefox, Safari). */
export const COOKIE_SIZE_LIMIT = 4096

/** A value that can be ours: Django's signed format uses only these characters. */
const SIGNED_VALUE = /^\.?[A-Za-z0-9_-]*:[0-9A-Za-z]+:[A-Za-z0-9_-]+$/

/**
 * The engine. Unlike Django (tickets #19201, #27775), a per-session `setExpiry` is enforced
 * when the cookie is read, not only in the cookie's `Max-Age`. A session too large for a
 * browser cookie fails at save time with `SessionTooLarge`, never a cookie the browser drops.
 */
export function signedCookiesEngine({ settings }: EngineContext): Engine {
  const signer = new TimestampSigner({
    key: settings.secretKey,
    salt: SIGNED_COOKIES_SALT,
    fallbackKeys: [...settings.secretKeyFallbacks],
    now: settings.now,
  })
  const { serializer, cookieAge, cookieName } = settings
  const name = 'signed_cookies'
  const limit = COOKIE_SIZE_LIMIT - cookieName.length - 1

  function expired(data: SessionMap, signedAt: number): boolean {
    const expiry = data.get(EXPIRY_KEY)
    const now = settings.now()
    if (typeof expiry === 'number' && expiry !== 0) return now - signedAt * 1000 > expiry * 1000
    if (typeof expiry === 'string') {
      const at = parsePythonIso(expiry)
      return !Number.isNaN(at) && at <= now
    }
    return false
  }

  return {
    name,
    clientSide: true,
    validKey: (key) => key.length <= COOKIE_SIZE_LIMIT && SIGNED_VALUE.test(key),
    async load(key) {
      try {
        const { value, timestamp } = signer.unsignObjectWithTimestamp(key, {
          serializer,
          maxAge: cookieAge,
          maxDecompressedBytes: MAX_SESSION_DATA_BYTES,
        })
        const data = toSessionMap(value)
        if (data === null) {
          reportSuspicious(settings, { kind: 'corrupt', engine: name, detail: 'cookie data is not a JSON object' })
          return null
        }
        return expired(data, timestamp) ? null : data
      } catch (error) {
        if (error instanceof SignatureExpired) return null
        const tampered = error instanceof BadSignature
        reportSuspicious(settings, {
          kind: tampered ? 'tampered' : 'corrupt',
          engine: name,
          detail: tampered ? 'cookie signature does not match' : `undecodable cookie payload (${(error as Error).message})`,
        })
        return null
      }
    },
    async save(_key, data) {
      const value = signer.signObject(data, { serializer, compress: true })
      if (value.length > limit) throw new SessionTooLarge(value.length + cookieName.length + 1, COOKIE_SIZE_LIMIT)
      return value
    },
    async exists() {
      return false
    },
    async delete() {},
    async clearExpired() {
      return null
    },
    async close() {},
  }
}
