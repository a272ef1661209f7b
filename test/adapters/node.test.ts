/**
 * The `node:http` adapter (`withSessions`) over real HTTP: the core cases once more through
 * the plain `ServerResponse` plumbing every Node framework shares, on every server-side
 * backend (the in-memory test double and the db engine on a temporary SQLite file).
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as tick } from 'node:timers/promises'
import { createSessions, type Settings } from 'sessionkit'
import { withSessions, type SessionHandler } from 'sessionkit/node'
import { manualClock } from 'sessionkit/testing'
import { backends, capturingLogger, CookieJar, cookiesNamed, instrument, listen, request, type Backend } from '../helpers/http.ts'

const SECRET = 'node-adapter-test-secret-0123456789abcdefghijklmn'

/** The app: /login, /me, and whatever `extra` answers (return true when handled). */
function app(extra: SessionHandler = () => false): SessionHandler {
  return async (req, res) => {
    if (req.url === '/login' && req.method === 'POST') {
      req.session.set('user', 'alice')
      res.writeHead(302, { Location: '/me' })
      res.end()
    } else if (req.url === '/me') {
      res.setHeader('Content-Type', 'text/plain')
      res.end(String(req.session.get('user') ?? 'anonymous'))
    } else if (!(await extra(req, res))) {
      res.statusCode = 404
      res.end('not found')
    }
  }
}

async function setup(t: TestContext, backend: Backend, handler: SessionHandler, settings: Partial<Settings> = {}) {
  const made = await backend.make(t)
  const engine = instrument(made.engine)
  const logger = capturingLogger()
  const sessions = createSessions({ secretKey: SECRET, now: manualClock(), logger, ...made.settings, ...settings, engine: engine.factory })
  t.after(() => sessions.close())
  await sessions.ready()
  await sessions.migrate()
  const listener = withSessions(handler, sessions)
  assert.equal(listener.sessions, sessions)
  const server = await listen(listener, t)
  engine.reset()
  return { url: (p: string) => server.url + p, engine, logger, sessions, jar: new CookieJar() }
}

for (const backend of backends) {
  describe(`node:http adapter (withSessions) on the ${backend.name}`, () => {
    it('a session set in one request is read in the next', async (t) => {
      const { url, jar, engine } = await setup(t, backend, app())
      const login = await jar.fetch(url('/login'), { method: 'POST' })
      assert.equal(login.status, 302)
      assert.equal(login.headers.get('location'), '/me')
      assert.equal(cookiesNamed(login, 'sessionid').length, 1)
      assert.equal(login.headers.get('vary'), 'Cookie')
      assert.equal(engine.calls.create, 1)
      const me = await jar.fetch(url('/me'))
      assert.equal(me.body, 'alice')
      assert.deepEqual(me.setCookies, [])
      assert.equal((await request(url('/me'))).body, 'anonymous')
    })

    it('a 5xx response, set by statusCode or writeHead, saves nothing and sets no cookie', async (t) => {
      const { url, engine } = await setup(
        t,
        backend,
        app((req, res) => {
          if (req.url === '/status') {
            req.session.set('user', 'alice')
            res.statusCode = 503
            res.end('down')
            return true
          }
          if (req.url === '/writehead') {
            req.session.set('user', 'alice')
            res.writeHead(500, { 'Content-Type': 'text/plain' })
            res.end('oops')
            return true
          }
          return false
        }),
      )
      const status = await request(url('/status'))
      assert.equal(status.status, 503)
      assert.equal(status.body, 'down')
      const head = await request(url('/writehead'))
      assert.equal(head.status, 500)
      assert.equal(head.body, 'oops')
      assert.deepEqual([...status.setCookies, ...head.setCookies], [])
      assert.equal(engine.writes(), 0)
    })

    it('a handler that throws, or rejects, answers 500, saves nothing and is logged', async (t) => {
      const { url, engine, logger } = await setup(
        t,
        backend,
        app(async (req) => {
          req.session.set('user', 'mallory')
          if (req.url === '/throw') throw new Error('boom')
          await tick()
          throw new Error('async boom')
        }),
      )
      for (const p of ['/throw', '/reject']) {
        const reply = await request(url(p))
        assert.equal(reply.status, 500, p)
        assert.equal(reply.body, 'Internal Server Error\n')
        assert.deepEqual(reply.setCookies, [])
      }
      assert.equal(engine.writes(), 0)
      assert.equal(logger.errors.length, 2)
    })

    it('a handler that throws after changing a stored session leaves it as it was', async (t) => {
      const { url, jar } = await setup(
        t,
        backend,
        app((req) => {
          req.session.set('user', 'mallory')
          throw new Error('boom')
        }),
      )
      await jar.fetch(url('/login'), { method: 'POST' })
      assert.equal((await jar.fetch(url('/boom'))).status, 500)
      assert.equal((await jar.fetch(url('/me'))).body, 'alice')
    })

    it('a store that is down when the session loads answers 503, logged without the key', async (t) => {
      const { url, jar, engine, logger } = await setup(t, backend, app())
      await jar.fetch(url('/login'), { method: 'POST' })
      const key = jar.cookies.get('sessionid')!
      engine.fail.load = new Error(`ECONNREFUSED reading ${key}`)
      const reply = await jar.fetch(url('/me'))
      assert.equal(reply.status, 503)
      assert.equal(reply.body, 'Service Unavailable: session store\n')
      assert.equal(logger.errors.length, 1)
      assert.ok(!logger.everything().includes(key))
    })

    it('a store that is down when the session saves answers 503 and sends neither the redirect nor a cookie', async (t) => {
      const { url, engine, logger } = await setup(t, backend, app())
      engine.fail.save = new Error('disk I/O error')
      const reply = await request(url('/login'), { method: 'POST' })
      assert.equal(reply.status, 503)
      assert.equal(reply.body, 'Service Unavailable: session store\n')
      assert.equal(reply.headers.get('location'), null)
      assert.deepEqual(reply.setCookies, [])
      assert.equal(logger.errors.length, 1, 'logged once')
    })

    it('writeHead with raw header pairs keeps the session cookie', async (t) => {
      const { url, jar } = await setup(
        t,
        backend,
        app((req, res) => {
          req.session.set('user', 'raw')
          res.writeHead(200, ['Set-Cookie', 'x=1', 'Content-Type', 'text/plain'])
          res.end('ok')
          return true
        }),
      )
      const reply = await jar.fetch(url('/raw'))
      assert.deepEqual(reply.setCookies.map((c) => c.split('=')[0]).sort(), ['sessionid', 'x'])
      assert.equal(reply.headers.get('vary'), 'Cookie')
      assert.equal((await jar.fetch(url('/me'))).body, 'raw')
    })

    it(
      'a handler that throws right after starting a streamed response never gets a 500 that carries a saved session cookie',
      async (t) => {
        const { url, engine } = await setup(
          t,
          backend,
          app((req, res) => {
            req.session.set('user', 'mallory')
            res.write('partial,')
            throw new Error('boom')
          }),
        )
        const reply = await request(url('/stream-then-throw')).catch(() => null)
        if (reply !== null && reply.status >= 500) {
          assert.deepEqual(cookiesNamed(reply, 'sessionid'), [], 'a 5xx carries no session cookie')
          assert.equal(engine.writes(), 0, 'a 5xx saves nothing')
        }
        assert.ok(reply === null || !reply.body.startsWith('partial,Internal'), `not a spliced body: ${JSON.stringify(reply?.body)}`)
      },
    )

    it('in lazy mode a synchronous accessor before load answers 500 and the cause is logged', async (t) => {
      const { url, jar, logger } = await setup(t, backend, app(), { lazy: true })
      await jar.fetch(url('/login'), { method: 'POST' })
      const reply = await jar.fetch(url('/me'))
      assert.equal(reply.status, 500)
      assert.match(logger.everything(), /not loaded/)
    })
  })
}
