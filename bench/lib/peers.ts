/**
 * The express-session stores, each set up as its README says, with the same tuning
 * sessionkit gets where there is a choice (SQLite in WAL mode with `synchronous = NORMAL`),
 * and their round trips counted by wrapping the store's methods.
 */
import path from 'node:path'
import session from 'express-session'
import type { Store } from 'express-session'
import type { ServerConfig } from './config.ts'
import { countMethods, STORE_KINDS, type Counters } from './counters.ts'
import type { PeerStore } from '../variants.ts'

export interface PeerSetup {
  store: Store
  close(): Promise<void>
}

export async function expressSessionStore(name: PeerStore, config: ServerConfig, counters: Counters): Promise<PeerSetup> {
  let setup: PeerSetup
  switch (name) {
    case 'MemoryStore':
      setup = { store: new session.MemoryStore(), close: async () => {} }
      break
    case 'memorystore': {
      const { default: memorystore } = await import('memorystore')
      const MemoryStore = memorystore(session)
      const store = new MemoryStore({ checkPeriod: 86_400_000 })
      setup = { store, close: async () => (store as unknown as { stopInterval(): void }).stopInterval() }
      break
    }
    case 'connect-redis': {
      const { createClient } = await import('redis')
      const { RedisStore } = await import('connect-redis')
      const client = createClient({ url: config.redisUrl })
      client.on('error', (error: Error) => console.error('[connect-redis client]', error.message))
      await client.connect()
      setup = { store: new RedisStore({ client, prefix: `${config.redisPrefix}cr:` }), close: async () => void (await client.quit()) }
      break
    }
    case 'better-sqlite3-session-store': {
      const { default: Database } = await import('better-sqlite3')
      const { default: sqliteStoreFactory } = await import('better-sqlite3-session-store')
      const db = new Database(path.join(config.tmpDir, 'peer.sqlite3'))
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      const SqliteStore = sqliteStoreFactory(session)
      setup = { store: new SqliteStore({ client: db, expired: { clear: true, intervalMs: 900_000 } }), close: async () => void db.close() }
      break
    }
    case 'connect-pg-simple': {
      const { default: pg } = await import('pg')
      const { default: connectPgSimple } = await import('connect-pg-simple')
      const pool = new pg.Pool({ connectionString: config.postgresUrl })
      const PgStore = connectPgSimple(session)
      const store = new PgStore({ pool, tableName: 'session', createTableIfMissing: true, pruneSessionInterval: false })
      setup = { store, close: async () => void (await pool.end()) }
      break
    }
    case 'session-file-store': {
      const { default: sessionFileStore } = await import('session-file-store')
      const FileStore = sessionFileStore(session)
      setup = { store: new FileStore({ path: path.join(config.tmpDir, 'sessions'), logFn: () => {} }), close: async () => {} }
      break
    }
  }
  countMethods(setup.store, STORE_KINDS, counters, 'listed')
  return setup
}
