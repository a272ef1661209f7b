/**
 * The `signed_cookies` engine: the session data travels in the cookie itself, signed
 * exactly as Django's `django.contrib.sessions.backends.signed_cookies`, so a Django app
 * with the same `SECRET_KEY` reads it.
 *
 * The data is readable by the visitor (signed, not encrypted) and a cookie cannot be
 * revoked before it ages out: logout empties the browser's cookie, but a copy taken earlier
 * stays valid until `cookieAge` (Django documents the same replay risk).
 *
 * With `cookieEncryption: true` the cookie is encrypted instead (see
 * {@link ENCRYPTED_COOKIES_INFO}): the visitor cannot read it, and neither can Django. The
 * replay risk is the same.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { BadPayload, BadSignature, SessionTooLarge, SignatureExpired } from '../errors.js'
import { TimestampSigner, b62Decode, b62Encode, b64Decode, b64Encode, type Timestamped } from '../signing.js'
import { MAX_SESSION_DATA_BYTES, toSessionMap } from '../codec.js'
import { EXPIRY_KEY, expiresAt, fixedExpiry } from '../expiry.js'
import { reportSuspicious } from '../suspicious.js'
import type { Engine, EngineContext, SessionMap } from '../engine.js'
import type { Settings } from '../settings.js'

/** Django's salt for the cookie value. */
export const SIGNED_COOKIES_SALT = 'django.contrib.sessions.backends.signed_cookies'

/** What browsers keep of one cookie, name and value together (RFC 6265bis; Chrome, Firefox, Safari). */
export const COOKIE_SIZE_LIMIT = 4096

/** A value that can be ours: Django's signed format uses only these characters. */
const SIGNED_VALUE = /^\.?[A-Za-z0-9_-]*:[0-9A-Za-z]+:[A-Za-z0-9_-]+$/

/**
 * The HKDF `info` of the cookie encryption key; part of the format (changing it logs
 * everyone out). The key is `HKDF-SHA256(ikm = UTF-8 secret, salt = empty, info = this, 32 bytes)`,
 * one per secret: `secretKey` encrypts, `secretKey` and every `secretKeyFallbacks` entry decrypt.
 *
 * The encrypted value is `<b64url(iv ‖ ciphertext ‖ tag)>:<base62 seconds>`:
 * - AES-256-GCM, a random 96-bit IV per cookie, a 128-bit tag;
 * - the plaintext is the serializer's JSON of the data, **not compressed**: the cookie's
 *   length is visible, and compressing data an attacker can partly choose before encrypting
 *   it leaks the rest through that length (CRIME, BREACH). The price is a smaller session
 *   fits in 4096 bytes than in the signed format, which compresses;
 * - the timestamp (the save time, for `maxAge` = `cookieAge`, as Django's signed timestamp)
 *   stays readable and is authenticated as the GCM additional data;
 * - characters `[A-Za-z0-9_:-]` only; the base64 is canonical (a last character with stray
 *   low bits is refused, so no two texts decrypt to the same cookie).
 * Random IVs under one key stay safe up to about 2³² cookies (NIST SP 800-38D); rotate
 * `secretKey` (the old one in `secretKeyFallbacks`) well before a site issues that many.
 */
export const ENCRYPTED_COOKIES_INFO = 'sessionkit.signed_cookies.encrypted'

/** An encrypted value: base64url (at least IV + tag, 38 characters), `:`, a base62 timestamp. */
const ENCRYPTED_VALUE = /^[A-Za-z0-9_-]{38,}:[0-9A-Za-z]{1,11}$/

const IV_BYTES = 12
const TAG_BYTES = 16
const CIPHER = 'aes-256-gcm'

/** The cookie encryption key of `secret` (see {@link ENCRYPTED_COOKIES_INFO}). */
export function cookieEncryptionKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), ENCRYPTED_COOKIES_INFO, 32))
}

/** Encrypts and decrypts cookie values; `keys[0]` encrypts, every key decrypts. */
interface CookieCipher {
  seal(plaintext: Buffer, timestamp: number): string
  /** The plaintext and its timestamp; `BadSignature` for anything that does not decrypt. */
  open(value: string): Timestamped<Buffer>
}

function cookieCipher(settings: Readonly<Settings>): CookieCipher {
  const keys = [settings.secretKey, ...settings.secretKeyFallbacks].map(cookieEncryptionKey)
  return {
    seal(plaintext, timestamp) {
      const ts = b62Encode(timestamp)
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv(CIPHER, keys[0]!, iv, { authTagLength: TAG_BYTES })
      cipher.setAAD(Buffer.from(ts, 'latin1'))
      const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
      return `${b64Encode(Buffer.concat([iv, ciphertext, cipher.getAuthTag()]))}:${ts}`
    },
    open(value) {
      const sep = value.lastIndexOf(':')
      const body = value.slice(0, sep)
      const ts = value.slice(sep + 1)
      let raw: Buffer
      try {
        raw = b64Decode(body)
      } catch {
        throw new BadSignature('Encrypted cookie is not valid base64')
      }
      if (raw.length < IV_BYTES + TAG_BYTES || b64Encode(raw) !== body) throw new BadSignature('Encrypted cookie is malformed')
      const iv = raw.subarray(0, IV_BYTES)
      const ciphertext = raw.subarray(IV_BYTES, raw.length - TAG_BYTES)
      const tag = raw.subarray(raw.length - TAG_BYTES)
      const aad = Buffer.from(ts, 'latin1')
      for (const key of keys) {
        const decipher = createDecipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES })
        decipher.setAAD(aad)
        decipher.setAuthTag(tag)
        let plaintext: Buffer
        try {
          plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()])
        } catch {
          continue // not this key (or tampered): the tag does not verify
        }
        return { value: plaintext, timestamp: b62Decode(ts) }
      }
      throw new BadSignature('Encrypted cookie does not decrypt with any key')
    },
  }
}

/**
 * The engine. Unlike Django (tickets #19201, #27775), a per-session `setExpiry` is enforced
 * when the cookie is read, not only in the cookie's `Max-Age`. A session too large for a
 * browser cookie fails at save time with `SessionTooLarge`, never a cookie the browser drops.
 *
 * With `settings.cookieEncryption`, cookies are written encrypted (see
 * {@link ENCRYPTED_COOKIES_INFO}; Django cannot read them), and both encrypted and signed
 * cookies are read, so that turning encryption on logs nobody out. Anything that does not
 * decrypt is reported as `tampered`, as a bad signature is.
 */
export function signedCookiesEngine({ settings }: EngineContext): Engine {
  const signer = new TimestampSigner({
    key: settings.secretKey,
    salt: SIGNED_COOKIES_SALT,
    fallbackKeys: [...settings.secretKeyFallbacks],
    now: settings.now,
  })
  const { serializer, cookieAge, cookieName } = settings
  const encrypted = settings.cookieEncryption
  const cipher = encrypted ? cookieCipher(settings) : null
  const name = encrypted ? 'signed_cookies:encrypted' : 'signed_cookies'
  const limit = COOKIE_SIZE_LIMIT - cookieName.length - 1

  /**
   * Whether the cookie signed at `signedAt` (seconds) has expired by `settings.now`. A relative
   * expiry (or `cookieAge`, which the signer checks first) passes at its last instant, as the
   * signer's `maxAge` does; a fixed date does not, as Django's `expire_date > now`.
   */
  function expired(data: SessionMap, signedAt: number): boolean {
    const expiry = data.get(EXPIRY_KEY)
    const at = expiresAt(expiry, signedAt * 1000, cookieAge)
    const now = settings.now()
    return fixedExpiry(expiry) === null ? at < now : at <= now
  }

  /** The data in an encrypted cookie; the errors of `unsignObjectWithTimestamp`. */
  function decrypt(cipher: CookieCipher, key: string): Timestamped<unknown> {
    const { value, timestamp } = cipher.open(key)
    // As TimestampSigner: refused when older than maxAge (equal passes), after authentication.
    const age = settings.now() / 1000 - timestamp
    if (age > cookieAge) throw new SignatureExpired(`Signature age ${age} > ${cookieAge} seconds`)
    try {
      return { value: serializer.loads(value), timestamp }
    } catch (cause) {
      throw new BadPayload('sessionkit: encrypted payload could not be deserialised', { cause })
    }
  }

  return {
    name,
    clientSide: true,
    validKey: (key) =>
      key.length <= COOKIE_SIZE_LIMIT && (SIGNED_VALUE.test(key) || (encrypted && ENCRYPTED_VALUE.test(key))),
    async load(key) {
      try {
        const { value, timestamp } =
          cipher && ENCRYPTED_VALUE.test(key)
            ? decrypt(cipher, key)
            : signer.unsignObjectWithTimestamp(key, {
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
          detail: tampered
            ? encrypted
              ? 'cookie does not decrypt or its signature does not match'
              : 'cookie signature does not match'
            : `undecodable cookie payload (${(error as Error).message})`,
        })
        return null
      }
    },
    async save(_key, data) {
      const value = cipher
        ? cipher.seal(serializer.dumps(data), Math.trunc(settings.now() / 1000))
        : signer.signObject(data, { serializer, compress: true })
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
