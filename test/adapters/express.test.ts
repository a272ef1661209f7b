/**
 * The Express 5 adapter over real HTTP (fetch on 127.0.0.1): the save completes before the
 * response leaves, errors map to Django's statuses (SessionInterrupted 400, store down 503,
 * handler error 500 without a save), the app's own headers survive, and lazy mode does no
 * store round trip the handler did not ask for.
 *
 * Each case runs on every server-side backend: the in-memory test double and the db engine
 * on a temporary SQLite file.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as tick } from 'node:timers/promises'
import express, { type ErrorRequestHandler, type Express } from 'express'
import { sessions, type SessionMiddleware } from 'sessionkit/express'
import type { Settings } from 'sessionkit'
import { manualClock } from 'sessionkit/testing'
import { backends, capturingLogger, CookieJar, cookiesNamed, deferred, instrument, listen, request, type Backend } from '../helpers/http.ts'

const SECRET = 'express-adapter-test-secret-0123456789abcdefghij'

/** The routes of a login-like app: POST /login, GET /me, POST /logout. */
function loginRoutes(app: Express): void {
  app.post('/login', (req, res) => {
    req.session.set('user', 'alice')
    res.redirect(302, '/me')
  })
  app.get('/me', (req, res) => {
    res.type('text').send(String(req.session.get('user') ?? 'anonymous'))
  })
  app.post('/logout', async (req, res) => {
    await req.session.flush()
    res.type('text').send('bye')
  })
}

async function setup(t: TestContext, backend: Backend, routes: (app: Express) => void, settings: Partial<Settings> = {}, options: { twice?: boolean } = {}) {
  const made = await backend.make(t)
  const engine = instrument(made.engine)
  const logger = capturingLogger()
  const middleware: SessionMiddleware = sessions({
    secretKey: SECRET,
    now: manualClock(),
    logger,
    ...made.settings,
    ...settings,
    engine: engine.factory,
  })
  t.after(() => middleware.close())
  await middleware.sessions.ready()
  await middleware.sessions.migrate()
  const app = express()
  app.use(middleware)
  if (options.twice) app.use(middleware)
  loginRoutes(app)
  routes(app)
  const server = await listen(app, t)
  const url = (p: string) => server.url + p
  engine.reset()
  return { url, engine, logger, middleware, jar: new CookieJar() }
}

/** The session key of a stored session logged in through `/login`. */
async function login(jar: CookieJar, url: (p: string) => string): Promise<string> {
  const reply = await jar.fetch(url('/login'), { method: 'POST' })
  assert.equal(reply.status, 302)
  const key = jar.cookies.get('sessionid')
  assert.ok(key, 'logged in')
  return key
}

for (const backend of backends) {
  describe(`Express adapter on the ${backend.name}`, () => {
    it('a login sets the cookie on the redirect, and the next request reads the session', async (t) => {
      const { url, jar } = await setup(t, backend, () => {})
      const reply = await jar.fetch(url('/login'), { method: 'POST' })
      assert.equal(reply.status, 302)
      assert.equal(reply.headers.get('location'), '/me')
      const [cookie] = cookiesNamed(reply, 'sessionid')
      assert.ok(cookie)
      assert.match(cookie.value, /^[a-z0-9]{32}$/)
      assert.equal(cookie.attributes.get('path'), '/')
      assert.ok(cookie.attributes.has('httponly'))
      // res.redirect negotiates the body, so Express has set Vary: Accept; Cookie is added to it.
      assert.equal(reply.headers.get('vary'), 'Accept, Cookie')
      const me = await jar.fetch(url('/me'))
      assert.equal(me.body, 'alice')
      assert.equal(me.headers.get('vary'), 'Cookie')
      assert.deepEqual(me.setCookies, [], 'a read sends no cookie')
      assert.equal((await request(url('/me'))).body, 'anonymous')
    })

    it('the save completes before the response is sent: a slow store and an immediate follow-up request', async (t) => {
      const { url, jar, engine } = await setup(t, backend, () => {})
      engine.saveDelayMs = 50
      const started = performance.now()
      const reply = await jar.fetch(url('/login'), { method: 'POST' })
      assert.ok(performance.now() - started >= 45, 'the response waited for the save')
      assert.equal(reply.status, 302)
      assert.equal(engine.calls.create, 1)
      assert.equal((await jar.fetch(url('/me'))).body, 'alice')
    })

    it('a handler that throws answers 500 and saves nothing', async (t) => {
      const { url, engine } = await setup(t, backend, (app) => {
        app.get('/boom', (req) => {
          req.session.set('user', 'mallory')
          throw new Error('boom')
        })
        app.get('/reject', async (req) => {
          req.session.set('user', 'mallory')
          await tick()
          throw new Error('async boom')
        })
      })
      for (const p of ['/boom', '/reject']) {
        const reply = await request(url(p))
        assert.equal(reply.status, 500, p)
        assert.deepEqual(cookiesNamed(reply, 'sessionid'), [], p)
      }
      assert.equal(engine.writes(), 0)
    })

    it('a handler that throws after changing a stored session leaves it as it was', async (t) => {
      const { url, jar } = await setup(t, backend, (app) => {
        app.get('/boom', (req) => {
          req.session.set('user', 'mallory')
          throw new Error('boom')
        })
      })
      await login(jar, url)
      assert.equal((await jar.fetch(url('/boom'))).status, 500)
      assert.equal((await jar.fetch(url('/me'))).body, 'alice')
    })

    it('res.status(503) saves nothing and sets no cookie', async (t) => {
      const { url, engine } = await setup(t, backend, (app) => {
        app.get('/down', (req, res) => {
          req.session.set('user', 'alice')
          res.status(503).send('maintenance')
        })
      })
      const reply = await request(url('/down'))
      assert.equal(reply.status, 503)
      assert.equal(reply.body, 'maintenance')
      assert.deepEqual(reply.setCookies, [])
      assert.equal(reply.headers.get('vary'), 'Cookie')
      assert.equal(engine.writes(), 0)
    })

    it('a streamed response (several res.write, then end) gets the cookie and every chunk in order', async (t) => {
      const { url, jar, engine } = await setup(t, backend, (app) => {
        app.get('/stream', async (req, res) => {
          req.session.set('user', 'streamer')
          res.type('text')
          res.write('one,')
          res.write('two,')
          await tick()
          res.write('three,')
          await new Promise((resolve) => setTimeout(resolve, 60))
          res.write('four,')
          res.end('five')
        })
      })
      engine.saveDelayMs = 30
      const reply = await jar.fetch(url('/stream'))
      assert.equal(reply.status, 200)
      assert.equal(reply.body, 'one,two,three,four,five')
      assert.equal(cookiesNamed(reply, 'sessionid').length, 1)
      assert.equal((await jar.fetch(url('/me'))).body, 'streamer')
    })

    it('a HEAD request gets the headers and the session cookie, and no body', async (t) => {
      const { url, jar } = await setup(t, backend, (app) => {
        app.get('/hello', (req, res) => {
          req.session.set('user', 'header')
          res.type('text').send('hello there')
        })
      })
      const reply = await jar.fetch(url('/hello'), { method: 'HEAD' })
      assert.equal(reply.status, 200)
      assert.equal(reply.body, '')
      assert.equal(reply.headers.get('content-length'), '11')
      assert.equal(cookiesNamed(reply, 'sessionid').length, 1)
      assert.equal((await jar.fetch(url('/me'))).body, 'header')
    })

    it("the app's own Set-Cookie headers (res.cookie twice) are kept beside the session's", async (t) => {
      const { url } = await setup(t, backend, (app) => {
        app.get('/cookies', (req, res) => {
          res.cookie('a', '1')
          res.cookie('b', '2')
          req.session.set('user', 'alice')
          res.send('ok')
        })
      })
      const reply = await request(url('/cookies'))
      assert.deepEqual(
        reply.setCookies.map((c) => c.split('=')[0]),
        ['a', 'b', 'sessionid'],
      )
      assert.ok(reply.setCookies.includes('a=1; Path=/'))
      assert.ok(reply.setCookies.includes('b=2; Path=/'))
    })

    it('res.writeHead(200, { Set-Cookie, Vary }) keeps both cookies and patches Vary to "Accept, Cookie"', async (t) => {
      const { url } = await setup(t, backend, (app) => {
        app.get('/head', (req, res) => {
          req.session.set('user', 'alice')
          res.writeHead(200, { 'Set-Cookie': 'x=1', Vary: 'Accept' })
          res.end('ok')
        })
      })
      const reply = await request(url('/head'))
      assert.equal(reply.status, 200)
      assert.deepEqual(reply.setCookies.map((c) => c.split('=')[0]), ['x', 'sessionid'])
      assert.equal(reply.headers.get('vary'), 'Accept, Cookie')
    })

    it('res.writeHead(200, "OK", { set-cookie: [...] }) with a status message and lower-case names keeps every cookie', async (t) => {
      const { url } = await setup(t, backend, (app) => {
        app.get('/head', (req, res) => {
          req.session.set('user', 'alice')
          res.writeHead(200, 'Fine', { 'set-cookie': ['x=1', 'y=2'], vary: 'cookie' })
          res.end('ok')
        })
      })
      const reply = await request(url('/head'))
      assert.deepEqual(reply.setCookies.map((c) => c.split('=')[0]), ['x', 'y', 'sessionid'])
      assert.equal(reply.headers.get('vary'), 'cookie')
    })

    it('res.writeHead(200, [raw header pairs]) keeps the session cookie and Vary: Cookie', async (t) => {
      const { url, jar } = await setup(t, backend, (app) => {
        app.get('/raw', (req, res) => {
          req.session.set('user', 'raw')
          res.writeHead(200, ['Set-Cookie', 'x=1', 'Vary', 'Accept'])
          res.end('ok')
        })
      })
      const reply = await jar.fetch(url('/raw'))
      assert.equal(reply.status, 200)
      assert.deepEqual(reply.setCookies.map((c) => c.split('=')[0]).sort(), ['sessionid', 'x'])
      const vary = (reply.headers.get('vary') ?? '').split(/\s*,\s*/).sort()
      assert.deepEqual(vary, ['Accept', 'Cookie'])
      assert.equal((await jar.fetch(url('/me'))).body, 'raw')
    })

    it('a session flushed by another request while a slow one modifies it answers 400 (SessionInterrupted), never resurrected', async (t) => {
      const entered = deferred()
      const release = deferred()
      const { url, jar, middleware, logger } = await setup(t, backend, (app) => {
        app.post('/slow', async (req, res) => {
          entered.resolve()
          await release.promise
          req.session.set('cart', [1, 2])
          res.type('text').send('added')
        })
      })
      const key = await login(jar, url)
      const cookie = jar.header()!
      const slow = request(url('/slow'), { method: 'POST', headers: { Cookie: cookie } })
      await entered.promise
      const logout = await request(url('/logout'), { method: 'POST', headers: { Cookie: cookie } })
      assert.equal(logout.status, 200)
      assert.equal(cookiesNamed(logout, 'sessionid')[0]?.attributes.get('max-age'), '0')
      release.resolve()
      const reply = await slow
      assert.equal(reply.status, 400)
      assert.match(reply.body, /session ended in another request/)
      assert.deepEqual(cookiesNamed(reply, 'sessionid'), [])
      assert.equal(await middleware.sessions.session().exists(key), false)
      assert.ok(logger.warnings.some((w) => w.includes('deleted before the request completed')))
    })

    it('a store that is down when the session loads answers 503 through the Express error handler', async (t) => {
      const { url, jar, engine, logger } = await setup(t, backend, () => {})
      const key = await login(jar, url)
      engine.fail.load = new Error(`connection refused while reading ${key}`)
      const reply = await jar.fetch(url('/me'))
      assert.equal(reply.status, 503)
      assert.ok(!reply.body.includes(key), 'the body does not show the session key')
      assert.ok(logger.errors.length >= 1, 'logged')
      assert.ok(!logger.everything().includes(key), 'the log does not show the session key')
    })

    it('a store that is down when the session loads answers 503 itself, whatever the app error handler would do with it', async (t) => {
      const handler: ErrorRequestHandler = (err: { code?: string }, _req, res, _next) => {
        res.status(500).type('text').send(`custom: ${err.code}`)
      }
      const { url, jar, engine } = await setup(t, backend, (app) => app.use(handler))
      await login(jar, url)
      engine.fail.load = new Error('ECONNREFUSED')
      const reply = await jar.fetch(url('/me'))
      assert.equal(reply.status, 503)
      assert.equal(reply.body, 'Service Unavailable: session store\n')
      assert.equal(reply.headers.get('cache-control'), 'no-store')
    })

    it('a store that is down when the session saves answers 503, says so, and drops the prepared response', async (t) => {
      const { url, engine, logger } = await setup(t, backend, (app) => {
        app.post('/login-with-cookie', (req, res) => {
          res.cookie('remember', 'me')
          req.session.set('user', 'alice')
          res.redirect('/me')
        })
      })
      engine.fail.save = new Error('disk I/O error')
      for (const p of ['/login', '/login-with-cookie']) {
        const reply = await request(url(p), { method: 'POST' })
        assert.equal(reply.status, 503, p)
        assert.match(reply.body, /Service Unavailable: session store/)
        assert.deepEqual(reply.setCookies, [], `${p}: no cookie, neither the app's nor the session's`)
        assert.equal(reply.headers.get('location'), null)
        assert.equal(reply.headers.get('cache-control'), 'no-store')
      }
      assert.equal(logger.errors.length, 2)
    })

    it('the middleware mounted twice handles each request once', async (t) => {
      const { url, jar, engine } = await setup(t, backend, () => {}, {}, { twice: true })
      const reply = await jar.fetch(url('/login'), { method: 'POST' })
      assert.equal(cookiesNamed(reply, 'sessionid').length, 1)
      assert.equal(engine.calls.create, 1)
      engine.reset()
      assert.equal((await jar.fetch(url('/me'))).body, 'alice')
      assert.equal(engine.calls.load, 1)
      assert.equal(engine.writes(), 0)
    })

    describe('lazy mode', () => {
      const lazyRoutes = (app: Express) => {
        app.get('/sync', (req, res) => {
          try {
            res.type('text').send(String(req.session.get('user')))
          } catch (error) {
            res.status(500).type('text').send((error as { code?: string }).code)
          }
        })
        app.get('/async', async (req, res) => {
          res.type('text').send(String(await req.session.aget('user')))
        })
        app.get('/untouched', (_req, res) => {
          res.type('text').send('hi')
        })
      }

      it('a synchronous get before load throws ERR_SESSION_NOT_LOADED; await aget() reads the session', async (t) => {
        const { url, jar } = await setup(t, backend, lazyRoutes, { lazy: true })
        await login(jar, url)
        const sync = await jar.fetch(url('/sync'))
        assert.equal(sync.status, 500)
        assert.equal(sync.body, 'ERR_SESSION_NOT_LOADED')
        assert.equal((await jar.fetch(url('/async'))).body, 'alice')
      })

      it('a route that never touches the session does no store round trip, even with a cookie', async (t) => {
        const { url, jar, engine } = await setup(t, backend, lazyRoutes, { lazy: true })
        await login(jar, url)
        engine.reset()
        const reply = await jar.fetch(url('/untouched'))
        assert.equal(reply.body, 'hi')
        assert.deepEqual(reply.setCookies, [])
        assert.equal(reply.headers.get('vary'), null)
        assert.deepEqual(engine.calls, { load: 0, exists: 0, create: 0, save: 0, delete: 0, clearExpired: 0 })
        await jar.fetch(url('/async'))
        assert.equal(engine.calls.load, 1)
      })
    })
  })
}

describe('Express adapter on signed_cookies', () => {
  it('a session too large for a browser cookie answers 500 and is logged', async (t) => {
    const logger = capturingLogger()
    const middleware = sessions({ secretKey: SECRET, engine: 'signed_cookies', logger, now: manualClock() })
    const app = express()
    app.use(middleware)
    app.get('/big', (req, res) => {
      req.session.set('blob', Array.from({ length: 6000 }, (_, i) => ((i * 7919) % 65536).toString(36)).join(''))
      res.send('ok')
    })
    const server = await listen(app, t)
    const reply = await request(server.url + '/big')
    assert.equal(reply.status, 500)
    assert.deepEqual(reply.setCookies, [])
    assert.match(logger.everything(), /ERR_SESSION_TOO_LARGE|cookie would be \d{4,} bytes/, 'the oversized session is logged with its size')
  })
})

describe('Express adapter: how responses are hooked', () => {
  // Express swaps every response's prototype for its app's own `app.response`; the adapter
  // hooks through that prototype (patched once) rather than adding properties to each response.
  it('a middleware that wrapped res.end before sessionkit keeps working, and the save still comes first', async (t) => {
    const backend = backends[0]!
    const made = await backend.make(t)
    const engine = instrument(made.engine)
    const middleware = sessions({ secretKey: SECRET, now: manualClock(), ...made.settings, engine: engine.factory })
    t.after(() => middleware.close())
    await middleware.sessions.ready()
    const app = express()
    const order: string[] = []
    app.use((req, res, next) => {
      // The shape of compression or on-headers: own-property wrappers around res.end.
      const end = res.end
      res.end = function (this: typeof res, ...args: unknown[]) {
        order.push('wrapper')
        res.setHeader('X-Wrapped', 'yes')
        return (end as (...a: unknown[]) => typeof res).apply(this, args)
      } as typeof res.end
      next()
    })
    app.use(middleware)
    loginRoutes(app)
    const server = await listen(app, t)
    engine.saveDelayMs = 30
    const jar = new CookieJar()
    for (let i = 0; i < 2; i++) {
      order.length = 0
      const started = performance.now()
      const reply = await jar.fetch(server.url + '/login', { method: 'POST' })
      assert.equal(reply.status, 302)
      assert.ok(performance.now() - started >= 25, `request ${i + 1}: the response waited for the save`)
      assert.equal(reply.headers.get('x-wrapped'), 'yes')
      assert.deepEqual(order, ['wrapper'])
      assert.equal(cookiesNamed(reply, 'sessionid').length, 1, `request ${i + 1}: the cookie is set`)
    }
    assert.equal((await jar.fetch(server.url + '/me')).body, 'alice')
  })

  it('another Express app in the process, without the middleware, is untouched', async (t) => {
    const middleware = sessions({ secretKey: SECRET, now: manualClock() })
    t.after(() => middleware.close())
    const withSessions = express()
    withSessions.use(middleware)
    loginRoutes(withSessions)
    const plain = express()
    let sentBefore: boolean | null = null
    let sentAfter: boolean | null = null
    plain.get('/', (req, res) => {
      sentBefore = res.headersSent
      res.type('text').send('plain')
      sentAfter = res.headersSent
    })
    const a = await listen(withSessions, t)
    const b = await listen(plain, t)
    const jar = new CookieJar()
    assert.equal((await jar.fetch(a.url + '/login', { method: 'POST' })).status, 302)
    const reply = await request(b.url + '/')
    assert.equal(reply.body, 'plain')
    assert.deepEqual(reply.setCookies, [])
    assert.equal(reply.headers.get('vary'), null)
    assert.equal(sentBefore, false)
    assert.equal(sentAfter, true)
    for (const name of ['writeHead', 'write', 'end', 'headersSent']) {
      assert.ok(Object.hasOwn(withSessions.response, name), `the session app's response prototype is hooked: ${name}`)
      assert.ok(!Object.hasOwn(plain.response, name), `the other app's response prototype is not: ${name}`)
    }
    assert.equal((await jar.fetch(a.url + '/me')).body, 'alice')
  })
})
