/**
 * Django's SessionTestsMixin, run against every engine available in this build.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after } from 'node:test'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import { createSessions } from 'sessionkit'
import { describeEngine } from 'sessionkit/testing'
import { memoryCache } from '../../src/caches/memory.ts'
import { redisCache } from '../../src/caches/redis.ts'
import { deleteTestKeys, REDIS_URL, redisAvailable, uniquePrefix } from '../helpers/redis.ts'
import { sqlEngine } from '../../src/engines/db.ts'
import { postgresDriver } from '../../src/drivers/postgres.ts'
import { mysqlDriver } from '../../src/drivers/mysql.ts'
import { mysqlAvailable, mysqlScratch, postgresAvailable, postgresScratch } from '../helpers/databases.ts'
import { cachedDbOver } from '../../src/engines/cached-db.ts'
import { memcachedCache } from '../../src/caches/memcached.ts'
import { memcachedAvailable, startMemcached } from '../helpers/memcached.ts'

// Every service this file uses is probed and set up first, before any suite is registered: a
// top-level await between two suites lets the runner finish the first ones and run the file's
// `after` hooks (removing `dir`) while later suites are still to come.
const dir = mkdtempSync(path.join(tmpdir(), 'sessionkit-conformance-'))
let n = 0

// The Redis clients belong to this file, not to the sessions: the suite's close() leaves them open.
const redisSkip = await redisAvailable()
const ioredis = redisSkip ? undefined : new Redis(REDIS_URL, { lazyConnect: true })
const nodeRedis = redisSkip ? undefined : createClient({ url: REDIS_URL })
if (ioredis && nodeRedis) {
  nodeRedis.on('error', () => undefined)
  await Promise.all([ioredis.connect(), nodeRedis.connect()])
}

// PostgreSQL and MariaDB: one scratch schema (database) for the file, dropped at the end, and
// the engine on a pool passed in. (The suite keeps every case's sessions open until it ends:
// a pool per case from databaseUrl would hold a connection per case; test/drivers/postgres.test.ts
// and test/drivers/mysql.test.ts cover databaseUrl.)
const pgSkip = await postgresAvailable()
const pgScratch = pgSkip ? undefined : await postgresScratch('conformance')
const mysqlSkip = await mysqlAvailable()
const mysqlDb = mysqlSkip ? undefined : await mysqlScratch('conformance')
const cachedDbSkip = pgSkip || redisSkip
const cachedDbScratch = cachedDbSkip ? undefined : await postgresScratch('conformance_cached_db')
// Memcached: two servers of this file's own (stopped when it ends).
const memcachedSkip = memcachedAvailable()
const memcachedServers = memcachedSkip ? [] : (await startMemcached(2)).map((m) => m.location)

after(async () => {
  if (ioredis) await deleteTestKeys(ioredis)
  await Promise.all([ioredis?.quit(), nodeRedis?.close(), pgScratch?.drop(), mysqlDb?.drop(), cachedDbScratch?.drop()])
  rmSync(dir, { recursive: true, force: true })
})

describeEngine('db on SQLite', (settings) =>
  createSessions({ ...settings, engine: 'db', databaseUrl: `sqlite:${path.join(dir, `db-${n++}.sqlite3`)}` }),
)

describeEngine('db on SQLite in memory', (settings) => createSessions({ ...settings, engine: 'db', databaseUrl: 'sqlite::memory:' }))

describeEngine('signed_cookies', (settings) => createSessions({ ...settings, engine: 'signed_cookies' }), { stores: 'cookie' })

describeEngine('file', (settings) => createSessions({ ...settings, engine: 'file', filePath: mkdtempSync(path.join(dir, 'file-')) }))

describeEngine('cache on the in-process LRU', (settings) =>
  createSessions({ ...settings, engine: 'cache', caches: { default: memoryCache({ now: settings.now }) } }),
)

describeEngine(
  'cache on Redis (ioredis)',
  (settings) => createSessions({ ...settings, engine: 'cache', caches: { default: redisCache(ioredis!, { prefix: uniquePrefix('conformance') }) } }),
  { skip: redisSkip },
)

describeEngine(
  'cache on Redis (node-redis)',
  (settings) => createSessions({ ...settings, engine: 'cache', caches: { default: redisCache(nodeRedis!, { prefix: uniquePrefix('conformance') }) } }),
  { skip: redisSkip },
)

describeEngine(
  'db on PostgreSQL',
  (settings) => createSessions({ ...settings, engine: (ctx) => sqlEngine(postgresDriver(pgScratch!.pool), ctx) }),
  { skip: pgSkip },
)

describeEngine(
  'db on MariaDB',
  (settings) => createSessions({ ...settings, engine: (ctx) => sqlEngine(mysqlDriver(mysqlDb!.pool), ctx) }),
  { skip: mysqlSkip },
)

// signed_cookies, encrypted mode (cookieEncryption): the same cases as the signed format.
describeEngine('signed_cookies, encrypted', (settings) => createSessions({ ...settings, engine: 'signed_cookies', cookieEncryption: true }), {
  stores: 'cookie',
})

// cached_db: the database behind a cache. SQLite + the in-process cache through the registry
// (engine 'cached_db'); SQLite + Redis and PostgreSQL + Redis with the Redis client of this file
// (a unique key prefix per case) and, for PostgreSQL, a pool on a scratch schema of its own.
describeEngine('cached_db on SQLite + the in-process cache', (settings) =>
  createSessions({
    ...settings,
    engine: 'cached_db',
    databaseUrl: `sqlite:${path.join(dir, `cached-db-${n++}.sqlite3`)}`,
    caches: { default: memoryCache({ now: settings.now }) },
  }),
)

describeEngine(
  'cached_db on SQLite + Redis',
  (settings) =>
    createSessions({
      ...settings,
      engine: 'cached_db',
      databaseUrl: `sqlite:${path.join(dir, `cached-db-${n++}.sqlite3`)}`,
      caches: { default: redisCache(ioredis!, { prefix: uniquePrefix('conformance-cached-db') }) },
    }),
  { skip: redisSkip },
)

describeEngine(
  'cached_db on PostgreSQL + Redis',
  (settings) =>
    createSessions({
      ...settings,
      engine: (ctx) =>
        cachedDbOver(
          sqlEngine(postgresDriver(cachedDbScratch!.pool), ctx),
          { cache: redisCache(ioredis!, { prefix: uniquePrefix('conformance-cached-db') }), owned: false },
          ctx,
        ),
    }),
  { skip: cachedDbSkip },
)

// ---- Django's own cache format (cacheFormat: 'django'): the same suite over Django's entries.

describeEngine('cache in Django’s format on the in-process LRU', (settings) =>
  createSessions({ ...settings, engine: 'cache', cacheFormat: 'django', caches: { default: memoryCache({ now: settings.now }) } }),
)

describeEngine(
  'cache in Django’s format on Redis (django-redis, zlib)',
  (settings) =>
    createSessions({
      ...settings,
      engine: 'cache',
      cacheFormat: { backend: 'django-redis', keyPrefix: uniquePrefix('conformance-django'), compressor: 'zlib' },
      caches: { default: redisCache(ioredis!) },
    }),
  { skip: redisSkip, expiry: 'store' },
)

describeEngine(
  'cache in Django’s format on two Memcached servers (pymemcache)',
  (settings) => createSessions({ ...settings, engine: 'cache', cacheFormat: 'django', caches: { default: memcachedCache({ servers: memcachedServers }) } }),
  { skip: memcachedSkip, expiry: 'store' },
)

describeEngine(
  'cache on Memcached (sessionkit’s format)',
  (settings) => createSessions({ ...settings, engine: 'cache', caches: { default: memcachedCache({ servers: memcachedServers }) } }),
  { skip: memcachedSkip, expiry: 'store' },
)

describeEngine(
  'cached_db in Django’s format on SQLite + Memcached',
  (settings) =>
    createSessions({ ...settings, engine: 'cached_db', cacheFormat: 'django', databaseUrl: `sqlite:${path.join(dir, `cdbd-${n++}.sqlite3`)}`, caches: { default: memcachedCache({ servers: memcachedServers }) } }),
  { skip: memcachedSkip, expiry: 'store' },
)
