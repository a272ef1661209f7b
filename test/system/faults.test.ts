/**
 * Fault injection (checklist §3.2), bounded in time, on loopback only: what the session layer
 * does when the disk is full, a writer is killed, the store is absent, killed, stalled or cut.
 * The rule everywhere: a failure is a 503 (or 400), never a success the store did not record,
 * never someone else's session, never a hang past the store's timeout.
 *
 * - file engine: a real full disk (a 256 KiB tmpfs; an fs shim where mounting is not allowed),
 *   and a writer SIGKILLed 200 times;
 * - db on SQLite: the database full (`max_page_count`);
 * - cache on Redis: a redis-server of this file's own on a free port (never the shared 6379),
 *   absent at start, SIGKILLed under load and restarted, stalled and swallowed by a TCP proxy;
 * - db on PostgreSQL: the shared server behind a TCP proxy cut for 5 s under load (the server
 *   itself is never stopped), and black-holed.
 *
 * Each figure is printed as a test diagnostic; SECURITY.md records them.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { after, describe, it, type TestContext } from 'node:test'
import express from 'express'
import { createCodec, createSessions, newSessionKey, redisCacheFromUrl, resolveSettings, type Settings } from 'sessionkit'
import { sessions as expressSessions } from 'sessionkit/express'
import { capturingLogger, manualClock } from 'sessionkit/testing'
import { freePort, listen, request } from '../helpers/http.ts'
import { ping, underCI } from '../helpers/redis.ts'

const SECRET = 'faults-secret-0123456789abcdefghijklmnopqrstuvwxyz'
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const scratch = mkdtempSync(path.join(tmpdir(), 'sessionkit-faults-'))
after(() => rmSync(scratch, { recursive: true, force: true }))
let dirs = 0
const freshDir = () => mkdtempSync(path.join(scratch, `d${dirs++}-`))

/** The suites' capturing logger: keeps every warning and error (with its cause) for assertions. */
const recordingLogger = capturingLogger

/** An Express app with the routes the load uses: /health (no session), /login/:token, /me, /add. */
async function app(t: TestContext, settings: Partial<Settings>) {
  const logger = recordingLogger()
  const mw = expressSessions({ secretKey: SECRET, logger, ...settings })
  t.after(() => mw.close())
  const a = express()
  a.get('/health', (_req, res) => void res.send('ok'))
  a.use(mw)
  a.get('/login/:token', (req, res) => {
    req.session.set('token', req.params.token)
    res.send('in')
  })
  a.get('/me', (req, res) => void res.send(String(req.session.get('token') ?? 'anonymous')))
  a.get('/add', (req, res) => {
    req.session.set('cart', 'x'.repeat(64 * 1024))
    res.send('added')
  })
  // The session layer's errors carry their status (503, 400); answer it without Express's console output.
  a.use(((error, _req, res, _next) => {
    const status = (error as { status?: number }).status ?? 500
    res.status(status).type('text').send(status === 503 ? 'Service Unavailable: session store\n' : 'error\n')
  }) as express.ErrorRequestHandler)
  const server = await listen(a, t)
  return { url: server.url, logger, mw }
}

/** Memory still held after a full garbage collection (heap, external and array buffers), in bytes. */
function retained(): number {
  v8.setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}

const cookieOf = (reply: { setCookies: string[] }) => reply.setCookies.find((c) => c.startsWith('sessionid='))?.split(';')[0]

/** `fetch` with its latency, never throwing: a network error is status 0. */
async function timed(url: string, init: RequestInit = {}) {
  const started = performance.now()
  try {
    const reply = await request(url, { ...init, signal: AbortSignal.timeout(10_000) })
    return { ...reply, ms: performance.now() - started }
  } catch {
    return { status: 0, body: '', setCookies: [] as string[], headers: new Headers(), ms: performance.now() - started }
  }
}

// ------------------------------------------------------------------------------ a TCP proxy

/**
 * A TCP proxy on 127.0.0.1 in front of `target`, whose link can fail on command:
 * `pass`; `stall` (bytes held both ways, delivered in order on `pass`: a partition that TCP
 * rides out, or a server that stops answering for a while); `swallow` (bytes dropped, the
 * connections kept open); `cut` (every connection closed, new ones closed at once).
 */
class TcpProxy {
  mode: 'pass' | 'stall' | 'swallow' | 'cut' = 'pass'
  readonly #server: net.Server
  readonly #links = new Set<net.Socket>()
  #held: (() => void)[] = []

  constructor(readonly target: number) {
    this.#server = net.createServer((client) => {
      if (this.mode === 'cut') return void client.destroy()
      const upstream = net.connect(target, '127.0.0.1')
      for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
        this.#links.add(from)
        from.on('data', (chunk: Buffer) => this.#forward(to, chunk))
        from.on('error', () => to.destroy())
        from.on('close', () => {
          this.#links.delete(from)
          to.destroy()
        })
      }
    })
  }

  #forward(to: net.Socket, chunk: Buffer): void {
    if (this.mode === 'swallow') return
    if (this.mode === 'stall') return void this.#held.push(() => to.destroyed || to.write(chunk))
    to.write(chunk)
  }

  async listen(): Promise<number> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    return (this.#server.address() as net.AddressInfo).port
  }

  set(mode: TcpProxy['mode']): void {
    this.mode = mode
    if (mode === 'cut') for (const s of this.#links) s.destroy()
    if (mode === 'pass') {
      const held = this.#held
      this.#held = []
      for (const deliver of held) deliver()
    }
  }

  async close(): Promise<void> {
    for (const s of this.#links) s.destroy()
    this.#server.close()
  }
}

// ------------------------------------------------------------------------------ file engine

/**
 * A directory whose disk can be filled: a real 256 KiB tmpfs filled to the last byte where this
 * process may mount one (root with CAP_SYS_ADMIN), else an fs shim that makes every file
 * opened for writing in it fail with ENOSPC (a tmpfs out of space answers so too).
 */
async function fullDisk(t: TestContext): Promise<{ dir: string; how: string; fill(): Promise<void>; free(): Promise<void> }> {
  const dir = freshDir()
  const mounted = process.platform === 'linux' && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', dir]).status === 0
  if (mounted) {
    t.after(() => void spawnSync('umount', ['-l', dir]))
    const filler = path.join(dir, 'filler')
    return {
      dir,
      how: `real ENOSPC: a 256 KiB tmpfs at ${dir}, filled to the last byte`,
      async fill() {
        const handle = await open(filler, 'w')
        const block = Buffer.alloc(4096, 1)
        try {
          for (;;) await handle.write(block)
        } catch (error) {
          assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC')
        } finally {
          await handle.close()
        }
      },
      async free() {
        rmSync(filler)
      },
    }
  }
  const fsp = createRequire(import.meta.url)('node:fs/promises') as { open: (...args: unknown[]) => Promise<unknown> }
  const real = fsp.open
  let full = false
  fsp.open = (file: unknown, flags: unknown, ...rest: unknown[]) => {
    if (full && String(file).startsWith(dir + path.sep) && /[wa+]/.test(String(flags ?? 'r'))) {
      return Promise.reject(Object.assign(new Error(`ENOSPC: no space left on device, open '${String(file)}'`), { code: 'ENOSPC', errno: -28, syscall: 'open', path: String(file) }))
    }
    return real(file, flags, ...rest)
  }
  syncBuiltinESMExports()
  t.after(() => {
    fsp.open = real
    syncBuiltinESMExports()
  })
  return {
    dir,
    how: 'ENOSPC from an fs shim (a tmpfs cannot be mounted here)',
    fill: async () => void (full = true),
    free: async () => void (full = false),
  }
}

// Probed before any suite is registered: a top-level await between suites lets the runner run
// the file's `after` hooks (removing `scratch`) while later suites are still to come.
const PG_URL = process.env.DATABASE_URL_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const pgSkip = await (async () => {
  const probe = createSessions({ secretKey: SECRET, databaseUrl: PG_URL, logger: recordingLogger() })
  try {
    await probe.ready()
    return false
  } catch (error) {
    const reason = `db on PostgreSQL: ${(error as Error).message.split('\n')[0]}`
    if ((error as { code?: string }).code !== 'ERR_IMPROPERLY_CONFIGURED' && underCI()) throw new Error(`${reason}; CI is set, so these tests must run`)
    console.warn(`# skipping the PostgreSQL fault tests: ${reason}`)
    return reason
  } finally {
    await probe.close().catch(() => undefined)
  }
})()

describe('faults: file engine', () => {
  it('R9/R0b: on a full disk (ENOSPC) a save answers 503 and says so; the previous session file is byte-identical, no temporary file is left, and saves work again once there is room', async (t) => {
    const disk = await fullDisk(t)
    t.diagnostic(disk.how)
    const dir = disk.dir
    const { url, logger } = await app(t, { engine: 'file', filePath: dir })
    const cookie = cookieOf(await request(`${url}/login/alice`))!
    const file = path.join(dir, cookie.replace('=', ''))
    const before = readFileSync(file)
    await disk.fill()
    const reply = await request(`${url}/add`, { headers: { Cookie: cookie } })
    assert.equal(reply.status, 503)
    assert.equal(reply.body, 'Service Unavailable: session store\n')
    assert.deepEqual(reply.setCookies, [], 'no cookie: the client is not told the save worked')
    assert.ok(logger.errors.some((e) => e.includes('ENOSPC')), `logged: ${logger.errors.join(' | ')}`)
    assert.deepEqual(readFileSync(file), before, 'the previous session file is byte-identical')
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('_out_')), [], 'no temporary file left')
    const login = await request(`${url}/login/bob`)
    assert.equal(login.status, 503, 'a new session cannot be created either')
    assert.deepEqual(login.setCookies, [])
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('sessionid')), [cookie.replace('=', '')], 'no empty placeholder left by the failed create')
    assert.equal((await request(`${url}/me`, { headers: { Cookie: cookie } })).body, 'alice', 'the stored session still reads')
    await disk.free()
    const again = await request(`${url}/add`, { headers: { Cookie: cookie } })
    assert.equal(again.status, 200)
    assert.ok(readFileSync(file).length > before.length)
  })

  it('R11: a writer SIGKILLed at random points 200 times never leaves a torn file: every session file verifies, no acknowledged save is lost, and clearExpired removes the stale temporary files', { timeout: 120_000 }, async (t) => {
    const runtime = await transpiledSources(t)
    const dir = freshDir()
    const lanes = 4
    const keys = Array.from({ length: lanes }, () => newSessionKey())
    const settings = resolveSettings({ secretKey: SECRET, engine: 'file', filePath: dir, logger: recordingLogger() })
    const events: string[] = []
    const codec = createCodec({ ...settings, onSuspicious: (e) => void events.push(e.kind) })
    const acked = new Map(keys.map((k) => [k, -1]))
    const decode = (file: string) => {
      const text = readFileSync(file, 'latin1')
      return text === '' ? null : codec.decode(text, 'file')
    }
    let placeholders = 0
    const iterations = 200
    let next = 0
    const started = performance.now()
    await Promise.all(
      keys.map(async (key) => {
        while (next < iterations) {
          next++
          const child = spawn(process.execPath, [path.join(runtime, 'writer.mjs'), dir, key, SECRET], { stdio: ['ignore', 'pipe', 'inherit'] })
          let out = ''
          const ready = new Promise<void>((resolve) => {
            child.stdout!.on('data', (d: Buffer) => {
              out += d.toString()
              if (out.includes('ready\n')) resolve()
            })
          })
          await Promise.race([ready, once(child, 'exit')])
          await sleep(Math.random() * 40)
          child.kill('SIGKILL')
          await once(child, 'exit').catch(() => undefined)
          const saved = out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number)
          if (saved.length) acked.set(key, Math.max(acked.get(key)!, ...saved))
          // The lane's own session: it verifies, and holds at least the last acknowledged save.
          const data = decode(path.join(dir, `sessionid${key}`))
          assert.ok(data, 'the session file exists and is not empty')
          assert.ok((data.get('i') as number) >= acked.get(key)!, `acknowledged save ${acked.get(key)} lost (file has ${String(data.get('i'))})`)
        }
      }),
    )
    const seconds = (performance.now() - started) / 1000
    // Every session file in the directory verifies (or is Django's empty O_EXCL placeholder).
    const names = readdirSync(dir)
    const temps = names.filter((n) => n.includes('_out_'))
    for (const name of names.filter((n) => !n.includes('_out_'))) {
      const data = decode(path.join(dir, name))
      if (data === null) placeholders++
    }
    assert.deepEqual(events, [], 'a torn or corrupt file was read')
    t.diagnostic(`${iterations} kills in ${seconds.toFixed(1)} s; ${names.length - temps.length} session files all verify (${placeholders} empty placeholders); ${temps.length} temporary files left by kills; saves acknowledged per lane: ${[...acked.values()].join(', ')}`)
    // clearExpired, an hour later, removes what the kills left between write and rename.
    const later = manualClock(Date.now() + 2 * 3600_000)
    const sessions = createSessions({ secretKey: SECRET, engine: 'file', filePath: dir, now: later, cookieAge: 30 * 86400, logger: recordingLogger() })
    t.after(() => sessions.close())
    await sessions.clearExpired()
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('_out_')), [], 'stale temporary files removed')
    for (const key of keys) assert.ok(decode(path.join(dir, `sessionid${key}`)), 'live sessions kept')
  })
})

/**
 * The library's sources as plain JavaScript (TypeScript's `transpileModule`, no type check),
 * plus the writer the kill test spawns: a child starts in ~50 ms instead of ~250 ms with tsx.
 * Kept under node_modules/.cache so that bare imports resolve; removed after the test.
 */
async function transpiledSources(t: TestContext): Promise<string> {
  const { default: ts } = await import('typescript')
  const out = path.join(ROOT, 'node_modules', '.cache', `sessionkit-faults-${process.pid}`)
  t.after(() => rmSync(out, { recursive: true, force: true }))
  const src = path.join(ROOT, 'src')
  for (const file of readdirSync(src, { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.ts')) continue
    const js = ts.transpileModule(readFileSync(path.join(src, file), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText
    mkdirSync(path.dirname(path.join(out, 'src', file)), { recursive: true })
    writeFileSync(path.join(out, 'src', file.replace(/\.ts$/, '.js')), js)
  }
  writeFileSync(path.join(out, 'package.json'), '{"type":"module"}')
  writeFileSync(
    path.join(out, 'writer.mjs'),
    `
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileEngine } from './src/engines/file.js'
import { createCodec } from './src/codec.js'
import { JSONSerializer } from './src/serializers.js'
const [dir, key, secret] = process.argv.slice(2)
const settings = { secretKey: secret, secretKeyFallbacks: [], now: Date.now, serializer: JSONSerializer, logger: { warn() {}, error() {} },
  onSuspicious: null, cookieName: 'sessionid', cookieAge: 30 * 86400, filePath: dir }
const codec = createCodec(settings)
const engine = fileEngine({ settings, codec })
const options = (mustCreate) => ({ mustCreate, expireDate: new Date(Date.now() + 86400e3), expiryAge: 86400 })
let i = 0
try { i = Number(codec.decode(readFileSync(dir + '/sessionid' + key, 'latin1'), 'file').get('i') ?? 0) + 1 } catch {}
if (i === 0) await engine.save(key, new Map([['i', 0]]), options(true)).catch(() => {})
process.stdout.write('ready\\n')
for (;; i++) {
  const blob = randomBytes(1024 + Math.floor(Math.random() * 256 * 1024)).toString('base64')
  await engine.save(key, new Map([['i', i], ['blob', blob]]), options(false))
  process.stdout.write(i + '\\n')
  if (i % 4 === 0) await engine.save(randomBytes(16).toString('hex'), new Map([['i', i], ['blob', blob]]), options(true))
}
`,
  )
  return out
}

// ------------------------------------------------------------------------------ db on SQLite

describe('faults: db on SQLite', () => {
  it('R7: a full database (SQLITE_FULL) answers 503 and sets no cookie; stored sessions still load; saves resume once there is room', async (t) => {
    const { url, mw, logger } = await app(t, { databaseUrl: `sqlite:${path.join(freshDir(), 'db.sqlite3')}` })
    const cookie = cookieOf(await request(`${url}/login/alice`))!
    const db = (mw.sessions.engine as unknown as { driver: { database: { pragma(s: string, o?: object): unknown } } }).driver.database
    const pages = db.pragma('page_count', { simple: true }) as number
    db.pragma(`max_page_count = ${pages}`)
    // Incompressible tokens: each new row needs pages the database may not grow.
    const replies = await Promise.all(Array.from({ length: 20 }, () => request(`${url}/login/${randomBytes(3000).toString('hex')}`)))
    assert.deepEqual([...new Set(replies.map((r) => r.status))], [503])
    assert.equal(replies.flatMap((r) => r.setCookies).length, 0)
    assert.ok(logger.errors.some((e) => /full/i.test(e)), logger.errors.join(' | '))
    assert.equal((await request(`${url}/me`, { headers: { Cookie: cookie } })).body, 'alice')
    db.pragma('max_page_count = 1073741823')
    const login = await request(`${url}/login/bob`)
    assert.equal(login.status, 200)
    assert.equal((await request(`${url}/me`, { headers: { Cookie: cookieOf(login)! } })).body, 'bob')
  })
})

// ------------------------------------------------------------------------------ cache on Redis

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0
const noRedisServer = hasRedisServer ? false : 'redis-server is not installed'
if (!hasRedisServer && underCI()) throw new Error('redis-server is not installed; CI is set, so the Redis fault tests must run')
if (noRedisServer) console.warn(`# skipping the Redis fault tests: ${noRedisServer}`)

/** A redis-server of this file's own on `port` (never the shared 6379), killed after `t`. */
async function startRedis(t: TestContext, port: number): Promise<ChildProcess> {
  assert.notEqual(port, 6379)
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], { stdio: 'ignore' })
  t.after(() => void child.kill('SIGKILL'))
  const deadline = Date.now() + 5000
  while ((await ping('127.0.0.1', port, 200)) !== true) {
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`)
    await sleep(20)
  }
  return child
}

const TIMEOUT_MS = 500

/** Sessions on Redis at `port` through ioredis with a 500 ms store timeout. */
async function redisApp(t: TestContext, port: number) {
  const logger = recordingLogger()
  const cache = redisCacheFromUrl(`redis://127.0.0.1:${port}`, { timeoutMs: TIMEOUT_MS, logger })
  t.after(() => cache.close())
  return { ...(await app(t, { engine: 'cache', caches: { default: cache }, logger })), cache }
}

/**
 * `clients` visitors, each logged in under its own token, reading /me in a loop for `ms`:
 * every reply checked — their own token, `anonymous` (a lost session, allowed only where
 * `anonymousOk`), or a 503/400 — never another visitor's token.
 */
async function load(url: string, clients: number, ms: number, events: (elapsed: number) => void, anonymousOk: boolean) {
  const started = performance.now()
  const stats = { requests: 0, ok: 0, unavailable: 0, anonymous: 0, other: 0, leaks: 0, maxMs: 0, lastFailureAt: 0, firstFailureAt: Infinity }
  const timer = setInterval(() => events(performance.now() - started), 20)
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const token = `t${i}-${Math.random().toString(36).slice(2)}`
      let cookie: string | undefined
      while (performance.now() - started < ms) {
        const reply = cookie === undefined ? await timed(`${url}/login/${token}`) : await timed(`${url}/me`, { headers: { Cookie: cookie } })
        const at = performance.now() - started
        stats.requests++
        stats.maxMs = Math.max(stats.maxMs, reply.ms)
        if (reply.status === 200) {
          if (cookie === undefined) {
            cookie = cookieOf(reply)
            stats.ok++
          } else if (reply.body === token) stats.ok++
          else if (reply.body === 'anonymous') {
            stats.anonymous++
            cookie = undefined
            if (!anonymousOk) stats.lastFailureAt = at
          } else stats.leaks++
        } else {
          if (reply.status === 503) stats.unavailable++
          else stats.other++
          stats.lastFailureAt = at
          stats.firstFailureAt = Math.min(stats.firstFailureAt, at)
        }
      }
    }),
  )
  clearInterval(timer)
  return stats
}

describe('faults: cache on Redis', { skip: noRedisServer, timeout: 60_000 }, () => {
  it('R1: Redis absent at start: session requests answer 503 within the store timeout, other routes serve; sessions work within seconds of Redis starting', async (t) => {
    const port = await freePort()
    const { url } = await redisApp(t, port)
    for (let i = 0; i < 5; i++) {
      const reply = await timed(`${url}/login/alice`)
      assert.equal(reply.status, 503)
      assert.ok(reply.ms < TIMEOUT_MS * 4 + 1000, `answered after ${reply.ms.toFixed(0)} ms`)
      const health = await timed(`${url}/health`)
      assert.equal(health.status, 200)
      assert.ok(health.ms < 100, `health took ${health.ms.toFixed(0)} ms`)
    }
    const maxDown = Math.max(...(await Promise.all(Array.from({ length: 20 }, () => timed(`${url}/login/x`)))).map((r) => r.ms))
    const startedAt = performance.now()
    await startRedis(t, port)
    let recoveredMs = -1
    while (performance.now() - startedAt < 10_000) {
      const reply = await timed(`${url}/login/alice`)
      if (reply.status === 200) {
        recoveredMs = performance.now() - startedAt
        assert.equal((await request(`${url}/me`, { headers: { Cookie: cookieOf(reply)! } })).body, 'alice')
        break
      }
      await sleep(50)
    }
    t.diagnostic(`while absent: 503 in ≤ ${maxDown.toFixed(0)} ms (20 concurrent); recovered ${recoveredMs.toFixed(0)} ms after redis-server started`)
    assert.ok(recoveredMs >= 0 && recoveredMs < 5000, `recovered after ${recoveredMs.toFixed(0)} ms`)
  })

  it('R2: Redis SIGKILLed under load and restarted: nothing hangs past the timeout, failures only during the outage, never another visitor\'s session, no memory held by queued commands', async (t) => {
    const port = await freePort()
    let redis = await startRedis(t, port)
    const { url } = await redisApp(t, port)
    let rssWarm = 0
    let killedAt = 0
    let restartedAt = 0
    let restarting: Promise<unknown> | null = null
    const stats = await load(url, 20, 5000, (elapsed) => {
      if (rssWarm === 0 && elapsed > 800) rssWarm = retained() // after warm-up
      if (killedAt === 0 && elapsed > 1000) {
        killedAt = elapsed
        redis.kill('SIGKILL')
      }
      if (restartedAt === 0 && elapsed > 2500) {
        restartedAt = elapsed
        restarting = startRedis(t, port).then((r) => (redis = r))
      }
    }, true)
    await restarting
    await sleep(100) // let the last replies settle
    const grew = (retained() - rssWarm) / 1048576
    t.diagnostic(JSON.stringify({ ...stats, killedAt: Math.round(killedAt), restartedAt: Math.round(restartedAt), retainedGrowthMiB: Number(grew.toFixed(1)) }))
    assert.equal(stats.leaks, 0, 'another visitor\'s session')
    assert.equal(stats.other, 0, 'only 503s')
    assert.ok(stats.unavailable > 0, 'the outage was seen')
    assert.ok(stats.maxMs < TIMEOUT_MS * 4 + 1000, `a request took ${stats.maxMs.toFixed(0)} ms`)
    assert.ok(stats.firstFailureAt >= killedAt - 50, 'no failure before the kill')
    assert.ok(stats.lastFailureAt < restartedAt + 2500, `failures went on ${Math.round(stats.lastFailureAt - restartedAt)} ms after the restart`)
    assert.ok(grew < 20, `memory retained after a full GC grew by ${grew.toFixed(1)} MiB`)
  })

  it('R3: Redis behind a proxy that holds every byte for 2 s (a partition TCP rides out, or a stalled server): requests fail within the timeout, the event loop stays responsive, recovery within seconds, never another visitor\'s session', async (t) => {
    const port = await freePort()
    await startRedis(t, port)
    const proxy = new TcpProxy(port)
    const proxyPort = await proxy.listen()
    t.after(() => proxy.close())
    const { url } = await redisApp(t, proxyPort)
    // The same two measures before the fault, as the baseline: the bounds during the fault are
    // relative to what this machine does right now (a loaded CI box), far below the 2 s stall.
    const baselineDelay = monitorEventLoopDelay({ resolution: 10 })
    const delay = monitorEventLoopDelay({ resolution: 10 })
    baselineDelay.enable()
    let faultAt = 0
    let healedAt = 0
    const before: number[] = []
    const health: number[] = []
    const stats = await load(url, 20, 5000, (elapsed) => {
      if (faultAt === 0 && elapsed > 1000) {
        faultAt = elapsed
        proxy.set('stall')
        baselineDelay.disable()
        delay.enable()
      }
      if (faultAt === 0) void timed(`${url}/health`).then((r) => before.push(r.ms))
      if (faultAt && !healedAt) void timed(`${url}/health`).then((r) => health.push(r.ms))
      if (healedAt === 0 && elapsed > 3000) {
        healedAt = elapsed
        proxy.set('pass')
        delay.disable()
      }
    }, false)
    const p99Of = (ms: number[]): number => [...ms].sort((a, b) => a - b)[Math.floor(ms.length * 0.99)] ?? 0
    const p99 = p99Of(health)
    const baselineP99 = p99Of(before)
    const loopP99 = delay.percentile(99) / 1e6
    const baselineLoopP99 = baselineDelay.percentile(99) / 1e6
    const bound = (baseline: number): number => 100 + 3 * baseline
    t.diagnostic(JSON.stringify({ ...stats, faultAt: Math.round(faultAt), healedAt: Math.round(healedAt), healthRequests: health.length, healthP99Ms: Math.round(p99), healthBaselineP99Ms: Math.round(baselineP99), eventLoopDelayP99Ms: Math.round(loopP99), eventLoopDelayBaselineP99Ms: Math.round(baselineLoopP99) }))
    assert.equal(stats.leaks, 0, `${stats.leaks} replies carried another visitor's session`)
    assert.equal(stats.anonymous, 0, 'a silent logout')
    assert.ok(stats.unavailable > 0, 'the fault was seen')
    assert.ok(stats.maxMs < TIMEOUT_MS * 4 + 1000, `a request took ${stats.maxMs.toFixed(0)} ms`)
    assert.ok(health.length > 0, 'the health route was measured during the fault')
    assert.ok(p99 < bound(baselineP99), `the health route's p99 was ${p99.toFixed(0)} ms during the fault, ${baselineP99.toFixed(0)} ms before it`)
    assert.ok(loopP99 < bound(baselineLoopP99), `event-loop delay p99 ${loopP99.toFixed(0)} ms during the fault, ${baselineLoopP99.toFixed(0)} ms before it`)
    assert.ok(stats.lastFailureAt < healedAt + 1500, `failures went on ${Math.round(stats.lastFailureAt - healedAt)} ms after the link healed`)
  })

  // Found by this test: ioredis keeps a timed-out command in its reply queue, so once request
  // bytes are lost every later reply went to the command before it (session A loaded session C).
  // Fixed by binding every stored value to its key and dropping the connection on a timeout.
  it('R3: Redis behind a proxy that drops bytes (the connection kept open): a later reply is never taken for another session\'s, and the link recovers', async (t) => {
    const port = await freePort()
    await startRedis(t, port)
    const proxy = new TcpProxy(port)
    const proxyPort = await proxy.listen()
    t.after(() => proxy.close())
    const logger = recordingLogger()
    const cache = redisCacheFromUrl(`redis://127.0.0.1:${proxyPort}`, { timeoutMs: 300, logger })
    t.after(() => cache.close())
    await cache.ready!()
    const sessions = createSessions({ secretKey: SECRET, engine: 'cache', caches: { default: cache }, logger })
    const keys: Record<string, string> = {}
    for (const user of ['alice', 'bob', 'carol']) {
      const s = sessions.session()
      s.set('user', user)
      await s.save()
      keys[user] = s.sessionKey!
    }
    proxy.set('swallow')
    for (let i = 0; i < 2; i++) await assert.rejects(Promise.resolve(sessions.start(`sessionid=${keys.alice}`)), { code: 'ERR_STORE_UNAVAILABLE' })
    proxy.set('pass')
    const seen: string[] = []
    for (let round = 0; round < 3; round++) {
      const results = await Promise.allSettled(['alice', 'bob', 'carol', 'alice'].map(async (user) => {
        const state = await sessions.start(`sessionid=${keys[user]}`)
        return [user, String(state.session.get('user') ?? 'anonymous')] as const
      }))
      for (const r of results) if (r.status === 'fulfilled') seen.push(`${r.value[0]}→${r.value[1]}`)
    }
    t.diagnostic(`after the loss: ${seen.join(', ') || 'every request failed'}`)
    assert.deepEqual(seen.filter((s) => { const [who, got] = s.split('→'); return got !== who && got !== 'anonymous' }), [], 'another session\'s data')
    const recovered = await Promise.resolve(sessions.start(`sessionid=${keys.bob}`)).then((s) => s.session.get('user'), () => 'failed')
    assert.equal(recovered, 'bob', 'the link recovers')
  })
})

// ------------------------------------------------------------------------------ db on PostgreSQL

describe('faults: db on PostgreSQL', { skip: pgSkip, timeout: 60_000 }, () => {
  /** A database of its own behind a proxy; `connections()` counts the server's connections to it. */
  async function pgBehindProxy(t: TestContext) {
    const { default: pg } = await import('pg')
    const admin = new pg.Client({ connectionString: PG_URL })
    await admin.connect()
    const name = `sessionkit_faults_${process.pid}_${dirs++}`
    await admin.query(`CREATE DATABASE ${name}`)
    const upstream = new URL(PG_URL)
    const proxy = new TcpProxy(Number(upstream.port || 5432))
    const proxyPort = await proxy.listen()
    const url = new URL(PG_URL)
    url.port = String(proxyPort)
    url.pathname = `/${name}`
    const made = await app(t, { databaseUrl: url.href })
    await made.mw.sessions.ready()
    await made.mw.sessions.migrate()
    t.after(async () => {
      await made.mw.close()
      await proxy.close()
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await admin.end()
    })
    const connections = async () => Number((await admin.query('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1', [name])).rows[0].n)
    return { ...made, proxy, connections }
  }

  it('R7: PostgreSQL cut off for 5 s under load: failures are 503 (never an anonymous success), the pool recovers within seconds, no connection leaks', async (t) => {
    const { url, proxy, connections } = await pgBehindProxy(t)
    let cutAt = 0
    let restoredAt = 0
    const stats = await load(url, 20, 8000, (elapsed) => {
      if (cutAt === 0 && elapsed > 1000) {
        cutAt = elapsed
        proxy.set('cut')
      }
      if (restoredAt === 0 && elapsed > 6000) {
        restoredAt = elapsed
        proxy.set('pass')
      }
    }, false)
    await sleep(200)
    const open = await connections()
    t.diagnostic(JSON.stringify({ ...stats, cutAt: Math.round(cutAt), restoredAt: Math.round(restoredAt), serverConnectionsAfter: open }))
    assert.equal(stats.leaks, 0)
    assert.equal(stats.anonymous, 0, 'a request answered as if the visitor were logged out')
    assert.equal(stats.other, 0, 'only 503s')
    assert.ok(stats.unavailable > 0, 'the cut was seen')
    assert.ok(stats.firstFailureAt >= cutAt - 50)
    assert.ok(stats.lastFailureAt < restoredAt + 5000, `failures went on ${Math.round(stats.lastFailureAt - restoredAt)} ms after the link came back`)
    assert.ok(stats.maxMs < 4000, `a request took ${stats.maxMs.toFixed(0)} ms (pool connect timeout 3 s)`)
    assert.ok(open <= 10, `${open} server connections: the pool holds at most 10`)
  })

  it('R22 (measured limit): PostgreSQL black-holed for 2 s: requests wait for the link (no per-query deadline), then complete; none fails open', async (t) => {
    const { url, proxy } = await pgBehindProxy(t)
    let faultAt = 0
    let healedAt = 0
    const stats = await load(url, 10, 4000, (elapsed) => {
      if (faultAt === 0 && elapsed > 1000) {
        faultAt = elapsed
        proxy.set('stall')
      }
      if (healedAt === 0 && elapsed > 3000) {
        healedAt = elapsed
        proxy.set('pass')
      }
    }, false)
    t.diagnostic(JSON.stringify({ ...stats, faultAt: Math.round(faultAt), healedAt: Math.round(healedAt) }))
    assert.equal(stats.leaks, 0)
    assert.equal(stats.anonymous, 0)
    assert.ok(stats.maxMs < 2000 + 1500, `a request took ${stats.maxMs.toFixed(0)} ms`)
  })
})

