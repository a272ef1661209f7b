/**
 * Every HTTP adapter passes the same contract suite (`describeAdapter`, Django's
 * `SessionMiddlewareTests` and what a Node server adds) over real HTTP on 127.0.0.1; then
 * what is particular to each framework: Fastify's encapsulation, Koa's error propagation,
 * Hono's and the fetch adapter's immutable responses, and the types each gives `session`.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import Koa from 'koa'
import { Hono } from 'hono'
import { createSessions, type Session, type Settings } from 'sessionkit'
import { describeAdapter, manualClock } from 'sessionkit/testing'
import { sessionPlugin } from 'sessionkit/fastify'
import { sessions as koaSessions, type SessionContext } from 'sessionkit/koa'
import { sessions as honoSessions, type SessionEnv } from 'sessionkit/hono'
import { withSession, withSessions } from 'sessionkit/fetch'
import { servers, fetchListener } from './helpers/adapters.ts'
import { capturingLogger, CookieJar, listen } from './helpers/http.ts'
import { signedCookiesEngine } from '../src/engines/signed-cookies.ts'

for (const [name, makeServer] of servers) describeAdapter(name, makeServer)

const SECRET = 'adapters-test-secret-0123456789abcdefghijklmnop'

function settings(extra: Partial<Settings> = {}): Partial<Settings> {
  return { secretKey: SECRET, engine: 'signed_cookies', now: manualClock(), logger: capturingLogger(), ...extra }
}

describe('Fastify plugin', () => {
  it('registered at the root, it serves every route of the root', async (t: TestContext) => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(sessionPlugin, settings())
    app.get('/set', async (request) => (request.session.set('n', 1), 'ok'))
    app.get('/get', async (request) => String(request.session.get('n')))
    const set = await app.inject('/set')
    const cookie = set.headers['set-cookie']
    assert.ok(cookie)
    const get = await app.inject({ url: '/get', headers: { cookie: String(cookie).split(';')[0] } })
    assert.equal(get.body, '1')
  })

  it('registered in a child context, it serves that context only: siblings and the parent see no session', async (t: TestContext) => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(async (child) => {
      await child.register(sessionPlugin, settings())
      child.get('/inside', async (request) => (request.session.set('n', 1), 'inside'))
    })
    await app.register(async (sibling) => {
      sibling.get('/sibling', async (request) => String(request.session))
    })
    app.get('/root', async (request) => String(request.session))
    const inside = await app.inject('/inside')
    assert.equal(inside.body, 'inside')
    assert.ok(inside.headers['set-cookie'], 'the child route has a session')
    for (const path of ['/sibling', '/root']) {
      const reply = await app.inject(path)
      assert.equal(reply.body, 'undefined', path)
      assert.equal(reply.headers['set-cookie'], undefined, path)
      assert.equal(reply.headers.vary, undefined, path)
    }
  })

  it('a Web Response sent as the payload: its status decides the save, its Vary gets Cookie', async (t: TestContext) => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(sessionPlugin, settings())
    app.get('/ok', async (request, reply) => {
      request.session.set('n', 1)
      return reply.send(new Response('hi', { headers: { Vary: 'Accept' } }))
    })
    app.get('/down', async (request, reply) => {
      request.session.set('n', 1)
      return reply.send(new Response('down', { status: 503 }))
    })
    const ok = await app.inject('/ok')
    assert.equal(ok.body, 'hi')
    assert.equal(ok.headers.vary, 'Accept, Cookie')
    assert.ok(ok.headers['set-cookie'])
    const down = await app.inject('/down')
    assert.equal(down.statusCode, 503)
    assert.equal(down.headers['set-cookie'], undefined)
  })

  it('takes Fastify\'s own register options (prefix) beside the settings', async (t: TestContext) => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(
      async (api) => {
        await api.register(sessionPlugin, settings())
        api.get('/set', async (request) => (request.session.set('n', 1), 'ok'))
      },
      { prefix: '/api' },
    )
    assert.ok((await app.inject('/api/set')).headers['set-cookie'])
  })

  it('closes an engine it made when Fastify closes, and leaves a Sessions passed in open', async () => {
    let ownedClosed = false
    let sharedClosed = false
    const tracked = (onClose: () => void): Settings['engine'] => (context) => ({ ...signedCookiesEngine(context), close: async () => onClose() })
    const shared = createSessions(settings({ engine: tracked(() => (sharedClosed = true)) }))
    const app = Fastify()
    await app.register(sessionPlugin, settings({ engine: tracked(() => (ownedClosed = true)) }))
    await app.register(async (child) => child.register(sessionPlugin, shared))
    await app.ready()
    await app.close()
    assert.equal(ownedClosed, true, 'the engine the plugin made')
    assert.equal(sharedClosed, false, 'a Sessions passed in belongs to the caller')
    await shared.close()
  })
})

describe('Koa middleware', () => {
  it('an error thrown downstream propagates to Koa unchanged, and nothing is saved', async (t: TestContext) => {
    const app = new Koa<Koa.DefaultState, SessionContext<{ n: number }>>()
    const errors: unknown[] = []
    app.on('error', (error) => errors.push(error))
    const middleware = koaSessions<{ n: number }>(settings())
    app.use(middleware)
    app.use((ctx) => {
      ctx.session.set('n', 1)
      const error = Object.assign(new Error('teapot'), { status: 418, expose: true })
      throw error
    })
    const server = await listen(app.callback(), t)
    const res = await fetch(server.url)
    assert.equal(res.status, 418, 'the error\'s own status, as Koa answers it')
    assert.equal(await res.text(), 'teapot')
    assert.deepEqual(res.headers.getSetCookie(), [])
    assert.equal(errors.length, 1)
  })

  it('types ctx.session through the app\'s context, chained or declared', () => {
    const chained = new Koa().use(koaSessions<{ cart: string[] }>(settings()))
    chained.use((ctx) => {
      const cart: string[] | undefined = ctx.session.get('cart')
      void cart
    })
    const declared = new Koa<Koa.DefaultState, SessionContext<{ cart: string[] }>>()
    declared.use((ctx) => {
      const session: Session<{ cart: string[] }> = ctx.session
      // @ts-expect-error a number is not a cart
      session.set('cart', 1)
    })
  })
})

describe('Hono middleware', () => {
  it('a handler returning a Response with immutable headers still gets the cookie', async () => {
    const app = new Hono<SessionEnv<{ n: number }>>()
    const middleware = honoSessions<{ n: number }>(settings())
    app.use(middleware)
    app.get('/', (c) => {
      c.get('session').set('n', 1)
      return Response.redirect('http://127.0.0.1/next', 303)
    })
    const res = await app.request('/')
    assert.equal(res.status, 303)
    assert.equal(res.headers.get('location'), 'http://127.0.0.1/next')
    assert.equal(res.headers.getSetCookie().length, 1)
    assert.equal(res.headers.get('vary'), 'Cookie')
  })

  it('a response the session replaces (503) does not keep the handler\'s headers', async () => {
    const app = new Hono()
    const failing = settings({ engine: 'signed_cookies' })
    const middleware = honoSessions(failing)
    ;(await middleware.sessions.ready()).save = async () => {
      throw new Error('down')
    }
    app.use(middleware)
    app.get('/', (c) => {
      c.get('session').set('n', 1)
      c.header('X-App', 'yes')
      c.header('Set-Cookie', 'a=1', { append: true })
      return c.text('ok')
    })
    const res = await app.request('/')
    assert.equal(res.status, 503)
    assert.equal(res.headers.get('x-app'), null)
    assert.deepEqual(res.headers.getSetCookie(), [])
    assert.equal(res.headers.get('cache-control'), 'no-store')
  })

  it('types c.get(\'session\') with or without SessionEnv', () => {
    const typed = new Hono<SessionEnv<{ cart: string[] }>>()
    typed.get('/', (c) => {
      const cart: string[] | undefined = c.get('session').get('cart')
      // @ts-expect-error a number is not a cart
      c.get('session').set('cart', 1)
      return c.text(String(cart))
    })
    const plain = new Hono()
    plain.get('/', (c) => {
      const session: Session = c.get('session')
      return c.text(String(session.get('anything')))
    })
  })
})

describe('fetch adapter', () => {
  it('is withSessions, as the node:http adapter\'s; the old name withSession stays as a deprecated alias', () => {
    assert.equal(withSession, withSessions)
  })

  it('passes the server\'s extra arguments after the session, and types the data', async () => {
    type Env = { region: string }
    const handler = withSessions<{ region: string }, [Env]>((_request, session, env) => {
      session.set('region', env.region)
      if (env.region === '') {
        // @ts-expect-error a number is not a region
        session.set('region', 1)
      }
      return new Response('ok')
    }, settings())
    const res = await handler(new Request('http://127.0.0.1/'), { region: 'eu' })
    const [cookie] = res.headers.getSetCookie()
    assert.ok(cookie)
    const again = withSessions((_request, session) => new Response(String(session.get('region'))), handler.sessions)
    const read = await again(new Request('http://127.0.0.1/', { headers: { cookie: cookie.split(';')[0]! } }))
    assert.equal(await read.text(), 'eu')
  })

  it('a Response from fetch() (immutable headers) passed through gets the cookie, its body streamed', async (t: TestContext) => {
    const upstream = await listen((_req, res) => res.end('from upstream'), t)
    const handler = withSessions(async (_request, session) => {
      session.set('n', 1)
      return fetch(upstream.url)
    }, settings())
    const server = await listen(fetchListener(handler), t)
    const jar = new CookieJar()
    const reply = await jar.fetch(server.url)
    assert.equal(reply.body, 'from upstream')
    assert.equal(reply.setCookies.length, 1)
  })
})
