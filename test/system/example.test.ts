/**
 * The example login app (examples/login), driven over real HTTP with fetch and a small
 * cookie jar. Each test builds its own app on a fresh SQLite file.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it, type TestContext } from 'node:test'
import { createApp, FRAMEWORKS, type AppOptions } from '../../examples/login/app.js'

const SECRET = 'example-test-secret-not-for-production-0123456789abcdef'

/** One Set-Cookie header, attribute names lower-cased. */
interface SetCookie {
  name: string
  value: string
  attributes: Map<string, string>
}

interface Page {
  status: number
  headers: Headers
  body: string
  /** The Set-Cookie headers of this response, by cookie name. */
  cookies: Map<string, SetCookie>
}

function parseSetCookie(header: string): SetCookie {
  const [pair = '', ...attributes] = header.split(';')
  const eq = pair.indexOf('=')
  return {
    name: pair.slice(0, eq).trim(),
    value: pair.slice(eq + 1).trim(),
    attributes: new Map(
      attributes.map((a) => {
        const i = a.indexOf('=')
        return i === -1 ? [a.trim().toLowerCase(), ''] : [a.slice(0, i).trim().toLowerCase(), a.slice(i + 1).trim()]
      }),
    ),
  }
}

/** A visitor: keeps cookies like a browser, never follows redirects. */
class Browser {
  readonly cookies = new Map<string, string>()

  constructor(readonly base: string) {}

  get(pathname: string, headers: Record<string, string> = {}): Promise<Page> {
    return this.request(pathname, { method: 'GET', headers })
  }

  post(pathname: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Page> {
    return this.request(pathname, { method: 'POST', body: new URLSearchParams(form), headers })
  }

  /** The login form's CSRF token, fetching the page (and so the cookie) first. */
  async csrfToken(): Promise<string> {
    const page = await this.get('/login')
    assert.equal(page.status, 200)
    return formToken(page)
  }

  async login(username = 'admin', password = 'password123'): Promise<Page> {
    const csrfmiddlewaretoken = await this.csrfToken()
    return this.post('/login', { username, password, csrfmiddlewaretoken })
  }

  private async request(pathname: string, init: RequestInit & { headers: Record<string, string> }): Promise<Page> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    const res = await fetch(this.base + pathname, {
      ...init,
      redirect: 'manual',
      headers: { ...init.headers, ...(cookie === '' ? {} : { cookie }) },
    })
    const cookies = new Map<string, SetCookie>()
    for (const header of res.headers.getSetCookie()) {
      const c = parseSetCookie(header)
      cookies.set(c.name, c)
      const maxAge = c.attributes.get('max-age')
      const expires = c.attributes.get('expires')
      const expired =
        (maxAge !== undefined && Number(maxAge) <= 0) ||
        (maxAge === undefined && expires !== undefined && Date.parse(expires) <= Date.now())
      if (expired) this.cookies.delete(c.name)
      else this.cookies.set(c.name, c.value)
    }
    return { status: res.status, headers: res.headers, body: await res.text(), cookies }
  }
}

function formToken(page: Page): string {
  const match = /name="csrfmiddlewaretoken" value="([^"]*)"/.exec(page.body)
  assert.ok(match, 'the page has a csrfmiddlewaretoken field')
  return match[1]!
}

function assertRedirect(page: Page, location: string): void {
  assert.equal(page.status, 302)
  assert.equal(page.headers.get('location'), location)
}

interface Running {
  base: string
  browser(): Browser
  /** What the app logged, as `level: message`. */
  logs: string[]
}

/** Build the app on a fresh SQLite file, listen on 127.0.0.1:0, tear it all down after `t`. */
async function start(t: TestContext, options: Omit<AppOptions, 'logger'> = {}): Promise<Running> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sessionkit-example-'))
  const logs: string[] = []
  const { app, close } = await createApp({
    ...options,
    settings: { secretKey: SECRET, databaseUrl: 'sqlite:///' + path.join(dir, 'db.sqlite3'), ...options.settings },
    logger: {
      warn: (m) => logs.push(`warn: ${m}`),
      error: (m) => logs.push(`error: ${m}`),
    },
  })
  const server = createServer(app).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await close()
    await rm(dir, { recursive: true, force: true })
  })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { base, browser: () => new Browser(base), logs }
}

describe('example login app', () => {
  it('sends an anonymous visitor from / to /login', async (t) => {
    const { browser } = await start(t)
    assertRedirect(await browser().get('/'), '/login')
  })

  it('serves the login form with a masked CSRF token and a script-readable csrftoken cookie', async (t) => {
    const { browser } = await start(t)
    const visitor = browser()
    const page = await visitor.get('/login')

    assert.equal(page.status, 200)
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
    assert.equal(page.headers.get('cache-control'), 'no-store')
    const token = formToken(page)
    assert.match(token, /^[a-zA-Z0-9]{64}$/)

    const cookie = page.cookies.get('csrftoken')
    assert.ok(cookie, 'csrftoken is set')
    assert.match(cookie.value, /^[a-zA-Z0-9]{32}$/)
    assert.equal(cookie.attributes.get('samesite'), 'Lax')
    assert.equal(cookie.attributes.get('path'), '/')
    assert.equal(cookie.attributes.has('httponly'), false)
    assert.equal(token.includes(cookie.value), false, 'the form never shows the secret itself')
    assert.equal(page.cookies.has('sessionid'), false, 'an anonymous visitor needs no session')

    const again = await visitor.get('/login')
    assert.notEqual(formToken(again), token, 'each page gets a fresh mask')
    assert.equal(again.cookies.has('csrftoken'), false, 'the existing secret is kept')
  })

  it('re-renders the form with "Invalid credentials" for a wrong password, starting no session', async (t) => {
    const { browser } = await start(t)
    const visitor = browser()
    const page = await visitor.login('admin', 'wrong-password')

    assert.equal(page.status, 200)
    assert.match(page.body, /Invalid credentials/)
    assert.match(page.body, /name="username" value="admin"/)
    formToken(page)
    assert.equal(visitor.cookies.has('sessionid'), false)
    assertRedirect(await visitor.get('/dashboard'), '/login')
  })

  it('answers an unknown username exactly like a wrong password', async (t) => {
    const { browser } = await start(t)
    const page = await browser().login('nobody', 'password123')
    assert.equal(page.status, 200)
    assert.match(page.body, /Invalid credentials/)
  })

  it('refuses a login POST without a CSRF token with 403, even with the right password', async (t) => {
    const { browser, logs } = await start(t)
    const visitor = browser()
    await visitor.csrfToken()
    const page = await visitor.post('/login', { username: 'admin', password: 'password123' })

    assert.equal(page.status, 403)
    assert.match(page.body, /CSRF verification failed/)
    assert.equal(visitor.cookies.has('sessionid'), false)
    assert.ok(logs.some((l) => l.includes('CSRF token missing')), logs.join('\n'))
  })

  it('refuses a login POST with another visitor\'s or a malformed CSRF token with 403', async (t) => {
    const { browser } = await start(t)
    const visitor = browser()
    await visitor.csrfToken()
    const stolen = await browser().csrfToken()

    for (const csrfmiddlewaretoken of [stolen, 'x'.repeat(64), 'not-a-token', stolen.slice(0, 32)]) {
      const page = await visitor.post('/login', { username: 'admin', password: 'password123', csrfmiddlewaretoken })
      assert.equal(page.status, 403, csrfmiddlewaretoken)
      assert.match(page.body, /CSRF verification failed/)
    }
    assert.equal(visitor.cookies.has('sessionid'), false)
  })

  it('refuses a login POST whose csrftoken cookie is missing with 403', async (t) => {
    const { browser, logs } = await start(t)
    const visitor = browser()
    const csrfmiddlewaretoken = await visitor.csrfToken()
    visitor.cookies.delete('csrftoken')

    const page = await visitor.post('/login', { username: 'admin', password: 'password123', csrfmiddlewaretoken })
    assert.equal(page.status, 403)
    assert.ok(logs.some((l) => l.includes('CSRF cookie not set')), logs.join('\n'))
  })

  it('refuses a login POST from another origin with 403, even with a valid token', async (t) => {
    const { browser } = await start(t)
    const visitor = browser()
    const csrfmiddlewaretoken = await visitor.csrfToken()
    const page = await visitor.post(
      '/login',
      { username: 'admin', password: 'password123', csrfmiddlewaretoken },
      { origin: 'https://evil.example' },
    )
    assert.equal(page.status, 403)
  })

  it('accepts a login POST from its own origin', async (t) => {
    const { base, browser } = await start(t)
    const visitor = browser()
    const csrfmiddlewaretoken = await visitor.csrfToken()
    const page = await visitor.post('/login', { username: 'admin', password: 'password123', csrfmiddlewaretoken }, { origin: base })
    assertRedirect(page, '/dashboard')
  })

  it('logs in with the right password under a new session key, refusing the key from before', async (t) => {
    const { browser } = await start(t)
    const visitor = browser()
    await visitor.get('/set')
    const before = visitor.cookies.get('sessionid')
    const csrfBefore = visitor.cookies.get('csrftoken')
    assert.ok(before, '/set started a session')

    const page = await visitor.login()
    assertRedirect(page, '/dashboard')
    const cookie = page.cookies.get('sessionid')
    assert.ok(cookie, 'login sets the session cookie')
    assert.match(cookie.value, /^[a-z0-9]{32,}$/)
    assert.notEqual(cookie.value, before, 'the session key changes at login (session fixation)')
    assert.equal(cookie.attributes.has('httponly'), true)
    assert.equal(cookie.attributes.get('samesite'), 'Lax')
    assert.equal(cookie.attributes.get('path'), '/')
    assert.notEqual(visitor.cookies.get('csrftoken'), csrfBefore, 'login rotates the CSRF secret')

    // The data stored before login moves to the new key (Django's cycle_key)…
    assert.match((await visitor.get('/get')).body, /john_doe/)
    // …and a fixated key, replayed, is a stranger's empty session.
    const attacker = browser()
    attacker.cookies.set('sessionid', before)
    assertRedirect(await attacker.get('/dashboard'), '/login')
    assert.match((await attacker.get('/get')).body, /Guest/)
  })

  it('greets the logged-in user on a non-cacheable dashboard with a logout link', async (t) => {
    const { browser } = await start(t)
    const visitor = browser()
    await visitor.login()
    const page = await visitor.get('/dashboard')

    assert.equal(page.status, 200)
    assert.match(page.body, /Welcome, admin/)
    assert.match(page.body, /href="\/logout"/)
    assert.equal(page.headers.get('cache-control'), 'no-store')
    assertRedirect(await visitor.get('/'), '/dashboard')
  })

  it('sends a visitor without a login to /login, including one who only visited /set', async (t) => {
    const { browser } = await start(t)
    assertRedirect(await browser().get('/dashboard'), '/login')
    const visitor = browser()
    await visitor.get('/set')
    assertRedirect(await visitor.get('/dashboard'), '/login')
  })

  it('escapes the username in HTML', async (t) => {
    const { browser } = await start(t, { users: { '<b>eve</b>': 'hunter2-hunter2' } })
    const visitor = browser()
    assertRedirect(await visitor.login('<b>eve</b>', 'hunter2-hunter2'), '/dashboard')
    const page = await visitor.get('/dashboard')
    assert.match(page.body, /Welcome, &lt;b&gt;eve&lt;\/b&gt;/)
    assert.equal(page.body.includes('<b>eve</b>'), false)
  })

  it('empties the previous user\'s session when another user logs in', async (t) => {
    const { browser } = await start(t, { users: { admin: 'password123', bob: 'bob-password' } })
    const visitor = browser()
    await visitor.login()
    await visitor.get('/set')
    assertRedirect(await visitor.login('bob', 'bob-password'), '/dashboard')
    assert.match((await visitor.get('/dashboard')).body, /Welcome, bob/)
    assert.match((await visitor.get('/get')).body, /Guest/)
  })

  it('logs out by deleting the session and its cookie; the old cookie is refused afterwards', async (t) => {
    const { browser } = await start(t)
    const visitor = browser()
    await visitor.login()
    const key = visitor.cookies.get('sessionid')
    assert.ok(key)

    const page = await visitor.get('/logout')
    assertRedirect(page, '/login')
    assert.equal(page.cookies.get('sessionid')?.attributes.get('max-age'), '0')
    assert.equal(visitor.cookies.has('sessionid'), false)
    assertRedirect(await visitor.get('/dashboard'), '/login')

    const replay = browser()
    replay.cookies.set('sessionid', key)
    assertRedirect(await replay.get('/dashboard'), '/login')
  })

  it('shows what /set stored on /get', async (t) => {
    const { browser } = await start(t)
    const visitor = browser()
    const set = await visitor.get('/set')
    assert.equal(set.status, 200)
    assert.match(set.body, /john_doe/)
    assert.ok(set.cookies.get('sessionid'))

    const page = await visitor.get('/get')
    assert.equal(page.status, 200)
    assert.match(page.body, /john_doe/)
    assert.match(page.body, /john@example\.com/)
  })

  it('shows Guest and Not provided on /get to a new visitor, without starting a session', async (t) => {
    const { browser } = await start(t)
    const page = await browser().get('/get')
    assert.equal(page.status, 200)
    assert.match(page.body, /Guest/)
    assert.match(page.body, /Not provided/)
    assert.equal(page.cookies.has('sessionid'), false)
  })

  it('flushes the session on /delete: cookie deleted, data gone, old key refused', async (t) => {
    const { browser } = await start(t)
    const visitor = browser()
    await visitor.get('/set')
    const key = visitor.cookies.get('sessionid')
    assert.ok(key)

    const page = await visitor.get('/delete')
    assert.equal(page.status, 200)
    assert.equal(page.cookies.get('sessionid')?.attributes.get('max-age'), '0')
    assert.match((await visitor.get('/get')).body, /Guest/)

    const replay = browser()
    replay.cookies.set('sessionid', key)
    assert.match((await replay.get('/get')).body, /Not provided/)
  })

  it('answers /delete for a visitor without a session', async (t) => {
    const { browser } = await start(t)
    const page = await browser().get('/delete')
    assert.equal(page.status, 200)
  })
})

describe('example login app on every framework, from the same pages', () => {
  for (const framework of FRAMEWORKS) {
    it(`${framework}: login → dashboard → logout, and the old cookie is refused afterwards`, async (t) => {
      const { browser } = await start(t, { framework })
      const visitor = browser()
      assertRedirect(await visitor.get('/'), '/login')

      const login = await visitor.login()
      assertRedirect(login, '/dashboard')
      const cookie = login.cookies.get('sessionid')
      assert.ok(cookie, 'login sets the session cookie')
      assert.match(cookie.value, /^[a-z0-9]{32}$/)
      assert.equal(cookie.attributes.has('httponly'), true)
      assert.equal(cookie.attributes.get('samesite'), 'Lax')
      assert.match(login.headers.get('vary') ?? '', /\bCookie\b/)
      assert.ok(login.cookies.get('csrftoken'), 'login rotates the CSRF secret')

      const dashboard = await visitor.get('/dashboard')
      assert.equal(dashboard.status, 200)
      assert.match(dashboard.headers.get('content-type') ?? '', /^text\/html/)
      assert.equal(dashboard.headers.get('cache-control'), 'no-store')
      assert.match(dashboard.body, /Welcome, admin/)
      assert.deepEqual([...dashboard.cookies.keys()], [], 'a read sends no cookie')

      const logout = await visitor.get('/logout')
      assertRedirect(logout, '/login')
      assert.equal(logout.cookies.get('sessionid')?.attributes.get('max-age'), '0')
      assertRedirect(await visitor.get('/dashboard'), '/login')

      const replay = browser()
      replay.cookies.set('sessionid', cookie.value)
      assertRedirect(await replay.get('/dashboard'), '/login')
    })

    it(`${framework}: a wrong password re-renders the form with "Invalid credentials" and starts no session`, async (t) => {
      const { browser } = await start(t, { framework })
      const visitor = browser()
      const page = await visitor.login('admin', 'wrong-password')
      assert.equal(page.status, 200)
      assert.match(page.body, /Invalid credentials/)
      assert.match(page.body, /name="username" value="admin"/)
      assert.equal(visitor.cookies.has('sessionid'), false)
      assertRedirect(await visitor.get('/dashboard'), '/login')
    })

    it(`${framework}: a login POST without a CSRF token answers 403, even with the right password`, async (t) => {
      const { browser, logs } = await start(t, { framework })
      const visitor = browser()
      await visitor.csrfToken()
      const page = await visitor.post('/login', { username: 'admin', password: 'password123' })
      assert.equal(page.status, 403)
      assert.match(page.body, /CSRF verification failed/)
      assert.equal(visitor.cookies.has('sessionid'), false)
      assert.ok(logs.some((l) => l.includes('CSRF token missing')), logs.join('\n'))
    })
  }
})

describe('npm start (examples/login/server.ts)', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url))
  const server = path.join(root, 'examples/login/server.ts')

  /** Spawn the server as `npm start` does, in a temporary working directory, on a free port. */
  async function spawnServer(t: TestContext, env: Record<string, string>) {
    const cwd = await mkdtemp(path.join(tmpdir(), 'sessionkit-example-'))
    const child = spawn(
      process.execPath,
      ['--conditions=sessionkit-source', '--import', import.meta.resolve('tsx'), server],
      // A clean environment: no SECRET_KEY, SESSION_* or NODE_ENV leaks in from the test runner.
      { cwd, env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env }, stdio: 'pipe' },
    )
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await exited
      }
      await rm(cwd, { recursive: true, force: true })
    })

    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL on stdout after 30 s\n${stdout}\n${stderr}`)), 30_000)
      const check = (): void => {
        const match = /sessionkit example listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)
        if (match) {
          clearTimeout(timer)
          resolve(match[1]!)
        }
      }
      child.stdout.on('data', check)
      void exited.then(([code]) => {
        clearTimeout(timer)
        reject(new Error(`server exited with ${code} before listening\n${stdout}\n${stderr}`))
      })
    })
    return { cwd, url, child, exited, output: () => ({ stdout, stderr }) }
  }

  it('prints its URL, serves /login, and exits with 0 on SIGTERM', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sessionkit-example-db-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const database = path.join(dir, 'sessions.sqlite3')
    const { url, child, exited, output } = await spawnServer(t, { DATABASE_URL: 'sqlite:///' + database })

    const page = await fetch(url + '/login')
    assert.equal(page.status, 200)
    assert.match(await page.text(), /csrfmiddlewaretoken/)
    assert.equal(existsSync(database), true, 'the database is created at DATABASE_URL')

    child.kill('SIGTERM')
    const [code] = await exited
    assert.equal(code, 0, output().stderr)
  })

  it('warns loudly without SECRET_KEY and keeps its database in ./db.sqlite3 by default', async (t) => {
    const { cwd, url, output } = await spawnServer(t, {})
    assert.equal((await fetch(url + '/login')).status, 200)
    assert.match(output().stderr, /WARNING: SECRET_KEY is not set/)
    assert.equal(existsSync(path.join(cwd, 'db.sqlite3')), true)
  })

  it('runs on the framework EXAMPLE_FRAMEWORK names', async (t) => {
    const { url, output } = await spawnServer(t, { SECRET_KEY: SECRET, EXAMPLE_FRAMEWORK: 'fastify' })
    const page = await fetch(url + '/login')
    assert.equal(page.status, 200)
    assert.match(await page.text(), /csrfmiddlewaretoken/)
    assert.match(output().stdout, /listening on http:\/\/127\.0\.0\.1:\d+ \(fastify\)/)
  })

  it('refuses an unknown EXAMPLE_FRAMEWORK, naming the variable and the allowed values', async (t) => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'sessionkit-example-'))
    t.after(() => rm(cwd, { recursive: true, force: true }))
    const child = spawn(process.execPath, ['--conditions=sessionkit-source', '--import', import.meta.resolve('tsx'), server], {
      cwd,
      env: { PATH: process.env.PATH ?? '', PORT: '0', SECRET_KEY: SECRET, EXAMPLE_FRAMEWORK: 'rails' },
      stdio: 'pipe',
    })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    const [code] = (await once(child, 'exit')) as [number | null]
    assert.equal(code, 1)
    assert.match(stderr, /EXAMPLE_FRAMEWORK must be one of express, fastify, koa, hono, node, fetch, got "rails"/)
  })

  it('does not warn when SECRET_KEY is set', async (t) => {
    const { url, output } = await spawnServer(t, { SECRET_KEY: SECRET })
    assert.equal((await fetch(url + '/login')).status, 200)
    assert.doesNotMatch(output().stderr, /SECRET_KEY/)
  })
})
