/**
 * Every variant the benchmark knows: metadata only (no framework is imported here), so the
 * runner can list, filter and report without loading them. `server.ts` builds one per process.
 */

export type Workload = 'a' | 'b' | 'c' | 'd' | 'e'
export type Framework = 'node' | 'express' | 'fastify' | 'koa' | 'hono' | 'fetch'
export type Impl = 'bare' | 'sessionkit' | 'express-session' | 'cookie-session' | 'iron-session' | '@fastify/session'
export type Service = 'redis' | 'postgres' | 'mariadb'

/** sessionkit engines as the benchmark sets them up (see `lib/sessionkit.ts`). */
export type SkEngine =
  | 'cache-memory'
  | 'cache-redis'
  | 'db-sqlite'
  | 'db-postgres'
  | 'db-mariadb'
  | 'file'
  | 'cached_db'
  | 'signed_cookies'
  | 'encrypted_cookies'

/** express-session stores (see `lib/peers.ts`). */
export type PeerStore =
  | 'MemoryStore'
  | 'memorystore'
  | 'connect-redis'
  | 'better-sqlite3-session-store'
  | 'connect-pg-simple'
  | 'session-file-store'

export const WORKLOADS: Readonly<Record<Workload, string>> = {
  a: 'read + modify + save an existing session (counter increment)',
  b: 'read only',
  c: 'a new visitor each request (no cookie: create)',
  d: 'a route that never touches the session, session cookie sent',
  e: '50 parallel requests on one session, each setting a distinct key',
}

export interface Variant {
  /** Unique; `--only` matches a substring of it. */
  name: string
  impl: Impl
  framework: Framework
  /** The store: `none` (bare), `cookie` (the data in the cookie), an engine or a store name. */
  engine: string
  /** sessionkit's `lazy: true`. */
  lazy: boolean
  /** Services that must answer for the variant to run. */
  needs: Service[]
  workloads: Workload[]
  /** The peer variant sessionkit is compared with (same framework, same kind of store). */
  peer: string | null
  /** Part of `--quick`. */
  quick: boolean
  /** The session lives in the cookie: no server-side store to count. */
  clientSide: boolean
}

const ALL: Workload[] = ['a', 'b', 'c', 'd', 'e']

function v(p: Partial<Variant> & Pick<Variant, 'name' | 'impl' | 'framework' | 'engine'>): Variant {
  return { lazy: false, needs: [], workloads: ALL, peer: null, quick: false, clientSide: false, ...p }
}

const SK_ENGINES: { engine: SkEngine; needs: Service[]; peer: string | null; quick?: boolean; clientSide?: boolean }[] = [
  { engine: 'cache-memory', needs: [], peer: 'express-session/express/MemoryStore', quick: true },
  { engine: 'cache-redis', needs: ['redis'], peer: 'express-session/express/connect-redis', quick: true },
  { engine: 'db-sqlite', needs: [], peer: 'express-session/express/better-sqlite3-session-store', quick: true },
  { engine: 'db-postgres', needs: ['postgres'], peer: 'express-session/express/connect-pg-simple' },
  { engine: 'db-mariadb', needs: ['mariadb'], peer: null },
  { engine: 'file', needs: [], peer: 'express-session/express/session-file-store' },
  { engine: 'cached_db', needs: [], peer: null },
  { engine: 'signed_cookies', needs: [], peer: 'cookie-session/express', clientSide: true },
  { engine: 'encrypted_cookies', needs: [], peer: 'iron-session/express', clientSide: true },
]

const PEER_STORES: { store: PeerStore; needs: Service[]; quick?: boolean }[] = [
  { store: 'MemoryStore', needs: [], quick: true },
  { store: 'memorystore', needs: [] },
  { store: 'connect-redis', needs: ['redis'] },
  { store: 'better-sqlite3-session-store', needs: [] },
  { store: 'connect-pg-simple', needs: ['postgres'] },
  { store: 'session-file-store', needs: [] },
]

const ADAPTERS: Framework[] = ['node', 'fastify', 'koa', 'hono', 'fetch']

export const VARIANTS: readonly Variant[] = [
  // The limits: a counter in a plain Map keyed by a cookie.
  v({ name: 'bare/node', impl: 'bare', framework: 'node', engine: 'none', quick: true }),
  v({ name: 'bare/express', impl: 'bare', framework: 'express', engine: 'none', quick: true }),
  v({ name: 'bare/fastify', impl: 'bare', framework: 'fastify', engine: 'none' }),
  v({ name: 'bare/koa', impl: 'bare', framework: 'koa', engine: 'none' }),
  v({ name: 'bare/hono', impl: 'bare', framework: 'hono', engine: 'none' }),
  v({ name: 'bare/fetch', impl: 'bare', framework: 'fetch', engine: 'none' }),
  // The peers.
  ...PEER_STORES.map((p) =>
    v({ name: `express-session/express/${p.store}`, impl: 'express-session', framework: 'express', engine: p.store, needs: p.needs, quick: p.quick ?? false }),
  ),
  v({ name: 'cookie-session/express', impl: 'cookie-session', framework: 'express', engine: 'cookie', clientSide: true }),
  v({ name: 'iron-session/express', impl: 'iron-session', framework: 'express', engine: 'cookie', clientSide: true }),
  v({ name: '@fastify/session/fastify/MemoryStore', impl: '@fastify/session', framework: 'fastify', engine: 'MemoryStore' }),
  // sessionkit, every engine on Express.
  ...SK_ENGINES.map((e) =>
    v({
      name: `sessionkit/express/${e.engine}`,
      impl: 'sessionkit',
      framework: 'express',
      engine: e.engine,
      needs: e.needs,
      peer: e.peer,
      quick: e.quick ?? false,
      clientSide: e.clientSide ?? false,
    }),
  ),
  // sessionkit, the in-process cache and Redis on every other adapter.
  ...ADAPTERS.flatMap((framework) => [
    v({
      name: `sessionkit/${framework}/cache-memory`,
      impl: 'sessionkit',
      framework,
      engine: 'cache-memory',
      peer: framework === 'fastify' ? '@fastify/session/fastify/MemoryStore' : null,
      quick: framework === 'node',
    }),
    v({ name: `sessionkit/${framework}/cache-redis`, impl: 'sessionkit', framework, engine: 'cache-redis', needs: ['redis'] }),
  ]),
  // lazy: true, for workload (d) on every engine (and the cost of awaited accessors on (a), (b)).
  ...SK_ENGINES.map((e) =>
    v({
      name: `sessionkit/express/${e.engine}/lazy`,
      impl: 'sessionkit',
      framework: 'express',
      engine: e.engine,
      lazy: true,
      needs: e.needs,
      workloads: e.engine === 'cache-memory' ? ['a', 'b', 'd'] : ['d'],
      quick: e.engine === 'cache-memory',
      clientSide: e.clientSide ?? false,
    }),
  ),
  ...ADAPTERS.map((framework) =>
    v({ name: `sessionkit/${framework}/cache-memory/lazy`, impl: 'sessionkit', framework, engine: 'cache-memory', lazy: true, workloads: ['d'] }),
  ),
]

export function variantNamed(name: string): Variant {
  const found = VARIANTS.find((x) => x.name === name)
  if (!found) throw new Error(`bench: no variant named ${JSON.stringify(name)}`)
  return found
}

/** The limit a variant is measured against: the bare server of its framework. */
export function bareOf(variant: Variant): string {
  return `bare/${variant.framework}`
}
