/**
 * Django's SessionTestsMixin, run against every engine available in this build.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after } from 'node:test'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import { createSessions } from 'sessionkit'
import { describeEngine } from 'sessionkit/testing'
import { memoryCache } from '../src/drivers/memory.ts'
import { redisCache } from '../src/drivers/redis.ts'
import { deleteTestKeys, REDIS_URL, redisAvailable, uniquePrefix } from './helpers/redis.ts'

const dir = mkdtempSync(path.join(tmpdir(), 'sessionkit-conformance-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

describeEngine('db on SQLite', (settings) =>
  createSessions({ ...settings, engine: 'db', databaseUrl: `sqlite:${path.join(dir, `db-${n++}.sqlite3`)}` }),
)

describeEngine('db on SQLite in memory', (settings) => createSessions({ ...settings, engine: 'db', databaseUrl: 'sqlite::memory:' }))

describeEngine('signed_cookies', (settings) => createSessions({ ...settings, engine: 'signed_cookies' }), { stores: 'cookie' })

describeEngine('file', (settings) => createSessions({ ...settings, engine: 'file', filePath: mkdtempSync(path.join(dir, 'file-')) }))

describeEngine('cache on the in-process LRU', (settings) =>
  createSessions({ ...settings, engine: 'cache', caches: { default: memoryCache({ now: settings.now }) } }),
)

// The Redis clients belong to this file, not to the sessions: the suite's close() leaves them open.
const redisSkip = await redisAvailable()
const ioredis = redisSkip ? undefined : new Redis(REDIS_URL, { lazyConnect: true })
const nodeRedis = redisSkip ? undefined : createClient({ url: REDIS_URL })
if (ioredis && nodeRedis) {
  nodeRedis.on('error', () => undefined)
  await Promise.all([ioredis.connect(), nodeRedis.connect()])
}
after(async () => {
  if (ioredis) await deleteTestKeys(ioredis)
  await Promise.all([ioredis?.quit(), nodeRedis?.close()])
})

describeEngine(
  'cache on Redis (ioredis)',
  (settings) => createSessions({ ...settings, engine: 'cache', caches: { default: redisCache(ioredis!, { prefix: uniquePrefix('conformance') }) } }),
  { skip: redisSkip },
)

describeEngine(
  'cache on Redis (node-redis)',
  (settings) => createSessions({ ...settings, engine: 'cache', caches: { default: redisCache(nodeRedis!, { prefix: uniquePrefix('conformance') }) } }),
  { skip: redisSkip },
)
