/**
 * `session_data` as Django writes it: `signing.dumps(data, salt="django.contrib.sessions.SessionStore",
 * compress=True)`, read back without a max age (the store's expiry rules instead).
 */
import { BadSignature } from './errors.js'
import { b62Decode, readPayload, TimestampSigner } from './signing.js'
import { EXPIRY_KEY, expiresAt } from './expiry.js'
import { reportSuspicious } from './suspicious.js'
import type { Settings } from './settings.js'
import type { SessionCodec, SessionMap } from './engine.js'

export type { SessionCodec } from './engine.js'

/** Django's salt for every built-in server-side store: `"django.contrib.sessions." + "SessionStore"`. */
export const SESSION_STORE_SALT = 'django.contrib.sessions.SessionStore'

/** Cap on the inflated size of stored session data (16 MiB): far above any real session, far below a bomb. */
export const MAX_SESSION_DATA_BYTES = 16 * 1024 * 1024

/** Turn a decoded JSON object into session data, or `null` when it is not an object. */
export function toSessionMap(value: unknown): SessionMap | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null
  return new Map(Object.entries(value))
}

/** Entries and bytes of serialised data a codec remembers (see {@link createCodec}). */
const MEMO_MAX_ENTRIES = 4096
const MEMO_MAX_BYTES = 8 * 1024 * 1024
/** Larger payloads are not remembered: verifying them again costs little next to their size. */
const MEMO_MAX_ENTRY_BYTES = 64 * 1024

/**
 * The codec for `settings`, with the signer (and its derived keys) made once.
 *
 * It remembers the serialised bytes behind the signed strings it made or verified last (about the
 * last 2,048 to 4,096 of them, at most 8 MiB and 64 KiB each). Decoding a string it remembers
 * skips the HMAC check, base64 and zlib: the string is one this process signed with its own
 * key, or already verified, so it is authentic. A session saved and loaded again by the same
 * process — most requests — pays one `JSON.parse` to load. Nothing else changes: a string it
 * does not know is verified as always.
 */
export function createCodec(settings: Readonly<Settings>, salt = SESSION_STORE_SALT): SessionCodec {
  const signer = new TimestampSigner({
    key: settings.secretKey,
    salt,
    fallbackKeys: [...settings.secretKeyFallbacks],
    now: settings.now,
  })
  const serializer = settings.serializer
  // Two generations: new entries go to `young`; when it is full, it becomes `old` and the old
  // one is dropped whole (no per-entry eviction, which costs a scan over a Map's deleted slots).
  // Kept as latin1 text, not Buffers: a small Buffer is a slice of an 8 KiB pool it would pin.
  let young = new Map<string, string>()
  let old = new Map<string, string>()
  let youngBytes = 0
  const recall = (signed: string): string | undefined => young.get(signed) ?? old.get(signed)
  const remember = (signed: string, payload: Buffer): void => {
    if (payload.length > MEMO_MAX_ENTRY_BYTES || young.has(signed)) return
    const text = payload.toString('latin1')
    young.set(signed, text)
    youngBytes += signed.length + text.length
    if (young.size >= MEMO_MAX_ENTRIES / 2 || youngBytes >= MEMO_MAX_BYTES / 2) {
      old = young
      young = new Map()
      youngBytes = 0
    }
  }
  return {
    encode(data) {
      const payload = serializer.dumps(data)
      const signed = signer.signPayload(payload, true)
      remember(signed, payload)
      return signed
    },
    decode(encoded, engine) {
      try {
        const known = recall(encoded)
        const payload = known ?? signer.unsignPayload(encoded, { maxDecompressedBytes: MAX_SESSION_DATA_BYTES })
        const map = toSessionMap(readPayload(payload, { serializer }))
        if (map) {
          if (typeof payload !== 'string') remember(encoded, payload)
          return map
        }
        reportSuspicious(settings, { kind: 'corrupt', engine, detail: 'session data is not a JSON object' })
      } catch (error) {
        const tampered = error instanceof BadSignature
        reportSuspicious(settings, {
          kind: tampered ? 'tampered' : 'corrupt',
          engine,
          detail: tampered ? 'signature does not match' : `undecodable payload (${(error as Error).message})`,
        })
      }
      return new Map()
    },
  }
}

/**
 * The save time signed into a stored string (`payload:timestamp:signature`), in ms; `NaN` when
 * the string is not in the signed format (the codec has reported it already).
 */
export function signedAt(stored: string): number {
  const end = stored.lastIndexOf(':')
  const start = stored.lastIndexOf(':', end - 1)
  if (start < 0) return Number.NaN
  try {
    return b62Decode(stored.slice(start + 1, end)) * 1000
  } catch {
    return Number.NaN
  }
}

/**
 * When a stored session expires, in ms: {@link expiresAt} from the save time signed into the
 * stored string — what `expire_date` was computed from at the same save. `NaN` when unknown.
 * Cache-backed engines check it against `settings.now`, since the cache's own TTL runs on the
 * cache's clock.
 */
export function storedExpiresAt(stored: string, data: SessionMap, cookieAge: number): number {
  return expiresAt(data.get(EXPIRY_KEY), signedAt(stored), cookieAge)
}
