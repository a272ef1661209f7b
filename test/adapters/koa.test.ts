/**
 * The Koa middleware beyond the adapter contract: errors thrown downstream, and the types of
 * `ctx.session`.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import Koa from 'koa'
import type { Session } from 'sessionkit'
import { sessions as koaSessions, type SessionContext } from 'sessionkit/koa'
import { adapterSettings as settings } from '../helpers/adapters.ts'
import { listen } from '../helpers/http.ts'

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
