/**
 * The `cache` engine: sessions live only in a cache (Redis, or the in-process LRU), and
 * expire there by the cache's own time to live. Django: `django.contrib.sessions.backends.cache`.
 *
 * Differences from Django, on purpose:
 * - the cache holds the codec's signed string (Django pickles the raw dict), so whoever can
 *   write to the cache cannot forge session data;
 * - a cache that fails on load throws (the middleware answers 503) instead of logging the
 *   visitor out silently; a missing key is still "no session";
 * - an update is one atomic `SET … XX` instead of Django's `get` then `set`, so a session
 *   deleted between the two is never resurrected.
 *
 * A session lost to eviction or a cache restart is gone: for sessions that must survive
 * those, use `cached_db`.
 */
import { CreateError, ImproperlyConfigured, UpdateError } from '../errors.js'
import type { SessionCache } from '../caches/cache.js'
import { memoryCache } from '../caches/memory.js'
import { redisCacheFromUrl } from '../caches/redis.js'
import { storedExpiresAt } from '../codec.js'
import type { Engine, EngineContext, LockOptions, SessionMap } from '../engine.js'
import type { Settings } from '../settings.js'

/** The cache an engine uses, and whether the engine made it (and so must close it). */
export interface ResolvedCache {
  cache: SessionCache
  /** `true` when made from `redisUrl` or the in-process default; `false` for a cache from `settings.caches`. */
  owned: boolean
}

/**
 * The cache `settings.cacheAlias` names (Django: `caches[SESSION_CACHE_ALIAS]`):
 * 1. `settings.caches[cacheAlias]` when present: the user's cache, which the engine never closes;
 * 2. for the alias `'default'` only: a Redis cache on `settings.redisUrl` when set (ioredis,
 *    an optional peer), else an in-process LRU ({@link memoryCache}), as Django's default
 *    `LocMemCache` — per process, so wrong behind a load balancer or a Node cluster;
 * 3. any other alias that is missing: `ImproperlyConfigured` (Django: `InvalidCacheBackendError`).
 */
export function resolveCache(settings: Readonly<Settings>): ResolvedCache {
  const alias = settings.cacheAlias
  const configured = Object.hasOwn(settings.caches, alias) ? settings.caches[alias] : undefined
  if (configured) return { cache: configured, owned: false }
  if (alias !== 'default') {
    const known = Object.keys(settings.caches)
    throw new ImproperlyConfigured(
      `sessionkit: cacheAlias ${JSON.stringify(alias)} is not in caches` +
        ` (configured: ${known.length ? known.map((k) => JSON.stringify(k)).join(', ') : 'none'})`,
    )
  }
  if (settings.redisUrl !== null) {
    return { cache: redisCacheFromUrl(settings.redisUrl, { logger: settings.logger }), owned: true }
  }
  return { cache: memoryCache({ now: settings.now }), owned: true }
}

/**
 * The engine over the cache `settings.cacheAlias` names (see `resolveCache`): one cache
 * command per call: load `get`, create `add` (SET NX), update `replace` (SET XX), `has`,
 * `delete`. The time to live is the session's expiry age; a save whose expiry is already
 * past deletes the entry instead. A load also checks the expiry against `settings.now`.
 *
 * `close()` closes the cache only if the engine made it (from `redisUrl` or the in-process
 * default); a cache passed in `settings.caches` — and its client — stays open: close it
 * yourself. With `redisUrl`, the engine opens asynchronously: `sessions.ready()` rejects
 * when Redis cannot be reached within the timeout.
 */
export function cacheEngine({ settings, codec }: EngineContext): Engine | Promise<Engine> {
  const { cache, owned } = resolveCache(settings)
  const name = `cache:${cache.name}`
  let closing: Promise<void> | null = null

  /**
   * Whether the session expired by `settings.now`, as the db engine checks `expire_date`:
   * the cache's own TTL runs on its clock (Redis: wall time, whole seconds), this check on
   * the app's, so both agree with `getExpiryDate()` and an injected clock. The save time is
   * the signing timestamp inside the stored string (`payload:timestamp:signature`).
   */
  function expired(stored: string, data: SessionMap): boolean {
    return storedExpiresAt(stored, data, settings.cookieAge) <= settings.now() // NaN (not ours): not expired
  }


  const engine: Engine = {
    name,
    async load(key) {
      const stored = await cache.get(key)
      if (stored === null) return null
      const data = codec.decode(stored, name)
      return expired(stored, data) ? null : cache.replaceIf ? { data, version: stored } : data
    },
    exists(key) {
      return cache.has(key)
    },
    async save(key, data, { mustCreate, expiryAge, expected }) {
      if (expiryAge <= 0) {
        // Already expired: nothing to write. A create still must not take a key in use.
        if (mustCreate && (await cache.has(key))) throw new CreateError()
        if (!mustCreate) await cache.delete(key)
        return { key, version: null }
      }
      const value = codec.encode(data)
      if (mustCreate) {
        if (!(await cache.add(key, value, expiryAge))) throw new CreateError()
      } else if (expected != null && cache.replaceIf) {
        if (!(await cache.replaceIf(key, expected, value, expiryAge))) throw new UpdateError()
      } else if (!(await cache.replace(key, value, expiryAge))) {
        throw new UpdateError()
      }
      return { key, version: value }
    },
    delete(key) {
      return cache.delete(key)
    },
    // Session locks, when the cache has them (Redis, the in-process LRU).
    ...(cache.lock ? { lock: (key: string, options: LockOptions) => cache.lock!(key, options) } : {}),
    async clearExpired() {
      return null // the cache expires entries itself (Django: a no-op)
    },
    close() {
      if (!owned) return Promise.resolve()
      closing ??= cache.close()
      return closing
    },
  }

  if (owned && cache.ready) {
    return cache.ready().then(
      () => engine,
      async (error: unknown) => {
        await cache.close().catch(() => undefined)
        throw error
      },
    )
  }
  return engine
}
