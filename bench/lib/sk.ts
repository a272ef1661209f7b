/**
 * Where the benchmark takes sessionkit from, chosen by the runner through `BENCH_SESSIONKIT`:
 * - a directory (the default, see `build.ts`): the repository's `src/` compiled by `tsc` with
 *   the package's own build settings — the JavaScript `npm run build` publishes as `dist/`;
 * - `tsx`: `src/*.ts` loaded through tsx. tsx compiles with esbuild's `keepNames`, which wraps
 *   every function created at run time in a `__name()` call (`Object.defineProperty`): a cost
 *   per request that the published package does not have (measured: 4–5 % of the CPU time of
 *   the node:http adapter under load). Use it to measure uncommitted work without a build.
 */
import { pathToFileURL } from 'node:url'

const where = process.env.BENCH_SESSIONKIT ?? 'tsx'

async function load<T>(module: string): Promise<T> {
  const url = where === 'tsx' ? new URL(`../../src/${module}.ts`, import.meta.url).href : pathToFileURL(`${where}/${module}.js`).href
  return (await import(url)) as T
}

export const sessionkitSource = (): string => where

export const skExpress = () => load<typeof import('../../src/adapters/express.ts')>('adapters/express')
export const skNode = () => load<typeof import('../../src/adapters/node.ts')>('adapters/node')
/**
 * Typed loosely: src/adapters/fastify.ts augments `FastifyRequest.session` with sessionkit's
 * `Session`, and so does @fastify/session (installed here as a peer) with its own: one
 * program cannot type both.
 */
export const skFastify = () => load<{ sessionPlugin: unknown }>('adapters/fastify')
export const skKoa = () => load<typeof import('../../src/adapters/koa.ts')>('adapters/koa')
export const skHono = () => load<typeof import('../../src/adapters/hono.ts')>('adapters/hono')
export const skFetch = () => load<typeof import('../../src/adapters/fetch.ts')>('adapters/fetch')
export const skMiddleware = () => load<typeof import('../../src/middleware.ts')>('middleware')
export const skMemory = () => load<typeof import('../../src/caches/memory.ts')>('caches/memory')
export const skRedis = () => load<typeof import('../../src/caches/redis.ts')>('caches/redis')
export const skSigning = () => load<typeof import('../../src/signing.ts')>('signing')
export const skCodec = () => load<typeof import('../../src/codec.ts')>('codec')
export const skSettings = () => load<typeof import('../../src/settings.ts')>('settings')
