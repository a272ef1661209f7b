/**
 * Django's cache format (src/caches/django.ts) against the entries Django's own backends wrote
 * (test/fixtures/pickle-vectors.json, "backends"): django-redis with and without its zlib
 * compressor and each PICKLE_VERSION, pymemcache's serde with its flags, Django 4's RedisCache.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { inflateSync } from 'node:zlib'
import { djangoCacheFormat, dumpSession, dumpValue, loadSession, loadValue, makeKey, type DjangoCacheBackend } from '../../src/caches/django.ts'
import type { PickleProtocol } from '../../src/caches/pickle.ts'
import { assertSame, unpack, untag } from '../helpers/pickle.ts'
import { createSessions, fromEnv, memoryCache, resolveSettings, type SessionCache } from 'sessionkit'
import { capturingLogger } from 'sessionkit/testing'

interface Backend {
  backend: DjangoCacheBackend
  pickleVersion: PickleProtocol
  compressor?: 'zlib' | null
  flags?: number
  value: unknown
  bytes?: boolean
  stored: string
  note?: string
}
const { backends } = JSON.parse(readFileSync(new URL('../fixtures/pickle-vectors.json', import.meta.url), 'utf8')) as { backends: Backend[] }

describe("Django's cache format", () => {
  it('makes keys as Django’s default KEY_FUNCTION does: KEY_PREFIX:VERSION:key', () => {
    assert.equal(makeKey(djangoCacheFormat(), 'django.contrib.sessions.cacheabc'), ':1:django.contrib.sessions.cacheabc')
    assert.equal(makeKey(djangoCacheFormat({ keyPrefix: 'site', version: 7 }), 'k'), 'site:7:k')
  })

  for (const b of backends) {
    const label = `${b.backend}${b.compressor ? ' + zlib' : ''}, protocol ${b.pickleVersion}${b.flags !== undefined ? `, flags ${b.flags}` : ''}${b.note ? ` (${b.note})` : ''}`
    const format = djangoCacheFormat({ backend: b.backend, compressor: b.compressor ?? null, pickleProtocol: b.pickleVersion })
    const stored = { bytes: unpack(b.stored), flags: b.flags ?? 0 }
    if (b.bytes) {
      it(`refuses what ${label} stores for bytes`, () => assert.throws(() => loadValue(format, stored), { code: 'ERR_BAD_PICKLE' }))
      continue
    }
    const compressed = b.compressor === 'zlib' && stored.bytes[0] === 0x78
    it(`reads what ${label} stores, and writes the very same ${compressed ? 'pickle, compressed' : 'bytes'}`, () => {
      const expected = untag(b.value)
      assertSame(loadValue(format, stored), expected)
      const ours = dumpValue(format, expected)
      assert.equal(ours.flags, stored.flags)
      // Node's zlib (1.3, Chromium's) deflates to other bytes than Python's 1.2: the same data inflates.
      const plain = (s: Buffer) => (compressed ? inflateSync(s) : s).toString('hex')
      assert.equal(plain(ours.bytes), plain(stored.bytes))
    })
  }

  it('reads a django-redis entry stored uncompressed even when the zlib compressor is set (as django-redis does)', () => {
    const plain = backends.find((b) => b.backend === 'django-redis' && !b.compressor && typeof b.value === 'object')!
    const format = djangoCacheFormat({ backend: 'django-redis', compressor: 'zlib' })
    assert.ok(loadSession(format, { bytes: unpack(plain.stored), flags: 0 }).size > 0)
  })

  it('turns a session Map into the dict Django stores, and refuses an entry that is not a dict', () => {
    const format = djangoCacheFormat({ backend: 'redis' })
    const data = new Map<string, unknown>([['_auth_user_id', '1'], ['cart', [1, 2]]])
    assert.deepEqual(loadSession(format, dumpSession(format, data)), data)
    assert.throws(() => loadSession(format, dumpValue(format, [1, 2])), /a session must be a dict/)
    assert.throws(() => loadSession(format, dumpValue(format, 42)), /a session must be a dict/)
  })

  it('names the option that is wrong', () => {
    assert.throws(() => djangoCacheFormat({ backend: 'memcached' as DjangoCacheBackend }), /backend must be/)
    assert.throws(() => djangoCacheFormat({ compressor: 'lzma' as 'zlib' }), /compressor must be "zlib" or null/)
    assert.throws(() => djangoCacheFormat({ backend: 'redis', compressor: 'zlib' }), /django-redis option/)
    assert.throws(() => djangoCacheFormat({ pickleProtocol: 1 as PickleProtocol }), /PICKLE_VERSION/)
    assert.throws(() => djangoCacheFormat({ version: 1.5 }), /VERSION/)
    assert.throws(() => djangoCacheFormat({ backend: 'pymemcache', keyPrefix: 'a b' }), /spaces or control characters/)
  })
})

describe('cacheFormat setting', () => {
  it('defaults to sessionkit’s signed entries and takes "django" or Django’s options, from settings or SESSION_CACHE_FORMAT', () => {
    assert.equal(resolveSettings({ secretKey: 'k' }).cacheFormat, 'signed')
    assert.equal(resolveSettings({ secretKey: 'k', cacheFormat: 'django' }).cacheFormat, 'django')
    assert.deepEqual(resolveSettings({ secretKey: 'k', cacheFormat: { keyPrefix: 'site', version: 2 } }).cacheFormat, { keyPrefix: 'site', version: 2 })
    assert.equal(fromEnv({ SESSION_CACHE_FORMAT: 'django' }).cacheFormat, 'django')
    assert.deepEqual(fromEnv({ SESSION_CACHE_FORMAT: '{"backend": "redis", "keyPrefix": "p"}' }).cacheFormat, { backend: 'redis', keyPrefix: 'p' })
    assert.throws(() => fromEnv({ SESSION_CACHE_FORMAT: 'pickle' }), /SESSION_CACHE_FORMAT must be signed, django or a JSON object/)
  })

  it('stops start-up with one line naming what is wrong', () => {
    assert.throws(() => resolveSettings({ secretKey: 'k', cacheFormat: 'Django' as 'django' }), /cacheFormat must be "signed", "django" or an object/)
    assert.throws(() => resolveSettings({ secretKey: 'k', cacheFormat: { compressor: 'lz4' as 'zlib' } }), /compressor must be "zlib" or null/)
    assert.throws(() => createSessions({ secretKey: 'k', engine: 'cache', cacheFormat: { backend: 'pymemcache' }, caches: { default: { ...memoryCache(), django: { ...memoryCache().django!, kind: 'redis' } } } }), /"pymemcache" is a Memcached backend, but the cache is Redis/)
    const noDjango: SessionCache = { ...memoryCache(), name: 'custom', django: undefined }
    assert.throws(() => createSessions({ secretKey: 'k', engine: 'cache', cacheFormat: 'django', caches: { default: noDjango } }), /needs a cache that can hold Django's entries/)
  })

  it('in Django’s format, the cache engine stores the dict Django reads under Django’s key, with the expiry age as TTL', async () => {
    let now = 1_700_000_000_000
    const clock = () => now
    const cache = memoryCache({ now: clock })
    const sessions = createSessions({ secretKey: 'k', now: clock, engine: 'cache', cacheFormat: { keyPrefix: 'site', version: 3 }, caches: { default: cache } })
    try {
      const s = sessions.session()
      s.set('user', 'alice')
      s.setExpiry(600)
      await s.save()
      const entry = await cache.django!.get(`site:3:django.contrib.sessions.cache${s.sessionKey}`)
      assert.ok(entry, 'under KEY_PREFIX:VERSION:django.contrib.sessions.cache<key>')
      assert.deepEqual(loadSession(djangoCacheFormat({}), entry.value), new Map<string, unknown>([['user', 'alice'], ['_session_expiry', 600]]))
      assert.equal(await cache.get(s.sessionKey!), null, 'nothing in sessionkit’s own format')
      now += 599_000
      assert.equal(await cache.django!.has(`site:3:django.contrib.sessions.cache${s.sessionKey}`), true, 'alive before the expiry age')
      now += 2_000
      assert.equal(await cache.django!.has(`site:3:django.contrib.sessions.cache${s.sessionKey}`), false, 'gone after it: the TTL is the expiry age')
    } finally {
      await sessions.close()
    }
  })

  it('in Django’s format, cached_db caches the dict the row holds under Django’s cached_db key, also for a value pickle will not write as it is', async () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    const cache = memoryCache()
    const logger = capturingLogger()
    const sessions = createSessions({ secretKey: 'k', engine: 'cached_db', databaseUrl: 'sqlite::memory:', cacheFormat: 'django', caches: { default: cache }, logger })
    try {
      await sessions.migrate()
      const s = sessions.session()
      s.set('user', 'alice')
      s.set('at', new Point(1, 2)) // JSON writes its fields; pickle refuses a class instance
      await s.save()
      const entry = await cache.django!.get(`:1:django.contrib.sessions.cached_db${s.sessionKey}`)
      assert.ok(entry, 'under :1:django.contrib.sessions.cached_db<key> (KEY_PREFIX "", VERSION 1)')
      assert.deepEqual(loadSession(djangoCacheFormat({}), entry.value), new Map<string, unknown>([['user', 'alice'], ['at', { x: 1, y: 2 }]]))
      assert.deepEqual(logger.errors, [], 'the save is no cache outage')
      const again = sessions.session(s.sessionKey!)
      await again.load()
      assert.deepEqual(again.get('at'), { x: 1, y: 2 }, 'the hit reads what the row holds')
      again.set('n', 1)
      await again.save() // after a hit: the row is read again, then compared-and-set
      const third = sessions.session(s.sessionKey!)
      await third.load()
      assert.deepEqual([third.get('user'), third.get('n')], ['alice', 1])
    } finally {
      await sessions.close()
    }
  })
})
