/**
 * Micro-benchmarks, one process, no I/O: `node --import tsx micro.ts [--quick] [--json]`
 * (the runner calls it). Operations per second, the median of timed batches.
 *
 * - Signing: sessionkit's `dumps`/`loads` (Django's, a new signer per call), the same with
 *   a reused `TimestampSigner`, and the session codec (compressed, as every server-side
 *   engine stores data); against `cookie-signature` (express-session's cookie signature,
 *   HMAC-SHA256 of a string, no serialisation) and iron-session's `sealData`/`unsealData`.
 * - Cookie header parsing: `Sessions.cookieValue` (what every sessionkit request does)
 *   against `cookie.parse` (what express-session, cookie-session and @fastify/cookie do).
 */
import { performance } from 'node:perf_hooks'
import signature from 'cookie-signature'
import { parse as parseCookie } from 'cookie'
import { sealData, unsealData } from 'iron-session'
import { SECRET } from './lib/config.ts'
import { skCodec, skMiddleware, skSettings, skSigning } from './lib/sk.ts'

const { dumps, loads, Signer, TimestampSigner } = await skSigning()
const { createCodec } = await skCodec()
const { resolveSettings } = await skSettings()
const { Sessions } = await skMiddleware()

const quick = process.argv.includes('--quick')
const json = process.argv.includes('--json')
const TIME_MS = quick ? 300 : 1500
const BATCHES = quick ? 3 : 7

export interface MicroResult {
  group: string
  name: string
  ops_per_s: number
  /** What the numbers are to be compared with. */
  note?: string
}

let sink = 0
const keep = (x: unknown): void => {
  sink += typeof x === 'string' ? x.length : x ? 1 : 0
}

/** Median ops/s of `BATCHES` batches, each about `TIME_MS / BATCHES` long, after a warm-up. */
function bench(fn: () => unknown): number {
  const per = TIME_MS / BATCHES
  let n = 64
  for (let t0 = performance.now(); performance.now() - t0 < per; ) for (let i = 0; i < n; i++) keep(fn()) // warm-up
  const rates: number[] = []
  for (let b = 0; b < BATCHES; b++) {
    let count = 0
    const t0 = performance.now()
    let t = t0
    while (t - t0 < per) {
      for (let i = 0; i < n; i++) keep(fn())
      count += n
      t = performance.now()
    }
    rates.push((count / (t - t0)) * 1000)
    n = Math.max(16, Math.min(4096, Math.round(count / 20)))
  }
  return median(rates)
}

async function benchAsync(fn: () => Promise<unknown>): Promise<number> {
  const per = TIME_MS / BATCHES
  for (let t0 = performance.now(); performance.now() - t0 < per; ) keep(await fn())
  const rates: number[] = []
  for (let b = 0; b < BATCHES; b++) {
    let count = 0
    const t0 = performance.now()
    let t = t0
    while (t - t0 < per) {
      for (let i = 0; i < 16; i++) keep(await fn())
      count += 16
      t = performance.now()
    }
    rates.push((count / (t - t0)) * 1000)
  }
  return median(rates)
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]!
}

async function main(): Promise<void> {
  const results: MicroResult[] = []
  const add = (group: string, name: string, ops: number, note?: string) => {
    results.push({ group, name, ops_per_s: Math.round(ops), ...(note ? { note } : {}) })
    if (!json) console.log(`${group.padEnd(10)} ${name.padEnd(64)} ${Math.round(ops).toLocaleString('en-US').padStart(12)} ops/s`)
  }

  // A typical small session, as a Map (what sessionkit stores) and as an object (the others).
  const object = { _auth_user_id: '42', _auth_user_backend: 'django.contrib.auth.backends.ModelBackend', n: 17, cart: [1, 2, 3] }
  const map = new Map<string, unknown>(Object.entries(object))
  const salt = 'django.contrib.sessions.SessionStore'
  const key = 'abcdefghijklmnopqrstuvwxyz012345'

  // Signing a short string (a session key): the cookie signature of express-session, @fastify/session.
  const signer = new Signer({ key: SECRET, salt })
  const signedKey = signer.sign(key)
  const cookieSigned = signature.sign(key, SECRET)
  add('signing', 'sessionkit Signer.sign(session key)', bench(() => signer.sign(key)))
  add('signing', 'sessionkit Signer.unsign(session key)', bench(() => signer.unsign(signedKey)))
  add('signing', 'cookie-signature sign(session key)', bench(() => signature.sign(key, SECRET)))
  add('signing', 'cookie-signature unsign(session key)', bench(() => signature.unsign(cookieSigned, SECRET)))

  // Signing an object: Django's dumps/loads (JSON + base64 + timestamp + HMAC).
  const dumped = dumps(object, { key: SECRET, salt })
  add('signing', 'sessionkit dumps(object) (new signer per call, as Django)', bench(() => dumps(object, { key: SECRET, salt })))
  add('signing', 'sessionkit loads(object)', bench(() => loads(dumped, { key: SECRET, salt })))
  const ts = new TimestampSigner({ key: SECRET, salt })
  const tsSigned = ts.signObject(object)
  add('signing', 'sessionkit TimestampSigner.signObject (reused signer)', bench(() => ts.signObject(object)))
  add('signing', 'sessionkit TimestampSigner.unsignObject (reused signer)', bench(() => ts.unsignObject(tsSigned)))
  const codec = createCodec(resolveSettings({ secretKey: SECRET }))
  const encoded = codec.encode(map)
  add('signing', 'sessionkit codec.encode (compress: true, what engines store)', bench(() => codec.encode(map)))
  add('signing', 'sessionkit codec.decode', bench(() => codec.decode(encoded, 'micro')))
  const json1 = JSON.stringify(object)
  const cookieObject = signature.sign(json1, SECRET)
  add('signing', 'cookie-signature sign(JSON.stringify(object))', bench(() => signature.sign(JSON.stringify(object), SECRET)))
  add('signing', 'cookie-signature unsign + JSON.parse', bench(() => {
    const v = signature.unsign(cookieObject, SECRET)
    return v === false ? null : JSON.parse(v)
  }))
  const sealed = await sealData(object, { password: SECRET })
  add('signing', 'iron-session sealData(object) (AES-256-CBC + HMAC)', await benchAsync(() => sealData(object, { password: SECRET })))
  add('signing', 'iron-session unsealData(object)', await benchAsync(() => unsealData(sealed, { password: SECRET })))

  // Cookie headers, as browsers send them: the session cookie among others, and a header without it.
  const sessions = new Sessions({ secretKey: SECRET, engine: 'signed_cookies' })
  const header = `_ga=GA1.2.1234567890.1700000000; csrftoken=AbCdEfGhIjKlMnOpQrStUvWxYz012345; sessionid=${key}; theme=dark; _gid=GA1.2.987654321.1700000000`
  const without = '_ga=GA1.2.1234567890.1700000000; csrftoken=AbCdEfGhIjKlMnOpQrStUvWxYz012345; theme=dark'
  add('cookies', 'sessionkit Sessions.cookieValue (5 cookies)', bench(() => sessions.cookieValue(header)))
  add('cookies', 'cookie.parse(header).sessionid (5 cookies)', bench(() => parseCookie(header).sessionid))
  add('cookies', 'sessionkit Sessions.cookieValue (no session cookie)', bench(() => sessions.cookieValue(without)))
  add('cookies', 'cookie.parse(header).sessionid (no session cookie)', bench(() => parseCookie(without).sessionid))

  if (json) console.log(JSON.stringify({ time_ms: TIME_MS, batches: BATCHES, results }, null, 2))
  if (sink === -1) console.log(sink)
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
