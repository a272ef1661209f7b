/**
 * Session locks (`session.lock()`, Laravel's `->block()`): routes that lock one session run
 * one after the other, a waiter gives up with 503 after `waitMs`, a lock whose holder died
 * expires after `ttlMs`, a thrown handler releases its lock, and routes that do not lock are
 * never blocked. Over real HTTP (node:http adapter), on every engine that supports locks.
 */
import { describe, it, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createSessions, type EngineFactory, type Settings } from 'sessionkit'
import { withSessions } from 'sessionkit/node'
import type { DbEngine } from '../../src/engines/db.ts'
import { serverEngines } from '../helpers/engines.ts'
import { listen } from '../helpers/http.ts'

const SECRET = 'sessionkit-lock-secret'
/** How long a locked route holds the lock in the serialization test. */
const HOLD_MS = 200
/** Timer and scheduling slack on a loaded CI machine. */
const SLACK_MS = 700

const dir = mkdtempSync(path.join(tmpdir(), 'sessionkit-lock-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

const engines = await serverEngines('lock')

/** What a route answers: when it held the session (after the lock, before its response) and the keys it saw. */
interface Span {
  /** The key the route set, if any. */
  k: string | null
  start: number
  end: number
  keys: string[]
}

/**
 * An app: /set?k= sets a key without locking; /locked?k=&ms= locks, holds `ms`, sets `k`;
 * /unlocked?k= sets `k` without locking; /throw locks and throws.
 */
async function app(t: TestContext, factory: EngineFactory, lock: Partial<Pick<Settings, 'lockWaitMs' | 'lockTtlMs'>> = {}) {
  const warnings: string[] = []
  let locksTaken = 0
  const sessions = createSessions({ secretKey: SECRET, engine: factory, logger: { warn: (m) => warnings.push(m), error() {} }, ...lock })
  await sessions.ready()
  await sessions.migrate()
  t.after(() => sessions.close())
  const server = await listen(
    withSessions(async (req, res) => {
      const url = new URL(req.url!, 'http://x')
      const k = url.searchParams.get('k')
      if (url.pathname === '/locked' || url.pathname === '/throw') {
        await req.session.lock()
        locksTaken++
      }
      if (url.pathname === '/throw') throw new Error('the handler failed')
      const start = Date.now()
      const keys = req.session.keys()
      await sleep(Number(url.searchParams.get('ms') ?? 0))
      if (k) req.session.set(k, 1)
      res.setHeader('Content-Type', 'application/json')
      res.end(JSON.stringify({ k, start, end: Date.now(), keys } satisfies Span))
    }, sessions),
    t,
  )
  const get = async (pathname: string, cookie?: string) => {
    const sent = Date.now()
    const r = await fetch(server.url + pathname, { headers: cookie ? { cookie } : {} })
    const body = await r.text()
    const setCookie = r.headers.getSetCookie().find((c) => c.startsWith('sessionid='))
    return { status: r.status, body, ms: Date.now() - sent, setCookie: setCookie?.split(';')[0], span: r.status === 200 ? (JSON.parse(body) as Span) : undefined }
  }
  /** A saved session's cookie and key. */
  const start = async () => {
    const { setCookie } = await get('/set?k=start')
    return { cookie: setCookie!, key: setCookie!.slice('sessionid='.length) }
  }
  const keysOf = async (cookie: string) => (await get('/unlocked', cookie)).span!.keys
  /** Resolves once `count` locked routes have taken their lock (however slow the machine is). */
  const locked = async (count = 1) => {
    while (locksTaken < count) await sleep(5)
  }
  return { sessions, get, start, keysOf, warnings, locked }
}

for (const engine of engines) {
  describe(`session locks: ${engine.name}`, { skip: engine.skip }, () => {
    it(`two requests that lock one session run one after the other, the second seeing the first's write`, async (t) => {
      const { get, start, keysOf } = await app(t, engine.factory())
      const { cookie } = await start()
      const replies = await Promise.all([get(`/locked?k=a&ms=${HOLD_MS}`, cookie), get(`/locked?k=b&ms=${HOLD_MS}`, cookie)])
      assert.deepEqual(replies.map((r) => r.status), [200, 200])
      const [first, second] = replies.map((r) => r.span!).sort((x, y) => x.start - y.start)
      assert.ok(second!.start >= first!.end, `the second started ${first!.end - second!.start} ms before the first ended`)
      // The second reloaded after the lock: the first's key is there, though it was not when it began.
      assert.deepEqual(first!.keys, ['start'])
      assert.deepEqual(second!.keys.sort(), [first!.k!, 'start'].sort(), `the second saw ${JSON.stringify(second!.keys)}`)
      assert.deepEqual((await keysOf(cookie)).sort(), ['a', 'b', 'start'])
    })

    it('a lock held past waitMs: the waiter answers 503 after waitMs, and the holder completes', async (t) => {
      const waitMs = 300
      const { get, start, keysOf, warnings, locked } = await app(t, engine.factory(), { lockWaitMs: waitMs })
      const { cookie } = await start()
      const holder = get(`/locked?k=held&ms=${waitMs + 500}`, cookie)
      await locked() // the holder has the lock before the waiter asks for it
      const waiter = await get('/locked?k=waiter', cookie)
      assert.equal(waiter.status, 503)
      assert.match(waiter.body, /busy with another request/)
      assert.ok(waiter.ms >= waitMs - 20, `answered after ${waiter.ms} ms`)
      assert.ok(waiter.ms < waitMs + SLACK_MS, `answered after ${waiter.ms} ms`)
      assert.ok(warnings.some((w) => w.includes('locked by another request')), 'logged as a warning')
      assert.equal((await holder).status, 200)
      assert.deepEqual((await keysOf(cookie)).sort(), ['held', 'start'])
    })

    it('a holder that died (a lock never released): the next locker gets it once ttlMs has passed', async (t) => {
      const ttlMs = 400
      const { sessions, get, start } = await app(t, engine.factory(), { lockWaitMs: 3000 })
      const { cookie, key } = await start()
      const eng = await sessions.ready()
      const taken = Date.now()
      await eng.lock!(key, { waitMs: 0, ttlMs }) // the release is dropped: its holder "died"
      await assert.rejects(eng.lock!(key, { waitMs: 50, ttlMs }), { name: 'SessionLocked', code: 'ERR_SESSION_LOCKED', status: 503 })
      const next = await get('/locked?k=after', cookie)
      assert.equal(next.status, 200)
      assert.ok(next.span!.start - taken >= ttlMs - 20, `got the lock ${next.span!.start - taken} ms after it was taken`)
      assert.ok(next.span!.start - taken < ttlMs + SLACK_MS, `got the lock ${next.span!.start - taken} ms after it was taken`)
    })

    it('a handler that throws while holding the lock releases it (500, nothing saved)', async (t) => {
      const { get, start, keysOf } = await app(t, engine.factory(), { lockWaitMs: 3000, lockTtlMs: 30_000 })
      const { cookie } = await start()
      assert.equal((await get('/throw?k=lost', cookie)).status, 500)
      const next = await get('/locked?k=next', cookie)
      assert.equal(next.status, 200)
      assert.ok(next.ms < 1000, `waited ${next.ms} ms for a lock that should have been released`)
      assert.deepEqual((await keysOf(cookie)).sort(), ['next', 'start'])
    })

    it('routes that do not lock are not blocked by a locked one, and both writes are kept', async (t) => {
      const { get, start, keysOf, locked } = await app(t, engine.factory())
      const { cookie } = await start()
      const slowly = get('/locked?k=slow&ms=500', cookie)
      await locked() // the slow route holds the lock
      const free = await get('/unlocked?k=free', cookie)
      assert.equal(free.status, 200)
      const slow = await slowly
      assert.equal(slow.status, 200)
      assert.ok(free.span!.end < slow.span!.end, 'the unlocked request finished while the locked one held the lock')
      assert.deepEqual((await keysOf(cookie)).sort(), ['free', 'slow', 'start'])
    })
  })
}

describe('session.lock() outside the engines', () => {
  const settings = { secretKey: SECRET, engine: 'db', databaseUrl: 'sqlite::memory:', logger: { warn() {}, error() {} } } as const

  it('a new session (no key) takes no lock; the engine is still checked', async (t) => {
    const sessions = createSessions(settings)
    t.after(() => sessions.close())
    const session = sessions.session()
    await session.lock()
    assert.equal(session.locked, false)
    const signed = createSessions({ ...settings, engine: 'signed_cookies' })
    t.after(() => signed.close())
    await assert.rejects(signed.session().lock(), { code: 'ERR_NOT_SUPPORTED', message: /signed_cookies/ })
  })

  it('a session changed before lock() throws, telling to lock first', async (t) => {
    const sessions = createSessions(settings)
    t.after(() => sessions.close())
    const made = sessions.session()
    made.set('a', 1)
    await made.save()
    const state = await sessions.start(`sessionid=${made.sessionKey}`)
    state.session.set('b', 2)
    await assert.rejects(state.session.lock(), { code: 'ERR_SESSION_LOCK_ORDER', message: /call it first/ })
    assert.equal(state.session.locked, false)
  })

  it('end() releases the lock, also when the save fails; unlock() releases it early; a second lock() is a no-op', async (t) => {
    const sessions = createSessions(settings)
    t.after(() => sessions.close())
    const made = sessions.session()
    made.set('a', 1)
    await made.save()
    const cookie = `sessionid=${made.sessionKey}`
    const engine = await sessions.ready()
    const free = async () => (await engine.lock!(made.sessionKey!, { waitMs: 0, ttlMs: 1000 }).then((release) => release().then(() => true), () => false))

    const one = await sessions.start(cookie)
    await one.session.lock()
    await one.session.lock()
    assert.equal(await free(), false)
    await one.session.unlock()
    assert.equal(await free(), true)

    const two = await sessions.start(cookie)
    await two.session.lock()
    two.session.set('b', 2)
    await sessions.session(made.sessionKey).destroy() // a logout elsewhere: the save fails with 400
    await assert.rejects(Promise.resolve(sessions.finish(two, 200)), { code: 'ERR_SESSION_INTERRUPTED' })
    assert.equal(two.session.locked, false)
    assert.equal(await free(), true)
  })

  it('waitMs and ttlMs are validated (settings and per call)', async (t) => {
    assert.throws(() => createSessions({ ...settings, lockWaitMs: -1 }), { code: 'ERR_IMPROPERLY_CONFIGURED', message: /lockWaitMs/ })
    assert.throws(() => createSessions({ ...settings, lockTtlMs: 0 }), { code: 'ERR_IMPROPERLY_CONFIGURED', message: /lockTtlMs/ })
    const sessions = createSessions(settings)
    t.after(() => sessions.close())
    await assert.rejects(sessions.session().lock({ ttlMs: 1.5 }), TypeError)
  })

  it('clearExpired deletes expired lock rows (SQLite) and expired .block files (file engine)', async (t) => {
    const db = createSessions({ ...settings, databaseUrl: `sqlite:${path.join(dir, 'clear.sqlite3')}` })
    t.after(() => db.close())
    const dbEngine = (await db.ready()) as DbEngine
    await dbEngine.lock!('a'.repeat(32), { waitMs: 0, ttlMs: 1 })
    await dbEngine.lock!('b'.repeat(32), { waitMs: 0, ttlMs: 60_000 })
    await sleep(5)
    await db.clearExpired()
    const rows = (dbEngine.driver as unknown as { database: { prepare(sql: string): { pluck(): { all(): unknown[] } } } }).database
      .prepare('SELECT session_key FROM sessionkit_lock')
      .pluck()
      .all()
    assert.deepEqual(rows, ['b'.repeat(32)])

    const filePath = mkdtempSync(path.join(dir, 'clear-files-'))
    const files = createSessions({ ...settings, engine: 'file', filePath })
    t.after(() => files.close())
    const fileEngine = await files.ready()
    await fileEngine.lock!('a'.repeat(32), { waitMs: 0, ttlMs: 1 })
    await fileEngine.lock!('b'.repeat(32), { waitMs: 0, ttlMs: 60_000 })
    await sleep(5)
    await files.clearExpired()
    assert.deepEqual(readdirSync(filePath), [`sessionid${'b'.repeat(32)}.block`])
  })
})
