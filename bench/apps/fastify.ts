/** Fastify 5: bare, @fastify/session (its MemoryStore), sessionkit's plugin. */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { SECRET, type ServerConfig } from '../lib/config.ts'
import { countMethods, STORE_KINDS, type Counters } from '../lib/counters.ts'
import { Limit } from '../lib/limit.ts'
import { getSetRoute, lazyRoute, objectRoute, paramOf, PLAIN, SESSION_ROUTES, type GetSet, type SessionRoute } from '../lib/routes.ts'
import type { SkEngine, Variant } from '../variants.ts'
import type { Built } from './types.ts'
import { skFastify, skMiddleware } from '../lib/sk.ts'

type Handler = (route: SessionRoute) => (request: FastifyRequest, reply: FastifyReply) => unknown

export async function buildFastify(variant: Variant, config: ServerConfig, counters: Counters): Promise<Built> {
  const app = Fastify({ logger: false })
  let close = async (): Promise<void> => {}
  let handler: Handler
  switch (variant.impl) {
    case 'bare': {
      const limit = new Limit()
      handler = (route) => async (request, reply) => {
        const entry = limit.entry(request.headers.cookie)
        if (limit.setCookie) reply.header('set-cookie', limit.setCookie)
        return objectRoute(route, paramOf(request.url), entry)
      }
      break
    }
    case '@fastify/session': {
      const { default: fastifyCookie } = await import('@fastify/cookie')
      const { default: fastifySession } = await import('@fastify/session')
      const store = new fastifySession.MemoryStore()
      countMethods(store, STORE_KINDS, counters, 'listed')
      await app.register(fastifyCookie)
      await app.register(fastifySession, { secret: SECRET, cookie: { secure: false }, saveUninitialized: false, store })
      handler = (route) => async (request) => getSetRoute(route, paramOf(request.url), request.session as unknown as GetSet)
      break
    }
    case 'sessionkit': {
      const { sessionPlugin } = await skFastify()
      const { createSessions } = await skMiddleware()
      const { sessionkitSetup } = await import('../lib/sessionkit.ts')
      const setup = await sessionkitSetup(variant.engine as SkEngine, variant.lazy, config, counters)
      const core = createSessions(setup.settings)
      await setup.prepare(core)
      close = async () => {
        await core.close()
        await setup.close()
      }
      await app.register(sessionPlugin as never, core as never)
      handler = variant.lazy
        ? (route) => async (request) => lazyRoute(route, paramOf(request.url), request.session as never)
        : (route) => async (request) => getSetRoute(route, paramOf(request.url), request.session as never)
      break
    }
    default:
      throw new Error(`bench: ${variant.impl} does not run on Fastify`)
  }
  app.get('/plain', async () => PLAIN)
  for (const route of SESSION_ROUTES) app.get(`/${route}`, handler(route))
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    server: app.server,
    close: async () => {
      await close()
    },
  }
}
