/**
 * The cached_db engine beyond the conformance suite (which runs in conformance.test.ts):
 * Django's CacheDBSessionTests, Django's order of operations counted call by call, the
 * round trips of a hit, a miss and a save, and what a cache that is down, full or flapping
 * does — never a failed request the database can serve, one log line per outage, and no
 * stale copy of a logged-out session served from the cache.
 *
 * Each case runs on SQLite + the in-process cache, and on PostgreSQL + Redis when both
 * answer (skipped with a notice otherwise; under CI their absence fails the file).
 */
import { after, describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import net from 'node:net'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import {
  createCodec,
  createSessions,
  resolveSettings,
  SessionInterrupted,
  type Engine,
  type Session,
  type Sessions,
  type Settings,
} from 'sessionkit'
import { capturingLogger, manualClock, type ManualClock } from 'sessionkit/testing'
import type { SessionCache } from '../../src/caches/cache.ts'
import { memoryCache } from '../../src/caches/memory.ts'
import { redisCache, redisCacheFromUrl } from '../../src/caches/redis.ts'
import { openSqlite } from '../../src/drivers/sqlite.ts'
import { postgresDriver } from '../../src/drivers/postgres.ts'
import { sqlEngine } from '../../src/engines/db.ts'
import type { SqlDriver } from '../../src/drivers/sql.ts'
import {
  CACHED_DB_KEY_PREFIX,
  CACHED_DB_RETRY_MS,
  cachedDbOver,
  type CachedDbEngine,
  type CachedDbTuning,
} from '../../src/engines/cached-db.ts'
import { deleteTestKeys, REDIS_HOST, REDIS_PORT, REDIS_URL, redisAvailable, uniquePrefix } from '../helpers/redis.ts'
import { postgresAvailable, postgresScratch, type PostgresScratch } from '../helpers/databases.ts'

const SECRET = 'sessionkit-cached-db-tests-secret-0123456789'
const T0 = 1_700_000_000_000
const AGE = 1209600

// ---------------------------------------------------------------------------- the services

const redisSkip = await redisAvailable()
const pgSkip = await postgresAvailable()
const ioredis = redisSkip ? undefined : new Redis(REDIS_URL, { lazyConnect: true })
if (ioredis) await ioredis.connect()
const scratch: PostgresScratch | undefined = pgSkip ? undefined : await postgresScratch('cached_db')
if (scratch) await postgresDriver(scratch.pool).migrate()
after(async () => {
  if (ioredis) await deleteTestKeys(ioredis)
  await ioredis?.quit()
  await scratch?.drop()
})

// ---------------------------------------------------------------------------- probes

type CacheMethod = 'get' | 'set' | 'add' | 'replace' | 'delete' | 'has'
const CACHE_METHODS: readonly CacheMethod[] = ['get', 'set', 'add', 'replace', 'delete', 'has']
const DRIVER_METHODS = ['load', 'insert', 'update', 'delete', 'exists', 'clearExpiredBatch'] as const

/** A cache that records its calls in `log` and throws from the methods in `failing`. */
interface FaultyCache extends SessionCache {
  readonly inner: SessionCache
  readonly failing: Set<CacheMethod>
  /** The message of the errors it throws; gets the method and its key. */
  message: (method: string, key: string) => string
  /** When set, awaited before each call (to hold one in flight). */
  gate: ((method: CacheMethod, key: string) => Promise<void> | undefined) | null
  closed: number
}

function faultyCache(inner: SessionCache, log: string[]): FaultyCache {
  const failing = new Set<CacheMethod>()
  const cache = {
    name: inner.name,
    inner,
    failing,
    message: (method: string) => `Faked exception in cache ${method}`,
    gate: null,
    closed: 0,
    async close() {
      cache.closed++
    },
  } as unknown as FaultyCache
  for (const method of CACHE_METHODS) {
    ;(cache as unknown as Record<string, unknown>)[method] = async (key: string, ...rest: unknown[]) => {
      log.push(`cache.${method}`)
      await cache.gate?.(method, key)
      if (failing.has(method)) throw new Error(cache.message(method, key))
      return (inner[method] as (...a: unknown[]) => Promise<unknown>)(key, ...rest)
    }
  }
  return cache
}

/** `driver` with every storage call recorded in `log` as `db.<method>`. */
function recordingDriver(driver: SqlDriver, log: string[]): SqlDriver {
  return new Proxy(driver, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function' || !(DRIVER_METHODS as readonly (string | symbol)[]).includes(property)) return value
      return (...args: unknown[]) => {
        log.push(`db.${String(property)}`)
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
}

// ---------------------------------------------------------------------------- the variants

interface Variant {
  label: string
  skip: string | false
  name: string
  /** A database of its own; `connect()` opens one more driver on it (another process). */
  database(): { connect(): SqlDriver }
  cache(clock: ManualClock): SessionCache
}

const dir = mkdtempSync(path.join(tmpdir(), 'sessionkit-cached-db-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

const variants: Variant[] = [
  {
    label: 'SQLite + in-process cache',
    skip: false,
    name: 'cached_db:sqlite+memory',
    database() {
      const file = path.join(dir, `db-${files++}.sqlite3`)
      return { connect: () => openSqlite(file) }
    },
    cache: (clock) => memoryCache({ now: clock }),
  },
  {
    label: 'PostgreSQL + Redis',
    skip: pgSkip || redisSkip,
    name: 'cached_db:postgresql+redis',
    database: () => ({ connect: () => postgresDriver(scratch!.pool) }),
    cache: () => redisCache(ioredis!, { prefix: uniquePrefix('cached-db') }),
  },
]

interface Setup {
  engine: CachedDbEngine
  sessions: Sessions
  cache: FaultyCache
  /** Every cache and database call, in order. */
  log: string[]
  clock: ManualClock
  logger: ReturnType<typeof capturingLogger>
  settings: Readonly<Settings>
  /** A session saved with `data`; the log is cleared after. */
  saved(data: Record<string, unknown>): Promise<string>
  /** The data a fresh session loads under `key` (`null`: no session). */
  load(key: string): Promise<Record<string, unknown> | null>
  /** The session_data of the row, straight from the database. */
  row(key: string): Promise<string | null>
}

/** What two "processes" share: the cache, the database and (for the test) the clock. */
interface Shared {
  cache: SessionCache
  clock: ManualClock
  database: { connect(): SqlDriver }
}

function share(variant: Variant): Shared {
  const clock = manualClock(T0)
  return { clock, cache: variant.cache(clock), database: variant.database() }
}

function open(t: TestContext, variant: Variant, extra: Partial<Settings> = {}, tuning: CachedDbTuning = {}, shared: Shared = share(variant)): Setup {
  const { clock } = shared
  const logger = capturingLogger()
  const log: string[] = []
  const cache = faultyCache(shared.cache, log)
  const base = { secretKey: SECRET, now: clock, logger, ...extra }
  const settings = resolveSettings({ ...base, engine: 'cached_db' })
  const context = { settings, codec: createCodec(settings) }
  const rawDriver = shared.database.connect()
  const engine = cachedDbOver(sqlEngine(recordingDriver(rawDriver, log), context), { cache, owned: false }, context, tuning)
  const sessions = createSessions({ ...base, engine: () => engine })
  t.after(() => sessions.close())
  return {
    engine,
    sessions,
    cache,
    log,
    clock,
    logger,
    settings,
    async saved(data) {
      const s = sessions.session()
      s.update(data)
      await s.save()
      log.length = 0
      return s.sessionKey!
    },
    async load(key) {
      const s = sessions.session(key)
      await s.load()
      return s.sessionKey === null ? null : Object.fromEntries(s.entries())
    },
    async row(key) {
      return rawDriver.load(key, new Date(clock()))
    },
  }
}

/** One request through the middleware core: `handler` runs on the loaded session; the cookie comes back. */
async function request(sessions: Sessions, cookie: string | undefined, handler: (session: Session) => void): Promise<string | undefined> {
  const state = await sessions.start(cookie === undefined ? undefined : `sessionid=${cookie}`)
  handler(state.session)
  const { setCookie } = await sessions.finish(state, 200)
  return setCookie ? /^sessionid=([^;]*)/.exec(setCookie)?.[1] : cookie
}

// ---------------------------------------------------------------------------- Django's order and round trips

for (const variant of variants) {
  describe(`cached_db on ${variant.label}: Django's order, one round trip per step`, { skip: variant.skip }, () => {
    it(`is named ${variant.name}`, (t) => {
      assert.equal(open(t, variant).engine.name, variant.name)
    })

    it('a cache hit is one round trip, to the cache; the database is not touched', async (t) => {
      const { saved, load, log } = open(t, variant)
      const key = await saved({ user: 42 })
      assert.deepEqual(await load(key), { user: 42 })
      assert.deepEqual(log, ['cache.get'])
    })

    it('a miss reads the cache, then the database, then fills the cache with the time the row has left', async (t) => {
      const { saved, load, log, cache, clock, engine } = open(t, variant)
      const key = await saved({ user: 42 })
      await cache.inner.delete(CACHED_DB_KEY_PREFIX + key) // evicted
      clock.advance(100)
      const ttls: number[] = []
      const set = cache.inner.set.bind(cache.inner)
      cache.inner.set = (k, v, ttl) => (ttls.push(ttl), set(k, v, ttl))
      assert.deepEqual(await load(key), { user: 42 })
      assert.deepEqual(log, ['cache.get', 'db.load', 'cache.set'])
      assert.deepEqual(ttls, [AGE - 100], 'TTL = seconds until expire_date')
      log.length = 0
      assert.deepEqual(Object.fromEntries((await engine.load(key))?.data ?? []), { user: 42 })
      assert.deepEqual(log, ['cache.get'], 'the next load hits')
    })

    it('a miss on a session with a fixed expiry date fills the cache until that date', async (t) => {
      const { sessions, load, log, cache, clock } = open(t, variant)
      const s = sessions.session()
      s.set('a', 1)
      s.setExpiry(new Date(clock() + 3600_000))
      await s.save()
      await cache.inner.delete(CACHED_DB_KEY_PREFIX + s.sessionKey!)
      clock.advance(600)
      const ttls: number[] = []
      const set = cache.inner.set.bind(cache.inner)
      cache.inner.set = (k, v, ttl) => (ttls.push(ttl), set(k, v, ttl))
      log.length = 0
      assert.deepEqual(await load(s.sessionKey!), { a: 1, _session_expiry: s.get('_session_expiry') })
      assert.deepEqual(ttls, [3000])
    })

    it('a fresh load reads the database past the cache, and refills the cache from it', async (t) => {
      const { saved, engine, log } = open(t, variant)
      const key = await saved({ user: 42 })
      assert.deepEqual(Object.fromEntries((await engine.load(key, { fresh: true }))?.data ?? []), { user: 42 })
      assert.deepEqual(log, ['db.load', 'cache.set'])
    })

    it('a save writes the database first, then the cache: one round trip each', async (t) => {
      const { sessions, log } = open(t, variant)
      const s = sessions.session()
      s.set('n', 1)
      await s.save()
      assert.deepEqual(log, ['db.insert', 'cache.set'], 'create')
      log.length = 0
      s.set('n', 2)
      await s.save()
      assert.deepEqual(log, ['db.update', 'cache.set'], 'update')
    })

    it('the cache holds the same text as the row, under django.contrib.sessions.cached_db<key>', async (t) => {
      const { saved, cache, row } = open(t, variant)
      const key = await saved({ user: 42 })
      const stored = await cache.inner.get(CACHED_DB_KEY_PREFIX + key)
      assert.ok(stored)
      assert.equal(stored, await row(key))
      assert.equal(await cache.inner.get(key), null, 'nothing under the bare key (CVE-2011-4136)')
    })

    it('a value planted in the cache is not a session: the database decides, and its row replaces the entry', async (t) => {
      const { load, cache, saved, logger } = open(t, variant)
      const forged = 'eyJfYXV0aF91c2VyX2lkIjoiMSJ9:1r31eq:forged' // {"_auth_user_id":"1"}, badly signed
      const planted = 'plantedkey0000000000000000000001'
      await cache.inner.set(CACHED_DB_KEY_PREFIX + planted, forged, 60)
      assert.equal(await load(planted), null, 'no row: no session')
      const key = await saved({ user: 'alice' })
      await cache.inner.set(CACHED_DB_KEY_PREFIX + key, forged, 60)
      assert.deepEqual(await load(key), { user: 'alice' }, 'the row, not the planted value')
      assert.notEqual(await cache.inner.get(CACHED_DB_KEY_PREFIX + key), forged, 'the entry is replaced')
      assert.ok(logger.warnings.some((w) => /Session data corrupted/.test(w)), 'and reported')
    })

    it('CreateError comes from the database, and the cache is not written', async (t) => {
      const { saved, engine, log } = open(t, variant)
      const key = await saved({ user: 1 })
      await assert.rejects(engine.save(key, new Map([['user', 2]]), { mustCreate: true, expireDate: new Date(T0 + AGE * 1000), expiryAge: AGE }), { code: 'ERR_SESSION_CREATE' })
      assert.deepEqual(log, ['db.insert'])
    })

    it('delete removes the row, then the cache entry', async (t) => {
      const { saved, engine, log, cache, load } = open(t, variant)
      const key = await saved({ user: 1 })
      await engine.delete(key)
      assert.deepEqual(log, ['db.delete', 'cache.delete'])
      assert.equal(await cache.inner.get(CACHED_DB_KEY_PREFIX + key), null)
      assert.equal(await load(key), null)
    })

    it('test_exists_searches_cache_first: exists of a cached session asks the cache only', async (t) => {
      const { saved, engine, log, cache } = open(t, variant)
      const key = await saved({ user: 1 })
      assert.equal(await engine.exists(key), true)
      assert.deepEqual(log, ['cache.has'])
      await cache.inner.delete(CACHED_DB_KEY_PREFIX + key)
      log.length = 0
      assert.equal(await engine.exists(key), true, 'evicted: the database still has it')
      assert.deepEqual(log, ['cache.has', 'db.exists'])
    })

    it('test_load_overlong_key: a 1240-character key loads nothing and touches no store', async (t) => {
      const { sessions, engine, log } = open(t, variant)
      const key = ('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ' + '0123456789').repeat(20)
      assert.equal(key.length, 1240)
      const s = sessions.session(key)
      await s.load()
      assert.equal(s.sessionKey, null)
      assert.deepEqual(s.entries(), [])
      assert.equal(await engine.load(key), null)
      assert.deepEqual(log, [])
    })

    it('test_cache_set_failure_non_fatal: a cache that throws on set does not fail the save; one error is logged', async (t) => {
      const { sessions, cache, logger, row, load, settings } = open(t, variant)
      cache.failing.add('set')
      const s = sessions.session()
      s.set('foo', 'bar')
      await s.save()
      const key = s.sessionKey!
      assert.ok(await row(key), 'the row is written')
      assert.equal(logger.errors.length, 1)
      assert.match(logger.errors[0]!, /Faked exception in cache set/)
      assert.ok(logger.errors[0]!.includes(variant.name))
      assert.deepEqual(await load(key), { foo: 'bar' }, 'served from the database')
      assert.equal(settings.logger, logger)
    })

    it('never logs a session key, even when the cache error quotes it', async (t) => {
      const { sessions, cache, logger } = open(t, variant)
      cache.failing.add('set')
      cache.message = (method, key) => `cannot ${method} ${key}`
      const s = sessions.session()
      s.set('foo', 'bar')
      await s.save()
      assert.equal(logger.errors.length, 1)
      assert.ok(!logger.errors[0]!.includes(s.sessionKey!), logger.errors[0])
      assert.match(logger.errors[0]!, /<session key>/)
    })

    it('a full cache (SET refused, DEL accepted): the older cached value is deleted, so no process reads it', async (t) => {
      const shared = share(variant)
      const one = open(t, variant, {}, {}, shared)
      const other = open(t, variant, {}, {}, shared) // another process on the same cache and database
      const key = await one.saved({ n: 1 })
      assert.deepEqual(await other.load(key), { n: 1 })
      one.cache.failing.add('set')
      const s = one.sessions.session(key)
      await s.load()
      s.set('n', 2)
      await s.save()
      assert.equal(await shared.cache.get(CACHED_DB_KEY_PREFIX + key), null, 'the older entry is gone')
      assert.equal(one.engine.staleKeys, 0, 'nothing left to repair')
      assert.deepEqual(await other.load(key), { n: 2 })
    })

    it('a row deleted elsewhere keeps loading from the cache until its TTL (Django); its next save is a 400 and drops the cache entry', async (t) => {
      const { saved, sessions, engine, load, cache } = open(t, variant)
      const key = await saved({ user: 1 })
      await engine.db.driver.delete(key) // an admin, clearsessions on another server, …
      assert.deepEqual(await load(key), { user: 1 }, 'served from the cache, as Django does')
      await assert.rejects(
        request(sessions, key, (s) => s.set('user', 2)),
        SessionInterrupted,
      )
      assert.equal(await cache.inner.get(CACHED_DB_KEY_PREFIX + key), null, 'the cache entry went with the failed update')
      assert.equal(await load(key), null, 'logged out from then on')
    })

    it('clearExpired deletes expired rows from the database (cache entries expire by their TTL)', async (t) => {
      const { sessions, engine, log } = open(t, variant)
      const live = sessions.session()
      live.set('a', 1)
      await live.save()
      const dead = sessions.session()
      dead.set('b', 2)
      dead.setExpiry(-3600)
      await dead.save()
      log.length = 0
      const cleared = await engine.clearExpired()
      assert.ok(cleared !== null && cleared >= 1)
      assert.deepEqual([...new Set(log)], ['db.clearExpiredBatch'])
      assert.equal(await engine.exists(live.sessionKey!), true)
      assert.equal(await engine.db.driver.exists(dead.sessionKey!), false)
    })
  })
}

// ---------------------------------------------------------------------------- outages

for (const variant of variants) {
  describe(`cached_db on ${variant.label}: a cache that is down never fails a request the database can serve`, { skip: variant.skip }, () => {
    it('a cache down for 100 requests: 0 failures, one error logged, the cache left alone; recovery logged once', async (t) => {
      const { sessions, cache, logger, log, clock, engine } = open(t, variant)
      let cookie = await request(sessions, undefined, (s) => s.set('n', 0))
      assert.ok(cookie)
      for (const method of CACHE_METHODS) cache.failing.add(method)
      log.length = 0
      for (let i = 1; i <= 100; i++) {
        cookie = await request(sessions, cookie, (s) => {
          assert.equal(s.get('n'), i - 1, `request ${i} sees the previous save`)
          s.set('n', i)
        })
      }
      assert.equal(logger.errors.length, 1, logger.errors.join('\n'))
      assert.match(logger.errors[0]!, /the cache failed to read \(Faked exception in cache get\); sessions are read from and written to the database alone/)
      assert.equal(logger.warnings.length, 0)
      const cacheCalls = log.filter((c) => c.startsWith('cache.')).length
      assert.ok(cacheCalls <= 3, `a failing cache is not tried on every request (${cacheCalls} calls)`)
      assert.equal(log.filter((c) => c === 'db.load').length, 100, 'every load went to the database')

      // The cache answers again (and still holds n = 0 from before the outage).
      cache.failing.clear()
      clock.advance(CACHED_DB_RETRY_MS / 1000)
      cookie = await request(sessions, cookie, (s) => {
        assert.equal(s.get('n'), 100, 'the stale n = 0 in the cache is never served')
        s.set('n', 101)
      })
      await engine.repairStale()
      assert.equal(logger.errors.length, 1)
      assert.equal(logger.warnings.length, 1, logger.warnings.join('\n'))
      assert.match(logger.warnings[0]!, /the cache answers again/)
      assert.equal(engine.staleKeys, 0)
      await request(sessions, cookie, (s) => assert.equal(s.get('n'), 101)) // refills the cache
      log.length = 0
      await request(sessions, cookie, (s) => assert.equal(s.get('n'), 101))
      assert.deepEqual(log, ['cache.get'], 'back to one cache round trip per load')
    })

    it('a logout while the cache cannot delete never leaves a live copy: this process skips it, and it is deleted on recovery', async (t) => {
      const shared = share(variant)
      const one = open(t, variant, {}, {}, shared)
      const other = open(t, variant, {}, {}, shared) // another process on the same cache and database
      const key = await one.saved({ _auth_user_id: '7' })
      one.cache.failing.add('delete')
      one.cache.failing.add('set')
      const s = one.sessions.session(key)
      await s.load()
      await s.flush() // logout
      assert.equal(await one.row(key), null, 'the row is gone')
      assert.ok(await shared.cache.get(CACHED_DB_KEY_PREFIX + key), 'the cache still holds the session')
      assert.equal(one.engine.staleKeys, 1)
      assert.equal(await one.load(key), null, 'this process does not read it from the cache')
      assert.equal(await one.engine.exists(key), false)
      // Documented limit: another process reads the stale entry until this one repairs it.
      assert.deepEqual(await other.load(key), { _auth_user_id: '7' })
      // The cache recovers; the next request, or the retry timer, deletes the entry.
      one.cache.failing.clear()
      shared.clock.advance(CACHED_DB_RETRY_MS / 1000)
      await one.engine.repairStale()
      assert.equal(one.engine.staleKeys, 0)
      assert.equal(await shared.cache.get(CACHED_DB_KEY_PREFIX + key), null)
      assert.equal(await other.load(key), null, 'no process can read it any more')
      assert.equal(one.logger.errors.length, 1)
      assert.equal(one.logger.warnings.length, 1)
    })

    it('while the stale entries are being deleted after an outage, those not deleted yet are read from the database', async (t) => {
      const shared = share(variant)
      const one = open(t, variant, {}, {}, shared)
      const a = await one.saved({ n: 1 })
      const b = await one.saved({ n: 1 })
      one.cache.failing.add('set')
      one.cache.failing.add('delete')
      for (const key of [a, b]) {
        const s = one.sessions.session(key)
        await s.load()
        s.set('n', 2)
        await s.save()
      }
      assert.equal(one.engine.staleKeys, 2)
      assert.ok(await shared.cache.get(CACHED_DB_KEY_PREFIX + b), 'the cache still holds n = 1')
      one.cache.failing.clear()
      // Hold the repair on its first key.
      let reached!: () => void
      let release!: () => void
      const held = new Promise<void>((resolve) => (reached = resolve))
      const gate = new Promise<void>((resolve) => (release = resolve))
      one.cache.gate = (method, key) => (method === 'delete' && key === CACHED_DB_KEY_PREFIX + a ? (reached(), gate) : undefined)
      shared.clock.advance(CACHED_DB_RETRY_MS / 1000)
      const repairing = one.engine.repairStale()
      await held
      assert.equal(one.logger.warnings.length, 1, 'the outage is over')
      assert.deepEqual(await one.load(b), { n: 2 }, 'b, not repaired yet, comes from the database')
      release()
      await repairing
      assert.equal(one.engine.staleKeys, 0)
      assert.equal(await shared.cache.get(CACHED_DB_KEY_PREFIX + a), null)
    })

    it('every outage is repaired, not only the first', async (t) => {
      const shared = share(variant)
      const one = open(t, variant, {}, {}, shared)
      for (let round = 1; round <= 3; round++) {
        const key = await one.saved({ round })
        one.cache.failing.add('delete')
        await one.engine.delete(key)
        assert.equal(one.engine.staleKeys, 1)
        one.cache.failing.clear()
        shared.clock.advance(CACHED_DB_RETRY_MS / 1000)
        await one.engine.repairStale()
        assert.equal(one.engine.staleKeys, 0, `round ${round}`)
        assert.equal(await shared.cache.get(CACHED_DB_KEY_PREFIX + key), null, `round ${round}`)
        await one.engine.repairStale() // nothing left: a no-op that must not wedge the next round
      }
      assert.equal(one.logger.errors.length, 3)
      assert.equal(one.logger.warnings.length, 3)
    })

    it('the retry timer removes stale entries without waiting for traffic', async (t) => {
      const shared = share(variant)
      const one = open(t, variant, {}, { retryMs: 20 }, shared)
      const key = await one.saved({ user: 1 })
      one.cache.failing.add('delete')
      await one.engine.delete(key)
      assert.equal(one.engine.staleKeys, 1)
      one.cache.failing.clear()
      shared.clock.advance(1)
      for (let i = 0; i < 100 && one.engine.staleKeys > 0; i++) await sleep(10)
      assert.equal(one.engine.staleKeys, 0)
      assert.equal(await shared.cache.get(CACHED_DB_KEY_PREFIX + key), null)
    })

    it('past maxStaleKeys, the cache is not read at all until every entry that may be stale has expired', async (t) => {
      const { saved, engine, cache, logger, log, clock, load } = open(t, variant, { cookieAge: 600 }, { maxStaleKeys: 2 })
      const keys = [await saved({ i: 0 }), await saved({ i: 1 }), await saved({ i: 2 }), await saved({ i: 3 })]
      cache.failing.add('delete')
      for (const key of keys.slice(0, 3)) await engine.delete(key)
      assert.equal(engine.staleKeys, 2)
      assert.equal(logger.errors.length, 2, 'the outage, then the overflow')
      assert.match(logger.errors[1]!, /more than 2 cache entries may be stale; the cache is not read until/)
      cache.failing.clear()
      clock.advance(1)
      await engine.repairStale()
      log.length = 0
      assert.equal(await load(keys[2]!), null, 'the untracked stale entry is not served')
      assert.deepEqual(await load(keys[3]!), { i: 3 })
      assert.deepEqual(log.filter((c) => c === 'cache.get'), [], 'no cache reads')
      clock.advance(600)
      log.length = 0
      await engine.load(keys[3]!)
      assert.equal(log[0], 'cache.get', 'after the longest TTL the cache is read again')
    })

    it('a cache that fails only on get serves every load from the database and logs once', async (t) => {
      const { saved, cache, logger, load, log } = open(t, variant)
      const key = await saved({ user: 1 })
      cache.failing.add('get')
      for (let i = 0; i < 20; i++) assert.deepEqual(await load(key), { user: 1 })
      assert.equal(logger.errors.length, 1)
      assert.equal(log.filter((c) => c === 'db.load').length, 20)
    })

    it('a cache failing on set and answering get does not flap: one error, no recovery logged while set still fails', async (t) => {
      const { sessions, saved, cache, logger, clock } = open(t, variant)
      const key = await saved({ n: 0 })
      cache.failing.add('set')
      for (let i = 1; i <= 10; i++) {
        clock.advance(CACHED_DB_RETRY_MS / 1000) // every request is a retry
        await request(sessions, key, (s) => s.set('n', i))
      }
      assert.equal(logger.errors.length, 1)
      assert.equal(logger.warnings.length, 0)
    })
  })
}

// ---------------------------------------------------------------------------- through the registry

describe('cached_db through settings', () => {
  it('engine "cached_db" opens synchronously on SQLite with the in-process cache', async (t) => {
    const sessions = createSessions({ secretKey: SECRET, engine: 'cached_db', databaseUrl: 'sqlite::memory:', logger: capturingLogger() })
    t.after(() => sessions.close())
    assert.equal(sessions.engine?.name, 'cached_db:sqlite+memory')
    const s = sessions.session()
    s.set('a', 1)
    await s.save()
    const again = sessions.session(s.sessionKey)
    await again.load()
    assert.equal(again.get('a'), 1)
  })

  it('test_non_default_cache: a cacheAlias missing from caches is ImproperlyConfigured', () => {
    assert.throws(() => createSessions({ secretKey: SECRET, engine: 'cached_db', databaseUrl: 'sqlite::memory:', cacheAlias: 'sessions' }), {
      code: 'ERR_IMPROPERLY_CONFIGURED',
      message: /cacheAlias "sessions"/,
    })
  })

  it('close() closes the database, and the cache only if the engine made it', async () => {
    const log: string[] = []
    const cache = faultyCache(memoryCache(), log)
    const settings = resolveSettings({ secretKey: SECRET, engine: 'cached_db', caches: { default: cache } })
    const context = { settings, codec: createCodec(settings) }
    const driver = openSqlite(':memory:')
    await cachedDbOver(sqlEngine(driver, context), { cache, owned: false }, context).close()
    assert.equal(cache.closed, 0, 'a cache passed in stays open')
    assert.equal(driver.database.open, false, 'the database is closed')
    const owned = openSqlite(':memory:')
    const engine = cachedDbOver(sqlEngine(owned, context), { cache, owned: true }, context)
    await Promise.all([engine.close(), engine.close()])
    assert.equal(cache.closed, 1, 'a cache the engine made is closed, once')
  })

  it('a redisUrl that refuses connections does not stop the app: sessions are served from the database, one error logged without the password', async (t) => {
    const logger = capturingLogger()
    const sessions = createSessions({
      secretKey: SECRET,
      engine: 'cached_db',
      databaseUrl: 'sqlite::memory:',
      redisUrl: 'redis://:hunter2@127.0.0.1:1/0',
      logger,
    })
    t.after(() => sessions.close())
    const engine = (await sessions.ready()) as Engine
    assert.equal(engine.name, 'cached_db:sqlite+redis')
    let cookie: string | undefined
    for (let i = 0; i < 5; i++) {
      cookie = await request(sessions, cookie, (s) => {
        assert.equal(s.get('n'), i === 0 ? undefined : i - 1)
        s.set('n', i)
      })
    }
    for (let i = 0; i < 40 && logger.errors.length === 0; i++) await sleep(50)
    await sleep(2200) // the start-up check's own timeout (2 s) passes too: still one line
    assert.equal(logger.errors.length, 1, logger.errors.join('\n'))
    assert.ok(!logger.errors[0]!.includes('hunter2'), logger.errors[0])
    assert.match(logger.errors[0]!, /cached_db:sqlite\+redis: the cache failed to/)
  })

  it('with redisUrl, keys are exactly Django’s django.contrib.sessions.cached_db<key>', { skip: redisSkip }, async (t) => {
    const sessions = createSessions({ secretKey: SECRET, engine: 'cached_db', databaseUrl: 'sqlite::memory:', redisUrl: REDIS_URL, logger: capturingLogger() })
    t.after(() => sessions.close())
    await sessions.ready()
    const s = sessions.session()
    s.set('a', 1)
    await s.save()
    const key = s.sessionKey!
    t.after(() => ioredis!.del(CACHED_DB_KEY_PREFIX + key))
    assert.ok(await ioredis!.get(CACHED_DB_KEY_PREFIX + key))
    const ttl = await ioredis!.ttl(CACHED_DB_KEY_PREFIX + key)
    assert.ok(ttl > AGE - 5 && ttl <= AGE, `TTL ${ttl}`)
  })
})

// ---------------------------------------------------------------------------- a real Redis going away

/** A TCP proxy to the test Redis that can be cut and restored on the same port. */
async function redisProxy(): Promise<{ port: number; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const make = () =>
    net.createServer((client) => {
      const upstream = net.connect(REDIS_PORT, REDIS_HOST)
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on('error', () => undefined)
        s.on('close', () => sockets.delete(s))
      }
      client.pipe(upstream).pipe(client)
    })
  let server = make()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  const cut = async () => {
    const closed = new Promise((resolve) => server.close(resolve))
    for (const s of sockets) s.destroy()
    await closed
  }
  return {
    port,
    cut,
    async restore() {
      server = make()
      server.listen(port, '127.0.0.1')
      await once(server, 'listening')
    },
    close: () => (server.listening ? cut() : Promise.resolve()),
  }
}

describe('cached_db on PostgreSQL + a Redis that goes away', { skip: pgSkip || redisSkip, timeout: 30_000 }, () => {
  it('engine "cached_db" from databaseUrl postgres://… and redisUrl opens asynchronously, named cached_db:postgresql+redis', async (t) => {
    const sessions = createSessions({ secretKey: SECRET, engine: 'cached_db', databaseUrl: scratch!.url, redisUrl: REDIS_URL, logger: capturingLogger() })
    t.after(() => sessions.close())
    assert.equal(sessions.engine, null, 'opening')
    const engine = await sessions.ready()
    assert.equal(engine.name, 'cached_db:postgresql+redis')
    const cookie = await request(sessions, undefined, (s) => s.set('a', 1))
    t.after(() => ioredis!.del(CACHED_DB_KEY_PREFIX + cookie!))
    assert.ok(await ioredis!.get(CACHED_DB_KEY_PREFIX + cookie!))
    await request(sessions, cookie, (s) => assert.equal(s.get('a'), 1))
  })

  it('Redis cut for 100 requests: 0 failures, one error; restored: recovery logged, the cache used again', async (t) => {
    const proxy = await redisProxy()
    t.after(() => proxy.close())
    const cache = redisCacheFromUrl(`redis://127.0.0.1:${proxy.port}`, { prefix: uniquePrefix('cached-db-outage'), timeoutMs: 500 })
    await cache.ready!()
    const logger = capturingLogger()
    const settings = resolveSettings({ secretKey: SECRET, engine: 'cached_db', logger })
    const context = { settings, codec: createCodec(settings) }
    const log: string[] = []
    const engine = cachedDbOver(sqlEngine(recordingDriver(postgresDriver(scratch!.pool), log), context), { cache, owned: true }, context, { retryMs: 100 })
    const sessions = createSessions({ secretKey: SECRET, logger, engine: () => engine })
    t.after(() => sessions.close())

    let cookie = await request(sessions, undefined, (s) => s.set('n', 0))
    await proxy.cut()
    const started = Date.now()
    for (let i = 1; i <= 100; i++) {
      cookie = await request(sessions, cookie, (s) => {
        assert.equal(s.get('n'), i - 1)
        s.set('n', i)
      })
    }
    assert.equal(logger.errors.length, 1, logger.errors.join('\n'))
    assert.ok(Date.now() - started < 10_000, 'a dead cache does not cost its timeout on every request')

    await proxy.restore()
    for (let i = 0; i < 100 && logger.warnings.length === 0; i++) await sleep(50)
    assert.equal(logger.warnings.length, 1, 'recovery logged')
    await engine.repairStale()
    assert.equal(engine.staleKeys, 0)
    await request(sessions, cookie, (s) => assert.equal(s.get('n'), 100))
    log.length = 0
    await request(sessions, cookie, (s) => assert.equal(s.get('n'), 100))
    assert.deepEqual(log, [], 'served from the cache again')
    assert.equal(logger.errors.length, 1)
  })
})
