/**
 * Cross-site request forgery protection the way Django's `CsrfViewMiddleware` does it by
 * default: no session needed for anonymous visitors.
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
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { parse } from 'cookie'

/** Django: `CSRF_ALLOWED_CHARS` (`string.ascii_letters + string.digits`). */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
const SECRET_LENGTH = 32
const TOKEN_LENGTH = 2 * SECRET_LENGTH
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

/** Django's setting defaults: `CSRF_COOKIE_NAME`, `CSRF_COOKIE_AGE`, the form field and header. */
export const CSRF_COOKIE_NAME = 'csrftoken'
export const CSRF_FIELD_NAME = 'csrfmiddlewaretoken'
const CSRF_HEADER_NAME = 'x-csrftoken'
const CSRF_COOKIE_AGE_MS = 31_449_600_000

export interface CsrfOptions {
  /** Send the cookie with `Secure`. Django: `CSRF_COOKIE_SECURE`, default false. */
  secure?: boolean
  /** Answer a rejected request; the reason is for logs, not for the visitor. */
  onFailure(req: Request, res: Response, reason: string): void
}

export interface Csrf {
  /** Middleware rejecting unsafe requests without a valid token. Mount after the body parser. */
  protect: RequestHandler
  /** A masked token for a form, setting the cookie if the visitor has none. Django: `get_token()`. */
  token(req: Request, res: Response): string
  /** Replace the secret, as after a login, so a token seen before it is worthless. Django: `rotate_token()`. */
  rotate(req: Request, res: Response): void
}

export function csrf(options: CsrfOptions): Csrf {
  // The secret each request uses; set when this response gives the visitor a new one.
  const secrets = new WeakMap<Request, string>()

  function cookieSecret(req: Request): string | undefined {
    const value = parse(req.headers.cookie ?? '')[CSRF_COOKIE_NAME]
    return value !== undefined && isWellFormed(value, SECRET_LENGTH) ? value : undefined
  }

  function setSecret(req: Request, res: Response, secret: string): void {
    secrets.set(req, secret)
    res.cookie(CSRF_COOKIE_NAME, secret, {
      maxAge: CSRF_COOKIE_AGE_MS,
      path: '/',
      sameSite: 'lax',
      secure: options.secure ?? false,
      httpOnly: false,
    })
  }

  function token(req: Request, res: Response): string {
    res.vary('Cookie') // the page now depends on the visitor's cookie (Django's get_token() does the same)
    let secret = secrets.get(req) ?? cookieSecret(req)
    if (secret === undefined) setSecret(req, res, (secret = randomString(SECRET_LENGTH)))
    else secrets.set(req, secret)
    return mask(secret)
  }

  function rotate(req: Request, res: Response): void {
    setSecret(req, res, randomString(SECRET_LENGTH))
  }

  function protect(req: Request, res: Response, next: NextFunction): void {
    if (SAFE_METHODS.has(req.method)) return next()
    const reason = rejection(req)
    if (reason === undefined) return next()
    options.onFailure(req, res, reason)
  }

  /** Why `req` must be rejected, or undefined. Reasons follow Django's `REASON_*` texts. */
  function rejection(req: Request): string | undefined {
    const origin = req.headers.origin
    if (origin !== undefined && origin !== `${req.protocol}://${req.get('host')}`) {
      return `Origin checking failed - ${origin} does not match any trusted origins.`
    }
    const raw = parse(req.headers.cookie ?? '')[CSRF_COOKIE_NAME]
    if (raw === undefined) return 'CSRF cookie not set.'
    const secret = cookieSecret(req)
    if (secret === undefined) return 'CSRF cookie has incorrect length or invalid characters.'

    const body: unknown = req.body
    const field = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[CSRF_FIELD_NAME] : undefined
    const sent = typeof field === 'string' ? field : req.get(CSRF_HEADER_NAME)
    if (sent === undefined || sent === '') return 'CSRF token missing.'

    let candidate: string
    if (isWellFormed(sent, TOKEN_LENGTH)) candidate = unmask(sent)
    else if (isWellFormed(sent, SECRET_LENGTH)) candidate = sent // an unmasked secret, accepted like Django does
    else return 'CSRF token has incorrect length or invalid characters.'

    return timingSafeEqual(Buffer.from(candidate), Buffer.from(secret)) ? undefined : 'CSRF token incorrect.'
  }

  return { protect, token, rotate }
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
