/**
 * The storage interface every engine implements: Django's six `SessionBase` storage hooks
 * (`exists`, `create`/`save`, `delete`, `load`, `clear_expired`), async, with the session
 * held by `Session` and passed in as a `Map`.
 */
import type { Settings } from './settings.js'
import type { LockOptions, ReleaseLock } from './lock.js'

export type { LockOptions, ReleaseLock } from './lock.js'

/** Session data as engines see it: a `Map` in insertion order (a Python dict). */
export type SessionMap = Map<string, unknown>

/**
 * A loaded session with its version: the stored string exactly as the codec wrote it
 * (`session_data`). Engines that can compare-and-set return it; `save` gets it back as
 * `expected`.
 */
export interface LoadedSession {
  data: SessionMap
  version: string
}

/** What a save wrote: the key the cookie must carry and the new version (`null` when the engine keeps none). */
export interface SavedSession {
  key: string
  version: string | null
}

/** Options of `load`. */
export interface LoadOptions {
  /** Read the authoritative store, past any cache in front of it (after a conflict). */
  fresh?: boolean
}

/** What `save` needs besides the data. */
export interface SaveOptions {
  /** Create only: throw `CreateError` if the key is taken. Otherwise update only: throw `UpdateError` if the session is gone. */
  mustCreate: boolean
  /**
   * For an update: the version this request loaded. An engine that supports it writes only
   * if the stored version is still this one (compare-and-set) and throws `UpdateError`
   * otherwise; the session then reloads, merges its own changes and retries. `null` or
   * absent: write unconditionally (Django's behaviour).
   */
  expected?: string | null
  /** When the session expires on the server (Django's `get_expiry_date()`). */
  expireDate: Date
  /** Seconds from now until then (Django's `get_expiry_age()`); may be ≤ 0. */
  expiryAge: number
}

/** What `clearExpired` reports while it works. */
export type ClearProgress = (deletedSoFar: number) => void

/**
 * A session store. One instance serves every request; it must be safe for concurrent use.
 *
 * Contract (Django's `SessionBase` hooks):
 * - `load(key)` returns the stored data, or `null` when there is no live session under that
 *   key (missing or expired). Undecodable data is an empty `Map` (the codec logs it), not an error.
 *   Store failures (connection refused, disk error) throw.
 * - `save(key, data, { mustCreate, expected })` persists the session and returns the key the
 *   cookie must carry (server-side engines return `key`; the signed-cookies engine returns the
 *   signed data), with the new version when the engine keeps one. With `mustCreate`, throw
 *   `CreateError` if the key exists; otherwise throw `UpdateError` if it is gone — a session
 *   deleted meanwhile is never resurrected — or, when `expected` is given, if the stored
 *   version is no longer `expected`.
 *
 * Compare-and-set is a capability: an engine whose `load` returns a `LoadedSession` (data
 * and version) must honour `expected` in the same statement or command as the write (no
 * extra round trip); one that returns a bare `Map` gets no `expected` and keeps Django's
 * last-write-wins.
 * - `exists(key)`: is there a session under that key.
 * - `delete(key)`: remove it; a missing key is not an error.
 * - `clearExpired(onProgress?)`: delete expired sessions and return how many, or `null`
 *   when the engine expires sessions by itself (cache TTLs, signed cookies).
 * - `close()`: release connections and handles; idempotent.
 *
 * Session locks are a capability too (`session.lock()`, Laravel's `->block()`):
 * - `lock(key, { waitMs, ttlMs })` resolves with a release function once this caller holds
 *   the lock of session `key`; it rejects with `SessionLocked` after `waitMs` while another
 *   caller holds it. A lock expires by itself `ttlMs` after it was taken (real time, not
 *   `settings.now`), so a holder that died never blocks the session for longer; a waiter
 *   then takes it over. The release deletes the lock only if it still holds this caller's
 *   token (a lock that expired and was taken by another caller is left alone). The lock is
 *   independent of the session's data: it may be taken for a key with no session, and it
 *   never blocks `load`, `save` (compare-and-set) or `delete` — only other `lock` calls.
 *   Engines without it make `session.lock()` throw `NotSupported`.
 */
export interface Engine {
  /** A short name for logs and errors, e.g. `db:sqlite`. */
  readonly name: string
  /**
   * `true` when the cookie carries the data itself (signed cookies): there is no server-side
   * record, so an unreadable cookie is reported by the engine (tampered or corrupt) and an
   * expired one is not suspicious. Default `false`.
   */
  readonly clientSide?: boolean
  /**
   * Whether `key` is a key this engine could have issued. A malformed key from a client is
   * never looked up. Default (server-side engines): 8 to 40 characters of `[a-z0-9]`.
   */
  validKey?(key: string): boolean
  load(key: string, options?: LoadOptions): Promise<LoadedSession | SessionMap | null>
  exists(key: string): Promise<boolean>
  save(key: string, data: SessionMap, options: SaveOptions): Promise<SavedSession | string>
  delete(key: string): Promise<void>
  clearExpired(onProgress?: ClearProgress): Promise<number | null>
  /**
   * The data a version of this engine stands for: the base of the merge after a lost
   * compare-and-set. Default: the codec decodes it (versions are the signed `session_data`).
   * Engines whose versions are something else (Django's pickled cache entries) provide it.
   */
  versionData?(version: string): SessionMap
  /** Take the lock of session `key` (see the contract above). Optional. */
  lock?(key: string, options: LockOptions): Promise<ReleaseLock>
  /** Create what the engine needs in its store (the `django_session` table); idempotent. */
  migrate?(): Promise<void>
  close(): Promise<void>
}

/** Encodes and decodes stored session data (`codec.ts` makes the one sessionkit uses). */
export interface SessionCodec {
  /** Django: `SessionBase.encode(session_dict)`. */
  encode(data: SessionMap): string
  /**
   * Django: `SessionBase.decode(session_data)`. Never throws: a bad signature is reported
   * as `tampered` (and logged once as Django's "Session data corrupted"), an undecodable
   * payload as `corrupt`; both give an empty `Map`.
   */
  decode(encoded: string, engine: string): SessionMap
}

/** What an engine factory receives. */
export interface EngineContext {
  /** The resolved, frozen settings. */
  settings: Readonly<Settings>
  /** Encodes and decodes `session_data` exactly as Django's `SessionBase.encode/decode`. */
  codec: SessionCodec
}

/** Builds an engine; may be async (opening a database). Plug a custom engine in as `settings.engine`. */
export type EngineFactory = (context: EngineContext) => Engine | Promise<Engine>
