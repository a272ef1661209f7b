/**
 * The conformance suite every engine passes: Django's `SessionTestsMixin`
 * (`tests/sessions_tests/tests.py`), ported. Exported by `sessionkit/testing` so that a
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
import { setTimeout as sleep } from 'node:timers/promises'
import { UpdateError } from '../errors.js'
import type { Sessions } from '../middleware.js'
import type { Session } from '../session.js'
import type { Settings } from '../settings.js'
import { capturingLogger, manualClock, SUITE_SECRET } from './tools.js'

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

    /** Forget that `session` was accessed or modified, as Django's tests do between two steps. */
    function untouched(session: Session): void {
      session.modified = false
      session.accessed = false
    }

    /** `session` was accessed, and modified or not. */
    function assertTouched(session: Session, { modified }: { modified: boolean }): void {
      assert.equal(session.accessed, true, 'accessed')
      assert.equal(session.modified, modified, modified ? 'modified' : 'not modified')
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
      assertTouched(session, { modified: true })
      assert.equal(session.get('some key'), undefined)
    })

    it('test_pop_default: pop of a missing key returns the default without modifying', async () => {
      const { session } = await setup()
      assert.equal(session.pop('some key', 'does not exist'), 'does not exist')
      assertTouched(session, { modified: false })
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
      assertTouched(session, { modified: true })
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
      assertTouched(session, { modified: true })
      assert.equal(session.get('update key'), 1)
      session.modified = false
      session.update({})
      assert.equal(session.modified, true)
    })

    it('test_has_key: has marks accessed, not modified', async () => {
      const { session } = await setup()
      session.set('some key', 1)
      untouched(session)
      assert.equal(session.has('some key'), true)
      assertTouched(session, { modified: false })
    })

    it('test_values: values marks accessed, not modified', async () => {
      const { session } = await setup()
      assert.deepEqual(session.values(), [])
      assert.equal(session.accessed, true)
      session.set('some key', 1)
      untouched(session)
      assert.deepEqual(session.values(), [1])
      assertTouched(session, { modified: false })
    })

    it('test_keys: keys marks accessed, not modified', async () => {
      const { session } = await setup()
      session.set('x', 1)
      untouched(session)
      assert.deepEqual(session.keys(), ['x'])
      assertTouched(session, { modified: false })
    })

    it('test_items: entries marks accessed, not modified', async () => {
      const { session } = await setup()
      session.set('x', 1)
      untouched(session)
      assert.deepEqual(session.entries(), [['x', 1]])
      assertTouched(session, { modified: false })
    })

    it('test_clear: clear empties the session and marks accessed and modified', async () => {
      const { session } = await setup()
      session.set('x', 1)
      untouched(session)
      session.clear()
      assert.deepEqual(session.entries(), [])
      assertTouched(session, { modified: true })
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
      assertTouched(session, { modified: true })
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

    for (const expireAtBrowserClose of [false, true]) {
      it(`test_get_expire_at_browser_close: 10 → false, 0 → true, null → the setting (${expireAtBrowserClose})`, async () => {
        const { session } = await setup({ expireAtBrowserClose })
        session.setExpiry(10)
        assert.equal(session.getExpireAtBrowserClose(), false)
        session.setExpiry(0)
        assert.equal(session.getExpireAtBrowserClose(), true)
        session.setExpiry(null)
        assert.equal(session.getExpireAtBrowserClose(), expireAtBrowserClose)
      })
    }

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
      // expiry 'store': the store's own TTL, on real time in seconds (memcached counts whole seconds: up to one more).
      const real = options.expiry === 'store'
      const [cookieAge, expiry, first, second] = real ? [6, 1, 2.5, 5] : [60, 30, 31, 30]
      const { sessions, clock } = await setup(real ? { cookieAge, now: Date.now } : { cookieAge })
      const pass = async (seconds: number): Promise<void> => (real ? void (await sleep(seconds * 1000)) : clock.advance(seconds))
      const plain = await saved(sessions, { a: 1 })
      const custom = sessions.session()
      custom.set('b', 2)
      custom.setExpiry(expiry)
      await custom.save()
      const customKey = custom.sessionKey!
      await pass(first)
      const c = sessions.session(customKey)
      await c.load()
      assert.equal(c.has('b'), false, `a setExpiry(${expiry}) session is gone after ${first} s`)
      assert.equal((await plain.reopen()).get('a'), 1, `a cookieAge session is still there after ${first} s`)
      await pass(second)
      assert.equal((await plain.reopen()).has('a'), false, `a cookieAge session is gone after ${first + second} s`)
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
