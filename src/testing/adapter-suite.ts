/**
 * The contract suite every HTTP adapter passes: Django's `SessionMiddlewareTests`, plus what a
 * Node server adds. Exported by `sessionkit/testing` so that an adapter for another framework
 * can prove it behaves like the built-in ones (see {@link describeAdapter}).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Settings } from '../settings.js'
import type { Session } from '../session.js'
import { requestSessionOf, type RequestExtension } from '../middleware.js'
import type { Engine, EngineContext, EngineFactory } from '../engine.js'
import { cacheEngine } from '../engines/cache.js'
import { signedCookiesEngine } from '../engines/signed-cookies.js'
import { capturingLogger, manualClock, SUITE_SECRET } from './tools.js'

/** A server under test, listening on 127.0.0.1. */
export interface AdapterServer {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  readonly url: string
  /** Stop listening, drop keep-alive connections, and close the sessions (the engine). */
  close(): Promise<void>
}

/**
 * Starts a server for one test: the framework, the adapter configured with `settings`
 * (spread them into the adapter's settings as they are: they carry the engine, the clock
 * and the logger), and the routes of {@link describeAdapter}.
 */
export type MakeServer = (settings: Partial<Settings>) => Promise<AdapterServer>

/** Options of {@link describeAdapter}. */
export interface DescribeAdapterOptions {
  /** Why the whole suite is skipped, or `false`. */
  skip?: string | false
}

/** The storage calls the suite sees, and the knobs it turns, through a wrapped engine. */
interface Probe {
  factory: EngineFactory
  loads: number
  /** Creates and updates that reached the store. */
  saves: number
  /** Saves that the store finished. */
  saved: number
  deletes: number
  failLoad: Error | null
  failSave: Error | null
  /** Hold the next save before it reaches the store: `reached` once it is held, `release()` to let it go. */
  hold(): { reached: Promise<void>; release(): void }
}

function probe(inner: EngineFactory): Probe {
  let held: { reach(): void; wait: Promise<void> } | null = null
  const p: Probe = {
    factory,
    loads: 0,
    saves: 0,
    saved: 0,
    deletes: 0,
    failLoad: null,
    failSave: null,
    hold() {
      let reach!: () => void
      let release!: () => void
      const reached = new Promise<void>((r) => (reach = r))
      const wait = new Promise<void>((r) => (release = r))
      held = { reach, wait }
      return { reached, release }
    },
  }
  function wrap(engine: Engine): Engine {
    return {
      ...engine,
      name: engine.name,
      validKey: engine.validKey?.bind(engine),
      async load(key, options) {
        p.loads++
        if (p.failLoad) throw p.failLoad
        return engine.load(key, options)
      },
      async save(key, data, options) {
        p.saves++
        const gate = held
        held = null
        if (gate) {
          gate.reach()
          await gate.wait
        }
        if (p.failSave) throw p.failSave
        const result = await engine.save(key, data, options)
        p.saved++
        return result
      },
      async delete(key) {
        p.deletes++
        return engine.delete(key)
      },
      exists: (key) => engine.exists(key),
      clearExpired: (onProgress) => engine.clearExpired(onProgress),
      close: () => engine.close(),
    }
  }
  function factory(context: EngineContext): Engine | Promise<Engine> {
    const made = inner(context)
    return made instanceof Promise ? made.then(wrap) : wrap(made)
  }
  return p
}

/** A response, read to the end. */
interface Reply {
  status: number
  headers: Headers
  body: string
  /** Every `Set-Cookie` header, as sent. */
  setCookies: string[]
}

/** The reference's pinned time, 1700000000 s, as `http_date` writes it 2 weeks later. */
const IN_TWO_WEEKS = 'Tue, 28 Nov 2023 22:13:20 GMT'
const EPOCH_DATE = 'Thu, 01 Jan 1970 00:00:00 GMT'

/** Each case's time limit: an adapter that never answers fails its case instead of hanging the run. */
const LIMIT = { timeout: 10_000 }

/** The cookie of the suite's test layer (see {@link addTestLayer}). */
export const TEST_LAYER_COOKIE = 'sk_layer'

/**
 * Give the request of `session` the suite's test layer, a {@link RequestExtension} as the
 * layers above the core (messages, compat, users) use: at the end of the request, before the
 * save, it reads its own cookie (`sk_layer=N`, from the request's `Cookie` header), stores
 * `"<status>:<N>"` under `layer` in the session, and adds the cookie `sk_layer=N+1; Path=/`.
 * With `fail`, it rejects instead. The `/layer` route of {@link describeAdapter} calls it.
 */
export function addTestLayer(session: Session<any>, options: { fail?: boolean } = {}): void {
  const request = requestSessionOf(session)
  if (request === null) throw new TypeError('sessionkit: addTestLayer() needs the session of a request (req.session, ctx.session, …)')
  const layer: RequestExtension = {
    async finish(request, status) {
      if (options.fail) throw new Error('the test layer failed, as asked')
      const seen = Number(new RegExp(`(?:^|;\\s*)${TEST_LAYER_COOKIE}=(\\d+)`).exec(request.cookieHeader ?? '')?.[1] ?? 0)
      await request.session.aset('layer', `${status}:${seen}`) // loads first if the session is lazy
      return [`${TEST_LAYER_COOKIE}=${seen + 1}; Path=/`]
    },
  }
  ;(request.extensions ??= []).push(layer)
}

/**
 * Register the contract suite for one HTTP adapter under `describe(name)`: every behaviour
 * of Django's `SessionMiddlewareTests` (test names carry the Django test's name), plus what
 * a Node server adds — streamed responses, HEAD, handler errors, the app's own `Set-Cookie`
 * headers, a store that is down, a session ended by a concurrent request, and no store
 * round trip for a request without a session cookie. It drives a real server over HTTP
 * with `fetch`.
 *
 * Every case runs twice: on a server-side engine (the `cache` engine on an in-process
 * cache) and on `signed_cookies`. Each case starts its own server with `makeServer(settings)`
 * and closes it afterwards. `settings` carry the engine (wrapped to count and stall storage
 * calls), a manual clock at 1700000000 s, a capturing logger and the case's cookie settings:
 * pass them to the adapter unchanged.
 *
 * The server must answer these routes (any method, HEAD included, as the framework routes
 * GET; query values are plain strings; `text/plain` bodies):
 *
 * | route | the handler |
 * |---|---|
 * | `/set?k=v[&k2=v2…]` | `session.set(k, v)` for each query parameter; 200 `ok` |
 * | `/get?k=name` | 200, the body is `String(session.get(name) ?? '')` |
 * | `/delete?k=name` | `session.delete(name)`; 200 `ok` |
 * | `/flush` | `await session.flush()`; 200 `ok` |
 * | `/cycle` | `await session.cycleKey()`; 200 `ok` |
 * | `/expiry?s=N` | `session.setExpiry(Number(N))`; 200 `ok` |
 * | `/untouched` | never touches the session; 200 `ok` |
 * | `/vary` | sets the header `Vary: Accept-Encoding`, reads `session.get('k')`; 200 `ok` |
 * | `/status?code=N` | `session.set('hello', 'world')`, then answers status N (body `status N`) |
 * | `/throw` | `session.set('hello', 'world')`, then throws an `Error` (the framework's own 500) |
 * | `/stream` | `session.set('hello', 'world')`, then 200 with the body streamed as three chunks `one\n`, `two\n`, `three\n`, each after a turn of the event loop |
 * | `/cookies` | `session.set('hello', 'world')`, and two `Set-Cookie` headers of the app: `a=1; Path=/` and `b=2; Path=/`; 200 `ok` |
 * | `/redirect` | `session.set('hello', 'world')`, then 302 to `/get?k=hello` (absolute or relative) |
 * | `/layer?code=N[&fail=1]` | `addTestLayer(session, { fail })` (from `sessionkit/testing`; `fail` when the query has `fail=1`), then status N (default 200), body `ok`; the session is not touched |
 *
 * A handler error must reach the framework's ordinary error handling (500). A session
 * ended by a concurrent request is provoked without a special route: the suite holds a
 * save inside the engine while a second request flushes the session.
 *
 * ```ts
 * import { describeAdapter } from 'sessionkit/testing'
 * describeAdapter('my framework', async (settings) => {
 *   const app = myFramework()
 *   app.use(mySessionAdapter(settings))
 *   // … the routes above …
 *   return listenOn127001(app)
 * })
 * ```
 */
export function describeAdapter(name: string, makeServer: MakeServer, options: DescribeAdapterOptions = {}): void {
  describe(`adapter contract: ${name}`, { skip: options.skip ?? false }, () => {
    for (const kind of ['server', 'cookie'] as const) {
      const server = kind === 'server'
      const serverOnly = server ? false : 'a signed cookie has no server-side record'
      /** A key the engine could have issued, under which nothing is stored. */
      const unknownKey = server ? 'abcdefghijklmnopqrstuvwxyz012345' : `e30:1r31eq:${'A'.repeat(43)}`

      describe(server ? 'on the cache engine (in-process)' : 'on the signed_cookies engine', () => {
        async function start(t: TestContext, extra: Partial<Settings> = {}) {
          const clock = manualClock()
          const logger = capturingLogger()
          const engine = probe(server ? cacheEngine : signedCookiesEngine)
          const settings: Partial<Settings> = { secretKey: SUITE_SECRET, now: clock, logger, ...extra, engine: engine.factory }
          const running = await makeServer(settings)
          t.after(() => running.close(), LIMIT)
          const cookieName = extra.cookieName ?? 'sessionid'
          async function send(path: string, init: { cookie?: string | null; method?: string; otherCookies?: string } = {}): Promise<Reply> {
            const headers: Record<string, string> = {}
            const cookies = [init.cookie ? `${cookieName}=${init.cookie}` : '', init.otherCookies ?? ''].filter(Boolean)
            if (cookies.length) headers.cookie = cookies.join('; ')
            const res = await fetch(running.url + path, { method: init.method ?? 'GET', headers, redirect: 'manual' })
            return { status: res.status, headers: res.headers, body: await res.text(), setCookies: res.headers.getSetCookie() }
          }
          /** The session's `Set-Cookie` headers in `reply`. */
          const sessionCookies = (reply: Reply): string[] => reply.setCookies.filter((c) => c.startsWith(`${cookieName}=`))
          /** The value of the one session cookie `reply` sets. */
          function valueOf(reply: Reply): string {
            const [header, ...more] = sessionCookies(reply)
            assert.ok(header, `a ${cookieName} cookie is set (got ${JSON.stringify(reply.setCookies)})`)
            assert.equal(more.length, 0, 'one session cookie')
            return header.slice(cookieName.length + 1).split(';')[0]!
          }
          /** The session cookie of a fresh session holding `data`. */
          async function login(data = 'k=v'): Promise<string> {
            const reply = await send(`/set?${data}`)
            assert.equal(reply.status, 200)
            return valueOf(reply)
          }
          /** `header` with the cookie value replaced by `<key>`, to compare whole headers. */
          const shape = (header: string | undefined): string | undefined => header?.replace(/^([^=]+)=[^;]*/, '$1=<key>')
          return { url: running.url, engine, logger, clock, send, sessionCookies, valueOf, login, shape }
        }

        // Django's SessionMiddlewareTests

        it('test_secure_session_cookie: cookieSecure adds Secure to the session cookie', LIMIT, async (t) => {
          const { send, sessionCookies } = await start(t, { cookieSecure: true })
          const [cookie] = sessionCookies(await send('/set?k=v'))
          assert.match(cookie ?? '', /; Secure(;|$)/)
        })

        it('test_httponly_session_cookie: the session cookie is HttpOnly by default', LIMIT, async (t) => {
          const { send, sessionCookies } = await start(t)
          const [cookie] = sessionCookies(await send('/set?k=v'))
          assert.match(cookie ?? '', /; HttpOnly(;|$)/)
        })

        it('test_samesite_session_cookie: cookieSameSite "Strict" is sent as SameSite=Strict', LIMIT, async (t) => {
          const { send, sessionCookies } = await start(t, { cookieSameSite: 'Strict' })
          const [cookie] = sessionCookies(await send('/set?k=v'))
          assert.match(cookie ?? '', /; SameSite=Strict(;|$)/)
        })

        it('test_no_httponly_session_cookie: cookieHttpOnly false leaves HttpOnly out', LIMIT, async (t) => {
          const { send, sessionCookies } = await start(t, { cookieHttpOnly: false })
          const [cookie] = sessionCookies(await send('/set?k=v'))
          assert.ok(cookie, 'a session cookie is set')
          assert.doesNotMatch(cookie, /HttpOnly/i)
        })

        for (const [django, code] of [['test_session_save_on_500', 500], ['test_session_save_on_5xx', 503]] as const) {
          it(`${django}: a ${code} response neither saves the session nor sets its cookie, and still varies`, LIMIT, async (t) => {
            const { send, sessionCookies, engine } = await start(t)
            const reply = await send(`/status?code=${code}`)
            assert.equal(reply.status, code)
            assert.equal(reply.body, `status ${code}`)
            assert.deepEqual(sessionCookies(reply), [])
            assert.equal(reply.headers.get('vary'), 'Cookie')
            assert.equal(engine.saves, 0)
          })

          it(`${django}: a ${code} response leaves a stored session as it was`, LIMIT, async (t) => {
            const { send, sessionCookies, login } = await start(t)
            const key = await login('hello=before')
            const reply = await send(`/status?code=${code}`, { cookie: key })
            assert.equal(reply.status, code)
            assert.deepEqual(sessionCookies(reply), [])
            assert.equal((await send('/get?k=hello', { cookie: key })).body, 'before')
          })
        }

        it('test_session_update_error_redirect: a session flushed by a concurrent request answers 400 (SessionInterrupted) and is not recreated', { ...LIMIT, skip: serverOnly }, async (t) => {
          const { send, sessionCookies, login, engine, logger, shape } = await start(t)
          const key = await login()
          const held = engine.hold()
          const slow = send('/set?k=changed', { cookie: key })
          await held.reached
          const logout = await send('/flush', { cookie: key })
          assert.equal(logout.status, 200)
          assert.equal(shape(sessionCookies(logout)[0]), `sessionid=<key>; expires=${EPOCH_DATE}; Max-Age=0; Path=/; SameSite=Lax`)
          held.release()
          const interrupted = await slow
          assert.equal(interrupted.status, 400)
          assert.deepEqual(sessionCookies(interrupted), [], 'no cookie for a session that ended')
          assert.ok(logger.warnings.some((w) => w.includes('deleted before the request completed')), 'the interruption is logged')
          const after = await send('/get?k=k', { cookie: key })
          assert.equal(after.body, '', 'the flushed session stays gone')
        })

        it('test_session_delete_on_end: flushing the session of a request that carried a cookie deletes it, with Vary: Cookie', LIMIT, async (t) => {
          const { send } = await start(t)
          const reply = await send('/flush', { cookie: 'abc' })
          assert.deepEqual(reply.setCookies, [`sessionid=""; expires=${EPOCH_DATE}; Max-Age=0; Path=/; SameSite=Lax`])
          assert.equal(reply.headers.get('vary'), 'Cookie')
        })

        it('test_session_delete_on_end: flushing a stored session deletes the cookie and the session', LIMIT, async (t) => {
          const { send, login, sessionCookies } = await start(t)
          const key = await login()
          const reply = await send('/flush', { cookie: key })
          assert.deepEqual(sessionCookies(reply), [`sessionid=""; expires=${EPOCH_DATE}; Max-Age=0; Path=/; SameSite=Lax`])
          if (server) assert.equal((await send('/get?k=k', { cookie: key })).body, '')
        })

        it('test_session_delete_on_end_with_custom_domain_and_path: the deletion cookie carries the Domain and Path', LIMIT, async (t) => {
          const { send } = await start(t, { cookieDomain: '.example.local', cookiePath: '/example/' })
          const reply = await send('/flush', { cookie: 'abc' })
          assert.deepEqual(reply.setCookies, [
            `sessionid=""; Domain=.example.local; expires=${EPOCH_DATE}; Max-Age=0; Path=/example/; SameSite=Lax`,
          ])
        })

        it('test_flush_empty_without_session_cookie_doesnt_set_cookie: flushing without a cookie sets none, and varies', LIMIT, async (t) => {
          const { send, engine } = await start(t)
          const reply = await send('/flush')
          assert.equal(reply.status, 200)
          assert.deepEqual(reply.setCookies, [])
          assert.equal(reply.headers.get('vary'), 'Cookie')
          assert.equal(engine.saves, 0)
        })

        it('test_empty_session_saved: a session emptied of its keys is saved empty and its cookie re-sent', LIMIT, async (t) => {
          const { send, login, valueOf } = await start(t)
          const key = await login('foo=bar')
          const reply = await send('/delete?k=foo', { cookie: key })
          assert.equal(reply.status, 200)
          assert.equal(reply.headers.get('vary'), 'Cookie')
          const again = valueOf(reply)
          if (server) assert.equal(again, key, 'the same key')
          assert.equal((await send('/get?k=foo', { cookie: again })).body, '')
        })

        // The cookie, attribute by attribute, as Django writes it

        it('the session cookie is Django\'s, byte for byte: expires, HttpOnly, Max-Age, Path, SameSite', LIMIT, async (t) => {
          const { send, sessionCookies, shape } = await start(t)
          const reply = await send('/set?k=v')
          assert.equal(shape(sessionCookies(reply)[0]), `sessionid=<key>; expires=${IN_TWO_WEEKS}; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax`)
          assert.equal(reply.headers.get('vary'), 'Cookie')
        })

        it('Domain, SameSite=None, Secure and Partitioned are written in Django\'s order', LIMIT, async (t) => {
          const { send, sessionCookies, shape } = await start(t, {
            cookieSecure: true,
            cookieDomain: '.example.com',
            cookieSameSite: 'None',
            cookiePartitioned: true,
          })
          assert.equal(
            shape(sessionCookies(await send('/set?k=v'))[0]),
            `sessionid=<key>; Domain=.example.com; expires=${IN_TWO_WEEKS}; HttpOnly; Max-Age=1209600; Path=/; SameSite=None; Secure; Partitioned`,
          )
        })

        it('cookieName and cookiePath are used for the cookie that is read and the one that is set', LIMIT, async (t) => {
          const { send, sessionCookies, shape, valueOf } = await start(t, { cookieName: '__Secure-sid', cookieSecure: true, cookiePath: '/app/' })
          const reply = await send('/set?k=v')
          assert.equal(shape(sessionCookies(reply)[0]), `__Secure-sid=<key>; expires=${IN_TWO_WEEKS}; HttpOnly; Max-Age=1209600; Path=/app/; SameSite=Lax; Secure`)
          assert.equal((await send('/get?k=k', { cookie: valueOf(reply) })).body, 'v')
        })

        it('expireAtBrowserClose sends a cookie without Max-Age or expires', LIMIT, async (t) => {
          const { send, sessionCookies, shape } = await start(t, { expireAtBrowserClose: true })
          assert.equal(shape(sessionCookies(await send('/set?k=v'))[0]), 'sessionid=<key>; HttpOnly; Path=/; SameSite=Lax')
        })

        it('setExpiry(0) makes a browser-session cookie; setExpiry(60) sends Max-Age=60 and the matching expires', LIMIT, async (t) => {
          const { send, sessionCookies, shape } = await start(t)
          assert.equal(shape(sessionCookies(await send('/expiry?s=0'))[0]), 'sessionid=<key>; HttpOnly; Path=/; SameSite=Lax')
          const inAMinute = new Date(1_700_000_060_000).toUTCString()
          assert.equal(shape(sessionCookies(await send('/expiry?s=60'))[0]), `sessionid=<key>; expires=${inAMinute}; HttpOnly; Max-Age=60; Path=/; SameSite=Lax`)
        })

        it('saveEveryRequest re-sends the cookie of a session that was only read, with a refreshed expiry', LIMIT, async (t) => {
          const { send, login, valueOf, clock } = await start(t, { saveEveryRequest: true })
          const key = await login()
          clock.advance(60)
          const reply = await send('/get?k=k', { cookie: key })
          assert.equal(reply.body, 'v')
          const again = valueOf(reply)
          if (server) assert.equal(again, key)
          assert.match(reply.setCookies.join('\n'), new RegExp(`expires=${new Date(1_700_000_060_000 + 1_209_600_000).toUTCString()}`))
        })

        it('saveEveryRequest creates nothing for a new visitor whose session stays empty (#25489)', LIMIT, async (t) => {
          const { send, engine } = await start(t, { saveEveryRequest: true })
          for (const path of ['/get?k=k', '/untouched']) {
            const reply = await send(path)
            assert.deepEqual(reply.setCookies, [], path)
          }
          assert.equal(engine.saves, 0)
        })

        // Reads, Vary and keys

        it('a session set in one request is read in the next; a read adds Vary: Cookie and no Set-Cookie', LIMIT, async (t) => {
          const { send, login, engine } = await start(t)
          const key = await login('k=v&other=2')
          const reply = await send('/get?k=other', { cookie: key })
          assert.equal(reply.body, '2')
          assert.equal(reply.headers.get('vary'), 'Cookie')
          assert.deepEqual(reply.setCookies, [])
          assert.equal(engine.saves, 1)
        })

        it('a handler that never touches the session gets neither Vary nor Set-Cookie, with or without a live cookie', LIMIT, async (t) => {
          const { send, login } = await start(t)
          const key = await login()
          for (const cookie of [null, key]) {
            const reply = await send('/untouched', { cookie })
            assert.equal(reply.status, 200)
            assert.equal(reply.headers.get('vary'), null)
            assert.deepEqual(reply.setCookies, [])
          }
        })

        it('the app\'s own Vary is kept and Cookie is added to it', LIMIT, async (t) => {
          const { send } = await start(t)
          assert.equal((await send('/vary')).headers.get('vary'), 'Accept-Encoding, Cookie')
        })

        it('an unknown session cookie is never adopted: writing issues a fresh key (session fixation)', LIMIT, async (t) => {
          const { send, valueOf } = await start(t)
          const reply = await send('/set?k=v', { cookie: unknownKey })
          const fresh = valueOf(reply)
          assert.notEqual(fresh, unknownKey)
          assert.equal((await send('/get?k=k', { cookie: unknownKey })).body, '')
          assert.equal((await send('/get?k=k', { cookie: fresh })).body, 'v')
        })

        it('an unknown session cookie the handler never touches is deleted once (sessionkit loads before the handler; Django sends nothing)', LIMIT, async (t) => {
          const { send, sessionCookies } = await start(t)
          const reply = await send('/untouched', { cookie: unknownKey })
          assert.deepEqual(sessionCookies(reply), [`sessionid=""; expires=${EPOCH_DATE}; Max-Age=0; Path=/; SameSite=Lax`])
        })

        it('lazy: an unknown session cookie the handler never touches gets no Set-Cookie, no Vary and no store round trip (Django)', LIMIT, async (t) => {
          const { send, engine } = await start(t, { lazy: true })
          const reply = await send('/untouched', { cookie: unknownKey })
          assert.equal(reply.status, 200)
          assert.deepEqual(reply.setCookies, [])
          assert.equal(reply.headers.get('vary'), null)
          assert.equal(engine.loads, 0)
        })

        it('cycleKey keeps the data under a new key and the old key no longer works', LIMIT, async (t) => {
          const { send, login, valueOf } = await start(t)
          const key = await login()
          const fresh = valueOf(await send('/cycle', { cookie: key }))
          assert.equal((await send('/get?k=k', { cookie: fresh })).body, 'v')
          if (server) {
            assert.notEqual(fresh, key)
            assert.equal((await send('/get?k=k', { cookie: key })).body, '')
          }
        })

        // What a server adds

        it('the save is finished before the response is sent', LIMIT, async (t) => {
          const { url, engine, valueOf } = await start(t)
          const held = engine.hold()
          const pending = fetch(`${url}/set?k=v`, { redirect: 'manual' })
          await held.reached
          const early = await Promise.race([pending.then(() => 'answered'), sleep(50).then(() => 'held')])
          assert.equal(early, 'held', 'no response while the save is held')
          held.release()
          const res = await pending
          assert.equal(engine.saved, 1, 'the store had finished when the response arrived')
          const reply = { status: res.status, headers: res.headers, body: await res.text(), setCookies: res.headers.getSetCookie() }
          assert.equal(reply.status, 200)
          valueOf(reply)
        })

        it('a request without a session cookie costs no store round trip; one with a cookie costs one load', LIMIT, async (t) => {
          const { send, login, engine } = await start(t)
          for (const path of ['/get?k=k', '/untouched', '/flush', '/vary']) assert.equal((await send(path)).status, 200, path)
          const key = await login()
          assert.equal(engine.loads, 0, 'no load without a cookie, not even to save a new session')
          assert.equal((await send('/get?k=k', { cookie: key })).body, 'v')
          assert.equal(engine.loads, 1)
        })

        it('a store that is down on load answers 503 (logged) to a request with a cookie, and still serves one without', LIMIT, async (t) => {
          const { send, login, engine, logger } = await start(t)
          const key = await login()
          engine.failLoad = new Error('connection refused')
          const reply = await send('/get?k=k', { cookie: key })
          assert.equal(reply.status, 503)
          assert.notEqual(reply.body, 'v')
          assert.deepEqual(reply.setCookies, [])
          assert.ok(logger.errors.length >= 1, 'logged')
          assert.equal((await send('/untouched')).status, 200)
        })

        it('a store that is down on save answers 503 (logged) and sets no cookie', LIMIT, async (t) => {
          const { send, engine, logger } = await start(t)
          engine.failSave = new Error('connection refused')
          const reply = await send('/set?k=v')
          assert.equal(reply.status, 503)
          assert.deepEqual(reply.setCookies, [])
          assert.ok(logger.errors.length >= 1, 'logged')
        })

        it('a streamed response gets the session cookie and every chunk in order', LIMIT, async (t) => {
          const { send, valueOf } = await start(t)
          const reply = await send('/stream')
          assert.equal(reply.status, 200)
          assert.equal(reply.body, 'one\ntwo\nthree\n')
          assert.equal((await send('/get?k=hello', { cookie: valueOf(reply) })).body, 'world')
        })

        it('a HEAD request saves the session and sends the cookie, with no body', LIMIT, async (t) => {
          const { send, valueOf } = await start(t)
          const reply = await send('/set?k=v', { method: 'HEAD' })
          assert.equal(reply.status, 200)
          assert.equal(reply.body, '')
          assert.equal(reply.headers.get('vary'), 'Cookie')
          assert.equal((await send('/get?k=k', { cookie: valueOf(reply) })).body, 'v')
        })

        it('a handler that throws answers 500, saves nothing and leaves the stored session as it was', LIMIT, async (t) => {
          const { send, login, sessionCookies, engine } = await start(t)
          const thrown = await send('/throw')
          assert.equal(thrown.status, 500)
          assert.deepEqual(sessionCookies(thrown), [])
          assert.equal(engine.saves, 0)
          const key = await login('hello=before')
          assert.equal((await send('/throw', { cookie: key })).status, 500)
          assert.equal((await send('/get?k=hello', { cookie: key })).body, 'before')
        })

        it('two Set-Cookie headers from the app are kept beside the session\'s', LIMIT, async (t) => {
          const { send, sessionCookies } = await start(t)
          const reply = await send('/cookies')
          assert.equal(reply.status, 200)
          assert.equal(reply.setCookies.length, 3, JSON.stringify(reply.setCookies))
          assert.ok(reply.setCookies.some((c) => /^a=1(;|$)/.test(c)), 'a=1')
          assert.ok(reply.setCookies.some((c) => /^b=2(;|$)/.test(c)), 'b=2')
          assert.equal(sessionCookies(reply).length, 1)
        })

        it('a redirect right after writing the session carries the cookie, and the next request reads it', LIMIT, async (t) => {
          const { send, valueOf } = await start(t)
          const reply = await send('/redirect')
          assert.equal(reply.status, 302)
          assert.match(reply.headers.get('location') ?? '', /\/get\?k=hello$/)
          assert.equal((await send('/get?k=hello', { cookie: valueOf(reply) })).body, 'world')
        })

        // The core's extension point: a layer's end-of-request work (RequestExtension)

        it('a layer runs before the save: its change to the session is saved and its cookie follows the session cookie', LIMIT, async (t) => {
          const { send, engine, valueOf } = await start(t)
          const reply = await send('/layer')
          assert.equal(reply.status, 200)
          assert.equal(reply.body, 'ok')
          assert.equal(reply.setCookies.length, 2, JSON.stringify(reply.setCookies))
          assert.match(reply.setCookies[0]!, /^sessionid=/, 'the session cookie first')
          assert.equal(reply.setCookies[1], `${TEST_LAYER_COOKIE}=1; Path=/`, "then the layer's")
          assert.equal(engine.saves, 1, 'one save, with the change the layer made')
          assert.equal((await send('/get?k=layer', { cookie: valueOf(reply) })).body, '200:0')
        })

        it('a layer reads its own cookie from the request, on a session that has a cookie', LIMIT, async (t) => {
          const { send, login, valueOf } = await start(t)
          const key = await login()
          const reply = await send('/layer', { cookie: key, otherCookies: `${TEST_LAYER_COOKIE}=41` })
          assert.equal(reply.status, 200)
          assert.ok(reply.setCookies.includes(`${TEST_LAYER_COOKIE}=42; Path=/`), JSON.stringify(reply.setCookies))
          const again = valueOf(reply)
          if (server) assert.equal(again, key, 'the same session')
          assert.equal((await send('/get?k=layer', { cookie: again })).body, '200:41')
          assert.equal((await send('/get?k=k', { cookie: again })).body, 'v', 'the rest of the session is kept')
        })

        it('a layer runs on a 5xx response too, and its cookie is sent, while the session is not saved', LIMIT, async (t) => {
          const { send, engine, sessionCookies } = await start(t)
          const reply = await send('/layer?code=503')
          assert.equal(reply.status, 503)
          assert.deepEqual(sessionCookies(reply), [])
          assert.deepEqual(reply.setCookies, [`${TEST_LAYER_COOKIE}=1; Path=/`])
          assert.equal(engine.saves, 0)
        })

        it('a layer that fails fails the request as a failed save would: 500, logged, no cookie, nothing saved', LIMIT, async (t) => {
          const { send, engine, logger } = await start(t)
          const reply = await send('/layer?fail=1')
          assert.equal(reply.status, 500)
          assert.deepEqual(reply.setCookies, [])
          assert.equal(engine.saves, 0)
          assert.ok(logger.errors.some((e) => e.includes('the test layer failed')), JSON.stringify(logger.errors))
        })
      })
    }
  })
}

