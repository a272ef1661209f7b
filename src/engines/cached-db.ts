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
 * ({@link CACHED_DB_KEY_PREFIX}), in front of whatever prefix the cache driver adds. The
 * cached value is the codec's signed string, the same text as the `session_data` column.
 *
 * **The database is the truth; the cache is an optimisation.** A cache that is down, slow
 * or full never fails a request the database can serve:
 * - a cache read that fails counts as a miss;
 * - a cache write that fails is logged, and the request goes on;
 * - the first failure starts an *outage*: one `logger.error`, then the failing kind of
 *   operation (read, write, delete) is left alone for {@link CACHED_DB_RETRY_MS} (one probe
 *   at a time after that), so a dead cache does not add its timeout to every request; the
 *   end of the outage is one `logger.warn` ("the cache answers again").
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
 * between the cache's recovery and this process's repair (about {@link CACHED_DB_RETRY_MS}),
 * and a restart during an outage forgets them (entries then live until their TTL).
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
import { resolveCache, type ResolvedCache, type SessionCache } from '../cache.js'
import { redisCacheFromUrl } from '../drivers/redis.js'
import { b62Decode } from '../signing.js'
import { EXPIRY_KEY, parsePythonIso } from '../session.js'
import { isServerKey, type Engine, type EngineContext, type SessionMap } from '../engine.js'
import { dbEngine, type DbEngine, type MigrateReport } from './db.js'

/** Django's `KEY_PREFIX` of the cached_db backend. */
export const CACHED_DB_KEY_PREFIX = 'django.contrib.sessions.cached_db'

/** How long a failing kind of cache operation is left alone before it is tried again (ms of `settings.now`). */
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

type Lane = 'read' | 'write' | 'delete'
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

  // ---- outage tracking: one state per kind of cache operation
  const lanes: Record<Lane, { failing: boolean; retryAt: number; probing: boolean }> = {
    read: { failing: false, retryAt: 0, probing: false },
    write: { failing: false, retryAt: 0, probing: false },
    delete: { failing: false, retryAt: 0, probing: false },
  }
  const anyFailing = (): boolean => lanes.read.failing || lanes.write.failing || lanes.delete.failing

  // ---- keys whose cache entry may be stale, and the longest TTL written (for the overflow case)
  const stale = new Set<string>()
  let untrustedUntil = Number.NEGATIVE_INFINITY
  let longestTtl = 0
  let repairing: Promise<void> | null = null
  let timer: NodeJS.Timeout | null = null
  let closed = false
  let closing: Promise<void> | null = null

  function reason(error: unknown, key: string | null): string {
    const text = error instanceof Error ? error.message || error.name : String(error)
    // A cache error may quote the key; logs never get one.
    return key ? text.split(key).join('<session key>') : text
  }

  function startOutage(error: unknown, what: string, key: string | null): void {
    logger.error(
      `${name}: the cache failed to ${what} (${reason(error, key)}); ` +
        'sessions are read from and written to the database alone until it answers again',
    )
  }

  function endOutage(): void {
    logger.warn(
      `${name}: the cache answers again` +
        (stale.size ? `; deleting ${stale.size} entr${stale.size === 1 ? 'y' : 'ies'} that may be stale` : ''),
    )
  }

  /**
   * Run one cache operation of kind `lane`, unless that kind is failing and not due for a
   * retry (`SKIPPED`); a failure is logged once per outage and returns `SKIPPED` too.
   */
  async function attempt<T>(lane: Lane, what: string, key: string | null, op: () => Promise<T>): Promise<Outcome<T>> {
    const state = lanes[lane]
    let probe = false
    if (state.failing) {
      if (state.probing || settings.now() < state.retryAt) return SKIPPED
      state.probing = probe = true
    }
    try {
      const value = await op()
      if (probe && state.failing) {
        state.failing = false
        if (!anyFailing()) endOutage()
        if (stale.size) void repair()
      }
      return value
    } catch (error) {
      state.retryAt = settings.now() + retryMs
      if (!state.failing) {
        const wasDown = anyFailing()
        state.failing = true
        if (!wasDown) startOutage(error, what, key)
      }
      return SKIPPED
    } finally {
      if (probe) state.probing = false
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
    scheduleRepair()
  }

  function scheduleRepair(): void {
    if (timer !== null || closed || stale.size === 0) return
    timer = setTimeout(() => {
      timer = null
      void repair()
    }, retryMs)
    timer.unref()
  }

  function repair(): Promise<void> {
    repairing ??= (async () => {
      try {
        for (const key of [...stale]) {
          if (closed) return
          if (!stale.has(key)) continue
          if ((await attempt('delete', 'delete', key, () => cache.delete(cacheKey(key)))) === SKIPPED) return
          stale.delete(key)
        }
      } finally {
        repairing = null
        scheduleRepair()
      }
    })()
    return repairing
  }

  /** Whether this process may read `key` from the cache (not stale, not in an overflow). */
  function trusted(key: string): boolean {
    return !stale.has(key) && settings.now() >= untrustedUntil
  }

  /** Put `value` in the cache; when that fails, make sure no older value stays there. */
  async function cacheWrite(key: string, value: string, ttl: number): Promise<void> {
    if (ttl > longestTtl) longestTtl = ttl
    const done = await attempt('write', 'write', key, () => cache.set(cacheKey(key), value, ttl))
    if (done !== SKIPPED) {
      stale.delete(key)
      return
    }
    await cacheDelete(key)
  }

  async function cacheDelete(key: string): Promise<void> {
    const done = await attempt('delete', 'delete', key, () => cache.delete(cacheKey(key)))
    if (done === SKIPPED) markStale(key)
    else stale.delete(key)
  }

  /**
   * When the session in `stored` expires by `settings.now`'s clock, in ms, or `NaN` when
   * unknown: the signing time inside the stored string (`payload:timestamp:signature`) plus
   * the session's expiry, as `getExpiryDate()` computed `expire_date` at the same save.
   */
  function expiresAt(stored: string, data: SessionMap): number {
    const expiry = data.get(EXPIRY_KEY)
    if (typeof expiry === 'string') {
      const at = parsePythonIso(expiry)
      if (!Number.isNaN(at)) return at
    }
    const end = stored.lastIndexOf(':')
    const start = stored.lastIndexOf(':', end - 1)
    if (start < 0) return Number.NaN
    let signedAt: number
    try {
      signedAt = b62Decode(stored.slice(start + 1, end)) * 1000
    } catch {
      return Number.NaN // not our format: the codec has already reported it
    }
    const age = typeof expiry === 'number' && expiry !== 0 ? expiry : settings.cookieAge
    return signedAt + age * 1000
  }

  const engine: CachedDbEngine = {
    name,
    db,
    cache,
    get staleKeys() {
      return stale.size
    },
    repairStale: () => repair(),

    async load(key) {
      // Never looked up: Django's test_load_overlong_key (memcached refuses long keys).
      if (!isServerKey(key)) return null
      if (trusted(key)) {
        const hit = await attempt('read', 'read', key, () => cache.get(cacheKey(key)))
        if (hit !== SKIPPED && hit !== null) {
          const data = codec.decode(hit, name)
          // The cache's own TTL runs on its clock (Redis: whole seconds); this check on the app's.
          return expiresAt(hit, data) <= settings.now() ? null : data
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
      return data
    },

    async exists(key) {
      if (isServerKey(key) && trusted(key)) {
        const hit = await attempt('read', 'read', key, () => cache.has(cacheKey(key)))
        if (hit === true) return true
      }
      return driver.exists(key)
    },

    async save(key, data, { mustCreate, expireDate, expiryAge }) {
      const encoded = codec.encode(data)
      if (mustCreate) {
        if (!(await driver.insert(key, encoded, expireDate))) throw new CreateError()
      } else if (!(await driver.update(key, encoded, expireDate))) {
        // Deleted behind our back: its cache entry must not keep it alive.
        await cacheDelete(key)
        throw new UpdateError()
      }
      // A TTL ≤ 0 deletes the entry (SessionCache contract).
      await cacheWrite(key, encoded, expiryAge)
      return key
    },

    async delete(key) {
      await driver.delete(key)
      await cacheDelete(key)
    },

    clearExpired(onProgress) {
      return db.clearExpired(onProgress)
    },

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
      if (closed) return
      const now = settings.now()
      const wasDown = anyFailing()
      for (const state of Object.values(lanes)) {
        state.failing = true
        state.retryAt = now + retryMs
      }
      if (!wasDown) startOutage(error, 'connect', null)
    })
  }
  return engine
}
