/**
 * The example app (examples/login) in a real browser: Debian's Chromium, headless, driven by
 * playwright-core, on 127.0.0.1 only. Log in, see the dashboard, check the session cookie as
 * the browser holds it (HttpOnly, SameSite=Lax, out of reach of `document.cookie`), log out,
 * and press Back: no private page comes back from a cache.
 *
 * A screenshot of every page is saved under test-artifacts/browser/ (gitignored).
 * Absent Chromium: skipped with a notice, except under CI, where it fails.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { createApp } from '../../examples/login/app.ts'
import { chromiumMissing, launchChromium } from '../helpers/browser.ts'

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/browser/', import.meta.url))
const skip = chromiumMissing()

describe('the example app in Chromium', { skip, timeout: 60_000 }, () => {
  it('logs in, holds an HttpOnly SameSite=Lax cookie that scripts cannot read, logs out, and Back shows no private page', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sessionkit-browser-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const logs: string[] = []
    const { app, close } = await createApp({
      settings: { secretKey: 'browser-test-secret-0123456789abcdefghijklmnop', databaseUrl: `sqlite:${path.join(dir, 'db.sqlite3')}` },
      logger: { warn: (m) => void logs.push(m), error: (m) => void logs.push(m) },
    })
    const server = createServer(app).listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.after(async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await close()
    })
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    mkdirSync(ARTIFACTS, { recursive: true })

    const context = await launchChromium(t)
    const page = context.pages()[0] ?? (await context.newPage())
    const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true })
    const sessionCookie = async () => (await context.cookies(base)).find((c) => c.name === 'sessionid')

    // The login form.
    await page.goto(`${base}/`)
    assert.equal(new URL(page.url()).pathname, '/login')
    await shot('1-login')
    assert.equal(await sessionCookie(), undefined, 'no session before login')

    // Log in: the dashboard greets the user.
    await page.fill('input[name="username"]', 'admin')
    await page.fill('input[name="password"]', 'password123')
    await Promise.all([page.waitForURL(`${base}/dashboard`), page.click('button[type="submit"]')])
    assert.match(await page.textContent('h1') ?? '', /Welcome, admin/)
    await shot('2-dashboard')

    // The cookie as the browser holds it.
    const cookie = await sessionCookie()
    assert.ok(cookie, 'the browser holds the session cookie')
    assert.match(cookie.value, /^[a-z0-9]{32}$/)
    assert.equal(cookie.httpOnly, true)
    assert.equal(cookie.sameSite, 'Lax')
    assert.equal(cookie.path, '/')
    assert.equal(cookie.domain, '127.0.0.1', 'host-only')
    assert.ok(cookie.expires > Date.now() / 1000 + 13 * 86400, 'a two-week cookie')
    const visible = String(await page.evaluate('document.cookie'))
    assert.ok(!visible.includes('sessionid'), `document.cookie shows the session cookie: ${visible}`)
    assert.ok(!visible.includes(cookie.value))
    assert.match(visible, /csrftoken=/, 'document.cookie works (the CSRF cookie is readable by design)')

    // Log out.
    await Promise.all([page.waitForURL(`${base}/login`), page.click('a[href="/logout"]')])
    await shot('3-logged-out')
    assert.equal(await sessionCookie(), undefined, 'logout deleted the cookie in the browser')

    // Back: the dashboard is not shown from a cache; the server sends the visitor to /login.
    await page.goBack({ waitUntil: 'load' })
    await shot('4-back-after-logout')
    const body = (await page.textContent('body')) ?? ''
    assert.ok(!body.includes('Welcome'), `Back showed a private page: ${body.slice(0, 200)}`)
    assert.equal(new URL(page.url()).pathname, '/login')
    assert.equal(await sessionCookie(), undefined)
    assert.deepEqual(logs.filter((l) => /error/i.test(l)), [])
  })
})
