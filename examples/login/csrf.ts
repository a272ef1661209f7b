/**
 * Cross-site request forgery protection the way Django's `CsrfViewMiddleware` does it by
 * default: no session needed for anonymous visitors. Framework-neutral: it reads the
 * `Cookie` header and says which `Set-Cookie` the response needs.
 *
 * - The `csrftoken` cookie holds a random 32-character secret (SameSite=Lax, Path=/, and
 *   readable by scripts, like Django's, so JavaScript can send it as `X-CSRFToken`).
 * - Each form gets a *masked* 64-character token: a random 32-character mask followed by
 *   secret + mask, character by character, modulo the alphabet. A new mask per page keeps the
 *   token from being recovered by compression side channels (BREACH).
 * - An unsafe request (anything but GET, HEAD, OPTIONS, TRACE) must carry a token that unmasks
 *   to the cookie's secret, compared in constant time; if it sends an `Origin` header, that
 *   must be this site's. Otherwise it gets a 403.
 *
 * Tokens are interchangeable with Django's: same alphabet, lengths, masking and field name.
 */
import { randomInt, timingSafeEqual } from 'node:crypto'
import { parse, serialize } from 'cookie'

/** Django: `CSRF_ALLOWED_CHARS` (`string.ascii_letters + string.digits`). */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
const SECRET_LENGTH = 32
const TOKEN_LENGTH = 2 * SECRET_LENGTH
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

/** Django's setting defaults: `CSRF_COOKIE_NAME`, `CSRF_COOKIE_AGE`, the form field and header. */
export const CSRF_COOKIE_NAME = 'csrftoken'
export const CSRF_FIELD_NAME = 'csrfmiddlewaretoken'
export const CSRF_HEADER_NAME = 'x-csrftoken'
const CSRF_COOKIE_AGE_SECONDS = 31_449_600

export interface CsrfOptions {
  /** Send the cookie with `Secure`. Django: `CSRF_COOKIE_SECURE`, default false. */
  secure?: boolean
}

/** What the check needs to know about a request. */
export interface CsrfRequest {
  method: string
  /** This site's origin, as the request reached it: `http://127.0.0.1:8000`. */
  siteOrigin: string
  /** The `Origin` header, if sent. */
  origin: string | undefined
  /** The `Cookie` header, if sent. */
  cookie: string | undefined
  /** The form field `csrfmiddlewaretoken`, else the `X-CSRFToken` header. */
  token: string | undefined
}

/** The CSRF state of one response. */
export interface CsrfResponse {
  /** A masked token for a form, setting the cookie if the visitor has none. Django: `get_token()`. */
  token(): string
  /** Replace the secret, as after a login, so a token seen before it is worthless. Django: `rotate_token()`. */
  rotate(): void
  /** The `Set-Cookie` value this response must carry, or `null`. */
  readonly setCookie: string | null
  /** Whether the page now depends on the visitor's cookie (`Vary: Cookie`), as after `token()`. */
  readonly vary: boolean
}

export interface Csrf {
  /** Why `request` must be rejected (Django's `REASON_*` texts), or `undefined`. Safe methods always pass. */
  reject(request: CsrfRequest): string | undefined
  /** The CSRF state of the response to a request carrying `cookie`. */
  begin(cookie: string | undefined): CsrfResponse
}

export function csrf(options: CsrfOptions = {}): Csrf {
  function cookieSecret(cookie: string | undefined): string | undefined {
    const value = parse(cookie ?? '')[CSRF_COOKIE_NAME]
    return value !== undefined && isWellFormed(value, SECRET_LENGTH) ? value : undefined
  }

  function begin(cookie: string | undefined): CsrfResponse {
    let secret = cookieSecret(cookie)
    let setCookie: string | null = null
    let vary = false
    const replace = (value: string): void => {
      secret = value
      setCookie = serialize(CSRF_COOKIE_NAME, value, {
        maxAge: CSRF_COOKIE_AGE_SECONDS,
        expires: new Date(Date.now() + CSRF_COOKIE_AGE_SECONDS * 1000),
        path: '/',
        sameSite: 'lax',
        secure: options.secure ?? false,
        httpOnly: false,
      })
    }
    return {
      token() {
        vary = true // the page now depends on the visitor's cookie (Django's get_token() does the same)
        if (secret === undefined) replace(randomString(SECRET_LENGTH))
        return mask(secret!)
      },
      rotate() {
        replace(randomString(SECRET_LENGTH))
      },
      get setCookie() {
        return setCookie
      },
      get vary() {
        return vary
      },
    }
  }

  function reject(request: CsrfRequest): string | undefined {
    if (SAFE_METHODS.has(request.method)) return undefined
    if (request.origin !== undefined && request.origin !== request.siteOrigin) {
      return `Origin checking failed - ${request.origin} does not match any trusted origins.`
    }
    const raw = parse(request.cookie ?? '')[CSRF_COOKIE_NAME]
    if (raw === undefined) return 'CSRF cookie not set.'
    const secret = cookieSecret(request.cookie)
    if (secret === undefined) return 'CSRF cookie has incorrect length or invalid characters.'

    const sent = request.token
    if (sent === undefined || sent === '') return 'CSRF token missing.'

    let candidate: string
    if (isWellFormed(sent, TOKEN_LENGTH)) candidate = unmask(sent)
    else if (isWellFormed(sent, SECRET_LENGTH)) candidate = sent // an unmasked secret, accepted like Django does
    else return 'CSRF token has incorrect length or invalid characters.'

    return timingSafeEqual(Buffer.from(candidate), Buffer.from(secret)) ? undefined : 'CSRF token incorrect.'
  }

  return { reject, begin }
}

/** Django: `_mask_cipher_secret()`. */
function mask(secret: string): string {
  const key = randomString(SECRET_LENGTH)
  let cipher = ''
  for (let i = 0; i < SECRET_LENGTH; i++) {
    cipher += ALPHABET[(ALPHABET.indexOf(secret[i]!) + ALPHABET.indexOf(key[i]!)) % ALPHABET.length]
  }
  return key + cipher
}

/** Django: `_unmask_cipher_token()`. The argument is a well-formed 64-character token. */
function unmask(token: string): string {
  let secret = ''
  for (let i = 0; i < SECRET_LENGTH; i++) {
    const x = ALPHABET.indexOf(token[SECRET_LENGTH + i]!)
    const y = ALPHABET.indexOf(token[i]!)
    secret += ALPHABET[(x - y + ALPHABET.length) % ALPHABET.length]
  }
  return secret
}

/** `length` characters drawn uniformly from the alphabet. Django: `get_random_string()`. */
function randomString(length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)]
  return out
}

function isWellFormed(value: string, length: number): boolean {
  return value.length === length && /^[a-zA-Z0-9]*$/.test(value)
}
