/**
 * The `cache` engine and its caches: the in-process LRU, Redis through ioredis and
 * node-redis. Django's CacheSessionTests, plus what Django leaves implicit: key layout,
 * TTLs, atomic create/update, one round trip per operation, failing fast when Redis is down.
 * The conformance suite (SessionTestsMixin) runs in conformance.test.ts.
 */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import { createCodec, createSessions, newSessionKey, type Settings } from 'sessionkit'
import { capturingLogger, dataOf, manualClock } from 'sessionkit/testing'
import type { SessionCache } from '../src/caches/cache.ts'
import { memoryCache } from '../src/caches/memory.ts'
import { CACHE_KEY_PREFIX, redisCache, redisCacheFromUrl } from '../src/caches/redis.ts'
import { describeCacheContract } from './helpers/cache-contract.ts'
import { deleteTestKeys, ping, recorded, REDIS_URL, redisAvailable, underCI, uniquePrefix } from './helpers/redis.ts'

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

describe('memoryCache: the in-process LRU', () => {
  it('keeps at most maxEntries, evicting the least recently used', async () => {
    const cache = memoryCache({ maxEntries: 3 })
    await cache.set('a', '1', 60)
    await cache.set('b', '2', 60)
    await cache.set('c', '3', 60)
    assert.equal(await cache.get('a'), '1') // a is now the most recently used; b the least
    await cache.set('d', '4', 60)
    assert.equal(await cache.has('b'), false, 'the least recently used entry is evicted')
    assert.deepEqual(await Promise.all(['a', 'c', 'd'].map((k) => cache.get(k))), ['1', '3', '4'])
  })

  it('counts a write as a use, and has() as none', async () => {
    const cache = memoryCache({ maxEntries: 2 })
    await cache.set('a', '1', 60)
    await cache.set('b', '2', 60)
    await cache.has('a')
    await cache.set('a', '1b', 60) // a rewritten: b is now the least recently used
    await cache.set('c', '3', 60)
    assert.equal(await cache.has('b'), false)
    assert.equal(await cache.get('a'), '1b')
  })

  it('expires an entry by the injected clock, exactly when its TTL runs out', async () => {
    const clock = manualClock()
    const cache = memoryCache({ now: clock })
    await cache.set('a', 'v', 10)
    clock.advance(9.999)
    assert.equal(await cache.get('a'), 'v')
    clock.advance(0.001)
    assert.equal(await cache.get('a'), null)
    assert.equal(await cache.has('a'), false)
    assert.equal(await cache.add('a', 'again', 10), true, 'an expired key is free for add')
    clock.advance(11)
    assert.equal(await cache.replace('a', 'x', 10), false, 'an expired key is missing for replace')
  })

  it('refuses a maxEntries that is not a whole number ≥ 1', () => {
    for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => memoryCache({ maxEntries }), { code: 'ERR_IMPROPERLY_CONFIGURED' })
    }
  })
})

describeCacheContract('memory', () => ({ cache: memoryCache({ now: manualClock() }) }))

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
    await assert.rejects(sessions.begin(`sessionid=${newSessionKey()}`), { code: 'ERR_STORE_UNAVAILABLE', status: 503 })
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

describe('cache engine on a Redis that refuses connections', () => {
  it('ready() rejects within the timeout, naming the URL without its password', async () => {
    const logger = capturingLogger()
    const sessions = createSessions(settings({ redisUrl: 'redis://user:secret@127.0.0.1:1', logger }))
    const started = Date.now()
    const error: unknown = await sessions.ready().then(
      () => assert.fail('ready() resolved'),
      (e: unknown) => e,
    )
    const elapsed = Date.now() - started
    assert.ok(elapsed < 3000, `rejected after ${elapsed} ms`)
    assert.equal((error as { code?: string }).code, 'ERR_STORE_UNAVAILABLE')
    const message = (error as Error).message
    assert.match(message, /redis:\/\/user:\*\*\*@127\.0\.0\.1:1/)
    assert.doesNotMatch(message, /secret/)
    assert.doesNotMatch(JSON.stringify(logger.errors) + JSON.stringify(logger.warnings), /secret/)
    await assert.rejects(sessions.begin(`sessionid=${newSessionKey()}`), { code: 'ERR_STORE_UNAVAILABLE' })
    await sessions.close()
  })

  it('redisCacheFromUrl refuses a URL that is not redis:// or rediss://', () => {
    assert.throws(() => redisCacheFromUrl('http://user:secret@host'), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'ERR_IMPROPERLY_CONFIGURED')
      assert.doesNotMatch(error.message, /secret/)
      return true
    })
  })
})

const skip = await redisAvailable()
const io = skip ? undefined : new Redis(REDIS_URL, { lazyConnect: true })
const nr = skip ? undefined : createClient({ url: REDIS_URL })
if (io && nr) {
  nr.on('error', () => undefined)
  await Promise.all([io.connect(), nr.connect()])
}
after(async () => {
  if (io) await deleteTestKeys(io)
  await Promise.all([io?.quit(), nr?.close()])
})

const clients = io && nr ? { ioredis: io, 'node-redis': nr } : {}

describeCacheContract('Redis through ioredis', () => ({ cache: redisCache(io!, { prefix: uniquePrefix('contract') }) }), { skip })
describeCacheContract('Redis through node-redis', () => ({ cache: redisCache(nr!, { prefix: uniquePrefix('contract') }) }), { skip })
describeCacheContract(
  'Redis through ioredis, TTLs checked',
  () => {
    const prefix = uniquePrefix('contract')
    return { cache: redisCache(io!, { prefix }), ttlOf: (key) => io!.ttl(prefix + key) }
  },
  { skip },
)

describe('cache engine on Redis', { skip, timeout: 30_000 }, () => {
  const written: string[] = []
  after(async () => {
    if (written.length) await io!.del(...written)
  })

  /** Sessions on a Redis cache with a prefix of their own. */
  function onRedis(client: NonNullable<typeof io> | NonNullable<typeof nr>, prefix = uniquePrefix('engine'), extra: Partial<Settings> = {}) {
    const sessions = createSessions(settings({ caches: { default: redisCache(client, { prefix }) }, ...extra }))
    return { sessions, prefix }
  }

  async function keysUnder(prefix: string): Promise<string[]> {
    const keys = await io!.keys(`${prefix}*`)
    written.push(...keys)
    return keys.sort()
  }

  it('keys are the prefix and the session key, with no separator', async () => {
    const { sessions, prefix } = onRedis(io!)
    const session = sessions.session()
    session.set('a', 1)
    await session.save()
    assert.deepEqual(await keysUnder(prefix), [prefix + session.sessionKey])
  })

  it("the default prefix is Django's KEY_PREFIX, django.contrib.sessions.cache", async () => {
    const plain = createSessions(settings({ caches: { default: redisCache(io!) } }))
    const session = plain.session()
    session.set('a', 1)
    await session.save()
    const key = `django.contrib.sessions.cache${session.sessionKey}`
    written.push(key)
    assert.equal(CACHE_KEY_PREFIX, 'django.contrib.sessions.cache')
    assert.equal(await io!.exists(key), 1)
    assert.deepEqual(await io!.keys(`django.contrib.sessions.cache${session.sessionKey}*`), [key])
  })

  it('the TTL of the key is the expiry age of the session', async () => {
    const { sessions, prefix } = onRedis(io!)
    const plain = sessions.session()
    plain.set('a', 1)
    await plain.save()
    const custom = sessions.session()
    custom.set('b', 2)
    custom.setExpiry(300)
    await custom.save()
    await keysUnder(prefix)
    const cookieAge = sessions.settings.cookieAge
    const plainTtl = await io!.ttl(prefix + plain.sessionKey)
    assert.ok(plainTtl <= cookieAge && plainTtl >= cookieAge - 1, `TTL ${plainTtl} is cookieAge ${cookieAge}`)
    const customTtl = await io!.ttl(prefix + custom.sessionKey)
    assert.ok(customTtl <= 300 && customTtl >= 299, `TTL ${customTtl} is 300`)
    custom.setExpiry(new Date(Date.now() + 120_000))
    await custom.save()
    const dateTtl = await io!.ttl(prefix + custom.sessionKey)
    assert.ok(dateTtl <= 120 && dateTtl >= 118, `TTL ${dateTtl} is the 120 s until the fixed date`)
  })

  it('a save with an expiry in the past deletes the key', async () => {
    const { sessions, prefix } = onRedis(io!)
    const session = sessions.session()
    session.set('a', 1)
    await session.save()
    assert.equal(await io!.exists(prefix + session.sessionKey), 1)
    session.setExpiry(-10)
    await session.save()
    assert.equal(await io!.exists(prefix + session.sessionKey), 0)
  })

  for (const [library, client] of Object.entries(clients)) {
    it(`${library}: a create on a key in use (SET NX) throws CreateError; the stored session is kept`, async () => {
      const { sessions, prefix } = onRedis(client)
      const engine = await sessions.ready()
      const key = newSessionKey()
      const options = { mustCreate: true, expireDate: new Date(), expiryAge: 60 }
      await engine.save(key, new Map([['owner', 'first']]), options)
      await assert.rejects(engine.save(key, new Map([['owner', 'second']]), options), { code: 'ERR_SESSION_CREATE' })
      assert.equal(dataOf(await engine.load(key))?.get('owner'), 'first')
      await keysUnder(prefix)
    })

    it(`${library}: an update of a deleted session (SET XX) throws UpdateError and writes nothing`, async () => {
      const { sessions, prefix } = onRedis(client)
      const engine = await sessions.ready()
      const key = newSessionKey()
      await engine.save(key, new Map(), { mustCreate: true, expireDate: new Date(), expiryAge: 60 })
      await engine.delete(key)
      await assert.rejects(engine.save(key, new Map([['a', 1]]), { mustCreate: false, expireDate: new Date(), expiryAge: 60 }), {
        code: 'ERR_SESSION_UPDATE',
      })
      assert.equal(await io!.exists(prefix + key), 0)
    })

    it(`${library}: a session round-trips: create, load, update, exists, delete`, async () => {
      const { sessions } = onRedis(client)
      assert.equal(sessions.engine?.name, 'cache:redis')
      const session = sessions.session()
      session.update({ user: 'élève 😀', n: 1 })
      await session.save()
      const key = session.sessionKey!
      const again = sessions.session(key)
      await again.load()
      assert.deepEqual(Object.fromEntries(again.entries()), { user: 'élève 😀', n: 1 })
      again.set('n', 2)
      await again.save()
      const third = sessions.session(key)
      await third.load()
      assert.equal(third.get('n'), 2)
      assert.equal(await third.exists(key), true)
      await third.destroy()
      assert.equal(await third.exists(key), false)
    })

    it(`${library}: one Redis command per operation: load GET, create SET NX, update EVAL (compare-and-set), exists, delete`, async () => {
      const rec = recorded(client)
      const { sessions, prefix } = onRedis(rec.client as typeof client)
      const session = sessions.session()
      session.set('a', 1)
      rec.reset()
      await session.save()
      assert.deepEqual(rec.names(), ['set'], 'create')
      assert.ok(JSON.stringify(rec.calls[0]!.args).includes('NX'), 'create is SET … NX')
      const key = session.sessionKey!
      rec.reset()
      const again = sessions.session(key)
      await again.load()
      assert.deepEqual(rec.names(), ['get'], 'load')
      rec.reset()
      again.set('a', 2)
      await again.save()
      assert.deepEqual(rec.names(), ['eval'], 'update: one compare-and-set script')
      rec.reset()
      await again.exists(key)
      assert.deepEqual(rec.names(), ['exists'], 'exists')
      rec.reset()
      await again.destroy()
      assert.deepEqual(rec.names(), ['del'], 'delete')
      assert.deepEqual(await keysUnder(prefix), [])
    })
  }

  it('ioredis and node-redis read each other’s sessions (same keys, same stored string)', async () => {
    const prefix = uniquePrefix('cross')
    const a = onRedis(io!, prefix).sessions
    const b = onRedis(nr!, prefix).sessions
    const session = a.session()
    session.set('from', 'ioredis')
    await session.save()
    const read = b.session(session.sessionKey)
    await read.load()
    assert.equal(read.get('from'), 'ioredis')
    await keysUnder(prefix)
  })

  it('redisUrl: the engine connects, works and closes the client it made', async () => {
    const sessions = createSessions(settings({ redisUrl: REDIS_URL }))
    const engine = await sessions.ready()
    assert.equal(engine.name, 'cache:redis')
    const session = sessions.session()
    session.set('a', 1)
    await session.save()
    const key = `django.contrib.sessions.cache${session.sessionKey}`
    written.push(key)
    assert.equal(await io!.exists(key), 1)
    await sessions.close()
    await sessions.close() // idempotent
    await assert.rejects(engine.load(session.sessionKey!), /closed/i)
  })
})

/** A free loopback port. */
async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0
const noRedisServer = hasRedisServer ? false : 'redis-server is not installed'
if (!hasRedisServer && underCI()) throw new Error('redis-server is not installed; CI is set, so the Redis tests must run')

describe('cache engine on a Redis that goes down', { skip: noRedisServer, timeout: 20_000 }, () => {
  it('loads and saves fail within the timeout, neither hanging nor queueing', async () => {
    const port = await freePort()
    const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    try {
      const deadline = Date.now() + 5000
      while ((await ping('127.0.0.1', port, 200)) !== true) {
        if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`)
        await new Promise((r) => setTimeout(r, 50))
      }
      const logger = capturingLogger()
      const cache = redisCacheFromUrl(`redis://127.0.0.1:${port}`, { timeoutMs: 500, logger, prefix: uniquePrefix('down') })
      try {
        await cache.ready!()
        const sessions = createSessions(settings({ caches: { default: cache }, logger }))
        const session = sessions.session()
        session.set('a', 1)
        await session.save()
        const key = session.sessionKey!
        server.kill('SIGKILL')
        await once(server, 'exit')
        for (const attempt of [1, 2, 3]) {
          const started = Date.now()
          await assert.rejects(sessions.begin(`sessionid=${key}`), { code: 'ERR_STORE_UNAVAILABLE' }, `attempt ${attempt}`)
          const elapsed = Date.now() - started
          assert.ok(elapsed < 1500, `attempt ${attempt} failed after ${elapsed} ms`)
        }
        await assert.rejects(cache.set(key, 'x', 60))
        assert.ok(logger.errors.some((e) => e.includes(`Redis at redis://127.0.0.1:${port} is unreachable`)), 'the outage is logged')
        assert.equal(logger.errors.filter((e) => e.includes('is unreachable')).length, 1, 'once')
      } finally {
        await cache.close()
      }
    } finally {
      server.kill('SIGKILL')
    }
  })
})
