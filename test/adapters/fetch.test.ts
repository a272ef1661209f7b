/**
 * The fetch adapter beyond the adapter contract: its name, the server's extra arguments, and a
 * `Response` from `fetch()` passed through.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { withSession, withSessions } from 'sessionkit/fetch'
import { adapterSettings as settings, fetchListener } from '../helpers/adapters.ts'
import { CookieJar, listen } from '../helpers/http.ts'

describe('fetch adapter', () => {
  it('is withSessions, as the node:http adapter\'s; the old name withSession stays as a deprecated alias', () => {
    assert.equal(withSession, withSessions)
  })

  it('passes the server\'s extra arguments after the session, and types the data', async () => {
    type Env = { region: string }
    const handler = withSessions<{ region: string }, [Env]>((_request, session, env) => {
      session.set('region', env.region)
      if (env.region === '') {
        // @ts-expect-error a number is not a region
        session.set('region', 1)
      }
      return new Response('ok')
    }, settings())
    const res = await handler(new Request('http://127.0.0.1/'), { region: 'eu' })
    const [cookie] = res.headers.getSetCookie()
    assert.ok(cookie)
    const again = withSessions((_request, session) => new Response(String(session.get('region'))), handler.sessions)
    const read = await again(new Request('http://127.0.0.1/', { headers: { cookie: cookie.split(';')[0]! } }))
    assert.equal(await read.text(), 'eu')
  })

  it('a Response from fetch() (immutable headers) passed through gets the cookie, its body streamed', async (t: TestContext) => {
    const upstream = await listen((_req, res) => res.end('from upstream'), t)
    const handler = withSessions(async (_request, session) => {
      session.set('n', 1)
      return fetch(upstream.url)
    }, settings())
    const server = await listen(fetchListener(handler), t)
    const jar = new CookieJar()
    const reply = await jar.fetch(server.url)
    assert.equal(reply.body, 'from upstream')
    assert.equal(reply.setCookies.length, 1)
  })
})
