/** The example on plain `node:http`: `withSessions(listener, …)`, a route lookup, `req.session`. */
import type { ServerResponse } from 'node:http'
import { withSessions, type SessionRequest } from 'sessionkit/node'
import { nodeHeader, readNodeBody, type Mounted, type Site, type SiteRequest, type SiteResponse } from '../site.js'

export async function mount(site: Site): Promise<Mounted> {
  const listener = withSessions(async (req, res) => {
    const request = siteRequest(req)
    const route = site.find(request.method, request.url.pathname)
    if (route === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' })
      return res.end('Not Found')
    }
    write(res, await route.view(request, req.session))
  }, site.sessions)
  return { listener, close: async () => {} }
}

function siteRequest(req: SessionRequest): SiteRequest {
  return {
    method: req.method ?? 'GET',
    url: new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`),
    header: (name) => nodeHeader(req, name),
    body: () => readNodeBody(req),
  }
}

function write(res: ServerResponse, page: SiteResponse): void {
  res.statusCode = page.status
  for (const [name, value] of page.headers) res.appendHeader(name, value)
  res.end(page.body)
}
