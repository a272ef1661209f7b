/**
 * The db engine on SQLite, beyond the conformance suite: Django's table and SQL, the
 * expire_date text format, one statement per operation, batched clearing, URL parsing, and
 * a live round trip with Django on the same database file when Django is installed.
 */
import { describe, it, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createSessions, type Settings } from 'sessionkit'
import { capturingLogger, manualClock, dataOf } from 'sessionkit/testing'
import { CLEAR_BATCH_SIZE, parseDatabaseUrl, type DbEngine } from '../src/engines/db.ts'
import { loadBetterSqlite3, type SqliteDriver } from '../src/drivers/sqlite.ts'
import { toDjangoDateTime } from '../src/drivers/sql.ts'

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
  const engine = sessions.engine as DbEngine
  const driver = engine.driver as SqliteDriver
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

const saveOptions = (mustCreate: boolean, expireDate = new Date(T0 + TWO_WEEKS)) => ({ mustCreate, expireDate, expiryAge: 1209600 })

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

  it('runs one statement per load, create, update, exists and delete', async (t) => {
    const { sessions, driver } = open(t)
    const count = async (kind: keyof SqliteDriver['stats'], run: () => Promise<unknown>) => {
      const before = { ...driver.stats }
      await run()
      assert.equal(driver.stats.statements - before.statements, 1, `${kind}: statements`)
      assert.equal(driver.stats[kind] - before[kind], 1, `${kind}: kind`)
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
    const { engine } = open(t)
    const key = 'a'.repeat(32)
    await engine.save(key, new Map([['first', 1]]), saveOptions(true))
    await assert.rejects(engine.save(key, new Map([['second', 2]]), saveOptions(true)), { code: 'ERR_SESSION_CREATE' })
    assert.deepEqual(dataOf(await engine.load(key)), new Map([['first', 1]]))
  })

  it('refuses to update a session deleted meanwhile with UpdateError and does not resurrect it', async (t) => {
    const { sessions, engine } = open(t)
    const s = sessions.session()
    s.set('a', 1)
    await s.save()
    await engine.delete(s.sessionKey!)
    s.set('a', 2)
    await assert.rejects(s.save(), { code: 'ERR_SESSION_UPDATE' })
    assert.equal(await engine.exists(s.sessionKey!), false)
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

  it('hides expired rows from load, keeps them for exists, and clearExpired removes them', async (t) => {
    const { sessions, engine, clock } = open(t)
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
    const { engine, driver, db } = open(t)
    const insert = db.prepare('INSERT INTO django_session VALUES (?, ?, ?)')
    db.transaction(() => {
      for (let i = 0; i < 2500; i++) insert.run(`expired${String(i).padStart(8, '0')}`, 'x', '2020-01-01 00:00:00')
    })()
    for (const key of ['live0000001', 'live0000002', 'live0000003']) {
      await engine.save(key, new Map([['k', key]]), saveOptions(true))
    }
    const progress: number[] = []
    const before = driver.stats.clearExpired
    assert.equal(await engine.clearExpired((deleted) => progress.push(deleted)), 2500)
    assert.deepEqual(progress, [CLEAR_BATCH_SIZE, 2 * CLEAR_BATCH_SIZE, 2500])
    assert.equal(driver.stats.clearExpired - before, 3)
    assert.equal(db.prepare('SELECT count(*) FROM django_session').pluck().get(), 3)
  })

  it('loads a row with corrupt session_data as an empty session and warns once', async (t) => {
    const { sessions, db, logger } = open(t)
    const key = 'corrupt0000000000000000000000000'
    db.prepare('INSERT INTO django_session VALUES (?, ?, ?)').run(key, 'bad:encoded:value', '2099-01-01 00:00:00')
    const s = sessions.session(key)
    await s.load()
    assert.deepEqual(s.entries(), [])
    assert.equal(s.sessionKey, key, 'the row exists, so the key is kept, as in Django')
    assert.equal(logger.warnings.length, 1)
    assert.match(logger.warnings[0]!, /db:sqlite/)
    assert.doesNotMatch(logger.warnings[0]!, new RegExp(key))
  })

  it('reads session_data written by Django (fixture vectors)', async (t) => {
    const vectors = JSON.parse(readFileSync(new URL('./fixtures/django-vectors.json', import.meta.url), 'utf8')) as {
      secretKey: string
      sessions: { name: string; json: string; dbSigned: string }[]
    }
    const { sessions, db } = open(t, { secretKey: vectors.secretKey })
    for (const [i, v] of vectors.sessions.entries()) {
      const key = `vector${String(i).padStart(10, '0')}`
      db.prepare('INSERT INTO django_session VALUES (?, ?, ?)').run(key, v.dbSigned, '2099-01-01 00:00:00')
      assert.deepEqual(dataOf(await sessions.engine!.load(key)), new Map(Object.entries(JSON.parse(v.json) as object)), v.name)
    }
  })

  it('closes idempotently, and a closed engine fails loudly', async (t) => {
    const { sessions, engine } = open(t)
    await engine.close()
    await engine.close()
    await sessions.close()
    await assert.rejects(engine.load('a'.repeat(32)), /not open/)
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

describe('databaseUrl for the db engine', () => {
  const cwd = '/srv/app'
  for (const [url, filename] of [
    ['sqlite:///db.sqlite3', '/srv/app/db.sqlite3'],
    ['sqlite:///data/sessions.db', '/srv/app/data/sessions.db'],
    ['sqlite:////var/lib/app/sessions.db', '/var/lib/app/sessions.db'],
    ['sqlite:///my%20db.sqlite3', '/srv/app/my db.sqlite3'],
    ['sqlite::memory:', ':memory:'],
    ['sqlite://:memory:', ':memory:'],
    ['sqlite:db.sqlite3', '/srv/app/db.sqlite3'],
    ['sqlite:/abs/path.db', '/abs/path.db'],
  ] as const) {
    it(`reads ${url} as ${filename}`, () => {
      assert.deepEqual(parseDatabaseUrl(url, cwd), { dialect: 'sqlite', filename })
    })
  }

  for (const url of ['sqlite:', 'sqlite://', 'sqlite:///', 'sqlite://host/db.sqlite3', 'sqlite:///db.sqlite3?mode=ro', 'sqlite:///%zz']) {
    it(`refuses ${JSON.stringify(url)} with a message that shows the accepted forms`, () => {
      assert.throws(
        () => parseDatabaseUrl(url, cwd),
        (e: Error & { code?: string }) => e.code === 'ERR_IMPROPERLY_CONFIGURED' && e.message.includes('sqlite:////absolute/path.db'),
      )
    })
  }

  it('recognises PostgreSQL and MySQL URLs', () => {
    assert.equal(parseDatabaseUrl('postgres://u:p@h/db').dialect, 'postgresql')
    assert.equal(parseDatabaseUrl('postgresql://h/db').dialect, 'postgresql')
    assert.equal(parseDatabaseUrl('mysql://h/db').dialect, 'mysql')
    assert.equal(parseDatabaseUrl('mariadb://h/db').dialect, 'mysql')
  })

  it('opens PostgreSQL asynchronously: a refused connection rejects ready() without the password', async () => {
    const sessions = createSessions({ secretKey: 'test', databaseUrl: 'postgres://app:hunter2@127.0.0.1:1/app' })
    await assert.rejects(sessions.ready(), (e: Error & { code?: string }) => e.code === 'ERR_STORE_UNAVAILABLE' && !e.message.includes('hunter2'))
  })

  it('refuses a SQLite file in a directory that does not exist, naming the file', () => {
    const file = path.join(dir, 'no-such-dir', 'db.sqlite3')
    assert.throws(
      () => createSessions({ secretKey: 'test', databaseUrl: `sqlite:${file}` }),
      (e: Error & { code?: string }) => e.code === 'ERR_IMPROPERLY_CONFIGURED' && e.message.includes(file),
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
