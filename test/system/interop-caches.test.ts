/**
 * Sessions shared with real Django 3.2 (Debian's python3-django, with python3-django-redis and
 * python3-pymemcache) on the engines whose store is a cache or a directory, both ways:
 *
 * - `cache` on Redis (django-redis with its zlib compressor and a KEY_PREFIX) and on two
 *   Memcached servers (PyMemcacheCache); `cached_db` on SQLite + Redis (db 3 of the LOCATION
 *   URL, through `redisUrl`) and on PostgreSQL + Memcached; `file` on a shared directory;
 * - for each: created on Django → read and changed on Node → read on Django; created on Node →
 *   read and flushed on Django → gone on Node; cycleKey on either side; expiry on both; one
 *   visitor through both middlewares.
 *
 * Django, its cache libraries, Redis, Memcached or PostgreSQL absent: skipped with a notice,
 * except under CI, where that is a failure.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { Redis } from 'ioredis'
import { createSessions, type Sessions, type Settings } from 'sessionkit'
import { capturingLogger } from 'sessionkit/testing'
import { redisCache } from '../../src/caches/redis.ts'
import { memcachedCache } from '../../src/caches/memcached.ts'
import { main } from '../../src/cli.ts'
import { POSTGRES_URL } from '../helpers/databases.ts'
import { REDIS_URL, redisAvailable, underCI, uniquePrefix } from '../helpers/redis.ts'
import { memcachedAvailable, startMemcached } from '../helpers/memcached.ts'
import { PYTHON, probeDjango, startDriver, type DjangoEnv, type DjangoResponse, type DjangoSession, type Driver } from './interop/django.ts'
import { cookieValue, nodeRequest, startNodeApp, type NodeSession } from './interop/node-app.ts'

const SECRET = 'sessionkit-interop-caches-secret-0123456789'
const VALUES = {
  username: 'zoë 🦄',
  nested: { list: [1, [2, [3, { deep: true }]], null], dict: { a: { b: 'c' } }, empty: {} },
  integer: 42,
  big: 9007199254740991,
  float: 2.5,
  yes: true,
  nothing: null,
  text: 'naïve café — 日本語 😀 "quoted" \\ / <b>',
  large: 'the quick brown fox '.repeat(200),
}

const django = probeDjango(['django_redis', 'pymemcache'])
const redisSkip = await redisAvailable()
const memcachedSkip = memcachedAvailable()
const pgReason = await (async () => {
  if (!probeDjango(['psycopg2']).ok) return `psycopg2 not installed for ${PYTHON}`
  try {
    const c = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 5000 })
    await c.connect()
    await c.end()
    return null
  } catch (error) {
    return `PostgreSQL not reachable (${(error as Error).message})`
  }
})()

/** Why a configuration cannot run here; under CI that is a failure, not a skip. */
function skipFor(...reasons: (string | false | null)[]): string | false {
  const reason = [django.ok ? null : `Django with django-redis and pymemcache not importable by ${PYTHON} (apt-get install -y python3-django python3-django-redis python3-pymemcache): ${django.reason}`, ...reasons].find((r) => r) ?? null
  if (!reason) return false
  if (underCI()) throw new Error(`${reason}; CI is set, so the Django cache interop tests must run`)
  console.warn(`# skipping Django cache interop: ${reason}`)
  return reason
}

const dir = mkdtempSync(path.join(tmpdir(), 'sessionkit-interop-caches-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const memcached = memcachedSkip ? [] : await startMemcached(2)
const redis = redisSkip ? undefined : new Redis(REDIS_URL)
/** Keys this file wrote in Redis db 0 and db 3 (under unique prefixes), deleted at the end. */
const prefixes: { db: number; prefix: string }[] = []
after(async () => {
  if (!redis) return
  for (const { db, prefix } of prefixes) {
    await redis.select(db)
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length) await redis.del(...keys)
  }
  await redis.quit()
})

const pgDatabases: string[] = []
async function pgScratch(): Promise<string> {
  const name = `sk_interop_caches_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: POSTGRES_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  pgDatabases.push(name)
  const url = new URL(POSTGRES_URL)
  url.pathname = `/${name}`
  return url.toString()
}
after(async () => {
  if (pgDatabases.length === 0) return
  const admin = new pg.Client({ connectionString: POSTGRES_URL })
  await admin.connect()
  for (const name of pgDatabases) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await admin.end()
})

interface Config {
  title: string
  skip: string | false
  /** The Django environment and sessionkit's settings, made when the suite starts. */
  make(): Promise<{ env: DjangoEnv; settings: Partial<Settings>; migrate?: boolean }>
  /** Whether an integer set_expiry(N) expires on Django's side (the file backend never expires it: Django's quirk). */
  djangoExpiresIntExpiry: boolean
  /** Where the entry of session `key` is, as seen on the server itself: throws when it is not as Django lays it out. */
  inspect?(key: string): Promise<void>
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const configs: Config[] = [
  {
    title: 'cache on Redis: django-redis with its zlib compressor and a KEY_PREFIX',
    skip: skipFor(redisSkip),
    djangoExpiresIntExpiry: true,
    async make() {
      const keyPrefix = uniquePrefix('interop-django-redis')
      prefixes.push({ db: 0, prefix: keyPrefix })
      const caches = { default: { BACKEND: 'django_redis.cache.RedisCache', LOCATION: `${REDIS_URL}/0`, KEY_PREFIX: keyPrefix, OPTIONS: { COMPRESSOR: 'django_redis.compressors.zlib.ZlibCompressor' } } }
      return {
        env: { SECRET_KEY: SECRET, DATABASE_URL: 'sqlite::memory:', SESSION_ENGINE: 'cache', DJANGO_CACHES: JSON.stringify(caches) },
        settings: { engine: 'cache', cacheFormat: { backend: 'django-redis', keyPrefix, compressor: 'zlib' }, caches: { default: redisCache(redis!) } },
      }
    },
    async inspect(key) {
      const prefix = prefixes.find((p) => p.prefix.includes('interop-django-redis'))!.prefix
      await redis!.select(0)
      const bytes = await redis!.getBuffer(`${prefix}:1:django.contrib.sessions.cache${key}`)
      assert.ok(bytes, 'the entry is under KEY_PREFIX:1:django.contrib.sessions.cache<key>')
      assert.equal(bytes[0], 0x78, 'zlib-compressed, as ZlibCompressor stores it')
    },
  },
  {
    title: 'cache on two Memcached servers: PyMemcacheCache',
    skip: skipFor(memcachedSkip),
    djangoExpiresIntExpiry: true,
    async make() {
      const location = memcached.map((m) => m.location)
      const caches = { default: { BACKEND: 'django.core.cache.backends.memcached.PyMemcacheCache', LOCATION: location } }
      return {
        env: { SECRET_KEY: SECRET, DATABASE_URL: 'sqlite::memory:', SESSION_ENGINE: 'cache', DJANGO_CACHES: JSON.stringify(caches) },
        settings: { engine: 'cache', cacheFormat: 'django', caches: { default: memcachedCache({ servers: location }) } },
      }
    },
    async inspect(key) {
      const full = `:1:django.contrib.sessions.cache${key}`
      const probe = memcachedCache({ servers: memcached.map((m) => m.location), prefix: '' })
      try {
        const entry = await probe.django.get(full)
        assert.ok(entry, 'the entry is under :1:django.contrib.sessions.cache<key>')
        assert.equal(entry.value.flags, 1, 'flags 1: pymemcache’s pickle')
        assert.equal(entry.value.bytes[0], 0x80, 'a pickle')
      } finally {
        await probe.close()
      }
    },
  },
  {
    title: 'cached_db on SQLite + Redis: django-redis on db 3 of LOCATION, sessionkit through redisUrl',
    skip: skipFor(redisSkip),
    djangoExpiresIntExpiry: true,
    async make() {
      const keyPrefix = uniquePrefix('interop-cached-db')
      prefixes.push({ db: 3, prefix: keyPrefix })
      const databaseUrl = `sqlite:///${path.join(dir, `cdb-${randomBytes(3).toString('hex')}.sqlite3`)}`
      const caches = { default: { BACKEND: 'django_redis.cache.RedisCache', LOCATION: `${REDIS_URL}/3`, KEY_PREFIX: keyPrefix } }
      return {
        env: { SECRET_KEY: SECRET, DATABASE_URL: databaseUrl, SESSION_ENGINE: 'cached_db', DJANGO_CACHES: JSON.stringify(caches) },
        settings: { engine: 'cached_db', databaseUrl, redisUrl: `${REDIS_URL}/3`, cacheFormat: { backend: 'django-redis', keyPrefix } },
        migrate: true,
      }
    },
    async inspect(key) {
      const prefix = prefixes.find((p) => p.prefix.includes('interop-cached-db'))!.prefix
      const full = `${prefix}:1:django.contrib.sessions.cached_db${key}`
      await redis!.select(3)
      assert.equal(await redis!.exists(full), 1, 'the entry is in db 3 under KEY_PREFIX:1:django.contrib.sessions.cached_db<key>')
      await redis!.select(0)
      assert.equal(await redis!.exists(full), 0, 'and not in db 0')
    },
  },
  {
    title: 'cached_db on PostgreSQL + Memcached: PyMemcacheCache',
    skip: skipFor(memcachedSkip, pgReason),
    djangoExpiresIntExpiry: true,
    async make() {
      const databaseUrl = await pgScratch()
      const location = memcached.map((m) => m.location)
      const caches = { default: { BACKEND: 'django.core.cache.backends.memcached.PyMemcacheCache', LOCATION: location.join(';'), KEY_PREFIX: `pg${randomBytes(3).toString('hex')}` } }
      return {
        env: { SECRET_KEY: SECRET, DATABASE_URL: databaseUrl, SESSION_ENGINE: 'cached_db', DJANGO_CACHES: JSON.stringify(caches) },
        settings: { engine: 'cached_db', databaseUrl, cacheFormat: { keyPrefix: caches.default.KEY_PREFIX }, caches: { default: memcachedCache({ servers: location }) } },
        migrate: true,
      }
    },
  },
  {
    title: 'file on a directory shared with Django (SESSION_FILE_PATH)',
    skip: skipFor(),
    djangoExpiresIntExpiry: false,
    async make() {
      const filePath = mkdtempSync(path.join(dir, 'files-'))
      return {
        env: { SECRET_KEY: SECRET, DATABASE_URL: 'sqlite::memory:', SESSION_ENGINE: 'file', SESSION_FILE_PATH: filePath },
        settings: { engine: 'file', filePath },
      }
    },
  },
]

async function skLoad(sessions: Sessions, key: string): Promise<{ data: Record<string, unknown>; found: boolean }> {
  const s = sessions.session(key)
  await s.load()
  return { data: Object.fromEntries(s.entries()), found: s.sessionKey !== null }
}

for (const config of configs) {
  describe(`Django interop: ${config.title}`, { skip: config.skip }, () => {
    let dj: Driver
    let sessions: Sessions
    let settings: Partial<Settings>
    let env: DjangoEnv
    const logger = capturingLogger()
    before(async () => {
      const made = await config.make()
      env = made.env
      settings = { secretKey: SECRET, logger, ...made.settings }
      if (made.migrate) {
        const { manage } = await import('./interop/django.ts')
        const migrated = await manage(['migrate', 'sessions', '--no-input'], env)
        assert.equal(migrated.status, 0, migrated.stderr)
      }
      dj = await startDriver(env)
      sessions = createSessions(settings)
      await sessions.ready()
    })
    after(async () => {
      await sessions?.close()
      await dj?.close()
    })

    it('created on Django → read and changed on Node → read on Django, every value equal', async () => {
      const made = await dj.call<DjangoSession>('create', { values: VALUES })
      const read = await skLoad(sessions, made.key!)
      assert.deepEqual(read.data, VALUES)
      const s = sessions.session(made.key)
      await s.load()
      s.set('changedBy', 'node')
      s.set('cart', ['📘', 2])
      await s.save()
      assert.equal(s.sessionKey, made.key)
      const back = await dj.call<DjangoSession>('load', { key: made.key, expect: { ...VALUES, changedBy: 'node', cart: ['📘', 2] } })
      assert.equal(back.equal, true, `Django read ${JSON.stringify(back.data).slice(0, 200)}`)
      assert.equal(back.types['integer'], 'int')
      assert.equal(back.types['float'], 'float')
    })

    // Only the cache engine stores what Django's JSON serializer cannot (cached_db writes the row first).
    if (config.title.startsWith('cache on')) it('a Django session holding a datetime (pickled by the cache) is an unreadable session on Node, logged, and left intact for Django', async () => {
      const made = await dj.call<DjangoSession>('create', { values: { username: 'frank' }, datetimeKey: 'lastSeen' })
      const before = logger.warnings.length
      const read = await skLoad(sessions, made.key!)
      assert.deepEqual(read.data, {})
      assert.match(logger.warnings.slice(before).join('\n'), /corrupt.*GLOBAL|corrupt.*STACK_GLOBAL|imports or calls code/)
      const still = await dj.call<DjangoSession>('load', { key: made.key })
      assert.equal(still.data['username'], 'frank', 'Django still has its session')
    })

    it('created on Node → read and flushed on Django → gone on Node', async () => {
      const s = sessions.session()
      s.update(VALUES)
      await s.save()
      const key = s.sessionKey!
      await config.inspect?.(key)
      const read = await dj.call<DjangoSession>('load', { key, expect: VALUES })
      assert.equal(read.equal, true)
      assert.deepEqual(read.types, { username: 'str', nested: 'dict', integer: 'int', big: 'int', float: 'float', yes: 'bool', nothing: 'NoneType', text: 'str', large: 'str' })
      await dj.call('flush', { key })
      assert.equal((await skLoad(sessions, key)).found, false, 'gone on Node after Django’s flush')
      assert.equal(await sessions.session().exists(key), false)
    })

    it('created on Django → flushed on Node → gone on Django', async () => {
      const made = await dj.call<DjangoSession>('create', { values: { username: 'bob' } })
      const s = sessions.session(made.key)
      await s.load()
      await s.flush()
      assert.equal(await dj.call<boolean>('exists', { key: made.key }), false)
      assert.deepEqual((await dj.call<DjangoSession>('load', { key: made.key })).data, {})
    })

    it('cycleKey on Django: Node finds the data under the new key, nothing under the old', async () => {
      const made = await dj.call<DjangoSession>('create', { values: { username: 'carol' } })
      const cycled = await dj.call<DjangoSession>('cycle', { key: made.key })
      assert.notEqual(cycled.key, made.key)
      assert.deepEqual((await skLoad(sessions, cycled.key!)).data, { username: 'carol' })
      assert.equal((await skLoad(sessions, made.key!)).found, false)
    })

    it('cycleKey on Node: Django finds the data under the new key, nothing under the old', async () => {
      const made = await dj.call<DjangoSession>('create', { values: { username: 'dave' } })
      const s = sessions.session(made.key)
      await s.load()
      await s.cycleKey()
      assert.notEqual(s.sessionKey, made.key)
      assert.deepEqual((await dj.call<DjangoSession>('load', { key: s.sessionKey })).data, { username: 'dave' })
      assert.deepEqual((await dj.call<DjangoSession>('load', { key: made.key })).data, {})
      assert.equal(await dj.call<boolean>('exists', { key: made.key }), false)
    })

    it('one visitor through both middlewares: Django logs in, Node changes, Django sees it, Node logs out', async () => {
      const node = await startNodeApp(settings)
      try {
        const login = await dj.call<DjangoResponse>('request', { method: 'POST', path: '/set', json: { values: { authUser: 'erin' } } })
        const key = cookieValue(login.setCookie, 'sessionid')!
        assert.ok(key)
        const seen = await nodeRequest(node, '/get', { cookies: { sessionid: key } })
        assert.deepEqual((seen.body as NodeSession).data, { authUser: 'erin' })
        await nodeRequest(node, '/set', { method: 'POST', cookies: { sessionid: key }, json: { values: { theme: 'dark' } } })
        const back = await dj.call<DjangoResponse>('request', { path: '/get', cookies: { sessionid: key } })
        assert.deepEqual((back.body as DjangoSession).data, { authUser: 'erin', theme: 'dark' })
        await nodeRequest(node, '/flush', { cookies: { sessionid: key } })
        const gone = await dj.call<DjangoResponse>('request', { path: '/get', cookies: { sessionid: key } })
        assert.deepEqual((gone.body as DjangoSession).data, {})
      } finally {
        await node.close()
      }
    })

    it('expiry is honoured on both sides: set_expiry(2) on Django and setExpiry(2) on Node are gone for both after it', async () => {
      const made = await dj.call<DjangoSession>('create', { values: { short: 'django' }, expiry: 2 })
      assert.equal(made.expiryAge, 2)
      const s = sessions.session()
      s.set('short', 'node')
      s.setExpiry(2)
      await s.save()
      const nodeKey = s.sessionKey!
      assert.deepEqual((await dj.call<DjangoSession>('load', { key: nodeKey })).expiryAge, 2)
      assert.equal((await skLoad(sessions, made.key!)).found, true)
      if (settings.engine === 'file') {
        // Files expire by modification time: age them instead of waiting.
        const old = Date.now() / 1000 - 10
        for (const key of [made.key!, nodeKey]) utimesSync(path.join(settings.filePath!, `sessionid${key}`), old, old)
      } else {
        await pause(3500) // the cache's TTL (memcached counts whole seconds)
      }
      assert.equal((await skLoad(sessions, made.key!)).found, false, 'Node: Django’s session expired')
      assert.equal((await skLoad(sessions, nodeKey)).found, false, 'Node: its own session expired')
      if (config.djangoExpiresIntExpiry) {
        assert.deepEqual((await dj.call<DjangoSession>('load', { key: made.key })).data, {}, 'Django: its session expired')
        assert.deepEqual((await dj.call<DjangoSession>('load', { key: nodeKey })).data, {}, 'Django: Node’s session expired')
      }
    })
  })
}

describe('Django interop: file engine, clearsessions on either side removes only expired sessions', { skip: skipFor() }, () => {
  let dj: Driver
  let filePath: string
  let env: DjangoEnv
  before(async () => {
    filePath = mkdtempSync(path.join(dir, 'clear-'))
    env = { SECRET_KEY: SECRET, DATABASE_URL: 'sqlite::memory:', SESSION_ENGINE: 'file', SESSION_FILE_PATH: filePath }
    dj = await startDriver(env)
  })
  after(() => dj?.close())

  /** A live and an expired session written by each side, with sessionkit's lock files beside them. */
  async function mixed(): Promise<{ live: string[]; expired: string[] }> {
    for (const f of readdirSync(filePath)) rmSync(path.join(filePath, f))
    const sessions = createSessions({ secretKey: SECRET, engine: 'file', filePath })
    const live: string[] = []
    const expired: string[] = []
    try {
      for (const by of ['node', 'django']) {
        for (const kind of ['live', 'expired']) {
          let key: string
          if (by === 'node') {
            const s = sessions.session()
            s.set('by', by)
            await s.save()
            key = s.sessionKey!
          } else key = (await dj.call<DjangoSession>('create', { values: { by } })).key!
          if (kind === 'expired') {
            const old = Date.now() / 1000 - 1209600 - 60 // older than SESSION_COOKIE_AGE
            utimesSync(path.join(filePath, `sessionid${key}`), old, old)
            expired.push(key)
          } else live.push(key)
        }
      }
      // A session lock held by a Node request: a file Django must leave alone.
      const locked = sessions.session(live[0])
      await locked.load()
      await locked.lock()
    } finally {
      await sessions.close()
    }
    return { live, expired }
  }

  const sessionFiles = () => readdirSync(filePath).filter((f) => /^sessionid[a-z0-9]+$/.test(f)).map((f) => f.slice('sessionid'.length)).sort()

  it('Django’s clearsessions deletes the expired sessions of both sides and none that is live', async () => {
    const { live } = await mixed()
    const { manage } = await import('./interop/django.ts')
    const run = await manage(['clearsessions'], env)
    assert.equal(run.status, 0, run.stderr)
    assert.deepEqual(sessionFiles(), [...live].sort())
    assert.ok(readdirSync(filePath).some((f) => f.endsWith('.block')), 'sessionkit’s lock file is left alone')
  })

  it('sessionkit’s clearsessions deletes the expired sessions of both sides and none that is live', async () => {
    const { live } = await mixed()
    let stdout = ''
    const code = await main(['clearsessions'], { SESSION_ENGINE: 'file', SESSION_FILE_PATH: filePath, SECRET_KEY: SECRET }, { stdout: { write: (c: string) => (stdout += c) }, stderr: { write: () => true } })
    assert.equal(code, 0)
    assert.match(stdout, /deleted 2 expired sessions/)
    assert.deepEqual(sessionFiles(), [...live].sort())
  })
})
