/**
 * sessionkit set up for one engine, with its store round trips counted: the cache wrapped
 * (in-process LRU, Redis: one method, one command), the SQL driver's methods wrapped (one
 * method, one statement), or — for the file engine — the engine's own calls.
 */
import path from 'node:path'
import type { Settings } from '../../src/settings.ts'
import type { Sessions } from '../../src/middleware.ts'
import type { SessionCache } from '../../src/caches/cache.ts'
import type { ServerConfig } from './config.ts'
import { SECRET } from './config.ts'
import { CACHE_KINDS, countMethods, ENGINE_KINDS, SQL_KINDS, type Counters } from './counters.ts'
import type { SkEngine } from '../variants.ts'
import { skMemory, skRedis } from './sk.ts'

export interface SkSetup {
  settings: Partial<Settings>
  /** Once the sessions exist: create tables, wrap the driver or engine for counting. */
  prepare(core: Sessions<any>): Promise<void>
  /** Release what the setup made itself (caches passed in `caches` are not closed by sessionkit). */
  close(): Promise<void>
}

/** Warnings and errors: the first few printed to stderr, the rest counted. */
function quietLogger(): Settings['logger'] {
  let printed = 0
  const say = (level: string, message: string, error?: unknown) => {
    if (printed++ < 5) console.error(`[sessionkit ${level}] ${message}`, error ?? '')
  }
  return { warn: (m) => say('warn', m), error: (m, e) => say('error', m, e) }
}

async function counted(cache: SessionCache, counters: Counters): Promise<SessionCache> {
  await cache.ready?.()
  countMethods(cache, CACHE_KINDS, counters, 'all')
  return cache
}

export async function sessionkitSetup(engine: SkEngine, lazy: boolean, config: ServerConfig, counters: Counters): Promise<SkSetup> {
  const base: Partial<Settings> = { secretKey: SECRET, lazy, logger: quietLogger() }
  const toClose: SessionCache[] = []
  const sqliteUrl = `sqlite:///${path.join(config.tmpDir, 'sessionkit.sqlite3')}`
  let settings: Partial<Settings>
  switch (engine) {
    case 'cache-memory': {
      const { memoryCache } = await skMemory()
      settings = { engine: 'cache', caches: { default: await counted(memoryCache(), counters) } }
      break
    }
    case 'cache-redis': {
      const { redisCacheFromUrl } = await skRedis()
      const cache = await counted(redisCacheFromUrl(config.redisUrl, { prefix: `${config.redisPrefix}sk:` }), counters)
      toClose.push(cache)
      settings = { engine: 'cache', caches: { default: cache } }
      break
    }
    case 'cached_db': {
      const { memoryCache } = await skMemory()
      settings = { engine: 'cached_db', databaseUrl: sqliteUrl, caches: { default: await counted(memoryCache(), counters) } }
      break
    }
    case 'db-sqlite':
      settings = { engine: 'db', databaseUrl: sqliteUrl }
      break
    case 'db-postgres':
      settings = { engine: 'db', databaseUrl: config.postgresUrl }
      break
    case 'db-mariadb':
      settings = { engine: 'db', databaseUrl: config.mysqlUrl }
      break
    case 'file':
      settings = { engine: 'file', filePath: config.tmpDir }
      break
    case 'signed_cookies':
      settings = { engine: 'signed_cookies' }
      break
    case 'encrypted_cookies':
      settings = { engine: 'signed_cookies', cookieEncryption: true }
      break
  }
  return {
    settings: { ...base, ...settings },
    async prepare(core) {
      const made = await core.ready()
      if (engine.startsWith('db-') || engine === 'cached_db') await core.migrate()
      // db: `engine.driver`; cached_db: `engine.db.driver` (its cache is counted through `caches`).
      const driver = (made as { driver?: object }).driver ?? (made as { db?: { driver?: object } }).db?.driver
      if (driver) countMethods(driver, SQL_KINDS, counters, 'all')
      else if (engine === 'file') countMethods(made, ENGINE_KINDS, counters, 'all')
    },
    async close() {
      await Promise.all(toClose.map((c) => c.close()))
    },
  }
}
