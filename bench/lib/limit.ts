/**
 * The limits: "the least a stateful route can do" — a counter in a plain in-process `Map`
 * keyed by a random id in a cookie. No signing, no expiry, no persistence.
 */
import { randomUUID } from 'node:crypto'
import { cookieValue } from './cookies.ts'

export const LIMIT_COOKIE = 'sid'

export class Limit {
  readonly #map = new Map<string, Record<string, unknown>>()
  /** The `Set-Cookie` value for the entry made by the last `entry()` call, or `null` if it found one. */
  setCookie: string | null = null

  /** The visitor's entry, made (and `setCookie` set) when the cookie names none. */
  entry(cookieHeader: string | undefined | null): Record<string, unknown> {
    const id = cookieValue(cookieHeader, LIMIT_COOKIE)
    const found = id === undefined ? undefined : this.#map.get(id)
    if (found) {
      this.setCookie = null
      return found
    }
    const fresh = randomUUID()
    const made: Record<string, unknown> = {}
    this.#map.set(fresh, made)
    this.setCookie = `${LIMIT_COOKIE}=${fresh}; Path=/; HttpOnly; SameSite=Lax`
    return made
  }
}
