/**
 * The SQLite driver of the `db` engine, on better-sqlite3 12.x: an optional peer
 * dependency, loaded on first use so that apps on other engines never need it.
 *
 * The connection runs in WAL mode with `synchronous = NORMAL` (readers never wait for the
 * writer; a commit costs no fsync until checkpoint) and waits up to 5 s for a lock held by
 * another process (`busy_timeout`), e.g. a `sessionkit clearsessions` run by cron. Every
 * statement is prepared once, when the driver opens.
 *
 * better-sqlite3 is synchronous: each call blocks the event loop for the time of one
 * indexed statement (microseconds), which is faster than any asynchronous round trip.
 */
import type BetterSqlite3 from 'better-sqlite3'
import { ImproperlyConfigured } from '../errors.js'
import { requirePeer } from '../peers.js'
import { EXPIRE_INDEX, LOCK_TABLE, SESSION_TABLE, statementCounter, toDjangoDateTime, type MigrateReport, type SqlDriver, type SqlStats } from './sql.js'

type DatabaseConstructor = typeof BetterSqlite3
type Database = BetterSqlite3.Database

/** Django's table, exactly as `sessions.0001_initial` creates it on SQLite. */
export const CREATE_TABLE =
  `CREATE TABLE "${SESSION_TABLE}" ("session_key" varchar(40) NOT NULL PRIMARY KEY, ` +
  '"session_data" text NOT NULL, "expire_date" datetime NOT NULL)'

/** Django's index on `expire_date` (the name is Django's hash-suffixed one). */
export const CREATE_INDEX = `CREATE INDEX "${EXPIRE_INDEX}" ON "${SESSION_TABLE}" ("expire_date")`

/** sessionkit's lock table (see `LOCK_TABLE`): created by the first lock, never by `migrate()` or at open. */
export const CREATE_LOCK_TABLE =
  `CREATE TABLE IF NOT EXISTS "${LOCK_TABLE}" ("session_key" varchar(40) NOT NULL PRIMARY KEY, ` +
  '"token" varchar(64) NOT NULL, "expires_at" bigint NOT NULL)'

const MISSING =
  'sessionkit: the db engine on SQLite needs better-sqlite3 12.x: npm install better-sqlite3@12'

/**
 * better-sqlite3's `Database` class, required synchronously (the registry opens SQLite
 * engines synchronously). Throws `ImproperlyConfigured` when the package is not installed, or
 * installed but not loadable. `load` is for tests.
 */
export function loadBetterSqlite3(load?: (id: string) => unknown): DatabaseConstructor {
  return requirePeer('better-sqlite3', {
    missing: MISSING,
    broken: (reason) => `sessionkit: better-sqlite3 is installed but does not load (${reason}); reinstall it for this Node.js: npm rebuild better-sqlite3`,
    load,
  }) as DatabaseConstructor
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0] ?? message
}

/** The SQLite driver; `database` is the better-sqlite3 handle, for tests and diagnostics. */
export interface SqliteDriver extends SqlDriver {
  readonly dialect: 'sqlite'
  readonly database: Database
  readonly stats: SqlStats
  load(key: string, now: Date): string | null
  insert(key: string, data: string, expireDate: Date): boolean
  update(key: string, data: string, expireDate: Date, expected?: string | null): boolean
  delete(key: string): void
  exists(key: string): boolean
  clearExpiredBatch(now: Date, limit: number): number
  acquireLock(key: string, token: string, expiresAt: number, now: number): boolean
  releaseLock(key: string, token: string): void
  clearExpiredLocks(now: number): number
  migrate(): MigrateReport
  close(): void
}

/**
 * Open `filename` (an absolute path, or `:memory:`) and create `django_session` when it is
 * missing, so that SQLite needs no set-up step. Throws `ImproperlyConfigured` when
 * better-sqlite3 is missing or the file cannot be opened.
 */
export function openSqlite(filename: string): SqliteDriver {
  const Database = loadBetterSqlite3()
  let db: Database
  try {
    db = new Database(filename)
  } catch (error) {
    throw new ImproperlyConfigured(
      `sessionkit: cannot open the SQLite database ${filename}: ${firstLine((error as Error).message)}`,
      { cause: error },
    )
  }
  try {
    if (filename !== ':memory:') db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.pragma('busy_timeout = 5000')
    return sqliteDriver(db, filename)
  } catch (error) {
    db.close()
    throw error
  }
}

function sqliteDriver(db: Database, filename: string): SqliteDriver {
  // Created at open (see openSqlite) and reported by the first migrate().
  let createdAtOpen = ensureSchema(db)

  const loadStmt = db.prepare<[string, string], string>(
    'SELECT session_data FROM django_session WHERE session_key = ? AND expire_date > ?',
  ).pluck()
  const insertStmt = db.prepare<[string, string, string]>(
    'INSERT INTO django_session (session_key, session_data, expire_date) VALUES (?, ?, ?)',
  )
  const updateStmt = db.prepare<[string, string, string]>(
    'UPDATE django_session SET session_data = ?, expire_date = ? WHERE session_key = ?',
  )
  const updateIfStmt = db.prepare<[string, string, string, string]>(
    'UPDATE django_session SET session_data = ?, expire_date = ? WHERE session_key = ? AND session_data = ?',
  )
  const deleteStmt = db.prepare<[string]>('DELETE FROM django_session WHERE session_key = ?')
  const existsStmt = db.prepare<[string], number>('SELECT 1 FROM django_session WHERE session_key = ?').pluck()
  // rowid batches: each DELETE holds the write lock for at most `limit` rows.
  const clearStmt = db.prepare<[string, number]>(
    'DELETE FROM django_session WHERE rowid IN (SELECT rowid FROM django_session WHERE expire_date < ? LIMIT ?)',
  )

  const { stats, count } = statementCounter()

  /** The lock statements, prepared once the table exists (made by the first lock). */
  let lockStmts:
    | {
        acquire: BetterSqlite3.Statement<[string, string, number, number]>
        release: BetterSqlite3.Statement<[string, string]>
        clear: BetterSqlite3.Statement<[number]>
      }
    | undefined
  const lockTable = (create: boolean): typeof lockStmts => {
    if (lockStmts) return lockStmts
    if (!create && db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessionkit_lock'").get() === undefined) return undefined
    if (create) db.exec(CREATE_LOCK_TABLE)
    lockStmts = {
      // Insert, or take over a row that expired: one atomic statement (an UPSERT).
      acquire: db.prepare(
        'INSERT INTO sessionkit_lock (session_key, token, expires_at) VALUES (?, ?, ?) ON CONFLICT (session_key) ' +
          'DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at WHERE sessionkit_lock.expires_at < ?',
      ),
      release: db.prepare('DELETE FROM sessionkit_lock WHERE session_key = ? AND token = ?'),
      clear: db.prepare('DELETE FROM sessionkit_lock WHERE expires_at < ?'),
    }
    return lockStmts
  }

  return {
    dialect: 'sqlite',
    database: db,
    stats,
    load(key, now) {
      count('load')
      return loadStmt.get(key, toDjangoDateTime(now)) ?? null
    },
    insert(key, data, expireDate) {
      count('insert')
      try {
        insertStmt.run(key, data, toDjangoDateTime(expireDate))
        return true
      } catch (error) {
        if ((error as { code?: unknown }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false
        throw error
      }
    },
    update(key, data, expireDate, expected) {
      count('update')
      const when = toDjangoDateTime(expireDate)
      return (expected == null ? updateStmt.run(data, when, key) : updateIfStmt.run(data, when, key, expected)).changes > 0
    },
    delete(key) {
      count('delete')
      deleteStmt.run(key)
    },
    exists(key) {
      count('exists')
      return existsStmt.get(key) !== undefined
    },
    clearExpiredBatch(now, limit) {
      count('clearExpired')
      return clearStmt.run(toDjangoDateTime(now), limit).changes
    },
    acquireLock(key, token, expiresAt, now) {
      const stmts = lockTable(true)!
      count('lock')
      return stmts.acquire.run(key, token, expiresAt, now).changes > 0
    },
    releaseLock(key, token) {
      const stmts = lockTable(false)
      if (!stmts) return
      count('lock')
      stmts.release.run(key, token)
    },
    clearExpiredLocks(now) {
      const stmts = lockTable(false)
      if (!stmts) return 0
      count('lock')
      return stmts.clear.run(now).changes
    },
    migrate() {
      const created = [...createdAtOpen, ...ensureSchema(db)]
      createdAtOpen = []
      return { created, where: filename }
    },
    close() {
      if (db.open) db.close()
    },
  }
}

/**
 * Create the table and the index if missing, with Django's exact DDL, and say what was
 * created. The check is read-only when both exist (a read-only file still opens); creation
 * runs in an IMMEDIATE transaction so that two processes opening a new file do not race.
 */
function ensureSchema(db: Database): string[] {
  const present = db.prepare<[string, string], string>('SELECT name FROM sqlite_master WHERE name IN (?, ?)').pluck()
  const missing = (): Set<string> => {
    const have = new Set(present.all(SESSION_TABLE, EXPIRE_INDEX))
    return new Set([SESSION_TABLE, EXPIRE_INDEX].filter((n) => !have.has(n)))
  }
  if (missing().size === 0) return []
  return db
    .transaction(() => {
      const todo = missing()
      const created: string[] = []
      if (todo.has(SESSION_TABLE)) {
        db.exec(CREATE_TABLE)
        created.push(`table ${SESSION_TABLE}`)
      }
      if (todo.has(EXPIRE_INDEX)) {
        db.exec(CREATE_INDEX)
        created.push(`index ${EXPIRE_INDEX}`)
      }
      return created
    })
    .immediate()
}
