/**
 * Helpers shared by the middleware and adapter tests: a server on 127.0.0.1 port 0, fetch
 * that never follows redirects, `Set-Cookie` parsing, a tiny cookie jar, a capturing
 * logger, an engine wrapper that counts storage calls and can be made to fail or stall,
 * and an in-memory engine.
 *
 * The in-memory engine is a test double for the middleware and adapter logic only; the
 * real engines are proved by their own suites (`describeEngine`).
 */
import { createServer, type RequestListener, type Server } from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  CreateError,
  UpdateError,
  type ClearProgress,
  type Engine,
  type EngineContext,
  type EngineFactory,
  type Logger,
  type SaveOptions,
  type SessionMap,
  type Settings,
} from 'sessionkit'
import { dbEngine } from '../../src/engines/db.ts'

/** What `t.after` needs: a node:test context or suite. */
interface Cleanup {
  after(fn: () => unknown): void
}

/** A free loopback port (for a server of the test's own: redis-server, memcached, a proxy). */
export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/** A server listening on 127.0.0.1 on a free port. */
export interface Running {
  readonly server: Server
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  close(): Promise<void>
}

/**
 * Listen on 127.0.0.1 port 0 with `handler` (an Express app is a request listener) and
 * close the server, keep-alive connections included, after the test `t`.
 */
export async function listen(handler: RequestListener, t?: Cleanup): Promise<Running> {
  const server = createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  let closed: Promise<void> | null = null
  const running: Running = {
    server,
    url: `http://127.0.0.1:${port}`,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closed
    },
  }
  t?.after(() => running.close())
  return running
}

/** A response read to the end. */
export interface Reply {
  status: number
  headers: Headers
  body: string
  /** Every `Set-Cookie` header, as sent (`Headers#getSetCookie`). */
  setCookies: string[]
}

/** `fetch` with `redirect: 'manual'`, the body read as text. */
export async function request(url: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, { redirect: 'manual', ...init })
  return { status: res.status, headers: res.headers, body: await res.text(), setCookies: res.headers.getSetCookie() }
}

/** One `Set-Cookie` header, attribute names lower-cased. */
export interface SetCookie {
  name: string
  value: string
  /** Lower-cased attribute name → value (`''` for a flag such as `HttpOnly`). */
  attributes: Map<string, string>
  raw: string
}

export function parseSetCookie(header: string): SetCookie {
  const [pair = '', ...attributes] = header.split(';')
  const eq = pair.indexOf('=')
  return {
    name: pair.slice(0, eq).trim(),
    value: pair.slice(eq + 1).trim(),
    attributes: new Map(
      attributes.map((a): [string, string] => {
        const i = a.indexOf('=')
        return i === -1 ? [a.trim().toLowerCase(), ''] : [a.slice(0, i).trim().toLowerCase(), a.slice(i + 1).trim()]
      }),
    ),
    raw: header,
  }
}

/** The `Set-Cookie` headers of `reply` for cookie `name`. */
export function cookiesNamed(reply: Reply, name: string): SetCookie[] {
  return reply.setCookies.map(parseSetCookie).filter((c) => c.name === name)
}

/** A browser's cookie store, reduced to what the tests need: name → value, deletion by `Max-Age<=0`. */
export class CookieJar {
  readonly cookies = new Map<string, string>()

  /** The `Cookie` request header, or `undefined` when the jar is empty. */
  header(): string | undefined {
    if (this.cookies.size === 0) return undefined
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }

  /** Take in the `Set-Cookie` headers of a response. */
  store(reply: Reply): void {
    for (const cookie of reply.setCookies.map(parseSetCookie)) {
      const maxAge = cookie.attributes.get('max-age')
      if (maxAge !== undefined && Number(maxAge) <= 0) this.cookies.delete(cookie.name)
      else this.cookies.set(cookie.name, cookie.value)
    }
  }

  /** `request` with this jar's cookies; the response's cookies are stored. */
  async fetch(url: string, init: RequestInit = {}): Promise<Reply> {
    const headers = new Headers(init.headers)
    const cookie = this.header()
    if (cookie !== undefined) headers.set('Cookie', cookie)
    const reply = await request(url, { ...init, headers })
    this.store(reply)
    return reply
  }
}

/** A logger that keeps everything it is given, error objects included, for assertions. */
export interface CapturingLogger extends Logger {
  warnings: string[]
  errors: string[]
  /** The error objects passed as `error(message, error)`. */
  errorObjects: unknown[]
  /** Every logged text: messages, and the message and stack of every error object. */
  everything(): string
}

export function capturingLogger(): CapturingLogger {
  const warnings: string[] = []
  const errors: string[] = []
  const errorObjects: unknown[] = []
  return {
    warnings,
    errors,
    errorObjects,
    warn: (message) => void warnings.push(message),
    error(message, error) {
      errors.push(message)
      if (error !== undefined) errorObjects.push(error)
    },
    everything() {
      const details = errorObjects.map((e) => (e instanceof Error ? `${e.message}\n${e.stack ?? ''}\n${String(e.cause ?? '')}` : String(e)))
      return [...warnings, ...errors, ...details].join('\n')
    },
  }
}

/** A promise with its resolve function, to hold a handler until the test says so. */
export function deferred<T = void>(): { promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

/** Storage calls seen by {@link instrument}; `create` is a `save` with `mustCreate`. */
export interface Calls {
  load: number
  exists: number
  create: number
  save: number
  delete: number
  clearExpired: number
}

/** What {@link instrument} returns: the wrapped factory and the knobs on it. */
export interface Instrumented {
  factory: EngineFactory
  calls: Calls
  /** Writes of any kind: create + save + delete. */
  writes(): number
  /** Zero every counter. */
  reset(): void
  /** Make the next calls of that kind throw this error (until set back to `null`). */
  fail: { load: Error | null; save: Error | null }
  /** Milliseconds each save waits before it reaches the store (a slow network). */
  saveDelayMs: number
  /** Called before each load/save reaches the store; may hold it with a promise. */
  beforeSave: ((key: string) => unknown) | null
}

/**
 * Wrap an engine factory (any engine, sync or async) so that every storage call is counted,
 * and loads or saves can be made to fail or to stall.
 */
export function instrument(inner: EngineFactory): Instrumented {
  const calls: Calls = { load: 0, exists: 0, create: 0, save: 0, delete: 0, clearExpired: 0 }
  const knobs: Instrumented = {
    factory,
    calls,
    writes: () => calls.create + calls.save + calls.delete,
    reset() {
      for (const k of Object.keys(calls) as (keyof Calls)[]) calls[k] = 0
    },
    fail: { load: null, save: null },
    saveDelayMs: 0,
    beforeSave: null,
  }
  function wrap(engine: Engine): Engine {
    return {
      name: engine.name,
      clientSide: engine.clientSide,
      validKey: engine.validKey ? (key) => engine.validKey!(key) : undefined,
      async load(key) {
        calls.load++
        if (knobs.fail.load) throw knobs.fail.load
        return engine.load(key)
      },
      async exists(key) {
        calls.exists++
        return engine.exists(key)
      },
      async save(key: string, data: SessionMap, options: SaveOptions) {
        if (options.mustCreate) calls.create++
        else calls.save++
        if (knobs.saveDelayMs > 0) await sleep(knobs.saveDelayMs)
        if (knobs.beforeSave) await knobs.beforeSave(key)
        if (knobs.fail.save) throw knobs.fail.save
        return engine.save(key, data, options)
      },
      async delete(key) {
        calls.delete++
        return engine.delete(key)
      },
      async clearExpired(onProgress?: ClearProgress) {
        calls.clearExpired++
        return engine.clearExpired(onProgress)
      },
      migrate: engine.migrate ? () => engine.migrate!() : undefined,
      close: () => engine.close(),
    }
  }
  function factory(context: EngineContext): Engine | Promise<Engine> {
    const made = inner(context)
    return made instanceof Promise ? made.then(wrap) : wrap(made)
  }
  return knobs
}

/**
 * A Map-backed engine with Django's storage contract (CreateError on a taken key,
 * UpdateError on a vanished one, expiry checked against the injected clock). A test double
 * for middleware and adapter logic only.
 */
export function memoryEngine(): EngineFactory {
  return function memory({ settings }: EngineContext): Engine {
    const rows = new Map<string, { data: string; expireAt: number }>()
    const live = (key: string) => {
      const row = rows.get(key)
      return row !== undefined && row.expireAt > settings.now() ? row : undefined
    }
    return {
      name: 'memory',
      async load(key) {
        const row = live(key)
        return row ? new Map(Object.entries(JSON.parse(row.data) as object)) : null
      },
      async exists(key) {
        return live(key) !== undefined
      },
      async save(key, data, { mustCreate, expireDate }) {
        if (mustCreate && live(key)) throw new CreateError()
        if (!mustCreate && !rows.has(key)) throw new UpdateError()
        rows.set(key, { data: JSON.stringify(Object.fromEntries(data)), expireAt: expireDate.getTime() })
        return key
      },
      async delete(key) {
        rows.delete(key)
      },
      async clearExpired() {
        let n = 0
        for (const key of [...rows.keys()]) if (!live(key) && rows.delete(key)) n++
        return n
      },
      async close() {},
    }
  }
}

/** A server-side engine the middleware and adapter suites run against. */
export interface Backend {
  name: string
  /** A fresh, empty store for test `t` (removed after it), and the settings it needs. */
  make(t: Cleanup): Promise<{ engine: EngineFactory; settings: Partial<Settings> }>
}

/** The in-memory test double, and the real `db` engine on a temporary SQLite file. */
export const backends: readonly Backend[] = [
  {
    name: 'in-memory test double',
    make: async () => ({ engine: memoryEngine(), settings: {} }),
  },
  {
    name: 'db engine on SQLite',
    async make(t) {
      const dir = await mkdtemp(path.join(tmpdir(), 'sessionkit-test-'))
      t.after(() => rm(dir, { recursive: true, force: true }))
      return { engine: (context) => dbEngine(context), settings: { databaseUrl: 'sqlite:' + path.join(dir, 'db.sqlite3') } }
    },
  },
]
