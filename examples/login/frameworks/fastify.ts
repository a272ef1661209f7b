/** The example on Fastify 5: `register(sessionPlugin, …)`, one route per page, `request.session`. */
import { createServer, type RequestListener } from 'node:http'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { sessionPlugin } from 'sessionkit/fastify'
import { BODY_LIMIT, type Mounted, type Site, type SiteRequest, type SiteResponse } from '../site.js'

export async function mount(site: Site): Promise<Mounted> {
  let listener: RequestListener | undefined
  // serverFactory hands us Fastify's request listener: the example's server.ts does the listening.
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    serverFactory(handler) {
      listener = handler
      return createServer(handler)
    },
  })
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => done(null, body))
  await app.register(sessionPlugin, site.sessions)
  for (const route of site.routes) {
    app.route({
      method: route.method,
      url: route.path,
      handler: async (request, reply) => write(reply, await route.view(siteRequest(request), request.session)),
    })
  }
  await app.ready()
  return { listener: listener!, close: () => app.close() }
}

function siteRequest(request: FastifyRequest): SiteRequest {
  return {
    method: request.method,
    url: new URL(request.url, `${request.protocol}://${request.host}`),
    header: (name) => {
      const value = request.headers[name]
      return Array.isArray(value) ? value[0] : value
    },
    body: async () => (typeof request.body === 'string' ? request.body : ''),
  }
}

function write(reply: FastifyReply, page: SiteResponse): FastifyReply {
  reply.code(page.status)
  for (const [name, value] of page.headers) reply.header(name, value)
  return reply.send(page.body)
}
