/**
 * The Fastify plugin beyond the adapter contract: encapsulation, a Web Response as the payload,
 * Fastify's own register options, closing what it made.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import { createSessions, type Settings } from 'sessionkit'
import { sessionPlugin } from 'sessionkit/fastify'
import { adapterSettings as settings } from '../helpers/adapters.ts'
import { signedCookiesEngine } from '../../src/engines/signed-cookies.ts'

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
