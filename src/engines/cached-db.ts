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
 * for Django's exact key. The cached value is the codec's signed string, the same text as
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
import { storedExpiresAt } from '../codec.js'
import { isServerKey } from '../keys.js'
import type { Engine, EngineContext, LoadedSession, LockOptions, SavedSession, SaveOptions, SessionMap } from '../engine.js'
import type { MigrateReport } from '../drivers/sql.js'
import { resolveCache, type ResolvedCache } from './cache.js'
import { cacheGuard, CACHED_DB_MAX_STALE_KEYS, CACHED_DB_RETRY_MS } from './cache-guard.js'
import { dbEngine, type DbEngine } from './db.js'

export { CACHED_DB_MAX_STALE_KEYS, CACHED_DB_RETRY_MS } from './cache-guard.js'

/** Django's `KEY_PREFIX` of the cached_db backend. */
export const CACHED_DB_KEY_PREFIX = 'django.contrib.sessions.cached_db'

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
   * The data and its version (the `session_data` text), or `null`. `fresh` reads the
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

/** The engine's name: `cached_db:<dialect>+<cache>`, e.g. `cached_db:sqlite+memory`. */
function nameOf(dialect: string, cache: SessionCache): string {
  return `cached_db:${dialect}+${cache.name}`
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
    // The db engine decodes under this engine's name: a corrupt row is reported as cached_db's.
    made = dbEngine(context, (dialect) => nameOf(dialect, resolved.cache))
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
 */
export function cachedDbOver(db: DbEngine, { cache, owned }: ResolvedCache, { settings, codec }: EngineContext, tuning: CachedDbTuning = {}): CachedDbEngine {
  const name = nameOf(db.driver.dialect, cache)
  const guard = cacheGuard({ cache, prefix: CACHED_DB_KEY_PREFIX, name, settings, ...tuning })
  let closed = false
  let closing: Promise<void> | null = null

  /** When a stored session expires, in ms of `settings.now`: as `expire_date` was computed at the same save. */
  const expiresAt = (stored: string, data: SessionMap): number => storedExpiresAt(stored, data, settings.cookieAge)

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
      const hit = options?.fresh ? null : await guard.get(key)
      if (hit !== null) {
        const data = codec.decode(hit, name)
        // The cache's own TTL runs on its clock (Redis: whole seconds); this check on the app's.
        if (expiresAt(hit, data) <= settings.now()) return null
        // Nothing readable (tampered, or written by something else; the codec has logged it):
        // the database decides, and its row replaces the entry.
        if (data.size > 0) return { data, version: hit }
      }
      const row = await db.load(key)
      if (row === null) {
        await guard.settle(key)
        return null
      }
      // TTL = seconds until the row expires (Django: get_expiry_age(expiry=s.expire_date)).
      const ttl = Math.floor((expiresAt(row.version, row.data) - settings.now()) / 1000)
      if (ttl > 0) await guard.set(key, row.version, ttl)
      else await guard.settle(key)
      return row
    },

    async exists(key) {
      if (isServerKey(key) && (await guard.has(key))) return true
      return db.exists(key)
    },

    async save(key, data, options) {
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
      await guard.set(key, saved.version, options.expiryAge)
      return saved
    },

    async delete(key) {
      await db.delete(key)
      await guard.delete(key)
    },

    clearExpired(onProgress) {
      return db.clearExpired(onProgress)
    },

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
