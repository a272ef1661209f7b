/**
 * A {@link SessionCache} on Redis, over the client the application already has: an
 * **ioredis** `Redis` or `Cluster`, or a **node-redis** (v4+) client or cluster. Both
 * libraries are optional peer dependencies; nothing here imports them, except
 * {@link redisCacheFromUrl}, which loads ioredis when it is called.
 *
 * Keys are `<prefix><session key>` with no separator, as Django's cache session backend
 * builds them (`KEY_PREFIX = "django.contrib.sessions.cache"`). Django's cache layer adds
 * `:1:` in front, and stores a pickled dict; sessionkit stores the signed session string.
 * Over ioredis the cache also has a `django` store: Django's exact keys and bytes, for
 * `cacheFormat: 'django'` (node-redis clients do not have it: their replies are strings).
 *
 * Every method is one Redis command (one round trip): `GET`, `SET … EX`, `SET … EX NX`,
 * `SET … EX XX`, `DEL`, `EXISTS`. A single key per command, so Redis Cluster routes each.
 * Session locks (`session.lock()`) live under `<prefix>lock:<key>`: `SET … NX PX` to take
 * one (polled while it is held), a Lua compare-and-delete to release it.
 */
import { ImproperlyConfigured, RedisReplyMismatch, StoreUnavailable } from '../errors.js'
import { requirePeer } from '../peers.js'
import { CACHE_KEY_PREFIX, ttlToSeconds, type SessionCache } from './cache.js'
import { checkLockOptions, lockToken, pollLock } from '../lock.js'
import { redactUrl, urlScrubber } from '../redact.js'
import type { Logger } from '../settings.js'
import type { DjangoCacheStore } from './django.js'

/** Django's `KEY_PREFIX` of the cache session backend, this cache's default prefix (defined in `cache.ts`, shared with Memcached). */
export { CACHE_KEY_PREFIX }

/** What sessionkit needs of an ioredis `Redis` or `Cluster`. */
export interface IoRedisClient {
  readonly status: string
  get(key: string): Promise<string | null>
  set(key: string, value: string, ex: 'EX', seconds: number): Promise<unknown>
  set(key: string, value: string, ex: 'EX', seconds: number, mode: 'NX' | 'XX'): Promise<unknown>
  set(key: string, value: string, px: 'PX', milliseconds: number, mode: 'NX'): Promise<unknown>
  del(key: string): Promise<number>
  exists(key: string): Promise<number>
  eval(script: string, numKeys: number, ...args: string[]): Promise<unknown>
  /** Any command with Buffer arguments and Buffer replies (Django's format: pickled bytes). */
  callBuffer(command: string, args: (string | Buffer | number)[]): Promise<unknown>
  quit(): Promise<unknown>
  disconnect(): void
}

/** `SET` options of node-redis: v5+ reads `expiration`/`condition`, v4 the older `EX`/`NX`/`XX`. */
export interface NodeRedisSetOptions {
  expiration?: { type: 'EX' | 'PX'; value: number }
  condition?: 'NX' | 'XX'
  EX?: number
  PX?: number
  NX?: boolean
  XX?: boolean
}

/** What sessionkit needs of a node-redis client or cluster (connected: `await client.connect()`). */
export interface NodeRedisClient {
  readonly isOpen: boolean
  get(key: string): Promise<unknown>
  set(key: string, value: string, options?: NodeRedisSetOptions): Promise<unknown>
  del(key: string): Promise<unknown>
  exists(key: string): Promise<unknown>
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
}

/** An ioredis or node-redis client, told apart by shape. */
export type RedisClient = IoRedisClient | NodeRedisClient

/** Options of {@link redisCache}. */
export interface RedisCacheOptions {
  /** Put in front of every session key, with no separator. Default `'django.contrib.sessions.cache'` (Django's). */
  prefix?: string
}

/** One Redis command per operation; `ttl` is whole seconds > 0. */
interface Commands {
  get(key: string): Promise<string | null>
  set(key: string, value: string, ttl: number, mode?: 'NX' | 'XX'): Promise<boolean>
  /** `SET key value PX ms NX`: `true` when set. */
  setNxPx(key: string, value: string, ms: number): Promise<boolean>
  del(key: string): Promise<number>
  exists(key: string): Promise<boolean>
  /** Run a Lua script on one key: one round trip (`EVAL`). */
  eval(script: string, key: string, args: string[]): Promise<unknown>
  close(): Promise<void>
}

/**
 * Compare-and-set in one round trip: write `ARGV[2]` for `ARGV[3]` seconds (or delete it
 * when ≤ 0) only if the key still holds `ARGV[1]`. Returns 1 when written, 0 otherwise.
 */
const REPLACE_IF = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) else redis.call('DEL', KEYS[1]) end
  return 1
end
return 0`

/** Compare-and-delete of a lock: delete `KEYS[1]` only if it still holds this caller's token `ARGV[1]`. */
const RELEASE_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/** Where the lock of a session lives: `<prefix>lock:<key>` (`:` is never in a session key). */
const LOCK_INFIX = 'lock:'

function isNodeRedis(client: object): client is NodeRedisClient {
  return typeof (client as { isOpen?: unknown }).isOpen === 'boolean'
}

function isIoRedis(client: object): client is IoRedisClient {
  return typeof (client as { status?: unknown }).status === 'string' && typeof (client as { disconnect?: unknown }).disconnect === 'function'
}

function ioredisCommands(client: IoRedisClient): Commands {
  return {
    get: (key) => client.get(key),
    async set(key, value, ttl, mode) {
      const reply = mode ? await client.set(key, value, 'EX', ttl, mode) : await client.set(key, value, 'EX', ttl)
      return reply !== null && reply !== undefined
    },
    async setNxPx(key, value, ms) {
      const reply = await client.set(key, value, 'PX', ms, 'NX')
      return reply !== null && reply !== undefined
    },
    del: (key) => client.del(key),
    exists: async (key) => (await client.exists(key)) > 0,
    eval: (script, key, args) => client.eval(script, 1, key, ...args),
    async close() {
      if (client.status === 'end') return
      if (client.status !== 'ready') return client.disconnect()
      try {
        await client.quit()
      } catch {
        client.disconnect()
      }
    },
  }
}

/** `GET`, returning the key beside the value, so that a reply meant for another command is recognised (Django's values cannot carry their key). */
const GET_WITH_KEY = `return {KEYS[1], redis.call('GET', KEYS[1])}`

/**
 * Django's entries over ioredis (Buffers in, Buffers out): exact keys, raw bytes, `SET … EX [NX|XX]`,
 * the version is the stored bytes (as Latin-1 text) and `replaceIf` compares them in a Lua script.
 */
function ioredisDjangoStore(client: IoRedisClient, onMismatch?: () => void): DjangoCacheStore {
  const call = (command: string, ...args: (string | Buffer | number)[]) => client.callBuffer(command, args)
  const setBytes = async (key: string, bytes: Buffer, ttl: number, mode?: 'NX' | 'XX'): Promise<boolean> => {
    const reply = await call('SET', key, bytes, 'EX', ttl, ...(mode ? [mode] : []))
    return reply !== null && reply !== undefined
  }
  return {
    kind: 'redis',
    async get(key) {
      const reply = (await call('EVAL', GET_WITH_KEY, 1, key)) as [Buffer, Buffer | null] | null
      const [seen, bytes] = reply ?? []
      if (!Buffer.isBuffer(seen) || seen.toString('utf8') !== key) {
        onMismatch?.()
        throw new RedisReplyMismatch()
      }
      if (!Buffer.isBuffer(bytes)) return null
      return { value: { bytes, flags: 0 }, version: bytes.toString('latin1') }
    },
    async set(key, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      if (ttl <= 0) await call('DEL', key)
      else await setBytes(key, value.bytes, ttl)
    },
    async add(key, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      if (ttl <= 0) return Number(await call('EXISTS', key)) === 0
      return setBytes(key, value.bytes, ttl, 'NX')
    },
    async replaceIf(key, version, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      return Number(await call('EVAL', REPLACE_IF, 1, key, Buffer.from(version, 'latin1'), value.bytes, String(ttl))) === 1
    },
    async delete(key) {
      await call('DEL', key)
    },
    async has(key) {
      return Number(await call('EXISTS', key)) > 0
    },
    valueOf: (version) => ({ bytes: Buffer.from(version, 'latin1'), flags: 0 }),
    versionOf: (value) => value.bytes.toString('latin1'),
  }
}

function nodeRedisCommands(client: NodeRedisClient): Commands {
  return {
    async get(key) {
      const reply = await client.get(key)
      return reply === null || reply === undefined ? null : String(reply) // a Buffer under a type mapping
    },
    async set(key, value, ttl, mode) {
      const options: NodeRedisSetOptions = { expiration: { type: 'EX', value: ttl }, EX: ttl }
      if (mode) Object.assign(options, { condition: mode, [mode]: true })
      const reply = await client.set(key, value, options)
      return reply !== null && reply !== undefined
    },
    async setNxPx(key, value, ms) {
      const reply = await client.set(key, value, { expiration: { type: 'PX', value: ms }, PX: ms, condition: 'NX', NX: true })
      return reply !== null && reply !== undefined
    },
    del: async (key) => Number(await client.del(key)),
    exists: async (key) => Number(await client.exists(key)) > 0,
    eval: (script, key, args) => client.eval(script, { keys: [key], arguments: args }),
    async close() {
      if (!client.isOpen) return
      const c = client as NodeRedisClient & { close?(): Promise<void>; quit?(): Promise<unknown> }
      await (c.close ? c.close() : c.quit?.())
    },
  }
}

/**
 * A session cache on the Redis client you pass. The engine never closes a client you pass
 * (your application owns it); `close()` of the returned cache does, when you call it.
 * A node-redis client must be connected first (`await client.connect()`).
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis'
 * const redis = new Redis(process.env.REDIS_URL)
 * createSessions({ engine: 'cache', caches: { default: redisCache(redis) }, … })
 * ```
 */
export function redisCache(client: RedisClient, options: RedisCacheOptions = {}): SessionCache {
  if (client === null || typeof client !== 'object') {
    throw new ImproperlyConfigured('sessionkit: redisCache() takes an ioredis Redis or Cluster, or a node-redis client or cluster')
  }
  let commands: Commands
  let django: DjangoCacheStore | undefined
  if (isNodeRedis(client)) commands = nodeRedisCommands(client)
  else if (isIoRedis(client)) {
    commands = ioredisCommands(client)
    if (typeof client.callBuffer === 'function') django = ioredisDjangoStore(client)
  } else throw new ImproperlyConfigured('sessionkit: redisCache() takes an ioredis Redis or Cluster, or a node-redis client or cluster')
  return cacheOn(commands, options.prefix, undefined, undefined, django)
}

/**
 * Every stored value starts with its own key and `|`: a reply that is not for the key asked
 * (a client whose reply queue slipped after a lost request, so every reply goes to the
 * command before it) is refused instead of handing one visitor another visitor's session.
 */
function bind(key: string, value: string): string {
  return `${key}|${value}`
}

function cacheOn(commands: Commands, prefix = CACHE_KEY_PREFIX, ready?: () => Promise<void>, onMismatch?: () => void, django?: DjangoCacheStore): SessionCache {
  if (typeof prefix !== 'string') throw new ImproperlyConfigured(`sessionkit: the Redis cache prefix must be a string, got ${typeof prefix}`)
  let closing: Promise<void> | null = null
  const cache: SessionCache = {
    name: 'redis',
    async get(key) {
      const stored = await commands.get(prefix + key)
      if (stored === null) return null
      if (!stored.startsWith(key) || stored.charCodeAt(key.length) !== 124 /* | */) {
        onMismatch?.()
        throw new RedisReplyMismatch()
      }
      return stored.slice(key.length + 1)
    },
    async set(key, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      if (ttl <= 0) await commands.del(prefix + key)
      else await commands.set(prefix + key, bind(key, value), ttl)
    },
    async add(key, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      if (ttl <= 0) return !(await commands.exists(prefix + key))
      return commands.set(prefix + key, bind(key, value), ttl, 'NX')
    },
    async replace(key, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      if (ttl <= 0) return (await commands.del(prefix + key)) > 0
      return commands.set(prefix + key, bind(key, value), ttl, 'XX')
    },
    async replaceIf(key, expected, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      return Number(await commands.eval(REPLACE_IF, prefix + key, [bind(key, expected), bind(key, value), String(ttl)])) === 1
    },
    /**
     * `SET <prefix>lock:<key> <token> NX PX ttlMs`, polled with a jittered backoff until
     * `waitMs`; released by a Lua compare-and-delete (one round trip each).
     */
    async lock(key, options) {
      const { waitMs, ttlMs } = checkLockOptions(options)
      const lockKey = prefix + LOCK_INFIX + key
      const token = lockToken()
      await pollLock(() => commands.setNxPx(lockKey, token, ttlMs), waitMs)
      return async () => {
        await commands.eval(RELEASE_LOCK, lockKey, [token])
      }
    },
    async delete(key) {
      await commands.del(prefix + key)
    },
    has: (key) => commands.exists(prefix + key),
    close() {
      closing ??= commands.close()
      return closing
    },
  }
  if (ready) cache.ready = ready
  return django ? { ...cache, django } : cache
}

/** Options of {@link redisCacheFromUrl}. */
export interface RedisCacheFromUrlOptions extends RedisCacheOptions {
  /**
   * How long a connection attempt, and then each command, may take before it fails, in
   * milliseconds. Default `2000`. A Redis that is down makes requests fail (503) after at
   * most this long, instead of hanging or queueing without bound.
   */
  timeoutMs?: number
  /** Where a lost connection is reported, once per outage. Default: not reported (failed commands still reject). */
  logger?: Logger
}

/** The part of an ioredis client made here that the URL cache uses. */
interface OwnedIoRedis extends IoRedisClient {
  on(event: string, listener: (...args: unknown[]) => void): unknown
  removeListener(event: string, listener: (...args: unknown[]) => void): unknown
}

type IoRedisConstructor = new (url: string, options: Record<string, unknown>) => OwnedIoRedis

function loadIoRedis(): IoRedisConstructor {
  const mod = requirePeer('ioredis', { missing: 'sessionkit: redisUrl needs the ioredis package (an optional peer dependency): npm install ioredis' })
  const m = mod as { Redis?: unknown; default?: unknown }
  const ctor = m.Redis ?? m.default ?? mod
  if (typeof ctor !== 'function') throw new ImproperlyConfigured('sessionkit: the installed ioredis package exports no Redis class')
  return ctor as IoRedisConstructor
}

/**
 * A session cache on a Redis server of its own, made from a `redis://` or `rediss://` URL
 * with ioredis (`npm install ioredis`; missing → `ImproperlyConfigured`). This is what
 * `settings.redisUrl` gives when `caches` has no `default`; the engine then owns the client
 * and closes it.
 *
 * Connection policy: it connects at once; `ready()` resolves on the first connection and
 * rejects after `timeoutMs` with an error naming the URL without its password. Afterwards a
 * lost connection is retried in the background (backoff capped at 2 s) while each command
 * fails after `timeoutMs` at most, and commands queued during an outage are dropped after one
 * reconnection attempt (`maxRetriesPerRequest: 1`): requests get a 503, never an endless wait.
 */
export function redisCacheFromUrl(url: string, options: RedisCacheFromUrlOptions = {}): SessionCache {
  if (typeof url !== 'string' || !/^rediss?:\/\//i.test(url)) {
    throw new ImproperlyConfigured(`sessionkit: a Redis URL must start with redis:// or rediss://, got ${JSON.stringify(redactUrl(String(url)))}`)
  }
  const timeoutMs = options.timeoutMs ?? 2000
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    throw new ImproperlyConfigured(`sessionkit: redisCacheFromUrl timeoutMs must be a whole number of milliseconds > 0, got ${String(timeoutMs)}`)
  }
  if (options.prefix !== undefined && typeof options.prefix !== 'string') {
    throw new ImproperlyConfigured(`sessionkit: the Redis cache prefix must be a string, got ${typeof options.prefix}`)
  }
  const Redis = loadIoRedis()
  const where = redactUrl(url)
  const scrub = urlScrubber(url)
  const client = new Redis(url, {
    lazyConnect: false,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    // Reconnect soon after Redis returns: 100 ms, 200 ms, 400 ms, then every second.
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
  })

  let lastError: Error | undefined
  let everReady = false
  let down = false
  client.on('error', (error) => {
    lastError = error as Error
    // Before the first connection, ready() reports the failure; afterwards, log once per outage.
    if (everReady && !down) {
      down = true
      options.logger?.error(`Redis at ${where} is unreachable: ${scrub(lastError.message)}`)
    }
  })
  client.on('ready', () => {
    everReady = true
    down = false
  })

  let readying: Promise<void> | null = null
  function ready(): Promise<void> {
    readying ??= new Promise<void>((resolve, reject) => {
      if (client.status === 'ready') return resolve()
      const fail = (why: string) => {
        cleanup()
        const reason = lastError ? scrub(lastError.message) || lastError.name : why
        reject(new StoreUnavailable(`sessionkit: cannot connect to Redis at ${where} within ${timeoutMs} ms: ${reason}`))
      }
      const onReady = () => {
        cleanup()
        resolve()
      }
      const onEnd = () => fail('the connection was closed')
      const timer = setTimeout(() => fail('no answer'), timeoutMs)
      function cleanup() {
        clearTimeout(timer)
        client.removeListener('ready', onReady)
        client.removeListener('end', onEnd)
      }
      client.on('ready', onReady)
      client.on('end', onEnd)
    })
    return readying
  }

  // A command that timed out stays in ioredis's reply queue: if its request never reached
  // Redis, every later reply would go to the command before it. Drop the connection (ioredis
  // reconnects) whenever that may have happened: on a timeout and on a mismatched reply.
  // At most once per timeout, and only on a connection that looks healthy (a connection that is
  // already down reconnects by itself; dropping a fresh one again would only prolong an outage).
  let lastResync = 0
  const resync = (): void => {
    const now = Date.now()
    if (client.status !== 'ready' || now - lastResync < timeoutMs) return
    lastResync = now
    ;(client as unknown as { disconnect(reconnect: boolean): void }).disconnect(true)
  }
  const raw = ioredisCommands(client)
  const guard =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await fn(...args)
      } catch (error) {
        if (/timed? ?out/i.test((error as Error).message ?? '')) resync()
        throw error
      }
    }
  const commands: Commands = {
    get: guard(raw.get),
    set: guard(raw.set),
    del: guard(raw.del),
    exists: guard(raw.exists),
    setNxPx: guard(raw.setNxPx),
    eval: guard(raw.eval),
    close: raw.close,
  }
  const rawDjango = ioredisDjangoStore(client, resync)
  const django: DjangoCacheStore = {
    kind: 'redis',
    get: guard(rawDjango.get),
    set: guard(rawDjango.set),
    add: guard(rawDjango.add),
    replaceIf: guard(rawDjango.replaceIf),
    delete: guard(rawDjango.delete),
    has: guard(rawDjango.has),
    valueOf: rawDjango.valueOf,
    versionOf: rawDjango.versionOf,
  }
  return cacheOn(commands, options.prefix, ready, resync, django)
}
