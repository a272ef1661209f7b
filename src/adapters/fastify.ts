/**
 * Fastify adapter: a plugin in Fastify's conventions. `fastify.register(sessionPlugin, settings)`,
 * then `request.session` in every route of that context, with Django's `SessionMiddleware`
 * behaviour.
 *
 * ```ts
 * import Fastify from 'fastify'
 * import { sessionPlugin } from 'sessionkit/fastify'
 *
 * const app = Fastify()
 * await app.register(sessionPlugin, { secretKey: process.env.SECRET_KEY! })
 * app.get('/', async (request) => {
 *   const visits = ((request.session.get('visits') as number | undefined) ?? 0) + 1
 *   request.session.set('visits', visits)
 *   return `visits: ${visits}`
 * })
 * await app.listen({ port: 8000 })
 * ```
 *
 * Encapsulation: the plugin's hooks belong to the context that registers it, as with
 * `@fastify/cookie` or `@fastify/session` — registered at the root it serves every route,
 * registered inside `app.register(async (child) => …)` it serves that child's routes only
 * and its siblings never see a session. `request.session` is typed as
 * `Session<SessionData>`; narrow `SessionData` app-wide with
 * `declare module 'sessionkit' { interface SessionData { visits: number } }`.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { patchVary, Sessions, type RequestSession, type ResponseDecision } from '../middleware.js'
import type { Session, SessionData } from '../session.js'
import type { Settings } from '../settings.js'
import { FAILURE_HEADERS, sessionFailure } from './failure.js'
import { applyToResponse } from './fetch.js'
import { appendSetCookies, sessionsOf } from './prologue.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The visitor's session (sessionkit); `null` on routes outside the plugin's context. */
    session: Session<SessionData>
  }
}

/**
 * The plugin's options: settings (Fastify's own `prefix`, `logLevel` and `logSerializers`
 * are ignored), or the `Sessions` of the app to share — then the plugin does not close it.
 */
export type SessionPluginOptions = Partial<Settings> | Sessions<any>

/** The request's session as the plugin tracks it, under a symbol decorated on the request. */
interface Tracked {
  readonly core: Sessions<any>
  readonly state: RequestSession<any>
  ended: boolean
}

const TRACKED = Symbol('sessionkit')
const FASTIFY_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers'])

function tracked(request: FastifyRequest): Tracked | null {
  return (request as unknown as Record<symbol, Tracked | null>)[TRACKED] ?? null
}

function isWebResponse(payload: unknown): payload is Response {
  return Object.prototype.toString.call(payload) === '[object Response]'
}

function settingsOf(options: Record<string, unknown>): Partial<Settings> {
  const settings: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(options)) if (!FASTIFY_OPTIONS.has(name)) settings[name] = value
  return settings as Partial<Settings>
}

/** Drop what the handler prepared and answer the session failure (see `sessionFailure`); returns the new payload. */
function replaceReply(reply: FastifyReply, error: unknown, settings: Pick<Settings, 'logger'>, phase: 'load' | 'save', payload?: unknown): string {
  const { status, body } = sessionFailure(error, settings, phase)
  const stream = payload as { destroy?: unknown } | null | undefined
  if (stream && typeof stream === 'object' && typeof stream.destroy === 'function') (stream as { destroy(): void }).destroy()
  else if (isWebResponse(payload)) payload.body?.cancel().catch(() => undefined)
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name)
  reply.code(status).headers(FAILURE_HEADERS)
  return body
}

/**
 * Load in `onRequest` (a request without a session cookie costs no store round trip; with
 * `lazy: true`, nothing is read until a handler awaits it); save in `onSend`, with
 * `reply.statusCode`, before Fastify writes anything: a redirect right after login never
 * races the write, and a streamed payload streams after. A store that is down answers 503
 * (logged); a session logged out by a concurrent request answers 400 (Django's
 * `SessionInterrupted`). A handler error reaches `onSend` as Fastify's 500: nothing is saved.
 * An engine the plugin created is closed in `onClose`. A `reply.hijack()`ed response
 * bypasses `onSend`, and so the session.
 *
 * Django: `django.contrib.sessions.middleware.SessionMiddleware`.
 */
async function sessionkit(fastify: FastifyInstance, options: SessionPluginOptions): Promise<void> {
  const owned = !(options instanceof Sessions)
  const core = sessionsOf(owned ? settingsOf(options as Record<string, unknown>) : options)
  if (owned) fastify.addHook('onClose', () => core.close())
  if (!fastify.hasRequestDecorator('session')) fastify.decorateRequest('session', null as unknown as Session<SessionData>)
  if (!fastify.hasRequestDecorator(TRACKED)) fastify.decorateRequest(TRACKED, null)

  fastify.addHook('onRequest', async (request, reply) => {
    // Registered again further down the same route's path: the outer registration serves it.
    if (tracked(request) !== null) return
    let state: RequestSession<any>
    try {
      // A promise only when the session must be loaded first: no tick otherwise.
      const started = core.start(request.headers.cookie)
      state = started instanceof Promise ? await started : started
    } catch (error) {
      return reply.send(replaceReply(reply, error, core.settings, 'load'))
    }
    request.session = state.session
    ;(request as unknown as Record<symbol, Tracked>)[TRACKED] = { core, state, ended: false }
  })

  fastify.addHook('onSend', async (request, reply, payload: unknown) => {
    const entry = tracked(request)
    if (entry === null || entry.core !== core || entry.ended) return payload
    entry.ended = true
    // A Web Response sent as the payload brings its own status (Fastify applies it after onSend).
    const status = isWebResponse(payload) ? payload.status : reply.statusCode
    let decision: ResponseDecision
    try {
      const finished = core.finish(entry.state, status)
      decision = finished instanceof Promise ? await finished : finished
    } catch (error) {
      return replaceReply(reply, error, core.settings, 'save', payload)
    }
    if (decision.vary) {
      reply.header('Vary', patchVary(reply.getHeader('Vary') as string | string[] | undefined))
      // Fastify copies a Response payload's own Vary over the reply's: patch it there too.
      if (isWebResponse(payload) && payload.headers.has('Vary')) payload = applyToResponse(payload, { vary: true, setCookie: null })
    }
    appendSetCookies(decision, (cookie) => reply.header('Set-Cookie', cookie))
    if (decision.cacheControl) reply.header('Cache-Control', decision.cacheControl)
    return payload
  })
}

// Fastify's `skip-override` (what `fastify-plugin` sets): the hooks and decorators belong to
// the context that registers the plugin, not to a context of their own that no route is
// in. Encapsulation is kept: a sibling or parent context never gets them.
Object.assign(sessionkit, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'sessionkit',
})

/**
 * The Fastify plugin: `fastify.register(sessionPlugin, settings)` gives every route of that
 * context `request.session`. Pass a `Sessions` (from `createSessions`) instead of settings
 * to share one store between contexts, or to run `migrate()` first.
 */
export const sessionPlugin: FastifyPluginAsync<SessionPluginOptions> = sessionkit
