/**
 * Session keys: the characters they are made of, how a new one is drawn, and the check a
 * server-side engine applies to a key a client sends. A leaf module: it imports only `node:crypto`.
 */
import { randomBytes } from 'node:crypto'

/** Django: `VALID_KEY_CHARS`. */
export const VALID_KEY_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789'

/**
 * A new session key: 32 characters of `[a-z0-9]` (about 165 bits) from the CSPRNG, drawn
 * by rejection sampling so that no character is likelier than another (no modulo bias).
 * Django: `get_random_string(32, VALID_KEY_CHARS)`.
 */
export function newSessionKey(): string {
  let key = ''
  while (key.length < 32) {
    const bytes = randomBytes(48)
    for (let i = 0; i < bytes.length && key.length < 32; i++) {
      const b = bytes[i]!
      // 252 = 7 × 36: bytes 252..255 would favour the first four characters; drop them.
      if (b < 252) key += VALID_KEY_CHARS[b % 36]
    }
  }
  return key
}

/** 8 to 40 of `VALID_KEY_CHARS`. */
const SERVER_KEY = /^[a-z0-9]{8,40}$/

/**
 * The default key check of server-side engines: 8 to 40 characters of `[a-z0-9]` (the
 * `session_key` column holds 40). A key that fails it is never looked up or adopted. Django:
 * `SessionBase._validate_session_key`, which asks only for 8 characters or more.
 */
export function isServerKey(key: string): boolean {
  return SERVER_KEY.test(key)
}
