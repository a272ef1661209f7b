/**
 * The `db` engine: sessions in Django's `django_session` table, read and written as
 * `django.contrib.sessions.backends.db` does, so a Django app and a sessionkit app can
 * share the table (same `SECRET_KEY`).
 *
 * `settings.databaseUrl` picks the database, parsed like dj-database-url:
 * - `sqlite:///relative/path.db` (relative to the working directory),
 *   `sqlite:////absolute/path.db`, or `sqlite:path.db` (a plain path, as written);
 * - `sqlite::memory:` or `sqlite://:memory:`, a database that lives as long as the engine;
 * - `postgres://user:password@host:5432/db` or `postgresql://…`, through `pg`
 *   (`npm install pg`), see `drivers/postgres.ts`;
 * - `mysql://user:password@host:3306/db` or `mariadb://…`, through `mysql2`
 *   (`npm install mysql2`), see `drivers/mysql.ts`.
 *
 * On PostgreSQL and MySQL the engine opens asynchronously: it makes a pool, checks it with
 * one query, and `sessions.ready()` rejects with `StoreUnavailable` naming the URL (password
 * redacted) when the server cannot be reached. `close()` ends that pool.
 *
 * A pool of your own (sessionkit never ends it) plugs in as an engine factory:
 * ```ts
 * import { createSessions, sqlEngine, postgresDriver, mysqlDriver } from 'sessionkit'
 * createSessions({ secretKey, engine: (ctx) => sqlEngine(postgresDriver(pgPool), ctx) })
 * createSessions({ secretKey, engine: (ctx) => sqlEngine(mysqlDriver(mysqlPool), ctx) })
 * ```
 *
 * On SQLite the engine creates the table and its index when they are missing, as it opens:
 * an embedded database needs no set-up step. PostgreSQL and MySQL need `sessionkit migrate`
 * (or `sessions.migrate()`) once, as Django needs `manage.py migrate`.
 *
 * `expire_date` is UTC (Django's `USE_TZ = True`, the default since Django 5.0). A Django
 * project with `USE_TZ = False` stores local time and would see sessions expire off by its
 * UTC offset.
 */
import { resolve } from 'node:path'
import { CreateError, ImproperlyConfigured, SessionError, StoreUnavailable, UpdateError } from '../errors.js'
import { openSqlite } from '../drivers/sqlite.js'
import { openPostgres } from '../drivers/postgres.js'
import { openMysql } from '../drivers/mysql.js'
import { redactUrl, urlScrubber } from '../redact.js'
import type { Engine, EngineContext, LoadedSession, LockOptions, ReleaseLock, SavedSession, SaveOptions, SessionMap } from '../engine.js'
import type { MigrateReport, SqlDriver } from '../drivers/sql.js'
import { checkLockOptions, lockToken, pollLock } from '../lock.js'

export type { MigrateReport, SqlDriver } from '../drivers/sql.js'

/** The `db` engine, with its driver in view (tests count its statements). */
export interface DbEngine extends Engine {
  readonly driver: SqlDriver
  /** The data and its version (the `session_data` text), or `null`. */
  load(key: string): Promise<LoadedSession | null>
  /** Compare-and-set with `expected`; the new version is the `session_data` written. */
  save(key: string, data: SessionMap, options: SaveOptions): Promise<SavedSession & { version: string }>
  migrate(): Promise<void>
  /** `migrate()`, saying what it created (the CLI prints it). On SQLite this includes what the engine created as it opened. */
  migrateReport(): Promise<MigrateReport>
}

/** Rows deleted per statement by `clearExpired`. */
export const CLEAR_BATCH_SIZE = 1000

/** Where `databaseUrl` points. */
export type DatabaseTarget =
  | { dialect: 'sqlite'; /** An absolute path, or `:memory:`. */ filename: string }
  | { dialect: 'postgresql' | 'mysql'; url: string }

const MEMORY = ':memory:'

/**
 * Parse `databaseUrl` the way dj-database-url does for the forms listed in this module's
 * comment; relative SQLite paths are resolved against `cwd`. Unlike dj-database-url, a
 * SQLite URL without a path (`sqlite://`, `sqlite:///`) is refused rather than taken as a
 * database in memory: an empty variable in `sqlite:///${DB}` must not lose every session
 * at the next restart.
 */
export function parseDatabaseUrl(url: string, cwd = process.cwd()): DatabaseTarget {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase()
  switch (scheme) {
    case 'sqlite':
      return { dialect: 'sqlite', filename: sqliteFilename(url, url.slice('sqlite:'.length), cwd) }
    case 'postgres':
    case 'postgresql':
      return { dialect: 'postgresql', url }
    case 'mysql':
    case 'mariadb':
      return { dialect: 'mysql', url }
    default:
      throw new ImproperlyConfigured(
        'sessionkit: databaseUrl must start with sqlite:, postgres:, postgresql:, mysql: or mariadb:',
      )
  }
}

function sqliteFilename(url: string, rest: string, cwd: string): string {
  const bad = (why: string): never => {
    throw new ImproperlyConfigured(
      `sessionkit: databaseUrl ${JSON.stringify(url)} ${why}; use sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite::memory:`,
    )
  }
  if (rest === MEMORY || rest === `//${MEMORY}`) return MEMORY
  if (!rest.startsWith('//')) {
    // A plain path, taken as written: sqlite:db.sqlite3, sqlite:/abs/db.sqlite3.
    if (rest === '') bad('names no file')
    return resolvePath(cwd, rest)
  }
  const afterAuthority = rest.slice(2)
  if (!afterAuthority.startsWith('/')) bad('names a host (SQLite URLs have none)')
  if (afterAuthority.includes('?') || afterAuthority.includes('#')) bad('has query options, which are not supported')
  let file: string
  try {
    file = decodeURIComponent(afterAuthority.slice(1))
  } catch {
    return bad('is not valid percent-encoding')
  }
  if (file === '') bad('names no file')
  return resolvePath(cwd, file)
}

function resolvePath(cwd: string, file: string): string {
  return file === MEMORY ? MEMORY : resolve(cwd, file)
}

const DIALECT_NAMES = { postgresql: 'PostgreSQL', mysql: 'MySQL' } as const

/** The `db` engine's name on `dialect`: `db:sqlite`, `db:postgresql`, `db:mysql`. */
function dbName(dialect: SqlDriver['dialect']): string {
  return `db:${dialect}`
}

/**
 * The `db` engine for `settings.databaseUrl`. Opens synchronously on SQLite (and creates
 * `django_session` if missing); asynchronously on PostgreSQL and MySQL, after one query
 * that proves the connection. A missing driver package throws `ImproperlyConfigured` at
 * once. `nameOf` names the engine for its dialect (default `db:<dialect>`): an engine built
 * over this one (`cached_db`, as Django's subclass) reports what it decodes under its own name.
 * Django: `django.contrib.sessions.backends.db.SessionStore`.
 */
export function dbEngine(context: EngineContext, nameOf: (dialect: SqlDriver['dialect']) => string = dbName): DbEngine | Promise<DbEngine> {
  const target = parseDatabaseUrl(context.settings.databaseUrl)
  if (target.dialect === 'sqlite') return sqlEngine(openSqlite(target.filename), context, nameOf('sqlite'))
  const { url } = target
  const { logger } = context.settings
  const scrub = urlScrubber(url)
  const opening: Promise<SqlDriver> =
    target.dialect === 'postgresql'
      ? openPostgres(url, {
          onIdleError: (error) => logger.error(`an idle PostgreSQL connection to ${redactUrl(url)} failed: ${scrub(firstLineOf(error))}`),
        })
      : openMysql(url)
  return opening.then(
    (driver) => sqlEngine(driver, context, nameOf(driver.dialect)),
    (error: unknown) => {
      if (error instanceof SessionError) throw error
      throw new StoreUnavailable(
        `sessionkit: cannot connect to ${/^mariadb:/i.test(url) ? 'MariaDB' : DIALECT_NAMES[target.dialect]} at ${redactUrl(url)}: ${scrub(firstLineOf(error))}`,
        { cause: error },
      )
    },
  )
}

/** The reason of a driver's error on one line; `AggregateError`s (one per address tried) say their first. */
function firstLineOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const first = error instanceof AggregateError ? (error.errors[0] as unknown) : undefined
  const message = error.message || (first instanceof Error ? first.message : '') || (error as { code?: string }).code || error.name
  return message.split('\n', 1)[0]!.trim()
}

/**
 * The `db` engine over any {@link SqlDriver}. Each operation is one statement, as Django's:
 * - `load`: `SELECT session_data … WHERE session_key = ? AND expire_date > now`; the data
 *   goes through the codec (undecodable data is an empty `Map` and one warning);
 * - `save` with `mustCreate`: a plain `INSERT`, a taken key is `CreateError`; otherwise an
 *   `UPDATE`, and no row updated is `UpdateError` (a deleted session is never resurrected);
 * - `exists`: any row under the key, expired or not (Django: `filter(session_key=…).exists()`);
 * - `delete`: one `DELETE`, a missing row is not an error;
 * - `clearExpired`: deletes rows with `expire_date < now` in batches of
 *   {@link CLEAR_BATCH_SIZE}, yielding to the event loop between batches, so it neither
 *   loads the rows nor holds the write lock for long. Django: `clearsessions`.
 *
 * - `lock` (when the driver has `acquireLock`): a row in `sessionkit_lock`, polled with a
 *   jittered backoff until `waitMs`; `clearExpired` also deletes expired lock rows.
 *
 * Other database errors propagate (the middleware answers 503). `name` defaults to `db:<dialect>`.
 */
export function sqlEngine(driver: SqlDriver, { settings, codec }: EngineContext, name = dbName(driver.dialect)): DbEngine {
  const { acquireLock, releaseLock } = driver
  const lock =
    acquireLock && releaseLock
      ? {
          /** Lock times are real time (`Date.now`), not `settings.now`: locks are about real concurrency. */
          async lock(key: string, options: LockOptions): Promise<ReleaseLock> {
            const { waitMs, ttlMs } = checkLockOptions(options)
            const token = lockToken()
            await pollLock(() => {
              const now = Date.now()
              return acquireLock.call(driver, key, token, now + ttlMs, now)
            }, waitMs)
            return async () => {
              await releaseLock.call(driver, key, token)
            }
          },
        }
      : {}
  return {
    name,
    driver,
    ...lock,
    async load(key) {
      const stored = await driver.load(key, new Date(settings.now()))
      return stored === null ? null : { data: codec.decode(stored, name), version: stored }
    },
    async exists(key) {
      return driver.exists(key)
    },
    async save(key, data, { mustCreate, expireDate, expected }) {
      const encoded = codec.encode(data)
      if (mustCreate) {
        if (!(await driver.insert(key, encoded, expireDate))) throw new CreateError()
      } else if (!(await driver.update(key, encoded, expireDate, expected))) {
        throw new UpdateError()
      }
      return { key, version: encoded }
    },
    async delete(key) {
      await driver.delete(key)
    },
    async clearExpired(onProgress) {
      const now = new Date(settings.now())
      let total = 0
      for (;;) {
        const deleted = await driver.clearExpiredBatch(now, CLEAR_BATCH_SIZE)
        total += deleted
        if (deleted > 0) onProgress?.(total)
        // A short batch means nothing older than `now` is left.
        if (deleted < CLEAR_BATCH_SIZE) {
          await driver.clearExpiredLocks?.(Date.now())
          return total
        }
        await new Promise<void>((resolve) => setImmediate(resolve))
      }
    },
    async migrate() {
      await driver.migrate()
    },
    async migrateReport() {
      return driver.migrate()
    },
    async close() {
      await driver.close()
    },
  }
}
