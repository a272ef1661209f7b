/**
 * Optional peer dependencies (better-sqlite3, pg, mysql2, ioredis), required synchronously on
 * first use so that an app that needs one and lacks it fails at start-up, with one line saying
 * what to install; an app on other engines never loads them.
 */
import { createRequire } from 'node:module'
import { ImproperlyConfigured } from './errors.js'

const loaded = new Map<string, unknown>()

/** What {@link requirePeer} needs to say. */
export interface PeerOptions {
  /** The message when the package is not installed, e.g. `sessionkit: … needs pg: npm install pg@8`. */
  missing: string
  /**
   * The message when the package is installed but fails to load (a native module built for
   * another Node.js), given the first line of the error; without it, that error propagates.
   */
  broken?: (reason: string) => string
  /** Instead of `require` (tests): nothing is remembered then. */
  load?: (id: string) => unknown
}

/**
 * The module `id`, required once and remembered. Only the package itself missing is
 * `options.missing` (a module missing *inside* it is a broken install); both throw
 * `ImproperlyConfigured`, the cause attached.
 */
export function requirePeer(id: string, options: PeerOptions): unknown {
  if (options.load === undefined && loaded.has(id)) return loaded.get(id)
  let mod: unknown
  try {
    mod = (options.load ?? createRequire(import.meta.url))(id)
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException
    if (code === 'MODULE_NOT_FOUND' && String(message).includes(`Cannot find module '${id}'`)) {
      throw new ImproperlyConfigured(options.missing, { cause: error })
    }
    if (options.broken) throw new ImproperlyConfigured(options.broken(String(message).split('\n', 1)[0]!), { cause: error })
    throw error
  }
  if (options.load === undefined) loaded.set(id, mod)
  return mod
}
