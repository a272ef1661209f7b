/**
 * The contract every SQL driver of the `db` engine passes (`SqlDriver` in src/drivers/sql.ts),
 * through the engine, on a real database: Django's CreateError and UpdateError, an unchanged
 * save, expiry by the injected clock, batched clearing, corrupt rows, Django's own stored data,
 * an idempotent `migrate`, one statement per operation, and an engine that closes cleanly.
 * Each driver's file (test/drivers/<driver>.test.ts) runs it with `describeSqlDriver` and adds
 * what is particular to its database (the exact DDL, its date type, its pools, its CLI output).
 *
 * A driver for another database or runtime (Bun's `bun:sqlite`, Node's `node:sqlite`) runs the
 * same suite by giving a {@link SqlTarget}.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { CLEAR_BATCH_SIZE, type DbEngine, type Settings, type Sessions } from 'sessionkit'
import { capturingLogger, dataOf, manualClock, type ManualClock } from 'sessionkit/testing'
import type { SqlStats } from '../../src/drivers/sql.ts'

/** 2023-11-14 22:13:20 UTC. */
export const T0 = 1_700_000_000_000
export const TWO_WEEKS = 14 * 24 * 3600 * 1000

/** What `engine.save` needs besides the data, for a two-week session. */
export const saveOptions = (mustCreate: boolean, expireDate = new Date(T0 + TWO_WEEKS)) => ({ mustCreate, expireDate, expiryAge: 1209600 })

/** A database of one's own, opened by the `db` engine (see {@link SqlTarget.open}). */
export interface SqlDatabase {
  sessions: Sessions
  engine: DbEngine & { driver: { stats: SqlStats } }
  clock: ManualClock
  logger: ReturnType<typeof capturingLogger>
  /** Insert a row as another application would; `expireDate` is UTC text, `YYYY-MM-DD HH:MM:SS`. */
  insertRow(key: string, data: string, expireDate: string): Promise<void>
  /** Insert `count` rows that expired in 2020. */
  seedExpired(count: number): Promise<void>
  /** Every `session_key` in the table, sorted. */
  keys(): Promise<string[]>
  /** Drop one of Django's indexes (the driver's `migrate` must make it again). */
  dropIndex(): Promise<void>
  /** The names of the indexes on `django_session`, as the database lists them. */
  indexes(): Promise<string[]>
  /** What `migrateReport().where` says of this database. */
  where: string
}

/** How the contract reaches one database through one driver. */
export interface SqlTarget {
  /** The database, for test names: `SQLite`, `PostgreSQL`, `MariaDB/MySQL`. */
  name: string
  /** The engine name's suffix: `sqlite`, `postgresql`, `mysql`. */
  dialect: string
  /** Why the suite is skipped (the database is absent), or `false`. */
  skip: string | false
  /** What `migrateReport().created` lists for a database that has nothing yet. */
  allCreated: readonly string[]
  /** The index {@link SqlDatabase.dropIndex} drops, as `migrateReport()` names it. */
  droppedIndex: string
  /** What a closed engine's `load` rejects with. */
  closedError: RegExp
  /**
   * Sessions (`settings` over a manual clock at T0 and a capturing logger) on a fresh database of
   * their own, closed and removed after `t`. `migrate: false` leaves the schema to the test, for a
   * database that needs `migrate` (SQLite creates its table as it opens, and reports it once).
   */
  open(t: TestContext, settings?: Partial<Settings>, options?: { migrate?: boolean }): Promise<SqlDatabase>
}

const vectors = JSON.parse(readFileSync(new URL('../fixtures/django-vectors.json', import.meta.url), 'utf8')) as {
  secretKey: string
  sessions: { name: string; json: string; dbSigned: string }[]
}

/** Register the contract for `target` under `describe('SQL driver contract: <name>')`. */
export function describeSqlDriver(target: SqlTarget): void {
  describe(`SQL driver contract: ${target.name}`, { skip: target.skip }, () => {
    it('migrate is idempotent, recreates only what is missing, and says where it worked (a URL without its password)', async (t) => {
      const db = await target.open(t, {}, { migrate: false })
      assert.deepEqual(await db.engine.migrateReport(), { created: [...target.allCreated], where: db.where })
      assert.deepEqual((await db.engine.migrateReport()).created, [])
      await db.engine.migrate()
      await db.dropIndex()
      assert.ok(!(await db.indexes()).includes(target.droppedIndex), 'dropped')
      assert.deepEqual((await db.engine.migrateReport()).created, [`index ${target.droppedIndex}`])
      assert.ok((await db.indexes()).includes(target.droppedIndex), 'made again')
      assert.deepEqual((await db.engine.migrateReport()).created, [])
    })

    it('runs one statement per load, create, update, exists and delete, counted by the driver', async (t) => {
      const { sessions, engine } = await target.open(t)
      const stats = engine.driver.stats
      const count = async (kind: keyof SqlStats, run: () => Promise<unknown>) => {
        const before = { ...stats }
        await run()
        assert.equal(stats.statements - before.statements, 1, `${kind}: statements`)
        assert.equal(stats[kind] - before[kind], 1, `${kind}: kind`)
      }
      const s = sessions.session()
      s.set('a', 1)
      await count('insert', () => s.save())
      const other = sessions.session(s.sessionKey)
      await count('load', () => other.load())
      other.set('a', 2)
      await count('update', () => other.save())
      await count('exists', () => other.exists(other.sessionKey!))
      await count('delete', () => other.destroy())
    })

    it('refuses to create over a taken key with CreateError and keeps the stored data', async (t) => {
      const { engine } = await target.open(t)
      const key = 'a'.repeat(32)
      await engine.save(key, new Map([['first', 1]]), saveOptions(true))
      await assert.rejects(engine.save(key, new Map([['second', 2]]), saveOptions(true)), { code: 'ERR_SESSION_CREATE' })
      assert.deepEqual(dataOf(await engine.load(key)), new Map([['first', 1]]))
    })

    it('refuses to update a session deleted meanwhile with UpdateError and does not resurrect it', async (t) => {
      const { sessions, engine } = await target.open(t)
      const s = sessions.session()
      s.set('a', 1)
      await s.save()
      await engine.delete(s.sessionKey!)
      s.set('a', 2)
      await assert.rejects(s.save(), { code: 'ERR_SESSION_UPDATE' })
      assert.equal(await engine.exists(s.sessionKey!), false)
    })

    it('saves a session whose data and expiry did not change', async (t) => {
      const { engine } = await target.open(t)
      const key = 'b'.repeat(32)
      await engine.save(key, new Map([['same', 1]]), saveOptions(true))
      await engine.save(key, new Map([['same', 1]]), saveOptions(false))
      await engine.save(key, new Map([['same', 1]]), saveOptions(false))
      assert.deepEqual(dataOf(await engine.load(key)), new Map([['same', 1]]))
    })

    it('round-trips non-ASCII text and 4-byte UTF-8 (emoji) in session_data', async (t) => {
      const { sessions } = await target.open(t)
      const s = sessions.session()
      s.update({ text: 'élève 😀 日本語', emoji: '🔑🙂', greek: 'κλειδί' })
      await s.save()
      const back = sessions.session(s.sessionKey)
      await back.load()
      assert.deepEqual(back.entries(), [['text', 'élève 😀 日本語'], ['emoji', '🔑🙂'], ['greek', 'κλειδί']])
    })

    it('hides expired rows from load, keeps them for exists, and clearExpired removes them (by the injected clock)', async (t) => {
      const { sessions, engine, clock } = await target.open(t)
      const short = sessions.session()
      short.set('a', 1)
      short.setExpiry(60)
      await short.save()
      const long = sessions.session()
      long.set('b', 2)
      await long.save()

      clock.advance(60) // expire_date == now: not live (Django: expire_date > now) yet not clearable (expire_date < now)
      assert.equal(await engine.load(short.sessionKey!), null)
      assert.equal(await engine.clearExpired(), 0)
      clock.advance(1)
      const reread = sessions.session(short.sessionKey)
      await reread.load()
      assert.equal(reread.sessionKey, null)
      assert.equal(await engine.exists(short.sessionKey!), true, 'Django’s exists() ignores expiry')
      assert.equal(await engine.clearExpired(), 1)
      assert.equal(await engine.exists(short.sessionKey!), false)
      assert.deepEqual(dataOf(await engine.load(long.sessionKey!)), new Map([['b', 2]]))
    })

    it('clears expired sessions in batches, reporting progress, and keeps live ones', async (t) => {
      const db = await target.open(t)
      await db.seedExpired(2500)
      for (const key of ['live0000001', 'live0000002', 'live0000003']) {
        await db.engine.save(key, new Map([['k', key]]), saveOptions(true))
      }
      const progress: number[] = []
      const before = db.engine.driver.stats.clearExpired
      assert.equal(await db.engine.clearExpired((deleted) => progress.push(deleted)), 2500)
      assert.deepEqual(progress, [CLEAR_BATCH_SIZE, 2 * CLEAR_BATCH_SIZE, 2500])
      assert.equal(db.engine.driver.stats.clearExpired - before, 3)
      assert.deepEqual(await db.keys(), ['live0000001', 'live0000002', 'live0000003'])
    })

    it('loads a row with corrupt session_data as an empty session and warns once, without the key', async (t) => {
      const db = await target.open(t)
      const key = 'corrupt0000000000000000000000000'
      await db.insertRow(key, 'bad:encoded:value', '2099-01-01 00:00:00')
      const s = db.sessions.session(key)
      await s.load()
      assert.deepEqual(s.entries(), [])
      assert.equal(s.sessionKey, key, 'the row exists, so the key is kept, as in Django')
      assert.equal(db.logger.warnings.length, 1)
      assert.match(db.logger.warnings[0]!, new RegExp(`db:${target.dialect}`))
      assert.doesNotMatch(db.logger.warnings[0]!, new RegExp(key))
    })

    it('reads session_data written by Django (fixture vectors)', async (t) => {
      const db = await target.open(t, { secretKey: vectors.secretKey })
      for (const [i, v] of vectors.sessions.entries()) {
        const key = `vector${String(i).padStart(10, '0')}`
        await db.insertRow(key, v.dbSigned, '2099-01-01 00:00:00')
        assert.deepEqual(dataOf(await db.engine.load(key)), new Map(Object.entries(JSON.parse(v.json) as object)), v.name)
      }
    })

    it('closes idempotently, and a closed engine fails loudly', async (t) => {
      const { sessions, engine } = await target.open(t)
      await engine.close()
      await engine.close()
      await sessions.close()
      await assert.rejects(engine.load('a'.repeat(32)), target.closedError)
    })
  })
}

/** A manual clock at {@link T0} and a capturing logger, under `settings`: what {@link SqlTarget.open} passes to `createSessions`. */
export function baseSettings(settings: Partial<Settings> = {}) {
  const clock = manualClock(T0)
  const logger = capturingLogger()
  return { clock, logger, settings: { secretKey: 'test', now: clock, logger, ...settings } satisfies Partial<Settings> }
}
