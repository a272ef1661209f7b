/**
 * `node:http` adapter, and the response plumbing every `ServerResponse`-based framework
 * (Express included) shares: the session is saved, and its cookie set, before the first
 * byte of the response leaves — so a redirect right after login never races the write.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { SessionError } from '../errors.js'
import { FAILURE_HEADERS, sessionFailure } from './failure.js'
import { createSessions, patchVary, Sessions, type RequestSession, type ResponseDecision } from '../middleware.js'
import type { Session, SessionData } from '../session.js'
import type { Settings } from '../settings.js'

type Args = unknown[]
type Write = (...args: Args) => boolean

/** Merge our `Set-Cookie`/`Vary`/`Cache-Control` into headers passed straight to `writeHead(status, headers)`. */
function mergeIntoHeadArgs(args: Args, decision: ResponseDecision): void {
  const at = typeof args[1] === 'string' ? 2 : 1
  const headers = args[at]
  if (headers === undefined || headers === null) return
  if (Array.isArray(headers)) {
    // Raw form [name, value, name, value, …]: Node (20) applies each pair with setHeader, so a
    // Set-Cookie or Vary pair would replace what applyDecision set. Merge into the last pair of
    // each name instead, which is the one that wins.
    const raw = headers as unknown[]
    const last = (wanted: string): number => {
      for (let i = raw.length - 2; i >= 0; i -= 2) if (String(raw[i]).toLowerCase() === wanted) return i + 1
      return -1
    }
    const cookieAt = decision.setCookie ? last('set-cookie') : -1
    if (cookieAt !== -1) {
      const existing = raw[cookieAt]
      raw[cookieAt] = [...(Array.isArray(existing) ? existing.map(String) : [String(existing)]), decision.setCookie]
      decision.setCookie = null
    }
    const varyAt = decision.vary ? last('vary') : -1
    if (varyAt !== -1) {
      raw[varyAt] = patchVary(raw[varyAt] as string | string[])
      decision.vary = false
    }
    if (decision.cacheControl) {
      // Every pair of that name, not only the last: none may keep a weaker directive.
      for (let i = 0; i < raw.length; i += 2) if (String(raw[i]).toLowerCase() === 'cache-control') raw[i + 1] = decision.cacheControl
    }
    return
  }
  const record = headers as OutgoingHttpHeaders
  for (const name of Object.keys(record)) {
    const lower = name.toLowerCase()
    if (lower === 'set-cookie' && decision.setCookie) {
      const existing = record[name]
      const list = Array.isArray(existing) ? existing : existing === undefined ? [] : [String(existing)]
      record[name] = [...list, decision.setCookie]
      decision.setCookie = null
    } else if (lower === 'vary' && decision.vary) {
      record[name] = patchVary(record[name] as string | string[])
      decision.vary = false
    } else if (lower === 'cache-control' && decision.cacheControl) {
      record[name] = decision.cacheControl
    }
  }
}

function applyDecision(res: ServerResponse, decision: ResponseDecision): void {
  if (decision.vary) res.setHeader('Vary', patchVary(res.getHeader('Vary') as string | string[] | undefined))
  if (decision.cacheControl) res.setHeader('Cache-Control', decision.cacheControl)
  if (decision.setCookie) {
    const existing = res.getHeader('Set-Cookie')
    res.setHeader(
      'Set-Cookie',
      existing === undefined ? decision.setCookie : [...(Array.isArray(existing) ? existing : [String(existing)]), decision.setCookie],
    )
  }
}

/**
 * Load the request's session and hook `res` so that `writeHead`, `write` and `end` wait for
 * the session to be saved. On a store failure or a session deleted meanwhile, the response
 * the handler prepared is replaced by 503 / 400 with a short text body (and the error logged).
 *
 * For adapter authors: this is the whole of the `node:http` glue.
 */
export async function attachSession<T extends object = SessionData>(
  sessions: Sessions<T>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<RequestSession<T>> {
  const state = await sessions.begin(req.headers.cookie)
  const writeHead = res.writeHead as (...args: Args) => ServerResponse
  const write = res.write as Write
  const end = res.end as (...args: Args) => ServerResponse
  let phase: 'open' | 'saving' | 'done' = 'open'
  let head: Args | null = null
  let writes: Args[] = []
  let ending: Args | null = null

  let failed = false

  const flush = (): void => {
    phase = 'done'
    if (!failed) {
      // Drop our own-property hooks, last added first: the prototype's methods take over.
      delete (res as { headersSent?: boolean }).headersSent
      delete (res as Partial<ServerResponse>).end
      delete (res as Partial<ServerResponse>).write
      delete (res as Partial<ServerResponse>).writeHead
    } else {
      delete (res as { headersSent?: boolean }).headersSent
    }
    if (head) writeHead.apply(res, head)
    for (const args of writes) write.apply(res, args)
    writes = []
    if (ending) end.apply(res, ending)
  }

  /** Replace the prepared response by the error's status; the handler's later writes are dropped. */
  const fail = (error: unknown): void => {
    failed = true
    const { status, body } = sessionFailure(error, sessions.settings, 'save')
    for (const name of res.getHeaderNames()) res.removeHeader(name)
    for (const [name, value] of Object.entries(FAILURE_HEADERS)) res.setHeader(name, value)
    res.setHeader('Content-Length', Buffer.byteLength(body))
    head = [status]
    writes = []
    ending = [req.method === 'HEAD' ? undefined : body]
  }

  const commit = (): void => {
    if (phase !== 'open') return
    phase = 'saving'
    const status = head ? Number(head[0]) : res.statusCode
    const quick = sessions.quickEnd(state, status)
    if (quick) {
      // Nothing to load or save: finish now, without a promise.
      if (head) mergeIntoHeadArgs(head, quick)
      applyDecision(res, quick)
      return flush()
    }
    sessions.end(state, status).then(
      (decision) => {
        if (head) mergeIntoHeadArgs(head, decision)
        applyDecision(res, decision)
      },
      fail,
    ).then(flush, (error: unknown) => {
      sessions.settings.logger.error('sending the response failed', error)
      res.destroy(error as Error)
    })
  }

  res.writeHead = function writeHeadAfterSave(this: ServerResponse, ...args: Args) {
    if (failed) return this
    if (phase === 'done') return writeHead.apply(this, args)
    head = args
    commit()
    return this
  } as ServerResponse['writeHead']
  res.write = function writeAfterSave(this: ServerResponse, ...args: Args) {
    if (failed) return false
    if (phase === 'done') return write.apply(this, args)
    if (ending) return false
    writes.push(args)
    commit()
    return true
  } as ServerResponse['write']
  res.end = function endAfterSave(this: ServerResponse, ...args: Args) {
    if (failed) return this
    if (phase === 'done') return end.apply(this, args)
    if (ending) return this
    ending = args
    commit()
    return this
  } as ServerResponse['end']
  // Once the handler has begun its response (while the save runs), the headers count as
  // sent: an error thrown now must not turn the response into a 500 written after the first
  // chunk (Express's final handler and withSessions then close the connection instead).
  // Defined after the three hooks and deleted first, so V8 keeps `res` on its fast properties.
  Object.defineProperty(res, 'headersSent', {
    configurable: true,
    get: () => phase !== 'open' || res.writableEnded,
  })
  return state
}

/** A `node:http` request with its session. */
export interface SessionRequest<T extends object = SessionData> extends IncomingMessage {
  session: Session<T>
}

/** A `node:http` request handler that receives `req.session`. */
export type SessionHandler<T extends object = SessionData> = (req: SessionRequest<T>, res: ServerResponse) => unknown

/** What {@link withSessions} returns: a request listener, plus the sessions it uses. */
export interface SessionListener {
  (req: IncomingMessage, res: ServerResponse): void
  readonly sessions: Sessions<any>
  close(): Promise<void>
}

/**
 * Wrap a `node:http` request listener so that it gets `req.session`, with Django's
 * `SessionMiddleware` behaviour. A store that is down answers 503; an error thrown by the
 * handler answers 500 (no session save).
 *
 * ```ts
 * http.createServer(withSessions(async (req, res) => {
 *   req.session.set('visits', (req.session.get('visits') ?? 0) + 1)
 *   res.end('hi')
 * }, { secretKey: process.env.SECRET_KEY })).listen(8000)
 * ```
 */
export function withSessions<T extends object = SessionData>(
  handler: SessionHandler<T>,
  settings: Partial<Settings> | Sessions<T>,
): SessionListener {
  const sessions = settings instanceof Sessions ? settings : createSessions<T>(settings)
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    attachSession(sessions, req, res).then(
      async (state) => {
        ;(req as SessionRequest<T>).session = state.session
        await handler(req as SessionRequest<T>, res)
      },
    ).catch((error: unknown) => {
      if (error instanceof SessionError) {
        // A failed load (503), or a session error the handler let through.
        const { status, body } = sessionFailure(error, sessions.settings, 'load')
        if (res.headersSent) return void res.destroy()
        res.writeHead(status, FAILURE_HEADERS).end(body)
        return
      }
      sessions.settings.logger.error('request handler failed', error)
      if (res.headersSent) return void res.destroy()
      res.statusCode = 500
      res.setHeader('Content-Type', 'text/plain; charset=utf-8')
      res.end('Internal Server Error\n')
    })
  }
  return Object.assign(listener, { sessions, close: () => sessions.close() })
}
