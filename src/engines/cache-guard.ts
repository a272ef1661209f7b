/**
 * The cache in front of `cached_db`'s database, guarded so that a cache that is down, slow or
 * full never fails a request the database can serve, and never serves an entry it may have
 * left stale. `cached-db.ts` decides *when* the cache is read and written (Django's order);
 * this module decides whether it *may* be, and repairs what a failure left behind.
 *
 * **Outages.**
 * - a cache read that fails counts as a miss;
 * - a cache write that fails is logged, and the request goes on;
 * - the first failure starts an *outage*, logged once (`logger.error`). While it lasts the
 *   cache is left alone, so a dead cache does not add its timeout to every request: loads
 *   go to the database, writes are remembered (below). Every `retryMs` a health check (a read,
 *   a write and a delete of a key no session can have) runs in the background, started by a
 *   request or a timer; when all three answer, the outage ends, logged once (`logger.warn`,
 *   "the cache answers again"). A cache that reads but refuses writes (a full Redis) stays
 *   down: no log line per request, no flapping.
 *
 * **Stale entries.** A write the cache missed leaves the previous value there: after a
 * logout (`flush`, `cycleKey`) a live copy of the session, or after a save an older one.
 * Django ignores this. Here:
 * - a failed `set` is followed by a `delete` (a full Redis refuses `SET` but accepts `DEL`);
 * - a key whose cache write or delete could not be made is remembered (a *tombstone*, at most
 *   `maxStaleKeys`) and this process never reads it from the cache: it goes to the database,
 *   and the entry is deleted (or overwritten) as soon as the cache answers, by the next
 *   request or a retry timer, whichever comes first;
 * - past that many tombstones the cache is not read at all until every entry that might be
 *   stale has expired (the longest TTL written, at least `cookieAge`).
 * Tombstones live in this process: another process sharing the cache can read a stale entry
 * between the cache's recovery and this process's repair (up to `retryMs` and the health
 * check), and a restart during an outage forgets them (entries then live until their TTL).
 */
import { redactSessionKeys } from '../redact.js'
import type { Settings } from '../settings.js'

/** How long the cache is left alone after a failure before the next health check, in ms of `settings.now`. */
export const CACHED_DB_RETRY_MS = 1000

/** The most keys remembered as possibly stale in the cache, by default. */
export const CACHED_DB_MAX_STALE_KEYS = 100_000

/**
 * The cache operations the guard runs, with `SessionCache`'s contract: a `SessionCache` itself
 * (entries are strings), or Django's entries of one (`cacheFormat: 'django'`: a `get` returns
 * the entry and its version, a `set` takes the bytes).
 */
export interface GuardedStore<Hit = string, Value = string> {
  get(key: string): Promise<Hit | null>
  set(key: string, value: Value, ttlSeconds: number): Promise<void>
  delete(key: string): Promise<void>
  has(key: string): Promise<boolean>
}

/** What the guard needs to know. */
export interface CacheGuardOptions<Hit = string, Value = string> {
  store: GuardedStore<Hit, Value>
  /** The cache key of a session key (`cached_db`: Django's `KEY_PREFIX` in front, and Django's `make_key` in its format). */
  keyOf: (key: string) => string
  /** A value the health check writes (under `keyOf('.health')`, a key no session can have). */
  probe: Value
  /** The engine's name, at the start of every log line. */
  name: string
  settings: Pick<Settings, 'now' | 'logger' | 'cookieAge'>
  /** See {@link CACHED_DB_RETRY_MS}. */
  retryMs?: number
  /** See {@link CACHED_DB_MAX_STALE_KEYS}. */
  maxStaleKeys?: number
}

/** The guarded cache, keyed by session key. No method rejects: a cache failure is logged and answered for. */
export interface CacheGuard<Hit = string, Value = string> {
  /** How many keys are remembered as possibly stale in the cache. */
  readonly staleKeys: number
  /**
   * The cached value of `key`, or `null`: a miss, and also a cache that is down or failing, and a
   * key whose entry may be stale (the database then answers).
   */
  get(key: string): Promise<Hit | null>
  /** Whether the cache holds `key`; `false` when it cannot be asked or trusted. */
  has(key: string): Promise<boolean>
  /** Put `value` under `key` for `ttl` seconds (≤ 0 deletes it); when that fails, make sure no older value stays. */
  set(key: string, value: Value, ttl: number): Promise<void>
  /** Delete the entry of `key`; when that cannot be done now, remember it as stale. */
  delete(key: string): Promise<void>
  /** Delete the entry of `key` if it is remembered as possibly stale (its session is gone from the database). */
  settle(key: string): Promise<void>
  /** Try now to delete the entries that may be stale; resolves when this attempt ends. */
  repairStale(): Promise<void>
  /** The cache failed outside a request (a connection that could not be made): start an outage. */
  failed(error: unknown, what: string): void
  /** Stop the retry timer; nothing is retried afterwards. Idempotent. */
  stop(): void
}

const SKIPPED = Symbol('skipped')
type Outcome<T> = T | typeof SKIPPED

/** A guard over `options.store` (see the module comment). */
export function cacheGuard<Hit = string, Value = string>(options: CacheGuardOptions<Hit, Value>): CacheGuard<Hit, Value> {
  const { store, keyOf: cacheKey, probe: probeValue, name, settings } = options
  const retryMs = options.retryMs ?? CACHED_DB_RETRY_MS
  const maxStaleKeys = options.maxStaleKeys ?? CACHED_DB_MAX_STALE_KEYS
  const { logger } = settings

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
  let stopped = false

  /** A cache operation failed: start an outage (logged once) or push the next health check back. */
  function failed(error: unknown, what: string, key: string | null): void {
    retryAt = settings.now() + retryMs
    if (down || stopped) return
    down = true
    // A cache error may quote the key; logs never get one.
    const reason = redactSessionKeys(error instanceof Error ? error.message || error.name : String(error), key)
    logger.error(
      `${name}: the cache failed to ${what} (${reason}); ` +
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
      const probe = cacheKey('.health')
      try {
        await store.get(probe)
        await store.set(probe, probeValue, 60)
        await store.delete(probe)
        return true
      } catch {
        retryAt = settings.now() + retryMs
        return false
      }
    }
    // Reset in a reaction, never synchronously: `checking` must not outlive the check.
    checking = run()
      .then(async (healthy) => {
        if (!healthy || !down || stopped) return
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
    if (timer !== null || stopped || (!down && stale.size === 0)) return
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
        if (stopped) return
        if (!stale.has(key)) continue
        if ((await attempt('delete', key, () => store.delete(cacheKey(key)))) === SKIPPED) return
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

  async function remove(key: string): Promise<void> {
    const done = await attempt('delete', key, () => store.delete(cacheKey(key)))
    if (done === SKIPPED) markStale(key)
    else stale.delete(key)
  }

  return {
    get staleKeys() {
      return stale.size
    },

    async get(key) {
      if (!trusted(key)) return null
      const hit = await attempt('read', key, () => store.get(cacheKey(key)))
      return hit === SKIPPED ? null : hit
    },

    async has(key) {
      if (!trusted(key)) return false
      return (await attempt('read', key, () => store.has(cacheKey(key)))) === true
    },

    async set(key, value, ttl) {
      if (ttl > longestTtl) longestTtl = ttl
      if (!available()) return markStale(key)
      try {
        await store.set(cacheKey(key), value, ttl)
        stale.delete(key)
        return
      } catch (error) {
        failed(error, 'write', key)
      }
      // A full Redis refuses SET but accepts DEL: delete the older value, whatever the state.
      try {
        await store.delete(cacheKey(key))
        stale.delete(key)
      } catch {
        markStale(key)
      }
    },

    delete: remove,

    async settle(key) {
      if (stale.has(key)) await remove(key)
    },

    async repairStale() {
      if (down) await (settings.now() >= retryAt ? check() : checking)
      if (!down) await repair()
    },

    failed(error, what) {
      if (!stopped) failed(error, what, null)
    },

    stop() {
      stopped = true
      if (timer !== null) clearTimeout(timer)
      timer = null
    },
  }
}
