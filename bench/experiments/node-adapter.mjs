/**
 * What the node:http adapter's per-request cost is made of, and what the proposed changes to
 * `attachSession` (src/adapters/node.ts) save.
 *
 *   node --allow-natives-syntax experiments/node-adapter.mjs   (plain node, no tsx; needs bench/.build,
 *                                             which every `npm run bench` makes)
 *
 * Plain JavaScript on purpose: tsx compiles with esbuild's keepNames, which wraps every
 * closure created at run time in `__name()` — exactly the per-request closures measured here.
 * sessionkit is the tsc build in bench/.build (what the package publishes).
 *
 * The variants are copies of today's `attachSession` hook logic (the error path left out: it
 * does not run here) with one change each. Fake request/response objects, no sockets: only
 * what the adapter adds is measured, on a request whose handler never touches a lazy session
 * (workload d) and on one that reads and writes it (workload a).
 *
 * - today: own-property hooks (three closures and a `headersSent` accessor) installed per
 *   request and `delete`d again in `flush`; every response waits for `sessions.end()` through
 *   two promise reactions, even when there is nothing to save.
 * - no-delete: the hooks stay (they already forward once `phase === 'done'`); `delete` puts a
 *   `ServerResponse` into dictionary mode, slower for every later property access.
 * - sync-noop: when the session was neither accessed nor modified (no `saveEveryRequest`, no
 *   emptied session whose cookie must go), the decision is known at once: write through
 *   synchronously, no promise, no buffering.
 * - reorder: the same hooks, installed in another order — the three methods first, the
 *   `headersSent` accessor last — and deleted in the reverse order (accessor first). Today the
 *   accessor comes first: adding a data property after an own accessor sends V8 to dictionary
 *   mode ("slow properties") for the whole `ServerResponse` (checked with
 *   `%HasFastProperties`, printed below), so every property access that Node's http code and
 *   the framework make afterwards is a hash lookup.
 */
import { existsSync } from 'node:fs'
import { IncomingMessage, ServerResponse } from 'node:http'
import { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'

const BUILD = new URL('../.build/', import.meta.url)
if (!existsSync(new URL('index.js', BUILD))) {
  console.error('bench/.build is missing: run `npm run bench -- --quick` (or any bench run) once first')
  process.exit(1)
}
const { Sessions, patchVary } = await import(new URL('middleware.js', BUILD).href)
const { attachSession } = await import(new URL('adapters/node.js', BUILD).href)
const { memoryCache } = await import(new URL('drivers/memory.js', BUILD).href)
const { Signer } = await import(new URL('signing.js', BUILD).href)
const { JSONSerializer } = await import(new URL('serializers.js', BUILD).href)
const { deflateSync } = await import('node:zlib')
const SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz'

function applyDecision(res, d) {
  if (d.vary) res.setHeader('Vary', patchVary(res.getHeader('Vary')))
  if (d.cacheControl) res.setHeader('Cache-Control', d.cacheControl)
  if (d.setCookie) res.setHeader('Set-Cookie', d.setCookie)
}

/** Today's hook logic (minus the error path), with the proposed changes as switches. */
function makeAttach({ noDelete, syncNoop, reorder = false }) {
  return async function attach(sessions, req, res) {
    const state = await sessions.begin(req.headers.cookie)
    const writeHead = res.writeHead
    const write = res.write
    const end = res.end
    let phase = 'open'
    let head = null
    let writes = []
    let ending = null
    const flush = () => {
      phase = 'done'
      if (!noDelete && reorder) {
        delete res.headersSent
        delete res.end
        delete res.write
        delete res.writeHead
      } else if (!noDelete) {
        delete res.headersSent
        delete res.writeHead
        delete res.write
        delete res.end
      }
      if (head) writeHead.apply(res, head)
      for (const args of writes) write.apply(res, args)
      writes = []
      if (ending) end.apply(res, ending)
    }
    const commit = () => {
      if (phase !== 'open') return
      phase = 'saving'
      const s = state.session
      if (syncNoop && !s.accessed && !s.modified && !sessions.settings.saveEveryRequest && !(state.hadCookie && s.isEmpty())) return flush()
      const status = head ? Number(head[0]) : res.statusCode
      sessions.end(state, status).then((decision) => applyDecision(res, decision)).then(flush)
    }
    const defineHeadersSent = () =>
      Object.defineProperty(res, 'headersSent', {
        configurable: true,
        get: noDelete ? () => (phase === 'done' ? res._header !== null : true) || res.writableEnded : () => phase !== 'open' || res.writableEnded,
      })
    if (!reorder) defineHeadersSent()
    res.writeHead = function writeHeadAfterSave(...args) {
      if (phase === 'done') return writeHead.apply(this, args)
      head = args
      commit()
      return this
    }
    res.write = function writeAfterSave(...args) {
      if (phase === 'done') return write.apply(this, args)
      if (ending) return false
      writes.push(args)
      commit()
      return true
    }
    res.end = function endAfterSave(...args) {
      if (phase === 'done') return end.apply(this, args)
      if (ending) return this
      ending = args
      commit()
      return this
    }
    if (reorder) defineHeadersSent()
    if (probe) fast.push(%HasFastProperties(res))
    return state
  }
}

let probe = false
const fast = []

async function core(lazy) {
  const c = new Sessions({ secretKey: SECRET, engine: 'cache', lazy, caches: { default: memoryCache({ maxEntries: 100_000 }) } })
  await c.ready()
  return c
}

function fakeRequest(cookie) {
  const req = new IncomingMessage(new Socket())
  req.method = 'GET'
  req.url = '/'
  req.headers = { cookie }
  return [req, new ServerResponse(req)]
}

async function cycles(attach, sessions, cookie, touch, n) {
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const [req, res] = fakeRequest(cookie)
    if (attach) {
      const { session } = await attach(sessions, req, res)
      if (touch) session.set('n', (session.get('n') ?? 0) + 1)
    }
    res.setHeader('Content-Type', 'text/plain')
    res.end('ok')
    // The adapter sends the response once the save is done (a few microtasks with the
    // in-process cache). Wait for it, as a client waits for its answer: without this, the
    // next request would load the session before this one saved it, and every save would
    // meet a concurrent one.
    for (let spins = 0; !res.writableEnded; spins++) {
      if (spins > 1000) throw new Error('the response was never sent')
      await null
    }
  }
  return (n / (performance.now() - t0)) * 1000
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]

async function compare(label, sessions, cookie, touch) {
  const variants = [
    ['without sessionkit', null],
    ['today (src attachSession)', attachSession],
    ['copy of today (sanity check)', makeAttach({ noDelete: false, syncNoop: false })],
    ['no-delete', makeAttach({ noDelete: true, syncNoop: false })],
    ['sync-noop', makeAttach({ noDelete: false, syncNoop: true })],
    ['no-delete + sync-noop', makeAttach({ noDelete: true, syncNoop: true })],
    ['reorder', makeAttach({ noDelete: false, syncNoop: false, reorder: true })],
    ['reorder + sync-noop', makeAttach({ noDelete: false, syncNoop: true, reorder: true })],
  ]
  const rates = variants.map(() => [])
  for (const [, a] of variants) await cycles(a, sessions, cookie, touch, 3000)
  for (let r = 0; r < 11; r++) for (const [i, [, a]] of variants.entries()) rates[i].push(await cycles(a, sessions, cookie, touch, 3000))
  console.log(`\n${label}`)
  const bare = 1e9 / median(rates[0])
  const today = 1e9 / median(rates[1]) - bare
  for (const [i, [name]] of variants.entries()) {
    const ns = 1e9 / median(rates[i])
    const added = ns - bare
    console.log(`  ${name.padEnd(30)} ${ns.toFixed(0).padStart(7)} ns/request   adapter adds ${i === 0 ? '     –' : added.toFixed(0).padStart(6)} ns${i > 1 ? `  (${((added / today) * 100).toFixed(0)} % of today's)` : ''}`)
  }
}

// Which variants leave the response with fast properties once the hooks are installed.
{
  const c = await core(true)
  for (const [name, opts] of [['today', { noDelete: false, syncNoop: false }], ['reorder', { noDelete: false, syncNoop: false, reorder: true }]]) {
    probe = true
    fast.length = 0
    const [req, res] = fakeRequest('sessionid=abcdefghijklmnopqrstuvwxyz012345')
    await makeAttach(opts)(c, req, res)
    res.end('ok')
    await new Promise((r) => setImmediate(r))
    probe = false
    console.log(`${name}: ServerResponse has fast properties after attach: ${fast[0]}, after the response: ${%HasFastProperties(res)}`)
  }
}

const KEY = 'abcdefghijklmnopqrstuvwxyz012345'
await compare('(d) lazy session, handler never touches it', await core(true), `sessionid=${KEY}`, false)
const eager = await core(false)
const seeded = eager.session()
seeded.set('n', 0)
await seeded.save()
await compare('(a) eager session, read + increment + save (in-process cache)', eager, `sessionid=${seeded.sessionKey}`, true)

// Fix 1 of bench/analysis.md (src/signing.ts): no zlib for payloads under 64 bytes, patched in
// here on the compiled class, then (a) measured again, interleaved with today's code.
const original = Signer.prototype.signObject
function signObjectProposed(obj, options = {}) {
  const data = (options.serializer ?? JSONSerializer).dumps(obj)
  if (options.compress === true && data.length >= 64) {
    const compressed = deflateSync(data)
    if (compressed.length < data.length - 1) return this.sign('.' + compressed.toString('base64url'))
  }
  return this.sign(data.toString('base64url'))
}
{
  const cookie = `sessionid=${seeded.sessionKey}`
  const rates = { today: [], fix1: [] }
  for (let r = 0; r < 11; r++) {
    Signer.prototype.signObject = original
    rates.today.push(await cycles(attachSession, eager, cookie, true, 3000))
    Signer.prototype.signObject = signObjectProposed
    rates.fix1.push(await cycles(attachSession, eager, cookie, true, 3000))
  }
  Signer.prototype.signObject = original
  const t = 1e9 / median(rates.today)
  const f = 1e9 / median(rates.fix1)
  console.log(`\n(a) with fix 1 (no deflate under 64 bytes), src attachSession: today ${t.toFixed(0)} ns/request, with the fix ${f.toFixed(0)} ns/request (${((1 - f / t) * 100).toFixed(0)} % less)`)
}
