/**
 * No lost updates: parallel requests on one session keep every write (compare-and-set, then a
 * merge of each request's own changes), and a session flushed by one request is never
 * resurrected by another. Over real HTTP (node:http adapter), on every server-side engine.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createSessions, type Engine, type EngineFactory } from 'sessionkit'
import { withSessions } from 'sessionkit/node'
import { listen } from '../helpers/http.ts'
import { serverEngines } from '../helpers/engines.ts'

const SECRET = 'sessionkit-concurrency-secret'
const PARALLEL = 50
const RUNS = 10

const engines = await serverEngines('concurrency')

/** Engine calls, counted: load and save round trips. */
interface Counted {
  loads: number
  saves: number
}

/** Wrap an engine factory so that its loads and saves are counted. */
function counted(factory: EngineFactory, counts: Counted): EngineFactory {
  return async (ctx) => {
    const engine: Engine = await factory(ctx)
    return {
      ...engine,
      name: engine.name,
      clientSide: engine.clientSide,
      validKey: engine.validKey?.bind(engine),
      load: (key, options) => (counts.loads++, engine.load(key, options)),
      save: (key, data, options) => (counts.saves++, engine.save(key, data, options)),
      exists: (key) => engine.exists(key),
      delete: (key) => engine.delete(key),
      clearExpired: (p) => engine.clearExpired(p),
      migrate: engine.migrate ? () => engine.migrate!() : undefined,
      versionData: engine.versionData?.bind(engine),
      close: () => engine.close(),
    }
  }
}


/** An app: /set?k=… sets one key, /flush logs out, /keys lists the keys. */
async function app(t: TestContext, factory: EngineFactory) {
  const counts: Counted = { loads: 0, saves: 0 }
  const sessions = createSessions({ secretKey: SECRET, engine: counted(factory, counts), logger: { warn() {}, error() {} } })
  await sessions.ready()
  await sessions.migrate()
  t.after(() => sessions.close())
  const server = await listen(
    withSessions(async (req, res) => {
      const url = new URL(req.url!, 'http://x')
      if (url.pathname === '/set') req.session.set(url.searchParams.get('k')!, 1)
      else if (url.pathname === '/flush') await req.session.flush()
      res.setHeader('Content-Type', 'application/json')
      res.end(JSON.stringify(req.session.keys()))
    }, sessions),
    t,
  )
  const get = async (pathname: string, cookie?: string) => {
    const r = await fetch(server.url + pathname, { headers: cookie ? { cookie } : {} })
    const setCookie = r.headers.getSetCookie().find((c) => c.startsWith('sessionid='))
    return { status: r.status, body: await r.text(), setCookie: setCookie?.split(';')[0] }
  }
  return { sessions, counts, get }
}

for (const engine of engines) {
  describe(`concurrent requests on one session: ${engine.name}`, { skip: engine.skip }, () => {
    it(`${PARALLEL} requests in parallel, each setting its own key, keep all ${PARALLEL} keys, ${RUNS} runs in a row`, async (t) => {
      const { get } = await app(t, engine.factory())
      for (let run = 0; run < RUNS; run++) {
        const first = await get('/set?k=start')
        const cookie = first.setCookie!
        const replies = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => get(`/set?k=k${i}`, cookie)))
        assert.deepEqual(replies.filter((r) => r.status !== 200).map((r) => r.status), [], `run ${run}: every request succeeds`)
        const keys = JSON.parse((await get('/keys', cookie)).body) as string[]
        const missing = Array.from({ length: PARALLEL }, (_, i) => `k${i}`).filter((k) => !keys.includes(k))
        assert.deepEqual(missing, [], `run ${run}: lost keys`)
        assert.equal(keys.length, PARALLEL + 1)
      }
    })

    it('25 requests setting keys and one flushing at once: the flushed session is never resurrected', async (t) => {
      const { sessions, get } = await app(t, engine.factory())
      for (let run = 0; run < RUNS; run++) {
        const first = await get('/set?k=start')
        const cookie = first.setCookie!
        const key = cookie.slice('sessionid='.length)
        const replies = await Promise.all([
          ...Array.from({ length: 12 }, (_, i) => get(`/set?k=a${i}`, cookie)),
          get('/flush', cookie),
          ...Array.from({ length: 13 }, (_, i) => get(`/set?k=b${i}`, cookie)),
        ])
        // Each setter either finished before the flush (200, its key under the old session),
        // found the session already gone (200 with a new, separate session) or lost the race
        // mid-request (400, Django's SessionInterrupted). None recreates the old key.
        for (const r of replies) assert.ok(r.status === 200 || r.status === 400, `status ${r.status}`)
        assert.equal(await sessions.session().exists(key), false, `run ${run}: the flushed key was resurrected`)
      }
    })

    it('no extra round trip without a conflict: one load and one save per modifying request', async (t) => {
      const { get, counts } = await app(t, engine.factory())
      const { setCookie } = await get('/set?k=a')
      counts.loads = 0
      counts.saves = 0
      await get('/set?k=b', setCookie)
      assert.deepEqual(counts, engine.roundTrips ?? { loads: 1, saves: 1 })
    })
  })
}

describe('cycleKey during concurrent requests', () => {
  it('a request still on the old key after a cycleKey answers 400 and writes nothing under either key', async (t) => {
    const sessions = createSessions({ secretKey: SECRET, engine: 'db', databaseUrl: 'sqlite::memory:', logger: { warn() {}, error() {} } })
    t.after(() => sessions.close())
    const first = sessions.session()
    first.set('user', 'alice')
    await first.save()
    const oldKey = first.sessionKey!
    // A slow request loaded the session on the old key…
    const slow = await sessions.start(`sessionid=${oldKey}`)
    // …while the login request cycled the key.
    const login = await sessions.start(`sessionid=${oldKey}`)
    await login.session.cycleKey()
    await sessions.finish(login, 200)
    const newKey = login.session.sessionKey!
    slow.session.set('cart', ['book'])
    await assert.rejects(Promise.resolve(sessions.finish(slow, 200)), { code: 'ERR_SESSION_INTERRUPTED' })
    assert.equal(await sessions.session().exists(oldKey), false)
    const reread = sessions.session(newKey)
    await reread.load()
    assert.deepEqual(reread.entries(), [['user', 'alice']])
  })
})
