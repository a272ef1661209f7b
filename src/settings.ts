/**
 * The `SESSION_*` settings of Django, camelCased, with Django's defaults; validated once,
 * at start-up, with an error that names the setting and what is allowed.
 *
 * The library reads the environment in one place only: {@link fromEnv}.
 */
import os from 'node:os'
import { stringifySetCookie } from 'cookie'
import { ImproperlyConfigured } from './errors.js'
import { JSONSerializer, type Serializer } from './serializers.js'
import { redactUrl } from './redact.js'
import type { EngineFactory } from './engine.js'
import { ENGINE_NAMES, isEngineName, type EngineName } from './engines/index.js'
import type { SessionCache } from './caches/cache.js'
import { djangoCacheFormat, type DjangoCacheOptions } from './caches/django.js'

export type { EngineName } from './engines/index.js'

/** `SameSite` attribute values; `false` omits the attribute (Django: `False`/`None`). */
export type SameSite = 'Lax' | 'Strict' | 'None' | false

/** What sessionkit logs. Never called with a raw session key. */
export interface Logger {
  warn(message: string): void
  error(message: string, error?: unknown): void
}

/** A suspicious request, reported to `onSuspicious`: the key is never included. */
export interface SuspiciousEvent {
  /** `tampered`: bad signature; `corrupt`: signature fine, payload undecodable; `unknown-key`: no such session; `malformed-key`: not a key we could have issued. */
  kind: 'tampered' | 'corrupt' | 'unknown-key' | 'malformed-key'
  /** The engine that saw it. */
  engine: string
  /** A short human-readable detail (never the key or the data). */
  detail: string
}

/** Every setting. Pass a `Partial<Settings>` to `createSessions()`; the rest takes Django's defaults. */
export interface Settings {
  /** Where sessions live. Default `'db'`. Django: `SESSION_ENGINE`. A factory plugs in a custom engine. */
  engine: EngineName | EngineFactory
  /** Cookie name; also the file engine's file-name prefix. Default `'sessionid'`. Django: `SESSION_COOKIE_NAME`. */
  cookieName: string
  /** Lifetime in seconds: cookie `Max-Age`, stored expiry, signed-cookie max age. Default `1209600` (2 weeks). Django: `SESSION_COOKIE_AGE`. */
  cookieAge: number
  /** Cookie `Domain`. Default `null` (host-only). Django: `SESSION_COOKIE_DOMAIN`. */
  cookieDomain: string | null
  /** Cookie `Path`. Default `'/'`. Django: `SESSION_COOKIE_PATH`. */
  cookiePath: string
  /** Cookie `Secure` flag. Default `false` (Django's default; set `true` behind HTTPS). Django: `SESSION_COOKIE_SECURE`. */
  cookieSecure: boolean
  /** Cookie `HttpOnly` flag. Default `true`. Django: `SESSION_COOKIE_HTTPONLY`. */
  cookieHttpOnly: boolean
  /** Cookie `SameSite`. Default `'Lax'`. Django: `SESSION_COOKIE_SAMESITE`. */
  cookieSameSite: SameSite
  /** Cookie `Partitioned` flag (CHIPS). Default `false`. No Django equivalent. */
  cookiePartitioned: boolean
  /** Browser-session cookie unless `setExpiry` says otherwise. Default `false`. Django: `SESSION_EXPIRE_AT_BROWSER_CLOSE`. */
  expireAtBrowserClose: boolean
  /** Save and re-send the cookie on every response with a non-empty session. Default `false`. Django: `SESSION_SAVE_EVERY_REQUEST`. */
  saveEveryRequest: boolean
  /**
   * Absolute timeout in seconds, or `null` (default: none, as Django). A session is refused on
   * load once this many seconds have passed since it was created, however active it is. The
   * creation time (whole seconds since the epoch) is kept in the session data under the
   * reserved key `_session_created`, written at the first save; it survives `cycleKey()` and is
   * reset by `flush()`. No Django equivalent (OWASP: absolute timeout).
   */
  absoluteAge: number | null
  /**
   * Send `Cache-Control: private, no-store` on every response that sets or deletes the session
   * cookie, replacing what the handler set (`no-store` overrides any other directive). Default
   * `false`, as Django (which never touches `Cache-Control` here). No Django equivalent.
   */
  cacheControl: boolean
  /** File engine directory. Default the OS temp dir. Django: `SESSION_FILE_PATH`. */
  filePath: string
  /** Serializer of session data. Default JSON, byte-compatible with Django's. Django: `SESSION_SERIALIZER`. */
  serializer: Serializer
  /**
   * Encrypt the `signed_cookies` cookie (AES-256-GCM, keys derived from `secretKey` and the
   * fallbacks) so that the visitor cannot read the session data. Default `false`: Django's
   * signed, readable format, which Django can read too; an encrypted cookie is **not**
   * readable by Django. Turning it on keeps existing signed cookies valid (each is re-written
   * encrypted at its next save); turning it off logs out encrypted sessions. Server-side
   * engines ignore it (their cookie holds only a random key). No Django equivalent.
   */
  cookieEncryption: boolean
  /** Cache alias for the `cache` and `cached_db` engines. Default `'default'`. Django: `SESSION_CACHE_ALIAS`. */
  cacheAlias: string
  /**
   * The caches of the `cache` and `cached_db` engines, by alias: `memoryCache()`,
   * `redisCache(client)` or your own `SessionCache`. Default `{}`: the `'default'` alias then
   * falls back to a Redis cache on `redisUrl` when set, else an in-process LRU (per process:
   * wrong behind a load balancer). Caches passed here are never closed by sessionkit.
   * Django: `CACHES`.
   */
  caches: Readonly<Record<string, SessionCache>>
  /**
   * How the `cache` and `cached_db` engines keep sessions in their cache. Default `'signed'`:
   * sessionkit's own entries, the signed session string (whoever can write to the cache cannot
   * forge a session), which Django cannot read. `'django'`, or the `CACHES` entry's options as
   * an object (`{ backend, keyPrefix, version, compressor, pickleProtocol }`, see
   * `DjangoCacheOptions`): Django's own entries — keys `KEY_PREFIX:VERSION:django.contrib.sessions.cache<key>`
   * (or `…cached_db…`), the session dict pickled as the backend pickles it — so that a Django
   * site on the same Redis or Memcached shares the sessions. Those entries are **not signed**:
   * whoever can write to the cache can write any session, as with Django itself. The cache must
   * support it (`redisCache` over ioredis, `redisUrl`, `memcachedCache`, `memoryCache`).
   * Django: the `CACHES[SESSION_CACHE_ALIAS]` entry's `BACKEND`, `KEY_PREFIX`, `VERSION`, `OPTIONS`.
   */
  cacheFormat: 'signed' | 'django' | DjangoCacheOptions
  /** The signing secret. Required (except for `fromEnv` users in development). Django: `SECRET_KEY`. */
  secretKey: string
  /** Old secrets still accepted when verifying; signing always uses `secretKey`. Default `[]`. Django: `SECRET_KEY_FALLBACKS`. */
  secretKeyFallbacks: readonly string[]
  /** The `db` engine's database: `sqlite:///relative.db`, `sqlite:////abs.db`, `sqlite::memory:`, `postgres://…`, `mysql://…`. Default `sqlite:///db.sqlite3`. Django: `DATABASES`. */
  databaseUrl: string
  /**
   * The Redis server for the `cache`/`cached_db` engines, when used: it backs the `'default'`
   * cache alias when `caches` has none (through ioredis, an optional peer dependency;
   * `sessions.ready()` rejects if it cannot connect). Default `null`.
   */
  redisUrl: string | null
  /**
   * Load the session only when the handler asks (`await session.load()` or the awaited
   * accessors `aget`, `aset`, …). Default `false`: adapters load before the handler, but
   * only when the request carries a session cookie.
   */
  lazy: boolean
  /** Where warnings and errors go. Default: `console` with a `sessionkit:` prefix. */
  logger: Logger
  /** Called for tampered, corrupt, unknown-key and malformed-key events. Default: none. */
  onSuspicious: ((event: SuspiciousEvent) => void) | null
  /** The clock, in milliseconds since the epoch. Default `Date.now`. Tests inject one. */
  now: () => number
  /**
   * How long `session.lock()` waits for another request holding the session's lock, in
   * milliseconds, before it throws `SessionLocked` (503: the client should retry). `0` tries
   * once. Default `5000`. Laravel: the `$wait` of `->block($lockSeconds, $waitSeconds)`.
   */
  lockWaitMs: number
  /**
   * How long a session lock lives unless released, in milliseconds: a request that dies
   * holding it (a crash, a killed process) blocks the session's locked routes for this long at
   * most. Longer than the slowest locked route, or a second request gets in while the first
   * still runs. Default `30000`. Laravel: the `$lockSeconds` of `->block()`.
   */
  lockTtlMs: number
}

/** What `caches` values must have (the `SessionCache` interface). */
const CACHE_METHODS = ['get', 'set', 'add', 'replace', 'delete', 'has'] as const

const consoleLogger: Logger = {
  warn: (message) => console.warn(`sessionkit: ${message}`),
  error: (message, error) =>
    error === undefined ? console.error(`sessionkit: ${message}`) : console.error(`sessionkit: ${message}`, error),
}

/** Django's defaults (`django/conf/global_settings.py`), except `secretKey`, which has none. */
export const defaults: Readonly<Omit<Settings, 'secretKey'>> = Object.freeze({
  engine: 'db',
  cookieName: 'sessionid',
  cookieAge: 60 * 60 * 24 * 7 * 2,
  cookieDomain: null,
  cookiePath: '/',
  cookieSecure: false,
  cookieHttpOnly: true,
  cookieSameSite: 'Lax',
  cookiePartitioned: false,
  expireAtBrowserClose: false,
  saveEveryRequest: false,
  absoluteAge: null,
  cacheControl: false,
  filePath: os.tmpdir(),
  cookieEncryption: false,
  serializer: JSONSerializer,
  cacheAlias: 'default',
  caches: Object.freeze({}) as Readonly<Record<string, SessionCache>>,
  cacheFormat: 'signed',
  secretKeyFallbacks: Object.freeze([]) as readonly string[],
  databaseUrl: 'sqlite:///db.sqlite3',
  redisUrl: null,
  lazy: false,
  logger: consoleLogger,
  onSuspicious: null,
  now: Date.now,
  lockWaitMs: 5000,
  lockTtlMs: 30_000,
})

function fail(setting: string, allowed: string, got: unknown): never {
  throw new ImproperlyConfigured(`sessionkit: ${setting} must be ${allowed}, got ${show(got)}`)
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'function') return 'a function'
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

function bool(settings: Partial<Settings>, name: keyof Settings): boolean {
  const value = settings[name] ?? defaults[name as keyof typeof defaults]
  if (typeof value !== 'boolean') fail(name, 'true or false', value)
  return value
}

function sameSite(value: unknown): SameSite {
  if (value === false || value === null) return false
  if (typeof value === 'string') {
    const found = (['Lax', 'Strict', 'None'] as const).find((v) => v.toLowerCase() === value.toLowerCase())
    if (found) return found
  }
  return fail('cookieSameSite', '"Lax", "Strict", "None" or false', value)
}

/**
 * Fill in Django's defaults, validate every setting and freeze the result. Throws
 * `ImproperlyConfigured` with a message that names the setting and what is allowed.
 *
 * Refused, as browsers would refuse the cookie: a `__Secure-` or `__Host-` name without
 * `cookieSecure`; a `__Host-` name with a domain or a path other than `/`; `SameSite=None`
 * without `cookieSecure`; `cookiePartitioned` without `cookieSecure`.
 */
export function resolveSettings(input: Partial<Settings> = {}): Readonly<Settings> {
  if (input === null || typeof input !== 'object') fail('settings', 'an object', input)
  const known = new Set<string>([...Object.keys(defaults), 'secretKey'])
  for (const name of Object.keys(input)) {
    if (!known.has(name)) {
      throw new ImproperlyConfigured(`sessionkit: unknown setting ${JSON.stringify(name)}`)
    }
  }
  const s = { ...defaults, ...stripUndefined(input) } as Settings

  if (typeof s.engine !== 'function' && !isEngineName(s.engine)) {
    fail('engine', `one of ${ENGINE_NAMES.map((e) => `"${e}"`).join(', ')} or an engine factory`, s.engine)
  }
  if (typeof s.cookieName !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s.cookieName)) {
    fail('cookieName', 'a cookie name (RFC 6265 token characters)', s.cookieName)
  }
  if (!Number.isSafeInteger(s.cookieAge) || s.cookieAge < 0) {
    fail('cookieAge', 'a whole number of seconds ≥ 0', s.cookieAge)
  }
  if (s.cookieDomain !== null && (typeof s.cookieDomain !== 'string' || s.cookieDomain === '')) {
    fail('cookieDomain', 'a domain name or null', s.cookieDomain)
  }
  if (typeof s.cookiePath !== 'string' || !s.cookiePath.startsWith('/')) {
    fail('cookiePath', 'a path starting with "/"', s.cookiePath)
  }
  for (const name of ['cookieSecure', 'cookieHttpOnly', 'cookiePartitioned', 'expireAtBrowserClose', 'saveEveryRequest', 'lazy', 'cookieEncryption', 'cacheControl'] as const) {
    s[name] = bool(s, name)
  }
  if (s.absoluteAge !== null && (!Number.isSafeInteger(s.absoluteAge) || s.absoluteAge <= 0)) {
    fail('absoluteAge', 'a whole number of seconds > 0 or null', s.absoluteAge)
  }
  s.cookieSameSite = sameSite(s.cookieSameSite)
  try {
    // The cookie package checks name, domain and path syntax for us.
    stringifySetCookie(s.cookieName, 'x', {
      domain: s.cookieDomain ?? undefined,
      path: s.cookiePath,
    })
  } catch (error) {
    throw new ImproperlyConfigured(`sessionkit: cookieDomain or cookiePath is not valid cookie syntax: ${(error as Error).message}`)
  }
  if (/^__(Secure|Host)-/i.test(s.cookieName) && !s.cookieSecure) {
    fail('cookieSecure', `true for a cookie named ${JSON.stringify(s.cookieName)} (browsers drop __Secure-/__Host- cookies without Secure)`, s.cookieSecure)
  }
  if (/^__Host-/i.test(s.cookieName)) {
    if (s.cookieDomain !== null) fail('cookieDomain', `null for a __Host- cookie`, s.cookieDomain)
    if (s.cookiePath !== '/') fail('cookiePath', `"/" for a __Host- cookie`, s.cookiePath)
  }
  if (s.cookieSameSite === 'None' && !s.cookieSecure) {
    fail('cookieSecure', 'true when cookieSameSite is "None" (browsers reject SameSite=None without Secure)', s.cookieSecure)
  }
  if (s.cookiePartitioned && !s.cookieSecure) {
    fail('cookieSecure', 'true when cookiePartitioned is set (Partitioned cookies require Secure)', s.cookieSecure)
  }
  if (typeof s.filePath !== 'string' || s.filePath === '') fail('filePath', 'a directory path', s.filePath)
  if (!s.serializer || typeof s.serializer.dumps !== 'function' || typeof s.serializer.loads !== 'function') {
    fail('serializer', 'an object with dumps() and loads()', s.serializer)
  }
  if (typeof s.cacheAlias !== 'string' || s.cacheAlias === '') fail('cacheAlias', 'a non-empty string', s.cacheAlias)
  if (s.caches === null || typeof s.caches !== 'object' || Array.isArray(s.caches)) {
    fail('caches', 'an object of caches by alias', s.caches)
  }
  for (const [alias, cache] of Object.entries(s.caches)) {
    const isObject = cache !== null && typeof cache === 'object'
    const missing = CACHE_METHODS.filter((m) => !isObject || typeof (cache as unknown as Record<string, unknown>)[m] !== 'function')
    if (missing.length) {
      throw new ImproperlyConfigured(
        `sessionkit: caches[${JSON.stringify(alias)}] must be a SessionCache: memoryCache(), redisCache(client) ` +
          `(a Redis client is wrapped, not passed as is) or an object with get, set, add, replace, delete and has; ` +
          `got ${isObject ? `an object without ${missing.join(', ')}` : show(cache)}`,
      )
    }
  }
  s.caches = Object.freeze({ ...s.caches })
  if (s.cacheFormat !== 'signed' && s.cacheFormat !== 'django') {
    if (s.cacheFormat === null || typeof s.cacheFormat !== 'object' || Array.isArray(s.cacheFormat)) {
      fail('cacheFormat', '"signed", "django" or an object of Django cache options ({ backend, keyPrefix, version, compressor, pickleProtocol })', s.cacheFormat)
    }
    djangoCacheFormat(s.cacheFormat) // names the option that is wrong
    s.cacheFormat = Object.freeze({ ...s.cacheFormat })
  }
  if (typeof s.secretKey !== 'string' || s.secretKey === '') {
    throw new ImproperlyConfigured(
      'sessionkit: secretKey must be set (Django: SECRET_KEY); use a long random string kept out of the source, e.g. from the SECRET_KEY environment variable',
    )
  }
  if (!Array.isArray(s.secretKeyFallbacks) || s.secretKeyFallbacks.some((k) => typeof k !== 'string' || k === '')) {
    // Never echo the value: it holds secrets.
    const bad = Array.isArray(s.secretKeyFallbacks)
      ? `an array whose entry ${s.secretKeyFallbacks.findIndex((k) => typeof k !== 'string' || k === '')} is ${describeEntry(s.secretKeyFallbacks.find((k) => typeof k !== 'string' || k === ''))}`
      : `a value of type ${typeof s.secretKeyFallbacks}`
    throw new ImproperlyConfigured(`sessionkit: secretKeyFallbacks must be an array of non-empty strings, got ${bad}`)
  }
  if (typeof s.databaseUrl !== 'string' || !/^(sqlite|postgres|postgresql|mysql|mariadb):/.test(s.databaseUrl)) {
    fail('databaseUrl', 'a URL starting with sqlite:, postgres:, postgresql:, mysql: or mariadb:', redactUrl(String(s.databaseUrl)))
  }
  if (s.redisUrl !== null && (typeof s.redisUrl !== 'string' || !/^rediss?:\/\//.test(s.redisUrl))) {
    fail('redisUrl', 'a redis:// or rediss:// URL or null', redactUrl(String(s.redisUrl)))
  }
  if (!s.logger || typeof s.logger.warn !== 'function' || typeof s.logger.error !== 'function') {
    fail('logger', 'an object with warn() and error()', s.logger)
  }
  if (s.onSuspicious !== null && typeof s.onSuspicious !== 'function') fail('onSuspicious', 'a function or null', s.onSuspicious)
  if (typeof s.now !== 'function') fail('now', 'a function returning milliseconds', s.now)
  if (!Number.isSafeInteger(s.lockWaitMs) || s.lockWaitMs < 0) fail('lockWaitMs', 'a whole number of milliseconds ≥ 0', s.lockWaitMs)
  if (!Number.isSafeInteger(s.lockTtlMs) || s.lockTtlMs < 1) fail('lockTtlMs', 'a whole number of milliseconds ≥ 1', s.lockTtlMs)
  s.secretKeyFallbacks = Object.freeze([...s.secretKeyFallbacks])
  return Object.freeze(s)
}

function describeEntry(entry: unknown): string {
  return entry === '' ? 'an empty string' : `of type ${entry === null ? 'null' : typeof entry}`
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}

const ENV_ENGINE_PREFIX = 'django.contrib.sessions.backends.'

function envBool(env: Record<string, string | undefined>, name: string): boolean | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const v = raw.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(v)) return true
  if (['0', 'false', 'no', 'off'].includes(v)) return false
  throw new ImproperlyConfigured(`sessionkit: environment variable ${name} must be true or false, got ${JSON.stringify(raw)}`)
}

function envInt(env: Record<string, string | undefined>, name: string): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  if (!/^\s*\d+\s*$/.test(raw)) {
    throw new ImproperlyConfigured(`sessionkit: environment variable ${name} must be a whole number of seconds, got ${JSON.stringify(raw)}`)
  }
  return Number(raw)
}

function envList(raw: string | undefined): string[] | undefined {
  if (raw === undefined || raw.trim() === '') return undefined
  const trimmed = raw.trim()
  if (trimmed.startsWith('[')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(trimmed)
    } catch {
      parsed = null // the message must not quote the value: it holds secrets
    }
    if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'string')) return parsed
    throw new ImproperlyConfigured('sessionkit: environment variable SECRET_KEY_FALLBACKS must be a JSON array of strings or a comma-separated list')
  }
  return trimmed.split(',').map((k) => k.trim()).filter(Boolean)
}

/** `SESSION_CACHE_FORMAT`: `signed`, `django`, or a JSON object of Django cache options. */
function envCacheFormat(raw: string): Settings['cacheFormat'] {
  const v = raw.trim()
  if (v === 'signed' || v === 'django') return v
  try {
    const parsed: unknown = JSON.parse(v)
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as DjangoCacheOptions
  } catch {
    // fall through to the message
  }
  throw new ImproperlyConfigured(`sessionkit: environment variable SESSION_CACHE_FORMAT must be signed, django or a JSON object of Django cache options, got ${JSON.stringify(raw)}`)
}

/**
 * Settings from the environment, the twelve-factor way: `SECRET_KEY`,
 * `SECRET_KEY_FALLBACKS` (comma-separated or a JSON array), `SESSION_ENGINE` (`db` or
 * Django's dotted `django.contrib.sessions.backends.db`), `SESSION_COOKIE_NAME`, `_AGE`,
 * `_DOMAIN`, `_PATH`, `_SECURE`, `_HTTPONLY`, `_SAMESITE`, `_PARTITIONED`,
 * `SESSION_EXPIRE_AT_BROWSER_CLOSE`, `SESSION_SAVE_EVERY_REQUEST`, `SESSION_FILE_PATH`,
 * `SESSION_CACHE_ALIAS`, `SESSION_CACHE_FORMAT` (`signed`, `django` or JSON options), `SESSION_COOKIE_ENCRYPTED`, `SESSION_ABSOLUTE_AGE`, `SESSION_CACHE_CONTROL`
 * (sessionkit's own), `DATABASE_URL`,
 * `REDIS_URL`. Unset variables are left out, so the result can be spread under explicit
 * settings. Malformed values throw, naming the variable.
 */
export function fromEnv(env: Record<string, string | undefined> = process.env): Partial<Settings> {
  const out: Partial<Settings> = {}
  const str = (name: string): string | undefined => (env[name] === undefined || env[name] === '' ? undefined : env[name])
  if (str('SECRET_KEY')) out.secretKey = str('SECRET_KEY')
  const fallbacks = envList(env.SECRET_KEY_FALLBACKS)
  if (fallbacks) out.secretKeyFallbacks = fallbacks
  const engine = str('SESSION_ENGINE')
  if (engine) out.engine = (engine.startsWith(ENV_ENGINE_PREFIX) ? engine.slice(ENV_ENGINE_PREFIX.length) : engine) as EngineName
  if (str('SESSION_COOKIE_NAME')) out.cookieName = str('SESSION_COOKIE_NAME')
  out.cookieAge = envInt(env, 'SESSION_COOKIE_AGE')
  const domain = str('SESSION_COOKIE_DOMAIN')
  if (domain) out.cookieDomain = domain
  if (str('SESSION_COOKIE_PATH')) out.cookiePath = str('SESSION_COOKIE_PATH')
  out.cookieSecure = envBool(env, 'SESSION_COOKIE_SECURE')
  out.cookieHttpOnly = envBool(env, 'SESSION_COOKIE_HTTPONLY')
  const samesite = str('SESSION_COOKIE_SAMESITE')
  if (samesite) out.cookieSameSite = ['false', 'none_', ''].includes(samesite.toLowerCase()) ? false : (samesite as SameSite)
  out.cookiePartitioned = envBool(env, 'SESSION_COOKIE_PARTITIONED')
  out.expireAtBrowserClose = envBool(env, 'SESSION_EXPIRE_AT_BROWSER_CLOSE')
  out.saveEveryRequest = envBool(env, 'SESSION_SAVE_EVERY_REQUEST')
  if (str('SESSION_FILE_PATH')) out.filePath = str('SESSION_FILE_PATH')
  if (str('SESSION_CACHE_ALIAS')) out.cacheAlias = str('SESSION_CACHE_ALIAS')
  out.cookieEncryption = envBool(env, 'SESSION_COOKIE_ENCRYPTED')
  out.absoluteAge = envInt(env, 'SESSION_ABSOLUTE_AGE')
  out.cacheControl = envBool(env, 'SESSION_CACHE_CONTROL')
  const format = str('SESSION_CACHE_FORMAT')
  if (format) out.cacheFormat = envCacheFormat(format)
  if (str('DATABASE_URL')) out.databaseUrl = str('DATABASE_URL')
  if (str('REDIS_URL')) out.redisUrl = str('REDIS_URL') ?? null
  return stripUndefined(out)
}
