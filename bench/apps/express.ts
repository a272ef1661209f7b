/** Express 5: bare, express-session (every store), cookie-session, iron-session, sessionkit. */
import express, { type Request, type Response } from 'express'
import type { Server } from 'node:http'
import { SECRET, type ServerConfig } from '../lib/config.ts'
import type { Counters } from '../lib/counters.ts'
import { Limit } from '../lib/limit.ts'
import { getSetRoute, lazyRoute, objectRoute, paramOf, PLAIN, SESSION_ROUTES, type SessionRoute } from '../lib/routes.ts'
import type { PeerStore, SkEngine, Variant } from '../variants.ts'
import type { Built } from './types.ts'
import { skExpress } from '../lib/sk.ts'

type Handler = (route: SessionRoute) => (req: Request, res: Response) => unknown

export async function buildExpress(variant: Variant, config: ServerConfig, counters: Counters): Promise<Built> {
  const app = express()
  let close = async (): Promise<void> => {}
  let handler: Handler

  switch (variant.impl) {
    case 'bare': {
      const limit = new Limit()
      handler = (route) => (req, res) => {
        const entry = limit.entry(req.headers.cookie)
        if (limit.setCookie) res.setHeader('Set-Cookie', limit.setCookie)
        res.send(objectRoute(route, paramOf(req.url), entry))
      }
      break
    }
    case 'express-session': {
      const { default: session } = await import('express-session')
      const { expressSessionStore } = await import('../lib/peers.ts')
      const peer = await expressSessionStore(variant.engine as PeerStore, config, counters)
      close = peer.close
      app.use(session({ secret: SECRET, resave: false, saveUninitialized: false, store: peer.store }))
      handler = (route) => (req, res) => {
        res.send(objectRoute(route, paramOf(req.url), req.session as unknown as Record<string, unknown>))
      }
      break
    }
    case 'cookie-session': {
      const { default: cookieSession } = await import('cookie-session')
      app.use(cookieSession({ name: 'session', keys: [SECRET] }))
      handler = (route) => (req, res) => {
        res.send(objectRoute(route, paramOf(req.url), req.session as unknown as Record<string, unknown>))
      }
      break
    }
    case 'iron-session': {
      const { getIronSession } = await import('iron-session')
      const options = { password: SECRET, cookieName: 'iron', cookieOptions: { secure: false } }
      handler = (route) => async (req, res) => {
        const session = await getIronSession<Record<string, unknown>>(req, res, options)
        const body = objectRoute(route, paramOf(req.url), session)
        if (route !== 'read' && route !== 'count') await session.save()
        res.send(body)
      }
      break
    }
    case 'sessionkit': {
      const { sessions } = await skExpress()
      const { sessionkitSetup } = await import('../lib/sessionkit.ts')
      const setup = await sessionkitSetup(variant.engine as SkEngine, variant.lazy, config, counters)
      const middleware = sessions(setup.settings)
      await setup.prepare(middleware.sessions)
      close = async () => {
        await middleware.close()
        await setup.close()
      }
      app.use(middleware)
      handler = variant.lazy
        ? (route) => async (req, res) => {
            res.send(await lazyRoute(route, paramOf(req.url), req.session as never))
          }
        : (route) => (req, res) => {
            res.send(getSetRoute(route, paramOf(req.url), req.session as never))
          }
      break
    }
    default:
      throw new Error(`bench: ${variant.impl} does not run on Express`)
  }

  app.get('/plain', (_req, res) => {
    res.send(PLAIN)
  })
  for (const route of SESSION_ROUTES) app.get(`/${route}`, handler(route))

  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', (error?: Error) => (error ? reject(error) : resolve(s)))
  })
  return { server, close }
}
