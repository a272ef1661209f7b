/**
 * The cache the `cache` and `cached_db` engines keep sessions in: a small async key-value
 * interface with expiry (Django: a `CACHES` backend). Implementations sit beside this file, one
 * file each (`memory.ts`, `redis.ts`); the engines resolve `settings.cacheAlias` to one.
 *
 * What is stored, by default, is the codec's signed session string, not the raw data: a
 * signed value means whoever can write to the cache cannot inject session data. Django's
 * cache backends pickle the dict instead; `cacheFormat: 'django'` writes and reads those
 * entries (through a cache's `django` store, see `caches/django.ts`) to share them with Django.
 */
import type { LockOptions, ReleaseLock } from '../lock.js'
import type { DjangoCacheStore } from './django.js'

/** Django's `KEY_PREFIX` of the cache session backend: the Redis and Memcached caches' default prefix. */
export const CACHE_KEY_PREFIX = 'django.contrib.sessions.cache'

/**
 * A cache of strings with a time to live. Keys are session keys; a driver may put its own
 * prefix in front of them (the Redis driver does).
 *
 * Contract:
 * - `ttlSeconds` is whole seconds (fractions are floored); a value ≤ 0 writes nothing: `set`
 *   deletes the key, `replace` deletes it and returns whether it was there, `add` returns
 *   whether the key was free. Django's cache does the same with a timeout ≤ 0.
 * - `add` writes only if the key is absent (Redis `SET NX`); `replace` only if present (`SET XX`).
 *   Each is one atomic operation: there is no window between the check and the write.
 * - An expired entry is absent for every method.
 * - Failures (connection refused, timeout) reject; a missing key is never an error.
 */
export interface SessionCache {
  /** A short name for logs and the engine's name: `memory`, `redis`. */
  readonly name: string
  /** The stored string, or `null` when the key is missing or expired. */
  get(key: string): Promise<string | null>
  /** Store `value` for `ttlSeconds`, whether or not the key exists. */
  set(key: string, value: string, ttlSeconds: number): Promise<void>
  /** Store only if the key is absent; `false` when it exists. Redis: `SET k v EX ttl NX`. */
  add(key: string, value: string, ttlSeconds: number): Promise<boolean>
  /** Store only if the key exists; `false` when it is missing. Redis: `SET k v EX ttl XX`. */
  replace(key: string, value: string, ttlSeconds: number): Promise<boolean>
  /**
   * Compare-and-set: store `value` only if the key still holds `expected` (a `ttlSeconds` ≤ 0
   * deletes it instead); `false` when it holds something else or nothing. One round trip
   * (Redis: a Lua script). Optional: without it the engine updates with `replace`
   * (last write wins, as Django).
   */
  replaceIf?(key: string, expected: string, value: string, ttlSeconds: number): Promise<boolean>
  /**
   * Take the lock of session `key`, with `Engine.lock`'s contract (wait at most `waitMs`, then
   * `SessionLocked`; expires `ttlMs` after it was taken; the release deletes only this
   * caller's lock). Lives beside the entries, never in their way. Optional: the `cache`
   * engine supports `session.lock()` only with it. Redis: `SET <prefix>lock:<key> <token> NX PX`.
   */
  lock?(key: string, options: LockOptions): Promise<ReleaseLock>
  /** Remove the key; a missing key is not an error. */
  delete(key: string): Promise<void>
  /** Whether a live entry exists under the key. */
  has(key: string): Promise<boolean>
  /**
   * Resolves once the cache answers; rejects with a message naming the server (never its
   * password). Engines await it for caches they create themselves. Optional.
   */
  ready?(): Promise<void>
  /** Release connections. Engines call it only for caches they created. Idempotent. */
  close(): Promise<void>
  /**
   * Django's own entries on the same server, for `cacheFormat: 'django'` (see `DjangoCacheStore`).
   * Optional: a cache without it cannot be shared with Django.
   */
  readonly django?: DjangoCacheStore
}

/**
 * Whole seconds of a time to live, floored as Django's cache does (`int(timeout)`); ≤ 0 means
 * "already expired". A non-finite value is a programming error.
 */
export function ttlToSeconds(ttlSeconds: number): number {
  if (typeof ttlSeconds !== 'number' || !Number.isFinite(ttlSeconds)) {
    throw new TypeError(`sessionkit: a cache time to live must be a finite number of seconds, got ${String(ttlSeconds)}`)
  }
  return Math.floor(ttlSeconds)
}
