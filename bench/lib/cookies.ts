/**
 * The cookie handling of the benchmark itself, kept minimal on both sides:
 * - `cookieValue`: what the bare ("limit") servers use to find their key, a substring scan;
 * - `Jar`: what the load generator keeps per connection, updated from `Set-Cookie` as a
 *   browser would, so that cookie-stored sessions (signed cookies, cookie-session,
 *   iron-session) carry their state from one request to the next.
 */

/** The value of cookie `name` in a `Cookie` header, or `undefined`: no decoding, first match wins. */
export function cookieValue(header: string | undefined | null, name: string): string | undefined {
  if (!header) return undefined
  let at = header.startsWith(name + '=') ? 0 : header.indexOf('; ' + name + '=')
  if (at < 0) return undefined
  at += at === 0 ? name.length + 1 : name.length + 3
  const end = header.indexOf(';', at)
  return end < 0 ? header.slice(at) : header.slice(at, end)
}

/** A browser's cookie jar for one origin and path `/`, reduced to what the benchmark needs. */
export class Jar {
  readonly #cookies = new Map<string, string>()
  #header = ''

  /** The `Cookie` header to send (empty when the jar is empty). */
  get header(): string {
    return this.#header
  }

  get size(): number {
    return this.#cookies.size
  }

  /** Apply `Set-Cookie` values; returns whether the `Cookie` header changed. */
  apply(setCookies: readonly string[]): boolean {
    let changed = false
    for (const line of setCookies) {
      const semi = line.indexOf(';')
      const pair = semi < 0 ? line : line.slice(0, semi)
      const eq = pair.indexOf('=')
      if (eq <= 0) continue
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      const attrs = semi < 0 ? '' : line.slice(semi).toLowerCase()
      const gone = /;\s*max-age=(0|-)/.test(attrs) || /;\s*expires=thu, 01 jan 1970/.test(attrs)
      if (gone) changed = this.#cookies.delete(name) || changed
      else if (this.#cookies.get(name) !== value) {
        this.#cookies.set(name, value)
        changed = true
      }
    }
    if (changed) this.#header = [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    return changed
  }

  /** Apply the `Set-Cookie` lines of a flat raw header list `[name, value, name, value, …]`. */
  applyRaw(raw: readonly string[]): boolean {
    let lines: string[] | undefined
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!
      if (name.length === 10 && name.toLowerCase() === 'set-cookie') (lines ??= []).push(raw[i + 1]!)
    }
    return lines ? this.apply(lines) : false
  }
}
