/**
 * Cryptographic signing, wire-compatible with `django.core.signing` (Django ≥ 4.0 rules:
 * SHA-256 signatures only, `fallbackKeys` as in 4.1's `SECRET_KEY_FALLBACKS`).
 *
 * Import from `sessionkit/signing`.
 *
 * Format of a timestamped signed object:
 * `<b64url(json) | "." b64url(zlib(json))>:<base62(unix seconds)>:<b64url(HMAC)>`.
 *
 * @example
 * ```ts
 * import { TimestampSigner } from 'sessionkit/signing'
 * const signer = new TimestampSigner({ key: process.env.SECRET_KEY!, salt: 'django.contrib.sessions.SessionStore' })
 * const value = signer.signObject(new Map([['cart', [1, 2]]]), { compress: true })
 * signer.unsignObject(value, { maxAge: 1209600 }) // { cart: [1, 2] }
 * ```
 */
import { createHash, createHmac, timingSafeEqual, type Hmac } from 'node:crypto'
import { kMaxLength } from 'node:buffer'
import { deflateSync, inflateSync } from 'node:zlib'
import { BadPayload, BadSignature, SignatureExpired } from './errors.js'
import { JSONSerializer, type Serializer } from './serializers.js'

export { BadPayload, BadSignature, SignatureExpired } from './errors.js'
export { JSONSerializer, type Serializer } from './serializers.js'

/** A secret: a string (hashed as UTF-8) or raw bytes. Django: `SECRET_KEY` (str or bytes). */
export type SecretKey = string | Buffer

/**
 * The cap on the size of a decompressed payload when no `maxDecompressedBytes` is given:
 * 1 MiB. A compressed payload that inflates past it is refused with `BadPayload` before
 * more memory is spent. Django has no cap.
 */
export const DEFAULT_MAX_DECOMPRESSED_BYTES = 1048576

// ---------------------------------------------------------------------------- base62

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const B62_INDEX = new Int8Array(128).fill(-1)
for (let i = 0; i < 62; i++) B62_INDEX[B62.charCodeAt(i)] = i

/**
 * Base62 of a safe integer (digits, then upper case, then lower case); negatives get a
 * leading `-`, 0 is `"0"`. Throws `TypeError` for anything but a safe integer.
 *
 * Django: `django.core.signing.b62_encode`.
 */
export function b62Encode(n: number): string {
  if (!Number.isSafeInteger(n)) throw new TypeError(`sessionkit: b62Encode needs a safe integer, got ${n}`)
  if (n === 0) return '0'
  const sign = n < 0 ? '-' : ''
  if (n < 0) n = -n
  let s = ''
  while (n > 0) {
    s = B62[n % 62] + s
    n = Math.floor(n / 62)
  }
  return sign + s
}

/**
 * Inverse of {@link b62Encode}. Throws `BadPayload` for an empty string, a character
 * outside the alphabet, or a result beyond `Number.MAX_SAFE_INTEGER`.
 *
 * Django: `django.core.signing.b62_decode` (which raises `ValueError`).
 */
export function b62Decode(s: string): number {
  let i = s.charCodeAt(0) === 45 ? 1 : 0
  if (i >= s.length) throw new BadPayload(`sessionkit: invalid base62 number "${s}"`)
  let n = 0
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i)
    const d = c < 128 ? B62_INDEX[c]! : -1
    if (d < 0) throw new BadPayload(`sessionkit: invalid base62 number "${s}"`)
    n = n * 62 + d
  }
  if (n > Number.MAX_SAFE_INTEGER) throw new BadPayload(`sessionkit: base62 number "${s}" is too large`)
  if (n === 0) return 0
  return s.charCodeAt(0) === 45 ? -n : n
}

// ---------------------------------------------------------------------------- base64

const B64URL = /^[A-Za-z0-9_-]*$/

/**
 * URL-safe base64 (`-` and `_`) without `=` padding.
 *
 * Django: `django.core.signing.b64_encode` (returns bytes there).
 */
export function b64Encode(buf: Uint8Array): string {
  return (Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)).toString(
    'base64url',
  )
}

/**
 * Inverse of {@link b64Encode}. Strict: throws `BadPayload` for any character outside
 * `A-Z a-z 0-9 - _` (padding included) and for a length that no encoding produces.
 *
 * Django: `django.core.signing.b64_decode`, which silently skips stray characters.
 */
export function b64Decode(s: string): Buffer {
  if (s.length % 4 === 1 || !B64URL.test(s)) {
    throw new BadPayload('sessionkit: invalid URL-safe base64')
  }
  return Buffer.from(s, 'base64url')
}

// ---------------------------------------------------------------------------- HMAC

function deriveKey(algorithm: string, keySalt: string | Buffer, secret: SecretKey): Buffer {
  return createHash(algorithm).update(keySalt).update(secret).digest()
}

/**
 * An HMAC of `value` keyed with `H(keySalt ‖ secret)` (strings as UTF-8), ready for
 * `.digest()`. The default algorithm is sha1, as in Django; `Signer` passes sha256.
 *
 * Django: `django.utils.crypto.salted_hmac(key_salt, value, secret, algorithm=...)`.
 */
export function saltedHmac(
  keySalt: string | Buffer,
  value: string | Buffer,
  secret: SecretKey,
  algorithm = 'sha1',
): Hmac {
  return createHmac(algorithm, deriveKey(algorithm, keySalt, secret)).update(value)
}

/**
 * `b64Encode(saltedHmac(salt, value, key, algorithm).digest())`.
 *
 * Django: `django.core.signing.base64_hmac`.
 */
export function base64Hmac(salt: string, value: string | Buffer, key: SecretKey, algorithm: string): string {
  return saltedHmac(salt, value, key, algorithm).digest('base64url')
}

// ---------------------------------------------------------------------------- Signer

/** Options of {@link Signer}. Django: the keyword arguments of `Signer.__init__`. */
export interface SignerOptions {
  /** The secret. Required: sessionkit reads no global settings. Django: `SECRET_KEY`. */
  key: SecretKey
  /** Separator between value and signature; default `":"`. Must not match `^[A-z0-9-_=]*$`. */
  sep?: string
  /** Namespace of the signature; default `"django.core.signing.Signer"` (or `…TimestampSigner`). An empty salt means the default, as in Django. */
  salt?: string
  /** Hash of the HMAC; default `"sha256"`. Any `node:crypto` digest name. */
  algorithm?: string
  /** Older secrets still accepted by `unsign` (never used to sign); default `[]`. Django: `SECRET_KEY_FALLBACKS`. */
  fallbackKeys?: readonly SecretKey[]
}

/** Options of {@link Signer.signObject}. Django: `sign_object(obj, serializer, compress)`. */
export interface SignObjectOptions {
  /** Default {@link JSONSerializer}. */
  serializer?: Serializer
  /** zlib-compress the payload when that saves at least 2 bytes (flagged by a leading `.`); default `false`. */
  compress?: boolean
}

/** Options of {@link Signer.unsignObject}. Django: `unsign_object(signed_obj, serializer)` (no cap there). */
export interface UnsignObjectOptions {
  /** Default {@link JSONSerializer}. */
  serializer?: Serializer
  /** Cap on the inflated size of a compressed payload; default {@link DEFAULT_MAX_DECOMPRESSED_BYTES}. `Infinity` disables it. */
  maxDecompressedBytes?: number
}

/** Options of {@link TimestampSigner.unsignObject}. Django: `unsign_object(..., max_age=None)`. */
export interface TimestampUnsignObjectOptions extends UnsignObjectOptions {
  /** Refuse with `SignatureExpired` when signed more than this many seconds ago; default: no limit. */
  maxAge?: number
}

/** Payloads shorter than this are never compressed (see `signObject`). */
const COMPRESS_MIN_BYTES = 64

const SEP_UNSAFE = /^[A-z0-9-_=]*$/

function checkKey(key: unknown, name: string): SecretKey {
  if ((typeof key === 'string' || Buffer.isBuffer(key)) && key.length > 0) return key
  throw new TypeError(`sessionkit: ${name} must be a non-empty string or Buffer`)
}

/**
 * Signs strings with `HMAC(H(salt + "signer" + key), value)` and verifies them against the
 * key and every fallback key, in constant time. The derived HMAC keys are computed once,
 * here, so build one signer per (key, salt) and reuse it on the hot path.
 *
 * Throws `TypeError` at construction for a missing key, an unsafe separator or an
 * unknown algorithm.
 *
 * Django: `django.core.signing.Signer`.
 */
export class Signer {
  /** Default salt when none is given. Django: the class's dotted path. */
  static readonly defaultSalt: string = 'django.core.signing.Signer'

  readonly sep: string
  readonly salt: string
  readonly algorithm: string
  readonly #key: SecretKey
  readonly #fallbackKeys: readonly SecretKey[]
  readonly #keySalt: string
  /** Derived keys of `[key, ...fallbackKeys]`, in that order. */
  readonly #derived: readonly Buffer[]

  constructor(options: SignerOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('sessionkit: Signer needs an options object with a `key`')
    }
    const { sep = ':', salt, algorithm = 'sha256', fallbackKeys = [] } = options
    this.#key = checkKey(options.key, 'Signer key')
    if (typeof sep !== 'string' || SEP_UNSAFE.test(sep)) {
      throw new TypeError(
        `sessionkit: Unsafe Signer separator: ${JSON.stringify(sep)} (cannot be empty or consist of only A-z0-9-_=)`,
      )
    }
    if (salt !== undefined && typeof salt !== 'string') throw new TypeError('sessionkit: Signer salt must be a string')
    if (!Array.isArray(fallbackKeys)) throw new TypeError('sessionkit: Signer fallbackKeys must be an array')
    this.#fallbackKeys = Object.freeze(fallbackKeys.map((k, i) => checkKey(k, `Signer fallbackKeys[${i}]`)))
    this.sep = sep
    this.salt = salt || (new.target as typeof Signer).defaultSalt
    this.algorithm = algorithm
    this.#keySalt = this.salt + 'signer'
    try {
      this.#derived = Object.freeze(
        [this.#key, ...this.#fallbackKeys].map((k) => deriveKey(algorithm, this.#keySalt, k)),
      )
    } catch (cause) {
      throw new TypeError(`sessionkit: Signer algorithm ${JSON.stringify(algorithm)} is not supported by node:crypto`, {
        cause,
      })
    }
  }

  #mac(derived: Buffer, value: string): string {
    return createHmac(this.algorithm, derived).update(value).digest('base64url')
  }

  /**
   * The base64url HMAC of `value` under `key` (default: the signer's key; the cached
   * derived key is used for the signer's own keys).
   *
   * Django: `Signer.signature(value, key=None)`.
   */
  signature(value: string, key?: SecretKey): string {
    let derived = this.#derived[0]!
    if (key !== undefined && key !== this.#key) {
      const i = this.#fallbackKeys.indexOf(key)
      derived = i >= 0 ? this.#derived[i + 1]! : deriveKey(this.algorithm, this.#keySalt, checkKey(key, 'key'))
    }
    return this.#mac(derived, value)
  }

  /** `value + sep + signature(value)`. Django: `Signer.sign`. */
  sign(value: string): string {
    return `${value}${this.sep}${this.#mac(this.#derived[0]!, value)}`
  }

  /**
   * The value of `signed` if its signature matches the key or a fallback key. Throws
   * `BadSignature` when there is no separator or no key matches.
   *
   * Django: `Signer.unsign`.
   */
  unsign(signed: string): string {
    if (typeof signed !== 'string') throw new BadSignature('Signed value must be a string')
    const i = signed.lastIndexOf(this.sep)
    if (i < 0) throw new BadSignature(`No "${this.sep}" found in value`)
    const value = signed.slice(0, i)
    const sig = signed.slice(i + this.sep.length)
    const given = Buffer.from(sig)
    for (const derived of this.#derived) {
      const expected = Buffer.from(this.#mac(derived, value), 'latin1')
      // Compare the base64 text, as Django does: a non-canonical last character that
      // decodes to the same bytes is still a different signature.
      if (given.length === expected.length) {
        if (timingSafeEqual(given, expected)) return value
      } else {
        timingSafeEqual(expected, expected) // same work either way
      }
    }
    throw new BadSignature(`Signature "${sig}" does not match`)
  }

  /**
   * Serialise `obj`, optionally compress it, base64 it and sign it. With `compress`, zlib
   * (deflate, default level) is kept only when it saves at least 2 bytes, and flagged by
   * a leading `.` inside the signed text. Node's zlib may produce different (equally
   * valid) compressed bytes than Python's, so compressed values are not byte-identical
   * to Django's; uncompressed ones are.
   *
   * Django: `Signer.sign_object(obj, serializer=JSONSerializer, compress=False)`.
   */
  signObject(obj: unknown, options: SignObjectOptions = {}): string {
    return this.signPayload((options.serializer ?? JSONSerializer).dumps(obj), options.compress === true)
  }

  /**
   * {@link signObject} after serialisation: base64 (and, with `compress`, maybe zlib) and sign
   * the serialised bytes `data`. Lets a caller keep the bytes it signed (the session codec
   * remembers them, see `createCodec`).
   */
  signPayload(data: Buffer, compress = false): string {
    // Below 64 bytes zlib's 6 bytes of framing all but never pay for themselves: skip the
    // work (about 12 µs a save). Django decodes either form.
    if (compress && data.length >= COMPRESS_MIN_BYTES) {
      const compressed = deflateSync(data)
      if (compressed.length < data.length - 1) return this.sign('.' + compressed.toString('base64url'))
    }
    return this.sign(data.toString('base64url'))
  }

  /**
   * Verify `signed` and decode the object in it. Throws `BadSignature` when the signature
   * does not verify, and `BadPayload` (with `cause`) when it verifies but the payload is
   * not valid base64, zlib or JSON, or inflates past `maxDecompressedBytes`.
   *
   * Django: `Signer.unsign_object(signed_obj, serializer=JSONSerializer)`.
   */
  unsignObject(signed: string, options: UnsignObjectOptions = {}): unknown {
    return readPayload(this.unsignPayload(signed, options), options)
  }

  /**
   * {@link unsignObject} before deserialisation: the verified, inflated serialised bytes.
   * Throws as `unsignObject` does, except for a payload the serializer cannot read.
   */
  unsignPayload(signed: string, options: UnsignObjectOptions = {}): Buffer {
    return payloadOf(this.unsign(signed), options)
  }
}

function capOf(max: number | undefined): number {
  if (max === undefined) return DEFAULT_MAX_DECOMPRESSED_BYTES
  if (max === Infinity) return kMaxLength
  if (Number.isSafeInteger(max) && max >= 1) return Math.min(max, kMaxLength)
  throw new TypeError(`sessionkit: maxDecompressedBytes must be a positive integer or Infinity, got ${max}`)
}

/** The serialised bytes of a payload whose signature checked out: base64, then zlib when flagged. */
function payloadOf(text: string, options: UnsignObjectOptions): Buffer {
  const compressed = text.charCodeAt(0) === 46 // '.'
  const data = b64Decode(compressed ? text.slice(1) : text)
  if (!compressed) return data
  const maxOutputLength = capOf(options.maxDecompressedBytes)
  try {
    return inflateSync(data, { maxOutputLength })
  } catch (cause) {
    const tooLarge = (cause as { code?: unknown } | null)?.code === 'ERR_BUFFER_TOO_LARGE'
    throw new BadPayload(
      tooLarge
        ? `sessionkit: compressed payload inflates past maxDecompressedBytes (${maxOutputLength})`
        : 'sessionkit: invalid zlib data in signed payload',
      { cause },
    )
  }
}

/**
 * The object in serialised bytes (a `Buffer`, or the same bytes as latin1 text, which the JSON
 * serializer parses without a copy); `BadPayload` when the serializer cannot read them.
 * @internal shared with the session codec (src/codec.ts), not part of the public API.
 */
export function readPayload(data: Buffer | string, options: UnsignObjectOptions): unknown {
  const serializer = options.serializer ?? JSONSerializer
  try {
    if (typeof data !== 'string') return serializer.loads(data)
    return serializer === JSONSerializer ? JSON.parse(data) : serializer.loads(Buffer.from(data, 'latin1'))
  } catch (cause) {
    throw new BadPayload('sessionkit: signed payload could not be deserialised', { cause })
  }
}

// ---------------------------------------------------------------------------- TimestampSigner

/** Options of {@link TimestampSigner}. Django reads `time.time()`; sessionkit injects the clock. */
export interface TimestampSignerOptions extends SignerOptions {
  /** The clock, in **milliseconds** since the epoch; default `Date.now`. Timestamps are whole seconds. */
  now?: () => number
}

/** A verified value and the time it was signed, in whole seconds since the epoch. Django has no equivalent (it drops the timestamp). */
export interface Timestamped<T> {
  value: T
  timestamp: number
}

/**
 * A {@link Signer} that appends the signing time (base62 seconds) before signing, and can
 * refuse signatures older than `maxAge` seconds (`age > maxAge`; equal passes).
 *
 * Django: `django.core.signing.TimestampSigner`.
 */
export class TimestampSigner extends Signer {
  static override readonly defaultSalt: string = 'django.core.signing.TimestampSigner'

  readonly #now: () => number

  constructor(options: TimestampSignerOptions) {
    super(options)
    const now = options.now ?? Date.now
    if (typeof now !== 'function') throw new TypeError('sessionkit: TimestampSigner now must be a function')
    this.#now = now
  }

  /** base62 of the current whole second. Django: `TimestampSigner.timestamp()`. */
  timestamp(): string {
    return b62Encode(Math.trunc(this.#now() / 1000))
  }

  /** `value + sep + timestamp`, then signed. Django: `TimestampSigner.sign`. */
  override sign(value: string): string {
    return super.sign(`${value}${this.sep}${this.timestamp()}`)
  }

  /**
   * Like {@link TimestampSigner.unsign}, also returning when the value was signed.
   * Throws `BadSignature`, `SignatureExpired` (age > maxAge), or `BadPayload` when a
   * valid signature covers no readable timestamp.
   */
  unsignWithTimestamp(signed: string, maxAge?: number): Timestamped<string> {
    const result = super.unsign(signed)
    const i = result.lastIndexOf(this.sep)
    if (i < 0) throw new BadPayload('sessionkit: signed value has no timestamp')
    const timestamp = b62Decode(result.slice(i + this.sep.length))
    if (maxAge !== undefined) {
      if (typeof maxAge !== 'number' || Number.isNaN(maxAge)) {
        throw new TypeError(`sessionkit: maxAge must be a number of seconds, got ${String(maxAge)}`)
      }
      const age = this.#now() / 1000 - timestamp
      if (age > maxAge) throw new SignatureExpired(`Signature age ${age} > ${maxAge} seconds`)
    }
    return { value: result.slice(0, i), timestamp }
  }

  /**
   * The signed value, refused with `SignatureExpired` when older than `maxAge` seconds.
   *
   * Django: `TimestampSigner.unsign(value, max_age=None)`.
   */
  override unsign(signed: string, maxAge?: number): string {
    return this.unsignWithTimestamp(signed, maxAge).value
  }

  /** Django: `TimestampSigner.unsign_object(signed_obj, max_age=...)`. See {@link Signer.unsignObject}. */
  override unsignObject(signed: string, options: TimestampUnsignObjectOptions = {}): unknown {
    return super.unsignObject(signed, options) // unsignPayload, overridden below, checks maxAge
  }

  /** {@link Signer.unsignPayload}, with `maxAge` checked. */
  override unsignPayload(signed: string, options: TimestampUnsignObjectOptions = {}): Buffer {
    return payloadOf(this.unsignWithTimestamp(signed, options.maxAge).value, options)
  }

  /**
   * Like {@link TimestampSigner.unsignObject}, also returning the signing time in seconds
   * (the signed_cookies engine measures the session's age from it).
   */
  unsignObjectWithTimestamp(signed: string, options: TimestampUnsignObjectOptions = {}): Timestamped<unknown> {
    const { value, timestamp } = this.unsignWithTimestamp(signed, options.maxAge)
    return { value: readPayload(payloadOf(value, options), options), timestamp }
  }
}

// ---------------------------------------------------------------------------- dumps / loads

/** Options of {@link dumps}. Django: the keyword arguments of `signing.dumps`; `key` is required here. */
export interface DumpsOptions {
  key: SecretKey
  /** Default `"django.core.signing"`. */
  salt?: string
  serializer?: Serializer
  /** Default `false`. */
  compress?: boolean
  /** Clock in milliseconds; default `Date.now`. */
  now?: () => number
}

/** Options of {@link loads}. Django: the keyword arguments of `signing.loads`; `key` is required here. */
export interface LoadsOptions {
  key: SecretKey
  /** Default `"django.core.signing"`. */
  salt?: string
  serializer?: Serializer
  /** Seconds; default: no limit. */
  maxAge?: number
  /** Default `[]`. */
  fallbackKeys?: readonly SecretKey[]
  /** Clock in milliseconds; default `Date.now`. */
  now?: () => number
  /** Default {@link DEFAULT_MAX_DECOMPRESSED_BYTES} (1 MiB); Django has no cap. */
  maxDecompressedBytes?: number
}

/**
 * A URL-safe, timestamped, signed (and optionally compressed) serialisation of `obj`.
 * Builds a new signer per call: on a hot path, keep a {@link TimestampSigner} instead.
 *
 * Django: `django.core.signing.dumps(obj, key, salt="django.core.signing", serializer, compress=False)`.
 */
export function dumps(obj: unknown, options: DumpsOptions): string {
  const { key, salt = 'django.core.signing', serializer, compress = false, now } = options
  return new TimestampSigner({ key, salt, now }).signObject(obj, { serializer, compress })
}

/**
 * The inverse of {@link dumps}. Throws `BadSignature`, `SignatureExpired` or `BadPayload`.
 *
 * Django: `django.core.signing.loads(s, key, salt="django.core.signing", serializer, max_age=None, fallback_keys=None)`.
 */
export function loads(s: string, options: LoadsOptions): unknown {
  const { key, salt = 'django.core.signing', fallbackKeys = [], now, ...rest } = options
  return new TimestampSigner({ key, salt, fallbackKeys, now }).unsignObject(s, rest)
}
