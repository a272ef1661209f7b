/**
 * The example's pages, framework-neutral: the routes, the templates, CSRF, the login check
 * and the security headers. Each file in `frameworks/` only translates its framework's
 * request into a {@link SiteRequest}, mounts sessionkit's adapter for that framework with
 * {@link Site.sessions}, and writes the {@link SiteResponse} back.
 *
 * It mirrors what a Django project gets from `SessionMiddleware`, `CsrfViewMiddleware`,
 * `django.contrib.auth.login()` and `logout()`.
 */
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, RequestListener } from 'node:http'
import { STATUS_CODES } from 'node:http'
import { fileURLToPath } from 'node:url'
import nunjucks from 'nunjucks'
import { createSessions, type Session, type Sessions, type Settings } from 'sessionkit'
import { csrf, CSRF_FIELD_NAME, CSRF_HEADER_NAME, type CsrfResponse } from './csrf.js'
import { authenticator } from './passwords.js'

declare module 'sessionkit' {
  interface SessionData {
    /**
     * The logged-in user, written only by a successful POST /login (Django keeps it under
     * `_auth_user_id`). It is deliberately not `username`: /set stores that key for anyone,
     * and must not log anyone in.
     */
    authUser: string
    /** Demonstration data written by /set. */
    username: string
    email: string
  }
}

/** Where the app reports; the same shape as sessionkit's `logger` setting. */
export interface Logger {
  warn(message: string): void
  error(message: string, error?: unknown): void
}

export interface SiteOptions {
  /**
   * Session settings, usually `fromEnv()`. Without `databaseUrl` the database is
   * `./db.sqlite3`; without `secretKey` a random development secret is used, with a warning.
   */
  settings?: Partial<Settings>
  /** Username → password. Hashed with scrypt at start-up. Default: `admin` / `password123`. */
  users?: Readonly<Record<string, string>>
  /**
   * Where start-up warnings, CSRF rejections and errors go; also sessionkit's `logger`
   * unless `settings.logger` is given. Default: `console` (and sessionkit's own default).
   */
  logger?: Logger
}

/** A request as the pages see it; each framework file builds one. */
export interface SiteRequest {
  /** `GET`, `POST`, … (`HEAD` is answered as `GET`). */
  method: string
  /** The full URL the request reached: path, query and this site's origin. */
  url: URL
  /** A request header (lower-case name), or `undefined`. */
  header(name: string): string | undefined
  /** The raw `application/x-www-form-urlencoded` body, at most {@link BODY_LIMIT} bytes. */
  body(): Promise<string>
}

/** A response as the pages make it; each framework file writes it. */
export interface SiteResponse {
  status: number
  /** In order; `Set-Cookie` may repeat. */
  headers: Array<[string, string]>
  body: string
}

/** A page: what it answers to a request, given the visitor's session. */
export type View = (request: SiteRequest, session: Session) => Promise<SiteResponse>

/** One route: method, exact path, page. */
export interface Route {
  method: 'GET' | 'POST'
  path: string
  view: View
}

export interface Site {
  /** Every page, for frameworks with a router; CSRF is checked inside each view. */
  readonly routes: readonly Route[]
  /** The route for `method` and `path` (`HEAD` finds the `GET` route), for frameworks without one. */
  find(method: string, path: string): Route | undefined
  /** The sessions every framework's adapter is given: one store, migrated at start-up. */
  readonly sessions: Sessions
  readonly logger: Logger
  /** Release the session store (database connection). Call after the HTTP server closed. */
  close(): Promise<void>
}

/** What a file in `frameworks/` makes of the site: a `node:http` request listener. */
export interface Mounted {
  listener: RequestListener
  /** Release what the framework holds (the site's sessions are closed by the site). */
  close(): Promise<void>
}

export const DEFAULT_USERS: Readonly<Record<string, string>> = Object.freeze({ admin: 'password123' })

/** The largest form body read, as `express.urlencoded({ limit: '10kb' })` had it. */
export const BODY_LIMIT = 10 * 1024

const TEMPLATES = fileURLToPath(new URL('./templates/', import.meta.url))

export async function createSite(options: SiteOptions = {}): Promise<Site> {
  const logger = options.logger ?? console
  const settings = withDefaults(options.settings ?? {}, logger)
  if (options.logger !== undefined) settings.logger ??= options.logger
  const authenticate = authenticator(options.users ?? DEFAULT_USERS)

  const sessions = createSessions(settings)
  try {
    // Django: `manage.py migrate`. Creates django_session once; a no-op afterwards and for
    // engines without a table.
    await sessions.migrate()
  } catch (error) {
    await sessions.close()
    throw error
  }

  const templates = new nunjucks.Environment(new nunjucks.FileSystemLoader(TEMPLATES), { autoescape: true })
  const forms = csrf({ secure: settings.cookieSecure ?? false })

  /** What one response collects while a view runs. */
  interface Exchange {
    request: SiteRequest
    session: Session
    form: URLSearchParams
    csrf: CsrfResponse
    nonce: string
  }

  function respond(x: Exchange, status: number, body: string, headers: Array<[string, string]> = []): SiteResponse {
    const out: Array<[string, string]> = [
      // Every page here depends on the visitor's session or CSRF cookie: none may be cached.
      ['Cache-Control', 'no-store'],
      ['Content-Security-Policy', `default-src 'none'; style-src 'nonce-${x.nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`],
      ['Referrer-Policy', 'same-origin'],
      ['X-Content-Type-Options', 'nosniff'],
      ['X-Frame-Options', 'DENY'],
      ...headers,
    ]
    if (x.csrf.vary) out.push(['Vary', 'Cookie'])
    if (x.csrf.setCookie !== null) out.push(['Set-Cookie', x.csrf.setCookie])
    return { status, headers: out, body }
  }

  function render(x: Exchange, template: string, context: Record<string, unknown> = {}, status = 200): SiteResponse {
    const html = templates.render(template, { csp_nonce: x.nonce, ...context })
    return respond(x, status, html, [['Content-Type', 'text/html; charset=utf-8']])
  }

  function redirect(x: Exchange, location: string): SiteResponse {
    return respond(x, 302, `Found. Redirecting to ${location}`, [['Location', location], ['Content-Type', 'text/plain; charset=utf-8']])
  }

  function renderLogin(x: Exchange, context: { error?: string; username?: string } = {}): SiteResponse {
    return render(x, 'login.html', { ...context, csrf_token: x.csrf.token() })
  }

  const currentUser = (session: Session): string | undefined => session.get('authUser')

  const pages: Array<[Route['method'], string, (x: Exchange) => Promise<SiteResponse> | SiteResponse]> = [
    ['GET', '/', (x) => redirect(x, currentUser(x.session) === undefined ? '/login' : '/dashboard')],

    ['GET', '/login', (x) => renderLogin(x)],

    [
      'POST',
      '/login',
      async (x) => {
        const username = field(x.form, 'username') ?? ''
        const user = await authenticate(username, field(x.form, 'password') ?? '')
        if (user === null) return renderLogin(x, { error: 'Invalid credentials', username })

        // Django's login(): another user's session is emptied, the same user's keeps its data,
        // and in both cases the session key changes, so a key planted before login is useless.
        const previous = currentUser(x.session)
        if (previous !== undefined && previous !== user) await x.session.flush()
        else await x.session.cycleKey()
        x.session.set('authUser', user)
        x.csrf.rotate()
        return redirect(x, '/dashboard')
      },
    ],

    [
      'GET',
      '/dashboard',
      (x) => {
        const user = currentUser(x.session)
        if (user === undefined) return redirect(x, '/login')
        return render(x, 'dashboard.html', { username: user })
      },
    ],

    [
      'GET',
      '/logout',
      async (x) => {
        // Deletes the stored session and the cookie: the old key is refused from now on.
        await x.session.flush()
        return redirect(x, '/login')
      },
    ],

    [
      'GET',
      '/set',
      (x) => {
        x.session.set('username', 'john_doe')
        x.session.set('email', 'john@example.com')
        return render(x, 'message.html', {
          title: 'Session data set',
          heading: 'Session data set',
          message: 'Stored username "john_doe" and email "john@example.com" in the session.',
        })
      },
    ],

    [
      'GET',
      '/get',
      (x) =>
        render(x, 'get.html', {
          username: x.session.get('username', 'Guest'),
          email: x.session.get('email', 'Not provided'),
        }),
    ],

    [
      'GET',
      '/delete',
      async (x) => {
        if (x.session.has('username')) x.session.delete('username')
        await x.session.flush()
        return render(x, 'message.html', {
          title: 'Session data deleted',
          heading: 'Session data deleted',
          message: 'The session was deleted, and its cookie with it.',
        })
      },
    ],
  ]

  /** A page wrapped with what every request gets: CSRF check, form parsing, headers, errors. */
  function view(page: (x: Exchange) => Promise<SiteResponse> | SiteResponse): View {
    return async (request, session) => {
      const x: Exchange = {
        request,
        session,
        form: new URLSearchParams(),
        csrf: forms.begin(request.header('cookie')),
        nonce: randomBytes(16).toString('base64'),
      }
      try {
        if (request.method === 'POST') {
          const type = request.header('content-type') ?? ''
          if (type.startsWith('application/x-www-form-urlencoded')) x.form = new URLSearchParams(await request.body())
        }
        const reason = forms.reject({
          method: request.method,
          siteOrigin: request.url.origin,
          origin: request.header('origin'),
          cookie: request.header('cookie'),
          token: field(x.form, CSRF_FIELD_NAME) ?? request.header(CSRF_HEADER_NAME),
        })
        if (reason !== undefined) {
          logger.warn(`Forbidden (${reason}): ${request.url.pathname}`)
          return render(
            x,
            'message.html',
            {
              title: 'Forbidden',
              heading: 'CSRF verification failed',
              message: 'CSRF verification failed. Request aborted. Reload the form and try again.',
            },
            403,
          )
        }
        return await page(x)
      } catch (error) {
        const status = httpStatus(error)
        if (status >= 500) logger.error(`Internal Server Error: ${String(error)}`, error)
        return { status, headers: [['Content-Type', 'text/plain; charset=utf-8'], ['Cache-Control', 'no-store']], body: STATUS_CODES[status] ?? 'Error' }
      }
    }
  }

  const routes: Route[] = pages.map(([method, path, page]) => ({ method, path, view: view(page) }))
  const byKey = new Map(routes.map((r) => [`${r.method} ${r.path}`, r]))
  return {
    routes,
    find: (method, path) => byKey.get(`${method === 'HEAD' ? 'GET' : method} ${path}`),
    sessions,
    logger,
    close: () => sessions.close(),
  }
}

/**
 * Fill in the example's defaults. A missing secret becomes a random one, valid until the
 * process exits, announced loudly: sessions then do not survive a restart.
 */
function withDefaults(given: Partial<Settings>, logger: Logger): Partial<Settings> {
  const settings: Partial<Settings> = { ...given }
  // `sqlite:////abs/path` (four slashes: absolute), resolved now so a later chdir cannot move it.
  settings.databaseUrl ??= 'sqlite:///' + path.resolve('db.sqlite3')
  if (!settings.secretKey) {
    settings.secretKey = randomBytes(50).toString('base64url')
    logger.warn(
      [
        '',
        '*'.repeat(78),
        '*  WARNING: SECRET_KEY is not set.',
        '*',
        '*  Using a random development secret that dies with this process: every session',
        '*  is invalid after a restart. Never run like this in production. Set one with',
        '*',
        '*    SECRET_KEY="$(node -e "console.log(crypto.randomBytes(50).toString(\'base64url\'))")"',
        '*'.repeat(78),
        '',
      ].join('\n'),
    )
  }
  return settings
}

/** A form field; a missing or repeated field is `undefined`. */
function field(form: URLSearchParams, name: string): string | undefined {
  const values = form.getAll(name)
  return values.length === 1 ? values[0] : undefined
}

/** The status an error asks for (413 for a large body, sessionkit's 400/503, …), else 500. */
function httpStatus(error: unknown): number {
  const status = typeof error === 'object' && error !== null ? (error as { status?: unknown }).status : undefined
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599 ? status : 500
}

/** An error answered with 413. */
function tooLarge(): Error {
  return Object.assign(new Error(`request body larger than ${BODY_LIMIT} bytes`), { status: 413 })
}

/** A Node request's body as text, refusing more than {@link BODY_LIMIT} bytes (413). */
export async function readNodeBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > BODY_LIMIT) throw tooLarge()
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** A Web request's body as text, refusing more than {@link BODY_LIMIT} bytes (413). */
export async function readWebBody(request: Request): Promise<string> {
  if (request.body === null) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length
    if (size > BODY_LIMIT) throw tooLarge()
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** A header of a Node request as one string (the first of repeated ones). */
export function nodeHeader(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name]
  return Array.isArray(value) ? value[0] : value
}
