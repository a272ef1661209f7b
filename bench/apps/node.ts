/** Raw `node:http`: bare, and sessionkit's `withSessions`. */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { ServerConfig } from '../lib/config.ts'
import type { Counters } from '../lib/counters.ts'
import { Limit } from '../lib/limit.ts'
import { getSetRoute, lazyRoute, objectRoute, paramOf, PLAIN, routeOf } from '../lib/routes.ts'
import type { SkEngine, Variant } from '../variants.ts'
import type { Built } from './types.ts'
import { skNode } from '../lib/sk.ts'

function send(res: ServerResponse, body: string): void {
  res.setHeader('Content-Type', 'text/plain; charset=utf-8')
  res.end(body)
}

function notFound(res: ServerResponse): void {
  res.statusCode = 404
  res.end()
}

export async function buildNode(variant: Variant, config: ServerConfig, counters: Counters): Promise<Built> {
  let listener: (req: IncomingMessage, res: ServerResponse) => void
  let close = async (): Promise<void> => {}
  if (variant.impl === 'bare') {
    const limit = new Limit()
    listener = (req, res) => {
      const route = routeOf(req.url!)
      if (route === null) return notFound(res)
      if (route === 'plain') return send(res, PLAIN)
      const entry = limit.entry(req.headers.cookie)
      if (limit.setCookie) res.setHeader('Set-Cookie', limit.setCookie)
      send(res, objectRoute(route, paramOf(req.url!), entry))
    }
  } else if (variant.impl === 'sessionkit') {
    const { withSessions } = await skNode()
    const { sessionkitSetup } = await import('../lib/sessionkit.ts')
    const setup = await sessionkitSetup(variant.engine as SkEngine, variant.lazy, config, counters)
    const wrapped = withSessions(
      variant.lazy
        ? async (req, res) => {
            const route = routeOf(req.url!)
            if (route === null) return notFound(res)
            send(res, route === 'plain' ? PLAIN : await lazyRoute(route, paramOf(req.url!), req.session as never))
          }
        : (req, res) => {
            const route = routeOf(req.url!)
            if (route === null) return notFound(res)
            send(res, route === 'plain' ? PLAIN : getSetRoute(route, paramOf(req.url!), req.session as never))
          },
      setup.settings,
    )
    await setup.prepare(wrapped.sessions)
    listener = wrapped
    close = async () => {
      await wrapped.close()
      await setup.close()
    }
  } else {
    throw new Error(`bench: ${variant.impl} does not run on node:http`)
  }
  const server = http.createServer(listener)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, close }
}
