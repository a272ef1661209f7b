/**
 * The example as a Web fetch handler: `withSessions(handler, …)`, a route lookup, the
 * session as the handler's second argument. Served on Node by `@hono/node-server`; the
 * same handler runs on `Bun.serve({ fetch })` or `Deno.serve(fetch)`.
 */
import { getRequestListener } from '@hono/node-server'
import { withSessions } from 'sessionkit/fetch'
import { readWebBody, type Mounted, type Site, type SiteRequest } from '../site.js'

export async function mount(site: Site): Promise<Mounted> {
  const fetch = withSessions(async (request, session) => {
    const url = new URL(request.url)
    const route = site.find(request.method, url.pathname)
    if (route === undefined) return new Response('Not Found', { status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' } })
    const page = await route.view(siteRequest(request, url), session)
    return new Response(page.body, { status: page.status, headers: page.headers })
  }, site.sessions)
  return { listener: getRequestListener(fetch, { overrideGlobalObjects: false }), close: async () => {} }
}

function siteRequest(request: Request, url: URL): SiteRequest {
  return {
    method: request.method,
    url,
    header: (name) => request.headers.get(name) ?? undefined,
    body: () => readWebBody(request),
  }
}
