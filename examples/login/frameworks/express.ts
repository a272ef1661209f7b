/** The example on Express 5: `app.use(sessions(…))`, one route per page, `req.session`. */
import express, { type ErrorRequestHandler, type Request, type Response } from 'express'
import { sessions } from 'sessionkit/express'
import { readNodeBody, type Mounted, type Site, type SiteRequest, type SiteResponse } from '../site.js'

export async function mount(site: Site): Promise<Mounted> {
  const app = express()
  app.disable('x-powered-by')
  app.use(sessions(site.sessions))
  for (const route of site.routes) {
    app[route.method === 'GET' ? 'get' : 'post'](route.path, async (req, res) => {
      write(res, await route.view(siteRequest(req), req.session))
    })
  }
  // A session store that is down (503) reaches Express as an error.
  const onError: ErrorRequestHandler = (error: { status?: unknown }, _req, res, next) => {
    const status = typeof error.status === 'number' ? error.status : 500
    if (status >= 500 && status !== 503) site.logger.error(`Internal Server Error: ${String(error)}`, error)
    if (res.headersSent) return next(error)
    res.status(status).type('text/plain').send(status === 503 ? 'Service Unavailable' : 'Error')
  }
  app.use(onError)
  return { listener: app, close: async () => {} }
}

function siteRequest(req: Request): SiteRequest {
  return {
    method: req.method,
    url: new URL(req.originalUrl, `${req.protocol}://${req.get('host')}`),
    header: (name) => req.get(name),
    body: () => readNodeBody(req),
  }
}

function write(res: Response, page: SiteResponse): void {
  res.status(page.status)
  for (const [name, value] of page.headers) res.append(name, value)
  res.send(page.body)
}
