/**
 * `Session`: the dict-like object of Django's `SessionBase`, with Django's semantics for
 * `accessed`, `modified`, expiry and the storage lifecycle.
 */
import { ConflictError, CreateError, LockOrderError, NotSupported, SessionNotLoaded, UpdateError } from './errors.js'
import type { Engine, LoadedSession, LockOptions, ReleaseLock, SavedSession, SaveOptions, SessionMap } from './engine.js'
import { CREATED_KEY, EXPIRY_KEY, expiresAt, fixedExpiry, relativeExpiry, toPythonIso } from './expiry.js'
import { isServerKey, newSessionKey } from './keys.js'
import { checkLockOptions } from './lock.js'
import type { SessionCodec } from './codec.js'
import type { Settings } from './settings.js'

/**
 * The shape of session data. Open by default; narrow it for the whole app by declaration
 * merging, or per use with `Session<{ … }>`:
 *
 * ```ts
 * declare module 'sessionkit' {
 *   interface SessionData { username: string; cart: string[] }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface SessionData {
  [key: string]: unknown
}

/** The keys of `T` that can be session keys. */
export type SessionKey<T> = Extract<keyof T, string>

/**
 * What a session needs from the application it belongs to: the resolved settings, the codec and
 * the engine (Django's *backend* is the engine; this is what holds one). `Sessions` is one.
 */
export interface SessionHost {
  readonly settings: Readonly<Settings>
  /** Decodes a stored version back into the data it held (the base of a merge). */
  readonly codec: SessionCodec
  /** The engine, once ready; `ready()` resolves to it. */
  readonly engine: Engine | null
  ready(): Promise<Engine>
}

/** @deprecated Renamed {@link SessionHost} (Django's backend is the engine); this name goes in the next release. */
export type SessionBackend = SessionHost

/**
 * Where the middleware core keeps the request a session belongs to (`requestSessionOf` in
 * `middleware.ts`); `null` for a session made outside a request. Not part of the public API.
 */
export const OWNER: unique symbol = Symbol('sessionkit.request')

/** Django: `TEST_COOKIE_NAME`, `TEST_COOKIE_VALUE`. */
export const TEST_COOKIE_NAME = 'testcookie'
export const TEST_COOKIE_VALUE = 'worked'

const CREATE_ATTEMPTS = 10
/**
 * How many times a save merges and retries after losing a compare-and-set before giving up.
 * Every round at least one contender wins, so N writers at once need at most N rounds.
 */
const MERGE_ATTEMPTS = 64

/** A short random pause after a lost compare-and-set, growing with the attempts: contenders spread out. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(2 ** attempt, 50)
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** An engine's load result, whether it keeps versions or not. */
function loaded(result: LoadedSession | SessionMap | null): LoadedSession | { data: SessionMap; version: null } | null {
  if (result === null) return null
  return result instanceof Map ? { data: result, version: null } : result
}

/**
 * Three-way merge after a lost compare-and-set: start from what the store holds now
 * (`theirs`) and re-apply every key this request changed relative to what it loaded
 * (`base` → `mine`): set, replaced or deleted. A key both changed: this save wins (the last
 * save wins, key by key). Values compare by their JSON, so in-place changes of nested values
 * count as changes.
 */
export function mergeSessions(base: SessionMap, mine: SessionMap, theirs: SessionMap): SessionMap {
  const merged = new Map(theirs)
  const json = (map: SessionMap, key: string): string | undefined => (map.has(key) ? JSON.stringify(map.get(key)) : undefined)
  for (const key of new Set([...base.keys(), ...mine.keys()])) {
    if (json(base, key) === json(mine, key)) continue
    if (mine.has(key)) merged.set(key, mine.get(key))
    else merged.delete(key)
  }
  return merged
}

/** Options of `getExpiryAge` / `getExpiryDate`, as Django's `**kwargs`. */
export interface ExpiryOptions {
  /** The time of the last modification (default: now). */
  modification?: Date | number
  /** Use this expiry instead of the stored `_session_expiry`. */
  expiry?: number | string | Date | null
}

/**
 * A visitor's session: Django's `SessionBase`. Data is held in a prototype-free `Map`, so
 * `__proto__`, `constructor`, `get` and `save` are ordinary keys.
 *
 * Synchronous accessors need the data in memory. Adapters load it before the handler runs
 * whenever the request carries a session cookie; with the `lazy` setting, call
 * `await session.load()` first or use the awaited twins (`aget`, `aset`, …), as Django 5's
 * async API. A sync accessor on a session that is not loaded throws `SessionNotLoaded`.
 */
export class Session<T extends object = SessionData> {
  /** Set by every access to the data. Django: `accessed`. The middleware adds `Vary: Cookie` when true. */
  accessed = false
  /**
   * Set by every change. Django: `modified`. Mutating a nested value does not set it:
   * set `session.modified = true` yourself, as in Django.
   */
  modified = false

  readonly #backend: SessionHost
  /** The request this session belongs to, set by the middleware core (see {@link OWNER}). */
  [OWNER]: object | null = null
  #key: string | null
  #data: SessionMap | null = null
  /** The stored version this request loaded or last wrote (compare-and-set), if the engine keeps one. */
  #version: string | null = null
  #loading: Promise<void> | null = null
  /** Releases the session lock this request holds (`lock()`), or `null`. */
  #release: ReleaseLock | null = null
  #locking: Promise<void> | null = null

  /**
   * A session on `key`, not loaded yet. A key the engine could not have issued (for server
   * engines: not 8–40 characters of `[a-z0-9]`) is dropped: it is never looked up or adopted.
   * Django: `SessionStore(session_key)`.
   */
  constructor(backend: SessionHost, key?: string | null) {
    this.#backend = backend
    this.#key = key && Session.#validKey(backend, key) ? key : null
  }

  static #validKey(backend: SessionHost, key: string): boolean {
    const engine = backend.engine
    return engine?.validKey ? engine.validKey(key) : isServerKey(key)
  }

  /** The session key, `null` until the session is saved or when it was not found. Read-only. Django: `session_key`. */
  get sessionKey(): string | null {
    return this.#key
  }

  /** Whether the data has been loaded into memory. */
  get isLoaded(): boolean {
    return this.#data !== null
  }

  #engine(): Promise<Engine> | Engine {
    return this.#backend.engine ?? this.#backend.ready()
  }

  #now(): number {
    return this.#backend.settings.now()
  }

  /** The data, marking the session accessed. Django: `_get_session()`. */
  #session(): SessionMap {
    this.accessed = true
    if (this.#data === null) {
      if (this.#key !== null) throw new SessionNotLoaded()
      this.#data = new Map()
    }
    return this.#data
  }

  /**
   * Read the session from the store, once; later calls return at once. An unknown or expired
   * key leaves an empty session with no key: a fresh key is made on the next save, and
   * nothing is written now (Django CVE-2015-5143). Does not mark the session accessed.
   * Django: the lazy load behind `_get_session()`.
   */
  load(): Promise<void> {
    if (this.#data !== null) return Promise.resolve()
    if (this.#key === null) {
      this.#data = new Map()
      return Promise.resolve()
    }
    this.#loading ??= this.#load(this.#key).finally(() => {
      this.#loading = null
    })
    return this.#loading
  }

  async #load(key: string, fresh = false): Promise<void> {
    const engine = await this.#engine()
    const stored = loaded(await engine.load(key, fresh ? { fresh } : undefined))
    if (this.#data !== null) return // cleared or replaced while the store answered
    // Past the absolute timeout: no live session, whatever the engine's idle expiry says.
    const result = stored !== null && this.#pastAbsoluteAge(stored.data) ? null : stored
    if (result === null) this.#key = null
    this.#data = result?.data ?? new Map()
    this.#version = result?.version ?? null
  }

  /** The end of the absolute timeout of `data`, in ms; `null` without `absoluteAge` or a creation time. */
  #absoluteDeadline(data: SessionMap): number | null {
    const age = this.#backend.settings.absoluteAge
    const created = data.get(CREATED_KEY)
    if (age === null || age === undefined || created === undefined) return null
    // Anything but a number (only the app could have written it: the data is signed) fails closed.
    return typeof created === 'number' && Number.isFinite(created) ? (created + age) * 1000 : Number.NEGATIVE_INFINITY
  }

  #pastAbsoluteAge(data: SessionMap): boolean {
    const deadline = this.#absoluteDeadline(data)
    return deadline !== null && this.#now() >= deadline
  }

  /**
   * When the `absoluteAge` setting ends this session, or `null` (setting off, or the session not
   * saved since it was turned on). No Django equivalent.
   */
  getAbsoluteExpiryDate(): Date | null {
    const deadline = this.#absoluteDeadline(this.#session())
    return deadline === null ? null : new Date(deadline)
  }

  /** The value under `key`, or `defaultValue` (default `undefined`). Django: `get(key, default=None)`. */
  get<K extends SessionKey<T>>(key: K): T[K] | undefined
  get<K extends SessionKey<T>, D>(key: K, defaultValue: D): Exclude<T[K], undefined> | D
  get(key: string, defaultValue?: unknown): unknown {
    const data = this.#session()
    return data.has(key) ? data.get(key) : defaultValue
  }

  /** Store `value` (any JSON-serialisable value) under `key`. Django: `session[key] = value`. */
  set<K extends SessionKey<T>>(key: K, value: T[K]): void {
    if (value === undefined) {
      throw new TypeError(`sessionkit: cannot store undefined under ${JSON.stringify(key)}; use session.delete(key)`)
    }
    this.#session().set(key, value)
    this.modified = true
  }

  /**
   * Remove `key`; returns whether it was there. Sets `modified` only if it was.
   * Django: `del session[key]` (which raises `KeyError` for a missing key; this returns `false`, as `Map#delete`).
   */
  delete(key: SessionKey<T>): boolean {
    const removed = this.#session().delete(key)
    if (removed) this.modified = true
    return removed
  }

  /** Whether `key` is set. Django: `key in session`. */
  has(key: SessionKey<T>): boolean {
    return this.#session().has(key)
  }

  /** The keys, in insertion order. Django: `keys()`. */
  keys(): SessionKey<T>[] {
    return [...this.#session().keys()] as SessionKey<T>[]
  }

  /** The values, in insertion order. Django: `values()`. */
  values(): T[SessionKey<T>][] {
    return [...this.#session().values()] as T[SessionKey<T>][]
  }

  /** `[key, value]` pairs, in insertion order. Django: `items()`. */
  entries(): [SessionKey<T>, T[SessionKey<T>]][] {
    return [...this.#session().entries()] as [SessionKey<T>, T[SessionKey<T>]][]
  }

  /**
   * Remove `key` and return its value, or `defaultValue` when absent. `modified` is set only
   * when the key was there. Django: `pop(key[, default])` (a missing key without a default
   * raises `KeyError` there; here it returns `undefined`).
   */
  pop<K extends SessionKey<T>>(key: K): T[K] | undefined
  pop<K extends SessionKey<T>, D>(key: K, defaultValue: D): Exclude<T[K], undefined> | D
  pop(key: string, defaultValue?: unknown): unknown {
    const data = this.#session()
    if (!data.has(key)) return defaultValue
    const value = data.get(key)
    data.delete(key)
    this.modified = true
    return value
  }

  /** The value under `key`; if absent, store `value` and return it (only then is `modified` set). Django: `setdefault`. */
  setDefault<K extends SessionKey<T>>(key: K, value: T[K]): T[K] {
    const data = this.#session()
    if (data.has(key)) return data.get(key) as T[K]
    this.set(key, value)
    return value
  }

  /** Store every entry of `values`; always sets `modified`, even for `{}`. Django: `update(dict)`. */
  update(values: Partial<T> | Iterable<readonly [SessionKey<T>, T[SessionKey<T>]]>): void {
    const data = this.#session()
    const pairs = Symbol.iterator in values ? values : Object.entries(values)
    for (const [key, value] of pairs as Iterable<readonly [string, unknown]>) {
      if (value === undefined) throw new TypeError(`sessionkit: cannot store undefined under ${JSON.stringify(key)}`)
      data.set(key, value)
    }
    this.modified = true
  }

  /** Empty the session without reading the store. Sets `accessed` and `modified`. Django: `clear()`. */
  clear(): void {
    this.#data = new Map()
    this.accessed = true
    this.modified = true
  }

  /** True when the session has no key and no data. Does not load. Django: `is_empty()`. */
  isEmpty(): boolean {
    return this.#key === null && (this.#data === null || this.#data.size === 0)
  }

  /** Django: `set_test_cookie()`. */
  setTestCookie(): void {
    this.#session().set(TEST_COOKIE_NAME, TEST_COOKIE_VALUE)
    this.modified = true
  }

  /** Django: `test_cookie_worked()`. */
  testCookieWorked(): boolean {
    return this.#session().get(TEST_COOKIE_NAME) === TEST_COOKIE_VALUE
  }

  /** Django: `delete_test_cookie()` (a missing test cookie is not an error here). */
  deleteTestCookie(): void {
    if (this.#session().delete(TEST_COOKIE_NAME)) this.modified = true
  }

  /**
   * Set this session's expiry, stored in `_session_expiry` as Django stores it:
   * - a number of seconds `N` > 0 (or < 0): expires `N` seconds after the last save (sliding);
   * - `0`: the cookie expires when the browser closes (the server keeps `cookieAge`);
   * - a `Date`: a fixed point in time, stored as Python's ISO format (Django ≥ 4.1);
   * - `null`: back to the global policy (`cookieAge`, `expireAtBrowserClose`).
   * Django: `set_expiry(value)`.
   */
  setExpiry(value: number | Date | null): void {
    if (value === null) {
      this.#session()
      this.delete(EXPIRY_KEY as SessionKey<T>)
      return
    }
    let stored: number | string
    if (value instanceof Date) {
      if (Number.isNaN(value.getTime())) throw new TypeError('sessionkit: setExpiry() got an invalid Date')
      stored = toPythonIso(value)
    } else if (typeof value === 'number' && Number.isSafeInteger(value)) {
      stored = value
    } else {
      throw new TypeError(`sessionkit: setExpiry() takes whole seconds, a Date or null, got ${String(value)}`)
    }
    this.#session().set(EXPIRY_KEY, stored)
    this.modified = true
  }

  #expiry(options: ExpiryOptions): unknown {
    return 'expiry' in options ? options.expiry : this.#session().get(EXPIRY_KEY)
  }

  /**
   * Seconds until the session expires, counted from `modification` (default now), floored as
   * Django does. `0` or no expiry gives `cookieAge`. Django: `get_expiry_age(**kwargs)`.
   */
  getExpiryAge(options: ExpiryOptions = {}): number {
    const expiry = this.#expiry(options)
    const fixed = fixedExpiry(expiry)
    if (fixed === null) return relativeExpiry(expiry) ?? this.#backend.settings.cookieAge
    return Math.floor((fixed - toMillis(options.modification ?? this.#now())) / 1000)
  }

  /** When the session expires (see `expiresAt` in `expiry.ts`). Django: `get_expiry_date(**kwargs)`. */
  getExpiryDate(options: ExpiryOptions = {}): Date {
    const expiry = this.#expiry(options)
    if (expiry instanceof Date) return expiry
    return new Date(expiresAt(expiry, toMillis(options.modification ?? this.#now()), this.#backend.settings.cookieAge))
  }

  /** Whether the cookie should expire when the browser closes. Django: `get_expire_at_browser_close()`. */
  getExpireAtBrowserClose(): boolean {
    const expiry = this.#session().get(EXPIRY_KEY)
    if (expiry === undefined || expiry === null) return this.#backend.settings.expireAtBrowserClose
    return expiry === 0
  }

  #saveOptions(mustCreate: boolean, expected: string | null): SaveOptions {
    const now = this.#now()
    const expireDate = this.getExpiryDate({ modification: now })
    const expiryAge = this.getExpiryAge({ modification: now })
    // The store never keeps a session past its absolute timeout.
    const deadline = this.#absoluteDeadline(this.#data ?? new Map())
    if (deadline !== null && deadline < expireDate.getTime()) {
      return { mustCreate, expected, expireDate: new Date(Math.max(deadline, 0)), expiryAge: Math.floor((deadline - now) / 1000) }
    }
    return { mustCreate, expected, expireDate, expiryAge }
  }

  /**
   * Persist the session. Without a key, create one (a fresh random key, retried on the
   * rare collision). With `mustCreate`, throw `CreateError` if the key exists; otherwise
   * throw `UpdateError` if the stored session is gone (never resurrect a deleted session).
   *
   * Django: `SessionBase.save(must_create=False)`.
   */
  async save(mustCreate = false): Promise<void> {
    if (this.#key === null) return this.#create()
    if (!mustCreate) {
      await this.load()
      // The key was unknown or expired: Django's forced UPDATE fails the same way. Never resurrect.
      if (this.#key === null) throw new UpdateError()
    }
    const data = this.#data ?? new Map()
    this.#data = data
    this.accessed = true
    const absoluteAge = this.#backend.settings.absoluteAge
    if (absoluteAge !== null && absoluteAge !== undefined && !data.has(CREATED_KEY)) data.set(CREATED_KEY, Math.floor(this.#now() / 1000))
    const engine = await this.#engine()
    for (let merges = 0; ; merges++) {
      const expected = mustCreate ? null : this.#version
      try {
        this.#saved(await engine.save(this.#key, this.#data, this.#saveOptions(mustCreate, expected)))
        return
      } catch (error) {
        // A lost compare-and-set: reload, re-apply this request's own changes, try again.
        if (!(error instanceof UpdateError) || expected === null) throw error
        if (merges >= MERGE_ATTEMPTS) throw new ConflictError(merges)
        if (merges > 0) await backoff(merges)
        const current = loaded(await engine.load(this.#key, { fresh: true }))
        if (current === null) throw error // deleted meanwhile (a logout): never resurrect
        const base = engine.versionData ? engine.versionData(expected) : this.#backend.codec.decode(expected, engine.name)
        this.#data = mergeSessions(base, this.#data, current.data)
        this.#version = current.version
      }
    }
  }

  #saved(result: SavedSession | string): void {
    if (typeof result === 'string') {
      this.#key = result
      this.#version = null
    } else {
      this.#key = result.key
      this.#version = result.version
    }
  }

  /** Save under a new random key, retrying on collision. Django: `create()`. */
  async #create(): Promise<void> {
    const previous = this.#key
    try {
      for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
        this.#key = newSessionKey()
        try {
          await this.save(true)
        } catch (error) {
          if (error instanceof CreateError) continue
          throw error
        }
        this.modified = true
        return
      }
    } catch (error) {
      this.#key = previous
      throw error
    }
    this.#key = previous
    throw new CreateError(`sessionkit: no free session key after ${CREATE_ATTEMPTS} attempts; the store keeps answering that keys exist`)
  }

  /** Whether a session exists under `key`. Django: `exists(session_key)`. */
  async exists(key: string): Promise<boolean> {
    return (await this.#engine()).exists(key)
  }

  /**
   * Delete the stored session under `key` (default: this session's key); a no-op without a
   * key. The in-memory data is left alone; `flush()` is the logout. Django: `SessionBase.delete(session_key=None)`.
   */
  async destroy(key?: string): Promise<void> {
    const target = key ?? this.#key
    if (target === null || target === undefined) return
    await (await this.#engine()).delete(target)
  }

  /**
   * Log out: empty the session, delete it from the store and drop the key; the middleware
   * then deletes the cookie. Django: `flush()`.
   */
  async flush(): Promise<void> {
    this.clear()
    await this.destroy()
    this.#key = null
    this.#version = null
  }

  /**
   * Keep the data under a new key and delete the old one: call it on login (session-fixation
   * defence). Django: `cycle_key()`.
   */
  async cycleKey(): Promise<void> {
    await this.load()
    const data = this.#session()
    const previous = this.#key
    await this.#create()
    this.#data = data
    if (previous !== null) {
      const engine = await this.#engine()
      if (previous !== this.#key) await engine.delete(previous)
    }
  }

  /** Whether this request holds the session's lock (`lock()`). */
  get locked(): boolean {
    return this.#release !== null
  }

  /**
   * Serialize this request with the other requests of the same session that lock it: wait
   * until no other request holds the session's lock (at most `waitMs`, default the
   * `lockWaitMs` setting, then `SessionLocked`, 503), take it for at most `ttlMs` (default
   * `lockTtlMs`), and **reload** the session, since what was loaded before may be stale. The
   * middleware releases the lock when the request ends, after the save (also when it fails,
   * or the response is a 5xx); `unlock()` releases it earlier. Routes that do not lock are
   * not blocked: their saves stay compare-and-set. Laravel: `Route::…->block()`.
   *
   * Call it first, before changing the session: a session already modified throws (its
   * changes would be based on data that may be stale). A session without a key (a new
   * visitor: no one else can be using it) takes no lock. A second call is a no-op.
   * An engine without locks (`signed_cookies`, a custom engine) throws `NotSupported`.
   */
  lock(options: Partial<LockOptions> = {}): Promise<void> {
    if (this.#release !== null) return Promise.resolve()
    this.#locking ??= this.#lock(options).finally(() => {
      this.#locking = null
    })
    return this.#locking
  }

  async #lock(options: Partial<LockOptions>): Promise<void> {
    const settings = this.#backend.settings
    const lockOptions = checkLockOptions({ waitMs: options.waitMs ?? settings.lockWaitMs, ttlMs: options.ttlMs ?? settings.lockTtlMs })
    if (this.modified) throw new LockOrderError()
    const engine = await this.#engine()
    if (typeof engine.lock !== 'function') {
      throw new NotSupported(`sessionkit: session.lock() needs an engine with session locks (Engine.lock); the ${engine.name} engine has none`)
    }
    if (this.#loading) await this.#loading.catch(() => undefined)
    const key = this.#key
    if (key === null) return // a new session: no other request can be using it
    const release = await engine.lock(key, lockOptions)
    this.#release = release
    if (this.modified) {
      await this.unlock()
      throw new LockOrderError()
    }
    // What was loaded before the lock may be stale: read the store again, past any cache.
    this.#data = null
    this.#version = null
    await this.#load(key, true)
    // The session is gone (a logout in the request we waited for): nothing left to serialize.
    if (this.#key === null) await this.unlock()
  }

  /**
   * Release the session lock now instead of at the end of the request; a no-op without one.
   * Changes made afterwards are still saved at the end, by compare-and-set.
   */
  async unlock(): Promise<void> {
    const release = this.#release
    this.#release = null
    if (release !== null) await release()
  }

  /** Delete expired sessions from the store; the count, or `null` where the engine expires them itself. Django: `clear_expired()`. */
  async clearExpired(onProgress?: (deleted: number) => void): Promise<number | null> {
    return (await this.#engine()).clearExpired(onProgress)
  }

  /** Awaited `get`: loads first. Django 5.1: `aget`. */
  async aget<K extends SessionKey<T>>(key: K): Promise<T[K] | undefined>
  async aget<K extends SessionKey<T>, D>(key: K, defaultValue: D): Promise<Exclude<T[K], undefined> | D>
  async aget(key: string, defaultValue?: unknown): Promise<unknown> {
    await this.load()
    return (this.get as (k: string, d?: unknown) => unknown)(key, defaultValue)
  }

  /** Awaited `set`. Django 5.1: `aset`. */
  async aset<K extends SessionKey<T>>(key: K, value: T[K]): Promise<void> {
    await this.load()
    this.set(key, value)
  }

  /** Awaited `has`. Django 5.1: `ahas_key`. */
  async ahas(key: SessionKey<T>): Promise<boolean> {
    await this.load()
    return this.has(key)
  }

  /** Awaited `delete`. */
  async adelete(key: SessionKey<T>): Promise<boolean> {
    await this.load()
    return this.delete(key)
  }

  /** Awaited `pop`. Django 5.1: `apop`. */
  async apop<K extends SessionKey<T>>(key: K, ...defaultValue: [] | [T[K]]): Promise<T[K] | undefined> {
    await this.load()
    return (this.pop as (k: string, ...d: unknown[]) => T[K] | undefined)(key, ...defaultValue)
  }

  /** Awaited `setDefault`. Django 5.1: `asetdefault`. */
  async asetDefault<K extends SessionKey<T>>(key: K, value: T[K]): Promise<T[K]> {
    await this.load()
    return this.setDefault(key, value)
  }

  /** Awaited `update`. Django 5.1: `aupdate`. */
  async aupdate(values: Partial<T>): Promise<void> {
    await this.load()
    this.update(values)
  }

  /** Awaited `keys`. Django 5.1: `akeys`. */
  async akeys(): Promise<SessionKey<T>[]> {
    await this.load()
    return this.keys()
  }

  /** Awaited `values`. Django 5.1: `avalues`. */
  async avalues(): Promise<T[SessionKey<T>][]> {
    await this.load()
    return this.values()
  }

  /** Awaited `entries`. Django 5.1: `aitems`. */
  async aentries(): Promise<[SessionKey<T>, T[SessionKey<T>]][]> {
    await this.load()
    return this.entries()
  }

  /** Awaited `setExpiry`. Django 5.1: `aset_expiry`. */
  async asetExpiry(value: number | Date | null): Promise<void> {
    await this.load()
    this.setExpiry(value)
  }
}

function toMillis(value: Date | number): number {
  return typeof value === 'number' ? value : value.getTime()
}
