/**
 * The signed_cookies engine in encrypted mode (`cookieEncryption: true`): AES-256-GCM under
 * a key derived with HKDF-SHA256 from the secret. Round trip, confidentiality, tampering,
 * key rotation, expiry by the injected clock, the 4096-byte limit, the documented format,
 * and the default mode left exactly as Django's. The conformance suite runs in
 * conformance.test.ts.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createDecipheriv, hkdfSync } from 'node:crypto'
import { createCodec, createSessions, fromEnv, resolveSettings, SessionTooLarge, type Settings, type SuspiciousEvent } from 'sessionkit'
import { TimestampSigner, b62Encode } from 'sessionkit/signing'
import { capturingLogger, manualClock } from 'sessionkit/testing'
import { COOKIE_SIZE_LIMIT, ENCRYPTED_COOKIES_INFO, SIGNED_COOKIES_SALT, signedCookiesEngine } from '../../src/engines/signed-cookies.ts'
import type { Engine } from '../../src/engine.ts'

const SECRET = 'sessionkit-encrypted-cookie-tests-0123456789'
const OLD_SECRET = 'sessionkit-encrypted-cookie-tests-the-old-one'
const T0 = 1_700_000_000_000
const AGE = 1209600
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

function setup(extra: Partial<Settings> = {}) {
  const clock = manualClock(T0)
  const events: SuspiciousEvent[] = []
  const logger = capturingLogger()
  const settings = resolveSettings({
    secretKey: SECRET,
    engine: 'signed_cookies',
    cookieEncryption: true,
    now: clock,
    logger,
    onSuspicious: (event) => void events.push(event),
    ...extra,
  })
  const engine = signedCookiesEngine({ settings, codec: createCodec(settings) })
  return { settings, engine, clock, events, logger }
}

const saveOptions = { mustCreate: true, expireDate: new Date(T0 + AGE * 1000), expiryAge: AGE }

/** The cookie value a save returns (a bare string, or `{ key }` where the engine keeps versions). */
async function cookieOf(engine: Engine, data: Map<string, unknown>): Promise<string> {
  const saved: unknown = await engine.save('', data, saveOptions)
  return typeof saved === 'string' ? saved : (saved as { key: string }).key
}

async function seal(engine: Engine, data: Record<string, unknown>): Promise<string> {
  return cookieOf(engine, new Map(Object.entries(data)))
}

async function loaded(engine: Engine, value: string): Promise<Record<string, unknown> | null> {
  const loaded: unknown = await engine.load(value)
  if (loaded === null) return null
  return Object.fromEntries(loaded instanceof Map ? loaded : (loaded as { data: Map<string, unknown> }).data)
}

describe('signed_cookies, encrypted mode', () => {
  it('round-trips the data through a cookie, via sessions and the middleware core', async () => {
    const clock = manualClock(T0)
    const sessions = createSessions({ secretKey: SECRET, engine: 'signed_cookies', cookieEncryption: true, now: clock, logger: capturingLogger() })
    const state = await sessions.start(undefined)
    state.session.set('user', { id: 42, name: 'Zoë' })
    const { setCookie } = await sessions.finish(state, 200)
    assert.ok(setCookie)
    const cookie = setCookie.split(';')[0]!
    const next = await sessions.start(cookie)
    assert.deepEqual(next.session.get('user'), { id: 42, name: 'Zoë' })
    assert.equal(sessions.engine?.name, 'signed_cookies:encrypted')
  })

  it('writes <b64url(iv ‖ ciphertext ‖ tag)>:<base62 seconds>, URL-safe, and a new IV every time', async () => {
    const { engine } = setup()
    const a = await seal(engine, { x: 1 })
    const b = await seal(engine, { x: 1 })
    for (const value of [a, b]) {
      assert.match(value, /^[A-Za-z0-9_-]+:[0-9A-Za-z]+$/)
      assert.equal(value.split(':')[1], b62Encode(T0 / 1000))
    }
    assert.notEqual(a, b, 'a random IV per cookie: the same data never gives the same cookie')
    assert.notEqual(a.slice(0, 16), b.slice(0, 16), 'the IVs differ')
  })

  it('decrypts by the documented recipe: HKDF-SHA256(secret, empty salt, info), AES-256-GCM, timestamp as additional data', async () => {
    const { engine } = setup()
    const value = await seal(engine, { cart: [1, 2], who: 'me' })
    const [body, ts] = value.split(':') as [string, string]
    const raw = Buffer.from(body, 'base64url')
    const key = Buffer.from(hkdfSync('sha256', Buffer.from(SECRET), Buffer.alloc(0), ENCRYPTED_COOKIES_INFO, 32))
    assert.equal(ENCRYPTED_COOKIES_INFO, 'sessionkit.signed_cookies.encrypted')
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12), { authTagLength: 16 })
    decipher.setAAD(Buffer.from(ts))
    decipher.setAuthTag(raw.subarray(raw.length - 16))
    const plaintext = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()])
    // Django's JSON, uncompressed.
    assert.equal(plaintext.toString('latin1'), '{"cart":[1,2],"who":"me"}')
  })

  it('does not let the visitor read the data: no plaintext, no JSON, no base64 of either in the cookie', async () => {
    const marker = 'top-secret-marker-7f3a'
    const { engine } = setup()
    const value = await seal(engine, { note: marker, role: 'admin' })
    const body = value.split(':')[0]!
    const decoded = Buffer.from(body, 'base64url').toString('latin1')
    for (const text of [value, decoded]) {
      assert.ok(!text.includes(marker), 'the plaintext is not in the cookie')
      assert.ok(!text.includes('admin'))
      assert.ok(!text.includes('{"'), 'no JSON')
    }
    assert.ok(!value.includes(Buffer.from(marker).toString('base64url').slice(0, 12)))
    // The same test on the default (signed) mode finds the data: the check can fail.
    const { engine: plain } = setup({ cookieEncryption: false })
    const signed = await seal(plain, { note: marker })
    assert.ok(Buffer.from(signed.split(':')[0]!, 'base64url').toString('latin1').includes(marker))
  })

  it('refuses every single-character change of the cookie, as tampering', async () => {
    const { engine, events } = setup()
    const value = await seal(engine, { user: 42 })
    let attempts = 0
    for (let i = 0; i < value.length; i++) {
      for (const c of B64URL + ':.') {
        if (c === value[i]) continue
        const changed = value.slice(0, i) + c + value.slice(i + 1)
        assert.equal(await engine.load(changed), null, `position ${i} changed to ${c}`)
        attempts++
      }
    }
    assert.equal(events.length, attempts, 'each one reported')
    assert.ok(events.every((e) => e.kind === 'tampered' && e.engine === 'signed_cookies:encrypted'))
    assert.deepEqual(await loaded(engine, value), { user: 42 }, 'the original still loads')
  })

  it('refuses every flipped bit of the IV, the ciphertext and the tag', async () => {
    const { engine, events } = setup()
    const value = await seal(engine, { user: 42 })
    const [body, ts] = value.split(':') as [string, string]
    const raw = Buffer.from(body, 'base64url')
    for (let bit = 0; bit < raw.length * 8; bit++) {
      const flipped = Buffer.from(raw)
      flipped[bit >> 3]! ^= 1 << (bit & 7)
      assert.equal(await engine.load(`${flipped.toString('base64url')}:${ts}`), null, `bit ${bit}`)
    }
    assert.equal(events.length, raw.length * 8)
  })

  it('refuses a non-canonical last base64 character that decodes to the same bytes', async () => {
    const { engine, events } = setup()
    // Find data whose base64 has spare bits in its last character.
    let value = ''
    for (let n = 0; n < 3 && !value; n++) {
      const v = await seal(engine, { p: 'x'.repeat(n) })
      if (v.split(':')[0]!.length % 4 !== 0) value = v
    }
    const [body, ts] = value.split(':') as [string, string]
    const last = B64URL.indexOf(body[body.length - 1]!)
    const sibling = B64URL[last ^ 1]! // differs only in the lowest (spare) bit
    const variant = body.slice(0, -1) + sibling
    assert.deepEqual(Buffer.from(variant, 'base64url'), Buffer.from(body, 'base64url'), 'the variant decodes to the same bytes')
    assert.equal(await engine.load(`${variant}:${ts}`), null)
    assert.equal(events[0]?.kind, 'tampered')
  })

  it('authenticates the timestamp: a cookie cannot be made younger', async () => {
    const { engine, clock, events } = setup()
    const value = await seal(engine, { user: 42 })
    clock.advance(AGE + 10)
    const rejuvenated = `${value.split(':')[0]}:${b62Encode(Math.trunc(clock() / 1000))}`
    assert.equal(await engine.load(rejuvenated), null)
    assert.equal(events[0]?.kind, 'tampered')
  })

  it('decrypts with a fallback key, and re-encrypts with the current one', async () => {
    const { engine: old } = setup({ secretKey: OLD_SECRET })
    const oldCookie = await seal(old, { user: 7 })
    const { engine: rotated } = setup({ secretKey: SECRET, secretKeyFallbacks: [OLD_SECRET] })
    assert.deepEqual(await loaded(rotated, oldCookie), { user: 7 })
    const newCookie = await seal(rotated, { user: 7 })
    const { engine: current, events } = setup({ secretKey: SECRET })
    assert.deepEqual(await loaded(current, newCookie), { user: 7 }, 'written with secretKey')
    assert.equal(await current.load(oldCookie), null, 'without the fallback, the old cookie is refused')
    assert.equal(events[0]?.kind, 'tampered')
    assert.equal(await old.load(newCookie), null, 'the old key alone cannot read the new cookie')
  })

  it('enforces cookieAge by the injected clock: equal passes, a second more does not, and that is not tampering', async () => {
    const { engine, clock, events } = setup({ cookieAge: 60 })
    const value = await seal(engine, { user: 1 })
    clock.advance(60)
    assert.deepEqual(await loaded(engine, value), { user: 1 })
    clock.advance(1)
    assert.equal(await engine.load(value), null)
    assert.deepEqual(events, [], 'an expired cookie is not suspicious')
  })

  it('enforces a per-session setExpiry when the cookie is read', async () => {
    const clock = manualClock(T0)
    const sessions = createSessions({ secretKey: SECRET, engine: 'signed_cookies', cookieEncryption: true, now: clock, logger: capturingLogger() })
    const s = sessions.session()
    s.set('a', 1)
    s.setExpiry(30)
    await s.save()
    const value = s.sessionKey!
    clock.advance(30)
    const before = sessions.session(value)
    await before.load()
    assert.equal(before.get('a'), 1)
    clock.advance(1)
    const after = sessions.session(value)
    await after.load()
    assert.equal(after.has('a'), false)
  })

  it('sends a cookie of exactly 4096 bytes (name and value) and refuses 4097 with SessionTooLarge', async () => {
    const { engine } = setup()
    const sizes = new Map<number, Map<string, unknown>>()
    for (let n = 2990; n < 3100 && !(sizes.has(4096) && sizes.has(4097)); n++) {
      const data = new Map<string, unknown>([['blob', 'x'.repeat(n)]])
      try {
        sizes.set('sessionid='.length + (await cookieOf(engine, data)).length, data)
      } catch (error) {
        assert.ok(error instanceof SessionTooLarge)
        sizes.set(error.size, data)
      }
    }
    const fits = sizes.get(COOKIE_SIZE_LIMIT)
    const over = sizes.get(COOKIE_SIZE_LIMIT + 1)
    assert.ok(fits && over, 'found data giving 4096- and 4097-byte cookies')
    assert.equal('sessionid='.length + (await cookieOf(engine, fits)).length, 4096)
    await assert.rejects(engine.save('', over, saveOptions), (error: unknown) => {
      assert.ok(error instanceof SessionTooLarge)
      assert.equal(error.code, 'ERR_SESSION_TOO_LARGE')
      assert.equal(error.size, 4097)
      return true
    })
  })

  it('accepts encrypted values as keys, and still reads signed cookies so that turning encryption on logs nobody out', async () => {
    const { engine: plain } = setup({ cookieEncryption: false })
    const signed = await seal(plain, { user: 3 })
    const { engine } = setup()
    const encrypted = await seal(engine, { user: 3 })
    assert.equal(engine.validKey?.(encrypted), true)
    assert.equal(engine.validKey?.(signed), true)
    assert.deepEqual(await loaded(engine, signed), { user: 3 })
    assert.equal(engine.validKey?.('a'.repeat(37) + ':1r31eq'), false, 'shorter than an IV and a tag')
    assert.equal(engine.validKey?.(encrypted.replace(':', '.')), false)
    assert.equal(engine.validKey?.('A'.repeat(COOKIE_SIZE_LIMIT) + ':1r31eq'), false, 'longer than a cookie')
  })

  it('the default mode ignores encrypted cookies and writes exactly Django’s signed format', async () => {
    const { engine, events } = setup({ cookieEncryption: false })
    const { engine: enc } = setup()
    const encrypted = await seal(enc, { user: 3 })
    assert.equal(engine.validKey?.(encrypted), false, 'never adopted as a key')
    assert.equal(await engine.load(encrypted), null)
    assert.equal(events[0]?.kind, 'tampered')
    const data = new Map<string, unknown>([['cart', [1, 2, 3]]])
    const django = new TimestampSigner({ key: SECRET, salt: SIGNED_COOKIES_SALT, now: () => T0 }).signObject(data, { compress: true })
    assert.equal(await cookieOf(engine, data), django)
    assert.equal(engine.name, 'signed_cookies')
  })
})

describe('the cookieEncryption setting', () => {
  it('defaults to false and must be a boolean', () => {
    assert.equal(resolveSettings({ secretKey: SECRET }).cookieEncryption, false)
    assert.throws(() => resolveSettings({ secretKey: SECRET, cookieEncryption: 'yes' as unknown as boolean }), {
      code: 'ERR_IMPROPERLY_CONFIGURED',
      message: /cookieEncryption must be true or false, got "yes"/,
    })
  })

  it('comes from SESSION_COOKIE_ENCRYPTED in fromEnv, and a malformed value names the variable', () => {
    assert.deepEqual(fromEnv({ SESSION_COOKIE_ENCRYPTED: 'true' }), { cookieEncryption: true })
    assert.deepEqual(fromEnv({ SESSION_COOKIE_ENCRYPTED: '0' }), { cookieEncryption: false })
    assert.deepEqual(fromEnv({ SESSION_COOKIE_ENCRYPTED: '' }), {})
    assert.throws(() => fromEnv({ SESSION_COOKIE_ENCRYPTED: 'maybe' }), { code: 'ERR_IMPROPERLY_CONFIGURED', message: /SESSION_COOKIE_ENCRYPTED/ })
  })
})
