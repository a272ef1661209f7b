/**
 * The `cache` engine: sessions live only in a cache (Redis, or the in-process LRU), and
 * expire there by the cache's own time to live. Django: `django.contrib.sessions.backends.cache`.
 *
 * Differences from Django, on purpose:
 * - by default the cache holds the codec's signed string (Django pickles the raw dict), so
 *   whoever can write to the cache cannot forge session data (`cacheFormat: 'django'`, below,
 *   shares Django's entries instead);
 * - a cache that fails on load throws (the middleware answers 503) instead of logging the
 *   visitor out silently; a missing key is still "no session";
 * - an update is one atomic `SET … XX` instead of Django's `get` then `set`, so a session
 *   deleted between the two is never resurrected.
 *
 * With `cacheFormat: 'django'` the entries are Django's own (see `src/caches/django.ts`): the key
 * `KEY_PREFIX:VERSION:django.contrib.sessions.cache<key>`, the session dict pickled as Django's
 * backend pickles it, the TTL `get_expiry_age()`; a Django site on the same cache reads and
 * writes the same sessions. An entry sessionkit cannot read (a `datetime`, a class instance) is
 * an empty session and a logged `corrupt` event, and is left alone until this side saves.
 *
 * A session lost to eviction or a cache restart is gone: for sessions that must survive
 * those, use `cached_db`.
 */
import { CreateError, ImproperlyConfigured, PickleError, UpdateError } from '../errors.js'
import { CACHE_KEY_PREFIX, type SessionCache } from '../caches/cache.js'
import { memoryCache } from '../caches/memory.js'
import { redisCacheFromUrl } from '../caches/redis.js'
import { djangoEntries, dumpSession, loadSession, makeKey, type DjangoEntries, type StoredValue } from '../caches/django.js'
import { storedExpiresAt } from '../codec.js'
import { EXPIRY_KEY, fixedExpiry } from '../expiry.js'
import { reportSuspicious } from '../suspicious.js'
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
  let entries: DjangoEntries | null
  try {
    entries = djangoEntries(cache, settings.cacheFormat)
  } catch (error) {
    if (owned) void cache.close().catch(() => undefined)
    throw error
  }
  const name = `cache:${cache.name}${entries ? ':django' : ''}`
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
    // Django's own entries replace the four storage methods above.
    ...(entries ? djangoMethods(entries, name, settings) : {}),
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

/**
 * `load`, `exists`, `save` and `delete` on Django's entries: `get` (the version is the entry's,
 * for a compare-and-set save), `add`, `replaceIf`, `has`, `delete`, each one command. Django:
 * `backends.cache.SessionStore`, whose `save` is a `get` then a `set`; here an update is one
 * compare-and-set, so a session deleted meanwhile is never resurrected.
 */
function djangoMethods(entries: DjangoEntries, name: string, settings: EngineContext['settings']): Pick<Engine, 'load' | 'exists' | 'save' | 'delete' | 'versionData'> {
  const { store, format } = entries
  const keyOf = (key: string): string => makeKey(format, CACHE_KEY_PREFIX + key)
  return {
    async load(key) {
      const entry = await store.get(keyOf(key))
      if (entry === null) return null
      const data = djangoSessionOf(entries, entry.value, name, settings)
      return data === null ? null : { data, version: entry.version }
    },
    exists(key) {
      return store.has(keyOf(key))
    },
    async save(key, data, { mustCreate, expiryAge, expected }) {
      const k = keyOf(key)
      if (expiryAge <= 0) {
        if (mustCreate && (await store.has(k))) throw new CreateError()
        if (!mustCreate) await store.delete(k)
        return { key, version: null }
      }
      const value = dumpSession(format, data)
      if (mustCreate) {
        if (!(await store.add(k, value, expiryAge))) throw new CreateError()
      } else {
        // No version (a second save in one request): take the current one, as Django's get-then-set does.
        const version = expected ?? (await store.get(k))?.version
        if (version === undefined || !(await store.replaceIf(k, version, value, expiryAge))) throw new UpdateError()
      }
      // Memcached hands out no cas token on a write: the next save of this request reads it.
      return { key, version: store.versionOf(value) }
    },
    versionData: (version) => djangoVersionData(entries, version),
    delete(key) {
      return store.delete(keyOf(key))
    },
  }
}

/**
 * The session in a Django cache entry, as both cache engines read it (`cacheFormat: 'django'`):
 * an entry sessionkit will not read (a `datetime`, a class instance) is an empty session and a
 * reported `corrupt` event; one past its fixed expiry date by `settings.now` is `null` (the
 * cache's TTL runs on its own clock, this check on the app's).
 */
export function djangoSessionOf({ format }: DjangoEntries, stored: StoredValue, name: string, settings: Pick<Settings, 'now' | 'logger' | 'onSuspicious'>): SessionMap | null {
  let data: SessionMap
  try {
    data = loadSession(format, stored)
  } catch (error) {
    if (!(error instanceof PickleError)) throw error
    reportSuspicious(settings, { kind: 'corrupt', engine: name, detail: error.message.replace(/^sessionkit: /, '') })
    return new Map()
  }
  const expiry = fixedExpiry(data.get(EXPIRY_KEY))
  return expiry !== null && expiry <= settings.now() ? null : data
}

/** The data a version of a Django entry stands for (the base of a merge); empty when unreadable (it was reported when loaded). */
export function djangoVersionData({ store, format }: DjangoEntries, version: string): SessionMap {
  try {
    return loadSession(format, store.valueOf(version))
  } catch {
    return new Map()
  }
}
