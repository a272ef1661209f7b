/**
 * The PostgreSQL driver (pg): the SQL driver contract (test/helpers/sql-contract.ts), then what is
 * PostgreSQL's own: Django's table and indexes, concurrent migrations, one named prepared
 * statement per operation, `timestamptz` whatever the connection's TimeZone, the CLI, refused
 * connections, an idle connection killed, and a pool or client passed in.
 *
 * Each test works in a schema of its own (`sk_pg_<hex>`, through `search_path`), dropped
 * afterwards, so test files running in parallel never meet.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { createSessions, type Settings } from 'sessionkit'
import { capturingLogger, manualClock, dataOf } from 'sessionkit/testing'
import { sqlEngine, type DbEngine } from '../../src/engines/db.ts'
import { loadPg, postgresDriver, type PostgresDriver } from '../../src/drivers/postgres.ts'
import { main } from '../../src/cli.ts'
import { POSTGRES_URL, postgresAvailable, postgresScratch, type PostgresScratch } from '../helpers/databases.ts'
import { describeSqlDriver } from '../helpers/sql-contract.ts'

const skip = await postgresAvailable()

/** 2023-11-14 22:13:20 UTC. */
const T0 = 1_700_000_000_000
const TWO_WEEKS = 14 * 24 * 3600 * 1000

/** Django's DDL on PostgreSQL (`sqlmigrate sessions 0001`), the reference for the schema. */
const DJANGO_DDL = [
  'CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" timestamp with time zone NOT NULL)',
  'CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")',
  'CREATE INDEX "django_session_session_key_c0390e0f_like" ON "django_session" ("session_key" varchar_pattern_ops)',
]

const ALL_CREATED = [
  'table django_session',
  'index django_session_expire_date_a5c62663',
  'index django_session_session_key_c0390e0f_like',
]

async function scratch(t: TestContext, label = 'pg'): Promise<PostgresScratch> {
  const s = await postgresScratch(label)
  t.after(() => s.drop())
  return s
}

/** Sessions on the URL of a fresh schema, migrated; closed before the schema is dropped. */
async function open(t: TestContext, settings: Partial<Settings> = {}, { migrate = true } = {}) {
  const db = await postgresScratch('pg')
  const clock = manualClock(T0)
  const logger = capturingLogger()
  const sessions = createSessions({ secretKey: 'test', databaseUrl: db.url, now: clock, logger, ...settings })
  t.after(async () => {
    await sessions.close()
    await db.drop()
  })
  const engine = (await sessions.ready()) as DbEngine
  if (migrate) await sessions.migrate()
  return { db, clock, logger, sessions, engine, driver: engine.driver as PostgresDriver }
}

async function columns(pool: pg.Pool, schema: string) {
  const { rows } = await pool.query(
    `SELECT column_name, data_type, character_maximum_length, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'django_session' ORDER BY ordinal_position`,
    [schema],
  )
  return rows
}

async function indexes(pool: pg.Pool, schema: string) {
  const { rows } = await pool.query<{ indexname: string; indexdef: string }>(
    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'django_session' ORDER BY indexname",
    [schema],
  )
  return rows.map((r) => ({ name: r.indexname, def: r.indexdef.replace(`${schema}.`, '<schema>.') }))
}

async function seedExpired(pool: pg.Pool, count: number): Promise<void> {
  await pool.query(
    `INSERT INTO django_session SELECT 'expired' || lpad(g::text, 8, '0'), 'x', '2020-01-01 00:00:00+00' FROM generate_series(1, $1::int) g`,
    [count],
  )
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

describeSqlDriver({
  name: 'PostgreSQL',
  dialect: 'postgresql',
  skip,
  allCreated: ALL_CREATED,
  droppedIndex: 'django_session_session_key_c0390e0f_like',
  closedError: /after calling end on the pool/,
  async open(t, settings = {}, options = {}) {
    const { db, clock, logger, sessions, engine } = await open(t, settings, options)
    return {
      sessions,
      engine: engine as DbEngine & { driver: PostgresDriver },
      clock,
      logger,
      where: db.url,
      async insertRow(key, data, expireDate) {
        await db.pool.query('INSERT INTO django_session VALUES ($1, $2, $3)', [key, data, `${expireDate}+00`])
      },
      seedExpired: (count) => seedExpired(db.pool, count),
      async keys() {
        const { rows } = await db.pool.query<{ session_key: string }>('SELECT session_key FROM django_session ORDER BY session_key')
        return rows.map((r) => r.session_key)
      },
      async dropIndex() {
        await db.pool.query('DROP INDEX django_session_session_key_c0390e0f_like')
      },
      async indexes() {
        return (await indexes(db.pool, db.schema)).map((i) => i.name)
      },
    }
  },
})

describe('db engine on PostgreSQL', { skip }, () => {
  it('creates django_session with the columns and indexes Django’s migration creates', async (t) => {
    const { db, engine } = await open(t, {}, { migrate: false })
    assert.deepEqual((await engine.migrateReport()).created, ALL_CREATED)

    const django = await scratch(t, 'pg_django')
    for (const ddl of DJANGO_DDL) await django.pool.query(ddl)
    assert.deepEqual(await columns(db.pool, db.schema), await columns(django.pool, django.schema))
    assert.deepEqual(await indexes(db.pool, db.schema), await indexes(django.pool, django.schema))

    assert.deepEqual(await columns(db.pool, db.schema), [
      { column_name: 'session_key', data_type: 'character varying', character_maximum_length: 40, is_nullable: 'NO', column_default: null },
      { column_name: 'session_data', data_type: 'text', character_maximum_length: null, is_nullable: 'NO', column_default: null },
      { column_name: 'expire_date', data_type: 'timestamp with time zone', character_maximum_length: null, is_nullable: 'NO', column_default: null },
    ])
    assert.deepEqual(await indexes(db.pool, db.schema), [
      { name: 'django_session_expire_date_a5c62663', def: 'CREATE INDEX django_session_expire_date_a5c62663 ON <schema>.django_session USING btree (expire_date)' },
      { name: 'django_session_pkey', def: 'CREATE UNIQUE INDEX django_session_pkey ON <schema>.django_session USING btree (session_key)' },
      {
        name: 'django_session_session_key_c0390e0f_like',
        def: 'CREATE INDEX django_session_session_key_c0390e0f_like ON <schema>.django_session USING btree (session_key varchar_pattern_ops)',
      },
    ])
  })

  it('lets several processes migrate at once: each object is created exactly once', async (t) => {
    const db = await scratch(t)
    const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: db.url, max: 1 }))
    t.after(() => Promise.all(pools.map((p) => p.end())))
    const reports = await Promise.all(pools.map((p) => postgresDriver(p).migrate()))
    assert.deepEqual(reports.flatMap((r) => r.created).sort(), [...ALL_CREATED].sort())
    assert.ok(reports.every((r) => r.where === `PostgreSQL database "${new URL(POSTGRES_URL).pathname.slice(1)}", schema "${db.schema}"`), reports[0]!.where)
  })

  it('runs one query per load and per save, each a named prepared statement', async (t) => {
    const db = await scratch(t)
    const pool = new pg.Pool({ connectionString: db.url, max: 1 })
    t.after(() => pool.end())
    const sent: { name?: string; text: string }[] = []
    const recording = new Proxy(pool, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target)
        if (property !== 'query' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value
        return (config: { name?: string; text: string }, ...rest: unknown[]) => {
          sent.push(config)
          return (value as (...a: unknown[]) => unknown).call(target, config, ...rest)
        }
      },
    })
    const driver = postgresDriver(recording)
    await driver.migrate()
    const sessions = createSessions({ secretKey: 'test', now: manualClock(T0), engine: (ctx) => sqlEngine(driver, ctx) })
    t.after(() => sessions.close())
    await sessions.ready()

    const step = async (label: string, kind: keyof PostgresDriver['stats'], statement: string, action: () => Promise<unknown>) => {
      const before = { ...driver.stats }
      sent.length = 0
      await action()
      assert.equal(driver.stats.statements - before.statements, 1, `${label}: statements`)
      assert.equal(driver.stats[kind] - before[kind], 1, `${label}: ${kind}`)
      assert.deepEqual(sent.map((q) => q.name), [statement], `${label}: one query to the pool`)
    }
    const s = sessions.session()
    s.set('a', 1)
    await step('create', 'insert', 'sessionkit_insert', () => s.save())
    const again = sessions.session(s.sessionKey)
    await step('load', 'load', 'sessionkit_load', () => again.load())
    again.set('a', 2)
    await step('save', 'update', 'sessionkit_update_if', () => again.save())
    await step('exists', 'exists', 'sessionkit_exists', () => again.exists(again.sessionKey!))
    await step('delete', 'delete', 'sessionkit_delete', () => again.destroy())

    // Prepared once on the (single) connection: the server holds each statement by name.
    const { rows } = await pool.query<{ name: string }>("SELECT name FROM pg_prepared_statements WHERE name LIKE 'sessionkit_%' ORDER BY name")
    assert.deepEqual(
      rows.map((r) => r.name),
      ['sessionkit_delete', 'sessionkit_exists', 'sessionkit_insert', 'sessionkit_load', 'sessionkit_update_if'],
    )
  })

  it('stores expire_date as an instant, whatever the connection’s TimeZone', async (t) => {
    const db = await scratch(t)
    const chatham = `${POSTGRES_URL}${POSTGRES_URL.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${db.schema} -c TimeZone=Pacific/Chatham`)}`
    const clock = manualClock(T0 + 123)
    const sessions = createSessions({ secretKey: 'test', databaseUrl: chatham, now: clock })
    t.after(() => sessions.close())
    await sessions.migrate()
    const s = sessions.session()
    s.set('a', 1)
    await s.save()
    const { rows } = await db.pool.query<{ utc: string; instant: Date }>(
      "SELECT to_char(expire_date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS utc, expire_date AS instant FROM django_session",
    )
    assert.deepEqual(rows, [{ utc: '2023-11-28 22:13:20.123000', instant: new Date(T0 + 123 + TWO_WEEKS) }])
    clock.set(T0 + 123 + TWO_WEEKS - 1)
    assert.deepEqual(dataOf(await sessions.engine!.load(s.sessionKey!)), new Map([['a', 1]]))
    clock.advance(0.001)
    assert.equal(await sessions.engine!.load(s.sessionKey!), null)
  })

  it('opens from postgres:// and postgresql:// URLs as the db:postgresql engine', async (t) => {
    const db = await scratch(t)
    for (const url of [db.url, db.url.replace(/^postgres:/, 'postgresql:')]) {
      const sessions = createSessions({ secretKey: 'test', databaseUrl: url })
      t.after(() => sessions.close())
      const engine = await sessions.ready()
      assert.equal(engine.name, 'db:postgresql')
    }
  })

  it('fails at start-up on a refused connection, naming the URL without its password', async () => {
    const sessions = createSessions({ secretKey: 'test', databaseUrl: 'postgres://user:hunter2@127.0.0.1:1/test' })
    await assert.rejects(sessions.ready(), {
      code: 'ERR_STORE_UNAVAILABLE',
      message: 'sessionkit: cannot connect to PostgreSQL at postgres://user:***@127.0.0.1:1/test: connect ECONNREFUSED 127.0.0.1:1',
    })
    await sessions.close()
  })

  it('fails at start-up on a database that does not exist, with the server’s reason', async () => {
    const url = POSTGRES_URL.replace(/\/[^/?]*(\?|$)/, '/sk_no_such_database$1')
    const sessions = createSessions({ secretKey: 'test', databaseUrl: url })
    await assert.rejects(sessions.ready(), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_STORE_UNAVAILABLE')
      assert.match(e.message, /^sessionkit: cannot connect to PostgreSQL at .*: database "sk_no_such_database" does not exist$/)
      return true
    })
  })

  it('survives an idle connection killed by the server: logs it, then reconnects', async (t) => {
    const db = await scratch(t)
    const name = `sk_idle_${process.pid}_${Date.now()}`
    const logger = capturingLogger()
    const sessions = createSessions({ secretKey: 'test', databaseUrl: `${db.url}&application_name=${name}`, logger })
    t.after(() => sessions.close())
    await sessions.migrate()
    const { rows } = await db.pool.query<{ killed: boolean }>(
      'SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1',
      [name],
    )
    assert.ok(rows.length >= 1 && rows.every((r) => r.killed))
    for (let i = 0; i < 100 && logger.errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10))
    assert.equal(logger.errors.length, rows.length)
    assert.match(logger.errors[0]!, /^an idle PostgreSQL connection to postgres:\/\/.* failed: /)
    const s = sessions.session()
    s.set('after', 'restart')
    await s.save()
    assert.equal(await s.exists(s.sessionKey!), true)
  })

  it('works on a pool passed in, and close() leaves that pool open', async (t) => {
    const db = await scratch(t)
    const sessions = createSessions({ secretKey: 'test', engine: (ctx) => sqlEngine(postgresDriver(db.pool), ctx) })
    await sessions.migrate()
    const s = sessions.session()
    s.set('x', 1)
    await s.save()
    await sessions.close()
    await sessions.close()
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM django_session')
    assert.deepEqual(rows, [{ n: 1 }])
  })

  it('works on a connected pg.Client passed in, migrate included', async (t) => {
    const db = await scratch(t)
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    t.after(() => client.end())
    const sessions = createSessions({ secretKey: 'test', engine: (ctx) => sqlEngine(postgresDriver(client), ctx) })
    t.after(() => sessions.close())
    assert.deepEqual((await ((await sessions.ready()) as DbEngine).migrateReport()).created, ALL_CREATED)
    const s = sessions.session()
    s.set('x', 1)
    await s.save()
    const back = sessions.session(s.sessionKey)
    await back.load()
    assert.equal(back.get('x'), 1)
  })

  it('refuses something that is not a pool', () => {
    assert.throws(() => postgresDriver({} as never), { code: 'ERR_IMPROPERLY_CONFIGURED' })
  })
})

describe('sessionkit migrate and clearsessions on PostgreSQL', { skip }, () => {
  it('migrate creates the table and indexes, then has nothing to do; no SECRET_KEY needed', async (t) => {
    const db = await scratch(t)
    const env = { DATABASE_URL: db.url }
    assert.deepEqual(await cli(['migrate'], env), {
      code: 0,
      stdout: `created ${ALL_CREATED.join(' and ')} in ${db.url}\n`,
      stderr: '',
    })
    assert.deepEqual(await cli(['migrate'], env), { code: 0, stdout: `django_session is already in place in ${db.url}; nothing to do\n`, stderr: '' })
    assert.equal((await indexes(db.pool, db.schema)).length, 3)
  })

  it('clearsessions deletes expired rows in batches, showing progress on a terminal, and keeps live ones', async (t) => {
    const db = await scratch(t)
    const env = { DATABASE_URL: db.url }
    assert.equal((await cli(['migrate'], env)).code, 0)
    await seedExpired(db.pool, 2500)
    await db.pool.query("INSERT INTO django_session VALUES ('live0000001', 'x', '2099-01-01 00:00:00+00'), ('live0000002', 'x', '2099-01-01 00:00:00+00')")
    const { code, stdout, stderr } = await cli(['clearsessions'], env, true)
    assert.equal(code, 0, stderr)
    assert.equal(stdout, 'deleted 2500 expired sessions (db:postgresql)\n')
    assert.equal(stderr, '\rdeleting expired sessions… 1000\rdeleting expired sessions… 2000\rdeleting expired sessions… 2500\n')
    const { rows } = await db.pool.query<{ session_key: string }>('SELECT session_key FROM django_session ORDER BY session_key')
    assert.deepEqual(rows.map((r) => r.session_key), ['live0000001', 'live0000002'])
  })

  it('fails with one line naming the URL without its password when the server refuses', async () => {
    const { code, stdout, stderr } = await cli(['migrate'], { DATABASE_URL: 'postgres://app:hunter2@127.0.0.1:1/app' })
    assert.equal(code, 1)
    assert.equal(stdout, '')
    assert.equal(stderr, 'sessionkit: cannot connect to PostgreSQL at postgres://app:***@127.0.0.1:1/app: connect ECONNREFUSED 127.0.0.1:1\n')
  })
})

describe('the pg package', () => {
  it('is an optional peer: missing, the error says how to install it', () => {
    const missing = Object.assign(new Error("Cannot find module 'pg'\nRequire stack: …"), { code: 'MODULE_NOT_FOUND' })
    assert.throws(
      () => loadPg(() => { throw missing }),
      (e: Error & { code?: string }) => e.code === 'ERR_IMPROPERLY_CONFIGURED' && e.message.includes('npm install pg'),
    )
  })
})
