/**
 * Start the example: `npm start`, then open http://localhost:8000.
 *
 * Environment: EXAMPLE_FRAMEWORK (express, fastify, koa, hono, node or fetch; default express),
 * PORT (8000; 0 picks a free port), HOST (127.0.0.1), SECRET_KEY, DATABASE_URL
 * (default ./db.sqlite3), SESSION_ENGINE and the other SESSION_* settings read by
 * `fromEnv()`, EXAMPLE_USERNAME / EXAMPLE_PASSWORD (admin / password123).
 */
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fromEnv } from 'sessionkit'
import { createApp, DEFAULT_USERS, FRAMEWORKS, isFramework } from './app.js'

const env = process.env
const port = parsePort(env.PORT ?? '8000')
const host = env.HOST ?? '127.0.0.1'
const framework = env.EXAMPLE_FRAMEWORK || 'express'
if (!isFramework(framework)) {
  console.error(`sessionkit example: EXAMPLE_FRAMEWORK must be one of ${FRAMEWORKS.join(', ')}, got "${framework}"`)
  process.exit(1)
}

if (env.NODE_ENV === 'production' && !env.SECRET_KEY) {
  console.error('sessionkit example: SECRET_KEY must be set when NODE_ENV=production')
  process.exit(1)
}

const users =
  env.EXAMPLE_USERNAME !== undefined || env.EXAMPLE_PASSWORD !== undefined
    ? { [env.EXAMPLE_USERNAME ?? 'admin']: env.EXAMPLE_PASSWORD ?? 'password123' }
    : DEFAULT_USERS

const { app, close } = await createApp({ framework, settings: fromEnv(env), users })
const server = createServer(app)
try {
  server.listen(port, host)
  await once(server, 'listening')
} catch (error) {
  await close()
  throw error
}

const { address, family, port: actualPort } = server.address() as AddressInfo
const url = `http://${family === 'IPv6' ? `[${address}]` : address}:${actualPort}`
console.log(`sessionkit example listening on ${url} (${framework})`)

let stopping = false
function shutdown(signal: NodeJS.Signals): void {
  if (stopping) {
    console.error(`${signal} again: exiting without waiting`)
    process.exit(1)
  }
  stopping = true
  console.log(`${signal}: closing`)
  server.close(() => {
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error('sessionkit example: closing the session store failed', error)
        process.exit(1)
      },
    )
  })
  server.closeIdleConnections()
}
process.on('SIGINT', shutdown)
process.on('SIGTERM', shutdown)

function parsePort(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65535) {
    console.error(`sessionkit example: PORT must be an integer from 0 to 65535, got "${value}"`)
    process.exit(1)
  }
  return n
}
