/**
 * Every server-side engine on its real store, for the suites that run one scenario across
 * all of them (concurrency, locks). Stores that are absent give a skip reason (a failure
 * under CI, through the helpers). Call once, at the top level of a test file.
 */
import { after } from 'node:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import type { EngineFactory, Settings } from 'sessionkit'
import { createEngine } from '../../src/engines/index.ts'
import { memoryCache } from '../../src/caches/memory.ts'
import { redisCache } from '../../src/caches/redis.ts'
import { sqlEngine } from '../../src/engines/db.ts'
import { postgresDriver } from '../../src/drivers/postgres.ts'
import { mysqlDriver } from '../../src/drivers/mysql.ts'
import { cachedDbOver } from '../../src/engines/cached-db.ts'
import { deleteTestKeys, REDIS_URL, redisAvailable, uniquePrefix } from './redis.ts'
import { mysqlAvailable, mysqlScratch, postgresAvailable, postgresScratch } from './databases.ts'
import { memcachedCache } from '../../src/caches/memcached.ts'
import { memcachedAvailable, startMemcached } from './memcached.ts'

export interface EngineCase {
  name: string
  /** Why the case is skipped (its store is absent), or `false`. */
  skip: string | false
  /** A fresh engine factory (a new file, directory or key prefix each call). */
  factory: () => EngineFactory
  /**
   * Loads and saves of one modifying request without a conflict: 1 and 1, except for
   * cached_db over Django's cache entries, whose save after a cache hit first re-reads the row
   * (the entry carries no database version): 2 and 2.
   */
  roundTrips?: { loads: number; saves: number }
}

/** The built-in engine `extra` names, built with the suite's settings. */
export const builtin =
  (extra: Partial<Settings>): EngineFactory =>
  (ctx) =>
    createEngine({ ...ctx.settings, ...extra } as Settings, ctx.codec)

/** The server-side engine × store cases (Memcached on two servers of the file's own); `label` names scratch schemas, directories and key prefixes. */
export async function serverEngines(label: string): Promise<EngineCase[]> {
  const dir = mkdtempSync(path.join(tmpdir(), `sessionkit-${label}-`))
  let n = 0
  const redisSkip = await redisAvailable()
  const redis = redisSkip ? undefined : new Redis(REDIS_URL)
  const pgSkip = await postgresAvailable()
  const pg = pgSkip ? undefined : await postgresScratch(label, 8)
  const mysqlSkip = await mysqlAvailable()
  const mysql = mysqlSkip ? undefined : await mysqlScratch(label, 8)
  const memcachedSkip = memcachedAvailable()
  const memcached = memcachedSkip ? [] : (await startMemcached(2)).map((m) => m.location)
  after(async () => {
    if (redis) await deleteTestKeys(redis)
    await Promise.all([redis?.quit(), pg?.drop(), mysql?.drop()])
    rmSync(dir, { recursive: true, force: true })
  })
  return [
    { name: 'db on SQLite', skip: false, factory: () => builtin({ engine: 'db', databaseUrl: `sqlite:${path.join(dir, `db-${n++}.sqlite3`)}` }) },
    { name: 'db on PostgreSQL', skip: pgSkip, factory: () => (ctx) => sqlEngine(postgresDriver(pg!.pool), ctx) },
    { name: 'db on MariaDB', skip: mysqlSkip, factory: () => (ctx) => sqlEngine(mysqlDriver(mysql!.pool), ctx) },
    { name: 'file', skip: false, factory: () => builtin({ engine: 'file', filePath: mkdtempSync(path.join(dir, 'files-')) }) },
    { name: 'cache on the in-process LRU', skip: false, factory: () => builtin({ engine: 'cache', caches: { default: memoryCache() } }) },
    {
      name: 'cache on Redis',
      skip: redisSkip,
      factory: () => builtin({ engine: 'cache', caches: { default: redisCache(redis!, { prefix: uniquePrefix(label) }) } }),
    },
    {
      name: 'cached_db on SQLite + the in-process cache',
      skip: false,
      factory: () => builtin({ engine: 'cached_db', databaseUrl: `sqlite:${path.join(dir, `cdb-${n++}.sqlite3`)}`, caches: { default: memoryCache() } }),
    },
    {
      name: 'cached_db on PostgreSQL + Redis',
      skip: pgSkip || redisSkip,
      factory: () => (ctx) =>
        cachedDbOver(sqlEngine(postgresDriver(pg!.pool), ctx), { cache: redisCache(redis!, { prefix: uniquePrefix(`${label}-cdb`) }), owned: false }, ctx),
    },
    {
      name: 'cache on Memcached',
      skip: memcachedSkip,
      factory: () => builtin({ engine: 'cache', caches: { default: memcachedCache({ servers: memcached }) } }),
    },
    {
      name: 'cache on Memcached in Django’s format (pymemcache)',
      skip: memcachedSkip,
      factory: () => builtin({ engine: 'cache', cacheFormat: 'django', caches: { default: memcachedCache({ servers: memcached }) } }),
    },
    {
      name: 'cached_db on PostgreSQL + Memcached',
      skip: pgSkip || memcachedSkip,
      factory: () => (ctx) => cachedDbOver(sqlEngine(postgresDriver(pg!.pool), ctx), { cache: memcachedCache({ servers: memcached }), owned: true }, ctx),
    },
    {
      name: 'cached_db on SQLite + Memcached in Django’s format',
      skip: memcachedSkip,
      roundTrips: { loads: 2, saves: 2 },
      factory: () =>
        builtin({ engine: 'cached_db', cacheFormat: 'django', databaseUrl: `sqlite:${path.join(dir, `cdbm-${n++}.sqlite3`)}`, caches: { default: memcachedCache({ servers: memcached }) } }),
    },
  ]
}
