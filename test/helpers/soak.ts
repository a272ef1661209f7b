/**
 * The load and soak harness (issue 8, item 4), shared by `scripts/soak.ts` (60 s × 50
 * connections per engine), `test/system/soak.test.ts` (a bounded run in `npm test`) and
 * `test/system/cluster.test.ts` (several app processes sharing Redis and PostgreSQL).
 *
 * - The app under load is an Express app with sessionkit in a **child process** of its own
 *   (this very file, run with `SESSIONKIT_SOAK_APP` set), so that its RSS is measured alone; it
 *   answers RSS samples over IPC. Run with `SESSIONKIT_SOAK_CLUSTER=N`, it is instead a `cluster`
 *   primary whose N workers share one port (the OS hands each connection to one of them).
 * - The load: N virtual clients, each on its own keep-alive connection (an `http.Agent` with one
 *   socket), each with its own random token and cookie. A client's first request stores its
 *   token in a new session; every later request reads the session's token and counter, adds one
 *   and saves (read + modify + save), and the client checks that the answer carries its own token
 *   (else: a leak — another visitor's session) and exactly the count it expects (else: lost — a
 *   session reset or a lost update). After `visitLength` requests the visitor logs out (`flush`)
 *   and a new one starts on the same connection, so sessions are created and deleted throughout.
 *
 * Everything is on 127.0.0.1 and bounded in time.
 */
import { fork, type ChildProcess } from 'node:child_process'
import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import express from 'express'
import { redisCacheFromUrl } from 'sessionkit'
import { sessions } from 'sessionkit/express'
import { mysqlAvailable, mysqlScratch, postgresAvailable, postgresScratch } from './databases.ts'
import { REDIS_URL, redisAvailable } from './redis.ts'

const HERE = fileURLToPath(import.meta.url)
export const SOAK_SECRET = 'sessionkit-soak-secret-0123456789abcdefghijklmnopqrstuvwxyz'

// ------------------------------------------------------------------------------ the app

/** What the app process is told to run: a JSON-serialisable description of its settings. */
export interface AppSpec {
  engine: 'db' | 'file' | 'cache' | 'cached_db' | 'signed_cookies'
  databaseUrl?: string
  filePath?: string
  /** The `cache`/`cached_db` engine on Redis (`redisCacheFromUrl` with this prefix). */
  redisUrl?: string
  redisPrefix?: string
  cookieEncryption?: boolean
}

interface AppStats {
  warnings: number
  errors: number
  /** The first few logged lines. */
  sample: string[]
}

type FromApp =
  | { type: 'listening'; port: number; pid: number }
  | { type: 'rss'; id: number; rss: number; heapUsed: number }
  | { type: 'stopped'; stats: AppStats }
  | { type: 'failed'; message: string }

type ToApp = { type: 'rss'; id: number } | { type: 'stop' }

/** Build and serve the Express app of `spec` on 127.0.0.1 (`port` 0: any). Runs in the child. */
async function serveApp(spec: AppSpec, port: number): Promise<{ server: http.Server; stop(): Promise<AppStats> }> {
  const stats: AppStats = { warnings: 0, errors: 0, sample: [] }
  const note = (line: string) => void (stats.sample.length < 5 && stats.sample.push(line))
  const cache = spec.redisUrl ? redisCacheFromUrl(spec.redisUrl, { prefix: spec.redisPrefix ?? '', timeoutMs: 5000 }) : undefined
  const mw = sessions({
    secretKey: SOAK_SECRET,
    engine: spec.engine,
    ...(spec.databaseUrl ? { databaseUrl: spec.databaseUrl } : {}),
    ...(spec.filePath ? { filePath: spec.filePath } : {}),
    ...(cache ? { caches: { default: cache } } : {}),
    cookieEncryption: spec.cookieEncryption ?? false,
    logger: {
      warn: (m) => void (stats.warnings++, note(`warn: ${m}`)),
      error: (m, e) => void (stats.errors++, note(`error: ${m} ${e === undefined ? '' : String(e)}`)),
    },
  })
  await mw.sessions.ready()
  await mw.sessions.migrate()
  const app = express()
  app.set('etag', false)
  app.get('/__pid', (_req, res) => void res.type('text').send(String(process.pid)))
  app.get('/__rss', (_req, res) => void res.json({ rss: process.memoryUsage.rss(), pid: process.pid }))
  app.use(mw)
  // The soak route: the first request stores the visitor's token, later ones read it and count.
  app.get('/echo', (req, res) => {
    const token = String(req.query.token ?? '')
    let stored = req.session.get('token') as string | undefined
    let n = (req.session.get('n') as number | undefined) ?? 0
    if (stored === undefined) {
      stored = token
      n = 0
      req.session.set('token', token)
    }
    req.session.set('n', n + 1)
    res.type('text').send(`${stored} ${n + 1}`)
  })
  app.get('/bye', async (req, res) => {
    await req.session.flush()
    res.type('text').send('bye')
  })
  // The cluster routes: which process answered, and the session's data.
  const show = (req: express.Request, res: express.Response) => void res.json({ pid: process.pid, data: Object.fromEntries(req.session.entries()) })
  app.get('/kv', show)
  app.get('/kv/set', (req, res) => {
    for (const [k, v] of Object.entries(req.query)) req.session.set(k, String(v))
    show(req, res)
  })
  app.get('/kv/flush', async (req, res) => {
    await req.session.flush()
    show(req, res)
  })
  app.use(((error, _req, res, _next) => {
    const status = (error as { status?: number }).status ?? 500
    stats.errors++
    note(`handler: ${status} ${String((error as Error).message ?? error)}`)
    res.status(status).type('text').send(`error ${status}\n`)
  }) as express.ErrorRequestHandler)
  const server = http.createServer(app)
  server.keepAliveTimeout = 30_000
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return {
    server,
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await mw.close()
      await (cache as { close?: () => Promise<void> } | undefined)?.close?.()
      return stats
    },
  }
}

/** The child's main: serve, report the port, answer RSS requests, stop on request or when the parent goes. */
async function appMain(): Promise<void> {
  const spec = JSON.parse(process.env.SESSIONKIT_SOAK_APP!) as AppSpec
  const send = (m: FromApp) => process.send?.(m)
  const workers = Number(process.env.SESSIONKIT_SOAK_CLUSTER ?? 0)
  if (workers > 0 && cluster.isPrimary) {
    // A cluster primary: the workers run this file too (same execArgv), share one port.
    cluster.setupPrimary({ exec: HERE })
    const forked = Array.from({ length: workers }, () => cluster.fork())
    const ports = await Promise.all(forked.map((w) => once(w, 'listening').then(([address]) => (address as AddressInfo).port)))
    send({ type: 'listening', port: ports[0]!, pid: process.pid })
    const stopAll = async () => {
      for (const w of forked) w.kill()
      await Promise.all(forked.map((w) => (w.isDead() ? undefined : once(w, 'exit'))))
    }
    process.on('message', (m: ToApp) => {
      if (m.type === 'stop') void stopAll().then(() => (send({ type: 'stopped', stats: { warnings: 0, errors: 0, sample: [] } }), process.exit(0)))
    })
    process.on('disconnect', () => void stopAll().then(() => process.exit(0)))
    return
  }
  if (cluster.isWorker) {
    // Port 0 in a cluster worker: the primary picks one port for every worker.
    await serveApp(spec, 0)
    return
  }
  const app = await serveApp(spec, 0)
  send({ type: 'listening', port: (app.server.address() as AddressInfo).port, pid: process.pid })
  process.on('message', (m: ToApp) => {
    if (m.type === 'rss') send({ type: 'rss', id: m.id, rss: process.memoryUsage.rss(), heapUsed: process.memoryUsage().heapUsed })
    else if (m.type === 'stop') void app.stop().then((stats) => (send({ type: 'stopped', stats }), process.disconnect()))
  })
  process.on('disconnect', () => setTimeout(() => process.exit(0), 200).unref())
}

if (process.env.SESSIONKIT_SOAK_APP && (process.argv[1] === HERE || cluster.isWorker)) {
  appMain().catch((error: unknown) => {
    process.send?.({ type: 'failed', message: String((error as Error)?.stack ?? error) } satisfies FromApp)
    process.exitCode = 1
    setTimeout(() => process.exit(1), 100).unref()
  })
}

/** An app process started by {@link startApp}. */
export interface AppProcess {
  /** `http://127.0.0.1:<port>` */
  url: string
  pid: number
  child: ChildProcess
  /** The child's resident set size, in bytes (IPC). */
  rss(): Promise<number>
  /** Stop the app (close the server and the engine); its log counts. */
  stop(): Promise<AppStats>
}

/**
 * Fork this file as an app process serving `spec` (with `workers`, a `cluster` of that many
 * workers on one port). Resolves once it listens; rejects if it fails to start in 20 s.
 */
export async function startApp(spec: AppSpec, workers = 0): Promise<AppProcess> {
  const child = fork(HERE, [], {
    execArgv: ['--conditions=sessionkit-source', '--import', import.meta.resolve('tsx')],
    env: { ...process.env, SESSIONKIT_SOAK_APP: JSON.stringify(spec), SESSIONKIT_SOAK_CLUSTER: String(workers) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const started = await new Promise<{ port: number; pid: number }>((resolve, reject) => {
    const timer = setTimeout(() => (child.kill(), reject(new Error('the app process did not start within 20 s'))), 20_000)
    child.on('message', (m: FromApp) => {
      if (m.type === 'listening') (clearTimeout(timer), resolve(m))
      else if (m.type === 'failed') (clearTimeout(timer), child.kill(), reject(new Error(`the app process failed: ${m.message}`)))
    })
    child.on('exit', (code) => (clearTimeout(timer), reject(new Error(`the app process exited (${code}) before listening`))))
  })
  let ids = 0
  const pending = new Map<number, (rss: number) => void>()
  child.on('message', (m: FromApp) => {
    if (m.type === 'rss') pending.get(m.id)?.(m.rss), pending.delete(m.id)
  })
  let stopping: Promise<AppStats> | undefined
  return {
    url: `http://127.0.0.1:${started.port}`,
    pid: started.pid,
    child,
    rss() {
      const id = ids++
      return new Promise((resolve) => {
        pending.set(id, resolve)
        child.send({ type: 'rss', id } satisfies ToApp)
      })
    },
    stop() {
      stopping ??= new Promise<AppStats>((resolve) => {
        if (child.exitCode !== null || !child.connected) return resolve({ warnings: 0, errors: 0, sample: [] })
        const timer = setTimeout(() => (child.kill('SIGKILL'), resolve({ warnings: 0, errors: 1, sample: ['did not stop within 10 s'] })), 10_000)
        let stats: AppStats = { warnings: 0, errors: 0, sample: [] }
        child.on('message', (m: FromApp) => void (m.type === 'stopped' && (stats = m.stats)))
        child.once('exit', () => (clearTimeout(timer), resolve(stats)))
        child.send({ type: 'stop' } satisfies ToApp)
      })
      return stopping
    },
  }
}

// ------------------------------------------------------------------------------ the client

/** One response, read to the end. */
export interface Answer {
  status: number
  body: string
  /** The session cookie as `name=value`, `null` when deleted, `undefined` when not sent. */
  cookie: string | null | undefined
  pid?: number
}

/** GET `url` on `agent` (keep-alive) with `cookie`; a network error or a 10 s timeout is status 0. */
export function get(url: string, cookie: string | undefined, agent: http.Agent | false): Promise<Answer> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, headers: cookie ? { cookie } : {}, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const set = (res.headers['set-cookie'] ?? []).find((c) => c.startsWith('sessionid='))
        let next: string | null | undefined
        if (set !== undefined) {
          const pair = set.split(';', 1)[0]!
          next = pair === 'sessionid=' || pair === 'sessionid=""' || /;\s*max-age=0/i.test(set) ? null : pair
        }
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), cookie: next })
      })
      res.on('error', () => resolve({ status: 0, body: '', cookie: undefined }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ status: 0, body: '', cookie: undefined }))
  })
}

export interface LoadOptions {
  /** Concurrent virtual clients, one keep-alive connection each. */
  connections: number
  seconds: number
  /** Requests per visitor before it logs out and a new visitor starts. Default 100. */
  visitLength?: number
  /** How often the app's RSS is sampled. Default 1000 ms. */
  sampleMs?: number
  /** The share of the run before RSS counts. Default 0.2. */
  warmup?: number
  /** The averaging window at each end of the measured part. Default 10 s (at most half of it). */
  windowMs?: number
}

export interface LoadResult {
  seconds: number
  connections: number
  requests: number
  /** Answers other than 200 (and network errors), by status. */
  errors: number
  statuses: Record<string, number>
  /** Answers carrying another visitor's token. */
  leaks: number
  /** Answers with this visitor's token but not the count it expected (a reset session or a lost update). */
  lost: number
  /** Visitors that logged in and out. */
  visits: number
  rps: number
  p50ms: number
  p99ms: number
  maxms: number
  /** RSS samples: milliseconds since the start, bytes. */
  rss: { t: number; rss: number }[]
  rssStartMiB: number
  rssEndMiB: number
  /** (average of the last window − average of the first window after warm-up) / the first. */
  rssGrowth: number
}

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10
const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)

/** RSS growth after warm-up: (last-window average − first-window average) / first-window average. */
export function rssGrowth(samples: { t: number; rss: number }[], totalMs: number, warmup = 0.2, windowMs = 10_000): { growth: number; first: number; last: number } {
  const post = samples.filter((s) => s.t >= totalMs * warmup)
  if (post.length < 2) return { growth: 0, first: 0, last: 0 }
  const span = post[post.length - 1]!.t - post[0]!.t
  const w = Math.min(windowMs, span / 2)
  const first = avg(post.filter((s) => s.t < post[0]!.t + w).map((s) => s.rss))
  const last = avg(post.filter((s) => s.t > post[post.length - 1]!.t - w).map((s) => s.rss))
  return { growth: (last - first) / first, first, last }
}

/** Drive the app at `url` with the soak traffic; sample its RSS with `rss`. */
export async function runLoad(url: string, rss: () => Promise<number>, options: LoadOptions): Promise<LoadResult> {
  const { connections, seconds } = options
  const visitLength = options.visitLength ?? 100
  const sampleMs = options.sampleMs ?? 1000
  const started = performance.now()
  const deadline = started + seconds * 1000
  const latencies: number[] = []
  const statuses: Record<string, number> = {}
  let requests = 0
  let errors = 0
  let leaks = 0
  let lost = 0
  let visits = 0
  const samples: { t: number; rss: number }[] = []
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      const t = performance.now() - started
      samples.push({ t, rss: await rss() })
      const next = started + samples.length * sampleMs
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())))
    }
  })()

  const timed = async (path: string, cookie: string | undefined, agent: http.Agent) => {
    const t0 = performance.now()
    const answer = await get(url + path, cookie, agent)
    latencies.push(performance.now() - t0)
    requests++
    if (answer.status !== 200) {
      errors++
      statuses[answer.status] = (statuses[answer.status] ?? 0) + 1
    }
    return answer
  }

  const client = async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      while (performance.now() < deadline) {
        const token = randomBytes(12).toString('hex')
        let cookie: string | undefined
        let n = 0
        for (let i = 0; i < visitLength && performance.now() < deadline; i++) {
          const a = await timed(`/echo?token=${token}`, cookie, agent)
          if (a.cookie !== undefined) cookie = a.cookie ?? undefined
          if (a.status !== 200) continue
          const [seen, count] = a.body.split(' ')
          if (seen !== token) leaks++
          else if (Number(count) !== n + 1) lost++
          n = Number(count)
        }
        if (cookie !== undefined) {
          const bye = await timed('/bye', cookie, agent)
          if (bye.status === 200) visits++
        }
      }
    } finally {
      agent.destroy()
    }
  }
  await Promise.all(Array.from({ length: connections }, client))
  const elapsed = (performance.now() - started) / 1000
  sampling = false
  await sampler
  latencies.sort((a, b) => a - b)
  const pct = (p: number) => Math.round((latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0) * 10) / 10
  const { growth, first, last } = rssGrowth(samples, elapsed * 1000, options.warmup ?? 0.2, options.windowMs ?? 10_000)
  return {
    seconds: Math.round(elapsed * 10) / 10,
    connections,
    requests,
    errors,
    statuses,
    leaks,
    lost,
    visits,
    rps: Math.round(requests / elapsed),
    p50ms: pct(0.5),
    p99ms: pct(0.99),
    maxms: Math.round((latencies[latencies.length - 1] ?? 0) * 10) / 10,
    rss: samples,
    rssStartMiB: mib(first),
    rssEndMiB: mib(last),
    rssGrowth: Math.round(growth * 10_000) / 10_000,
  }
}

// ------------------------------------------------------------------------------ the engines

/** An engine to soak: the services it needs, and a fresh store for one run. */
export interface SoakEngine {
  /** Short name for `--only`. */
  id: string
  name: string
  /** `false` when its services answer, else why not (under CI: throws). */
  available(): Promise<string | false>
  /** A fresh, empty store; `cleanup` removes it. */
  prepare(): Promise<{ spec: AppSpec; cleanup(): Promise<void> }>
}

function tempDir(label: string) {
  const dir = mkdtempSync(path.join(tmpdir(), `sessionkit-soak-${label}-`))
  return { dir, cleanup: async () => rmSync(dir, { recursive: true, force: true }) }
}

/** Delete every Redis key under `prefix`. */
async function deletePrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    const keys = await redis.keys(`${prefix}*`)
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500))
  } finally {
    redis.disconnect()
  }
}

/** A Redis key prefix of its own under `sessionkit:soak:`. */
export const redisPrefix = (label: string) => `sessionkit:soak:${process.pid}:${randomBytes(4).toString('hex')}:${label}:`

const none = async () => false as const

export const ENGINES: readonly SoakEngine[] = [
  {
    id: 'sqlite',
    name: 'db on SQLite',
    available: none,
    async prepare() {
      const t = tempDir('sqlite')
      return { spec: { engine: 'db', databaseUrl: `sqlite:${path.join(t.dir, 'soak.sqlite3')}` }, cleanup: t.cleanup }
    },
  },
  {
    id: 'postgres',
    name: 'db on PostgreSQL',
    available: postgresAvailable,
    async prepare() {
      const s = await postgresScratch('soak', 1)
      return { spec: { engine: 'db', databaseUrl: s.url }, cleanup: () => s.drop() }
    },
  },
  {
    id: 'mariadb',
    name: 'db on MariaDB',
    available: mysqlAvailable,
    async prepare() {
      const s = await mysqlScratch('soak', 1)
      return { spec: { engine: 'db', databaseUrl: s.url }, cleanup: () => s.drop() }
    },
  },
  {
    id: 'file',
    name: 'file',
    available: none,
    async prepare() {
      const t = tempDir('file')
      return { spec: { engine: 'file', filePath: t.dir }, cleanup: t.cleanup }
    },
  },
  {
    id: 'memory',
    name: 'cache on the in-process LRU',
    available: none,
    prepare: async () => ({ spec: { engine: 'cache' }, cleanup: async () => {} }),
  },
  {
    id: 'redis',
    name: 'cache on Redis',
    available: redisAvailable,
    async prepare() {
      const prefix = redisPrefix('cache')
      return { spec: { engine: 'cache', redisUrl: REDIS_URL, redisPrefix: prefix }, cleanup: () => deletePrefix(prefix) }
    },
  },
  {
    id: 'cached_db',
    name: 'cached_db on SQLite + the in-process cache',
    available: none,
    async prepare() {
      const t = tempDir('cdb')
      return { spec: { engine: 'cached_db', databaseUrl: `sqlite:${path.join(t.dir, 'soak.sqlite3')}` }, cleanup: t.cleanup }
    },
  },
  {
    id: 'signed_cookies',
    name: 'signed_cookies',
    available: none,
    prepare: async () => ({ spec: { engine: 'signed_cookies' }, cleanup: async () => {} }),
  },
  {
    id: 'encrypted_cookies',
    name: 'signed_cookies, cookieEncryption',
    available: none,
    prepare: async () => ({ spec: { engine: 'signed_cookies', cookieEncryption: true }, cleanup: async () => {} }),
  },
]

export interface SoakResult extends LoadResult {
  engine: string
  /** Lines the app logged (warnings and errors). */
  appWarnings: number
  appErrors: number
  appLog: string[]
}

/** Prepare a store, start its app process, drive it, stop it, clean up. */
export async function soak(engine: SoakEngine, options: LoadOptions): Promise<SoakResult> {
  const { spec, cleanup } = await engine.prepare()
  try {
    const app = await startApp(spec)
    try {
      const result = await runLoad(app.url, () => app.rss(), options)
      const stats = await app.stop()
      return { engine: engine.name, ...result, appWarnings: stats.warnings, appErrors: stats.errors, appLog: stats.sample }
    } finally {
      await app.stop()
    }
  } finally {
    await cleanup()
  }
}
