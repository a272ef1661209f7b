/**
 * The Hono middleware beyond the adapter contract: responses with immutable headers, a replaced
 * response, and the types of `c.get('session')`.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Hono } from 'hono'
import type { Session } from 'sessionkit'
import { sessions as honoSessions, type SessionEnv } from 'sessionkit/hono'
import { adapterSettings as settings } from '../helpers/adapters.ts'

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
