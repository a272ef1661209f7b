/**
 * The `cached_db` engine: sessions in Django's `django_session` table, with a cache in front
 * (write-through, read-through). Django: `django.contrib.sessions.backends.cached_db`, a
 * subclass of the `db` backend; here, likewise, the engine works through the `db` engine's own
 * `load`, `save`, `exists` and `delete`, and adds the cache around them.
 *
 * Django's order, kept:
 * - `load`: the cache first; on a miss (or a cache error) the database, then the cache is
 *   filled. A cache hit is trusted without touching the database.
 * - `save`: the database first (`CreateError`/`UpdateError` come from it), then the cache.
 * - `delete`: the database, then the cache. `exists`: the cache, then the database.
 * - `clearExpired`: the database's (cache entries expire by their TTL).
 *
 * Cache keys are Django's: `django.contrib.sessions.cached_db` + the session key
 * ({@link CACHED_DB_KEY_PREFIX}), behind whatever prefix the cache driver adds: none for the
 * in-process cache and for the Redis cache made from `redisUrl`; `redisCache(client)` adds
 * its own default prefix (the `cache` engine's), so pass `redisCache(client, { prefix: '' })`
 * for Django's exact key. With `cacheFormat: 'django'` the entry is Django's own instead
 * (`KEY_PREFIX:VERSION:django.contrib.sessions.cached_db<key>`, the pickled dict), which a
 * Django `cached_db` on the same cache reads and writes; see `DJANGO_HIT` for what a cache
 * hit then costs a save. Otherwise the cached value is the codec's signed string, the same text as
 * the `session_data` column; a cached value that decodes to nothing (tampered, or written by
 * something else) counts as a miss. A fill after a miss lives until the row expires: the session's
 * signing time (inside that text) plus its expiry, which is how `expire_date` was computed
 * at the same save (the SQL drivers' `load` returns only `session_data`). A hit is checked
 * against `settings.now` the same way, so an injected clock expires cached sessions too.
 *
 * **The database is the truth; the cache is an optimisation.** A cache that is down, slow
 * or full never fails a request the database can serve, and an entry a failed write may have
 * left stale is never read: `cache-guard.ts` says how (outages, health checks, tombstones).
 *
 * **Inherited from Django, documented:** a row deleted behind the engine's back (an admin,
 * `DELETE FROM django_session`, another app without this cache) keeps loading from the cache
 * until its TTL; the next save of it raises `UpdateError` (the middleware answers 400), and
 * then its cache entry is deleted too. Two concurrent saves of one session may leave the
 * cache with the older value until the next save; a load that misses may re-fill the cache
 * with a session deleted between its database read and its cache write (a window of one
 * cache round trip).
 */
import { UpdateError } from '../errors.js'
import type { SessionCache } from '../caches/cache.js'
import { redisCacheFromUrl } from '../caches/redis.js'
import { djangoEntries, dumpSession, makeKey, type DjangoEntries, type StoredValue } from '../caches/django.js'
import { storedExpiresAt } from '../codec.js'
import { isServerKey } from '../keys.js'
import type { Engine, EngineContext, LoadedSession, LockOptions, SavedSession, SaveOptions, SessionMap } from '../engine.js'
import type { MigrateReport } from '../drivers/sql.js'
import type { Settings } from '../settings.js'
import { djangoSessionOf, djangoVersionData, resolveCache, type ResolvedCache } from './cache.js'
import { cacheGuard, CACHED_DB_MAX_STALE_KEYS, CACHED_DB_RETRY_MS, type CacheGuard } from './cache-guard.js'
import { dbEngine, type DbEngine } from './db.js'

export { CACHED_DB_MAX_STALE_KEYS, CACHED_DB_RETRY_MS } from './cache-guard.js'

/** Django's `KEY_PREFIX` of the cached_db backend. */
export const CACHED_DB_KEY_PREFIX = 'django.contrib.sessions.cached_db'

/**
 * The version of a session loaded from Django's cache entry (`cacheFormat: 'django'`): that
 * entry's own version behind this marker (a NUL, never in `session_data`). It is not the row's
 * `session_data`, so a save first loses its compare-and-set on purpose and re-reads the row.
 */
const DJANGO_HIT = '\u0000django-cache:'

/** What a cache read found that the database need not be asked about: an entry past its expiry. */
const EXPIRED = Symbol('expired')

/** Knobs of {@link cachedDbOver}; the registry uses the defaults. */
export interface CachedDbTuning {
  /** See {@link CACHED_DB_RETRY_MS}. */
  retryMs?: number
  /** See {@link CACHED_DB_MAX_STALE_KEYS}. */
  maxStaleKeys?: number
}

/** The `cached_db` engine, with its parts in view (tests count their calls). */
export interface CachedDbEngine extends Engine {
  readonly db: DbEngine
  readonly cache: SessionCache
  /** How many keys are remembered as possibly stale in the cache (see `cache-guard.ts`). */
  readonly staleKeys: number
  /** Try now to delete the cache entries that may be stale; resolves when this attempt ends. */
  repairStale(): Promise<void>
  migrate(): Promise<void>
  /** The database's `migrateReport()` (the CLI prints it). */
  migrateReport(): Promise<MigrateReport>
  /**
   * The data and its version (the `session_data` text; after a hit on Django's cache entry,
   * that entry's version behind {@link DJANGO_HIT}), or `null`. `fresh` reads the
   * database, past the cache (and refills the cache from it): after a lost compare-and-set,
   * a stale cache entry cannot keep the save from converging.
   */
  load(key: string, options?: { fresh?: boolean }): Promise<LoadedSession | null>
  /** Compare-and-set on the database (`expected`), then the cache. */
  save(key: string, data: SessionMap, options: SaveOptions): Promise<SavedSession>
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/** The engine's name: `cached_db:<dialect>+<cache>`, e.g. `cached_db:sqlite+memory`, and `:django` in Django's cache format. */
function nameOf(dialect: string, cache: SessionCache, settings: Pick<Settings, 'cacheFormat'>): string {
  return `cached_db:${dialect}+${cache.name}${settings.cacheFormat === 'signed' ? '' : ':django'}`
}

/**
 * The cache for `cached_db`: `settings.caches[cacheAlias]`, or the default one as
 * `resolveCache` makes it — except that a Redis cache made from `redisUrl` gets no driver
 * prefix, so its keys are exactly Django's `django.contrib.sessions.cached_db<key>` (the
 * driver's default prefix is the `cache` engine's).
 */
function resolveCachedDbCache(settings: EngineContext['settings']): ResolvedCache {
  if (settings.cacheAlias === 'default' && !Object.hasOwn(settings.caches, 'default') && settings.redisUrl !== null) {
    return { cache: redisCacheFromUrl(settings.redisUrl, { prefix: '' }), owned: true }
  }
  return resolveCache(settings)
}

/**
 * The engine for `settings.databaseUrl` (any database the `db` engine supports) and the
 * cache `settings.cacheAlias` names (see `resolveCache`). Synchronous when the database opens
 * synchronously (SQLite). A database that cannot be opened fails the start-up (and a cache the
 * engine made for it is closed); a cache made from `redisUrl` that cannot be reached does not:
 * it is logged, and sessions are served from the database until it answers. `close()` closes
 * the database and, if the engine made it, the cache; a cache passed in `settings.caches` stays open.
 */
export function cachedDbEngine(context: EngineContext): CachedDbEngine | Promise<CachedDbEngine> {
  const resolved = resolveCachedDbCache(context.settings)
  const dropCache = (error: unknown): never => {
    if (resolved.owned) void resolved.cache.close().catch(() => undefined)
    throw error
  }
  let made: DbEngine | Promise<DbEngine>
  try {
    // A cache that cannot hold Django's entries (cacheFormat: 'django') stops the start-up before the database opens.
    djangoEntries(resolved.cache, context.settings.cacheFormat)
    // The db engine decodes under this engine's name: a corrupt row is reported as cached_db's.
    made = dbEngine(context, (dialect) => nameOf(dialect, resolved.cache, context.settings))
  } catch (error) {
    return dropCache(error)
  }
  const over = (db: DbEngine): CachedDbEngine => cachedDbOver(db, resolved, context)
  return isPromise(made) ? made.then(over, dropCache) : over(made)
}

/**
 * The engine over a `db` engine and a cache you provide: `owned` says whether `close()`
 * closes the cache (the database is always closed). For tests and custom wiring.
 *
 * Each operation is the db engine's own, with the cache around it, in Django's order:
 * - `load`: the cache (a hit is trusted, unless past its expiry by `settings.now`); else the
 *   db engine's `load`, whose row then fills the cache until the row expires;
 * - `save`: the db engine's `save` (its `CreateError`/`UpdateError`; a failed update also
 *   drops the cache entry), then the cache;
 * - `delete`: the db engine's, then the cache. `exists`: the cache, then the db engine's;
 * - `clearExpired`, `lock`, `migrate`: the db engine's alone (locks live in the database, the truth).
 *
 * The entries are the `session_data` text, or with `cacheFormat: 'django'` Django's own (the
 * pickled dict, see {@link DJANGO_HIT}); the guard (`cache-guard.ts`) is the same for both.
 */
export function cachedDbOver(db: DbEngine, { cache, owned }: ResolvedCache, context: EngineContext, tuning: CachedDbTuning = {}): CachedDbEngine {
  const { settings } = context
  const name = nameOf(db.driver.dialect, cache, settings)
  const django = djangoEntries(cache, settings.cacheFormat)
  const entries = django ? djangoCachedEntries(django, name, context, tuning) : signedCachedEntries(cache, name, context, tuning)
  const { guard } = entries
  let closed = false
  let closing: Promise<void> | null = null

  const engine: CachedDbEngine = {
    name,
    db,
    cache,
    get staleKeys() {
      return guard.staleKeys
    },
    repairStale: () => guard.repairStale(),

    async load(key, options) {
      // Never looked up: Django's test_load_overlong_key (memcached refuses long keys).
      if (!isServerKey(key)) return null
      const hit = options?.fresh ? null : await entries.read(key)
      if (hit === EXPIRED) return null
      if (hit !== null) return hit
      const row = await db.load(key)
      if (row === null) {
        await guard.settle(key)
        return null
      }
      // TTL = seconds until the row expires (Django: get_expiry_age(expiry=s.expire_date)).
      const ttl = Math.floor((storedExpiresAt(row.version, row.data, settings.cookieAge) - settings.now()) / 1000)
      if (ttl > 0) await entries.write(key, row.data, row.version, ttl)
      else await guard.settle(key)
      return row
    },

    async exists(key) {
      if (isServerKey(key) && (await guard.has(key))) return true
      return db.exists(key)
    },

    async save(key, data, options) {
      // Loaded from Django's cache entry: no database version to compare with. Lose the
      // compare-and-set at once, so that the session reads the row and merges (one read more).
      if (!options.mustCreate && options.expected?.startsWith(DJANGO_HIT)) throw new UpdateError()
      let saved: SavedSession & { version: string }
      try {
        saved = await db.save(key, data, options)
      } catch (error) {
        // Deleted behind our back, or changed since this request read it (possibly from a
        // stale cache entry): the entry must not keep the old state alive.
        if (error instanceof UpdateError) await guard.delete(key)
        throw error
      }
      // A TTL ≤ 0 deletes the entry (SessionCache contract).
      await entries.write(key, data, saved.version, options.expiryAge)
      return saved
    },

    async delete(key) {
      await db.delete(key)
      await guard.delete(key)
    },

    clearExpired(onProgress) {
      return db.clearExpired(onProgress)
    },

    ...(entries.versionData ? { versionData: entries.versionData } : {}),

    // Session locks live in the database (the truth), never in the cache.
    ...(db.lock ? { lock: (key: string, options: LockOptions) => db.lock!(key, options) } : {}),

    migrate() {
      return db.migrate()
    },

    migrateReport() {
      return db.migrateReport()
    },

    close() {
      closing ??= (async () => {
        closed = true
        guard.stop()
        const results = await Promise.allSettled([db.close(), owned ? cache.close() : undefined])
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
        if (failed) throw failed.reason
      })()
      return closing
    },
  }

  if (owned && cache.ready) {
    // A cache made here from redisUrl: unreachable at start-up is an outage, not a failure.
    cache.ready().catch((error: unknown) => {
      if (!closed) guard.failed(error, 'connect')
    })
  }
  return engine
}

/**
 * cached_db's cache entries in one format, over the guard: what a hit loads as, and what is
 * written after a database load or save. `guard` serves the operations that do not depend on
 * the format (`has`, `delete`, `settle`, the outage and the repairs).
 */
interface CachedEntries {
  readonly guard: CacheGuard<unknown, never>
  /**
   * The session a trusted cache entry holds; `null` to ask the database (a miss, a cache that is
   * down, an entry with nothing readable, which the row then replaces); {@link EXPIRED} when the
   * entry is past its expiry by `settings.now` (the cache's own TTL runs on its clock).
   */
  read(key: string): Promise<LoadedSession | typeof EXPIRED | null>
  /** Cache the session the database holds (`version`, its `session_data`) for `ttl` seconds (≤ 0 deletes the entry). */
  write(key: string, data: SessionMap, version: string, ttl: number): Promise<void>
  /** `Engine.versionData`, when versions are not all `session_data`. */
  readonly versionData?: (version: string) => SessionMap
}

/** sessionkit's own entries: the `session_data` text, signed, under `CACHED_DB_KEY_PREFIX<key>`. */
function signedCachedEntries(cache: SessionCache, name: string, { settings, codec }: EngineContext, tuning: CachedDbTuning): CachedEntries {
  const guard = cacheGuard({ store: cache, keyOf: (key) => CACHED_DB_KEY_PREFIX + key, probe: '1', name, settings, ...tuning })
  return {
    guard,
    async read(key) {
      const hit = await guard.get(key)
      if (hit === null) return null
      const data = codec.decode(hit, name)
      // When the row expires, as `expire_date` was computed at the same save.
      if (storedExpiresAt(hit, data, settings.cookieAge) <= settings.now()) return EXPIRED
      // Nothing readable (tampered, or written by something else; the codec has logged it).
      return data.size > 0 ? { data, version: hit } : null
    },
    write: (key, _data, version, ttl) => guard.set(key, version, ttl),
  }
}

/**
 * Django's entries (`cacheFormat: 'django'`): the session dict as the backend pickles it, under
 * `make_key(CACHED_DB_KEY_PREFIX<key>)`. A hit has no signing time and no database version:
 * its fixed expiry date is checked on the app's clock, and its version is {@link DJANGO_HIT}.
 */
function djangoCachedEntries(django: DjangoEntries, name: string, { settings, codec }: EngineContext, tuning: CachedDbTuning): CachedEntries {
  const { store, format } = django
  const probe: StoredValue = { bytes: Buffer.from('1'), flags: 0 }
  const guard = cacheGuard({ store, keyOf: (key) => makeKey(format, CACHED_DB_KEY_PREFIX + key), probe, name, settings, ...tuning })
  return {
    guard,
    async read(key) {
      const hit = await guard.get(key)
      if (hit === null) return null
      const data = djangoSessionOf(django, hit.value, name, settings)
      if (data === null) return EXPIRED
      return data.size > 0 ? { data, version: DJANGO_HIT + hit.version } : null
    },
    write(key, data, version, ttl) {
      let value: StoredValue
      try {
        value = dumpSession(format, data)
      } catch (error) {
        if (!(error instanceof TypeError)) throw error
        // The serializer took what pickle will not (a class instance): cache what the row holds.
        value = dumpSession(format, codec.decode(version, name))
      }
      return guard.set(key, value, ttl)
    },
    versionData(version) {
      return version.startsWith(DJANGO_HIT) ? djangoVersionData(django, version.slice(DJANGO_HIT.length)) : codec.decode(version, name)
    },
  }
}
