/**
 * sessionkit: Django's session framework (`django.contrib.sessions`) for Node.js.
 *
 * ```ts
 * import { createSessions, fromEnv } from 'sessionkit'
 * import { sessions } from 'sessionkit/express'
 * ```
 */
export { Session, newSessionKey, mergeSessions, VALID_KEY_CHARS, TEST_COOKIE_NAME, TEST_COOKIE_VALUE, CREATED_KEY, EXPIRY_KEY } from './session.js'
export type { SessionData, SessionKey, SessionBackend, ExpiryOptions } from './session.js'
export { Sessions, createSessions, patchVary, NO_STORE } from './middleware.js'
export type { RequestSession, ResponseDecision } from './middleware.js'
export { resolveSettings, fromEnv, defaults, redactUrl } from './settings.js'
export type { Settings, EngineName, SameSite, Logger, SuspiciousEvent } from './settings.js'
export type { Engine, EngineContext, EngineFactory, SaveOptions, SessionMap, ClearProgress } from './engine.js'
export { isServerKey } from './engine.js'
export { createCodec, SESSION_STORE_SALT } from './codec.js'
export type { SessionCodec } from './codec.js'
export { JSONSerializer } from './serializers.js'
export type { Serializer } from './serializers.js'
export * from './errors.js'
export { memoryCache } from './drivers/memory.js'
export type { MemoryCacheOptions } from './drivers/memory.js'
export { redisCache, redisCacheFromUrl, CACHE_KEY_PREFIX } from './drivers/redis.js'
export type { RedisClient, RedisCacheOptions, RedisCacheFromUrlOptions } from './drivers/redis.js'
export type { SessionCache } from './cache.js'
export { sqlEngine, dbEngine, CLEAR_BATCH_SIZE } from './engines/db.js'
export type { SqlDriver, DbEngine, MigrateReport } from './engines/db.js'
export { postgresDriver } from './drivers/postgres.js'
export type { PostgresDriver, PostgresDriverOptions, PgPoolLike, PgClientLike } from './drivers/postgres.js'
export { mysqlDriver } from './drivers/mysql.js'
export type { MysqlDriver, MysqlDriverOptions, MysqlPoolLike, MysqlCallbackPoolLike } from './drivers/mysql.js'
export type { LoadedSession, SavedSession, LoadOptions, LockOptions, ReleaseLock } from './engine.js'
export { ConflictError } from './errors.js'
