/**
 * The `cached_db` engine: sessions in Django's `django_session` table, with a cache in front
 * (write-through, read-through). Django: `django.contrib.sessions.backends.cached_db`.
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
 * or full never fails a request the database can serve:
 * - a cache read that fails counts as a miss;
 * - a cache write that fails is logged, and the request goes on;
 * - the first failure starts an *outage*, logged once (`logger.error`). While it lasts the
 *   cache is left alone, so a dead cache does not add its timeout to every request: loads
 *   go to the database, writes are remembered (below). Every {@link CACHED_DB_RETRY_MS} a
 *   health check (a read, a write and a delete of a key no session can have) runs in the
 *   background, started by a request or a timer; when all three answer, the outage ends,
 *   logged once (`logger.warn`, "the cache answers again"). A cache that reads but refuses
 *   writes (a full Redis) stays down: no log line per request, no flapping.
 *
 * **Stale entries.** A write the cache missed leaves the previous value there: after a
 * logout (`flush`, `cycleKey`) a live copy of the session, or after a save an older one.
 * Django ignores this. Here:
 * - a failed `set` is followed by a `delete` (a full Redis refuses `SET` but accepts `DEL`);
 * - a key whose cache write or delete could not be made is remembered (a *tombstone*, at most
 *   {@link CachedDbTuning.maxStaleKeys}) and this process never reads it from the cache: it
 *   goes to the database, and the entry is deleted (or overwritten) as soon as the cache
 *   answers, by the next request or a retry timer, whichever comes first;
 * - past that many tombstones the engine stops reading the cache altogether until every
 *   entry that might be stale has expired (the longest TTL it has written, at least `cookieAge`).
 * Tombstones live in this process: another process sharing the cache can read a stale entry
 * between the cache's recovery and this process's repair (up to {@link CACHED_DB_RETRY_MS}
 * and the health check), and a restart during an outage forgets them (entries then live
 * until their TTL).
 *
 * **Inherited from Django, documented:** a row deleted behind the engine's back (an admin,
 * `DELETE FROM django_session`, another app without this cache) keeps loading from the cache
 * until its TTL; the next save of it raises `UpdateError` (the middleware answers 400), and
 * then its cache entry is deleted too. Two concurrent saves of one session may leave the
 * cache with the older value until the next save; a load that misses may re-fill the cache
 * with a session deleted between its database read and its cache write (a window of one
 * cache round trip).
 */
import { CreateError, UpdateError } from '../errors.js'
import { redactSessionKeys } from '../redact.js'
import type { SessionCache } from '../caches/cache.js'
import { resolveCache, type ResolvedCache } from './cache.js'
import { redisCacheFromUrl } from '../caches/redis.js'
import { storedExpiresAt } from '../codec.js'
import { isServerKey } from '../keys.js'
import type { Engine, EngineContext, LoadedSession, LockOptions, SavedSession, SaveOptions, SessionMap } from '../engine.js'
import { dbEngine, type DbEngine } from './db.js'
import type { MigrateReport } from '../drivers/sql.js'

/** Django's `KEY_PREFIX` of the cached_db backend. */
export const CACHED_DB_KEY_PREFIX = 'django.contrib.sessions.cached_db'

/** How long the cache is left alone after a failure before the next health check, in ms of `settings.now`. */
export const CACHED_DB_RETRY_MS = 1000

/** The most keys remembered as possibly stale in the cache, by default. */
export const CACHED_DB_MAX_STALE_KEYS = 100_000

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
  /** How many keys are remembered as possibly stale in the cache (see the module comment). */
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
 * synchronously (SQLite). A database that cannot be opened fails the start-up; a cache made
 * from `redisUrl` that cannot be reached does not: it is logged, and sessions are served from
 * the database until it answers. `close()` closes the database and, if the engine made it,
 * the cache; a cache passed in `settings.caches` stays open.
 */
export function cachedDbEngine(context: EngineContext): CachedDbEngine | Promise<CachedDbEngine> {
  const made: DbEngine | Promise<DbEngine> = dbEngine(context)
  const withCache = (db: DbEngine): CachedDbEngine => {
    let resolved: ResolvedCache
    try {
      resolved = resolveCachedDbCache(context.settings)
    } catch (error) {
      void Promise.resolve(db.close()).catch(() => undefined)
      throw error
    }
    return cachedDbOver(db, resolved, context)
  }
  return isPromise(made) ? made.then(withCache) : withCache(made)
}

const SKIPPED = Symbol('skipped')
type Outcome<T> = T | typeof SKIPPED

/**
 * The engine over a `db` engine and a cache you provide: `owned` says whether `close()`
 * closes the cache (the database is always closed). For tests and custom wiring.
 */
export function cachedDbOver(db: DbEngine, { cache, owned }: ResolvedCache, { settings, codec }: EngineContext, tuning: CachedDbTuning = {}): CachedDbEngine {
  const retryMs = tuning.retryMs ?? CACHED_DB_RETRY_MS
  const maxStaleKeys = tuning.maxStaleKeys ?? CACHED_DB_MAX_STALE_KEYS
  const { driver } = db
  const { logger } = settings
  const name = `cached_db:${driver.dialect}+${cache.name}`
  const cacheKey = (key: string): string => CACHED_DB_KEY_PREFIX + key

  // ---- outage: while `down`, the cache is left alone; a health check runs every retryMs
  let down = false
  let retryAt = 0
  let checking: Promise<void> | null = null

  // ---- keys whose cache entry may be stale, and the longest TTL written (for the overflow case)
  const stale = new Set<string>()
  let untrustedUntil = Number.NEGATIVE_INFINITY
  let longestTtl = 0
  let repairing: Promise<void> | null = null
  let timer: NodeJS.Timeout | null = null
  let closed = false
  let closing: Promise<void> | null = null

  function reason(error: unknown, key: string | null): string {
    // A cache error may quote the key; logs never get one.
    return redactSessionKeys(error instanceof Error ? error.message || error.name : String(error), key)
  }

  /** A cache operation failed: start an outage (logged once) or push the next health check back. */
  function failed(error: unknown, what: string, key: string | null): void {
    retryAt = settings.now() + retryMs
    if (down || closed) return
    down = true
    logger.error(
      `${name}: the cache failed to ${what} (${reason(error, key)}); ` +
        'sessions are read from and written to the database alone until it answers again',
    )
    schedule()
  }

  /** Whether the cache may be used now; while down, starts the health check when it is due. */
  function available(): boolean {
    if (!down) return true
    if (settings.now() >= retryAt) void check().catch(() => undefined) // the logger's own failure, if any
    return false
  }

  /**
   * The health check that ends an outage: a read, a write and a delete of a key no session
   * can have (`.` is not a key character). All three must answer: a cache that reads but
   * refuses writes (a full Redis) is still down. Then the stale entries are deleted.
   */
  function check(): Promise<void> {
    if (checking) return checking
    const run = async (): Promise<boolean> => {
      const probe = `${CACHED_DB_KEY_PREFIX}.health`
      try {
        await cache.get(probe)
        await cache.set(probe, '1', 60)
        await cache.delete(probe)
        return true
      } catch {
        retryAt = settings.now() + retryMs
        return false
      }
    }
    // Reset in a reaction, never synchronously: `checking` must not outlive the check.
    checking = run()
      .then(async (healthy) => {
        if (!healthy || !down || closed) return
        down = false
        logger.warn(
          `${name}: the cache answers again` +
            (stale.size ? `; deleting ${stale.size} entr${stale.size === 1 ? 'y' : 'ies'} that may be stale` : ''),
        )
        await repair()
      })
      .finally(() => {
        checking = null
      })
    return checking
  }

  /** Run `op` on the cache unless it is down; a failure is logged once per outage. `SKIPPED` when it did not happen. */
  async function attempt<T>(what: string, key: string | null, op: () => Promise<T>): Promise<Outcome<T>> {
    if (!available()) return SKIPPED
    try {
      return await op()
    } catch (error) {
      failed(error, what, key)
      return SKIPPED
    }
  }

  function markStale(key: string): void {
    if (stale.has(key)) return
    if (stale.size >= maxStaleKeys) {
      const until = settings.now() + Math.max(settings.cookieAge, longestTtl) * 1000
      if (untrustedUntil < settings.now()) {
        logger.error(
          `${name}: more than ${maxStaleKeys} cache entries may be stale; the cache is not read until ` +
            `${new Date(until).toISOString()} (the database serves every load)`,
        )
      }
      untrustedUntil = Math.max(untrustedUntil, until)
      return
    }
    stale.add(key)
    schedule()
  }

  /** While down or holding stale keys: retry every retryMs, without waiting for traffic. */
  function schedule(): void {
    if (timer !== null || closed || (!down && stale.size === 0)) return
    timer = setTimeout(() => {
      timer = null
      const work = down ? (settings.now() >= retryAt ? check() : Promise.resolve()) : repair()
      void work.catch(() => undefined).then(schedule)
    }, retryMs)
    timer.unref()
  }

  function repair(): Promise<void> {
    if (repairing) return repairing
    const run = async (): Promise<void> => {
      for (const key of [...stale]) {
        if (closed) return
        if (!stale.has(key)) continue
        if ((await attempt('delete', key, () => cache.delete(cacheKey(key)))) === SKIPPED) return
        stale.delete(key)
      }
    }
    // Reset in a reaction, never synchronously (an empty run finishes at once).
    repairing = run().finally(() => {
      repairing = null
    })
    return repairing
  }

  /** Whether this process may read `key` from the cache (not stale, not in an overflow). */
  function trusted(key: string): boolean {
    return !stale.has(key) && settings.now() >= untrustedUntil
  }

  /** Put `value` in the cache; when that fails, make sure no older value stays there. */
  async function cacheWrite(key: string, value: string, ttl: number): Promise<void> {
    if (ttl > longestTtl) longestTtl = ttl
    if (!available()) return markStale(key)
    try {
      await cache.set(cacheKey(key), value, ttl)
      stale.delete(key)
      return
    } catch (error) {
      failed(error, 'write', key)
    }
    // A full Redis refuses SET but accepts DEL: delete the older value, whatever the state.
    try {
      await cache.delete(cacheKey(key))
      stale.delete(key)
    } catch {
      markStale(key)
    }
  }

  async function cacheDelete(key: string): Promise<void> {
    const done = await attempt('delete', key, () => cache.delete(cacheKey(key)))
    if (done === SKIPPED) markStale(key)
    else stale.delete(key)
  }

  /**
   * When the session in `stored` expires by `settings.now`'s clock, in ms, or `NaN` when
   * unknown: the signing time inside the stored string (`payload:timestamp:signature`) plus
   * the session's expiry, as `getExpiryDate()` computed `expire_date` at the same save.
   */
  function expiresAt(stored: string, data: SessionMap): number {
    return storedExpiresAt(stored, data, settings.cookieAge)
  }


  const engine: CachedDbEngine = {
    name,
    db,
    cache,
    get staleKeys() {
      return stale.size
    },
    async repairStale() {
      if (down) await (settings.now() >= retryAt ? check() : checking)
      if (!down) await repair()
    },

    async load(key, options) {
      // Never looked up: Django's test_load_overlong_key (memcached refuses long keys).
      if (!isServerKey(key)) return null
      if (!options?.fresh && trusted(key)) {
        const hit = await attempt('read', key, () => cache.get(cacheKey(key)))
        if (hit !== SKIPPED && hit !== null) {
          const data = codec.decode(hit, name)
          // The cache's own TTL runs on its clock (Redis: whole seconds); this check on the app's.
          if (expiresAt(hit, data) <= settings.now()) return null
          // Nothing readable (tampered, or written by something else; the codec has logged it):
          // the database decides, and its row replaces the entry.
          if (data.size > 0) return { data, version: hit }
        }
      }
      const stored = await driver.load(key, new Date(settings.now()))
      if (stored === null) {
        if (stale.has(key)) await cacheDelete(key)
        return null
      }
      const data = codec.decode(stored, name)
      // TTL = seconds until the row expires (Django: get_expiry_age(expiry=s.expire_date)).
      const ttl = Math.floor((expiresAt(stored, data) - settings.now()) / 1000)
      if (ttl > 0) await cacheWrite(key, stored, ttl)
      else if (stale.has(key)) await cacheDelete(key)
      return { data, version: stored }
    },

    async exists(key) {
      if (isServerKey(key) && trusted(key)) {
        const hit = await attempt('read', key, () => cache.has(cacheKey(key)))
        if (hit === true) return true
      }
      return driver.exists(key)
    },

    async save(key, data, { mustCreate, expireDate, expiryAge, expected }) {
      const encoded = codec.encode(data)
      if (mustCreate) {
        if (!(await driver.insert(key, encoded, expireDate))) throw new CreateError()
      } else if (!(await driver.update(key, encoded, expireDate, expected))) {
        // Deleted behind our back, or changed since this request read it (possibly from a
        // stale cache entry): the entry must not keep the old state alive.
        await cacheDelete(key)
        throw new UpdateError()
      }
      // A TTL ≤ 0 deletes the entry (SessionCache contract).
      await cacheWrite(key, encoded, expiryAge)
      return { key, version: encoded }
    },

    async delete(key) {
      await driver.delete(key)
      await cacheDelete(key)
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
        if (timer !== null) clearTimeout(timer)
        timer = null
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
      if (!closed) failed(error, 'connect', null)
    })
  }
  return engine
}
