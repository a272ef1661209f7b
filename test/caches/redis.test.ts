/**
 * The Redis cache (`redisCache` over ioredis or node-redis, `redisCacheFromUrl`): the cache
 * contract on both clients, the key layout and TTLs the cache engine leaves in Redis, one
 * command per operation, and failing fast when Redis refuses connections or goes down.
 */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import { createSessions, newSessionKey, type Settings } from 'sessionkit'
import { capturingLogger, dataOf, manualClock } from 'sessionkit/testing'
import { CACHE_KEY_PREFIX, redisCache, redisCacheFromUrl } from '../../src/caches/redis.ts'
import { describeCacheContract } from '../helpers/cache-contract.ts'
import { deleteTestKeys, ping, recorded, REDIS_URL, redisAvailable, underCI, uniquePrefix } from '../helpers/redis.ts'
import { freePort } from '../helpers/http.ts'

const SECRET = 'sessionkit-cache-tests-secret-0123456789'

function settings(extra: Partial<Settings> = {}): Partial<Settings> {
  return { secretKey: SECRET, engine: 'cache', logger: capturingLogger(), ...extra }
}

// Probed and connected before any suite is registered (see test/engines/conformance.test.ts).
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
    await assert.rejects(Promise.resolve(sessions.start(`sessionid=${newSessionKey()}`)), { code: 'ERR_STORE_UNAVAILABLE' })
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
          await assert.rejects(Promise.resolve(sessions.start(`sessionid=${key}`)), { code: 'ERR_STORE_UNAVAILABLE' }, `attempt ${attempt}`)
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

