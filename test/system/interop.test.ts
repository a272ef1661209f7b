/**
 * Wire compatibility with real Django, both ways: Debian's python3-django (3.2) run as a
 * subprocess on the project in test/system/interop/ (its driver.py speaks JSON lines; manage.py
 * runs `migrate` and `clearsessions` as a Django user would), against sessionkit's engines,
 * CLI and node:http adapter on 127.0.0.1.
 *
 * - db engine on a shared SQLite file and on a shared PostgreSQL database: values, expiry,
 *   clearsessions, refusals and key rotation, each written by one side and read by the other;
 * - tables: `sessionkit migrate` vs `manage.py migrate sessions [--fake-initial]`;
 * - signed cookies through both middlewares;
 * - key rotation: Django 3.2 has no SECRET_KEY_FALLBACKS, so sessionkit's side is also
 *   checked against the documented 4.1+ vector (reference §3.6 V8).
 *
 * Django (or psycopg2, or PostgreSQL) absent: the suite is skipped with a one-line notice,
 * except under CI, where that is a failure.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import Database from 'better-sqlite3'
import { createCodec, createSessions, redactUrl, resolveSettings, type Sessions, type Settings } from 'sessionkit'
import { capturingLogger } from 'sessionkit/testing'
import { main } from '../../src/cli.ts'
import { POSTGRES_URL } from '../helpers/databases.ts'
import { PYTHON, manage, probeDjango, startDriver, type DjangoEnv, type DjangoResponse, type DjangoSession, type Driver } from './interop/django.ts'
import { cookieValue, nodeRequest, startNodeApp, type NodeApp, type NodeSession } from './interop/node-app.ts'

// ------------------------------------------------------------------------------ set-up

const SECRET = 'sessionkit-interop-secret-κλειδί-0123456789'
const OLD_SECRET = 'sessionkit-interop-old-secret-0123456789'
const OTHER_SECRET = 'another-apps-secret-0123456789'
const SESSION_SALT = 'django.contrib.sessions.SessionStore'
const COOKIE_SALT = 'django.contrib.sessions.backends.signed_cookies'
const COOKIE_AGE = 1209600
const MINUTE = 60_000

/** Every JSON type, non-ASCII and astral text, nesting, and a value large enough to be compressed. */
const VALUES = {
  username: 'zoë 🦄',
  text: 'naïve café — 日本語 😀 \u007f\u2028\n\t"quoted" \\ / <b>&amp;</b>',
  nested: { list: [1, [2, [3, { deep: true }]], null], dict: { a: { b: { c: 'd' } } }, emptyDict: {}, emptyList: [] },
  integer: 42,
  negative: -7,
  zero: 0,
  maxSafe: 9007199254740991,
  float: 2.5,
  tiny: 1e-7,
  negativeFloat: -0.125,
  yes: true,
  no: false,
  nothing: null,
  large: Array.from({ length: 300 }, (_, i) => `line ${i}: the quick brown fox jumps over the lazy dog`).join('\n'),
}
/** The Python types Django must see for VALUES. */
const PY_TYPES = {
  username: 'str', text: 'str', nested: 'dict', integer: 'int', negative: 'int', zero: 'int', maxSafe: 'int',
  float: 'float', tiny: 'float', negativeFloat: 'float', yes: 'bool', no: 'bool', nothing: 'NoneType', large: 'str',
}

const ci = Boolean(process.env['CI'])
const django = probeDjango()
const djangoMissing = django.ok ? null : `Django not installed for ${PYTHON} (apt-get install -y python3-django): ${django.reason}`
/**
 * A suite's `skip`. Absent Django: one notice line, then every suite skipped; under CI a
 * failing test reports the absence instead.
 */
function skipFor(reason: string | null, what: string): string | boolean {
  if (reason === null) return false
  if (ci) {
    describe(what, () => it('is available (required under CI)', () => assert.fail(reason)))
    return true
  }
  console.warn(`skipping the ${what} tests: ${reason}`)
  return `${what} absent`
}
const djangoSkip = skipFor(djangoMissing, 'Django interop')
const atLeast = (major: number, minor: number): boolean =>
  django.ok && (django.versionInfo[0] > major || (django.versionInfo[0] === major && django.versionInfo[1] >= minor))
const atLeast40 = atLeast(4, 0)
const atLeast41 = atLeast(4, 1)

const dir = mkdtempSync(path.join(tmpdir(), 'sessionkit-interop-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let fileCount = 0

/** sessionkit's session under `key`, loaded; `found` is false when the key was unknown, expired or refused. */
async function skLoad(sessions: Sessions, key: string): Promise<{ data: Record<string, unknown>; keys: string[]; found: boolean }> {
  const s = sessions.session(key)
  await s.load()
  return { data: Object.fromEntries(s.entries()), keys: s.keys(), found: s.sessionKey !== null }
}

/** `sessionkit <args>` through the CLI's main(), with its output captured. */
async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, env, { stdout: { write: (c: string) => (stdout += c) }, stderr: { write: (c: string) => (stderr += c) } })
  return { code, stdout, stderr }
}

/** `Set-Cookie` with the value and the expires date masked: the attributes both sides must agree on. */
function attributes(setCookie: string): string {
  return setCookie.replace(/^([^=]+)=[^;]*/, '$1=<value>').replace(/expires=[^;]+/, 'expires=<date>')
}

function near(actual: string | Date, expected: number, what: string, tolerance = 5000): void {
  const ms = typeof actual === 'string' ? Date.parse(actual) : actual.getTime()
  assert.ok(Math.abs(ms - expected) <= tolerance, `${what}: ${new Date(ms).toISOString()} is not within ${tolerance} ms of ${new Date(expected).toISOString()}`)
}

/** Every one-character change of `value`, each still made of the characters a signed value uses. */
function tamperings(value: string): string[] {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  return [...value].map((c, i) => {
    const replacement = c === ':' || c === '.' ? 'a' : alphabet[(alphabet.indexOf(c) + 1) % alphabet.length]!
    return value.slice(0, i) + replacement + value.slice(i + 1)
  })
}

// ------------------------------------------------------------------------------ databases

interface SharedDatabase {
  /** A new empty database: its URL, for both sides. */
  fresh(): Promise<string>
  /** The schema of django_session in `url`, comparable between databases. */
  schema(url: string): Promise<unknown>
  cleanup(): Promise<void>
}

function sqliteDatabases(): SharedDatabase {
  return {
    async fresh() {
      return `sqlite:///${path.join(dir, `shared-${fileCount++}.sqlite3`)}`
    },
    async schema(url) {
      const db = new Database(url.slice('sqlite:///'.length), { readonly: true })
      try {
        return db
          .prepare("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'django_session' ORDER BY name")
          .all()
      } finally {
        db.close()
      }
    },
    async cleanup() {},
  }
}

function pgDatabases(): SharedDatabase {
  const created: string[] = []
  const prefix = `sk_interop_${randomBytes(4).toString('hex')}`
  const admin = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 })
    await client.connect()
    try {
      return await fn(client)
    } finally {
      await client.end()
    }
  }
  const urlOf = (name: string): string => {
    const url = new URL(POSTGRES_URL)
    url.pathname = `/${name}`
    return url.toString()
  }
  return {
    async fresh() {
      const name = `${prefix}_${created.length}`
      await admin(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${name}`)
        await c.query(`CREATE DATABASE ${name}`)
      })
      created.push(name)
      return urlOf(name)
    },
    async schema(url) {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      try {
        const columns = await client.query(
          `SELECT column_name, data_type, character_maximum_length, is_nullable FROM information_schema.columns
           WHERE table_name = 'django_session' ORDER BY ordinal_position`,
        )
        const indexes = await client.query(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'django_session' ORDER BY indexname`)
        return { columns: columns.rows, indexes: indexes.rows }
      } finally {
        await client.end()
      }
    },
    async cleanup() {
      await admin(async (c) => {
        for (const name of created) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      })
    },
  }
}

/** Why the PostgreSQL suites cannot run here, or null when they can. */
async function pgMissing(): Promise<string | null> {
  const psycopg = probeDjango(['psycopg2'])
  if (!psycopg.ok) return `psycopg2 not installed for ${PYTHON} (apt-get install -y python3-psycopg2): ${psycopg.reason}`
  try {
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 })
    await client.connect()
    await client.end()
  } catch (error) {
    return `PostgreSQL not reachable at ${redactUrl(POSTGRES_URL)} (${(error as Error).message})`
  }
  try {
    const sessions = createSessions({ secretKey: SECRET, databaseUrl: POSTGRES_URL })
    try {
      await sessions.ready()
    } finally {
      await sessions.close()
    }
  } catch (error) {
    return `sessionkit's db engine does not open PostgreSQL yet (${(error as Error).message})`
  }
  return null
}

const pgSkip = django.ok ? skipFor(await pgMissing(), 'PostgreSQL interop') : djangoSkip

// ------------------------------------------------------------------------------ db engine, shared

function describeSharedDb(title: string, skip: string | boolean, databases: () => SharedDatabase): void {
  describe(title, { skip }, () => {
    let dbs: SharedDatabase
    let databaseUrl: string
    let env: DjangoEnv
    let dj: Driver
    let sessions: Sessions
    let node: NodeApp
    const logger = capturingLogger()
    const open = (settings: Partial<Settings> = {}): Sessions => createSessions({ secretKey: SECRET, databaseUrl, logger, ...settings })
    const usingSessions = async <T>(settings: Partial<Settings>, fn: (s: Sessions) => Promise<T>): Promise<T> => {
      const s = open(settings)
      try {
        await s.ready()
        return await fn(s)
      } finally {
        await s.close()
      }
    }

    before(async () => {
      dbs = databases()
      databaseUrl = await dbs.fresh()
      env = { SECRET_KEY: SECRET, DATABASE_URL: databaseUrl, SESSION_ENGINE: 'db' }
      const migrated = await manage(['migrate', 'sessions', '--no-input'], env)
      assert.equal(migrated.status, 0, migrated.stderr)
      dj = await startDriver(env)
      sessions = open()
      await sessions.ready()
      node = await startNodeApp({ secretKey: SECRET, databaseUrl, logger })
    })
    after(async () => {
      await node?.close()
      await sessions?.close()
      await dj?.close()
      await dbs?.cleanup()
    })

    it('reads every value of a session Django wrote, equal and in order', async () => {
      const made = await dj.call<DjangoSession>('create', { values: VALUES })
      assert.deepEqual(made.types, PY_TYPES)
      assert.ok(made.row!.sessionData.startsWith('.'), 'Django compressed the data (the "." flag)')
      const read = await skLoad(sessions, made.key!)
      assert.deepEqual(read.data, VALUES)
      assert.deepEqual(read.keys, Object.keys(VALUES))
    })

    it('writes every value so that Django reads it equal, with the same Python types', async () => {
      const s = sessions.session()
      s.update(VALUES)
      await s.save()
      const read = await dj.call<DjangoSession>('load', { key: s.sessionKey, expect: VALUES })
      assert.equal(read.key, s.sessionKey)
      assert.equal(read.equal, true, 'Python: data == VALUES')
      assert.deepEqual(read.data, VALUES)
      assert.deepEqual(Object.keys(read.data), Object.keys(VALUES))
      assert.deepEqual(read.types, PY_TYPES)
      assert.ok(read.row!.sessionData.startsWith('.'), 'sessionkit compressed the data (the "." flag)')
    })

    it('shares one visitor across both middlewares: each side changes the session and the other sees it', async () => {
      // Django logs the visitor in: its SessionMiddleware sets the cookie.
      const login = await dj.call<DjangoResponse>('request', { method: 'POST', path: '/set', json: { values: { username: 'alice', authUser: 'alice' } } })
      const key = cookieValue(login.setCookie, 'sessionid')
      assert.ok(key, 'Django set the session cookie')
      // sessionkit's middleware accepts Django's cookie…
      const seen = await nodeRequest(node, '/get', { cookies: { sessionid: key } })
      assert.deepEqual((seen.body as NodeSession).data, { username: 'alice', authUser: 'alice' })
      assert.deepEqual(seen.setCookie, [], 'a read re-sends no cookie')
      // …changes the session (same key), and Django's middleware sees the change.
      const changed = await nodeRequest(node, '/set', { method: 'POST', cookies: { sessionid: key }, json: { values: { cart: ['📘', 2] } } })
      assert.equal(cookieValue(changed.setCookie, 'sessionid'), key)
      const back = await dj.call<DjangoResponse>('request', { path: '/get', cookies: { sessionid: key } })
      assert.equal(back.status, 200)
      assert.deepEqual((back.body as DjangoSession).data, { username: 'alice', authUser: 'alice', cart: ['📘', 2] })
      // A flush on either side is a logout on both.
      const out = await nodeRequest(node, '/flush', { cookies: { sessionid: key } })
      assert.match(out.setCookie[0] ?? '', /^sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=\/; SameSite=Lax$/)
      const gone = await dj.call<DjangoResponse>('request', { path: '/get', cookies: { sessionid: key } })
      assert.deepEqual((gone.body as DjangoSession).data, {})
      // And the other way: sessionkit's login, Django's logout.
      const nodeLogin = await nodeRequest(node, '/set', { method: 'POST', json: { values: { authUser: 'alice' } } })
      const nodeKey = cookieValue(nodeLogin.setCookie, 'sessionid')!
      const djangoOut = await dj.call<DjangoResponse>('request', { path: '/flush', cookies: { sessionid: nodeKey } })
      assert.match(djangoOut.setCookie[0] ?? '', /^sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=\/; SameSite=Lax$/)
      assert.deepEqual(((await nodeRequest(node, '/get', { cookies: { sessionid: nodeKey } })).body as NodeSession).data, {})
    })

    it('sets the same cookie attributes as Django for the same session and expiry', async () => {
      for (const expiry of [null, 600, 0]) {
        const made = await dj.call<DjangoSession>('create', { values: { username: 'bob' } })
        const json = { values: { n: 1 }, expiry }
        const fromDjango = await dj.call<DjangoResponse>('request', { method: 'POST', path: '/set', cookies: { sessionid: made.key }, json })
        const fromNode = await nodeRequest(node, '/set', { method: 'POST', cookies: { sessionid: made.key! }, json })
        assert.equal(fromNode.setCookie.length, 1)
        assert.deepEqual(fromNode.setCookie.map(attributes), fromDjango.setCookie.map(attributes), `expiry ${expiry}`)
        assert.equal(fromNode.vary, fromDjango.vary)
      }
    })

    it('honours set_expiry(N) and set_expiry(0) made by Django: same age, same browser-close, same expire_date', async () => {
      const t0 = Date.now()
      const fixed = await dj.call<DjangoSession>('create', { values: { username: 'carol' }, expiry: 600 })
      const browser = await dj.call<DjangoSession>('create', { values: { username: 'dave' }, expiry: 0 })
      near(fixed.row!.expireDate, t0 + 600_000, 'Django expire_date for set_expiry(600)')
      near(browser.row!.expireDate, t0 + COOKIE_AGE * 1000, 'Django expire_date for set_expiry(0)')

      for (const [made, age, close] of [[fixed, 600, false], [browser, COOKIE_AGE, true]] as const) {
        const s = sessions.session(made.key)
        await s.load()
        assert.equal(s.getExpiryAge(), age)
        assert.equal(s.getExpiryAge(), made.expiryAge)
        assert.equal(s.getExpireAtBrowserClose(), close)
        assert.equal(s.getExpireAtBrowserClose(), made.browserClose)
      }
      // Django's expire_date is what sessionkit enforces.
      const expireAt = Date.parse(fixed.row!.expireDate)
      assert.equal((await usingSessions({ now: () => expireAt - MINUTE }, (s) => skLoad(s, fixed.key!))).found, true)
      assert.equal((await usingSessions({ now: () => expireAt + 1000 }, (s) => skLoad(s, fixed.key!))).found, false)
      const browserAt = Date.parse(browser.row!.expireDate)
      assert.equal((await usingSessions({ now: () => browserAt - MINUTE }, (s) => skLoad(s, browser.key!))).found, true)
      assert.equal((await usingSessions({ now: () => browserAt + 1000 }, (s) => skLoad(s, browser.key!))).found, false)

      // A save by sessionkit keeps the sliding N-second expiry, as Django's save would.
      const later = Date.now()
      await usingSessions({}, async (s) => {
        const session = s.session(fixed.key)
        await session.load()
        session.set('seen', true)
        await session.save()
      })
      const reread = await dj.call<DjangoSession>('load', { key: fixed.key })
      near(reread.row!.expireDate, later + 600_000, 'expire_date after a sessionkit save')
      assert.equal(reread.expiryAge, 600)
    })

    it('writes setExpiry(N), setExpiry(0) and an expired session so that Django agrees on each', async () => {
      const t0 = Date.now()
      const make = async (expiry: number): Promise<string> => {
        const s = sessions.session()
        s.set('username', `expiry ${expiry}`)
        s.setExpiry(expiry)
        await s.save()
        return s.sessionKey!
      }
      const fixed = await dj.call<DjangoSession>('load', { key: await make(600) })
      assert.deepEqual([fixed.expiryAge, fixed.browserClose], [600, false])
      near(fixed.row!.expireDate, t0 + 600_000, 'expire_date written by sessionkit for setExpiry(600)')
      const browser = await dj.call<DjangoSession>('load', { key: await make(0) })
      assert.deepEqual([browser.expiryAge, browser.browserClose], [COOKIE_AGE, true])
      near(browser.row!.expireDate, t0 + COOKIE_AGE * 1000, 'expire_date written by sessionkit for setExpiry(0)')
      const expired = await dj.call<DjangoSession>('load', { key: await make(-10) })
      assert.deepEqual([expired.key, expired.data], [null, {}], 'Django does not load an expired session')

      // Django's middleware honours the browser-close expiry sessionkit stored.
      const response = await dj.call<DjangoResponse>('request', { method: 'POST', path: '/set', cookies: { sessionid: browser.key }, json: { values: { n: 1 } } })
      assert.equal(response.setCookie.length, 1)
      assert.doesNotMatch(response.setCookie[0]!, /Max-Age|expires/)
    })

    it('writes setExpiry(Date) in Django 4.1+ format, which Django 3.2 cannot use', async () => {
      const at = new Date(Math.floor(Date.now() / 1000) * 1000 + 600_000)
      const s = sessions.session()
      s.set('username', 'erin')
      s.setExpiry(at)
      await s.save()
      const read = await dj.call<DjangoSession>('load', { key: s.sessionKey })
      assert.deepEqual(read.data, { username: 'erin', _session_expiry: at.toISOString().replace('.000Z', '+00:00') })
      near(read.row!.expireDate, at.getTime(), 'expire_date', 1000)
      if (atLeast41) {
        assert.equal(read.browserClose, false)
        assert.ok(Math.abs(read.expiryAge! - 600) <= 5, `Django ${django.ok && django.version} age ${read.expiryAge}`)
      } else {
        // Django < 4.1 keeps datetimes only with PickleSerializer; it does not parse the ISO
        // string, and a request that saves the session fails (a 500). Documented in the README.
        assert.match(read.expiryError ?? '', /^TypeError/)
        await assert.rejects(
          dj.call('request', { method: 'POST', path: '/set', cookies: { sessionid: s.sessionKey }, json: { values: { n: 1 } } }),
          /TypeError/,
        )
      }
    })

    it('clearsessions run by Django deletes sessionkit’s expired rows and none that are live', async () => {
      const { live } = await mixedRows()
      const run = await manage(['clearsessions'], env)
      assert.equal(run.status, 0, run.stderr)
      assert.deepEqual(await dj.call<string[]>('keys'), [...live].sort())
    })

    it('sessionkit clearsessions deletes Django’s expired rows and none that are live', async () => {
      const { live } = await mixedRows()
      const run = await cli(['clearsessions'], { DATABASE_URL: databaseUrl })
      assert.equal(run.code, 0, run.stderr)
      assert.match(run.stdout, /^deleted 2 expired sessions \(db:\w+\)\n$/)
      assert.deepEqual(await dj.call<string[]>('keys'), [...live].sort())
    })

    /** An empty table, then a live, a browser-close and an expired session written by each side. */
    async function mixedRows(): Promise<{ live: string[] }> {
      await dj.call('wipe')
      const live: string[] = []
      for (const expiry of [null, 0, -3600]) {
        const s = sessions.session()
        s.set('by', 'sessionkit')
        if (expiry !== null) s.setExpiry(expiry)
        await s.save()
        const made = await dj.call<DjangoSession>('create', { values: { by: 'django' }, ...(expiry === null ? {} : { expiry }) })
        if (expiry !== -3600) live.push(s.sessionKey!, made.key!)
      }
      assert.equal((await dj.call<string[]>('keys')).length, 6)
      return { live }
    }

    it('refuses what Django refuses: another secret, another salt, any tampered character', async () => {
      const data = { username: 'mallory', admin: true, note: 'x'.repeat(100) }
      const good = await dj.call<string>('dumps', { data, secretKey: SECRET, salt: SESSION_SALT })
      assert.ok(good.startsWith('.'), 'compressed, so the "." flag is tampered with too')
      const refused = [
        await dj.call<string>('dumps', { data, secretKey: OTHER_SECRET, salt: SESSION_SALT }),
        // A store class with another name signs with another salt; so does a signed-cookie value.
        await dj.call<string>('dumps', { data, secretKey: SECRET, salt: 'django.contrib.sessions.CustomSessionStore' }),
        await dj.call<string>('dumps', { data, secretKey: SECRET, salt: COOKIE_SALT }),
        ...tamperings(good),
      ]
      const codecLogger = capturingLogger()
      const codec = createCodec(resolveSettings({ secretKey: SECRET, logger: codecLogger }))
      const decoded = await dj.call<{ data: Record<string, unknown>; warnings: string[] }[]>('decode', { values: [good, ...refused] })
      assert.deepEqual(decoded[0]!.data, data)
      assert.deepEqual(Object.fromEntries(codec.decode(good, 'db')), data)
      refused.forEach((value, i) => {
        const fromDjango = decoded[i + 1]!
        assert.deepEqual(fromDjango.data, {}, `Django accepted refusal ${i}: ${value}`)
        // Django 3.x retries a bad signature as the pre-3.1 format, which drops some refusals
        // silently; from 4.0 every bad signature logs.
        if (atLeast40) assert.deepEqual(fromDjango.warnings, ['Session data corrupted'], `Django logged refusal ${i}`)
        const before = codecLogger.warnings.length
        assert.equal(codec.decode(value, 'db').size, 0, `sessionkit accepted refusal ${i}: ${value}`)
        assert.match(codecLogger.warnings[before] ?? '', /^Session data corrupted/, `sessionkit logged refusal ${i}`)
      })

      // End to end: a row with another secret's data reads as an empty session on both sides.
      const key = 'tamperedrow' + String(Date.now()).padStart(21, '0')
      await dj.call('insert_row', { key, sessionData: refused[0], expireDate: new Date(Date.now() + 3600_000).toISOString() })
      assert.deepEqual((await skLoad(sessions, key)).data, {})
      assert.deepEqual((await dj.call<DjangoSession>('load', { key })).data, {})
      const viaNode = await nodeRequest(node, '/get', { cookies: { sessionid: key } })
      assert.deepEqual((viaNode.body as NodeSession).data, {})
      const viaDjango = await dj.call<DjangoResponse>('request', { path: '/get', cookies: { sessionid: key } })
      assert.deepEqual((viaDjango.body as DjangoSession).data, {})
    })

    it('reads a session signed with an old key listed in secretKeyFallbacks, and re-signs it with the current key on the next save', async () => {
      // Django on the old key writes the session (Django 3.2: SECRET_KEY was OLD_SECRET then).
      const made = await dj.call<DjangoSession>('create', { values: { username: 'rotated' }, settings: { SECRET_KEY: OLD_SECRET } })
      assert.deepEqual((await skLoad(sessions, made.key!)).data, {}, 'without the fallback the old signature is refused')
      await usingSessions({ secretKeyFallbacks: [OLD_SECRET] }, async (rotating) => {
        const s = rotating.session(made.key)
        await s.load()
        assert.deepEqual(Object.fromEntries(s.entries()), { username: 'rotated' })
        s.set('seen', true)
        await s.save()
      })
      const row = (await dj.call<DjangoSession['row']>('row', { key: made.key }))!
      const check = await dj.call<{ ok: boolean; error?: string }[]>('loads', {
        items: [
          { value: row.sessionData, secretKey: SECRET, salt: SESSION_SALT },
          { value: row.sessionData, secretKey: OLD_SECRET, salt: SESSION_SALT },
        ],
      })
      assert.deepEqual(check, [{ ok: true, data: { username: 'rotated', seen: true } }, { ok: false, error: 'BadSignature' }])
      assert.deepEqual((await dj.call<DjangoSession>('load', { key: made.key })).data, { username: 'rotated', seen: true })
      assert.deepEqual((await skLoad(sessions, made.key!)).data, { username: 'rotated', seen: true })
    })

    it('shares the database with Django’s cached_db engine, which sees a sessionkit change only once its cache entry is gone', async () => {
      const cachedDb = { SESSION_ENGINE: 'django.contrib.sessions.backends.cached_db' }
      const made = await dj.call<DjangoSession>('create', { values: { username: 'grace' }, settings: cachedDb })
      assert.deepEqual((await skLoad(sessions, made.key!)).data, { username: 'grace' })
      const s = sessions.session(made.key)
      await s.load()
      s.set('username', 'grace (changed by sessionkit)')
      await s.save()
      // Django's cached_db trusts its cache (here the default per-process cache): stale until it is gone.
      assert.deepEqual((await dj.call<DjangoSession>('load', { key: made.key, settings: cachedDb })).data, { username: 'grace' })
      await dj.call('cache_clear')
      assert.deepEqual((await dj.call<DjangoSession>('load', { key: made.key, settings: cachedDb })).data, { username: 'grace (changed by sessionkit)' })
    })

    it('reads, on Django 4.1+, a session sessionkit signed with a key now in SECRET_KEY_FALLBACKS', { skip: atLeast41 ? false : 'Django 3.2 has no SECRET_KEY_FALLBACKS; sessionkit’s side is checked against the 4.1+ vector below' }, async () => {
      const s = await usingSessions({ secretKey: OLD_SECRET }, async (old) => {
        const session = old.session()
        session.set('username', 'rotated')
        await session.save()
        return session.sessionKey!
      })
      const read = await dj.call<DjangoSession>('load', { key: s, settings: { SECRET_KEY: SECRET, SECRET_KEY_FALLBACKS: [OLD_SECRET] } })
      assert.deepEqual(read.data, { username: 'rotated' })
    })
  })
}

describeSharedDb('db engine on a SQLite file shared with Django', djangoSkip, sqliteDatabases)
describeSharedDb('db engine on a PostgreSQL database shared with Django', pgSkip, pgDatabases)

// ------------------------------------------------------------------------------ documented differences

describe('data Django writes that sessionkit reads differently', { skip: djangoSkip }, () => {
  let dj: Driver
  let sessions: Sessions
  const logger = capturingLogger()
  before(async () => {
    const databaseUrl = `sqlite:///${path.join(dir, `numbers-${fileCount++}.sqlite3`)}`
    sessions = createSessions({ secretKey: SECRET, databaseUrl, logger })
    dj = await startDriver({ SECRET_KEY: SECRET, DATABASE_URL: databaseUrl, SESSION_ENGINE: 'db' })
  })
  after(async () => {
    await sessions?.close()
    await dj?.close()
  })

  async function roundTrip(valuesJson: string): Promise<{ node: Record<string, unknown>; back: DjangoSession }> {
    const made = await dj.call<DjangoSession>('create', { valuesJson })
    const s = sessions.session(made.key)
    await s.load()
    const node = Object.fromEntries(s.entries())
    s.set('touched', true)
    await s.save()
    return { node, back: await dj.call<DjangoSession>('load', { key: made.key }) }
  }

  it('turns an integral float into an int once sessionkit saves the session (equal in Python, another type)', async () => {
    const { node, back } = await roundTrip('{"price": 1.0, "big": 1e16, "half": 0.5}')
    assert.deepEqual(node, { price: 1, big: 1e16, half: 0.5 })
    assert.deepEqual(back.types, { price: 'int', big: 'int', half: 'float', touched: 'bool' })
    assert.deepEqual(back.data, { price: 1, big: 1e16, half: 0.5, touched: true })
  })

  it('rounds integers beyond 2**53 to the nearest double', async () => {
    const { node, back } = await roundTrip('{"id": 9007199254740993}')
    assert.equal(node['id'], 9007199254740992)
    assert.equal(back.data['id'], 9007199254740992, 'Django now holds the rounded value')
  })

  it('cannot read sessions Django 3.1/3.2 writes with DEFAULT_HASHING_ALGORITHM = "sha1" (the pre-3.1 format)', { skip: atLeast40 ? 'the setting is gone since Django 4.0' : false }, async () => {
    const made = await dj.call<DjangoSession>('create', { values: { username: 'heidi' }, settings: { DEFAULT_HASHING_ALGORITHM: 'sha1' } })
    assert.doesNotMatch(made.row!.sessionData, /:/, 'the pre-3.1 format: base64 of "<sha1 hex>:<json>"')
    assert.deepEqual((await dj.call<DjangoSession>('load', { key: made.key })).data, { username: 'heidi' }, 'Django 3.2 reads it back')
    const before = logger.warnings.length
    assert.deepEqual((await skLoad(sessions, made.key!)).data, {})
    assert.match(logger.warnings[before] ?? '', /^Session data corrupted/)
  })

  it('cannot read a session holding NaN or Infinity (Python writes them; JSON has none): the whole session reads empty', async () => {
    const made = await dj.call<DjangoSession>('create', { valuesJson: '{"username": "frank", "score": NaN}' })
    const before = logger.warnings.length
    const read = await skLoad(sessions, made.key!)
    assert.deepEqual(read.data, {})
    assert.match(logger.warnings[before] ?? '', /corrupt/)
  })
})

// ------------------------------------------------------------------------------ tables

function describeTables(title: string, skip: string | boolean, databases: () => SharedDatabase): void {
  describe(title, { skip }, () => {
    let dbs: SharedDatabase
    const drivers: Driver[] = []
    before(() => {
      dbs = databases()
    })
    after(async () => {
      for (const d of drivers) await d.close()
      await dbs?.cleanup()
    })

    /** Django and sessionkit each write a session on `url`, and each reads the other's. */
    async function roundTrip(url: string): Promise<void> {
      const dj = await startDriver({ SECRET_KEY: SECRET, DATABASE_URL: url, SESSION_ENGINE: 'db' })
      drivers.push(dj)
      const sessions = createSessions({ secretKey: SECRET, databaseUrl: url, logger: capturingLogger() })
      try {
        await sessions.ready()
        const made = await dj.call<DjangoSession>('create', { values: { username: 'from django' }, expiry: 600 })
        assert.deepEqual((await skLoad(sessions, made.key!)).data, { username: 'from django', _session_expiry: 600 })
        const s = sessions.session()
        s.set('username', 'from sessionkit')
        await s.save()
        assert.deepEqual((await dj.call<DjangoSession>('load', { key: s.sessionKey })).data, { username: 'from sessionkit' })
        assert.deepEqual(await dj.call<string[]>('keys'), [made.key!, s.sessionKey!].sort())
      } finally {
        await sessions.close()
      }
    }

    it('sessionkit migrate on an empty database makes the table Django’s migration makes, and migrate --fake-initial accepts it', async () => {
      const ours = await dbs.fresh()
      const made = await cli(['migrate'], { DATABASE_URL: ours })
      assert.equal(made.code, 0, made.stderr)
      assert.match(made.stdout, /^created table django_session/)

      const djangos = await dbs.fresh()
      const reference = await manage(['migrate', 'sessions', '--no-input'], { SECRET_KEY: SECRET, DATABASE_URL: djangos })
      assert.equal(reference.status, 0, reference.stderr)
      assert.deepEqual(await dbs.schema(ours), await dbs.schema(djangos))

      const faked = await manage(['migrate', 'sessions', '--fake-initial', '--no-input'], { SECRET_KEY: SECRET, DATABASE_URL: ours })
      assert.equal(faked.status, 0, faked.stderr)
      assert.match(faked.stdout, /Applying sessions\.0001_initial\.\.\. FAKED/)
      await roundTrip(ours)
    })

    it('works on the table Django’s migrate sessions created, and its migrate has nothing to add', async () => {
      const url = await dbs.fresh()
      const migrated = await manage(['migrate', 'sessions', '--no-input'], { SECRET_KEY: SECRET, DATABASE_URL: url })
      assert.equal(migrated.status, 0, migrated.stderr)
      assert.match(migrated.stdout, /Applying sessions\.0001_initial\.\.\. OK/)
      const before = await dbs.schema(url)
      const ours = await cli(['migrate'], { DATABASE_URL: url })
      assert.equal(ours.code, 0, ours.stderr)
      assert.match(ours.stdout, /^django_session is already in place/)
      assert.deepEqual(await dbs.schema(url), before)
      await roundTrip(url)
    })
  })
}

describeTables('tables on SQLite: sessionkit migrate and Django migrate', djangoSkip, sqliteDatabases)
describeTables('tables on PostgreSQL: sessionkit migrate and Django migrate', pgSkip, pgDatabases)

// ------------------------------------------------------------------------------ signed cookies

describe('signed cookies through both middlewares', { skip: djangoSkip }, () => {
  let dj: Driver
  let node: NodeApp
  let sessions: Sessions
  const logger = capturingLogger()
  const settings: Partial<Settings> = { engine: 'signed_cookies', secretKey: SECRET, logger }
  before(async () => {
    dj = await startDriver({ SECRET_KEY: SECRET, DATABASE_URL: 'sqlite::memory:', SESSION_ENGINE: 'signed_cookies' })
    node = await startNodeApp(settings)
    sessions = createSessions(settings)
  })
  after(async () => {
    await node?.close()
    await sessions?.close()
    await dj?.close()
  })

  it('accepts a cookie Django set, every value equal', async () => {
    const set = await dj.call<DjangoResponse>('request', { method: 'POST', path: '/set', json: { values: VALUES } })
    const cookie = cookieValue(set.setCookie, 'sessionid')!
    assert.ok(cookie.startsWith('.'), 'Django compressed the cookie')
    const read = await nodeRequest(node, '/get', { cookies: { sessionid: cookie } })
    assert.equal(read.status, 200)
    assert.deepEqual((read.body as NodeSession).data, VALUES)
    assert.deepEqual(Object.keys((read.body as NodeSession).data), Object.keys(VALUES))
    assert.deepEqual(read.setCookie, [])
    assert.equal(read.vary, 'Cookie')
  })

  it('sets a cookie Django’s SessionMiddleware accepts, every value equal, and each side reads the other’s changes', async () => {
    const set = await nodeRequest(node, '/set', { method: 'POST', json: { values: VALUES } })
    const cookie = cookieValue(set.setCookie, 'sessionid')!
    const read = await dj.call<DjangoResponse>('request', { path: '/get', cookies: { sessionid: cookie } })
    assert.equal(read.status, 200)
    assert.deepEqual((read.body as DjangoSession).data, VALUES)
    assert.deepEqual((read.body as DjangoSession).types, PY_TYPES)
    assert.deepEqual(read.setCookie, [], 'Django re-sends nothing: it accepted the cookie as is')

    const changed = await dj.call<DjangoResponse>('request', { method: 'POST', path: '/set', cookies: { sessionid: cookie }, json: { values: { username: 'changed by Django' } } })
    const djangoCookie = cookieValue(changed.setCookie, 'sessionid')!
    const back = await nodeRequest(node, '/get', { cookies: { sessionid: djangoCookie } })
    assert.deepEqual((back.body as NodeSession).data, { ...VALUES, username: 'changed by Django' })
  })

  it('agrees with Django on set_expiry(N) and set_expiry(0), and on the cookie attributes', async () => {
    for (const n of [600, 0]) {
      const fromDjango = await dj.call<DjangoResponse>('request', { path: `/expiry?n=${n}` })
      const fromNode = await nodeRequest(node, `/expiry?n=${n}`)
      assert.deepEqual(fromNode.setCookie.map(attributes), fromDjango.setCookie.map(attributes), `expiry ${n}`)
      // Each side reads the other's cookie with the same age and browser-close.
      const djangoCookie = cookieValue(fromDjango.setCookie, 'sessionid')!
      const nodeCookie = cookieValue(fromNode.setCookie, 'sessionid')!
      const nodeReads = (await nodeRequest(node, '/get', { cookies: { sessionid: djangoCookie } })).body as NodeSession
      const djangoReads = (await dj.call<DjangoResponse>('request', { path: '/get', cookies: { sessionid: nodeCookie } })).body as DjangoSession
      const expected = n === 0 ? [COOKIE_AGE, true] : [n, false]
      assert.deepEqual([nodeReads.expiryAge, nodeReads.browserClose], expected)
      assert.deepEqual([djangoReads.expiryAge, djangoReads.browserClose], expected)
    }
    // sessionkit enforces the N seconds when the cookie comes back (Django only sets Max-Age: #19201).
    const fromDjango = await dj.call<DjangoResponse>('request', { path: '/expiry?n=600' })
    const cookie = cookieValue(fromDjango.setCookie, 'sessionid')!
    const late = createSessions({ ...settings, now: () => Date.now() + 601_000 })
    assert.equal((await skLoad(late, cookie)).found, false)
    await late.close()
  })

  it('refuses what Django refuses: another secret, another salt, any tampered character', async () => {
    const data = { username: 'mallory', admin: true, note: 'x'.repeat(100) }
    const good = await dj.call<string>('dumps', { data, secretKey: SECRET, salt: COOKIE_SALT })
    assert.ok(good.startsWith('.'), 'compressed, so the "." flag is tampered with too')
    const refused = [
      await dj.call<string>('dumps', { data, secretKey: OTHER_SECRET, salt: COOKIE_SALT }),
      await dj.call<string>('dumps', { data, secretKey: SECRET, salt: SESSION_SALT }),
      await dj.call<string>('dumps', { data, secretKey: SECRET, salt: 'django.core.signing' }),
      ...tamperings(good),
    ]
    const checks = await dj.call<{ ok: boolean; data?: unknown; error?: string }[]>('loads', {
      items: [good, ...refused].map((value) => ({ value, secretKey: SECRET, salt: COOKIE_SALT, maxAge: COOKIE_AGE })),
    })
    assert.deepEqual(checks[0], { ok: true, data })
    assert.deepEqual((await skLoad(sessions, good)).data, data)
    for (const [i, value] of refused.entries()) {
      assert.equal(checks[i + 1]!.ok, false, `Django accepted refusal ${i}: ${value}`)
      const read = await skLoad(sessions, value)
      assert.deepEqual([read.found, read.data], [false, {}], `sessionkit accepted refusal ${i}: ${value}`)
    }

    // End to end, through both middlewares: neither shows the data. Django re-issues a cookie
    // holding an empty session; sessionkit deletes the cookie.
    const forged = refused[0]!
    const viaDjango = await dj.call<DjangoResponse>('request', { path: '/get', cookies: { sessionid: forged } })
    assert.deepEqual((viaDjango.body as DjangoSession).data, {})
    const viaNode = await nodeRequest(node, '/get', { cookies: { sessionid: forged } })
    assert.deepEqual((viaNode.body as NodeSession).data, {})
    assert.match(viaNode.setCookie[0] ?? '', /^sessionid=""; expires=Thu, 01 Jan 1970/)
    assert.equal(viaDjango.setCookie.length, 1)
    const reissued = cookieValue(viaDjango.setCookie, 'sessionid')!
    const empty = await skLoad(sessions, reissued)
    assert.deepEqual([empty.found, empty.data], [true, {}])
  })

  it('with cookieEncryption, reads Django’s signed cookie but writes one Django cannot read', async () => {
    const set = await dj.call<DjangoResponse>('request', { method: 'POST', path: '/set', json: { values: { username: 'ivan' } } })
    const signed = cookieValue(set.setCookie, 'sessionid')!
    const encrypting = await startNodeApp({ ...settings, cookieEncryption: true })
    try {
      assert.deepEqual(((await nodeRequest(encrypting, '/get', { cookies: { sessionid: signed } })).body as NodeSession).data, { username: 'ivan' })
      const changed = await nodeRequest(encrypting, '/set', { method: 'POST', cookies: { sessionid: signed }, json: { values: { seen: true } } })
      const encrypted = cookieValue(changed.setCookie, 'sessionid')!
      assert.deepEqual(((await nodeRequest(encrypting, '/get', { cookies: { sessionid: encrypted } })).body as NodeSession).data, { username: 'ivan', seen: true })
      const viaDjango = await dj.call<DjangoResponse>('request', { path: '/get', cookies: { sessionid: encrypted } })
      assert.deepEqual((viaDjango.body as DjangoSession).data, {}, 'Django cannot read an encrypted cookie')
    } finally {
      await encrypting.close()
    }
  })

  it('with two session cookies in one header, Django reads the last and sessionkit the first', async () => {
    const first = cookieValue((await nodeRequest(node, '/set', { method: 'POST', json: { values: { which: 'first' } } })).setCookie, 'sessionid')!
    const last = cookieValue((await nodeRequest(node, '/set', { method: 'POST', json: { values: { which: 'last' } } })).setCookie, 'sessionid')!
    const header = `sessionid=${first}; sessionid=${last}`
    const djangoReads = await dj.call<DjangoResponse>('request', { path: '/get', cookieHeader: header })
    assert.deepEqual((djangoReads.body as DjangoSession).data, { which: 'last' })
    const res = await fetch(`${node.url}/get`, { headers: { cookie: header } })
    assert.deepEqual(((await res.json()) as NodeSession).data, { which: 'first' })
  })

  it('reads a cookie Django signed with a key now in secretKeyFallbacks, and re-signs it with the current key when it changes', async () => {
    const old = await dj.call<DjangoResponse>('request', { method: 'POST', path: '/set', json: { values: { username: 'rotated' } }, settings: { SECRET_KEY: OLD_SECRET } })
    const oldCookie = cookieValue(old.setCookie, 'sessionid')!
    const strict = await nodeRequest(node, '/get', { cookies: { sessionid: oldCookie } })
    assert.deepEqual((strict.body as NodeSession).data, {}, 'without the fallback the old signature is refused')

    const rotating = await startNodeApp({ ...settings, secretKeyFallbacks: [OLD_SECRET] })
    try {
      const read = await nodeRequest(rotating, '/get', { cookies: { sessionid: oldCookie } })
      assert.deepEqual((read.body as NodeSession).data, { username: 'rotated' })
      assert.deepEqual(read.setCookie, [], 'not re-signed until it changes')
      const changed = await nodeRequest(rotating, '/set', { method: 'POST', cookies: { sessionid: oldCookie }, json: { values: { seen: true } } })
      const newCookie = cookieValue(changed.setCookie, 'sessionid')!
      const check = await dj.call<{ ok: boolean; error?: string }[]>('loads', {
        items: [
          { value: newCookie, secretKey: SECRET, salt: COOKIE_SALT, maxAge: COOKIE_AGE },
          { value: newCookie, secretKey: OLD_SECRET, salt: COOKIE_SALT, maxAge: COOKIE_AGE },
        ],
      })
      assert.deepEqual(check, [{ ok: true, data: { username: 'rotated', seen: true } }, { ok: false, error: 'BadSignature' }])
      const viaDjango = await dj.call<DjangoResponse>('request', { path: '/get', cookies: { sessionid: newCookie } })
      assert.deepEqual((viaDjango.body as DjangoSession).data, { username: 'rotated', seen: true })
    } finally {
      await rotating.close()
    }
  })
})

// ------------------------------------------------------------------------------ 4.1+ formats

describe('Django 4.1+ formats that Django 3.2 cannot produce', () => {
  // Reference §3.6, made by real Django 6.1-dev with REF_SECRET at t=1700000000: V2 a
  // session; V8 the same session re-encoded by Django 4.1+ with SECRET_KEY=NEW and
  // SECRET_KEY_FALLBACKS=[REF_SECRET]; V7 a session after set_expiry(datetime) (4.1+).
  const REF_SECRET = 'django-insecure-test-secret-key-0123456789'
  const NEW = 'new-secret-key-abcdefghijklmnopqrstuvwxyz'
  const V2 = 'eyJhIHRlc3Qga2V5IjoiYSB0ZXN0IHZhbHVlIn0:1r31eq:Wr3fExHhepug9mwmm3EyPf951qDFCe-6mFOBvLRIFr0'
  const V8 = 'eyJhIHRlc3Qga2V5IjoiYSB0ZXN0IHZhbHVlIn0:1r31eq:5nsSKk_BiOCAUUn_LgCeP6xMcLZAe7a8CNNdp_xmbJQ'

  it('decodes V2 through the fallback key and re-encodes it to V8, byte for byte', () => {
    const codec = createCodec(resolveSettings({ secretKey: NEW, secretKeyFallbacks: [REF_SECRET], now: () => 1_700_000_000_000 }))
    const data = codec.decode(V2, 'db')
    assert.deepEqual(Object.fromEntries(data), { 'a test key': 'a test value' })
    assert.equal(codec.encode(data), V8)
    const withoutFallback = createCodec(resolveSettings({ secretKey: NEW, logger: capturingLogger() }))
    assert.equal(withoutFallback.decode(V2, 'db').size, 0)
  })

  it('stores setExpiry(date) as Django 4.1+ stores set_expiry(datetime): V7, byte for byte', async () => {
    const V7 = 'eyJfc2Vzc2lvbl9leHBpcnkiOiIyMDMwLTAxLTAyVDAzOjA0OjA1LjY3ODAwMCswMDowMCJ9:1r31eq:7phHiPVo0F2IpqVx5UV1ThyzKcuQyWafyEERe3Q-rvY'
    const settings = { secretKey: REF_SECRET, databaseUrl: 'sqlite::memory:', now: () => 1_700_000_000_000 }
    const sessions = createSessions(settings)
    try {
      const s = sessions.session()
      s.setExpiry(new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678)))
      assert.equal(createCodec(resolveSettings(settings)).encode(new Map(s.entries())), V7)
    } finally {
      await sessions.close()
    }
  })
})
