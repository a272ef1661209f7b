/**
 * A Web `Request` → `Response` handler served by @hono/node-server (no router): bare, and
 * sessionkit's `withSessions`.
 */
import type { Server } from 'node:http'
import { serve } from '@hono/node-server'
import type { ServerConfig } from '../lib/config.ts'
import type { Counters } from '../lib/counters.ts'
import { Limit } from '../lib/limit.ts'
import { getSetRoute, lazyRoute, objectRoute, paramOf, PLAIN, routeOf } from '../lib/routes.ts'
import type { SkEngine, Variant } from '../variants.ts'
import type { Built } from './types.ts'
import { skFetch } from '../lib/sk.ts'

const TEXT = { 'Content-Type': 'text/plain; charset=utf-8' }

/** The path and query of an absolute URL: from the first `/` after `//`. */
function pathOf(url: string): string {
  return url.slice(url.indexOf('/', url.indexOf('//') + 2))
}

export async function buildFetch(variant: Variant, config: ServerConfig, counters: Counters): Promise<Built> {
  let fetch: (request: Request) => Response | Promise<Response>
  let close = async (): Promise<void> => {}
  if (variant.impl === 'bare') {
    const limit = new Limit()
    fetch = (request) => {
      const url = pathOf(request.url)
      const route = routeOf(url)
      if (route === null) return new Response(null, { status: 404 })
      if (route === 'plain') return new Response(PLAIN, { headers: TEXT })
      const entry = limit.entry(request.headers.get('cookie'))
      const body = objectRoute(route, paramOf(url), entry)
      return new Response(body, { headers: limit.setCookie ? { ...TEXT, 'Set-Cookie': limit.setCookie } : TEXT })
    }
  } else if (variant.impl === 'sessionkit') {
    const { withSessions } = await skFetch()
    const { sessionkitSetup } = await import('../lib/sessionkit.ts')
    const setup = await sessionkitSetup(variant.engine as SkEngine, variant.lazy, config, counters)
    const handler = withSessions(
      variant.lazy
        ? async (request, session) => {
            const url = pathOf(request.url)
            const route = routeOf(url)
            if (route === null) return new Response(null, { status: 404 })
            return new Response(route === 'plain' ? PLAIN : await lazyRoute(route, paramOf(url), session as never), { headers: TEXT })
          }
        : (request, session) => {
            const url = pathOf(request.url)
            const route = routeOf(url)
            if (route === null) return new Response(null, { status: 404 })
            return new Response(route === 'plain' ? PLAIN : getSetRoute(route, paramOf(url), session as never), { headers: TEXT })
          },
      setup.settings,
    )
    await setup.prepare(handler.sessions)
    fetch = handler
    close = async () => {
      await handler.close()
      await setup.close()
    }
  } else {
    throw new Error(`bench: ${variant.impl} does not run as a fetch handler`)
  }
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s as Server))
  })
  return { server, close }
}
