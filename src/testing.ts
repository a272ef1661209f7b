/**
 * The conformance suite every engine passes: Django's `SessionTestsMixin`
 * (`tests/sessions_tests/tests.py`), ported. Exported as `sessionkit/testing` so that a
 * third-party engine can prove it behaves like the built-in ones:
 *
 * ```ts
 * import { describeEngine } from 'sessionkit/testing'
 * import { createSessions } from 'sessionkit'
 * describeEngine('my-engine', (settings) => createSessions({ ...settings, engine: myEngine }))
 * ```
 *
 * Each case builds its own sessions through `make` (no ordered, stateful suites) and closes
 * them afterwards. Test names carry the name of the Django test they port.
 */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { UpdateError } from './errors.js'
import type { Sessions } from './middleware.js'
import type { Session } from './session.js'
import type { Logger, Settings } from './settings.js'
import type { LoadedSession, SessionMap } from './engine.js'
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Engine, EngineContext, EngineFactory } from './engine.js'
import { cacheEngine } from './engines/cache.js'
import { signedCookiesEngine } from './engines/signed-cookies.js'

/** Settings the suite passes to `make`: merge them over the engine's own. */
export type SuiteSettings = Pick<Settings, 'secretKey' | 'now' | 'logger'> & Partial<Settings>

/** Builds the sessions under test from the suite's settings. */
export type MakeSessions = (settings: SuiteSettings) => Sessions | Promise<Sessions>

/** Options of {@link describeEngine}. */
export interface DescribeEngineOptions {
  /**
   * `'cookie'` for engines whose cookie carries the data (signed cookies): the cases about
   * server-side existence, deletion and key cycling do not apply and are skipped, as in
   * Django's `CookieSessionTests`. Default `'server'`.
   */
  stores?: 'server' | 'cookie'
  /** Why the whole suite is skipped (a service is absent), or `false`. */
  skip?: string | false
  /**
   * `'store'` for engines whose store alone expires idle sessions, on its own clock (the cache's
   * TTL, as Django's cache format on Redis or Memcached): the idle-expiry case then runs on
   * real time, with TTLs of seconds, instead of the injected clock. Default `'clock'`.
   */
  expiry?: 'clock' | 'store'
}

/** A clock the tests move by hand. */
export interface ManualClock {
  (): number
  set(ms: number): void
  advance(seconds: number): void
}

/** A clock starting at `start` ms (default 1700000000000, the reference's pinned time). */
export function manualClock(start = 1_700_000_000_000): ManualClock {
  let t = start
  return Object.assign(() => t, {
    set: (ms: number) => void (t = ms),
    advance: (seconds: number) => void (t += seconds * 1000),
  })
}

/** A logger that keeps what it is given, for assertions. */
export function capturingLogger(): Logger & { warnings: string[]; errors: string[] } {
  const warnings: string[] = []
  const errors: string[] = []
  return {
    warnings,
    errors,
    warn: (m) => void warnings.push(m),
    error: (m, e) => void errors.push(e === undefined ? m : `${m} ${String(e)}`),
  }
}

/** The data of an engine's `load` result, whether the engine keeps versions or not. */
export function dataOf(result: LoadedSession | SessionMap | null): SessionMap | null {
  return result === null || result instanceof Map ? result : result.data
}

/** The secret the suite signs with. */
export const SUITE_SECRET = 'sessionkit-conformance-secret-0123456789'

/**
 * Register the conformance suite for one engine under `describe(name)`.
 */
export function describeEngine(name: string, make: MakeSessions, options: DescribeEngineOptions = {}): void {
  const server = (options.stores ?? 'server') === 'server'
  const serverOnly = server ? false : 'does not apply to an engine whose cookie carries the data'

  describe(`engine conformance: ${name}`, { skip: options.skip ?? false }, () => {
    const opened: Sessions[] = []
    after(async () => {
      await Promise.all(opened.map((s) => s.close()))
    })

    async function setup(extra: Partial<Settings> = {}) {
      const clock = manualClock()
      const logger = capturingLogger()
      const sessions = await make({ secretKey: SUITE_SECRET, now: clock, logger, ...extra })
      opened.push(sessions)
      await sessions.ready()
      await sessions.migrate()
      const session = sessions.session()
      return { sessions, session, clock, logger }
    }

    /** A session saved with `data`, and a fresh one reopened on its key. */
    async function saved(sessions: Sessions, data: Record<string, unknown>): Promise<{ key: string; reopen(): Promise<Session> }> {
      const s = sessions.session()
      s.update(data)
      await s.save()
      const key = s.sessionKey
      assert.ok(key, 'a saved session has a key')
      return {
        key,
        async reopen() {
          const again = sessions.session(key)
          await again.load()
          return again
        },
      }
    }

    it('test_new_session: a new session is neither modified nor accessed', async () => {
      const { session } = await setup()
      assert.equal(session.modified, false)
      assert.equal(session.accessed, false)
    })

    it('test_get_empty: get of a missing key gives undefined', async () => {
      const { session } = await setup()
      assert.equal(session.get('cat'), undefined)
    })

    it('test_store: set marks the session modified and pop returns the value', async () => {
      const { session } = await setup()
      session.set('cat', 'dog')
      assert.equal(session.modified, true)
      assert.equal(session.pop('cat'), 'dog')
    })

    it('test_pop: pop returns the value and marks accessed and modified', async () => {
      const { session } = await setup()
      session.set('some key', 'exists')
      session.accessed = false
      session.modified = false
      assert.equal(session.pop('some key'), 'exists')
      assert.equal(session.accessed, true)
      assert.equal(session.modified, true)
      assert.equal(session.get('some key'), undefined)
    })

    it('test_pop_default: pop of a missing key returns the default without modifying', async () => {
      const { session } = await setup()
      assert.equal(session.pop('some key', 'does not exist'), 'does not exist')
      assert.equal(session.accessed, true)
      assert.equal(session.modified, false)
    })

    it('test_pop_no_default_keyerror_raised: pop of a missing key without a default gives undefined and does not modify', async () => {
      const { session } = await setup()
      assert.equal(session.pop('some key'), undefined)
      assert.equal(session.modified, false)
    })

    it('test_setdefault: setDefault stores once and returns the stored value after', async () => {
      const { session } = await setup()
      assert.equal(session.setDefault('foo', 'bar'), 'bar')
      assert.equal(session.setDefault('foo', 'baz'), 'bar')
      assert.equal(session.accessed, true)
      assert.equal(session.modified, true)
    })

    it('test_setdefault: setDefault of an existing key does not modify', async () => {
      const { session } = await setup()
      session.set('foo', 'bar')
      session.modified = false
      assert.equal(session.setDefault('foo', 'baz'), 'bar')
      assert.equal(session.modified, false)
    })

    it('test_update: update marks accessed and modified, even for an empty object', async () => {
      const { session } = await setup()
      session.update({ 'update key': 1 })
      assert.equal(session.accessed, true)
      assert.equal(session.modified, true)
      assert.equal(session.get('update key'), 1)
      session.modified = false
      session.update({})
      assert.equal(session.modified, true)
    })

    it('test_has_key: has marks accessed, not modified', async () => {
      const { session } = await setup()
      session.set('some key', 1)
      session.modified = false
      session.accessed = false
      assert.equal(session.has('some key'), true)
      assert.equal(session.accessed, true)
      assert.equal(session.modified, false)
    })

    it('test_values: values marks accessed, not modified', async () => {
      const { session } = await setup()
      assert.deepEqual(session.values(), [])
      assert.equal(session.accessed, true)
      session.set('some key', 1)
      session.modified = false
      session.accessed = false
      assert.deepEqual(session.values(), [1])
      assert.equal(session.accessed, true)
      assert.equal(session.modified, false)
    })

    it('test_keys: keys marks accessed, not modified', async () => {
      const { session } = await setup()
      session.set('x', 1)
      session.modified = false
      session.accessed = false
      assert.deepEqual(session.keys(), ['x'])
      assert.equal(session.accessed, true)
      assert.equal(session.modified, false)
    })

    it('test_items: entries marks accessed, not modified', async () => {
      const { session } = await setup()
      session.set('x', 1)
      session.modified = false
      session.accessed = false
      assert.deepEqual(session.entries(), [['x', 1]])
      assert.equal(session.accessed, true)
      assert.equal(session.modified, false)
    })

    it('test_clear: clear empties the session and marks accessed and modified', async () => {
      const { session } = await setup()
      session.set('x', 1)
      session.modified = false
      session.accessed = false
      session.clear()
      assert.deepEqual(session.entries(), [])
      assert.equal(session.accessed, true)
      assert.equal(session.modified, true)
    })

    it('test_save: a saved session exists in the store', { skip: serverOnly }, async () => {
      const { session } = await setup()
      await session.save()
      assert.equal(await session.exists(session.sessionKey!), true)
    })

    it('test_delete: a destroyed session no longer exists', { skip: serverOnly }, async () => {
      const { session } = await setup()
      await session.save()
      const key = session.sessionKey!
      await session.destroy(key)
      assert.equal(await session.exists(key), false)
    })

    it('test_flush: flush deletes the stored session and drops the key', async () => {
      const { session } = await setup()
      session.set('foo', 'bar')
      await session.save()
      const previous = session.sessionKey!
      await session.flush()
      assert.equal(await session.exists(previous), false)
      assert.notEqual(session.sessionKey, previous)
      assert.equal(session.sessionKey, null)
      assert.equal(session.modified, true)
      assert.equal(session.accessed, true)
    })

    it('test_cycle: cycleKey keeps the data under a new key and deletes the old one', { skip: serverOnly }, async () => {
      const { session } = await setup()
      session.set('a', 'c')
      session.set('b', 'd')
      await session.save()
      const previous = session.sessionKey!
      const before = session.entries()
      await session.cycleKey()
      assert.equal(await session.exists(previous), false)
      assert.notEqual(session.sessionKey, previous)
      assert.deepEqual(session.entries(), before)
    })

    it('test_cycle_with_no_session_cache: cycleKey on a session not yet loaded keeps its data', async () => {
      const { sessions } = await setup()
      const { key } = await saved(sessions, { a: 'c', b: 'd' })
      const fresh = sessions.session(key)
      assert.equal(fresh.isLoaded, false)
      await fresh.cycleKey()
      assert.deepEqual(new Map(fresh.entries()), new Map([['a', 'c'], ['b', 'd']]))
      if (server) assert.notEqual(fresh.sessionKey, key)
      const reopened = sessions.session(fresh.sessionKey)
      await reopened.load()
      assert.deepEqual(new Map(reopened.entries()), new Map([['a', 'c'], ['b', 'd']]))
    })

    it('test_save_doesnt_clear_data: saving keeps the data in memory', async () => {
      const { session } = await setup()
      session.set('a', 'b')
      await session.save()
      assert.equal(session.get('a'), 'b')
    })

    it('test_invalid_key: a session on an invalid key saves under a new key', async () => {
      const { sessions } = await setup()
      const session = sessions.session('1')
      await session.save()
      assert.notEqual(session.sessionKey, '1')
      assert.equal(session.get('cat'), undefined)
    })

    it('test_session_key_empty_string_invalid: an empty key is no key', async () => {
      const { sessions } = await setup()
      assert.equal(sessions.session('').sessionKey, null)
    })

    it('test_session_key_too_short_invalid: a key of 7 characters is no key', { skip: serverOnly }, async () => {
      const { sessions } = await setup()
      assert.equal(sessions.session('1234567').sessionKey, null)
    })

    it('test_session_key_valid_string_saved: a key of 8 characters is kept', { skip: serverOnly }, async () => {
      const { sessions } = await setup()
      assert.equal(sessions.session('12345678').sessionKey, '12345678')
    })

    it('keys longer than 40 characters or outside [a-z0-9] are never adopted', { skip: serverOnly }, async () => {
      const { sessions } = await setup()
      assert.equal(sessions.session('a'.repeat(41)).sessionKey, null)
      assert.equal(sessions.session('ABCDEFGHIJ').sessionKey, null)
      assert.equal(sessions.session('../../etc/passwd').sessionKey, null)
      assert.equal(sessions.session('abcdefgh\u0000').sessionKey, null)
    })

    it('test_session_key_is_read_only: sessionKey cannot be assigned', async () => {
      const { session } = await setup()
      assert.throws(() => {
        ;(session as unknown as { sessionKey: string }).sessionKey = 'a'.repeat(32)
      }, TypeError)
    })

    it('test_default_expiry: the expiry age is cookieAge, also after setExpiry(0)', async () => {
      const { session, sessions } = await setup()
      assert.equal(session.getExpiryAge(), sessions.settings.cookieAge)
      session.setExpiry(0)
      assert.equal(session.getExpiryAge(), sessions.settings.cookieAge)
    })

    it('test_custom_expiry_seconds: setExpiry(10) gives an age of 10 and a date 10 s after the modification', async () => {
      const { session } = await setup()
      const modification = new Date(1_700_000_000_000)
      session.setExpiry(10)
      assert.equal(session.getExpiryDate({ modification }).getTime(), modification.getTime() + 10_000)
      assert.equal(session.getExpiryAge({ modification }), 10)
    })

    it('test_custom_expiry_datetime: setExpiry(date) gives that date and the age to it', async () => {
      const { session, clock } = await setup()
      const modification = new Date(clock() + 123) // sub-second precision must survive the ISO round trip
      session.setExpiry(new Date(modification.getTime() + 10_000))
      assert.equal(session.getExpiryDate({ modification }).getTime(), modification.getTime() + 10_000)
      assert.equal(session.getExpiryAge({ modification }), 10)
    })

    it('test_custom_expiry_reset: setExpiry(null) returns to cookieAge', async () => {
      const { session, sessions } = await setup()
      session.setExpiry(null)
      session.setExpiry(10)
      session.setExpiry(null)
      assert.equal(session.getExpiryAge(), sessions.settings.cookieAge)
    })

    it('test_get_expire_at_browser_close: 10 → false, 0 → true, null → the setting (false)', async () => {
      const { session } = await setup({ expireAtBrowserClose: false })
      session.setExpiry(10)
      assert.equal(session.getExpireAtBrowserClose(), false)
      session.setExpiry(0)
      assert.equal(session.getExpireAtBrowserClose(), true)
      session.setExpiry(null)
      assert.equal(session.getExpireAtBrowserClose(), false)
    })

    it('test_get_expire_at_browser_close: 10 → false, 0 → true, null → the setting (true)', async () => {
      const { session } = await setup({ expireAtBrowserClose: true })
      session.setExpiry(10)
      assert.equal(session.getExpireAtBrowserClose(), false)
      session.setExpiry(0)
      assert.equal(session.getExpireAtBrowserClose(), true)
      session.setExpiry(null)
      assert.equal(session.getExpireAtBrowserClose(), true)
    })

    it('test_actual_expiry: a session saved with an expiry in the past does not load', async () => {
      const { sessions } = await setup()
      const session = sessions.session()
      session.set('foo', 'bar')
      session.setExpiry(-10)
      await session.save()
      const key = session.sessionKey!
      const again = sessions.session(key)
      await again.load()
      assert.equal(again.has('foo'), false)
    })

    it('an idle session expires on the server after cookieAge, also for setExpiry(N)', async () => {
      if (options.expiry === 'store') {
        // The store's own TTL, in real seconds (memcached counts whole seconds: up to one more).
        const { sessions } = await setup({ cookieAge: 6, now: Date.now })
        const plain = await saved(sessions, { a: 1 })
        const custom = sessions.session()
        custom.set('b', 2)
        custom.setExpiry(1)
        await custom.save()
        const customKey = custom.sessionKey!
        const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
        await pause(2500)
        const c = sessions.session(customKey)
        await c.load()
        assert.equal(c.has('b'), false, 'a setExpiry(1) session is gone after 2.5 s')
        assert.equal((await plain.reopen()).get('a'), 1, 'a cookieAge session is still there after 2.5 s')
        await pause(5000)
        assert.equal((await plain.reopen()).has('a'), false, 'a cookieAge session is gone after 7.5 s')
        return
      }
      const { sessions, clock } = await setup({ cookieAge: 60 })
      const plain = await saved(sessions, { a: 1 })
      const custom = sessions.session()
      custom.set('b', 2)
      custom.setExpiry(30)
      await custom.save()
      const customKey = custom.sessionKey!
      clock.advance(31)
      const c = sessions.session(customKey)
      await c.load()
      assert.equal(c.has('b'), false, 'a setExpiry(30) session is gone after 31 s')
      assert.equal((await plain.reopen()).get('a'), 1, 'a cookieAge session is still there after 31 s')
      clock.advance(30)
      assert.equal((await plain.reopen()).has('a'), false, 'a cookieAge session is gone after 61 s')
    })

    it('a session with a fixed expiry date expires on the server at that date', async () => {
      const { sessions, clock } = await setup()
      const session = sessions.session()
      session.set('a', 1)
      session.setExpiry(new Date(clock() + 20_000))
      await session.save()
      const key = session.sessionKey!
      clock.advance(19)
      const before = sessions.session(key)
      await before.load()
      assert.equal(before.get('a'), 1)
      clock.advance(2)
      const afterIt = sessions.session(key)
      await afterIt.load()
      assert.equal(afterIt.has('a'), false)
    })

    it('test_session_load_does_not_create_record: loading an unknown key drops it and writes nothing', { skip: serverOnly }, async () => {
      const { sessions } = await setup()
      const session = sessions.session('someunknownkey')
      await session.load()
      assert.equal(session.sessionKey, null)
      assert.equal(await session.exists('someunknownkey'), false)
      assert.equal(session.isEmpty(), true)
    })

    it('test_session_save_does_not_resurrect_session_logged_out_in_other_context: saving a session deleted elsewhere throws UpdateError', { skip: serverOnly }, async () => {
      const { sessions } = await setup()
      const s1 = sessions.session()
      await s1.save()
      const key = s1.sessionKey!
      const s2 = sessions.session(key)
      await s2.load()
      await s2.destroy()
      s1.set('test_data', 'value1')
      await assert.rejects(s1.save(), UpdateError)
      const s3 = sessions.session(key)
      await s3.load()
      assert.equal(s3.has('test_data'), false)
      assert.equal(await s1.exists(key), false)
    })

    it('data round-trips with non-ASCII text, emoji, nesting, numbers, booleans and null', async () => {
      const { sessions } = await setup()
      const data = {
        text: 'élève — 日本語 😀 \u007f \u0001 "quoted" <b>&amp;</b> \\ /',
        nested: { list: [1, 2, [3, { deep: true }]], none: null },
        int: 42,
        negative: -7,
        big: 2 ** 53 - 1,
        float: 1.5,
        yes: true,
        no: false,
        empty: '',
      }
      const { reopen } = await saved(sessions, data)
      const again = await reopen()
      assert.deepEqual(Object.fromEntries(again.entries()), data)
    })

    it('__proto__, constructor, get and save are ordinary keys: no prototype pollution', async () => {
      const { sessions } = await setup()
      const s = sessions.session()
      s.set('__proto__', { polluted: true })
      s.set('constructor', 'c' as never) // TypeScript types `constructor` from Object.prototype
      s.set('get', 'g')
      s.set('save', 's')
      await s.save()
      const again = sessions.session(s.sessionKey)
      await again.load()
      assert.deepEqual(again.get('__proto__'), { polluted: true })
      assert.equal(again.get('constructor'), 'c')
      assert.equal(again.get('get'), 'g')
      assert.equal(again.get('save'), 's')
      assert.equal(({} as Record<string, unknown>).polluted, undefined)
      assert.equal(typeof again.get, 'function')
    })

    it('an update saves changes and keeps the key', { skip: serverOnly }, async () => {
      const { sessions } = await setup()
      const { key, reopen } = await saved(sessions, { n: 1 })
      const s = await reopen()
      s.set('n', 2)
      await s.save()
      assert.equal(s.sessionKey, key)
      assert.equal((await reopen()).get('n'), 2)
    })

    it('clearExpired removes expired sessions and keeps live ones (clearsessions)', { skip: serverOnly }, async () => {
      const { sessions } = await setup()
      const live = sessions.session()
      live.set('a', 1)
      live.setExpiry(3600)
      await live.save()
      const dead = sessions.session()
      dead.set('b', 2)
      dead.setExpiry(-3600)
      await dead.save()
      const cleared = await sessions.clearExpired()
      if (cleared === null) return // the engine expires sessions by itself (cache TTL)
      assert.ok(cleared >= 1, `clearExpired reported ${cleared} sessions removed`)
      assert.equal(await live.exists(live.sessionKey!), true)
      assert.equal(await dead.exists(dead.sessionKey!), false)
    })
  })
}

// ─── The adapter contract ────────────────────────────────────────────────────────────────

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
          async function send(path: string, init: { cookie?: string | null; method?: string } = {}): Promise<Reply> {
            const headers: Record<string, string> = {}
            if (init.cookie) headers.cookie = `${cookieName}=${init.cookie}`
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
      })
    }
  })
}
