/**
 * The framework-neutral middleware core: Django's `SessionMiddleware`. Adapters hand it the
 * request's `Cookie` header and the response status; it decides when to load, save, set or
 * delete the cookie, and nothing else does.
 *
 * An adapter calls three things: {@link Sessions.start} when the request comes in,
 * {@link Sessions.finish} when the handler is done (Django's `process_response`), and
 * {@link Sessions.abandon} when the handler threw and the adapter answers without `finish`.
 * Layers above the core (messages, compat, users) add their own end-of-request work to a
 * request with {@link RequestExtension}s, without the core knowing them.
 */
import { parseCookie } from 'cookie'
import { SessionError, SessionInterrupted, StoreUnavailable, UpdateError, SessionDataError } from './errors.js'
import { createCodec, type SessionCodec } from './codec.js'
import { redactSessionKeys } from './redact.js'
import { reportSuspicious } from './suspicious.js'
import { resolveSettings, type Settings } from './settings.js'
import { OWNER, Session, type SessionData, type SessionHost } from './session.js'
import { createEngine } from './engines/index.js'
import type { Engine } from './engine.js'

/** Django's deletion date for cookies. */
const EPOCH = 'Thu, 01 Jan 1970 00:00:00 GMT'

/**
 * Work a layer above the core attaches to one request (messages, compat, users): the core runs
 * it at the end of the request without importing the layer. None by default. Django: the
 * `process_response` of a middleware listed after `SessionMiddleware` (as `MessageMiddleware`
 * is), which runs before the session middleware saves.
 */
export interface RequestExtension {
  /**
   * Called by the core's end of request ({@link Sessions.finish}) once the handler is done and
   * BEFORE the session is saved, whatever the status (a layer decides itself what to skip on a
   * 5xx). It may change the session — its changes are saved by this same end of request — and
   * returns `Set-Cookie` values to add to the response (or `null`). A rejection fails the
   * request as a failed save would (the adapter answers through `sessionFailure`).
   */
  finish(request: RequestSession<any>, status: number): readonly string[] | null | Promise<readonly string[] | null>
}

/** One request's session, as the core tracks it between `start` and `finish`. */
export interface RequestSession<T extends object = SessionData> {
  readonly session: Session<T>
  /** The request carried a cookie with the session cookie's name (valid or not). */
  readonly hadCookie: boolean
  /** The request's `Cookie` header as the adapter handed it to the core (layers read their own cookies from it). */
  readonly cookieHeader: string | undefined
  /**
   * Layers' end-of-request work, in the order added; `null` until a layer adds one (no cost for
   * a request that uses no layer). Add with `(request.extensions ??= []).push(extension)`.
   */
  extensions: RequestExtension[] | null
}

/**
 * The request `session` belongs to, for a layer that has only the session (`req.session`,
 * `ctx.session`, …): `null` for a session made outside a request (`sessions.session()`).
 * No Django equivalent (there the layer has the request itself).
 */
export function requestSessionOf<T extends object>(session: Session<T>): RequestSession<T> | null {
  return (session[OWNER] as RequestSession<T> | null | undefined) ?? null
}

/** What the adapter must write on the response. */
export interface ResponseDecision {
  /** Add `Cookie` to `Vary` (see {@link patchVary}). */
  vary: boolean
  /** The session's `Set-Cookie` header value to append, or `null`. */
  setCookie: string | null
  /**
   * The layers' `Set-Cookie` values ({@link RequestExtension}), appended after `setCookie`, or
   * `null`. Always present in what `finish()` returns; optional so that adapters can build a
   * decision of their own.
   */
  cookies?: readonly string[] | null
  /**
   * A `Cache-Control` value to set, replacing the handler's, or `null` to leave it alone.
   * `'private, no-store'` when the `cacheControl` setting is on and `setCookie` is not `null`.
   * Always present in what `finish()` returns; optional so that adapters can build a decision
   * of their own (`{ vary: true, setCookie: null }`).
   */
  cacheControl?: string | null
}

/** What the `cacheControl` setting puts on responses that set or delete the session cookie. */
export const NO_STORE = 'private, no-store'

/**
 * `Vary` with `Cookie` added unless present (case-insensitive); `*` stays `*`.
 * Django: `patch_vary_headers(response, ("Cookie",))`.
 */
export function patchVary(existing: string | readonly string[] | number | undefined | null): string {
  if (existing === undefined || existing === null || existing === '') return 'Cookie'
  const fields = (Array.isArray(existing) ? existing.join(',') : String(existing))
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean)
  if (fields.includes('*')) return '*'
  if (fields.some((f) => f.toLowerCase() === 'cookie')) return fields.join(', ')
  return [...fields, 'Cookie'].join(', ')
}

/**
 * The sessions of one application: settings, engine, and the request/response logic.
 * Make one with {@link createSessions} and share it; adapters wrap it.
 */
export class Sessions<T extends object = SessionData> implements SessionHost {
  readonly settings: Readonly<Settings>
  /** The codec of `session_data` (Django's `SessionBase.encode/decode`). */
  readonly codec: SessionCodec
  #engine: Engine | null = null
  readonly #ready: Promise<Engine>
  readonly #setCookieHead: string
  readonly #setCookieTail: string
  readonly #deleteCookie: string
  /** The expiry attributes made last (see `#expiryAttributes`). */
  #lastExpiry: { second: number; maxAge: number; text: string } | null = null

  constructor(settings: Partial<Settings> | Readonly<Settings>) {
    // Always validated: a frozen object is not necessarily a resolved one. Resolving resolved settings is cheap and idempotent.
    this.settings = resolveSettings(settings)
    const s = this.settings
    this.codec = createCodec(s)
    const made = createEngine(s, this.codec)
    if (made instanceof Promise) {
      this.#ready = made.then((engine) => (this.#engine = engine))
      // Reported by ready() and by requests; keep an unobserved rejection from crashing the process.
      this.#ready.catch(() => undefined)
    } else {
      this.#engine = made
      this.#ready = Promise.resolve(made)
    }
    // Attribute order is Django's (Python's Morsel sorts them): Domain, expires, HttpOnly, Max-Age, Path, SameSite, Secure.
    const domain = s.cookieDomain === null ? '' : `; Domain=${s.cookieDomain}`
    const sameSite = s.cookieSameSite === false ? '' : `; SameSite=${s.cookieSameSite}`
    const partitioned = s.cookiePartitioned ? '; Partitioned' : ''
    this.#setCookieHead = domain
    this.#setCookieTail = `; Path=${s.cookiePath}${sameSite}${s.cookieSecure ? '; Secure' : ''}${partitioned}`
    // Django's delete_cookie: no HttpOnly; Secure for __Secure-/__Host- names or SameSite=None
    // (and here also when cookieSecure is on); Partitioned must match or the browser keeps the cookie.
    const deleteSecure = s.cookieSecure || /^__(Secure|Host)-/.test(s.cookieName) || s.cookieSameSite === 'None'
    this.#deleteCookie =
      `${s.cookieName}=""${domain}; expires=${EPOCH}; Max-Age=0; Path=${s.cookiePath}${sameSite}` +
      `${deleteSecure ? '; Secure' : ''}${partitioned}`
  }

  /** The engine, or `null` while an asynchronous engine is still opening. */
  get engine(): Engine | null {
    return this.#engine
  }

  /** Resolves to the engine once it is open; rejects with the reason it could not open. */
  ready(): Promise<Engine> {
    return this.#ready
  }

  /** A session on `key` (or a new one), outside any request: for scripts and tests. Django: `SessionStore(key)`. */
  session(key?: string | null): Session<T> {
    return new Session<T>(this, key)
  }

  /** Create the engine's storage (the `django_session` table); idempotent. Django: `manage.py migrate`. */
  async migrate(): Promise<void> {
    const engine = await this.#ready
    await engine.migrate?.()
  }

  /** Delete expired sessions. Django: `clearsessions`. */
  async clearExpired(onProgress?: (deleted: number) => void): Promise<number | null> {
    return (await this.#ready).clearExpired(onProgress)
  }

  /** Close the engine (pools, handles). */
  async close(): Promise<void> {
    const engine = await this.#ready.catch(() => null)
    await engine?.close()
  }

  /** The session cookie's value in a `Cookie` header; first one wins; spaces and tabs trimmed. */
  cookieValue(cookieHeader: string | null | undefined): string | undefined {
    if (!cookieHeader || !cookieHeader.includes(this.settings.cookieName)) return undefined
    return parseCookie(cookieHeader)[this.settings.cookieName]
  }

  /**
   * Start a request: read the session cookie and, unless `lazy`, load the session when there
   * is one (a request without a session cookie costs no store round trip). Django:
   * `process_request`. Synchronous when there is nothing to wait for (the engine is open and
   * the request has no session key, or the session is `lazy`); a promise only when the engine
   * is still opening or the session must be loaded first, so an adapter can skip a promise (and
   * a tick) on the cheap paths. Never throws: failures reject the promise (a store failure is
   * `StoreUnavailable`, 503, logged).
   */
  start(cookieHeader: string | null | undefined): RequestSession<T> | Promise<RequestSession<T>> {
    if (this.#engine === null) return this.#wrap(this.#ready, 'open').then(() => this.start(cookieHeader))
    const value = this.cookieValue(cookieHeader)
    const hadCookie = value !== undefined
    const session = new Session<T>(this, value)
    const request: RequestSession<T> = { session, hadCookie, cookieHeader: cookieHeader ?? undefined, extensions: null }
    session[OWNER] = request
    const key = session.sessionKey
    if (key === null) {
      if (value !== undefined && value !== '') {
        reportSuspicious(this.settings, { kind: 'malformed-key', engine: this.#engine.name, detail: `cookie value of ${value.length} characters is not a session key` })
      }
      return request
    }
    if (this.settings.lazy) return request
    return this.#wrap(session.load(), 'load', key).then(() => {
      if (session.sessionKey === null && !this.#engine!.clientSide) {
        reportSuspicious(this.settings, { kind: 'unknown-key', engine: this.#engine!.name, detail: 'no live session under the cookie key' })
      }
      return request
    })
  }

  /** {@link start}, always as a promise. @deprecated Use `start()`; this name goes in the next release. */
  async begin(cookieHeader: string | null | undefined): Promise<RequestSession<T>> {
    return this.start(cookieHeader)
  }

  /**
   * Finish a request: Django's `process_response`, after the layers' work. First every
   * {@link RequestExtension} of the request runs, in order (it may change the session and add
   * cookies). Then the core decides `Vary: Cookie`, deletes the cookie of an emptied session,
   * and saves a modified (or, with `saveEveryRequest`, any) non-empty session and sets its
   * cookie — unless `status` ≥ 500. A session deleted meanwhile by a concurrent request throws
   * `SessionInterrupted` (400); a store failure `StoreUnavailable` (503); a layer's failure
   * whatever it threw. A session lock the request holds (`session.lock()`) is released
   * afterwards, whatever the outcome (a failed save, a 5xx status).
   *
   * Synchronous when there is nothing to wait for — no extension, no lock, and nothing to load
   * or save (the session was not modified, nor `saveEveryRequest`, or is empty, or the status is
   * ≥ 500) — so an adapter finishes an untouched request without a promise. Adapters append
   * `setCookie`, then `cookies`, in that order (`appendSetCookies` in `adapters/prologue.ts`).
   */
  finish(request: RequestSession<T>, status: number): ResponseDecision | Promise<ResponseDecision> {
    // `!`, not `=== null`: a request built by hand (older code) may have no `extensions` at all.
    if (!request.extensions) {
      const quick = this.#quick(request, status)
      if (quick !== null) return quick
    }
    return this.#finish(request, status)
  }

  async #finish(request: RequestSession<T>, status: number): Promise<ResponseDecision> {
    try {
      const cookies = request.extensions ? await this.#extend(request, request.extensions, status) : null
      const decision = await this.#end(request, status)
      decision.cookies = cookies
      return decision
    } finally {
      if (request.session.locked) await this.#unlock(request.session)
    }
  }

  /** Run the request's extensions in order (one added meanwhile runs too); their cookies, or `null`. */
  async #extend(request: RequestSession<T>, extensions: readonly RequestExtension[], status: number): Promise<readonly string[] | null> {
    let cookies: string[] | null = null
    for (let i = 0; i < extensions.length; i++) {
      const added = await extensions[i]!.finish(request, status)
      if (added !== null && added.length > 0) (cookies ??= []).push(...added)
    }
    return cookies
  }

  /** {@link finish}, always as a promise. @deprecated Use `finish()`; this name goes in the next release. */
  async end(request: RequestSession<T>, status: number): Promise<ResponseDecision> {
    return this.finish(request, status)
  }

  /**
   * The decision of `finish()` when it is synchronous, else `null`.
   * @deprecated Use `finish()`, which is synchronous exactly then; this name goes in the next release.
   */
  quickEnd(request: RequestSession<T>, status: number): ResponseDecision | null {
    return request.extensions ? null : this.#quick(request, status)
  }

  /**
   * The request died before `finish()` (its handler threw and the adapter does not answer
   * through `finish()`): release what it holds — its session lock — without saving anything
   * or running its extensions. Idempotent; `finish()` needs no `abandon()`.
   */
  async abandon(request: RequestSession<T>): Promise<void> {
    if (request.session.locked) await this.#unlock(request.session)
  }

  /** Release the session's lock; a failure is logged, never thrown (the lock expires by itself after its ttl). */
  async #unlock(session: Session<T>): Promise<void> {
    try {
      await session.unlock()
    } catch (error) {
      if (error instanceof SessionError && !(error instanceof StoreUnavailable)) {
        this.settings.logger.error(`releasing the session lock failed (it expires by itself): ${error.message}`)
      } else {
        this.#storeError(error, 'release a session lock (it expires by itself)', session.sessionKey)
      }
    }
  }

  /**
   * The decision when it needs no store call — the session was not modified (nor
   * `saveEveryRequest`), or is empty, or the status is ≥ 500, and no lock is held — else `null`.
   */
  #quick(request: RequestSession<T>, status: number): ResponseDecision | null {
    const { session, hadCookie } = request
    if (session.locked) return null
    const empty = session.isEmpty()
    if (!empty && (session.modified || this.settings.saveEveryRequest) && status < 500) return null
    if (hadCookie && empty) return this.#decision(true, this.#deleteCookie)
    return this.#decision(session.accessed, null)
  }

  async #end(request: RequestSession<T>, status: number): Promise<ResponseDecision> {
    const quick = this.#quick(request, status)
    if (quick) return quick
    const { session, hadCookie } = request
    const accessed = session.accessed
    const modified = session.modified
    let empty = session.isEmpty()
    if (!empty && (modified || this.settings.saveEveryRequest) && status < 500) {
      // Django loads here too (get_expire_at_browser_close); an unknown key becomes empty, and
      // unlike Django nothing is then created for it.
      if (!session.isLoaded) await this.#wrap(session.load(), 'load', session.sessionKey)
      empty = session.isEmpty()
    }
    if (hadCookie && empty) return this.#decision(true, this.#deleteCookie)
    if (!(modified || this.settings.saveEveryRequest) || empty || status >= 500) {
      return this.#decision(accessed, null)
    }
    const browserClose = session.getExpireAtBrowserClose()
    const previousKey = session.sessionKey
    try {
      await session.save()
    } catch (error) {
      if (error instanceof UpdateError) throw new SessionInterrupted()
      throw this.#storeError(error, 'save', previousKey)
    }
    const key = session.sessionKey!
    let expiry = ''
    if (!browserClose) {
      // Never longer than the absolute timeout, when there is one.
      const absolute = session.getAbsoluteExpiryDate()
      const idle = session.getExpiryAge()
      const maxAge = absolute === null ? idle : Math.min(idle, Math.max(0, Math.floor((absolute.getTime() - this.settings.now()) / 1000)))
      expiry = this.#expiryAttributes(maxAge)
    } else if (this.settings.cookieHttpOnly) {
      expiry = '; HttpOnly'
    }
    return this.#decision(true, `${this.settings.cookieName}=${key}${this.#setCookieHead}${expiry}${this.#setCookieTail}`)
  }

  /**
   * `; expires=…; HttpOnly; Max-Age=…` for a cookie living `maxAge` seconds from now. Reused
   * within the same clock second for the same whole `maxAge` (the text is the same then).
   */
  #expiryAttributes(maxAge: number): string {
    const now = this.settings.now()
    const second = Math.floor(now / 1000)
    const last = this.#lastExpiry
    if (last !== null && last.second === second && last.maxAge === maxAge && Number.isInteger(maxAge)) return last.text
    const expires = new Date(now + maxAge * 1000).toUTCString()
    const text = `; expires=${expires}${this.settings.cookieHttpOnly ? '; HttpOnly' : ''}; Max-Age=${maxAge}`
    this.#lastExpiry = { second, maxAge, text }
    return text
  }

  #decision(vary: boolean, setCookie: string | null): ResponseDecision {
    return { vary, setCookie, cookies: null, cacheControl: setCookie !== null && this.settings.cacheControl ? NO_STORE : null }
  }

  async #wrap<R>(promise: Promise<R>, what: string, key?: string | null): Promise<R> {
    try {
      return await promise
    } catch (error) {
      throw this.#storeError(error, what, key)
    }
  }

  /**
   * Session keys are cut out of the message (`redactSessionKeys`): a store's error may quote
   * `key`, or a fresh key the middleware never saw (a failed create), which the store may hold
   * all the same (a write that timed out after it landed).
   */
  #storeError(error: unknown, what: string, key?: string | null): unknown {
    if (error instanceof SessionError && !(error instanceof StoreUnavailable)) return error
    const redact = (text: string): string => redactSessionKeys(text, key)
    if (what === 'save' && (error instanceof TypeError || error instanceof RangeError)) {
      // Thrown by the serializer (a value JSON cannot hold, or nesting past the stack): the
      // application's data, not the store, is at fault.
      const wrapped = new SessionDataError(`sessionkit: the session data cannot be saved: ${redact(error.message)}`, { cause: error })
      this.settings.logger.error(wrapped.message)
      return wrapped
    }
    const name = this.#engine?.name ?? String(this.settings.engine)
    const reason = redact(error instanceof Error ? error.message : String(error))
    const wrapped = error instanceof StoreUnavailable ? error : new StoreUnavailable(`sessionkit: session store ${name} failed to ${what}: ${reason}`, { cause: error })
    this.settings.logger.error(redact(wrapped.message))
    return wrapped
  }
}

/**
 * Validate `settings` (Django's defaults fill the rest), open the engine and return the
 * sessions of the app. Throws `ImproperlyConfigured` at once on a bad setting; an engine
 * that opens asynchronously reports failure through `ready()` and every request.
 */
export function createSessions<T extends object = SessionData>(settings: Partial<Settings> | Readonly<Settings>): Sessions<T> {
  return new Sessions<T>(settings)
}
