/**
 * Micro tests of the src-level fixes proposed in bench/analysis.md, each against what the
 * source does today, interleaved in one process: `node --import tsx experiments/fixes.ts`.
 * Nothing here changes src/; a proposal is measured by reimplementing the changed function.
 *
 * 1. `Signer.signObject(…, { compress: true })` (src/signing.ts) runs `deflateSync` on every
 *    save, and throws the result away when it does not save 2 bytes — always, for a small
 *    session. Proposed: skip zlib below 64 bytes of serialised data.
 * 2. `Sessions.cookieValue` (src/middleware.ts) parses the whole header into an object to read
 *    one cookie. Proposed: scan for the one name, with `cookie.parse`'s exact rules.
 *
 * The node:http adapter is measured apart, in plain JavaScript: experiments/node-adapter.mjs.
 * (The proposals here are compiled by tsx; they create no closure per call, so esbuild's
 * `keepNames` costs them nothing.)
 */
import { performance } from 'node:perf_hooks'
import { deflateSync } from 'node:zlib'
import { buildSessionkit } from '../lib/build.ts'
import { SECRET } from '../lib/config.ts'

process.env.BENCH_SESSIONKIT ??= buildSessionkit().dir
const { skCodec, skMiddleware, skSettings, skSigning } = await import('../lib/sk.ts')
const { createCodec } = await skCodec()
const { resolveSettings } = await skSettings()
const { TimestampSigner } = await skSigning()
const { Sessions } = await skMiddleware()

let sink = 0
function rate(fn: () => unknown, ms: number): number {
  let n = 0
  const t0 = performance.now()
  let t = t0
  while (t - t0 < ms) {
    for (let i = 0; i < 100; i++) {
      const r = fn()
      sink += typeof r === 'string' ? r.length : 1
    }
    n += 100
    t = performance.now()
  }
  return (n / (t - t0)) * 1000
}

/** Median ops/s of each function over `rounds` interleaved rounds (A B A B …). */
function compare(label: string, fns: Record<string, () => unknown>, rounds = 9, ms = 150): void {
  const rates: Record<string, number[]> = Object.fromEntries(Object.keys(fns).map((k) => [k, []]))
  for (const fn of Object.values(fns)) rate(fn, 100) // warm-up
  for (let r = 0; r < rounds; r++) for (const [k, fn] of Object.entries(fns)) rates[k]!.push(rate(fn, ms))
  console.log(`\n${label}`)
  const base = median(rates[Object.keys(fns)[0]!]!)
  for (const [k, xs] of Object.entries(rates)) {
    const m = median(xs)
    console.log(`  ${k.padEnd(58)} ${Math.round(m).toLocaleString('en-US').padStart(12)} ops/s  ${(1e9 / m).toFixed(0).padStart(7)} ns/op  ×${(m / base).toFixed(2)}`)
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]!
}

// 1. Compression of small sessions.
const settings = resolveSettings({ secretKey: SECRET })
const codec = createCodec(settings)
const signer = new TimestampSigner({ key: SECRET, salt: 'django.contrib.sessions.SessionStore' })
const MIN_COMPRESS = 64
/** The proposal: `Signer.signObject(obj, { compress: true })` with the size check added. */
function signObjectProposed(obj: unknown): string {
  const data = settings.serializer.dumps(obj)
  if (data.length >= MIN_COMPRESS) {
    const compressed = deflateSync(data)
    if (compressed.length < data.length - 1) return signer.sign('.' + compressed.toString('base64url'))
  }
  return signer.sign(data.toString('base64url'))
}
const counter = new Map<string, unknown>([['n', 17]])
const login = new Map<string, unknown>([
  ['_auth_user_id', '42'],
  ['_auth_user_backend', 'django.contrib.auth.backends.ModelBackend'],
  ['_auth_user_hash', 'f'.repeat(64)],
])
console.log(`serialised: counter ${settings.serializer.dumps(counter).length} bytes, login ${settings.serializer.dumps(login).length} bytes`)
compare('1a. codec.encode of a counter session ({"n":17})', {
  'today: signObject(compress: true), deflate tried and dropped': () => codec.encode(counter),
  'proposed: no deflate below 64 bytes': () => signObjectProposed(counter),
})
compare('1b. codec.encode of a login session (over 64 bytes: unchanged)', {
  'today': () => codec.encode(login),
  'proposed': () => signObjectProposed(login),
})

// 2. Reading one cookie.
const sessions = new Sessions({ secretKey: SECRET, engine: 'signed_cookies' })
const NAME = 'sessionid'
function decode(s: string): string {
  if (s.indexOf('%') === -1) return s
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}
const isSpace = (c: number) => c === 0x20 || c === 0x09
/** The proposal: `cookie.parse(header)[name]`'s rules (segments, backtracking, trimming, first wins, decoding), for one name, allocating only the value. */
function cookieValueProposed(header: string | null | undefined, name: string): string | undefined {
  if (!header || !header.includes(name)) return undefined
  const len = header.length
  let index = 0
  while (index < len) {
    const eq = header.indexOf('=', index)
    if (eq === -1) return undefined
    let end = header.indexOf(';', index)
    if (end === -1) end = len
    if (eq > end) {
      index = header.lastIndexOf(';', eq - 1) + 1
      continue
    }
    let ks = index
    let ke = eq
    while (ks < ke && isSpace(header.charCodeAt(ks))) ks++
    while (ke > ks && isSpace(header.charCodeAt(ke - 1))) ke--
    if (ke - ks === name.length && header.startsWith(name, ks)) {
      let vs = eq + 1
      let ve = end
      while (vs < ve && isSpace(header.charCodeAt(vs))) vs++
      while (ve > vs && isSpace(header.charCodeAt(ve - 1))) ve--
      return decode(header.slice(vs, ve))
    }
    index = end + 1
  }
  return undefined
}
const cases = [
  `_ga=GA1.2.1234567890.1700000000; csrftoken=AbCdEfGhIjKlMnOpQrStUvWxYz012345; sessionid=abcdefghijklmnopqrstuvwxyz012345; theme=dark`,
  'xsessionid=1; sessionid=2', 'sessionidx=1; sessionid=2', ' \tsessionid \t= v \t;', 'sessionid=1; sessionid=2', 'a; sessionid=3',
  'sessionid', 'sessionid=', 'sessionid=%41%zz', 'sessionid=%41', 'a=b=c; sessionid=d=e', 'foo;sessionid=1', '=x; sessionid=7', 'sessionid="q"',
]
for (const c of cases) {
  const a = sessions.cookieValue(c)
  const b = cookieValueProposed(c, NAME)
  if (a !== b) throw new Error(`cookieValue differs on ${JSON.stringify(c)}: ${a} vs ${b}`)
}
const header = cases[0]!
const without = '_ga=GA1.2.1234567890.1700000000; csrftoken=AbCdEfGhIjKlMnOpQrStUvWxYz012345; theme=dark'
console.log(`\n2. same answers as Sessions.cookieValue on ${cases.length} headers (edge cases included)`)
compare('2a. the session cookie among 4 cookies', {
  'today: Sessions.cookieValue (cookie.parse)': () => sessions.cookieValue(header),
  'proposed: scan for the one name': () => cookieValueProposed(header, NAME),
})
compare('2b. no session cookie in the header', {
  'today': () => sessions.cookieValue(without),
  'proposed': () => cookieValueProposed(without, NAME),
})

if (sink === -1) console.log(sink)
