/** The example on Hono 4, served by `@hono/node-server`: `app.use(sessions(…))`, one route per page, `c.get('session')`. */
import { getRequestListener } from '@hono/node-server'
import { Hono, type Context } from 'hono'
import { sessions, type SessionEnv } from 'sessionkit/hono'
import { readWebBody, type Mounted, type Site, type SiteRequest, type SiteResponse } from '../site.js'

export async function mount(site: Site): Promise<Mounted> {
  const app = new Hono<SessionEnv>()
  app.use(sessions(site.sessions))
  for (const route of site.routes) {
    app.on(route.method, route.path, async (c) => write(await route.view(siteRequest(c), c.get('session'))))
  }
  return { listener: getRequestListener(app.fetch, { overrideGlobalObjects: false }), close: async () => {} }
}

function siteRequest(c: Context<SessionEnv>): SiteRequest {
  return {
    method: c.req.method,
    url: new URL(c.req.url),
    header: (name) => c.req.header(name),
    body: () => readWebBody(c.req.raw),
  }
}

function write(page: SiteResponse): Response {
  return new Response(page.body, { status: page.status, headers: page.headers })
}
