/**
 * What the `db` engine needs from a SQL database, in one leaf module that the engine and every
 * driver import (and that imports no driver): the driver contract ({@link SqlDriver}), what
 * `migrate()` reports, the statement counters, and Django's date text. A driver for another
 * database or runtime is one file implementing {@link SqlDriver} on top of this module.
 */

/** Django's table (`sessions.0001_initial`): the same name on every database. */
export const SESSION_TABLE = 'django_session'

/** Django's index on `expire_date`, under Django's hash-suffixed name. */
export const EXPIRE_INDEX = 'django_session_expire_date_a5c62663'

/** Django's `_like` index on `session_key`, which Django makes on PostgreSQL only (`LIKE 'abc%'` on a varchar). */
export const LIKE_INDEX = 'django_session_session_key_c0390e0f_like'

/**
 * sessionkit's lock table (`session.lock()`), not Django's: each driver creates it with the
 * first lock, never in `migrate()`, so that a database whose app never locks keeps exactly
 * Django's schema.
 */
export const LOCK_TABLE = 'sessionkit_lock'

/** How a driver reaches its lock table, which is made only when a lock is first taken (see {@link LOCK_TABLE}). */
export interface LockTableOptions {
  /** Run `CREATE TABLE IF NOT EXISTS` for the lock table. */
  create(): Promise<unknown>
  /** Whether `error` says the table does not exist (PostgreSQL `42P01`, MySQL `ER_NO_SUCH_TABLE`). */
  missing(error: unknown): boolean
  /** Whether a failed `create` lost a race with another process making the same table (then it is there). */
  raced?(error: unknown): boolean
}

/** The lock table of one driver: its statements run through here. */
export interface LockTable {
  /**
   * Run a lock statement; when the table is missing (no lock was ever taken), make it and run
   * the statement again. Never a `CREATE` while the table exists: a database user without the
   * right to create tables works on a table made for it. Concurrent first locks share one `CREATE`.
   */
  run<T>(statement: () => Promise<T>): Promise<T>
  /** Run a statement that has nothing to do when the table was never made (clearing expired locks): `absent` then. */
  ifPresent<T>(statement: () => Promise<T>, absent: T): Promise<T>
}

/** The lock table made on demand (see {@link LockTable}). */
export function lockTableOnDemand({ create, missing, raced = () => false }: LockTableOptions): LockTable {
  let making: Promise<void> | undefined
  const make = (): Promise<void> => {
    making ??= create().then(
      () => undefined,
      (error: unknown) => {
        if (raced(error)) return
        making = undefined
        throw error
      },
    )
    return making
  }
  return {
    async run(statement) {
      try {
        return await statement()
      } catch (error) {
        if (!missing(error)) throw error
        await make()
        making = undefined // made: a later "missing" (dropped behind our back) makes it again
        return statement()
      }
    },
    async ifPresent(statement, absent) {
      try {
        return await statement()
      } catch (error) {
        if (missing(error)) return absent // no lock was ever taken
        throw error
      }
    },
  }
}

/** What `migrate()` did: the objects it created (none when all were there) and where. */
export interface MigrateReport {
  /** E.g. `['table django_session', 'index django_session_expire_date_a5c62663']`; empty when nothing was missing. */
  created: string[]
  /** The database, for messages: a file path, `:memory:`, or a URL with its password redacted. */
  where: string
}

/**
 * What the `db` engine needs from a database: one method per statement it runs. A driver
 * for another database (PostgreSQL, MySQL) implements this and plugs into `sqlEngine` (`engines/db.ts`).
 * Synchronous drivers (SQLite) may answer without a promise.
 */
export interface SqlDriver {
  readonly dialect: 'sqlite' | 'postgresql' | 'mysql'
  /** `session_data` of the row under `key` whose `expire_date` is after `now`, or `null`. One query. */
  load(key: string, now: Date): string | null | Promise<string | null>
  /** INSERT the row; `false` (not an error) when the key is taken. One statement. */
  insert(key: string, data: string, expireDate: Date): boolean | Promise<boolean>
  /**
   * UPDATE the row; `false` when no row has that key or, with `expected`, when its
   * `session_data` is no longer `expected` (compare-and-set in the same statement). One statement.
   */
  update(key: string, data: string, expireDate: Date, expected?: string | null): boolean | Promise<boolean>
  /** DELETE the row, if any. One statement. */
  delete(key: string): void | Promise<void>
  /** Whether a row has that key, expired or not (Django's `exists`). One query. */
  exists(key: string): boolean | Promise<boolean>
  /** Delete at most `limit` rows whose `expire_date` is before `now`; how many went. One statement. */
  clearExpiredBatch(now: Date, limit: number): number | Promise<number>
  /**
   * Session locks (optional; the `db` engine supports `session.lock()` only with them), in
   * the table `sessionkit_lock (session_key varchar(40) PRIMARY KEY, token varchar(64) NOT
   * NULL, expires_at bigint NOT NULL)` — not a Django table; `expires_at` is milliseconds
   * since the epoch. The driver creates the table when it is first needed (`CREATE TABLE IF
   * NOT EXISTS`), so a database whose app never locks keeps exactly Django's schema.
   *
   * `acquireLock`: take the lock of `key` for `token` until `expiresAt` if no row has it, or
   * if its row expired before `now` (taken over); `true` when taken. At most two statements.
   */
  acquireLock?(key: string, token: string, expiresAt: number, now: number): boolean | Promise<boolean>
  /** `DELETE FROM sessionkit_lock WHERE session_key = ? AND token = ?`. One statement. */
  releaseLock?(key: string, token: string): void | Promise<void>
  /** Delete the lock rows that expired before `now`; none (no statement) when the table was never made. */
  clearExpiredLocks?(now: number): number | Promise<number>
  /** Create the table and index if missing; idempotent. */
  migrate(): MigrateReport | Promise<MigrateReport>
  /** Release the connection; idempotent. */
  close(): void | Promise<void>
}

/**
 * `expire_date` as Django writes a `DateTimeField` on SQLite with `USE_TZ = True`:
 * `str()` of the naive UTC datetime, `YYYY-MM-DD HH:MM:SS.ffffff`, the fraction left out
 * when the microseconds are 0. SQLite compares these as text, and so does Django's query.
 */
export function toDjangoDateTime(date: Date): string {
  const year = date.getUTCFullYear()
  // Python's datetime stops at year 9999; past it the text would no longer sort.
  if (!(year >= 1 && year <= 9999)) throw new RangeError(`sessionkit: expire_date ${String(date)} is outside years 1 to 9999`)
  const iso = date.toISOString() // 2030-01-02T03:04:05.678Z
  const ms = date.getUTCMilliseconds()
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${ms === 0 ? '' : `.${String(ms).padStart(3, '0')}000`}`
}

/** Statements run, counted per kind; for tests and benchmarks. */
export interface SqlStats {
  /** Every statement the engine ran (schema checks excluded). */
  statements: number
  load: number
  insert: number
  update: number
  delete: number
  exists: number
  clearExpired: number
  /** Statements on the lock table (`session.lock()`): take, release, clear expired. */
  lock: number
}

/** A kind of statement {@link SqlStats} counts. */
export type SqlStatementKind = Exclude<keyof SqlStats, 'statements'>

/** Fresh counters, and the function that counts one statement of a kind. */
export function statementCounter(): { stats: SqlStats; count(kind: SqlStatementKind): void } {
  const stats: SqlStats = { statements: 0, load: 0, insert: 0, update: 0, delete: 0, exists: 0, clearExpired: 0, lock: 0 }
  return {
    stats,
    count(kind) {
      stats.statements++
      stats[kind]++
    },
  }
}
