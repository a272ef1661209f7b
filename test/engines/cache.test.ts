/**
 * The `cache` engine: Django's CacheSessionTests, plus what Django leaves implicit: the signed
 * string stored, TTLs, atomic create and update, expiry by the app's clock, a failing cache is a
 * 503. The conformance suite (SessionTestsMixin) runs in test/engines/conformance.test.ts; the
 * caches themselves are tested in test/caches/.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createCodec, createSessions, newSessionKey, type Settings } from 'sessionkit'
import { capturingLogger, dataOf, manualClock } from 'sessionkit/testing'
import type { SessionCache } from '../../src/caches/cache.ts'
import { memoryCache } from '../../src/caches/memory.ts'
import { redisCache } from '../../src/caches/redis.ts'
import { REDIS_URL } from '../helpers/redis.ts'

const SECRET = 'sessionkit-cache-tests-secret-0123456789'

function settings(extra: Partial<Settings> = {}): Partial<Settings> {
  return { secretKey: SECRET, engine: 'cache', logger: capturingLogger(), ...extra }
}

/** Django's DummyCache: accepts everything, keeps nothing. */
function dummyCache(): SessionCache {
  return {
    name: 'dummy',
    get: async () => null,
    set: async () => undefined,
    add: async () => true,
    replace: async () => false,
    delete: async () => undefined,
    has: async () => false,
    close: async () => undefined,
  }
}

describe("cache engine: Django's CacheSessionTests", () => {
  it('test_load_overlong_key: a 1240-character key loads nothing and is never looked up', async () => {
    const cache = memoryCache()
    const sessions = createSessions(settings({ caches: { default: cache } }))
    const key = ('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ' + '0123456789').repeat(20)
    assert.equal(key.length, 1240)
    const session = sessions.session(key)
    await session.load()
    assert.equal(session.sessionKey, null)
    assert.deepEqual(session.entries(), [])
    const engine = await sessions.ready()
    assert.equal(await engine.load(key), null, 'the engine itself answers "no session" for it')
  })

  it('test_default_cache: a saved session is in the default cache', async () => {
    const cache = memoryCache()
    const sessions = createSessions(settings({ caches: { default: cache } }))
    const session = sessions.session()
    session.set('x', 1)
    await session.save()
    assert.notEqual(await cache.get(session.sessionKey!), null)
  })

  it('test_non_default_cache: with cacheAlias "sessions" the data is in that cache, not the default', async () => {
    const sessionsCache = memoryCache()
    const sessions = createSessions(settings({ cacheAlias: 'sessions', caches: { default: dummyCache(), sessions: sessionsCache } }))
    const session = sessions.session()
    session.set('x', 1)
    await session.save()
    const key = session.sessionKey!
    assert.notEqual(await sessionsCache.get(key), null)
    assert.equal(await sessions.settings.caches.default!.get(key), null)
    assert.equal(sessions.engine?.name, 'cache:memory')
  })

  it('test_non_default_cache: a cacheAlias missing from caches is ImproperlyConfigured, naming it', () => {
    assert.throws(() => createSessions(settings({ cacheAlias: 'sessions', caches: { default: memoryCache() } })), {
      code: 'ERR_IMPROPERLY_CONFIGURED',
      message: /cacheAlias "sessions" is not in caches \(configured: "default"\)/,
    })
    assert.throws(() => createSessions(settings({ cacheAlias: 'sessions', redisUrl: REDIS_URL })), {
      code: 'ERR_IMPROPERLY_CONFIGURED',
      message: /cacheAlias "sessions"/,
    })
  })

  it('test_create_and_save: a created then saved session is in the default cache with its data', async () => {
    const cache = memoryCache()
    const sessions = createSessions(settings({ caches: { default: cache } }))
    const session = sessions.session()
    await session.save()
    const key = session.sessionKey!
    session.set('foo', 'bar')
    await session.save()
    assert.equal(session.sessionKey, key)
    const stored = await cache.get(key)
    assert.ok(stored)
    assert.deepEqual(createCodec(sessions.settings).decode(stored, 'test'), new Map([['foo', 'bar']]))
  })
})

describe('cache engine', () => {
  it('uses an in-process LRU on the settings clock when neither caches nor redisUrl is set', async () => {
    const clock = manualClock()
    const sessions = createSessions(settings({ now: clock, cookieAge: 60 }))
    assert.equal(sessions.engine?.name, 'cache:memory')
    const session = sessions.session()
    session.set('a', 1)
    await session.save()
    clock.advance(60)
    const again = sessions.session(session.sessionKey)
    await again.load()
    assert.equal(again.has('a'), false)
    await sessions.close()
  })

  it('stores the signed session string: data written into the cache by someone else is not trusted', async () => {
    const cache = memoryCache()
    const logger = capturingLogger()
    const sessions = createSessions(settings({ caches: { default: cache }, logger }))
    const key = newSessionKey()
    await cache.set(key, JSON.stringify({ _auth_user_id: '1' }), 60)
    const forged = sessions.session(key)
    await forged.load()
    assert.equal(forged.has('_auth_user_id'), false)
    assert.ok(logger.warnings.some((w) => w.includes('Session data corrupted') || w.includes('corrupt')))
    const other = createSessions(settings({ secretKey: 'another-secret-0123456789-0123456789', caches: { default: cache }, logger }))
    const s = other.session()
    s.set('_auth_user_id', '1')
    await s.save()
    const read = sessions.session(s.sessionKey)
    await read.load()
    assert.equal(read.has('_auth_user_id'), false, 'a value signed with another secret is refused')
    assert.ok(logger.warnings.some((w) => w.includes('tampered')))
  })

  it('a save whose expiry is already past deletes the stored session', async () => {
    const cache = memoryCache()
    const sessions = createSessions(settings({ caches: { default: cache } }))
    const session = sessions.session()
    session.set('a', 1)
    await session.save()
    const key = session.sessionKey!
    session.setExpiry(-10)
    await session.save()
    assert.equal(await cache.has(key), false)
  })

  it('a create on a key in use throws CreateError and leaves the stored session alone', async () => {
    const cache = memoryCache()
    const sessions = createSessions(settings({ caches: { default: cache } }))
    const engine = await sessions.ready()
    const key = newSessionKey()
    const options = { mustCreate: true, expireDate: new Date(Date.now() + 60_000), expiryAge: 60 }
    await engine.save(key, new Map([['owner', 'first']]), options)
    await assert.rejects(engine.save(key, new Map([['owner', 'second']]), options), { code: 'ERR_SESSION_CREATE' })
    assert.equal(dataOf(await engine.load(key))?.get('owner'), 'first')
  })

  it('an update of a deleted session throws UpdateError and does not resurrect it', async () => {
    const cache = memoryCache()
    const sessions = createSessions(settings({ caches: { default: cache } }))
    const engine = await sessions.ready()
    const key = newSessionKey()
    await engine.save(key, new Map(), { mustCreate: true, expireDate: new Date(), expiryAge: 60 })
    await engine.delete(key)
    await assert.rejects(engine.save(key, new Map([['a', 1]]), { mustCreate: false, expireDate: new Date(), expiryAge: 60 }), {
      code: 'ERR_SESSION_UPDATE',
    })
    assert.equal(await cache.has(key), false)
  })

  it('expires a session by settings.now even while the cache still holds it', async () => {
    const clock = manualClock()
    const lax = memoryCache() // expires by the wall clock, as Redis does: the test clock does not move it
    const sessions = createSessions(settings({ now: clock, caches: { default: lax }, cookieAge: 100 }))
    const session = sessions.session()
    session.set('a', 1)
    await session.save()
    const key = session.sessionKey!
    clock.advance(99)
    const before = sessions.session(key)
    await before.load()
    assert.equal(before.get('a'), 1)
    clock.advance(1)
    assert.equal(await lax.has(key), true, 'the cache still has it')
    const later = sessions.session(key)
    await later.load()
    assert.equal(later.has('a'), false)
    assert.equal(later.sessionKey, null)
  })

  it('a cache that fails on load is a 503 (StoreUnavailable), never a silent logout', async () => {
    const failing: SessionCache = { ...dummyCache(), get: () => Promise.reject(new Error('ECONNRESET')) }
    const logger = capturingLogger()
    const sessions = createSessions(settings({ caches: { default: failing }, logger }))
    await assert.rejects(Promise.resolve(sessions.start(`sessionid=${newSessionKey()}`)), { code: 'ERR_STORE_UNAVAILABLE', status: 503 })
    assert.ok(logger.errors.some((e) => e.includes('ECONNRESET')))
  })

  it('close() leaves a cache passed in caches open', async () => {
    let closed = 0
    const cache: SessionCache = { ...memoryCache(), close: async () => void closed++ }
    const sessions = createSessions(settings({ caches: { default: cache } }))
    await sessions.ready()
    await sessions.close()
    assert.equal(closed, 0)
  })

  it('clearExpired is null: the cache expires entries itself', async () => {
    const sessions = createSessions(settings({ caches: { default: memoryCache() } }))
    assert.equal(await sessions.clearExpired(), null)
  })

  it('refuses caches that are not SessionCaches, naming the alias', () => {
    const rawClient = { get: async () => null, set: async () => 'OK', del: async () => 1 }
    assert.throws(() => createSessions(settings({ caches: { default: rawClient as unknown as SessionCache } })), {
      code: 'ERR_IMPROPERLY_CONFIGURED',
      message: /caches\["default"\] must be a SessionCache.*redisCache\(client\).*without add, replace, delete, has/,
    })
    assert.throws(() => createSessions(settings({ caches: [] as unknown as Settings['caches'] })), { code: 'ERR_IMPROPERLY_CONFIGURED', message: /caches must be/ })
    assert.throws(() => createSessions(settings({ caches: { x: null as unknown as SessionCache } })), { code: 'ERR_IMPROPERLY_CONFIGURED', message: /caches\["x"\]/ })
  })

  it('redisCache refuses what is not a Redis client', () => {
    assert.throws(() => redisCache({} as never), { code: 'ERR_IMPROPERLY_CONFIGURED' })
    assert.throws(() => redisCache(null as never), { code: 'ERR_IMPROPERLY_CONFIGURED' })
  })
})
