/**
 * An in-process LRU cache: Django's `LocMemCache`, the default cache when nothing else is
 * configured.
 *
 * Each process has its own sessions. That is fine for one process; behind a load balancer
 * or with Node's `cluster` module a visitor is logged out whenever a request lands on
 * another process, and every restart logs everyone out. Use Redis there.
 */
import { ImproperlyConfigured, SessionLocked } from '../errors.js'
import { ttlToSeconds, type SessionCache } from './cache.js'
import { checkLockOptions, lockToken } from '../lock.js'
import type { DjangoCacheStore, StoredValue } from './django.js'

/** Options of {@link memoryCache}. */
export interface MemoryCacheOptions {
  /** The most entries kept; the least recently read or written goes first. Default `10000` (Django's `MAX_ENTRIES` is 300). */
  maxEntries?: number
  /** The clock entries expire by, in milliseconds. Default `Date.now`; pass `settings.now`. */
  now?: () => number
}

interface Entry {
  value: string
  /** When it expires, in the clock's milliseconds. */
  expiresAt: number
}

/**
 * A cache in this process's memory, bounded by entry count (least recently used evicted
 * first, using the `Map`'s insertion order) and expiring each entry on read by the injected
 * clock. `has` does not count as a use.
 *
 * @example
 * ```ts
 * createSessions({ engine: 'cache', caches: { default: memoryCache({ maxEntries: 50_000 }) }, … })
 * ```
 */
export function memoryCache(options: MemoryCacheOptions = {}): SessionCache {
  const maxEntries = options.maxEntries ?? 10_000
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new ImproperlyConfigured(`sessionkit: memoryCache maxEntries must be a whole number ≥ 1, got ${String(maxEntries)}`)
  }
  const now = options.now ?? Date.now
  if (typeof now !== 'function') throw new ImproperlyConfigured('sessionkit: memoryCache now must be a function returning milliseconds')
  const entries = new Map<string, Entry>()

  /** The live entry under `key`; an expired one is dropped. */
  function live(key: string): Entry | undefined {
    const entry = entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now()) {
      entries.delete(key)
      return undefined
    }
    return entry
  }

  function write(key: string, value: string, seconds: number): void {
    entries.delete(key) // re-inserted last: most recently used
    if (seconds <= 0) return
    entries.set(key, { value, expiresAt: now() + seconds * 1000 })
    while (entries.size > maxEntries) {
      const oldest = entries.keys().next()
      if (oldest.done) break
      entries.delete(oldest.value)
    }
  }

  /** Session locks: the holder's token and when the lock expires, in real time (`Date.now`). */
  const locks = new Map<string, { token: string; expiresAt: number }>()
  /** Per key, the waiters to wake (first first) when the lock is released. */
  const waiters = new Map<string, (() => void)[]>()

  function wakeNext(key: string): void {
    const queue = waiters.get(key)
    const next = queue?.shift()
    if (queue?.length === 0) waiters.delete(key)
    next?.()
  }

  // Django's entries (cacheFormat: 'django'): the same LRU, the bytes kept as Latin-1 text.
  const text = (value: StoredValue): string => `${value.flags}:${value.bytes.toString('latin1')}`
  const parse = (stored: string): StoredValue => {
    const at = stored.indexOf(':')
    return { flags: Number(stored.slice(0, at)), bytes: Buffer.from(stored.slice(at + 1), 'latin1') }
  }
  const django: DjangoCacheStore = {
    kind: 'memory',
    async get(key) {
      const entry = live(key)
      return entry ? { value: parse(entry.value), version: entry.value } : null
    },
    async set(key, value, ttlSeconds) {
      write(key, text(value), ttlToSeconds(ttlSeconds))
    },
    async add(key, value, ttlSeconds) {
      const seconds = ttlToSeconds(ttlSeconds)
      if (live(key) !== undefined) return false
      write(key, text(value), seconds)
      return true
    },
    async replaceIf(key, version, value, ttlSeconds) {
      const seconds = ttlToSeconds(ttlSeconds)
      if (live(key)?.value !== version) return false
      write(key, text(value), seconds)
      return true
    },
    async delete(key) {
      entries.delete(key)
    },
    async has(key) {
      return live(key) !== undefined
    },
    valueOf: parse,
    versionOf: text,
  }

  return {
    name: 'memory',
    django,
    /**
     * A lock in this process's memory: waiters queue and are woken one at a time as the lock
     * is released (no polling), or when it expires, or at their deadline.
     */
    async lock(key, options) {
      const { waitMs, ttlMs } = checkLockOptions(options)
      const token = lockToken()
      const deadline = Date.now() + waitMs
      for (;;) {
        const now = Date.now()
        const held = locks.get(key)
        if (held === undefined || held.expiresAt <= now) {
          locks.set(key, { token, expiresAt: now + ttlMs })
          return async () => {
            if (locks.get(key)?.token !== token) return
            locks.delete(key)
            wakeNext(key)
          }
        }
        if (now >= deadline) throw new SessionLocked(waitMs)
        await new Promise<void>((resolve) => {
          const queue = waiters.get(key) ?? []
          waiters.set(key, queue)
          const wake = (): void => {
            clearTimeout(timer)
            const at = queue.indexOf(wake)
            if (at !== -1) queue.splice(at, 1)
            if (queue.length === 0 && waiters.get(key) === queue) waiters.delete(key)
            resolve()
          }
          // Woken by a release, else when the lock expires or this waiter's time is up.
          const timer = setTimeout(wake, Math.max(0, Math.min(deadline, held.expiresAt) - now))
          queue.push(wake)
        })
      }
    },
    async get(key) {
      const entry = live(key)
      if (entry === undefined) return null
      entries.delete(key)
      entries.set(key, entry)
      return entry.value
    },
    async set(key, value, ttlSeconds) {
      write(key, value, ttlToSeconds(ttlSeconds))
    },
    async add(key, value, ttlSeconds) {
      const seconds = ttlToSeconds(ttlSeconds)
      if (live(key) !== undefined) return false
      write(key, value, seconds)
      return true
    },
    async replace(key, value, ttlSeconds) {
      const seconds = ttlToSeconds(ttlSeconds)
      if (live(key) === undefined) return false
      write(key, value, seconds)
      return true
    },
    async replaceIf(key, expected, value, ttlSeconds) {
      const seconds = ttlToSeconds(ttlSeconds)
      if (live(key)?.value !== expected) return false
      if (seconds > 0) write(key, value, seconds)
      else entries.delete(key)
      return true
    },
    async delete(key) {
      entries.delete(key)
    },
    async has(key) {
      return live(key) !== undefined
    },
    async close() {
      entries.clear()
    },
  }
}
