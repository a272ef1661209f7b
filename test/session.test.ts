/**
 * Session behaviour that does not depend on an engine: Django's SessionBaseTests, the codec
 * tests of SessionTestsMixin (test_decode*), key generation, ISO expiry dates.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  createCodec,
  createSessions,
  newSessionKey,
  resolveSettings,
  Session,
  SESSION_STORE_SALT,
  SessionNotLoaded,
  VALID_KEY_CHARS,
  type Engine,
  type SessionBackend,
} from 'sessionkit'
import { TimestampSigner } from 'sessionkit/signing'
import { capturingLogger, manualClock } from 'sessionkit/testing'
import { parsePythonIso, toPythonIso } from '../src/expiry.ts'

const SECRET = 'django-insecure-test-secret-key-0123456789'

/** A backend whose engine refuses every storage call, as Django's bare SessionBase does. */
function bareBackend(): SessionBackend {
  const refuse = (what: string) => () => Promise.reject(new Error(`subclasses of SessionBase must provide ${what} method`))
  const engine: Engine = {
    name: 'bare',
    load: refuse('a load()'),
    exists: refuse('an exists()'),
    save: refuse('a save()'),
    delete: refuse('a delete()'),
    clearExpired: refuse('a clear_expired()'),
    close: () => Promise.resolve(),
  }
  const settings = resolveSettings({ secretKey: SECRET, engine: () => engine })
  return { settings, codec: createCodec(settings), engine, ready: () => Promise.resolve(engine) }
}

describe('SessionBaseTests', () => {
  it('test_is_empty: a new session is empty', () => {
    assert.equal(new Session(bareBackend()).isEmpty(), true)
  })

  it('test_test_cookie: set, check and delete the test cookie', () => {
    const s = new Session(bareBackend())
    assert.equal(s.has('testcookie'), false)
    s.setTestCookie()
    assert.equal(s.testCookieWorked(), true)
    s.deleteTestCookie()
    assert.equal(s.has('testcookie'), false)
  })

  it('test_save / test_load / test_exists / test_delete: storage calls reach the engine', async () => {
    const s = new Session(bareBackend(), 'abcdefgh12345678')
    await assert.rejects(s.load(), /a load\(\) method/)
    await assert.rejects(s.exists('abcdefgh12345678'), /an exists\(\) method/)
    await assert.rejects(s.destroy(), /a delete\(\) method/)
    const fresh = new Session(bareBackend())
    await assert.rejects(fresh.save(), /a save\(\) method/)
  })

  it('a session with a key that is not loaded refuses sync access with ERR_SESSION_NOT_LOADED', () => {
    const s = new Session(bareBackend(), 'abcdefgh12345678')
    assert.throws(() => s.get('x'), SessionNotLoaded)
    assert.throws(() => s.get('x'), { code: 'ERR_SESSION_NOT_LOADED' })
  })

  it('is_empty is false for a session with a key, without loading it', () => {
    const s = new Session(bareBackend(), 'abcdefgh12345678')
    assert.equal(s.isEmpty(), false)
    assert.equal(s.isLoaded, false)
  })

  it('set refuses undefined (JSON cannot hold it)', () => {
    const s = new Session(bareBackend())
    assert.throws(() => s.set('x', undefined), TypeError)
  })

  it('delete returns whether the key was there and marks modified only then', () => {
    const s = new Session(bareBackend())
    assert.equal(s.delete('nope'), false)
    assert.equal(s.modified, false)
    s.set('x', 1)
    s.modified = false
    assert.equal(s.delete('x'), true)
    assert.equal(s.modified, true)
  })

  it('setExpiry(null) without a stored expiry does not modify', () => {
    const s = new Session(bareBackend())
    s.setExpiry(null)
    assert.equal(s.modified, false)
  })

  it('setExpiry stores seconds as an integer and a Date as Python ISO format', () => {
    const s = new Session(bareBackend())
    s.setExpiry(10)
    assert.equal(s.get('_session_expiry'), 10)
    s.setExpiry(new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678)))
    assert.equal(s.get('_session_expiry'), '2030-01-02T03:04:05.678000+00:00')
    s.setExpiry(new Date(Date.UTC(2030, 0, 2, 3, 4, 5)))
    assert.equal(s.get('_session_expiry'), '2030-01-02T03:04:05+00:00')
    assert.throws(() => s.setExpiry(1.5), TypeError)
  })

  it('getExpiryAge floors like Django: an expiry 0.5 s in the past is -1', () => {
    const s = new Session(bareBackend())
    const age = s.getExpiryAge({ expiry: '2030-01-02T03:04:05.678+00:00', modification: parsePythonIso('2030-01-02T03:04:06.178+00:00') })
    assert.equal(age, -1)
  })

  it('the awaited accessors load a lazy session first', async () => {
    const clock = manualClock()
    const sessions = createSessions({ secretKey: SECRET, engine: 'signed_cookies', now: clock })
    const s = sessions.session()
    s.set('a', 1)
    await s.save()
    const lazy = sessions.session(s.sessionKey)
    assert.throws(() => lazy.get('a'), SessionNotLoaded)
    assert.equal(await lazy.aget('a'), 1)
    assert.equal(await lazy.apop('missing', 'd'), 'd')
    await lazy.aset('b', 2)
    assert.deepEqual(await lazy.akeys(), ['a', 'b'])
  })
})

describe('Python ISO datetimes', () => {
  it('parse what Django writes, with and without microseconds and offsets', () => {
    assert.equal(parsePythonIso('2030-01-02T03:04:05+00:00'), Date.UTC(2030, 0, 2, 3, 4, 5))
    assert.equal(parsePythonIso('2030-01-02T03:04:05.678000+00:00'), Date.UTC(2030, 0, 2, 3, 4, 5, 678))
    assert.equal(parsePythonIso('2030-01-02T05:04:05+02:00'), Date.UTC(2030, 0, 2, 3, 4, 5))
    assert.equal(parsePythonIso('2030-01-02 03:04:05'), Date.UTC(2030, 0, 2, 3, 4, 5))
    assert.ok(Number.isNaN(parsePythonIso('not a date')))
  })

  it('round-trip a Date with milliseconds', () => {
    const d = new Date(Date.UTC(2024, 1, 29, 23, 59, 59, 1))
    assert.equal(toPythonIso(d), '2024-02-29T23:59:59.001000+00:00')
    assert.equal(parsePythonIso(toPythonIso(d)), d.getTime())
  })
})

describe('session keys', () => {
  it('are 32 characters of [a-z0-9]', () => {
    for (let i = 0; i < 1000; i++) assert.match(newSessionKey(), /^[a-z0-9]{32}$/)
  })

  it('are drawn without modulo bias: every character is about equally likely', () => {
    const counts = new Map<string, number>()
    const keys = 20_000
    for (let i = 0; i < keys; i++) for (const c of newSessionKey()) counts.set(c, (counts.get(c) ?? 0) + 1)
    const expected = (keys * 32) / VALID_KEY_CHARS.length
    let chi2 = 0
    for (const c of VALID_KEY_CHARS) chi2 += ((counts.get(c) ?? 0) - expected) ** 2 / expected
    // 35 degrees of freedom: p = 0.0001 at 73.4. A modulo-256 draw would put chi2 near 800 here.
    assert.ok(chi2 < 73.4, `chi-square ${chi2.toFixed(1)} says the characters are not uniform`)
  })
})

describe('SessionTestsMixin codec tests', () => {
  const settings = () => {
    const logger = capturingLogger()
    const events: string[] = []
    return { logger, events, settings: resolveSettings({ secretKey: SECRET, logger, onSuspicious: (e) => void events.push(e.kind) }) }
  }

  it('test_decode: encode then decode gives the data back', () => {
    const { settings: s } = settings()
    const codec = createCodec(s)
    const data = new Map<string, unknown>([['a test key', 'a test value']])
    assert.deepEqual(codec.decode(codec.encode(data), 'test'), data)
  })

  it('test_decode_failure_logged_to_security: bad data decodes to empty and warns "Session data corrupted"', () => {
    for (const bad of [Buffer.from('flaskdj:alkdjf').toString('base64'), 'bad:encoded:value']) {
      const { settings: s, logger, events } = settings()
      assert.deepEqual(createCodec(s).decode(bad, 'test'), new Map())
      assert.equal(logger.warnings.length, 1)
      assert.match(logger.warnings[0]!, /Session data corrupted/)
      assert.deepEqual(events, ['tampered'])
    }
  })

  it('test_decode_serializer_exception: a valid signature over bad data decodes to empty without throwing', () => {
    const { settings: s, events } = settings()
    const bad = new TimestampSigner({ key: SECRET, salt: SESSION_STORE_SALT }).sign('invalid data')
    assert.deepEqual(createCodec(s).decode(bad, 'test'), new Map())
    assert.deepEqual(events, ['corrupt'])
  })

  it('encodes V2 of the reference exactly as Django does', () => {
    const s = resolveSettings({ secretKey: SECRET, now: () => 1_700_000_000_000 })
    assert.equal(
      createCodec(s).encode(new Map([['a test key', 'a test value']])),
      'eyJhIHRlc3Qga2V5IjoiYSB0ZXN0IHZhbHVlIn0:1r31eq:Wr3fExHhepug9mwmm3EyPf951qDFCe-6mFOBvLRIFr0',
    )
  })

  it('reads a session signed with a fallback key (V8)', () => {
    const s = resolveSettings({ secretKey: 'new-secret-key-abcdefghijklmnopqrstuvwxyz', secretKeyFallbacks: [SECRET], now: () => 1_700_000_000_000 })
    const codec = createCodec(s)
    const data = codec.decode('eyJhIHRlc3Qga2V5IjoiYSB0ZXN0IHZhbHVlIn0:1r31eq:Wr3fExHhepug9mwmm3EyPf951qDFCe-6mFOBvLRIFr0', 'test')
    assert.deepEqual(data, new Map([['a test key', 'a test value']]))
    assert.equal(codec.encode(data), 'eyJhIHRlc3Qga2V5IjoiYSB0ZXN0IHZhbHVlIn0:1r31eq:5nsSKk_BiOCAUUn_LgCeP6xMcLZAe7a8CNNdp_xmbJQ')
  })
})

describe('data that cannot be stored', () => {
  for (const [what, value] of [
    ['a BigInt', 10n],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a nested undefined', { a: undefined }],
  ] as const) {
    it(`${what} fails the save with SessionDataError (500), not a store outage (503)`, async () => {
      const logger = capturingLogger()
      const sessions = createSessions({ secretKey: SECRET, engine: 'db', databaseUrl: 'sqlite::memory:', logger })
      const state = await sessions.start(undefined)
      state.session.set('x', value as never)
      await assert.rejects(Promise.resolve(sessions.finish(state, 200)), { code: 'ERR_SESSION_DATA', status: 500 })
      assert.match(logger.errors.join('\n'), /cannot be saved/)
      await sessions.close()
    })
  }
})
