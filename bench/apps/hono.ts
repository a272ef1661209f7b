/** Hono on @hono/node-server: bare, sessionkit's middleware. */
import type { Server } from 'node:http'
import { Hono, type Context } from 'hono'
import { serve } from '@hono/node-server'
import type { ServerConfig } from '../lib/config.ts'
import type { Counters } from '../lib/counters.ts'
import { Limit } from '../lib/limit.ts'
import { getSetRoute, lazyRoute, objectRoute, paramOf, PLAIN, SESSION_ROUTES, type SessionRoute } from '../lib/routes.ts'
import type { SkEngine, Variant } from '../variants.ts'
import type { Built } from './types.ts'
import { skHono } from '../lib/sk.ts'

type Handler = (route: SessionRoute) => (c: Context) => Response | Promise<Response>

export async function buildHono(variant: Variant, config: ServerConfig, counters: Counters): Promise<Built> {
  const app = new Hono()
  let close = async (): Promise<void> => {}
  let handler: Handler
  if (variant.impl === 'bare') {
    const limit = new Limit()
    handler = (route) => (c) => {
      const entry = limit.entry(c.req.header('cookie'))
      if (limit.setCookie) c.header('Set-Cookie', limit.setCookie)
      return c.text(objectRoute(route, paramOf(c.req.url), entry))
    }
  } else if (variant.impl === 'sessionkit') {
    const { sessions } = await skHono()
    const { sessionkitSetup } = await import('../lib/sessionkit.ts')
    const setup = await sessionkitSetup(variant.engine as SkEngine, variant.lazy, config, counters)
    const middleware = sessions(setup.settings)
    await setup.prepare(middleware.sessions)
    close = async () => {
      await middleware.close()
      await setup.close()
    }
    app.use(middleware as never)
    handler = variant.lazy
      ? (route) => async (c) => c.text(await lazyRoute(route, paramOf(c.req.url), c.get('session') as never))
      : (route) => (c) => c.text(getSetRoute(route, paramOf(c.req.url), c.get('session') as never))
  } else {
    throw new Error(`bench: ${variant.impl} does not run on Hono`)
  }
  app.get('/plain', (c) => c.text(PLAIN))
  for (const route of SESSION_ROUTES) app.get(`/${route}`, handler(route))
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s as Server))
  })
  return { server, close }
}
