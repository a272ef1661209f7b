/**
 * The PostgreSQL driver of the `db` engine, on `pg` 8.x (node-postgres): an optional peer
 * dependency, loaded on first use so that apps on other engines never need it.
 *
 * Two ways in:
 * - `databaseUrl: 'postgres://user:pass@host:5432/db'` (or `postgresql://`): the engine makes
 *   a `pg.Pool` of its own (10 connections, each attempt, and each wait for a free
 *   connection, bounded by 3 s), checks it with one `SELECT 1` as it opens, and ends it on
 *   `close()`. URL query options go to `pg` as they are, e.g.
 *   `?options=-c%20search_path%3Dsessions` to use another schema.
 * - a pool (or a connected `pg.Client`) of your own, which sessionkit never ends:
 *   ```ts
 *   import pg from 'pg'
 *   import { createSessions, sqlEngine, postgresDriver } from 'sessionkit'
 *   const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
 *   const sessions = createSessions({ secretKey, engine: (ctx) => sqlEngine(postgresDriver(pool), ctx) })
 *   ```
 *
 * Every statement is a named prepared statement (`sessionkit_load`, …): parsed once per
 * connection, then one round trip per use. A connection pooler in transaction mode that
 * does not track prepared statements (PgBouncer before 1.21) needs session mode.
 *
 * The table is unqualified, so it lives in the first schema of `search_path`, as Django's.
 * `expire_date` is `timestamp with time zone`: dates travel as JS `Date`s and compare as
 * instants, whatever the server's or the connection's `TimeZone`.
 */
import { ImproperlyConfigured } from '../errors.js'
import { requirePeer } from '../peers.js'
import { redactUrl } from '../redact.js'
import { EXPIRE_INDEX, LIKE_INDEX, LOCK_TABLE, SESSION_TABLE, lockTableOnDemand, statementCounter, type MigrateReport, type SqlDriver, type SqlStatementKind, type SqlStats } from './sql.js'

/** Django's table, as `sessions.0001_initial` creates it on PostgreSQL (with `IF NOT EXISTS`). */
export const CREATE_TABLE =
  `CREATE TABLE IF NOT EXISTS "${SESSION_TABLE}" ("session_key" varchar(40) NOT NULL PRIMARY KEY, ` +
  '"session_data" text NOT NULL, "expire_date" timestamp with time zone NOT NULL)'

/** Django's index on `expire_date`. */
export const CREATE_EXPIRE_INDEX = `CREATE INDEX IF NOT EXISTS "${EXPIRE_INDEX}" ON "${SESSION_TABLE}" ("expire_date")`

/** Django's `_like` index, which PostgreSQL needs for `LIKE 'abc%'` on a varchar primary key. */
export const CREATE_LIKE_INDEX = `CREATE INDEX IF NOT EXISTS "${LIKE_INDEX}" ON "${SESSION_TABLE}" ("session_key" varchar_pattern_ops)`

/**
 * sessionkit's lock table (see `LOCK_TABLE`): created by the first lock, never by `migrate()`.
 * Run it yourself when the app's database user may not create tables.
 */
export const CREATE_LOCK_TABLE =
  `CREATE TABLE IF NOT EXISTS "${LOCK_TABLE}" ("session_key" varchar(40) NOT NULL PRIMARY KEY, ` +
  '"token" varchar(64) NOT NULL, "expires_at" bigint NOT NULL)'

/** PostgreSQL's `undefined_table`, `duplicate_table` and `unique_violation` (two `CREATE TABLE IF NOT EXISTS` racing). */
const UNDEFINED_TABLE = '42P01'
const TABLE_RACE = new Set(['42P07', '23505'])


/** How long opening a connection, or waiting for a free one, may take. */
export const CONNECT_TIMEOUT_MS = 3000

const MISSING = 'sessionkit: the db engine on PostgreSQL needs the pg package (an optional peer dependency): npm install pg@8'

/** A query as `pg` takes it; `name` makes it a prepared statement, parsed once per connection. */
export interface PgQuery {
  name?: string
  text: string
  values?: unknown[]
}

/** What sessionkit reads of a `pg` result. */
export interface PgResult {
  rows: Record<string, unknown>[]
  rowCount: number | null
}

/** A connected `pg.Client`, or a client checked out of a pool (`release` then given). */
export interface PgClientLike {
  query(query: PgQuery): Promise<PgResult>
}

/** What sessionkit needs of a `pg.Pool`. */
export interface PgPoolLike {
  query(query: PgQuery): Promise<PgResult>
  connect(): Promise<PgClientLike & { release(error?: Error | boolean): void }>
  /** Present on `pg.Pool` (and used to tell a pool from a client). */
  readonly totalCount: number
}

/** Options of {@link postgresDriver}. */
export interface PostgresDriverOptions {
  /** For `migrate()`'s report. Default: the database and schema, as the server names them. */
  where?: string
  /** End `pool` on `close()`. Default `false`: a pool passed in belongs to its owner. */
  ownsPool?: boolean
}

/** The PostgreSQL driver. */
export interface PostgresDriver extends SqlDriver {
  readonly dialect: 'postgresql'
  /** The pool (or client) the statements run on. */
  readonly pool: PgPoolLike | PgClientLike
  readonly stats: SqlStats
}

type PgModule = { Pool: new (config: Record<string, unknown>) => PgPoolLike & OwnedPool }
type OwnedPool = {
  end(): Promise<void>
  on(event: 'error', listener: (error: Error) => void): unknown
}

/**
 * The `pg` module, required synchronously so that a missing package fails at start-up.
 * Throws `ImproperlyConfigured` when it is not installed. `load` is for tests.
 */
export function loadPg(load?: (id: string) => unknown): PgModule {
  const pg = requirePeer('pg', { missing: MISSING, load }) as Partial<PgModule>
  if (typeof pg.Pool !== 'function') throw new ImproperlyConfigured('sessionkit: the installed pg package exports no Pool class; reinstall it: npm install pg@8')
  return pg as PgModule
}

/** Options of {@link openPostgres}. */
export interface OpenPostgresOptions {
  /** Where an idle connection that breaks (a server restart) is reported. Default: nowhere. */
  onIdleError?: (error: Error) => void
}

/**
 * A driver on a pool of its own for `url`, checked with one `SELECT 1`; `close()` ends the
 * pool. Throws `ImproperlyConfigured` at once when `pg` is missing; the promise rejects with
 * `pg`'s own error when the server cannot be reached (the engine names the URL, redacted).
 */
export function openPostgres(url: string, options: OpenPostgresOptions = {}): Promise<PostgresDriver> {
  const { Pool } = loadPg()
  const pool = new Pool({
    connectionString: url,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'sessionkit', // the URL's application_name, if any, wins
  })
  // An idle connection that breaks is an 'error' event on the pool: unheard, it would end the process.
  pool.on('error', (error) => options.onIdleError?.(error))
  return pool.query({ text: 'SELECT 1' }).then(
    () => postgresDriver(pool, { ownsPool: true, where: redactUrl(url) }),
    async (error: unknown) => {
      await pool.end().catch(() => undefined)
      throw error
    },
  )
}

/**
 * The driver over `pool`: a `pg.Pool`, or a connected `pg.Client`. Each operation is one
 * `query` call, hence one round trip:
 * - `load`: `SELECT session_data … WHERE session_key = $1 AND expire_date > $2`;
 * - `insert`: `INSERT … ON CONFLICT (session_key) DO NOTHING`; no row inserted means the key
 *   is taken (no exception, no aborted transaction);
 * - `update`: `UPDATE … WHERE session_key = $3`; no row means the session is gone;
 * - `clearExpiredBatch`: deletes through a `LIMIT`ed subquery, each batch its own short
 *   transaction, without loading a row into Node.
 *
 * `migrate()` runs in a transaction holding an advisory lock, so two processes migrating at
 * once do not collide. `close()` ends the pool only if `options.ownsPool`.
 */
export function postgresDriver(pool: PgPoolLike | PgClientLike, options: PostgresDriverOptions = {}): PostgresDriver {
  if (pool === null || typeof pool !== 'object' || typeof (pool as { query?: unknown }).query !== 'function') {
    throw new ImproperlyConfigured('sessionkit: postgresDriver needs a pg.Pool or a connected pg.Client')
  }
  const { stats, count } = statementCounter()
  const run = (kind: SqlStatementKind, query: PgQuery): Promise<PgResult> => {
    count(kind)
    return pool.query(query)
  }
  let closing: Promise<void> | undefined
  const codeOf = (error: unknown): string => (error as { code?: string } | null)?.code ?? ''
  const lockTable = lockTableOnDemand({
    create: () => pool.query({ text: CREATE_LOCK_TABLE }),
    missing: (error) => codeOf(error) === UNDEFINED_TABLE,
    raced: (error) => TABLE_RACE.has(codeOf(error)),
  })
  const onLockTable = (query: PgQuery): Promise<PgResult> => lockTable.run(() => run('lock', query))

  return {
    dialect: 'postgresql',
    pool,
    stats,
    async load(key, now) {
      const { rows } = await run('load', {
        name: 'sessionkit_load',
        text: 'SELECT session_data FROM django_session WHERE session_key = $1 AND expire_date > $2',
        values: [key, now],
      })
      return rows.length === 0 ? null : (rows[0]!.session_data as string)
    },
    async insert(key, data, expireDate) {
      const { rowCount } = await run('insert', {
        name: 'sessionkit_insert',
        text:
          'INSERT INTO django_session (session_key, session_data, expire_date) VALUES ($1, $2, $3) ' +
          'ON CONFLICT (session_key) DO NOTHING',
        values: [key, data, expireDate],
      })
      return rowCount === 1
    },
    async update(key, data, expireDate, expected) {
      const { rowCount } = await run(
        'update',
        expected == null
          ? {
              name: 'sessionkit_update',
              text: 'UPDATE django_session SET session_data = $1, expire_date = $2 WHERE session_key = $3',
              values: [data, expireDate, key],
            }
          : {
              name: 'sessionkit_update_if',
              text: 'UPDATE django_session SET session_data = $1, expire_date = $2 WHERE session_key = $3 AND session_data = $4',
              values: [data, expireDate, key, expected],
            },
      )
      return (rowCount ?? 0) > 0
    },
    async delete(key) {
      await run('delete', { name: 'sessionkit_delete', text: 'DELETE FROM django_session WHERE session_key = $1', values: [key] })
    },
    async exists(key) {
      const { rows } = await run('exists', {
        name: 'sessionkit_exists',
        text: 'SELECT 1 FROM django_session WHERE session_key = $1',
        values: [key],
      })
      return rows.length > 0
    },
    async clearExpiredBatch(now, limit) {
      const { rowCount } = await run('clearExpired', {
        name: 'sessionkit_clear_expired',
        text:
          'DELETE FROM django_session WHERE session_key IN ' +
          '(SELECT session_key FROM django_session WHERE expire_date < $1 LIMIT $2)',
        values: [now, limit],
      })
      return rowCount ?? 0
    },
    /** Insert, or take over a row that expired: one atomic statement (an UPSERT). */
    async acquireLock(key, token, expiresAt, now) {
      const { rowCount } = await onLockTable({
        name: 'sessionkit_lock_acquire',
        text:
          'INSERT INTO sessionkit_lock (session_key, token, expires_at) VALUES ($1, $2, $3) ON CONFLICT (session_key) ' +
          'DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at WHERE sessionkit_lock.expires_at < $4',
        values: [key, token, expiresAt, now],
      })
      return rowCount === 1
    },
    async releaseLock(key, token) {
      await onLockTable({
        name: 'sessionkit_lock_release',
        text: 'DELETE FROM sessionkit_lock WHERE session_key = $1 AND token = $2',
        values: [key, token],
      })
    },
    async clearExpiredLocks(now) {
      const clear = () => run('lock', { name: 'sessionkit_lock_clear', text: 'DELETE FROM sessionkit_lock WHERE expires_at < $1', values: [now] })
      return (await lockTable.ifPresent(clear, null))?.rowCount ?? 0
    },
    migrate() {
      return migrate(pool, options.where)
    },
    close() {
      if (!options.ownsPool) return Promise.resolve()
      closing ??= (pool as unknown as OwnedPool).end()
      return closing
    },
  }
}

function isPool(pool: PgPoolLike | PgClientLike): pool is PgPoolLike {
  return typeof (pool as { totalCount?: unknown }).totalCount === 'number' && typeof (pool as { connect?: unknown }).connect === 'function'
}

/** A key for `pg_advisory_xact_lock`, the same in every process: "sessionkit" → bigint. */
const MIGRATE_LOCK = "hashtext('sessionkit migrate django_session')"

async function migrate(pool: PgPoolLike | PgClientLike, where: string | undefined): Promise<MigrateReport> {
  const checkedOut = isPool(pool) ? await pool.connect() : undefined
  const client: PgClientLike = checkedOut ?? pool
  const q = (text: string, values?: unknown[]) => client.query(values ? { text, values } : { text })
  let broken: Error | undefined
  try {
    await q('BEGIN')
    try {
      await q(`SELECT pg_advisory_xact_lock(${MIGRATE_LOCK})`)
      const [info] = (
        await q(
          'SELECT current_database() AS database, current_schema() AS current, ' +
            `(SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('"${SESSION_TABLE}"')) AS schema`,
        )
      ).rows as { database: string; current: string | null; schema: string | null }[]
      const schema = info!.schema ?? info!.current
      const have = new Set<string>()
      if (info!.schema !== null) {
        const { rows } = await q('SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2', [info!.schema, SESSION_TABLE])
        for (const row of rows) have.add(row.indexname as string)
      }
      const created: string[] = []
      if (info!.schema === null) {
        await q(CREATE_TABLE)
        created.push(`table ${SESSION_TABLE}`)
      }
      for (const [name, ddl] of [
        [EXPIRE_INDEX, CREATE_EXPIRE_INDEX],
        [LIKE_INDEX, CREATE_LIKE_INDEX],
      ] as const) {
        if (have.has(name)) continue
        await q(ddl)
        created.push(`index ${name}`)
      }
      await q('COMMIT')
      return { created, where: where ?? `PostgreSQL database "${info!.database}", schema "${schema ?? '?'}"` }
    } catch (error) {
      await q('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError))
      throw error
    }
  } finally {
    checkedOut?.release(broken)
  }
}
