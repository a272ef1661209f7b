/**
 * The MySQL and MariaDB driver of the `db` engine, on `mysql2` 3.x: an optional peer
 * dependency, loaded on first use so that apps on other engines never need it.
 *
 * Two ways in:
 * - `databaseUrl: 'mysql://user:pass@host:3306/db'` (or `mariadb://`): the engine makes a
 *   `mysql2/promise` pool of its own (10 connections, 3 s to connect, `timezone: 'Z'`, the
 *   `FOUND_ROWS` flag), checks it with one query as it opens, and ends it on `close()`. The
 *   URL must name a database. Its query options go to mysql2 as they are (`?ssl=…`).
 * - a pool of your own (`mysql2/promise`, or a callback pool, whose `.promise()` is used),
 *   which sessionkit never ends:
 *   ```ts
 *   import mysql from 'mysql2/promise'
 *   import { createSessions, sqlEngine, mysqlDriver } from 'sessionkit'
 *   const pool = mysql.createPool({ uri: process.env.DATABASE_URL })
 *   const sessions = createSessions({ secretKey, engine: (ctx) => sqlEngine(mysqlDriver(pool), ctx) })
 *   ```
 *
 * Statements run through `pool.execute`: server-side prepared statements, prepared once per
 * connection and cached by mysql2, then one round trip per use.
 *
 * `expire_date` is `datetime(6)` holding UTC, as Django writes it with `USE_TZ = True`: the
 * driver sends dates as UTC text, so neither the server's `time_zone` nor a pool's
 * `timezone` option changes what is stored.
 */
import { ImproperlyConfigured } from '../errors.js'
import { requirePeer } from '../peers.js'
import { redactUrl } from '../redact.js'
import { EXPIRE_INDEX, LOCK_TABLE, SESSION_TABLE, lockTableOnDemand, statementCounter, toDjangoDateTime, type MigrateReport, type SqlDriver, type SqlStatementKind, type SqlStats } from './sql.js'

/**
 * Django's table on MySQL (Django's column types), InnoDB in utf8mb4, which Django's
 * documentation asks for and MySQL 8 and MariaDB 10.6+ use by default.
 */
export const CREATE_TABLE =
  `CREATE TABLE IF NOT EXISTS \`${SESSION_TABLE}\` (\`session_key\` varchar(40) NOT NULL PRIMARY KEY, ` +
  '`session_data` longtext NOT NULL, `expire_date` datetime(6) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4'

/** Django's index on `expire_date` (MySQL has no `CREATE INDEX IF NOT EXISTS`: `migrate` checks first). */
export const CREATE_INDEX = `CREATE INDEX \`${EXPIRE_INDEX}\` ON \`${SESSION_TABLE}\` (\`expire_date\`)`

/**
 * sessionkit's lock table (see `LOCK_TABLE`): created by the first lock, never by `migrate()`.
 * Run it yourself when the app's database user may not create tables.
 */
export const CREATE_LOCK_TABLE =
  `CREATE TABLE IF NOT EXISTS \`${LOCK_TABLE}\` (\`session_key\` varchar(40) NOT NULL PRIMARY KEY, ` +
  '`token` varchar(64) NOT NULL, `expires_at` bigint NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4'

/** MySQL's `ER_NO_SUCH_TABLE`. */
const ER_NO_SUCH_TABLE = 1146


/** How long opening a connection may take. */
export const CONNECT_TIMEOUT_MS = 3000

/** How long `migrate` waits for another process's `migrate` to finish. */
const MIGRATE_LOCK_TIMEOUT_S = 30

/** MySQL's `ER_DUP_ENTRY`. */
const ER_DUP_ENTRY = 1062

const MISSING = 'sessionkit: the db engine on MySQL needs the mysql2 package (an optional peer dependency): npm install mysql2@3'

/** What a mysql2 promise query resolves to: rows (a SELECT) or a result header, then fields. */
export type MysqlResult = [unknown, unknown]

/** A connection checked out of a mysql2 promise pool. */
export interface MysqlConnectionLike {
  query(sql: string, values?: string[]): Promise<MysqlResult>
  release(): void
}

/** What sessionkit needs of a `mysql2/promise` pool. */
export interface MysqlPoolLike {
  /** Values are strings only: dates travel as UTC text. */
  execute(sql: string, values?: string[]): Promise<MysqlResult>
  query(sql: string, values?: string[]): Promise<MysqlResult>
  getConnection(): Promise<MysqlConnectionLike>
}

/** A mysql2 callback pool, turned into a promise pool with `.promise()`. */
export interface MysqlCallbackPoolLike {
  promise(): MysqlPoolLike
}

/** Options of {@link mysqlDriver}. */
export interface MysqlDriverOptions {
  /** For `migrate()`'s report. Default: the database, as the server names it. */
  where?: string
  /** End the pool on `close()`. Default `false`: a pool passed in belongs to its owner. */
  ownsPool?: boolean
}

/** The MySQL/MariaDB driver. */
export interface MysqlDriver extends SqlDriver {
  readonly dialect: 'mysql'
  /** The promise pool the statements run on. */
  readonly pool: MysqlPoolLike
  readonly stats: SqlStats
}

type OwnedPool = MysqlPoolLike & { end(): Promise<void> }
type Mysql2Module = { createPool(config: Record<string, unknown>): OwnedPool }

/**
 * `mysql2/promise`, required synchronously so that a missing package fails at start-up.
 * Throws `ImproperlyConfigured` when it is not installed. `load` is for tests.
 */
export function loadMysql2(load?: (id: string) => unknown): Mysql2Module {
  const mysql2 = requirePeer('mysql2/promise', { missing: MISSING, load }) as Partial<Mysql2Module>
  if (typeof mysql2.createPool !== 'function') {
    throw new ImproperlyConfigured('sessionkit: the installed mysql2 package exports no createPool; reinstall it: npm install mysql2@3')
  }
  return mysql2 as Mysql2Module
}

/**
 * A driver on a pool of its own for `url` (`mysql://` or `mariadb://`), checked with one
 * query; `close()` ends the pool. Throws `ImproperlyConfigured` at once when mysql2 is
 * missing, and the promise rejects with it when the URL names no database; it rejects with
 * mysql2's own error when the server cannot be reached (the engine names the URL, redacted).
 */
export function openMysql(url: string): Promise<MysqlDriver> {
  const { createPool } = loadMysql2()
  const pool = createPool({
    uri: url.replace(/^mariadb:/i, 'mysql:'),
    connectionLimit: 10,
    connectTimeout: CONNECT_TIMEOUT_MS,
    timezone: 'Z',
    // Affected rows = rows matched, so re-saving unchanged data still counts one row.
    flags: ['FOUND_ROWS'],
    enableKeepAlive: true,
  })
  const fail = async (error: unknown): Promise<never> => {
    await pool.end().catch(() => undefined)
    throw error
  }
  return pool.query('SELECT DATABASE() AS db').then(([rows]) => {
    if ((rows as { db: string | null }[])[0]?.db == null) {
      return fail(
        new ImproperlyConfigured(
          `sessionkit: databaseUrl ${redactUrl(url)} names no database; add it as the path: mysql://user:password@host:3306/dbname`,
        ),
      )
    }
    return mysqlDriver(pool, { ownsPool: true, where: redactUrl(url) })
  }, fail)
}

/**
 * The driver over `pool`. Each operation is one `execute` call, hence one round trip:
 * - `load`: `SELECT session_data … WHERE session_key = ? AND expire_date > ?`;
 * - `insert`: a plain `INSERT`; a duplicate key (`ER_DUP_ENTRY`) means the key is taken,
 *   any other error propagates (`INSERT IGNORE` would hide them);
 * - `update`: `UPDATE … WHERE session_key = ?`, counting matched rows (`FOUND_ROWS`, on by
 *   default in mysql2), so saving unchanged data is not taken for a vanished row. On a pool
 *   passed in, which may lack the flag, an update that changed nothing is confirmed with one
 *   more query (`exists`);
 * - `clearExpiredBatch`: `DELETE … WHERE expire_date < ? LIMIT n`, each batch its own short
 *   transaction, without loading a row into Node.
 *
 * `migrate()` holds a named lock (`GET_LOCK`), so two processes migrating at once do not
 * collide. `close()` ends the pool only if `options.ownsPool`.
 */
export function mysqlDriver(pool: MysqlPoolLike | MysqlCallbackPoolLike, options: MysqlDriverOptions = {}): MysqlDriver {
  const promisePool = toPromisePool(pool)
  const { stats, count } = statementCounter()
  const run = async (kind: SqlStatementKind, sql: string, values: string[]): Promise<unknown> => {
    count(kind)
    const [result] = await promisePool.execute(sql, values)
    return result
  }
  const affected = (result: unknown): number => (result as { affectedRows?: number }).affectedRows ?? 0
  let closing: Promise<void> | undefined
  const lockTable = lockTableOnDemand({
    create: () => promisePool.query(CREATE_LOCK_TABLE),
    missing: (error) => (error as { errno?: unknown } | null)?.errno === ER_NO_SUCH_TABLE,
  })
  const onLockTable = (sql: string, values: string[]): Promise<unknown> => lockTable.run(() => run('lock', sql, values))

  const driver: MysqlDriver = {
    dialect: 'mysql',
    pool: promisePool,
    stats,
    async load(key, now) {
      const rows = (await run('load', 'SELECT session_data FROM django_session WHERE session_key = ? AND expire_date > ?', [
        key,
        toDjangoDateTime(now),
      ])) as { session_data: string }[]
      return rows[0]?.session_data ?? null
    },
    async insert(key, data, expireDate) {
      try {
        await run('insert', 'INSERT INTO django_session (session_key, session_data, expire_date) VALUES (?, ?, ?)', [
          key,
          data,
          toDjangoDateTime(expireDate),
        ])
        return true
      } catch (error) {
        if ((error as { errno?: unknown }).errno === ER_DUP_ENTRY) return false
        throw error
      }
    },
    async update(key, data, expireDate, expected) {
      const when = toDjangoDateTime(expireDate)
      const result =
        expected == null
          ? await run('update', 'UPDATE django_session SET session_data = ?, expire_date = ? WHERE session_key = ?', [data, when, key])
          : await run('update', 'UPDATE django_session SET session_data = ?, expire_date = ? WHERE session_key = ? AND session_data = ?', [
              data,
              when,
              key,
              expected,
            ])
      if (affected(result) > 0) return true
      // With FOUND_ROWS (set on our pools) 0 means no matching row. A pool passed in may have
      // turned it off (it is mysql2's default), and then 0 may also mean "same values": the
      // write took effect if the row now holds exactly what we wrote.
      if (options.ownsPool) return false
      const rows = (await run('exists', 'SELECT session_data FROM django_session WHERE session_key = ?', [key])) as { session_data: string }[]
      return rows.length > 0 && (expected == null || rows[0]!.session_data === data)
    },
    async delete(key) {
      await run('delete', 'DELETE FROM django_session WHERE session_key = ?', [key])
    },
    async exists(key) {
      const rows = (await run('exists', 'SELECT 1 AS found FROM django_session WHERE session_key = ?', [key])) as unknown[]
      return rows.length > 0
    },
    async clearExpiredBatch(now, limit) {
      if (!Number.isSafeInteger(limit) || limit <= 0) throw new RangeError(`sessionkit: batch size must be a whole number > 0, got ${limit}`)
      // The limit is written into the text: MySQL 8 refuses some numeric parameter types in LIMIT.
      return affected(await run('clearExpired', `DELETE FROM django_session WHERE expire_date < ? LIMIT ${limit}`, [toDjangoDateTime(now)]))
    },
    /**
     * A plain `INSERT` (a duplicate key, `ER_DUP_ENTRY`, means it is held), then a take-over of
     * a row that expired: `UPDATE … WHERE session_key = ? AND expires_at < ?`. MySQL has no
     * conditional upsert whose result tells "taken" from "held" under `FOUND_ROWS`.
     */
    async acquireLock(key, token, expiresAt, now) {
      try {
        await onLockTable('INSERT INTO sessionkit_lock (session_key, token, expires_at) VALUES (?, ?, ?)', [key, token, String(expiresAt)])
        return true
      } catch (error) {
        if ((error as { errno?: unknown }).errno !== ER_DUP_ENTRY) throw error
      }
      const result = await onLockTable('UPDATE sessionkit_lock SET token = ?, expires_at = ? WHERE session_key = ? AND expires_at < ?', [
        token,
        String(expiresAt),
        key,
        String(now),
      ])
      return affected(result) > 0
    },
    async releaseLock(key, token) {
      await onLockTable('DELETE FROM sessionkit_lock WHERE session_key = ? AND token = ?', [key, token])
    },
    async clearExpiredLocks(now) {
      return affected(await lockTable.ifPresent(() => run('lock', 'DELETE FROM sessionkit_lock WHERE expires_at < ?', [String(now)]), {}))
    },
    migrate() {
      return migrate(promisePool, options.where)
    },
    close() {
      if (!options.ownsPool) return Promise.resolve()
      closing ??= (promisePool as OwnedPool).end()
      return closing
    },
  }
  return driver
}

function toPromisePool(pool: MysqlPoolLike | MysqlCallbackPoolLike): MysqlPoolLike {
  if (pool !== null && typeof pool === 'object') {
    if (typeof (pool as MysqlCallbackPoolLike).promise === 'function') return (pool as MysqlCallbackPoolLike).promise()
    if (typeof (pool as MysqlPoolLike).execute === 'function' && typeof (pool as MysqlPoolLike).getConnection === 'function') {
      return pool as MysqlPoolLike
    }
  }
  throw new ImproperlyConfigured('sessionkit: mysqlDriver needs a mysql2 pool (mysql2/promise createPool, or a callback pool)')
}

/** The named lock of `migrate`: per database, within MySQL's 64-character limit for lock names. */
const LOCK_NAME = "CONCAT('sessionkit_migrate_', MD5(DATABASE()))"

async function migrate(pool: MysqlPoolLike, where: string | undefined): Promise<MigrateReport> {
  const conn = await pool.getConnection()
  try {
    const [[lock]] = (await conn.query(`SELECT DATABASE() AS db, GET_LOCK(${LOCK_NAME}, ${MIGRATE_LOCK_TIMEOUT_S}) AS got`)) as [
      { db: string | null; got: number | null }[],
      unknown,
    ]
    if (lock?.db == null) throw new ImproperlyConfigured('sessionkit: the MySQL connection has no database selected; name one in the URL or pool options')
    if (lock.got !== 1) throw new Error(`sessionkit: another process has been migrating django_session for over ${MIGRATE_LOCK_TIMEOUT_S} s`)
    try {
      const [tables] = (await conn.query(
        'SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?',
        [SESSION_TABLE],
      )) as [unknown[], unknown]
      const [indexes] = (await conn.query(
        'SELECT DISTINCT index_name AS name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ?',
        [SESSION_TABLE],
      )) as [{ name: string }[], unknown]
      const created: string[] = []
      if (tables.length === 0) {
        await conn.query(CREATE_TABLE)
        created.push(`table ${SESSION_TABLE}`)
      }
      if (!indexes.some((i) => i.name === EXPIRE_INDEX)) {
        await conn.query(CREATE_INDEX)
        created.push(`index ${EXPIRE_INDEX}`)
      }
      return { created, where: where ?? `MySQL database "${lock.db}"` }
    } finally {
      await conn.query(`SELECT RELEASE_LOCK(${LOCK_NAME})`)
    }
  } finally {
    conn.release()
  }
}
