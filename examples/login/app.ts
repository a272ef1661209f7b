/**
 * The sessionkit example application: a login form, a private page and three views that
 * store, show and delete session data. `createApp()` builds it without listening, so tests
 * run it in-process; `server.ts` starts it.
 *
 * It mirrors what a Django project gets from `SessionMiddleware`, `CsrfViewMiddleware`,
 * `django.contrib.auth.login()` and `logout()`.
 */
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import { fileURLToPath } from 'node:url'
import express, { type ErrorRequestHandler, type Request, type Response } from 'express'
import nunjucks from 'nunjucks'
import type { Settings } from 'sessionkit'
import { sessions } from 'sessionkit/express'
import { csrf } from './csrf.js'
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

export interface AppOptions {
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

export interface App {
  app: express.Express
  /** Release the session store (database connection). Call after the HTTP server closed. */
  close(): Promise<void>
}

export const DEFAULT_USERS: Readonly<Record<string, string>> = Object.freeze({ admin: 'password123' })

const TEMPLATES = fileURLToPath(new URL('./templates/', import.meta.url))

export async function createApp(options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? console
  const settings = withDefaults(options.settings ?? {}, logger)
  if (options.logger !== undefined) settings.logger ??= options.logger
  const authenticate = authenticator(options.users ?? DEFAULT_USERS)

  const session = sessions(settings)
  try {
    // Django: `manage.py migrate`. Creates django_session once; a no-op afterwards and for
    // engines without a table.
    await session.sessions.migrate()
  } catch (error) {
    await session.close()
    throw error
  }

  const app = express()
  app.disable('x-powered-by')
  const templates = new nunjucks.Environment(new nunjucks.FileSystemLoader(TEMPLATES), { autoescape: true })
  templates.express(app)

  const forms = csrf({
    secure: settings.cookieSecure ?? false,
    onFailure(req, res, reason) {
      logger.warn(`Forbidden (${reason}): ${req.path}`)
      res.status(403)
      render(res, 'message.html', {
        title: 'Forbidden',
        heading: 'CSRF verification failed',
        message: 'CSRF verification failed. Request aborted. Reload the form and try again.',
      })
    },
  })

  app.use((_req, res, next) => {
    const nonce = randomBytes(16).toString('base64')
    res.locals.cspNonce = nonce
    res.set({
      // Every page here depends on the visitor's session or CSRF cookie: none may be cached.
      'Cache-Control': 'no-store',
      'Content-Security-Policy':
        `default-src 'none'; style-src 'nonce-${nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
      'Referrer-Policy': 'same-origin',
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
    })
    next()
  })
  app.use(session)
  app.use(express.urlencoded({ extended: false, limit: '10kb' }), forms.protect)

  const currentUser = (req: Request): string | undefined => req.session.get('authUser')

  function render(res: Response, template: string, context: Record<string, unknown> = {}): void {
    res.render(template, { csp_nonce: res.locals.cspNonce, ...context })
  }

  function renderLogin(req: Request, res: Response, context: { error?: string; username?: string } = {}): void {
    render(res, 'login.html', { ...context, csrf_token: forms.token(req, res) })
  }

  app.get('/', (req, res) => {
    res.redirect(currentUser(req) === undefined ? '/login' : '/dashboard')
  })

  app.get('/login', (req, res) => renderLogin(req, res))

  app.post('/login', async (req, res) => {
    const username = field(req, 'username')
    const user = await authenticate(username, field(req, 'password'))
    if (user === null) return renderLogin(req, res, { error: 'Invalid credentials', username })

    // Django's login(): another user's session is emptied, the same user's keeps its data,
    // and in both cases the session key changes, so a key planted before login is useless.
    const previous = currentUser(req)
    if (previous !== undefined && previous !== user) await req.session.flush()
    else await req.session.cycleKey()
    req.session.set('authUser', user)
    forms.rotate(req, res)
    res.redirect('/dashboard')
  })

  app.get('/dashboard', (req, res) => {
    const user = currentUser(req)
    if (user === undefined) return res.redirect('/login')
    render(res, 'dashboard.html', { username: user })
  })

  app.get('/logout', async (req, res) => {
    // Deletes the stored session and the cookie: the old key is refused from now on.
    await req.session.flush()
    res.redirect('/login')
  })

  app.get('/set', (req, res) => {
    req.session.set('username', 'john_doe')
    req.session.set('email', 'john@example.com')
    render(res, 'message.html', {
      title: 'Session data set',
      heading: 'Session data set',
      message: 'Stored username "john_doe" and email "john@example.com" in the session.',
    })
  })

  app.get('/get', (req, res) => {
    render(res, 'get.html', {
      username: req.session.get('username', 'Guest'),
      email: req.session.get('email', 'Not provided'),
    })
  })

  app.get('/delete', async (req, res) => {
    if (req.session.has('username')) req.session.delete('username')
    await req.session.flush()
    render(res, 'message.html', {
      title: 'Session data deleted',
      heading: 'Session data deleted',
      message: 'The session was deleted, and its cookie with it.',
    })
  })

  const onError: ErrorRequestHandler = (error: unknown, _req, res, next) => {
    const status = httpStatus(error)
    if (status >= 500) logger.error(`Internal Server Error: ${String(error)}`, error)
    if (res.headersSent) return next(error)
    res.status(status).type('text/plain').send(STATUS_CODES[status] ?? 'Error')
  }
  app.use(onError)

  return { app, close: () => session.close() }
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

/** A form field as a string; a missing or repeated field reads as ''. */
function field(req: Request, name: string): string {
  const body: unknown = req.body
  const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined
  return typeof value === 'string' ? value : ''
}

/** The status an error asks for (body-parser's 413, sessionkit's 400/503, …), else 500. */
function httpStatus(error: unknown): number {
  const status = typeof error === 'object' && error !== null ? (error as { status?: unknown }).status : undefined
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599 ? status : 500
}
