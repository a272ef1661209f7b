/**
 * What the runner tells a server process (through `BENCH_CONFIG`, JSON), and the shared
 * constants: where the services are, where to put files, the secrets.
 */

export interface ServerConfig {
  /** A fresh directory for this server's files (SQLite databases, session files); removed after. */
  tmpDir: string
  redisUrl: string
  /** PostgreSQL, in the benchmark's own database (never the tests' `test`). */
  postgresUrl: string
  /** MariaDB/MySQL, in the benchmark's own database. */
  mysqlUrl: string
  /** Prefix of every Redis key this server writes; the runner deletes them afterwards. */
  redisPrefix: string
}

/** The Redis key prefix of everything the benchmark writes. */
export const REDIS_PREFIX = 'sessionkit-bench:'
/** The database the benchmark creates on PostgreSQL and MariaDB, apart from the tests'. */
export const BENCH_DATABASE = 'sessionkit_bench'

export const DEFAULT_SERVICES = {
  redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
  postgresAdminUrl: process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  postgresUrl: process.env.BENCH_PG_URL ?? `postgres://postgres@127.0.0.1:5432/${BENCH_DATABASE}`,
  mysqlAdminUrl: process.env.BENCH_MYSQL_ADMIN_URL ?? 'mysql://root@127.0.0.1:3306/test',
  mysqlUrl: process.env.BENCH_MYSQL_URL ?? `mysql://root@127.0.0.1:3306/${BENCH_DATABASE}`,
}

/** The signing secret of every variant (≥ 32 characters, as iron-session and @fastify/session require). */
export const SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz'

export function readServerConfig(): ServerConfig {
  const raw = process.env.BENCH_CONFIG
  if (!raw) throw new Error('bench: BENCH_CONFIG is not set; servers are started by run.ts')
  return JSON.parse(raw) as ServerConfig
}
