/**
 * The routes of the adapter contract suite (`describeAdapter` in `sessionkit/testing`),
 * written once per framework as a user of that framework would write them, each served on
 * 127.0.0.1 port 0. Plus a small `node:http` ↔ Web `Request`/`Response` bridge, the way
 * Bun or Deno would call a fetch handler.
 */
import { once } from 'node:events'
import type { RequestListener, Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { setImmediate as tick } from 'node:timers/promises'
import express, { type ErrorRequestHandler } from 'express'
import Fastify from 'fastify'
import Koa from 'koa'
import { Hono } from 'hono'
import { serve } from '@hono/node-server'
import type { Session, Settings } from 'sessionkit'
import { addTestLayer, capturingLogger, manualClock, type MakeServer } from 'sessionkit/testing'
import { withSessions } from 'sessionkit/node'
import { sessions as expressSessions } from 'sessionkit/express'
import { sessionPlugin } from 'sessionkit/fastify'
import { sessions as koaSessions, type SessionContext } from 'sessionkit/koa'
import { sessions as honoSessions, type SessionEnv } from 'sessionkit/hono'
import { withSessions as withFetchSessions } from 'sessionkit/fetch'
import { listen } from './http.ts'

/** Settings for a framework's own tests: signed cookies, a manual clock, a capturing logger. */
export function adapterSettings(extra: Partial<Settings> = {}): Partial<Settings> {
  return { secretKey: 'adapters-test-secret-0123456789abcdefghijklmnop', engine: 'signed_cookies', now: manualClock(), logger: capturingLogger(), ...extra }
}

/** The three chunks of `/stream`. */
export const CHUNKS = ['one\n', 'two\n', 'three\n'] as const

/** The chunks of `/stream`, one per turn of the event loop. */
async function* chunks(): AsyncGenerator<string> {
  for (const chunk of CHUNKS) {
    await tick()
    yield chunk
  }
}

/** The chunks of `/stream` as a Web stream. */
function webChunks(): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder()
  const source = chunks()
  return new ReadableStream({
    async pull(controller) {
      const { value, done } = await source.next()
      if (done) controller.close()
      else controller.enqueue(encoder.encode(value))
    },
  })
}

function query(url: string): URLSearchParams {
  return new URL(url, 'http://localhost').searchParams
}

/** `/set?k=v&…`: every query parameter into the session. */
function setAll(session: Session, params: URLSearchParams): void {
  for (const [k, v] of params) session.set(k, v)
}

function statusOf(params: URLSearchParams): number {
  return Number(params.get('code') ?? 200)
}

/** `/layer?code=N[&fail=1]`: the suite's test layer on this request's session. */
function layer(session: Session, params: URLSearchParams): number {
  addTestLayer(session, { fail: params.get('fail') === '1' })
  return statusOf(params)
}

/** Close a node:http server's keep-alive connections too. */
function stop(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/** `node:http` with `withSessions`. */
export const makeNodeServer: MakeServer = async (settings) => {
  const listener = withSessions(async (req, res) => {
    const params = query(req.url ?? '/')
    const session = req.session
    const text = (body: string, status = 200) => {
      res.statusCode = status
      res.setHeader('Content-Type', 'text/plain; charset=utf-8')
      res.end(body)
    }
    switch (new URL(req.url ?? '/', 'http://localhost').pathname) {
      case '/set':
        setAll(session, params)
        return text('ok')
      case '/get':
        return text(String(session.get(params.get('k') ?? '') ?? ''))
      case '/delete':
        session.delete(params.get('k') ?? '')
        return text('ok')
      case '/flush':
        await session.flush()
        return text('ok')
      case '/cycle':
        await session.cycleKey()
        return text('ok')
      case '/expiry':
        session.setExpiry(Number(params.get('s')))
        return text('ok')
      case '/untouched':
        return text('ok')
      case '/vary':
        res.setHeader('Vary', 'Accept-Encoding')
        session.get('k')
        return text('ok')
      case '/status':
        session.set('hello', 'world')
        return text(`status ${statusOf(params)}`, statusOf(params))
      case '/throw':
        session.set('hello', 'world')
        throw new Error('boom')
      case '/stream':
        session.set('hello', 'world')
        res.setHeader('Content-Type', 'text/plain; charset=utf-8')
        for await (const chunk of chunks()) res.write(chunk)
        return void res.end()
      case '/cookies':
        session.set('hello', 'world')
        res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/'])
        return text('ok')
      case '/redirect':
        session.set('hello', 'world')
        res.writeHead(302, { Location: '/get?k=hello' })
        return void res.end()
      case '/layer':
        return text('ok', layer(session, params))
      default:
        return text('not found', 404)
    }
  }, settings)
  const running = await listen(listener)
  return { url: running.url, close: async () => (await running.close(), await listener.close()) }
}

/** Express 5 with `sessions()` from `sessionkit/express`. */
export const makeExpressServer: MakeServer = async (settings) => {
  const middleware = expressSessions(settings)
  const app = express()
  app.use(middleware)
  app.get('/set', (req, res) => {
    setAll(req.session, query(req.originalUrl))
    res.type('text').send('ok')
  })
  app.get('/get', (req, res) => {
    res.type('text').send(String(req.session.get(String(req.query.k ?? '')) ?? ''))
  })
  app.get('/delete', (req, res) => {
    req.session.delete(String(req.query.k ?? ''))
    res.type('text').send('ok')
  })
  app.get('/flush', async (req, res) => {
    await req.session.flush()
    res.type('text').send('ok')
  })
  app.get('/cycle', async (req, res) => {
    await req.session.cycleKey()
    res.type('text').send('ok')
  })
  app.get('/expiry', (req, res) => {
    req.session.setExpiry(Number(req.query.s))
    res.type('text').send('ok')
  })
  app.get('/untouched', (_req, res) => {
    res.type('text').send('ok')
  })
  app.get('/vary', (req, res) => {
    res.set('Vary', 'Accept-Encoding')
    req.session.get('k')
    res.type('text').send('ok')
  })
  app.get('/status', (req, res) => {
    req.session.set('hello', 'world')
    const code = statusOf(query(req.originalUrl))
    res.status(code).type('text').send(`status ${code}`)
  })
  app.get('/throw', (req) => {
    req.session.set('hello', 'world')
    throw new Error('boom')
  })
  app.get('/stream', async (req, res) => {
    req.session.set('hello', 'world')
    res.type('text')
    for await (const chunk of chunks()) res.write(chunk)
    res.end()
  })
  app.get('/cookies', (req, res) => {
    req.session.set('hello', 'world')
    res.cookie('a', '1')
    res.cookie('b', '2')
    res.type('text').send('ok')
  })
  app.get('/redirect', (req, res) => {
    req.session.set('hello', 'world')
    res.redirect(302, '/get?k=hello')
  })
  app.get('/layer', (req, res) => {
    res.status(layer(req.session, query(req.originalUrl))).type('text').send('ok')
  })
  // As Express's own final handler: the error's status (sessionkit's 503) or 500, without the stack trace on stderr.
  const onError: ErrorRequestHandler = (error: { status?: unknown }, _req, res, _next) => {
    res.status(typeof error.status === 'number' ? error.status : 500).type('text').send('error')
  }
  app.use(onError)
  const running = await listen(app)
  return { url: running.url, close: async () => (await running.close(), await middleware.close()) }
}

/** Fastify 5 with `sessionPlugin` from `sessionkit/fastify`. */
export const makeFastifyServer: MakeServer = async (settings) => {
  const app = Fastify({ forceCloseConnections: true })
  await app.register(sessionPlugin, settings)
  const q = (url: string) => query(url)
  app.get('/set', async (request) => {
    setAll(request.session, q(request.url))
    return 'ok'
  })
  app.get('/get', async (request) => String(request.session.get(q(request.url).get('k') ?? '') ?? ''))
  app.get('/delete', async (request) => {
    request.session.delete(q(request.url).get('k') ?? '')
    return 'ok'
  })
  app.get('/flush', async (request) => {
    await request.session.flush()
    return 'ok'
  })
  app.get('/cycle', async (request) => {
    await request.session.cycleKey()
    return 'ok'
  })
  app.get('/expiry', async (request) => {
    request.session.setExpiry(Number(q(request.url).get('s')))
    return 'ok'
  })
  app.get('/untouched', async () => 'ok')
  app.get('/vary', async (request, reply) => {
    reply.header('Vary', 'Accept-Encoding')
    request.session.get('k')
    return 'ok'
  })
  app.get('/status', async (request, reply) => {
    request.session.set('hello', 'world')
    const code = statusOf(q(request.url))
    return reply.code(code).send(`status ${code}`)
  })
  app.get('/throw', async (request) => {
    request.session.set('hello', 'world')
    throw new Error('boom')
  })
  app.get('/stream', async (request, reply) => {
    request.session.set('hello', 'world')
    return reply.type('text/plain').send(Readable.from(chunks()))
  })
  app.get('/cookies', async (request, reply) => {
    request.session.set('hello', 'world')
    reply.header('Set-Cookie', 'a=1; Path=/')
    reply.header('Set-Cookie', 'b=2; Path=/')
    return 'ok'
  })
  app.get('/redirect', async (request, reply) => {
    request.session.set('hello', 'world')
    return reply.redirect('/get?k=hello', 302)
  })
  app.get('/layer', async (request, reply) => reply.code(layer(request.session, q(request.url))).type('text/plain').send('ok'))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() }
}

/** Koa 3 with `sessions()` from `sessionkit/koa`. */
export const makeKoaServer: MakeServer = async (settings) => {
  const app = new Koa<Koa.DefaultState, SessionContext>()
  app.silent = true // the /throw route is expected to throw
  const middleware = koaSessions(settings)
  app.use(middleware)
  app.use(async (ctx) => {
    const params = new URLSearchParams(ctx.querystring)
    const session = ctx.session
    ctx.type = 'text/plain'
    switch (ctx.path) {
      case '/set':
        setAll(session, params)
        ctx.body = 'ok'
        return
      case '/get':
        ctx.body = String(session.get(params.get('k') ?? '') ?? '')
        return
      case '/delete':
        session.delete(params.get('k') ?? '')
        ctx.body = 'ok'
        return
      case '/flush':
        await session.flush()
        ctx.body = 'ok'
        return
      case '/cycle':
        await session.cycleKey()
        ctx.body = 'ok'
        return
      case '/expiry':
        session.setExpiry(Number(params.get('s')))
        ctx.body = 'ok'
        return
      case '/untouched':
        ctx.body = 'ok'
        return
      case '/vary':
        ctx.set('Vary', 'Accept-Encoding')
        session.get('k')
        ctx.body = 'ok'
        return
      case '/status':
        session.set('hello', 'world')
        ctx.status = statusOf(params)
        ctx.body = `status ${ctx.status}`
        return
      case '/throw':
        session.set('hello', 'world')
        throw new Error('boom')
      case '/stream':
        session.set('hello', 'world')
        ctx.body = Readable.from(chunks())
        return
      case '/cookies':
        session.set('hello', 'world')
        ctx.append('Set-Cookie', 'a=1; Path=/')
        ctx.append('Set-Cookie', 'b=2; Path=/')
        ctx.body = 'ok'
        return
      case '/redirect':
        session.set('hello', 'world')
        ctx.redirect('/get?k=hello')
        return
      case '/layer':
        ctx.status = layer(session, params)
        ctx.body = 'ok'
        return
    }
  })
  const running = await listen(app.callback())
  return { url: running.url, close: async () => (await running.close(), await middleware.close()) }
}

/** Hono 4 with `sessions()` from `sessionkit/hono`, served by `@hono/node-server`. */
export const makeHonoServer: MakeServer = async (settings) => {
  const app = new Hono<SessionEnv>()
  const middleware = honoSessions(settings)
  app.use(middleware)
  app.get('/set', (c) => {
    setAll(c.get('session'), new URL(c.req.url).searchParams)
    return c.text('ok')
  })
  app.get('/get', (c) => c.text(String(c.get('session').get(c.req.query('k') ?? '') ?? '')))
  app.get('/delete', (c) => {
    c.get('session').delete(c.req.query('k') ?? '')
    return c.text('ok')
  })
  app.get('/flush', async (c) => {
    await c.get('session').flush()
    return c.text('ok')
  })
  app.get('/cycle', async (c) => {
    await c.get('session').cycleKey()
    return c.text('ok')
  })
  app.get('/expiry', (c) => {
    c.get('session').setExpiry(Number(c.req.query('s')))
    return c.text('ok')
  })
  app.get('/untouched', (c) => c.text('ok'))
  app.get('/vary', (c) => {
    c.header('Vary', 'Accept-Encoding')
    c.get('session').get('k')
    return c.text('ok')
  })
  app.get('/status', (c) => {
    c.get('session').set('hello', 'world')
    const code = Number(c.req.query('code')) as 500
    return c.text(`status ${code}`, code)
  })
  app.get('/throw', (c) => {
    c.get('session').set('hello', 'world')
    throw new Error('boom')
  })
  app.get('/stream', (c) => {
    c.get('session').set('hello', 'world')
    c.header('Content-Type', 'text/plain; charset=utf-8')
    return c.body(webChunks())
  })
  app.get('/cookies', (c) => {
    c.get('session').set('hello', 'world')
    c.header('Set-Cookie', 'a=1; Path=/', { append: true })
    c.header('Set-Cookie', 'b=2; Path=/', { append: true })
    return c.text('ok')
  })
  app.get('/redirect', (c) => {
    c.get('session').set('hello', 'world')
    // A Response with immutable headers, on purpose: the adapter must copy it.
    return Response.redirect(new URL('/get?k=hello', c.req.url), 302)
  })
  app.get('/layer', (c) => c.text('ok', layer(c.get('session'), new URL(c.req.url).searchParams) as 200))
  app.onError((_error, c) => c.text('Internal Server Error', 500))
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0, overrideGlobalObjects: false }) as Server
  if (!server.listening) await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, close: async () => (await stop(server), await middleware.close()) }
}

/**
 * A `node:http` request listener calling a fetch handler with a real Web `Request` and
 * writing its `Response`, as Bun or Deno would: a thrown error answers 500, a HEAD response
 * has no body.
 */
export function fetchListener(handler: (request: Request) => Promise<Response>): RequestListener {
  return (req, res) => {
    void (async () => {
      const headers = new Headers()
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!)
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD'
      const init = { method: req.method, headers, body: hasBody ? (Readable.toWeb(req) as ReadableStream) : null, duplex: 'half' }
      const request = new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url ?? '/'}`, init as RequestInit)
      let response: Response
      try {
        response = await handler(request)
      } catch {
        response = new Response('Internal Server Error', { status: 500, headers: { 'Content-Type': 'text/plain' } })
      }
      const out: Record<string, string | string[]> = {}
      response.headers.forEach((value, name) => {
        if (name !== 'set-cookie') out[name] = value
      })
      const cookies = response.headers.getSetCookie()
      if (cookies.length > 0) out['set-cookie'] = cookies
      res.writeHead(response.status, out)
      if (req.method === 'HEAD' || response.body === null) {
        await response.body?.cancel()
        return void res.end()
      }
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk)
      res.end()
    })().catch((error: unknown) => res.destroy(error as Error))
  }
}

/** `withSessions` from `sessionkit/fetch`, behind {@link fetchListener}. */
export const makeFetchServer: MakeServer = async (settings) => {
  const text = (body: string, init: ResponseInit = {}) =>
    new Response(body, { ...init, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...(init.headers as Record<string, string>) } })
  const handler = withFetchSessions(async (request, session) => {
    const url = new URL(request.url)
    const params = url.searchParams
    switch (url.pathname) {
      case '/set':
        setAll(session, params)
        return text('ok')
      case '/get':
        return text(String(session.get(params.get('k') ?? '') ?? ''))
      case '/delete':
        session.delete(params.get('k') ?? '')
        return text('ok')
      case '/flush':
        await session.flush()
        return text('ok')
      case '/cycle':
        await session.cycleKey()
        return text('ok')
      case '/expiry':
        session.setExpiry(Number(params.get('s')))
        return text('ok')
      case '/untouched':
        return text('ok')
      case '/vary':
        session.get('k')
        return text('ok', { headers: { Vary: 'Accept-Encoding' } })
      case '/status':
        session.set('hello', 'world')
        return text(`status ${statusOf(params)}`, { status: statusOf(params) })
      case '/throw':
        session.set('hello', 'world')
        throw new Error('boom')
      case '/stream':
        session.set('hello', 'world')
        return new Response(webChunks(), { headers: { 'Content-Type': 'text/plain; charset=utf-8' } })
      case '/cookies': {
        session.set('hello', 'world')
        const headers = new Headers({ 'Content-Type': 'text/plain; charset=utf-8' })
        headers.append('Set-Cookie', 'a=1; Path=/')
        headers.append('Set-Cookie', 'b=2; Path=/')
        return new Response('ok', { headers })
      }
      case '/redirect':
        session.set('hello', 'world')
        return Response.redirect(new URL('/get?k=hello', url), 302) // immutable headers
      case '/layer':
        return text('ok', { status: layer(session, params) })
      default:
        return text('not found', { status: 404 })
    }
  }, settings)
  const running = await listen(fetchListener(handler))
  return { url: running.url, close: async () => (await running.close(), await handler.close()) }
}

/** Every adapter's server, by the name the suite reports. */
export const servers: ReadonlyArray<readonly [string, MakeServer]> = [
  ['node:http (withSessions)', makeNodeServer],
  ['express', makeExpressServer],
  ['fastify', makeFastifyServer],
  ['koa', makeKoaServer],
  ['hono (@hono/node-server)', makeHonoServer],
  ['fetch (withSessions)', makeFetchServer],
]
