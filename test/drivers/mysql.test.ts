/**
 * The MariaDB/MySQL driver (mysql2): the SQL driver contract (test/helpers/sql-contract.ts), then
 * what is MySQL's own: Django's table in InnoDB and utf8mb4, concurrent migrations, one statement
 * per operation as the server counts them, an unchanged save with and without FOUND_ROWS, UTC
 * dates whatever the pool's timezone, the CLI, refused connections, and a pool passed in.
 *
 * Each test works in a database of its own (`sk_my_<hex>`), dropped afterwards, so test
 * files running in parallel never meet.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import mysql from 'mysql2/promise'
import mysqlCallbacks from 'mysql2'
import { createSessions, type Settings } from 'sessionkit'
import { capturingLogger, manualClock, dataOf } from 'sessionkit/testing'
import { sqlEngine, type DbEngine } from '../../src/engines/db.ts'
import { loadMysql2, mysqlDriver, type MysqlDriver } from '../../src/drivers/mysql.ts'
import { main } from '../../src/cli.ts'
import { MYSQL_URL, mysqlAvailable, mysqlScratch, type MysqlScratch } from '../helpers/databases.ts'
import { describeSqlDriver } from '../helpers/sql-contract.ts'

const skip = await mysqlAvailable()

/** 2023-11-14 22:13:20 UTC. */
const T0 = 1_700_000_000_000
const TWO_WEEKS = 14 * 24 * 3600 * 1000

/** Django's DDL on MySQL (`sqlmigrate sessions 0001`): the reference for the schema. */
const DJANGO_DDL = [
  'CREATE TABLE `django_session` (`session_key` varchar(40) NOT NULL PRIMARY KEY, `session_data` longtext NOT NULL, `expire_date` datetime(6) NOT NULL)',
  'CREATE INDEX `django_session_expire_date_a5c62663` ON `django_session` (`expire_date`)',
]

const ALL_CREATED = ['table django_session', 'index django_session_expire_date_a5c62663']

async function scratch(t: TestContext, label = 'my'): Promise<MysqlScratch> {
  const s = await mysqlScratch(label)
  t.after(() => s.drop())
  return s
}

/** Sessions on the URL of a fresh database, migrated; closed before the database is dropped. */
async function open(t: TestContext, settings: Partial<Settings> = {}, { migrate = true } = {}) {
  const db = await mysqlScratch('my')
  const clock = manualClock(T0)
  const logger = capturingLogger()
  const sessions = createSessions({ secretKey: 'test', databaseUrl: db.url, now: clock, logger, ...settings })
  t.after(async () => {
    await sessions.close()
    await db.drop()
  })
  const engine = (await sessions.ready()) as DbEngine
  if (migrate) await sessions.migrate()
  return { db, clock, logger, sessions, engine, driver: engine.driver as MysqlDriver }
}

async function rows<T>(pool: mysql.Pool, sql: string, values: unknown[] = []): Promise<T[]> {
  const [result] = await pool.query(sql, values)
  return result as T[]
}

async function showCreate(pool: mysql.Pool): Promise<string> {
  return (await rows<{ 'Create Table': string }>(pool, 'SHOW CREATE TABLE django_session'))[0]!['Create Table']
}

async function seedExpired(pool: mysql.Pool, count: number): Promise<void> {
  const values = Array.from({ length: count }, (_, i) => [`expired${String(i).padStart(8, '0')}`, 'x', '2020-01-01 00:00:00'])
  await pool.query('INSERT INTO django_session (session_key, session_data, expire_date) VALUES ?', [values])
}

async function cli(argv: string[], env: Record<string, string>, isTTY = false) {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, env, {
    stdout: { write: (s: string) => void (stdout += s) },
    stderr: { write: (s: string) => void (stderr += s), isTTY },
  })
  return { code, stdout, stderr }
}

const saveOptions = (mustCreate: boolean, expireDate = new Date(T0 + TWO_WEEKS)) => ({ mustCreate, expireDate, expiryAge: 1209600 })

describeSqlDriver({
  name: 'MariaDB/MySQL',
  dialect: 'mysql',
  skip,
  allCreated: ALL_CREATED,
  droppedIndex: 'django_session_expire_date_a5c62663',
  closedError: /closed/i,
  async open(t, settings = {}, options = {}) {
    const { db, clock, logger, sessions, engine } = await open(t, settings, options)
    return {
      sessions,
      engine: engine as DbEngine & { driver: MysqlDriver },
      clock,
      logger,
      where: db.url,
      async insertRow(key, data, expireDate) {
        await db.pool.query('INSERT INTO django_session VALUES (?, ?, ?)', [key, data, expireDate])
      },
      seedExpired: (count) => seedExpired(db.pool, count),
      async keys() {
        return (await rows<{ session_key: string }>(db.pool, 'SELECT session_key FROM django_session ORDER BY session_key')).map((r) => r.session_key)
      },
      async dropIndex() {
        await db.pool.query('DROP INDEX django_session_expire_date_a5c62663 ON django_session')
      },
      async indexes() {
        return (await rows<{ name: string }>(db.pool, 'SELECT DISTINCT INDEX_NAME AS name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ?', ['django_session'])).map((r) => r.name)
      },
    }
  },
})

describe('db engine on MariaDB/MySQL', { skip }, () => {
  it('creates django_session as Django’s migration does on MySQL, in InnoDB and utf8mb4', async (t) => {
    const { db, engine } = await open(t, {}, { migrate: false })
    assert.deepEqual((await engine.migrateReport()).created, ALL_CREATED)

    const django = await scratch(t, 'my_django')
    for (const ddl of DJANGO_DDL) await django.pool.query(ddl)
    assert.equal(await showCreate(db.pool), await showCreate(django.pool))

    const columns = await rows(
      db.pool,
      `SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable, COLUMN_KEY AS \`key\`
         FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'django_session' ORDER BY ORDINAL_POSITION`,
    )
    assert.deepEqual(columns, [
      { name: 'session_key', type: 'varchar(40)', nullable: 'NO', key: 'PRI' },
      { name: 'session_data', type: 'longtext', nullable: 'NO', key: '' },
      { name: 'expire_date', type: 'datetime(6)', nullable: 'NO', key: 'MUL' },
    ])
    const [table] = await rows<{ engine: string; collation: string }>(
      db.pool,
      "SELECT ENGINE AS engine, TABLE_COLLATION AS collation FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'django_session'",
    )
    assert.equal(table!.engine, 'InnoDB')
    assert.match(table!.collation, /^utf8mb4_/)
    const indexes = await rows(
      db.pool,
      `SELECT INDEX_NAME AS name, COLUMN_NAME AS \`column\`, NON_UNIQUE AS nonUnique
         FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'django_session' ORDER BY INDEX_NAME`,
    )
    assert.deepEqual(indexes, [
      { name: 'django_session_expire_date_a5c62663', column: 'expire_date', nonUnique: 1 },
      { name: 'PRIMARY', column: 'session_key', nonUnique: 0 },
    ])
  })

  it('lets several processes migrate at once: each object is created exactly once', async (t) => {
    const db = await scratch(t)
    const pools = Array.from({ length: 4 }, () => mysql.createPool({ uri: db.url, connectionLimit: 1 }))
    t.after(() => Promise.all(pools.map((p) => p.end())))
    const reports = await Promise.all(pools.map((p) => mysqlDriver(p).migrate()))
    assert.deepEqual(reports.flatMap((r) => r.created).sort(), [...ALL_CREATED].sort())
    assert.ok(reports.every((r) => r.where === `MySQL database "${db.database}"`), reports[0]!.where)
  })

  it('runs one statement per load and per save: counted by the driver and by the server', async (t) => {
    const db = await scratch(t)
    // One connection, so the server's session counters see every statement the driver sends.
    const pool = mysql.createPool({ uri: db.url, connectionLimit: 1 })
    t.after(() => pool.end())
    const driver = mysqlDriver(pool)
    await driver.migrate()
    const sessions = createSessions({ secretKey: 'test', now: manualClock(T0), engine: (ctx) => sqlEngine(driver, ctx) })
    t.after(() => sessions.close())
    await sessions.ready()
    const server = async () => {
      const status = await rows<{ Variable_name: string; Value: string }>(
        pool,
        "SHOW SESSION STATUS WHERE Variable_name IN ('Com_stmt_prepare', 'Com_stmt_execute')",
      )
      return Object.fromEntries(status.map((r) => [r.Variable_name, Number(r.Value)])) as Record<'Com_stmt_prepare' | 'Com_stmt_execute', number>
    }
    const step = async (label: string, kind: keyof MysqlDriver['stats'], action: () => Promise<unknown>, prepares: number) => {
      const before = { ...driver.stats }
      const serverBefore = await server()
      await action()
      const serverAfter = await server()
      assert.equal(driver.stats.statements - before.statements, 1, `${label}: statements`)
      assert.equal(driver.stats[kind] - before[kind], 1, `${label}: ${kind}`)
      assert.equal(serverAfter.Com_stmt_execute - serverBefore.Com_stmt_execute, 1, `${label}: executed on the server`)
      assert.equal(serverAfter.Com_stmt_prepare - serverBefore.Com_stmt_prepare, prepares, `${label}: prepared on the server`)
    }
    const s = sessions.session()
    s.set('a', 1)
    await step('create', 'insert', () => s.save(), 1)
    const again = sessions.session(s.sessionKey)
    await step('first load on the connection', 'load', () => again.load(), 1)
    again.set('a', 2)
    await step('first save on the connection', 'update', () => again.save(), 1)
    const third = sessions.session(s.sessionKey)
    await step('load', 'load', () => third.load(), 0)
    third.set('a', 3)
    await step('save', 'update', () => third.save(), 0)
  })

  it('lets other INSERT errors through (no INSERT IGNORE)', async (t) => {
    const { driver } = await open(t)
    await assert.rejects(Promise.resolve(driver.insert('k'.repeat(41), 'x', new Date(T0))), { errno: 1406 }) // ER_DATA_TOO_LONG
  })

  it('saves a session whose data and expiry did not change, in one statement', async (t) => {
    const { engine, driver, db } = await open(t)
    const key = 'b'.repeat(32)
    await engine.save(key, new Map([['same', 1]]), saveOptions(true))
    const before = driver.stats.statements
    await engine.save(key, new Map([['same', 1]]), saveOptions(false))
    assert.equal(driver.stats.statements - before, 1)
    assert.deepEqual(dataOf(await engine.load(key)), new Map([['same', 1]]))
    // Without FOUND_ROWS the server reports 0 affected rows here: what the flag is for.
    const bare = mysql.createPool({ uri: db.url, connectionLimit: 1, flags: ['-FOUND_ROWS'] })
    t.after(() => bare.end())
    const [header] = await bare.execute('UPDATE django_session SET session_data = session_data WHERE session_key = ?', [key])
    assert.equal((header as { affectedRows: number }).affectedRows, 0)
  })

  it('saves an unchanged session on a pool passed in without FOUND_ROWS, confirming with one query', async (t) => {
    const db = await scratch(t)
    const bare = mysql.createPool({ uri: db.url, connectionLimit: 2, flags: ['-FOUND_ROWS'] })
    t.after(() => bare.end())
    const driver = mysqlDriver(bare)
    await driver.migrate()
    const key = 'c'.repeat(32)
    assert.equal(await driver.insert(key, 'data', new Date(T0)), true)
    assert.equal(await driver.update(key, 'data', new Date(T0)), true, 'unchanged row, still there')
    assert.equal(await driver.update('d'.repeat(32), 'data', new Date(T0)), false, 'no such row')
    assert.equal(driver.stats.update, 2)
    assert.equal(driver.stats.exists, 2, 'each update that changed nothing was confirmed')
  })

  it('stores expire_date as naive UTC with microseconds, as Django does, whatever the pool’s timezone', async (t) => {
    const db = await scratch(t)
    const tokyo = mysql.createPool({ uri: db.url, connectionLimit: 1, timezone: '+09:00' })
    t.after(() => tokyo.end())
    const clock = manualClock(T0 + 123)
    for (const engine of [(ctx: Parameters<typeof sqlEngine>[1]) => sqlEngine(mysqlDriver(tokyo), ctx), undefined]) {
      const sessions = createSessions({ secretKey: 'test', now: clock, ...(engine ? { engine } : { databaseUrl: db.url }) })
      t.after(() => sessions.close())
      await sessions.migrate()
      const s = sessions.session()
      s.set('a', 1)
      await s.save()
      const [row] = await rows<{ utc: string }>(db.pool, 'SELECT CAST(expire_date AS CHAR) AS utc FROM django_session WHERE session_key = ?', [s.sessionKey])
      assert.equal(row!.utc, '2023-11-28 22:13:20.123000')
      clock.set(T0 + 123 + TWO_WEEKS - 1)
      assert.deepEqual(dataOf(await sessions.engine!.load(s.sessionKey!)), new Map([['a', 1]]))
      clock.advance(0.001)
      assert.equal(await sessions.engine!.load(s.sessionKey!), null)
      clock.set(T0 + 123)
    }
  })

  it('opens from mysql:// and mariadb:// URLs as the db:mysql engine', async (t) => {
    const db = await scratch(t)
    for (const url of [db.url, db.url.replace(/^mysql:/, 'mariadb:')]) {
      const sessions = createSessions({ secretKey: 'test', databaseUrl: url })
      t.after(() => sessions.close())
      assert.equal((await sessions.ready()).name, 'db:mysql')
    }
  })

  it('fails at start-up on a refused connection, naming the URL without its password', async () => {
    for (const [scheme, name] of [
      ['mysql', 'MySQL'],
      ['mariadb', 'MariaDB'],
    ]) {
      const sessions = createSessions({ secretKey: 'test', databaseUrl: `${scheme}://user:hunter2@127.0.0.1:1/test` })
      await assert.rejects(sessions.ready(), {
        code: 'ERR_STORE_UNAVAILABLE',
        message: `sessionkit: cannot connect to ${name} at ${scheme}://user:***@127.0.0.1:1/test: connect ECONNREFUSED 127.0.0.1:1`,
      })
      await sessions.close()
    }
  })

  it('fails at start-up on a URL that names no database', async () => {
    const url = new URL(MYSQL_URL)
    url.pathname = '/'
    const sessions = createSessions({ secretKey: 'test', databaseUrl: url.href })
    await assert.rejects(sessions.ready(), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_IMPROPERLY_CONFIGURED')
      assert.match(e.message, /names no database/)
      return true
    })
  })

  it('works on a pool passed in, promise or callback, and close() leaves it open', async (t) => {
    const db = await scratch(t)
    const callbacks = mysqlCallbacks.createPool({ uri: db.url, connectionLimit: 1 })
    t.after(() => new Promise<void>((resolve) => callbacks.end(() => resolve())))
    for (const pool of [db.pool, callbacks]) {
      const sessions = createSessions({ secretKey: 'test', engine: (ctx) => sqlEngine(mysqlDriver(pool), ctx) })
      await sessions.migrate()
      const s = sessions.session()
      s.set('x', 1)
      await s.save()
      await sessions.close()
      await sessions.close()
    }
    assert.deepEqual(await rows(db.pool, 'SELECT count(*) AS n FROM django_session'), [{ n: 2 }])
    assert.deepEqual(await rows(callbacks.promise(), 'SELECT 1 AS one'), [{ one: 1 }])
  })

  it('refuses something that is not a pool', () => {
    assert.throws(() => mysqlDriver({} as never), { code: 'ERR_IMPROPERLY_CONFIGURED' })
  })
})

describe('sessionkit migrate and clearsessions on MariaDB/MySQL', { skip }, () => {
  it('migrate creates the table and index, then has nothing to do; no SECRET_KEY needed', async (t) => {
    const db = await scratch(t)
    const env = { DATABASE_URL: db.url }
    assert.deepEqual(await cli(['migrate'], env), { code: 0, stdout: `created ${ALL_CREATED.join(' and ')} in ${db.url}\n`, stderr: '' })
    assert.deepEqual(await cli(['migrate'], env), { code: 0, stdout: `django_session is already in place in ${db.url}; nothing to do\n`, stderr: '' })
  })

  it('clearsessions deletes expired rows in batches, showing progress on a terminal, and keeps live ones', async (t) => {
    const db = await scratch(t)
    const env = { DATABASE_URL: db.url }
    assert.equal((await cli(['migrate'], env)).code, 0)
    await seedExpired(db.pool, 2500)
    await db.pool.query("INSERT INTO django_session VALUES ('live0000001', 'x', '2099-01-01 00:00:00'), ('live0000002', 'x', '2099-01-01 00:00:00')")
    const { code, stdout, stderr } = await cli(['clearsessions'], env, true)
    assert.equal(code, 0, stderr)
    assert.equal(stdout, 'deleted 2500 expired sessions (db:mysql)\n')
    assert.equal(stderr, '\rdeleting expired sessions… 1000\rdeleting expired sessions… 2000\rdeleting expired sessions… 2500\n')
    const keys = await rows<{ session_key: string }>(db.pool, 'SELECT session_key FROM django_session ORDER BY session_key')
    assert.deepEqual(keys.map((r) => r.session_key), ['live0000001', 'live0000002'])
  })

  it('fails with one line naming the URL without its password when the server refuses', async () => {
    const { code, stdout, stderr } = await cli(['migrate'], { DATABASE_URL: 'mysql://app:hunter2@127.0.0.1:1/app' })
    assert.equal(code, 1)
    assert.equal(stdout, '')
    assert.equal(stderr, 'sessionkit: cannot connect to MySQL at mysql://app:***@127.0.0.1:1/app: connect ECONNREFUSED 127.0.0.1:1\n')
  })
})

describe('the mysql2 package', () => {
  it('is an optional peer: missing, the error says how to install it', () => {
    const missing = Object.assign(new Error("Cannot find module 'mysql2/promise'\nRequire stack: …"), { code: 'MODULE_NOT_FOUND' })
    assert.throws(
      () => loadMysql2(() => { throw missing }),
      (e: Error & { code?: string }) => e.code === 'ERR_IMPROPERLY_CONFIGURED' && e.message.includes('npm install mysql2'),
    )
  })
})
