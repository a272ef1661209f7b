/**
 * The engine registry: every built-in engine under its `settings.engine` name (Django's
 * `SESSION_ENGINE`, without the `django.contrib.sessions.backends.` prefix). The name type
 * (`EngineName`) and the settings check are derived from it: adding an engine is its own file
 * and one line here.
 */
import { ImproperlyConfigured } from '../errors.js'
import type { Engine, EngineContext, EngineFactory } from '../engine.js'
import type { SessionCodec } from '../codec.js'
import type { Settings } from '../settings.js'
import { dbEngine } from './db.js'
import { fileEngine } from './file.js'
import { cacheEngine } from './cache.js'
import { cachedDbEngine } from './cached-db.js'
import { signedCookiesEngine } from './signed-cookies.js'

/** The built-in engines, by name. */
export const ENGINES = Object.freeze({
  db: dbEngine,
  file: fileEngine,
  cache: cacheEngine,
  cached_db: cachedDbEngine,
  signed_cookies: signedCookiesEngine,
} satisfies Record<string, (context: EngineContext) => Engine | Promise<Engine>>)

/** The built-in engines' names, by Django's module names without the package prefix. */
export type EngineName = keyof typeof ENGINES

/** Whether `name` is a built-in engine's. */
export function isEngineName(name: unknown): name is EngineName {
  return typeof name === 'string' && Object.hasOwn(ENGINES, name)
}

/** The names, in registry order, for messages. */
export const ENGINE_NAMES = Object.freeze(Object.keys(ENGINES)) as readonly EngineName[]

/**
 * Build the engine `settings.engine` names, or call the factory it holds; synchronous where
 * the engine opens synchronously (SQLite, signed cookies).
 */
export function createEngine(settings: Readonly<Settings>, codec: SessionCodec): Engine | Promise<Engine> {
  const context: EngineContext = { settings, codec }
  const engine: EngineName | EngineFactory = settings.engine
  if (typeof engine === 'function') return engine(context)
  // Resolved settings hold a registered name; settings made by hand may not.
  if (!isEngineName(engine)) throw new ImproperlyConfigured(`sessionkit: engine ${JSON.stringify(engine)} is not available in this version`)
  return ENGINES[engine](context)
}
