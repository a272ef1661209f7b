/**
 * The services some variants need (Redis, PostgreSQL, MariaDB): whether each answers, the
 * benchmark's own database on the SQL servers (never the tests' `test` database), and the
 * clean-up between server processes — only what the benchmark wrote (its Redis prefix, its
 * database's tables), never anything else on a server others use.
 */
import { Redis } from 'ioredis'
import pg from 'pg'
import mysql from 'mysql2/promise'
import { BENCH_DATABASE, DEFAULT_SERVICES, REDIS_PREFIX } from './config.ts'
import type { Service } from '../variants.ts'

export type ServiceState = Record<Service, true | string>

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

function redisClient(): Redis {
  return new Redis(DEFAULT_SERVICES.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy: () => null })
}

/** Which services answer; creates the benchmark's database on the SQL servers that do. */
export async function prepareServices(): Promise<ServiceState> {
  const state = {} as ServiceState
  const reason = (error: unknown) => (error instanceof Error ? error.message : String(error)).split('\n')[0]!
  try {
    const redis = redisClient()
    await withTimeout(redis.connect(), 3000, 'Redis')
    await redis.ping()
    redis.disconnect()
    state.redis = true
  } catch (error) {
    state.redis = reason(error)
  }
  try {
    const admin = new pg.Client({ connectionString: DEFAULT_SERVICES.postgresAdminUrl, connectionTimeoutMillis: 3000 })
    await admin.connect()
    try {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [BENCH_DATABASE])
      if (!rowCount) await admin.query(`CREATE DATABASE ${BENCH_DATABASE}`)
    } finally {
      await admin.end()
    }
    state.postgres = true
  } catch (error) {
    state.postgres = reason(error)
  }
  try {
    const admin = await mysql.createConnection({ uri: DEFAULT_SERVICES.mysqlAdminUrl, connectTimeout: 3000 })
    try {
      await admin.query(`CREATE DATABASE IF NOT EXISTS ${BENCH_DATABASE}`)
    } finally {
      await admin.end()
    }
    state.mariadb = true
  } catch (error) {
    state.mariadb = reason(error)
  }
  return state
}

/**
 * Empty what the benchmark stored: its Redis keys, its tables on PostgreSQL and MariaDB.
 * Run before each server starts, so every round of a variant begins from an empty store.
 */
export async function cleanStores(state: ServiceState): Promise<void> {
  const jobs: Promise<unknown>[] = []
  if (state.redis === true) {
    jobs.push(
      (async () => {
        const redis = redisClient()
        await redis.connect()
        try {
          let cursor = '0'
          do {
            const [next, keys] = await redis.scan(cursor, 'MATCH', `${REDIS_PREFIX}*`, 'COUNT', 1000)
            cursor = next
            if (keys.length) await redis.unlink(...keys)
          } while (cursor !== '0')
        } finally {
          redis.disconnect()
        }
      })(),
    )
  }
  if (state.postgres === true) {
    jobs.push(
      (async () => {
        const client = new pg.Client({ connectionString: DEFAULT_SERVICES.postgresUrl, connectionTimeoutMillis: 3000 })
        await client.connect()
        try {
          for (const table of ['django_session', 'session']) {
            await client.query(`DO $$ BEGIN IF to_regclass('public.${table}') IS NOT NULL THEN TRUNCATE ${table}; END IF; END $$`)
          }
        } finally {
          await client.end()
        }
      })(),
    )
  }
  if (state.mariadb === true) {
    jobs.push(
      (async () => {
        const conn = await mysql.createConnection({ uri: DEFAULT_SERVICES.mysqlUrl, connectTimeout: 3000 })
        try {
          const [rows] = await conn.query('SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ?', [BENCH_DATABASE])
          for (const { t } of rows as { t: string }[]) if (t === 'django_session') await conn.query('TRUNCATE TABLE `django_session`')
        } finally {
          await conn.end()
        }
      })(),
    )
  }
  await Promise.all(jobs)
}
