/**
 * The framework-neutral middleware core (`Sessions.start` / `Sessions.finish`): Django's
 * `SessionMiddlewareTests` ported (each test's name carries the Django test it ports), the
 * exact `Set-Cookie` strings real Django produced (reference §4), `Vary` rules, and the
 * security rules of the checklist (§1.2 acceptance, §1.5 cookie attributes, §1.6 caching).
 *
 * The core cases run against every server-side backend: an in-memory test double and the
 * `db` engine on a temporary SQLite file. Cases about the signed value itself run on
 * `signed_cookies`.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import {
  createCodec,
  createSessions,
  patchVary,
  resolveSettings,
  SessionInterrupted,
  SessionTooLarge,
  StoreUnavailable,
  type EngineFactory,
  type Session,
  type Sessions,
  type Settings,
  type SuspiciousEvent,
  requestSessionOf,
} from 'sessionkit'
import { manualClock } from 'sessionkit/testing'
import { signedCookiesEngine } from '../src/engines/signed-cookies.ts'
import { backends, capturingLogger, instrument, memoryEngine } from './helpers/http.ts'

const SECRET = 'django-insecure-test-secret-key-0123456789'
/** Reference §3.6 / §4: every verified string was produced at time.time() = 1700000000. */
const NOW = 1_700_000_000_000
/** http_date(1700000000 + 1209600) */
const IN_TWO_WEEKS = 'Tue, 28 Nov 2023 22:13:20 GMT'
const EPOCH = 'Thu, 01 Jan 1970 00:00:00 GMT'
/** The signed_cookies value of {"cart":[1,2,3]} at NOW with SECRET (reference §4, verified against Django 3.2 and 6.1). */
const CART_VALUE = 'eyJjYXJ0IjpbMSwyLDNdfQ:1r31eq:Vg0s383SLdmw58Frm7kg8YqtZFXk20wfk-teCGF6uYs'
const INTERRUPTED =
  "The request's session was deleted before the request completed. The user may have logged out in a concurrent request, for example."

// ------------------------------------------------------------------------------ setup

/** Sessions on `factory`, counted, with a manual clock at NOW, a capturing logger and a suspicious-event log. */
async function open(t: TestContext, factory: EngineFactory, settings: Partial<Settings> = {}) {
  const clock = manualClock(NOW)
  const logger = capturingLogger()
  const events: SuspiciousEvent[] = []
  const engine = instrument(factory)
  const sessions = createSessions({
    secretKey: SECRET,
    now: clock,
    logger,
    onSuspicious: (event) => void events.push(event),
    ...settings,
    engine: engine.factory,
  })
  t.after(() => sessions.close())
  await sessions.ready()
  await sessions.migrate()
  engine.reset()
  return { sessions, engine, clock, logger, events }
}

/** One request through the core: begin with `cookie`, run `view` on the session, end with `status`. */
async function handle(sessions: Sessions, cookie: string | undefined, view: (session: Session) => unknown = () => {}, status = 200) {
  const state = await sessions.start(cookie)
  await view(state.session)
  const decision = await sessions.finish(state, status)
  return { ...decision, session: state.session, state, varyHeader: decision.vary ? patchVary(undefined) : undefined }
}

/** A stored session holding `data`; returns its key. */
async function stored(sessions: Sessions, data: Record<string, unknown>): Promise<string> {
  const session = sessions.session()
  session.update(data)
  await session.save()
  assert.ok(session.sessionKey)
  return session.sessionKey
}

/** The data stored under `key`, or `null` when there is no live session under it. */
async function reload(sessions: Sessions, key: string): Promise<Record<string, unknown> | null> {
  const session = sessions.session(key)
  await session.load()
  return session.sessionKey === null ? null : Object.fromEntries(session.entries())
}

// --------------------------------------------------------------------- core, per backend

for (const backend of backends) {
  describe(`middleware core on the ${backend.name}`, () => {
    async function setup(t: TestContext, settings: Partial<Settings> = {}) {
      const made = await backend.make(t)
      return open(t, made.engine, { ...made.settings, ...settings })
    }
    const hello = (session: Session) => session.set('hello', 'world')

    describe('SessionMiddlewareTests', () => {
      it('test_secure_session_cookie: cookieSecure adds Secure to the session cookie', async (t) => {
        const { sessions } = await setup(t, { cookieSecure: true })
        const r = await handle(sessions, undefined, hello)
        const key = r.session.sessionKey
        assert.equal(r.setCookie, `sessionid=${key}; expires=${IN_TWO_WEEKS}; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax; Secure`)
      })

      it('test_httponly_session_cookie: the session cookie is HttpOnly by default', async (t) => {
        const { sessions } = await setup(t, { cookieHttpOnly: true })
        const r = await handle(sessions, undefined, hello)
        assert.match(r.setCookie ?? '', /; HttpOnly;/)
        assert.equal(r.setCookie, `sessionid=${r.session.sessionKey}; expires=${IN_TWO_WEEKS}; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax`)
      })

      it('test_no_httponly_session_cookie: cookieHttpOnly false leaves HttpOnly out', async (t) => {
        const { sessions } = await setup(t, { cookieHttpOnly: false })
        const r = await handle(sessions, undefined, hello)
        assert.doesNotMatch(r.setCookie ?? '', /httponly/i)
        assert.equal(r.setCookie, `sessionid=${r.session.sessionKey}; expires=${IN_TWO_WEEKS}; Max-Age=1209600; Path=/; SameSite=Lax`)
      })

      it('test_samesite_session_cookie: cookieSameSite "Strict" is written as SameSite=Strict', async (t) => {
        const { sessions } = await setup(t, { cookieSameSite: 'Strict' })
        const r = await handle(sessions, undefined, hello)
        assert.equal(r.setCookie, `sessionid=${r.session.sessionKey}; expires=${IN_TWO_WEEKS}; HttpOnly; Max-Age=1209600; Path=/; SameSite=Strict`)
      })

      for (const status of [500, 503]) {
        const django = status === 500 ? 'test_session_save_on_500' : 'test_session_save_on_5xx'
        it(`${django}: a ${status} response neither saves the new session nor sets its cookie`, async (t) => {
          const { sessions, engine } = await setup(t)
          const r = await handle(sessions, undefined, hello, status)
          assert.equal(r.setCookie, null)
          assert.equal(engine.writes(), 0)
          assert.equal(r.session.sessionKey, null)
          assert.equal(r.vary, true, 'Vary is still patched on a 5xx')
        })

        it(`${django}: a ${status} response leaves the stored session as it was`, async (t) => {
          const { sessions, engine } = await setup(t)
          const key = await stored(sessions, { before: 1 })
          engine.reset()
          const r = await handle(sessions, `sessionid=${key}`, hello, status)
          assert.equal(r.setCookie, null)
          assert.equal(engine.writes(), 0)
          assert.deepEqual(await reload(sessions, key), { before: 1 })
        })
      }

      it('test_session_save_on_5xx: a 499 response is below the line and saves', async (t) => {
        const { sessions } = await setup(t)
        const r = await handle(sessions, undefined, hello, 499)
        assert.ok(r.session.sessionKey)
        assert.deepEqual(await reload(sessions, r.session.sessionKey), { hello: 'world' })
      })

      it('test_session_update_error_redirect: saving a session deleted during the request throws SessionInterrupted', async (t) => {
        const { sessions } = await setup(t)
        const state = await sessions.start(undefined)
        // Django's view: request.session = DatabaseSession(); save(must_create=True); delete()
        const replaced = sessions.session()
        await replaced.save(true)
        await replaced.destroy()
        const err = await Promise.resolve(sessions.finish({ ...state, session: replaced }, 200)).then(
          () => assert.fail('end() should have thrown'),
          (error: unknown) => error,
        )
        assert.ok(err instanceof SessionInterrupted)
        assert.equal(err.code, 'ERR_SESSION_INTERRUPTED')
        assert.equal(err.status, 400)
        assert.equal(err.message, INTERRUPTED)
      })

      it('test_session_update_error_redirect: a session logged out by a concurrent request is never resurrected', async (t) => {
        const { sessions } = await setup(t)
        const key = await stored(sessions, { user: 1 })
        const slow = await sessions.start(`sessionid=${key}`)
        // The concurrent request: logout.
        await handle(sessions, `sessionid=${key}`, (s) => s.flush())
        slow.session.set('cart', [1])
        await assert.rejects(Promise.resolve(sessions.finish(slow, 200)), { name: 'SessionInterrupted', code: 'ERR_SESSION_INTERRUPTED' })
        assert.equal(await reload(sessions, key), null)
      })

      it('test_session_delete_on_end: flushing a session the request carried deletes the cookie', async (t) => {
        const { sessions } = await setup(t)
        const r = await handle(sessions, 'sessionid=abc', (s) => s.flush())
        assert.equal(r.setCookie, `sessionid=""; expires=${EPOCH}; Max-Age=0; Path=/; SameSite=Lax`)
        assert.equal(r.varyHeader, 'Cookie')
      })

      it('test_session_delete_on_end: flushing a stored session deletes the record and the cookie', async (t) => {
        const { sessions } = await setup(t)
        const key = await stored(sessions, { user: 1 })
        const r = await handle(sessions, `sessionid=${key}`, (s) => s.flush())
        assert.equal(r.setCookie, `sessionid=""; expires=${EPOCH}; Max-Age=0; Path=/; SameSite=Lax`)
        assert.equal(r.varyHeader, 'Cookie')
        assert.equal(await reload(sessions, key), null)
      })

      it('test_session_delete_on_end_with_custom_domain_and_path: the deletion cookie carries the Domain and Path', async (t) => {
        const { sessions } = await setup(t, { cookieDomain: '.example.local', cookiePath: '/example/' })
        const r = await handle(sessions, 'sessionid=abc', (s) => s.flush())
        assert.equal(r.setCookie, `sessionid=""; Domain=.example.local; expires=${EPOCH}; Max-Age=0; Path=/example/; SameSite=Lax`)
        assert.equal(r.varyHeader, 'Cookie')
      })

      it('test_flush_empty_without_session_cookie_doesnt_set_cookie: flushing without a cookie sets none, and varies', async (t) => {
        const { sessions, engine } = await setup(t)
        const r = await handle(sessions, undefined, (s) => s.flush())
        assert.equal(r.setCookie, null)
        assert.equal(r.varyHeader, 'Cookie')
        assert.equal(engine.writes(), 0)
      })

      it('test_empty_session_saved: a session emptied after it was saved is saved empty and its cookie re-sent', async (t) => {
        const { sessions } = await setup(t)
        const state = await sessions.start(undefined)
        state.session.set('foo', 'bar')
        const first = await sessions.finish(state, 200)
        const key = state.session.sessionKey
        assert.ok(key && key.length > 8)
        assert.ok(first.setCookie?.startsWith(`sessionid=${key};`))
        assert.equal(first.vary, true)
        assert.deepEqual(await reload(sessions, key), { foo: 'bar' })

        state.session.delete('foo')
        const second = await sessions.finish(state, 200)
        assert.deepEqual(await reload(sessions, key), {})
        assert.equal(state.session.sessionKey, key)
        assert.ok(second.setCookie?.startsWith(`sessionid=${key};`))
        assert.equal(second.vary, true)
      })
    })

    describe('Vary and when a cookie is sent', () => {
      it('a request whose session was only read gets Vary: Cookie and no Set-Cookie', async (t) => {
        const { sessions, engine } = await setup(t)
        const r = await handle(sessions, undefined, (s) => s.get('user'))
        assert.equal(r.setCookie, null)
        assert.equal(r.varyHeader, 'Cookie')
        assert.equal(engine.writes(), 0)
      })

      it('a stored session that was only read gets Vary: Cookie and no Set-Cookie', async (t) => {
        const { sessions, engine } = await setup(t)
        const key = await stored(sessions, { user: 1 })
        engine.reset()
        const r = await handle(sessions, `sessionid=${key}`, (s) => assert.equal(s.get('user'), 1))
        assert.equal(r.setCookie, null)
        assert.equal(r.vary, true)
        assert.equal(engine.writes(), 0)
      })

      it('a request without a session cookie whose session is never touched gets neither Vary nor Set-Cookie', async (t) => {
        const { sessions, engine } = await setup(t)
        const r = await handle(sessions, 'csrftoken=abc')
        assert.deepEqual({ vary: r.vary, setCookie: r.setCookie }, { vary: false, setCookie: null })
        assert.equal(engine.writes(), 0)
      })

      it('a request with a live session cookie whose session is never touched gets neither Vary nor Set-Cookie', async (t) => {
        const { sessions, engine } = await setup(t)
        const key = await stored(sessions, { user: 1 })
        engine.reset()
        const r = await handle(sessions, `sessionid=${key}`)
        assert.deepEqual({ vary: r.vary, setCookie: r.setCookie }, { vary: false, setCookie: null })
        assert.equal(engine.writes(), 0)
      })

      it('saveEveryRequest re-sends the cookie of a session that was only read, with a refreshed expiry', async (t) => {
        const { sessions, engine, clock } = await setup(t, { saveEveryRequest: true })
        const key = await stored(sessions, { user: 1 })
        engine.reset()
        clock.advance(3600)
        const r = await handle(sessions, `sessionid=${key}`, (s) => s.get('user'))
        assert.equal(r.setCookie, `sessionid=${key}; expires=Tue, 28 Nov 2023 23:13:20 GMT; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax`)
        assert.equal(engine.calls.save, 1)
        assert.equal(r.vary, true)
      })

      it('saveEveryRequest creates nothing for a new visitor whose session stays empty (#25489)', async (t) => {
        const { sessions, engine } = await setup(t, { saveEveryRequest: true })
        const r = await handle(sessions, undefined, (s) => s.get('user'))
        assert.equal(r.setCookie, null)
        assert.equal(engine.writes(), 0)
      })

      it('expireAtBrowserClose sends a cookie without Max-Age or expires', async (t) => {
        const { sessions } = await setup(t, { expireAtBrowserClose: true })
        const r = await handle(sessions, undefined, hello)
        assert.equal(r.setCookie, `sessionid=${r.session.sessionKey}; HttpOnly; Path=/; SameSite=Lax`)
      })

      it('expireAtBrowserClose yields to a per-session setExpiry(600)', async (t) => {
        const { sessions } = await setup(t, { expireAtBrowserClose: true })
        const r = await handle(sessions, undefined, (s) => s.setExpiry(600))
        assert.equal(r.setCookie, `sessionid=${r.session.sessionKey}; expires=Tue, 14 Nov 2023 22:23:20 GMT; HttpOnly; Max-Age=600; Path=/; SameSite=Lax`)
      })

      it('setExpiry(0) makes a browser-session cookie: no Max-Age, no expires', async (t) => {
        const { sessions } = await setup(t)
        const r = await handle(sessions, undefined, (s) => {
          s.set('user', 1)
          s.setExpiry(0)
        })
        assert.equal(r.setCookie, `sessionid=${r.session.sessionKey}; HttpOnly; Path=/; SameSite=Lax`)
        assert.deepEqual(await reload(sessions, r.session.sessionKey!), { user: 1, _session_expiry: 0 })
      })

      it('setExpiry(date) gives Max-Age in whole seconds until that date', async (t) => {
        const { sessions } = await setup(t)
        const r = await handle(sessions, undefined, (s) => s.setExpiry(new Date(NOW + 3_600_900)))
        assert.equal(r.setCookie, `sessionid=${r.session.sessionKey}; expires=Tue, 14 Nov 2023 23:13:20 GMT; HttpOnly; Max-Age=3600; Path=/; SameSite=Lax`)
      })

      it('cookiePartitioned adds Partitioned to the session cookie and to its deletion', async (t) => {
        const { sessions } = await setup(t, { cookieSecure: true, cookiePartitioned: true })
        const set = await handle(sessions, undefined, hello)
        const key = set.session.sessionKey
        assert.equal(set.setCookie, `sessionid=${key}; expires=${IN_TWO_WEEKS}; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax; Secure; Partitioned`)
        const del = await handle(sessions, `sessionid=${key}`, (s) => s.flush())
        assert.equal(del.setCookie, `sessionid=""; expires=${EPOCH}; Max-Age=0; Path=/; SameSite=Lax; Secure; Partitioned`)
      })
    })

    describe('store access', () => {
      for (const cookie of [undefined, '', 'csrftoken=abc; theme=dark', 'xsessionid=abcdefgh12345678; sessionidx=abcdefgh12345678']) {
        it(`a request without a session cookie (${JSON.stringify(cookie)}) costs no store round trip, even when the session is used`, async (t) => {
          const { sessions, engine } = await setup(t)
          const r = await handle(sessions, cookie, (s) => s.get('user'))
          assert.deepEqual(engine.calls, { load: 0, exists: 0, create: 0, save: 0, delete: 0, clearExpired: 0 })
          assert.equal(r.state.hadCookie, false)
        })
      }

      const malformed = ['a'.repeat(7), 'a'.repeat(41), '../x/../../etc/passwd', 'ABCDEFGH12345678', 'a\\b0123456789', 'a%2Fb0123456789', '\uff41'.repeat(32)]
      for (const value of malformed) {
        it(`a malformed key ${JSON.stringify(value)} is never looked up: anonymous session, cookie deleted, reported`, async (t) => {
          const { sessions, engine, events, logger } = await setup(t)
          const r = await handle(sessions, `sessionid=${value}`, (s) => s.get('user'))
          assert.equal(engine.calls.load + engine.calls.exists, 0)
          assert.equal(engine.writes(), 0)
          assert.equal(r.session.sessionKey, null)
          assert.equal(r.setCookie, `sessionid=""; expires=${EPOCH}; Max-Age=0; Path=/; SameSite=Lax`)
          assert.deepEqual(events.map((e) => e.kind), ['malformed-key'])
          assert.ok(!logger.everything().includes(value), 'the value is not logged')
        })
      }

      it('an unknown but well-formed key is looked up once, never adopted, and nothing is written on load (CVE-2015-5143)', async (t) => {
        const { sessions, engine, events } = await setup(t)
        const forged = 'a'.repeat(32)
        const r = await handle(sessions, `sessionid=${forged}`, (s) => s.get('user'))
        assert.equal(engine.calls.load, 1)
        assert.equal(engine.writes(), 0)
        assert.equal(r.session.sessionKey, null)
        assert.equal(r.setCookie, `sessionid=""; expires=${EPOCH}; Max-Age=0; Path=/; SameSite=Lax`)
        assert.deepEqual(events.map((e) => e.kind), ['unknown-key'])
        assert.equal(await sessions.session().exists(forged), false)
      })

      it('writing to a session under an unknown key issues a fresh key and stores nothing under the submitted one', async (t) => {
        const { sessions } = await setup(t)
        const forged = 'b'.repeat(32)
        const r = await handle(sessions, `sessionid=${forged}`, (s) => s.set('user', 1))
        const key = r.session.sessionKey
        assert.ok(key)
        assert.notEqual(key, forged)
        assert.match(r.setCookie ?? '', new RegExp(`^sessionid=${key};`))
        assert.equal(await sessions.session().exists(forged), false)
        assert.deepEqual(await reload(sessions, key), { user: 1 })
      })

      it('an expired session cookie loads as an anonymous session and is not resurrected', async (t) => {
        const { sessions, clock } = await setup(t)
        const key = await stored(sessions, { user: 1 })
        clock.advance(1209600 + 1)
        const r = await handle(sessions, `sessionid=${key}`, (s) => s.set('cart', [1]))
        assert.notEqual(r.session.sessionKey, key)
        assert.deepEqual(await reload(sessions, r.session.sessionKey!), { cart: [1] })
      })

      it('an unknown key the handler never touched: the stale cookie is deleted once (Django sends nothing; sessionkit loads before the handler)', async (t) => {
        const { sessions, engine } = await setup(t)
        const r = await handle(sessions, `sessionid=${'c'.repeat(32)}`)
        assert.equal(r.setCookie, 'sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax')
        assert.equal(r.vary, true)
        assert.equal(engine.writes(), 0)
      })

      it('Django: an unknown key the handler never touched gets no Set-Cookie and no Vary, with lazy loading', async (t) => {
        const { sessions } = await setup(t, { lazy: true })
        const r = await handle(sessions, `sessionid=${'c'.repeat(32)}`)
        assert.deepEqual({ vary: r.vary, setCookie: r.setCookie }, { vary: false, setCookie: null })
      })

      it('logging out an anonymous visitor writes nothing (CVE-2015-5963)', async (t) => {
        const { sessions, engine } = await setup(t)
        const r = await handle(sessions, undefined, async (s) => {
          s.get('user')
          await s.flush()
        })
        assert.equal(r.setCookie, null)
        assert.equal(engine.writes(), 0)
      })

      it('logging out an anonymous visitor writes nothing, with saveEveryRequest too (CVE-2015-5963)', async (t) => {
        const { sessions, engine } = await setup(t, { saveEveryRequest: true })
        const r = await handle(sessions, undefined, (s) => s.flush())
        assert.equal(r.setCookie, null)
        assert.equal(engine.writes(), 0)
      })

      it('a store that fails on load throws StoreUnavailable (503) and logs a line without the session key', async (t) => {
        const { sessions, engine, logger } = await setup(t)
        const key = await stored(sessions, { user: 1 })
        engine.fail.load = new Error('connect ECONNREFUSED 127.0.0.1:5432')
        const err = await Promise.resolve(sessions.start(`sessionid=${key}`)).then(
          () => assert.fail('begin() should have thrown'),
          (error: unknown) => error,
        )
        assert.ok(err instanceof StoreUnavailable)
        assert.equal(err.code, 'ERR_STORE_UNAVAILABLE')
        assert.equal(err.status, 503)
        assert.ok(err.cause === engine.fail.load, 'the store error is the cause')
        assert.ok(logger.errors.length >= 1, 'the failure is logged')
        assert.ok(!logger.everything().includes(key), 'the log does not contain the session key')
      })

      it('a store whose error message quotes the session key does not get the key into the log', async (t) => {
        const { sessions, engine, logger } = await setup(t)
        const key = await stored(sessions, { user: 1 })
        engine.fail.load = new Error(`Command timed out: GET session:${key}`)
        await assert.rejects(Promise.resolve(sessions.start(`sessionid=${key}`)), { code: 'ERR_STORE_UNAVAILABLE' })
        assert.ok(logger.errors.length >= 1)
        assert.ok(!logger.everything().includes(key), 'the log does not contain the session key')
      })

      it('a store that fails on save throws StoreUnavailable (503) from end, logged', async (t) => {
        const { sessions, engine, logger } = await setup(t)
        const state = await sessions.start(undefined)
        state.session.set('user', 1)
        engine.fail.save = new Error('disk I/O error')
        await assert.rejects(Promise.resolve(sessions.finish(state, 200)), (error: unknown) => {
          assert.ok(error instanceof StoreUnavailable)
          assert.equal(error.code, 'ERR_STORE_UNAVAILABLE')
          return true
        })
        assert.equal(logger.errors.length, 1)
      })
    })
  })
}

// --------------------------------------------------------------------- signed_cookies

describe('middleware core on signed_cookies: Set-Cookie strings verified against Django (reference §4)', () => {
  const cart = (session: Session) => session.set('cart', [1, 2, 3])
  const setup = (t: TestContext, settings: Partial<Settings> = {}) => open(t, signedCookiesEngine, settings)

  it('default settings', async (t) => {
    const { sessions } = await setup(t)
    const r = await handle(sessions, undefined, cart)
    assert.equal(r.setCookie, `sessionid=${CART_VALUE}; expires=${IN_TWO_WEEKS}; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax`)
    assert.equal(r.varyHeader, 'Cookie')
  })

  it('EXPIRE_AT_BROWSER_CLOSE', async (t) => {
    const { sessions } = await setup(t, { expireAtBrowserClose: true })
    const r = await handle(sessions, undefined, cart)
    assert.equal(r.setCookie, `sessionid=${CART_VALUE}; HttpOnly; Path=/; SameSite=Lax`)
    assert.equal(r.varyHeader, 'Cookie')
  })

  it('SECURE, DOMAIN=.example.com, SAMESITE=None', async (t) => {
    const { sessions } = await setup(t, { cookieSecure: true, cookieDomain: '.example.com', cookieSameSite: 'None' })
    const r = await handle(sessions, undefined, cart)
    assert.equal(r.setCookie, `sessionid=${CART_VALUE}; Domain=.example.com; expires=${IN_TWO_WEEKS}; HttpOnly; Max-Age=1209600; Path=/; SameSite=None; Secure`)
  })

  it('SAMESITE=False, HTTPONLY=False', async (t) => {
    const { sessions } = await setup(t, { cookieSameSite: false, cookieHttpOnly: false })
    const r = await handle(sessions, undefined, cart)
    assert.equal(r.setCookie, `sessionid=${CART_VALUE}; expires=${IN_TWO_WEEKS}; Max-Age=1209600; Path=/`)
  })

  it('delete (default)', async (t) => {
    const { sessions } = await setup(t)
    const r = await handle(sessions, `sessionid=${CART_VALUE}`, (s) => s.flush())
    assert.equal(r.setCookie, `sessionid=""; expires=${EPOCH}; Max-Age=0; Path=/; SameSite=Lax`)
    assert.equal(r.varyHeader, 'Cookie')
  })

  it('delete (DOMAIN=.example.com, PATH=/app/, SAMESITE=None) carries Secure', async (t) => {
    const { sessions } = await setup(t, { cookieSecure: true, cookieDomain: '.example.com', cookiePath: '/app/', cookieSameSite: 'None' })
    const r = await handle(sessions, `sessionid=${CART_VALUE}`, (s) => s.flush())
    assert.equal(r.setCookie, `sessionid=""; Domain=.example.com; expires=${EPOCH}; Max-Age=0; Path=/app/; SameSite=None; Secure`)
    assert.equal(r.varyHeader, 'Cookie')
  })

  it('the cookie Django set is read back with its data', async (t) => {
    const { sessions, engine } = await setup(t)
    const r = await handle(sessions, `sessionid=${CART_VALUE}`, (s) => assert.deepEqual(s.get('cart'), [1, 2, 3]))
    assert.equal(r.setCookie, null)
    assert.equal(engine.calls.load, 1)
  })

  for (const [what, value] of [
    ['a tampered signature', CART_VALUE.slice(0, -1) + (CART_VALUE.endsWith('s') ? 't' : 's')],
    ['tampered data', 'eyJjYXJ0IjpbOSwyLDNdfQ' + CART_VALUE.slice(CART_VALUE.indexOf(':'))],
  ] as const) {
    it(`${what}: anonymous session, one warning, onSuspicious called, no write, cookie deleted`, async (t) => {
      const { sessions, engine, logger, events } = await setup(t)
      const r = await handle(sessions, `sessionid=${value}`, (s) => assert.equal(s.get('cart'), undefined))
      assert.equal(r.session.sessionKey, null)
      assert.equal(engine.calls.create + engine.calls.save, 0)
      assert.equal(r.setCookie, `sessionid=""; expires=${EPOCH}; Max-Age=0; Path=/; SameSite=Lax`)
      assert.equal(r.varyHeader, 'Cookie')
      assert.equal(events.filter((e) => e.kind === 'tampered').length, 1)
      assert.ok(logger.warnings.some((w) => w.includes('tampered')), 'a warning is logged')
      assert.ok(!logger.everything().includes(value), 'the cookie value is not logged')
      assert.ok(!JSON.stringify(events).includes(value), 'the cookie value is not in the event')
    })

    it(`${what}: is reported once, as tampered, not also as an unknown key`, async (t) => {
      const { sessions, logger, events } = await setup(t)
      await handle(sessions, `sessionid=${value}`, (s) => s.get('cart'))
      assert.deepEqual(events.map((e) => e.kind), ['tampered'])
      assert.equal(logger.warnings.length, 1, `one warning, got ${JSON.stringify(logger.warnings)}`)
    })
  }

  it('a garbage cookie value: anonymous session, one warning, onSuspicious called, no store call, cookie deleted', async (t) => {
    const { sessions, engine, logger, events } = await setup(t)
    const r = await handle(sessions, 'sessionid=<script>alert(1)</script>', (s) => s.get('cart'))
    assert.equal(r.session.sessionKey, null)
    assert.equal(engine.calls.load + engine.writes(), 0)
    assert.equal(r.setCookie, `sessionid=""; expires=${EPOCH}; Max-Age=0; Path=/; SameSite=Lax`)
    assert.deepEqual(events.map((e) => e.kind), ['malformed-key'])
    assert.equal(logger.warnings.length, 1)
  })

  it('a cookie past cookieAge loads as an anonymous session', async (t) => {
    const { sessions, clock } = await setup(t)
    clock.advance(1209600 + 1)
    const r = await handle(sessions, `sessionid=${CART_VALUE}`, (s) => assert.equal(s.get('cart'), undefined))
    assert.equal(r.session.sessionKey, null)
    assert.equal(r.setCookie, `sessionid=""; expires=${EPOCH}; Max-Age=0; Path=/; SameSite=Lax`)
  })

  it('a session too large for a browser cookie throws SessionTooLarge naming the size', async (t) => {
    const { sessions } = await setup(t)
    const state = await sessions.start(undefined)
    state.session.set('blob', noise(6000, 1))
    const err = await Promise.resolve(sessions.finish(state, 200)).then(
      () => assert.fail('end() should have thrown'),
      (error: unknown) => error,
    )
    assert.ok(err instanceof SessionTooLarge)
    assert.equal(err.code, 'ERR_SESSION_TOO_LARGE')
    assert.ok(err.size > 4096)
    assert.ok(err.message.includes(String(err.size)), err.message)
  })

  it('a session cookie of exactly 4096 bytes (name and value) is sent; 4097 is refused (S29)', async (t) => {
    const sizes = await cookieSizes()
    const fits = sizes.get(4096)
    const over = sizes.get(4097)
    assert.ok(fits && over, 'found data giving 4096- and 4097-byte cookies')
    const { sessions } = await setup(t)
    const ok = await handle(sessions, undefined, (s) => s.set(fits.name, fits.value))
    assert.equal(ok.setCookie?.split(';')[0]?.length, 4096)
    const state = await sessions.start(undefined)
    state.session.set(over.name, over.value)
    await assert.rejects(Promise.resolve(sessions.finish(state, 200)), (error: unknown) => {
      assert.ok(error instanceof SessionTooLarge)
      assert.equal(error.size, 4097)
      assert.match(error.message, /\b4097\b/)
      return true
    })
  })
})

/** A deterministic string of `n` characters that zlib cannot shrink much. */
function noise(n: number, seed: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  let x = seed >>> 0 || 1
  let s = ''
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    s += alphabet[(x >>> 0) % 64]
  }
  return s
}

/** Cookie size (name=value) → session data giving it, for sizes around the 4096-byte limit. */
async function cookieSizes(): Promise<Map<number, { name: string; value: string }>> {
  const settings = resolveSettings({ secretKey: SECRET, now: () => NOW, engine: 'signed_cookies' })
  const engine = signedCookiesEngine({ settings, codec: createCodec(settings) })
  const options = { mustCreate: true, expireDate: new Date(NOW + 1209600_000), expiryAge: 1209600 }
  const found = new Map<number, { name: string; value: string }>()
  for (let n = 3900; n < 4100 && !(found.has(4096) && found.has(4097)); n++) {
    for (const name of ['blob', 'blob2']) {
      const value = noise(n, 7)
      let size: number
      try {
        size = 'sessionid='.length + String(await engine.save('', new Map([[name, value]]), options)).length
      } catch (error) {
        if (!(error instanceof SessionTooLarge)) throw error
        size = error.size
      }
      if (!found.has(size)) found.set(size, { name, value })
    }
  }
  return found
}

// ------------------------------------------------------ the extension point for layers

describe('request extensions: the end-of-request work of the layers above the core', () => {
  const setup = (t: TestContext, settings: Partial<Settings> = {}) => open(t, memoryEngine(), settings)

  it('a request with no extension that needs no store call finishes synchronously (the quick path), with cookies null', async (t) => {
    const { sessions, engine } = await setup(t)
    const key = await stored(sessions, { user: 1 })
    engine.reset()
    for (const cookie of [undefined, `sessionid=${key}`]) {
      const started = sessions.start(cookie)
      const state = started instanceof Promise ? await started : started
      assert.equal(state.extensions, null, 'no extension until a layer adds one')
      state.session.get('user')
      const decision = sessions.finish(state, 200)
      assert.ok(!(decision instanceof Promise), 'no promise on the quick path')
      assert.equal(decision.cookies, null)
      assert.equal(sessions.quickEnd(state, 200) !== null, true, 'the deprecated quickEnd agrees')
    }
    assert.equal(engine.writes(), 0)
  })

  it('an extension runs before the save with the status and the request; its change is saved and its cookies come in order', async (t) => {
    const { sessions, engine } = await setup(t)
    const started = sessions.start('other=1; sessionid=abc')
    const state = started instanceof Promise ? await started : started
    assert.equal(requestSessionOf(state.session), state, 'the session leads back to its request')
    assert.equal(state.cookieHeader, 'other=1; sessionid=abc')
    const seen: string[] = []
    ;(state.extensions ??= []).push({
      finish(request, status) {
        seen.push(`first ${status} ${request.cookieHeader} saves=${engine.calls.create}`)
        request.session.set('by', 'layer')
        // One added while the others run runs too, after them.
        request.extensions!.push({ finish: async () => (seen.push('added'), ['c=3']) })
        return ['a=1', 'b=2']
      },
    })
    state.extensions.push({ finish: () => (seen.push('second'), null) })
    assert.equal(sessions.quickEnd(state, 200), null, 'the deprecated quickEnd declines a request with extensions')
    const finished = sessions.finish(state, 201)
    assert.ok(finished instanceof Promise, 'an extension takes the asynchronous end')
    const decision = await finished
    assert.deepEqual(seen, ['first 201 other=1; sessionid=abc saves=0', 'second', 'added'])
    assert.deepEqual(decision.cookies, ['a=1', 'b=2', 'c=3'])
    assert.match(decision.setCookie ?? '', /^sessionid=[a-z0-9]{32};/)
    assert.equal(engine.calls.create, 1, 'saved once, after the extensions')
    assert.deepEqual(await reload(sessions, state.session.sessionKey!), { by: 'layer' })
  })

  it('an extension runs on a 5xx too, where the session is not saved; its cookies are still returned', async (t) => {
    const { sessions, engine } = await setup(t)
    const state = await sessions.start(undefined)
    state.session.set('before', 1)
    state.extensions = [{ finish: (_request, status) => [`status=${status}`] }]
    const decision = await sessions.finish(state, 503)
    assert.equal(decision.setCookie, null)
    assert.deepEqual(decision.cookies, ['status=503'])
    assert.equal(engine.writes(), 0)
  })

  it('an extension that rejects fails finish() with its error, saves nothing, and the request lock is released', async (t) => {
    // The in-process cache engine: it has session locks.
    const sessions = createSessions({ secretKey: SECRET, engine: 'cache', now: manualClock(NOW), logger: capturingLogger() })
    t.after(() => sessions.close())
    const key = await stored(sessions, { user: 1 })
    const state = await sessions.start(`sessionid=${key}`)
    await state.session.lock()
    state.session.set('user', 2)
    const failure = new Error('layer down')
    state.extensions = [{ finish: async () => Promise.reject(failure) }]
    await assert.rejects(Promise.resolve(sessions.finish(state, 200)), (error) => error === failure)
    assert.equal(state.session.locked, false, 'released')
    assert.deepEqual(await reload(sessions, key), { user: 1 }, 'nothing saved')
    const other = await sessions.start(`sessionid=${key}`)
    await other.session.lock({ waitMs: 0 }) // free: taken at once
    await other.session.unlock()
  })

  it('a session made outside a request has no request', async (t) => {
    const { sessions } = await setup(t)
    assert.equal(requestSessionOf(sessions.session()), null)
  })

  it('the deprecated begin/end behave as start/finish, always as promises', async (t) => {
    const { sessions } = await setup(t)
    const begun = sessions.begin(undefined)
    assert.ok(begun instanceof Promise)
    const state = await begun
    state.session.set('k', 'v')
    const ended = sessions.end(state, 200)
    assert.ok(ended instanceof Promise)
    assert.match((await ended).setCookie ?? '', /^sessionid=/)
  })
})

// ---------------------------------------------------------------------------- patchVary

describe('patchVary (Django: patch_vary_headers(response, ("Cookie",)))', () => {
  const cases: [string, Parameters<typeof patchVary>[0], string][] = [
    ['no Vary', undefined, 'Cookie'],
    ['an empty Vary', '', 'Cookie'],
    ['an existing Accept-Encoding', 'Accept-Encoding', 'Accept-Encoding, Cookie'],
    ['an existing lower-case cookie', 'cookie', 'cookie'],
    ['an existing Cookie among others', 'Accept,Cookie ,  Origin', 'Accept, Cookie, Origin'],
    ['a star', '*', '*'],
    ['a star among others', 'Accept, *', '*'],
    ['a list of headers', ['Accept', 'Origin'], 'Accept, Origin, Cookie'],
    ['fields split on spaces and commas', 'Accept ,Origin', 'Accept, Origin, Cookie'],
  ]
  for (const [what, existing, expected] of cases) {
    it(`${what} (${JSON.stringify(existing)}) becomes ${JSON.stringify(expected)}`, () => {
      assert.equal(patchVary(existing), expected)
    })
  }
})

