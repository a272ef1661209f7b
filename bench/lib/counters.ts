/**
 * Store round trips, counted where they happen: wrappers around the session stores of every
 * variant (sessionkit's cache and SQL driver, express-session stores, @fastify/session's
 * store). A "load" is a read of the store (get, exists, select), a "save" a write (set,
 * touch, insert, update), "other" anything else (delete, destroy).
 */

export interface Counters {
  /** Requests the HTTP server received. */
  requests: number
  load: number
  save: number
  other: number
}

export function newCounters(): Counters {
  return { requests: 0, load: 0, save: 0, other: 0 }
}

export function resetCounters(c: Counters): void {
  c.requests = 0
  c.load = 0
  c.save = 0
  c.other = 0
}

export type Kind = 'load' | 'save' | 'other'

/** Methods that are not round trips of a request: set-up and tear-down. */
const NOT_COUNTED = new Set(['ready', 'close', 'migrate', 'migrateReport', 'clearExpired', 'clearExpiredBatch', 'validKey', 'constructor'])

/**
 * Replace methods of `target` (in place, so that code holding `target` sees it) by ones that
 * count each call and then call the original. No extra promise: the original's return value
 * is passed through as is.
 *
 * - `listed` (the peers' stores, class instances): only the methods named in `kinds`, found
 *   on the object or its prototypes; a store's other methods (`createSession`, `emit`, …) are
 *   not round trips.
 * - `all` (sessionkit's caches and drivers, plain objects): every own method; one not in
 *   `kinds` (added to the interface since this list was written) counts as "other", so it
 *   shows in the report instead of going unseen. Set-up and tear-down are not counted.
 */
export function countMethods(target: object, kinds: Readonly<Record<string, Kind>>, counters: Counters, which: 'listed' | 'all'): void {
  const t = target as Record<string, unknown>
  const names = which === 'listed' ? Object.keys(kinds) : Object.getOwnPropertyNames(target).filter((n) => !NOT_COUNTED.has(n))
  for (const name of names) {
    const descriptor = Object.getOwnPropertyDescriptor(target, name) ?? findDescriptor(target, name)
    if (!descriptor || !('value' in descriptor) || typeof descriptor.value !== 'function') continue // accessors are not calls
    const original = descriptor.value as (...a: unknown[]) => unknown
    const kind: Kind = kinds[name] ?? 'other'
    t[name] = function counted(this: unknown, ...args: unknown[]) {
      counters[kind]++
      return original.apply(this, args)
    }
  }
}

function findDescriptor(target: object, name: string): PropertyDescriptor | undefined {
  for (let o: object | null = Object.getPrototypeOf(target); o !== null; o = Object.getPrototypeOf(o)) {
    const d = Object.getOwnPropertyDescriptor(o, name)
    if (d) return d
  }
  return undefined
}

/** sessionkit's `SessionCache`: one method, one cache command (one Redis round trip). */
export const CACHE_KINDS: Readonly<Record<string, Kind>> = {
  get: 'load',
  has: 'load',
  set: 'save',
  add: 'save',
  replace: 'save',
  replaceIf: 'save',
  delete: 'other',
}

/** sessionkit's `SqlDriver`: one method, one SQL statement. */
export const SQL_KINDS: Readonly<Record<string, Kind>> = {
  load: 'load',
  exists: 'load',
  insert: 'save',
  update: 'save',
  delete: 'other',
}

/** sessionkit's `Engine`, for engines with no finer hook (file: one engine call is a few syscalls). */
export const ENGINE_KINDS: Readonly<Record<string, Kind>> = {
  load: 'load',
  exists: 'load',
  save: 'save',
  delete: 'other',
}

/** express-session's `Store` (and @fastify/session's, which copies its interface). */
export const STORE_KINDS: Readonly<Record<string, Kind>> = {
  get: 'load',
  set: 'save',
  touch: 'save',
  destroy: 'other',
}
