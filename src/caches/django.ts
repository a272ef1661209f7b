/**
 * Django's own cache format, for a cache shared with a Django site: the keys Django's cache
 * layer makes and the bytes its backends store, per backend.
 *
 * - Keys: `make_key(key)` with the default `KEY_FUNCTION`, `"%s:%s:%s" % (KEY_PREFIX, VERSION, key)`;
 *   a session of the `cache` engine is `:1:django.contrib.sessions.cache<session key>` with
 *   Django's defaults (`KEY_PREFIX = ''`, `VERSION = 1`).
 * - Values, as each backend serialises them:
 *   - `django-redis` (`django_redis.cache.RedisCache`, 5.x): `PickleSerializer` with
 *     `PICKLE_VERSION` (default `pickle.DEFAULT_PROTOCOL`, 4), then the `COMPRESSOR` when one
 *     is set (`ZlibCompressor`: zlib level 6 above 15 bytes; read back raw when it does not
 *     inflate, as django-redis does); integers (not bools) stored raw as decimal text;
 *   - `redis` (Django 4.0+ `django.core.cache.backends.redis.RedisCache`): `RedisSerializer`,
 *     `pickle.dumps(value, HIGHEST_PROTOCOL)` (5), integers raw;
 *   - `pymemcache` (Django 3.2+ `PyMemcacheCache`): pymemcache's `pickle_serde`, with its
 *     memcached flags: `1` pickle (protocol 5), `2` int, `16` UTF-8 text, `0` bytes.
 *
 * Nothing here is signed: whoever can write to the cache can write any session. That is
 * Django's design (its cache backends trust the cache); sessionkit's own format signs.
 */
import { deflateSync, inflateSync } from 'node:zlib'
import { ImproperlyConfigured, PickleError } from '../errors.js'
import { dumps, loads, type PickleProtocol, type PyValue } from './pickle.js'
import type { SessionMap } from '../engine.js'

/** The Django cache backends whose entries sessionkit reads and writes. */
export type DjangoCacheBackend = 'django-redis' | 'redis' | 'pymemcache'

const BACKENDS: readonly DjangoCacheBackend[] = ['django-redis', 'redis', 'pymemcache']

/** The Django `CACHES` entry of the cache sessions share, as far as the stored bytes depend on it. */
export interface DjangoCacheOptions {
  /**
   * Which backend Django uses: `'django-redis'` (`django_redis.cache.RedisCache`), `'redis'`
   * (Django 4.0+ `django.core.cache.backends.redis.RedisCache`) or `'pymemcache'`
   * (`django.core.cache.backends.memcached.PyMemcacheCache`). Default: `'pymemcache'` for a
   * Memcached cache, `'django-redis'` otherwise.
   */
  backend?: DjangoCacheBackend
  /** Django: `CACHES[alias]['KEY_PREFIX']`. Default `''`. */
  keyPrefix?: string
  /** Django: `CACHES[alias]['VERSION']`. Default `1`. */
  version?: number
  /**
   * django-redis only: `OPTIONS['COMPRESSOR']`. `'zlib'` for
   * `django_redis.compressors.zlib.ZlibCompressor`; default `null` (the identity compressor).
   * The lzma, lz4 and zstd compressors are not supported (Node has no lzma or lz4 in its
   * standard library, and zstd only from Node 22.15).
   */
  compressor?: 'zlib' | null
  /**
   * The pickle protocol written: django-redis's `OPTIONS['PICKLE_VERSION']` (default 4,
   * Python 3.8–3.13's `pickle.DEFAULT_PROTOCOL`); 5 for `redis` and `pymemcache` (their
   * `HIGHEST_PROTOCOL`). Python reads every protocol; this only changes the bytes written.
   */
  pickleProtocol?: PickleProtocol
}

/** {@link DjangoCacheOptions} resolved and checked. */
export interface DjangoCacheFormat {
  readonly backend: DjangoCacheBackend
  readonly keyPrefix: string
  readonly version: number
  readonly compressor: 'zlib' | null
  readonly pickleProtocol: PickleProtocol
}

/** What a backend stores: the bytes, and (Memcached) the flags beside them. */
export interface StoredValue {
  bytes: Buffer
  /** pymemcache's flags; `0` for Redis. */
  flags: number
}

/** pymemcache's `serde` flags. */
export const MEMCACHE_FLAGS = Object.freeze({ bytes: 0, pickle: 1, integer: 2, long: 4, text: 16 })

/** django-redis's `ZlibCompressor`: `min_length = 15`, `preset = 6`. */
const ZLIB_MIN_LENGTH = 15
const ZLIB_LEVEL = 6
/** The most a stored value may inflate to (the codec's cap on session data). */
const MAX_INFLATED = 16 * 1024 * 1024

/**
 * Resolve and check the options; `ImproperlyConfigured` names the one that is wrong.
 * `defaultBackend` is the cache's own kind (`'pymemcache'` for Memcached).
 */
export function djangoCacheFormat(options: DjangoCacheOptions = {}, defaultBackend: DjangoCacheBackend = 'django-redis'): DjangoCacheFormat {
  if (options === null || typeof options !== 'object') throw new ImproperlyConfigured('sessionkit: the Django cache options must be an object')
  const backend = options.backend ?? defaultBackend
  if (!BACKENDS.includes(backend)) {
    throw new ImproperlyConfigured(`sessionkit: the Django cache backend must be ${BACKENDS.map((b) => `"${b}"`).join(', ')}, got ${JSON.stringify(backend)}`)
  }
  const keyPrefix = options.keyPrefix ?? ''
  if (typeof keyPrefix !== 'string') throw new ImproperlyConfigured(`sessionkit: the Django cache keyPrefix (KEY_PREFIX) must be a string, got ${typeof keyPrefix}`)
  const version = options.version ?? 1
  if (!Number.isSafeInteger(version)) throw new ImproperlyConfigured(`sessionkit: the Django cache version (VERSION) must be an integer, got ${JSON.stringify(version)}`)
  if (backend === 'pymemcache' && /[\x00-\x20\x7f]/.test(keyPrefix)) {
    // Django's memcache_key_warnings: memcached keys hold no whitespace or control characters.
    throw new ImproperlyConfigured('sessionkit: a Memcached KEY_PREFIX must not contain spaces or control characters (Django refuses such keys too)')
  }
  const compressor = options.compressor ?? null
  if (compressor !== null && compressor !== 'zlib') {
    throw new ImproperlyConfigured(`sessionkit: the Django cache compressor must be "zlib" or null, got ${JSON.stringify(compressor)} (lzma, lz4 and zstd are not supported)`)
  }
  if (compressor !== null && backend !== 'django-redis') {
    throw new ImproperlyConfigured(`sessionkit: a compressor is a django-redis option; the ${backend} backend does not compress`)
  }
  const pickleProtocol = options.pickleProtocol ?? (backend === 'django-redis' ? 4 : 5)
  if (![2, 3, 4, 5].includes(pickleProtocol)) {
    throw new ImproperlyConfigured(`sessionkit: the Django cache pickleProtocol (PICKLE_VERSION) must be 2, 3, 4 or 5, got ${JSON.stringify(pickleProtocol)}`)
  }
  return Object.freeze({ backend, keyPrefix, version, compressor, pickleProtocol })
}

/** Django's default `KEY_FUNCTION`: `"%s:%s:%s" % (KEY_PREFIX, VERSION, key)`. Django: `BaseCache.make_key`. */
export function makeKey(format: DjangoCacheFormat, key: string): string {
  return `${format.keyPrefix}:${format.version}:${key}`
}

const PY_INT = /^\s*[+-]?\d+\s*$/

/** Python's `int(data)` on stored bytes, or `undefined` when it would raise. */
function storedInt(bytes: Buffer): number | bigint | undefined {
  if (bytes.length > 4300 || !PY_INT.test(bytes.toString('latin1'))) return undefined
  const n = BigInt(bytes.toString('latin1').trim())
  return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
}

/** Whether `value` is a Python `int` (not a bool), which the Redis serializers store raw. */
function isPyInt(value: unknown): value is number | bigint {
  return typeof value === 'bigint' || (typeof value === 'number' && Number.isSafeInteger(value) && !Object.is(value, -0))
}

/**
 * A Python value as the backend stores it. Django: django-redis `DefaultClient.encode`,
 * `RedisSerializer.dumps`, pymemcache `python_memcache_serializer`.
 */
export function dumpValue(format: DjangoCacheFormat, value: unknown): StoredValue {
  if (format.backend === 'pymemcache') {
    if (typeof value === 'string') return { bytes: Buffer.from(value, 'utf8'), flags: MEMCACHE_FLAGS.text }
    if (isPyInt(value)) return { bytes: Buffer.from(String(value), 'latin1'), flags: MEMCACHE_FLAGS.integer }
    return { bytes: dumps(value, format.pickleProtocol), flags: MEMCACHE_FLAGS.pickle }
  }
  if (isPyInt(value)) return { bytes: Buffer.from(String(value), 'latin1'), flags: 0 }
  let bytes = dumps(value, format.pickleProtocol)
  if (format.compressor === 'zlib' && bytes.length > ZLIB_MIN_LENGTH) bytes = deflateSync(bytes, { level: ZLIB_LEVEL })
  return { bytes, flags: 0 }
}

/**
 * The Python value of stored bytes, as the backend reads it; `PickleError` for anything
 * sessionkit will not read (see `pickle.loads`). Django: django-redis `DefaultClient.decode`,
 * `RedisSerializer.loads`, pymemcache `python_memcache_deserializer`.
 */
export function loadValue(format: DjangoCacheFormat, { bytes, flags }: StoredValue): PyValue {
  if (format.backend === 'pymemcache') {
    if (flags === MEMCACHE_FLAGS.bytes) throw new PickleError('sessionkit: unreadable cache entry: raw bytes (memcached flags 0), not in the JSON subset')
    if (flags & MEMCACHE_FLAGS.text) return decodeText(bytes)
    if (flags & (MEMCACHE_FLAGS.integer | MEMCACHE_FLAGS.long)) {
      const n = storedInt(bytes)
      if (n === undefined) throw new PickleError('sessionkit: unreadable cache entry: an int flag on bytes that are not an integer')
      return n
    }
    if (flags & MEMCACHE_FLAGS.pickle) return loads(bytes)
    throw new PickleError(`sessionkit: unreadable cache entry: unknown memcached flags ${flags}`)
  }
  const n = storedInt(bytes)
  if (n !== undefined) return n
  if (format.compressor === 'zlib') {
    try {
      return loads(inflateSync(bytes, { maxOutputLength: MAX_INFLATED }))
    } catch (error) {
      if (error instanceof PickleError) throw error
      // django-redis: a value that does not inflate was stored uncompressed (15 bytes or fewer).
    }
  }
  return loads(bytes)
}

function decodeText(bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new PickleError('sessionkit: unreadable cache entry: text flag on bytes that are not UTF-8')
  }
}

/** Session data as Django's cache session backends store it: the session dict, in the backend's bytes. */
export function dumpSession(format: DjangoCacheFormat, data: SessionMap): StoredValue {
  return dumpValue(format, data)
}

/** The session dict of a stored entry; `PickleError` when it is not readable or not a dict. */
export function loadSession(format: DjangoCacheFormat, stored: StoredValue): SessionMap {
  const value = loadValue(format, stored)
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new PickleError(`sessionkit: unreadable cache entry: a session must be a dict, the entry holds ${value === null ? 'None' : Array.isArray(value) ? 'a list or tuple' : typeof value}`)
  }
  return new Map(Object.entries(value))
}

/**
 * Byte-level access to a cache for Django's format: keys used exactly as given (no prefix),
 * values stored as their bytes (and memcached flags), nothing added around them. The Redis,
 * Memcached and in-process caches provide it as `SessionCache.django`.
 *
 * Contract: as `SessionCache` (whole-second TTLs, ≤ 0 writes nothing, `add` only when absent),
 * with `get` returning the entry and an opaque `version` that `replaceIf` compares in the same
 * command as it writes (Redis: the stored bytes, in a Lua script; Memcached: the `cas` token).
 */
export interface DjangoCacheStore {
  /** The kind of server, to check the backend named in the Django options against. */
  readonly kind: 'redis' | 'memcached' | 'memory'
  get(key: string): Promise<{ value: StoredValue; version: string } | null>
  set(key: string, value: StoredValue, ttlSeconds: number): Promise<void>
  add(key: string, value: StoredValue, ttlSeconds: number): Promise<boolean>
  /** Write only if the entry is still the one `version` came from; `false` otherwise (or when it is gone). */
  replaceIf(key: string, version: string, value: StoredValue, ttlSeconds: number): Promise<boolean>
  /** The value a version of `get` stands for (the base of a merge after a lost compare-and-set). */
  valueOf(version: string): StoredValue
  /** The version of `value` once written, or `null` when the server hands out none on a write (Memcached). */
  versionOf(value: StoredValue): string | null
  delete(key: string): Promise<void>
  has(key: string): Promise<boolean>
}

/** A cache's Django entries and the format they are in: what the engines use with `cacheFormat: 'django'`. */
export interface DjangoEntries {
  readonly store: DjangoCacheStore
  readonly format: DjangoCacheFormat
}

/**
 * The Django entries of `cache` for `cacheFormat`, or `null` for sessionkit's own (signed)
 * format. `ImproperlyConfigured` when the cache cannot hold Django's entries, or the backend
 * named does not match the server (pymemcache needs Memcached; django-redis and redis need Redis).
 */
export function djangoEntries(cache: { readonly name: string; readonly django?: DjangoCacheStore }, cacheFormat: 'signed' | 'django' | DjangoCacheOptions): DjangoEntries | null {
  if (cacheFormat === 'signed') return null
  const store = cache.django
  if (!store) {
    throw new ImproperlyConfigured(
      `sessionkit: cacheFormat "django" needs a cache that can hold Django's entries (redisCache over an ioredis client, redisUrl, memcachedCache or memoryCache); the ${cache.name} cache cannot (for node-redis, pass an ioredis client)`,
    )
  }
  const format = djangoCacheFormat(cacheFormat === 'django' ? {} : cacheFormat, store.kind === 'memcached' ? 'pymemcache' : 'django-redis')
  if (store.kind === 'memcached' && format.backend !== 'pymemcache') {
    throw new ImproperlyConfigured(`sessionkit: cacheFormat backend "${format.backend}" is a Redis backend, but the cache is Memcached (use "pymemcache")`)
  }
  if (store.kind === 'redis' && format.backend === 'pymemcache') {
    throw new ImproperlyConfigured('sessionkit: cacheFormat backend "pymemcache" is a Memcached backend, but the cache is Redis (use "django-redis" or "redis")')
  }
  return { store, format }
}
