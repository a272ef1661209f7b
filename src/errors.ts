/**
 * The errors sessionkit throws. Every one extends {@link SessionError} and carries a
 * stable `code`; assert on the class or the code, never on the message.
 *
 * Django keeps these names in `django.core.signing`, `django.contrib.sessions.backends.base`
 * and `django.contrib.sessions.exceptions`; the names are kept so users find them.
 */

/** Every `code` a {@link SessionError} carries, one per class below (subclasses share their base's unless they say otherwise). */
export type SessionErrorCode =
  | 'ERR_BAD_SIGNATURE'
  | 'ERR_SIGNATURE_EXPIRED'
  | 'ERR_BAD_PAYLOAD'
  | 'ERR_SESSION_CREATE'
  | 'ERR_SESSION_UPDATE'
  | 'ERR_SESSION_INTERRUPTED'
  | 'ERR_SESSION_CONFLICT'
  | 'ERR_SESSION_LOCKED'
  | 'ERR_SESSION_LOCK_ORDER'
  | 'ERR_SESSION_DATA'
  | 'ERR_INVALID_SESSION_KEY'
  | 'ERR_IMPROPERLY_CONFIGURED'
  | 'ERR_SESSION_TOO_LARGE'
  | 'ERR_STORE_UNAVAILABLE'
  | 'ERR_SESSION_NOT_LOADED'
  | 'ERR_NOT_SUPPORTED'
  | 'ERR_BAD_PICKLE'

/** Base class of every sessionkit error. `code` is stable across versions. */
export class SessionError extends Error {
  readonly code: SessionErrorCode
  /** The HTTP status an adapter answers with when this error escapes a request. */
  readonly status: number

  constructor(message: string, code: SessionErrorCode, status = 500, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.status = status
  }
}

/** A signature did not verify. Django: `django.core.signing.BadSignature`. */
export class BadSignature extends SessionError {
  constructor(message = 'Signature does not match', code: 'ERR_BAD_SIGNATURE' | 'ERR_SIGNATURE_EXPIRED' = 'ERR_BAD_SIGNATURE') {
    super(message, code, 400)
  }
}

/** A timestamped signature is older than `maxAge`. Django: `signing.SignatureExpired`. */
export class SignatureExpired extends BadSignature {
  constructor(message: string) {
    super(message, 'ERR_SIGNATURE_EXPIRED')
  }
}

/**
 * A signed payload verified but could not be decoded (bad base64, bad zlib, bad JSON, or
 * a compressed payload that inflates past the cap). Django swallows these silently.
 */
export class BadPayload extends SessionError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_BAD_PAYLOAD', 400, options)
  }
}

/** `save({ mustCreate: true })` found the key taken. Django: `backends.base.CreateError`. */
export class CreateError extends SessionError {
  constructor(message = 'A session with this key already exists') {
    super(message, 'ERR_SESSION_CREATE')
  }
}

/** An update found the stored session gone. Django: `backends.base.UpdateError`. */
export class UpdateError extends SessionError {
  constructor(message = 'The session no longer exists in the store') {
    super(message, 'ERR_SESSION_UPDATE')
  }
}

/**
 * The session was deleted by a concurrent request (a logout in another tab) while this
 * request ran; answered with 400 and never recreated. Django: `SessionInterrupted`.
 */
export class SessionInterrupted extends SessionError {
  constructor(
    message = "The request's session was deleted before the request completed. " +
      'The user may have logged out in a concurrent request, for example.',
  ) {
    super(message, 'ERR_SESSION_INTERRUPTED', 400)
  }
}

/**
 * A save kept losing the compare-and-set race: other requests changed the session every
 * time this one merged its changes and retried. Answered with 409; nothing was written.
 */
export class ConflictError extends SessionError {
  constructor(attempts: number) {
    super(`sessionkit: the session changed under ${attempts} merge attempts in a row; nothing was saved`, 'ERR_SESSION_CONFLICT', 409)
  }
}

/**
 * `session.lock()` waited `waitMs` for another request holding the session's lock, in vain.
 * Answered with 503: the client should retry (the other request may be long, or a holder that
 * died leaves the lock until its `ttlMs` runs out). Laravel: `LockTimeoutException` of `->block()`.
 */
export class SessionLocked extends SessionError {
  readonly waitMs: number
  constructor(waitMs: number) {
    super(
      `sessionkit: the session is locked by another request; waited ${waitMs} ms for it (retry later)`,
      'ERR_SESSION_LOCKED',
      503,
    )
    this.waitMs = waitMs
  }
}

/**
 * `session.lock()` was called after the session was changed: the changes would rest on data
 * loaded before the lock, which may be stale. Call `lock()` first. A bug in the application
 * (500), never a store failure. No Django equivalent (Django has no session locks).
 */
export class LockOrderError extends SessionError {
  constructor() {
    super(
      'sessionkit: session.lock() was called after the session was changed; call it first, ' +
        'before setting or deleting anything: the data loaded before the lock may be stale',
      'ERR_SESSION_LOCK_ORDER',
    )
  }
}

/**
 * The session holds a value that cannot be stored (JSON has no `undefined`, `BigInt`,
 * `Infinity`, and refuses absurd nesting): a bug in the application, not a store outage.
 * Answered with 500; nothing was written.
 */
export class SessionDataError extends SessionError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_SESSION_DATA', 500, options)
  }
}

/** A session key with characters outside `[a-z0-9]`. Django: `InvalidSessionKey`. */
export class InvalidSessionKey extends SessionError {
  constructor(message = 'Invalid characters in session key') {
    super(message, 'ERR_INVALID_SESSION_KEY', 400)
  }
}

/** A setting is missing or invalid. Thrown at start-up. Django: `ImproperlyConfigured`. */
export class ImproperlyConfigured extends SessionError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_IMPROPERLY_CONFIGURED', 500, options)
  }
}

/** A signed-cookie session would exceed what a browser keeps (4096 bytes for name and value). */
export class SessionTooLarge extends SessionError {
  readonly size: number
  constructor(size: number, limit: number) {
    super(
      `sessionkit: the signed session cookie would be ${size} bytes (name and value), ` +
        `over the ${limit}-byte limit browsers keep; store less in the session or use a server-side engine`,
      'ERR_SESSION_TOO_LARGE',
    )
    this.size = size
  }
}

/**
 * The session store failed (connection refused, timeout, disk error). Adapters answer 503
 * and log it: a store that is down never turns into a silent logout.
 */
export class StoreUnavailable extends SessionError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_STORE_UNAVAILABLE', 503, options)
  }
}

/**
 * Redis answered a `GET` with the value of another key: the connection lost track of its
 * replies (a command that timed out). Refused, never handed to a visitor; a 503 like any
 * store failure.
 */
export class RedisReplyMismatch extends StoreUnavailable {
  constructor() {
    super('sessionkit: Redis answered with the value of another key (the connection lost track of its replies); refused')
  }
}

/**
 * A synchronous accessor was used on a lazy session before it was loaded.
 */
export class SessionNotLoaded extends SessionError {
  constructor() {
    super(
      'sessionkit: the session is lazy and not loaded yet; `await req.session.load()` first, ' +
        'or use the awaited accessors (aget, aset, …), or turn off the `lazy` option',
      'ERR_SESSION_NOT_LOADED',
    )
  }
}

/** The engine does not support an operation. Django raises `NotImplementedError`. */
export class NotSupported extends SessionError {
  constructor(message: string) {
    super(message, 'ERR_NOT_SUPPORTED')
  }
}

/**
 * A pickle (Django's cache format) that sessionkit will not read: an opcode that imports or
 * calls code (`GLOBAL`, `REDUCE`, …), a type outside the JSON subset (bytes, set, datetime…),
 * or a malformed or oversized stream. Nothing in it was executed. Engines log it and treat the
 * entry as an unreadable session, never as a crash.
 */
export class PickleError extends SessionError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_BAD_PICKLE', 400, options)
  }
}
