/**
 * The PostgreSQL and MariaDB/MySQL servers the tests use, whether they are there, and a
 * scratch schema (PostgreSQL) or database (MySQL) per test so that test files running in
 * parallel never see each other's `django_session`.
 *
 * Servers: `SESSIONKIT_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
 * and `SESSIONKIT_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`); the users
 * must be allowed to create schemas and databases.
 *
 * An absent server: the tests skip with a one-line notice, except under CI (`CI` set), where
 * the test file fails — a CI run that silently skips its database tests proves nothing.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import mysql from 'mysql2/promise'
import { retryProbe, underCI } from './redis.ts'

export const POSTGRES_URL = process.env.SESSIONKIT_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test'
export const MYSQL_URL = process.env.SESSIONKIT_TEST_MYSQL_URL || 'mysql://root@127.0.0.1:3306/test'

const PROBE_TIMEOUT_MS = 2000

function oneLine(error: unknown): string {
  const e = error as Error & { errors?: unknown[]; code?: string }
  const first = e.errors?.[0] as Error | undefined
  return (e.message || first?.message || e.code || String(error)).split('\n', 1)[0]!
}

function verdict(service: string, url: string, probe: Promise<unknown>): Promise<string | false> {
  return probe.then(
    () => false as const,
    (error: unknown) => {
      const reason = `${service} at ${url} is not reachable (${oneLine(error)})`
      if (underCI()) throw new Error(`${reason}; CI is set, so the ${service} tests must run, not skip`)
      console.warn(`# skipping the ${service} tests: ${reason}`)
      return reason
    },
  )
}

let pgChecked: Promise<string | false> | undefined
let mysqlChecked: Promise<string | false> | undefined

/** `false` when PostgreSQL answers `SELECT 1`, else the reason to skip (under CI: throws). */
export function postgresAvailable(): Promise<string | false> {
  pgChecked ??= verdict(
    'PostgreSQL',
    POSTGRES_URL,
    retryProbe(async () => {
      const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: PROBE_TIMEOUT_MS })
      client.on('error', () => undefined)
      try {
        await client.connect()
        await client.query('SELECT 1')
      } finally {
        await client.end().catch(() => undefined)
      }
    }),
  )
  return pgChecked
}

/** `false` when MySQL/MariaDB answers `SELECT 1`, else the reason to skip (under CI: throws). */
export function mysqlAvailable(): Promise<string | false> {
  mysqlChecked ??= verdict(
    'MariaDB/MySQL',
    MYSQL_URL,
    retryProbe(async () => {
      const conn = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: PROBE_TIMEOUT_MS })
      try {
        await conn.query('SELECT 1')
      } finally {
        await conn.end().catch(() => undefined)
      }
    }),
  )
  return mysqlChecked
}

/** A name no other test (or concurrent run) uses: `sk_<label>_<hex>`, lower case, ≤ 64 characters. */
export function scratchName(label: string): string {
  return `sk_${label.toLowerCase().replace(/[^a-z0-9]/g, '_').slice(0, 30)}_${randomBytes(5).toString('hex')}`
}

/** `url` with `key=value` added to its query. */
function withParam(url: string, key: string, value: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}${key}=${encodeURIComponent(value)}`
}

/** A PostgreSQL schema of one's own. */
export interface PostgresScratch {
  schema: string
  /** A URL whose connections use the schema (`?options=-c search_path=…`). */
  url: string
  /** A small pool on the schema, for set-up and inspection (and as a pool passed in). */
  pool: pg.Pool
  /** Drop the schema with everything in it, and end the pool. */
  drop(): Promise<void>
}

/** Create an empty schema; its connections see nothing of the other schemas' tables. */
export async function postgresScratch(label = 'test', poolSize = 4): Promise<PostgresScratch> {
  const schema = scratchName(label)
  const admin = new pg.Client({ connectionString: POSTGRES_URL })
  await admin.connect()
  try {
    await admin.query(`CREATE SCHEMA "${schema}"`)
  } finally {
    await admin.end()
  }
  const url = withParam(POSTGRES_URL, 'options', `-c search_path=${schema}`)
  const pool = new pg.Pool({ connectionString: url, max: poolSize })
  pool.on('error', () => undefined)
  let dropped: Promise<void> | undefined
  return {
    schema,
    url,
    pool,
    drop() {
      dropped ??= (async () => {
        try {
          await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
        } finally {
          await pool.end()
        }
      })()
      return dropped
    },
  }
}

/** A MySQL database of one's own. */
export interface MysqlScratch {
  database: string
  /** A URL naming the database. */
  url: string
  /** A small pool on the database (`timezone: 'Z'`, `dateStrings: true`), for set-up and inspection. */
  pool: mysql.Pool
  /** Drop the database, and end the pool. */
  drop(): Promise<void>
}

/** Create an empty database. */
export async function mysqlScratch(label = 'test', poolSize = 4): Promise<MysqlScratch> {
  const database = scratchName(label)
  const admin = await mysql.createConnection({ uri: MYSQL_URL })
  try {
    await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`)
  } finally {
    await admin.end()
  }
  const parsed = new URL(MYSQL_URL)
  parsed.pathname = `/${database}`
  const url = parsed.href
  const pool = mysql.createPool({ uri: url, connectionLimit: poolSize, timezone: 'Z', dateStrings: true })
  let dropped: Promise<void> | undefined
  return {
    database,
    url,
    pool,
    drop() {
      dropped ??= (async () => {
        try {
          await pool.query(`DROP DATABASE IF EXISTS \`${database}\``)
        } finally {
          await pool.end()
        }
      })()
      return dropped
    },
  }
}
