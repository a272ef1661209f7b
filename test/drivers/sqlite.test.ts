/**
 * The SQLite driver (better-sqlite3): the SQL driver contract (test/helpers/sql-contract.ts),
 * then what is SQLite's own: Django's exact DDL, created as the database opens, WAL mode, a
 * database in memory, the expire_date text format, another connection on the same file, the
 * package as an optional peer, and a live round trip with Django on the same database file.
 */
import { describe, it, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createSessions, type Settings } from 'sessionkit'
import { capturingLogger, manualClock } from 'sessionkit/testing'
import type { DbEngine } from '../../src/engines/db.ts'
import { loadBetterSqlite3, type SqliteDriver } from '../../src/drivers/sqlite.ts'
import { toDjangoDateTime } from '../../src/drivers/sql.ts'
import { describeSqlDriver } from '../helpers/sql-contract.ts'

const dir = mkdtempSync(path.join(tmpdir(), 'sessionkit-db-sqlite-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

/** Django 3.2's DDL on SQLite, as `manage.py migrate` leaves it in sqlite_master. */
const DJANGO_TABLE =
  'CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" datetime NOT NULL)'
const DJANGO_INDEX = 'CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")'

/** 2023-11-14 22:13:20 UTC. */
const T0 = 1_700_000_000_000
const TWO_WEEKS = 14 * 24 * 3600 * 1000

function open(t: TestContext, settings: Partial<Settings> = {}) {
  const file = path.join(dir, `db-${n++}.sqlite3`)
  const clock = manualClock(T0)
  const logger = capturingLogger()
  const sessions = createSessions({ secretKey: 'test', databaseUrl: `sqlite:${file}`, now: clock, logger, ...settings })
  t.after(() => sessions.close())
  const engine = sessions.engine as DbEngine & { driver: SqliteDriver }
  const driver = engine.driver
  return { file, clock, logger, sessions, engine, driver, db: driver.database }
}

function schema(db: SqliteDriver['database']): { name: string; sql: string | null }[] {
  return db
    .prepare<[], { name: string; sql: string | null }>("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'django_session' ORDER BY name")
    .all()
}

function row(db: SqliteDriver['database'], key: string) {
  return db
    .prepare<[string], { session_data: string; expire_date: string }>('SELECT session_data, expire_date FROM django_session WHERE session_key = ?')
    .get(key)
}

describeSqlDriver({
  name: 'SQLite',
  dialect: 'sqlite',
  skip: false,
  allCreated: ['table django_session', 'index django_session_expire_date_a5c62663'],
  droppedIndex: 'django_session_expire_date_a5c62663',
  closedError: /not open/,
  async open(t, settings = {}) {
    const { file, clock, logger, sessions, engine, db } = open(t, settings)
    return {
      sessions,
      engine,
      clock,
      logger,
      where: file,
      async insertRow(key, data, expireDate) {
        db.prepare('INSERT INTO django_session VALUES (?, ?, ?)').run(key, data, expireDate)
      },
      async seedExpired(count) {
        const insert = db.prepare('INSERT INTO django_session VALUES (?, ?, ?)')
        db.transaction(() => {
          for (let i = 0; i < count; i++) insert.run(`expired${String(i).padStart(8, '0')}`, 'x', '2020-01-01 00:00:00')
        })()
      },
      async keys() {
        return db.prepare<[], string>('SELECT session_key FROM django_session ORDER BY session_key').pluck().all()
      },
      async dropIndex() {
        db.exec('DROP INDEX django_session_expire_date_a5c62663')
      },
      async indexes() {
        return db.prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'django_session' ORDER BY name").pluck().all()
      },
    }
  },
})

describe('db engine on SQLite', () => {
  it('creates django_session exactly as Django’s migration does, as it opens', (t) => {
    const { db } = open(t)
    assert.deepEqual(schema(db), [
      { name: 'django_session', sql: DJANGO_TABLE },
      { name: 'django_session_expire_date_a5c62663', sql: DJANGO_INDEX },
      { name: 'sqlite_autoindex_django_session_1', sql: null },
    ])
  })

  it('migrate is idempotent and reports what it created, including at open', async (t) => {
    const { engine, db } = open(t)
    assert.deepEqual((await engine.migrateReport()).created, ['table django_session', 'index django_session_expire_date_a5c62663'])
    assert.deepEqual((await engine.migrateReport()).created, [])
    await engine.migrate()
    db.exec('DROP INDEX django_session_expire_date_a5c62663')
    assert.deepEqual((await engine.migrateReport()).created, ['index django_session_expire_date_a5c62663'])
    assert.equal(schema(db).length, 3)
  })

  it('opens a file Django already migrated without touching its schema', async (t) => {
    const first = open(t)
    await first.sessions.close()
    const again = createSessions({ secretKey: 'test', databaseUrl: `sqlite:${first.file}` })
    t.after(() => again.close())
    assert.deepEqual((await (again.engine as DbEngine).migrateReport()).created, [])
  })

  it('runs in WAL mode with synchronous NORMAL and a 5 s busy timeout', (t) => {
    const { db } = open(t)
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
    assert.equal(db.pragma('synchronous', { simple: true }), 1)
    assert.equal(db.pragma('busy_timeout', { simple: true }), 5000)
  })

  it('works in memory, where WAL does not apply', async (t) => {
    const sessions = createSessions({ secretKey: 'test', databaseUrl: 'sqlite::memory:' })
    t.after(() => sessions.close())
    const driver = (sessions.engine as DbEngine).driver as SqliteDriver
    assert.equal(driver.database.pragma('journal_mode', { simple: true }), 'memory')
    const s = sessions.session()
    s.set('x', 1)
    await s.save()
    const back = sessions.session(s.sessionKey)
    await back.load()
    assert.equal(back.get('x'), 1)
  })

  it('writes expire_date as UTC text in Django’s format, without a fraction on whole seconds', async (t) => {
    const { sessions, clock, db } = open(t)
    const s = sessions.session()
    s.set('a', 1)
    await s.save()
    assert.equal(row(db, s.sessionKey!)?.expire_date, '2023-11-28 22:13:20')
    clock.set(T0 + 123)
    s.set('a', 2)
    await s.save()
    assert.equal(row(db, s.sessionKey!)?.expire_date, '2023-11-28 22:13:20.123000')
  })

  it('formats dates as Python’s str(datetime) and refuses years Python cannot hold', () => {
    assert.equal(toDjangoDateTime(new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 6))), '2030-01-02 03:04:05.006000')
    assert.equal(toDjangoDateTime(new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 0))), '2030-01-02 03:04:05')
    assert.throws(() => toDjangoDateTime(new Date(Date.UTC(10000, 0, 1))), RangeError)
    assert.throws(() => toDjangoDateTime(new Date(Number.NaN)), RangeError)
  })

  it('sees a logout by another connection on the same file (another worker process)', async (t) => {
    const one = open(t)
    const two = createSessions({ secretKey: 'test', databaseUrl: `sqlite:${one.file}`, now: one.clock })
    t.after(() => two.close())
    const s = one.sessions.session()
    s.set('user', 7)
    await s.save()
    const elsewhere = two.session(s.sessionKey)
    await elsewhere.flush()
    s.set('user', 8)
    await assert.rejects(s.save(), { code: 'ERR_SESSION_UPDATE' })
  })

  it('says how to install better-sqlite3 when it is missing, and names a broken install', () => {
    const missing = Object.assign(new Error("Cannot find module 'better-sqlite3'\nRequire stack: …"), { code: 'MODULE_NOT_FOUND' })
    assert.throws(
      () => loadBetterSqlite3(() => { throw missing }),
      (e: Error & { code?: string }) => e.code === 'ERR_IMPROPERLY_CONFIGURED' && e.message.includes('npm install better-sqlite3@12'),
    )
    const broken = Object.assign(new Error("Cannot find module 'bindings'"), { code: 'MODULE_NOT_FOUND' })
    assert.throws(
      () => loadBetterSqlite3(() => { throw broken }),
      (e: Error & { code?: string }) => e.code === 'ERR_IMPROPERLY_CONFIGURED' && e.message.includes('npm rebuild better-sqlite3'),
    )
  })
})

// ------------------------------------------------------------------------------ live Django

const PYTHON = '/usr/bin/python3'
const LIVE_SCRIPT = `
import json, sys
import django
from django.conf import settings
req = json.load(sys.stdin)
settings.configure(
    SECRET_KEY=req["secretKey"], USE_TZ=True, INSTALLED_APPS=["django.contrib.sessions"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": req["file"]},
               "fresh": {"ENGINE": "django.db.backends.sqlite3", "NAME": req["fresh"]}},
)
django.setup()
from django.core.management import call_command
from django.db import connections
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
call_command("migrate", "sessions", database="fresh", verbosity=0)
with connections["fresh"].cursor() as c:
    c.execute("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'django_session' ORDER BY name")
    schema = [list(r) for r in c.fetchall()]
out = {"schema": schema, "loaded": {}}
for key in req["keys"]:
    out["loaded"][key] = SessionStore(key).load()
out["expireDate"] = Session.objects.get(pk=req["keys"][0]).expire_date.isoformat()
s = SessionStore()
s["from"] = "django"
s.set_expiry(3600)
s.save()
out["djangoKey"] = s.session_key
SessionStore.clear_expired()
out["left"] = sorted(Session.objects.values_list("session_key", flat=True))
print(json.dumps(out))
`

describe('live round trip with Django on the same SQLite file', () => {
  it('shares django_session with Django: schema, data, expiry and clearsessions', async (t) => {
    const probe = spawnSync(PYTHON, ['-c', 'import django'], { encoding: 'utf8' })
    if (probe.status !== 0) {
      if (process.env['CI']) assert.fail(`Django is required in CI (apt-get install -y python3-django): ${probe.stderr ?? probe.error}`)
      t.skip('Django not installed for /usr/bin/python3 (apt-get install -y python3-django); live round trip skipped')
      return
    }
    const secretKey = 'sessionkit-live-db-secret-0123456789'
    const file = path.join(dir, `live-${n++}.sqlite3`)
    const sessions = createSessions({ secretKey, databaseUrl: `sqlite:${file}` }) // the real clock: Django reads it too
    t.after(() => sessions.close())
    const live = sessions.session()
    live.update({ from: 'sessionkit', list: [1, 'two', { three: 3 }], 'κλειδί': '🔑' })
    await live.save()
    const dead = sessions.session()
    dead.set('gone', true)
    dead.setExpiry(-10)
    await dead.save()
    const expected = new Date(Date.now() + TWO_WEEKS)

    const run = spawnSync(PYTHON, ['-c', LIVE_SCRIPT], {
      input: JSON.stringify({ secretKey, file, fresh: path.join(dir, `fresh-${n++}.sqlite3`), keys: [live.sessionKey, dead.sessionKey] }),
      encoding: 'utf8',
    })
    assert.equal(run.status, 0, run.stderr)
    const out = JSON.parse(run.stdout) as {
      schema: [string, string | null][]
      loaded: Record<string, unknown>
      expireDate: string
      djangoKey: string
      left: string[]
    }
    assert.deepEqual(out.schema, schema(((sessions.engine as DbEngine).driver as SqliteDriver).database).map((r) => [r.name, r.sql]))
    assert.deepEqual(out.loaded, {
      [live.sessionKey!]: { from: 'sessionkit', list: [1, 'two', { three: 3 }], 'κλειδί': '🔑' },
      [dead.sessionKey!]: {},
    })
    assert.ok(Math.abs(Date.parse(out.expireDate) - expected.getTime()) < 5000, `Django reads expire_date ${out.expireDate}`)
    assert.deepEqual(out.left.sort(), [live.sessionKey!, out.djangoKey].sort(), 'Django’s clear_expired removed the expired row')
    const fromDjango = sessions.session(out.djangoKey)
    await fromDjango.load()
    assert.deepEqual(fromDjango.entries(), [['from', 'django'], ['_session_expiry', 3600]])
  })
})
