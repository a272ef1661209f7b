/** The example on Koa 3: `app.use(sessions(…))`, a route lookup, `ctx.session`. */
import Koa, { type ParameterizedContext } from 'koa'
import { sessions, type SessionContext } from 'sessionkit/koa'
import { readNodeBody, type Mounted, type Site, type SiteRequest, type SiteResponse } from '../site.js'

type Context = ParameterizedContext<Koa.DefaultState, SessionContext>

export async function mount(site: Site): Promise<Mounted> {
  const app = new Koa<Koa.DefaultState, SessionContext>()
  app.on('error', (error: { status?: number }) => {
    if ((error.status ?? 500) >= 500 && error.status !== 503) site.logger.error(`Internal Server Error: ${String(error)}`, error)
  })
  app.use(sessions(site.sessions))
  app.use(async (ctx) => {
    const route = site.find(ctx.method, ctx.path)
    if (route === undefined) return // Koa answers 404
    write(ctx, await route.view(siteRequest(ctx), ctx.session))
  })
  return { listener: app.callback(), close: async () => {} }
}

function siteRequest(ctx: Context): SiteRequest {
  return {
    method: ctx.method,
    url: new URL(ctx.originalUrl, `${ctx.protocol}://${ctx.host}`),
    header: (name) => ctx.get(name) || undefined,
    body: () => readNodeBody(ctx.req),
  }
}

function write(ctx: Context, page: SiteResponse): void {
  ctx.status = page.status
  for (const [name, value] of page.headers) ctx.append(name, value)
  ctx.body = page.body
}
