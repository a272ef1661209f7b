/**
 * The sessionkit example application: a login form, a private page and three views that
 * store, show and delete session data, on the framework of your choice. `createApp()`
 * builds it without listening, so tests run it in-process; `server.ts` starts it.
 *
 * The pages are written once (`site.ts`: routes, templates, CSRF, the login check); each
 * file in `frameworks/` is the glue for one framework and its sessionkit adapter.
 */
import type { RequestListener } from 'node:http'
import { createSite, type Mounted, type Site, type SiteOptions } from './site.js'

export { DEFAULT_USERS } from './site.js'
export type { Logger } from './site.js'

/** The frameworks the example runs on; `express` is the default. */
export const FRAMEWORKS = ['express', 'fastify', 'koa', 'hono', 'node', 'fetch'] as const
export type Framework = (typeof FRAMEWORKS)[number]

export interface AppOptions extends SiteOptions {
  /** The framework to serve the pages with. Default `express`. */
  framework?: Framework
}

export interface App {
  /** A `node:http` request listener: `createServer(app)`. */
  app: RequestListener
  framework: Framework
  /** Release the framework and the session store. Call after the HTTP server closed. */
  close(): Promise<void>
}

/** Each framework's glue, loaded only when chosen. */
const frameworks: Record<Framework, () => Promise<{ mount(site: Site): Promise<Mounted> }>> = {
  express: () => import('./frameworks/express.js'),
  fastify: () => import('./frameworks/fastify.js'),
  koa: () => import('./frameworks/koa.js'),
  hono: () => import('./frameworks/hono.js'),
  node: () => import('./frameworks/node.js'),
  fetch: () => import('./frameworks/fetch.js'),
}

/** Whether `name` is one of {@link FRAMEWORKS}. */
export function isFramework(name: string): name is Framework {
  return (FRAMEWORKS as readonly string[]).includes(name)
}

export async function createApp(options: AppOptions = {}): Promise<App> {
  const framework = options.framework ?? 'express'
  if (!isFramework(framework)) {
    throw new Error(`sessionkit example: framework must be one of ${FRAMEWORKS.join(', ')}, got ${JSON.stringify(framework)}`)
  }
  const site = await createSite(options)
  try {
    const mounted = await (await frameworks[framework]()).mount(site)
    return {
      app: mounted.listener,
      framework,
      async close() {
        await mounted.close()
        await site.close()
      },
    }
  } catch (error) {
    await site.close()
    throw error
  }
}
