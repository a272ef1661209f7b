/**
 * The Redis the tests use (127.0.0.1:6379), whether it is there, and tools for the Redis
 * tests: a unique key prefix per test and a client wrapper that records the commands sent.
 *
 * Absent Redis: the tests skip with a one-line notice, except under CI (`CI` set), where
 * they fail — a CI run that silently skips its Redis tests proves nothing.
 */
import { randomBytes } from 'node:crypto'
import net from 'node:net'

export const REDIS_HOST = '127.0.0.1'
export const REDIS_PORT = 6379
export const REDIS_URL = `redis://${REDIS_HOST}:${REDIS_PORT}`

/** Whether `CI` asks for every service-backed test to run. */
export function underCI(): boolean {
  const ci = process.env.CI
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false'
}

/** Send `PING` on a raw socket; `true` on `+PONG`, else why not. */
export function ping(host: string, port: number, timeoutMs = 1000): Promise<true | string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port })
    let reply = ''
    const done = (result: true | string) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(result)
    }
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs)
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1')
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') ? true : `answered ${JSON.stringify(reply.trim())}`)
    })
    socket.on('error', (error) => done(error.message))
  })
}

/**
 * Run `probe` until it resolves, at most `attempts` times half a second apart, and settle as its
 * last try did: a service on a loaded machine answers late, an absent one never answers.
 */
export async function retryProbe<T>(probe: () => Promise<T>, ok: (result: T) => boolean = () => true, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      const result = await probe()
      if (ok(result) || i >= attempts) return result
    } catch (error) {
      if (i >= attempts) throw error
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

let checked: Promise<string | false> | undefined

/**
 * `false` when Redis at 127.0.0.1:6379 answers PING, else the reason to skip (printed once as
 * a one-line notice). Under CI an absent Redis throws instead: the test file fails.
 */
export function redisAvailable(): Promise<string | false> {
  checked ??= retryProbe(() => ping(REDIS_HOST, REDIS_PORT, 2000), (result) => result === true).then((result) => {
    if (result === true) return false
    const reason = `Redis at ${REDIS_HOST}:${REDIS_PORT} does not answer PING (${result})`
    if (underCI()) throw new Error(`${reason}; CI is set, so the Redis tests must run, not skip`)
    console.warn(`# skipping the Redis tests: ${reason}`)
    return reason
  })
  return checked
}

/** The prefix of every key this test process writes under {@link uniquePrefix}. */
export const RUN_PREFIX = `sessionkit:test:${process.pid}:${randomBytes(4).toString('hex')}:`
let prefixes = 0

/** A key prefix no other test (or concurrent test run) uses; under {@link RUN_PREFIX}. */
export function uniquePrefix(label = 'test'): string {
  return `${RUN_PREFIX}${label}:${prefixes++}:`
}

/** Delete every key this process wrote under {@link RUN_PREFIX} (sessions live two weeks otherwise). */
export async function deleteTestKeys(client: { keys(pattern: string): Promise<string[]>; del(...keys: string[]): Promise<number> }): Promise<void> {
  const keys = await client.keys(`${RUN_PREFIX}*`)
  for (let i = 0; i < keys.length; i += 500) await client.del(...keys.slice(i, i + 500))
}

/** A client wrapped so that every method called through it is recorded. */
export interface Recorded<T> {
  client: T
  /** The methods called since the last `reset()`, in order, with their arguments: for ioredis and node-redis, one per Redis command. */
  calls: { method: string; args: unknown[] }[]
  /** Just the method names of `calls`. */
  names(): string[]
  reset(): void
}

/**
 * Wrap `client` in a proxy that records each method call. Properties and getters are read
 * on the client itself, so private fields (node-redis) keep working.
 */
export function recorded<T extends object>(client: T): Recorded<T> {
  const calls: { method: string; args: unknown[] }[] = []
  const proxy = new Proxy(client, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        calls.push({ method: String(property), args })
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
  return {
    client: proxy,
    calls,
    names: () => calls.map((c) => c.method),
    reset: () => void calls.splice(0),
  }
}
