/** Koa 3: bare, sessionkit. One middleware routes by path, as a router-less Koa app does. */
import http from 'node:http'
import Koa from 'koa'
import type { ServerConfig } from '../lib/config.ts'
import type { Counters } from '../lib/counters.ts'
import { Limit } from '../lib/limit.ts'
import { getSetRoute, lazyRoute, objectRoute, paramOf, PLAIN, routeOf } from '../lib/routes.ts'
import type { SkEngine, Variant } from '../variants.ts'
import type { Built } from './types.ts'
import { skKoa } from '../lib/sk.ts'

export async function buildKoa(variant: Variant, config: ServerConfig, counters: Counters): Promise<Built> {
  const app = new Koa()
  let close = async (): Promise<void> => {}
  if (variant.impl === 'bare') {
    const limit = new Limit()
    app.use(async (ctx) => {
      const route = routeOf(ctx.url)
      if (route === null) return
      if (route === 'plain') return void (ctx.body = PLAIN)
      const entry = limit.entry(ctx.headers.cookie)
      if (limit.setCookie) ctx.set('Set-Cookie', limit.setCookie)
      ctx.body = objectRoute(route, paramOf(ctx.url), entry)
    })
  } else if (variant.impl === 'sessionkit') {
    const { sessions } = await skKoa()
    const { sessionkitSetup } = await import('../lib/sessionkit.ts')
    const setup = await sessionkitSetup(variant.engine as SkEngine, variant.lazy, config, counters)
    const middleware = sessions(setup.settings)
    await setup.prepare(middleware.sessions)
    close = async () => {
      await middleware.close()
      await setup.close()
    }
    app.use(middleware as unknown as Koa.Middleware)
    app.use(async (ctx) => {
      const route = routeOf(ctx.url)
      if (route === null) return
      const session = (ctx as unknown as { session: never }).session
      if (route === 'plain') ctx.body = PLAIN
      else ctx.body = variant.lazy ? await lazyRoute(route, paramOf(ctx.url), session) : getSetRoute(route, paramOf(ctx.url), session)
    })
  } else {
    throw new Error(`bench: ${variant.impl} does not run on Koa`)
  }
  const server = http.createServer(app.callback())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, close }
}
