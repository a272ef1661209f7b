/**
 * The engine registry: `settings.engine` → an engine. Adding an engine touches its own
 * file and one line here.
 */
import { ImproperlyConfigured } from '../errors.js'
import type { Engine, EngineContext } from '../engine.js'
import type { SessionCodec } from '../codec.js'
import type { Settings } from '../settings.js'
import { dbEngine } from './db.js'
import { fileEngine } from './file.js'
import { cacheEngine } from './cache.js'
import { cachedDbEngine } from './cached-db.js'
import { signedCookiesEngine } from './signed-cookies.js'

/** Build the engine `settings.engine` names; synchronous where the engine opens synchronously (SQLite, signed cookies). */
export function createEngine(settings: Readonly<Settings>, codec: SessionCodec): Engine | Promise<Engine> {
  const context: EngineContext = { settings, codec }
  const engine = settings.engine
  if (typeof engine === 'function') return engine(context)
  switch (engine) {
    case 'db':
      return dbEngine(context)
    case 'file':
      return fileEngine(context)
    case 'cache':
      return cacheEngine(context)
    case 'cached_db':
      return cachedDbEngine(context)
    case 'signed_cookies':
      return signedCookiesEngine(context)
    default:
      throw new ImproperlyConfigured(`sessionkit: engine ${JSON.stringify(engine)} is not available in this version`)
  }
}
