/**
 * A {@link SessionCache} on Memcached: one or more servers, each key on the server Django's
 * `PyMemcacheCache` picks for it, so that a Node app and a Django app sharing the servers see
 * each other's entries.
 *
 * A small client of our own over memcached's text protocol (the one pymemcache speaks), not a
 * package: no maintained Node client has what sessions need together — `gets`/`cas` for
 * compare-and-set saves, control of the flags word (pymemcache's `1` = pickle), and the server
 * choice of pymemcache's `HashClient` (rendezvous hashing with MurmurHash3). memjs writes flags
 * 0 and has no CAS; `memcached` hashes with ketama and owns the flags; `memcache-client` picks a
 * server at random. The protocol part here is about 200 lines.
 *
 * - Server choice: pymemcache's `RendezvousHash` — for each server `"<host>:<port>"`, the score
 *   `murmur3_32("<server>-<key>")`, the highest wins (ties: the greater name). Servers are
 *   Django's `LOCATION`: a list, or one string split on `;` or `,`.
 * - Expiry: whole seconds; above 30 days an absolute Unix time, as Django sends it (memcached
 *   reads larger numbers as timestamps). A time to live ≤ 0 writes nothing (the contract).
 * - Failures: a server that refuses the connection or does not answer within `timeoutMs` fails
 *   the command with `StoreUnavailable` (503), logged once per outage per server; its
 *   connection is dropped (its replies can no longer be matched) and made again on the next
 *   command. There is no failover to another server: that would split one session over two.
 */
import net from 'node:net'
import { ImproperlyConfigured, StoreUnavailable } from '../errors.js'
import { CACHE_KEY_PREFIX, ttlToSeconds, type SessionCache } from './cache.js'
import { checkLockOptions, lockToken, pollLock, type LockOptions, type ReleaseLock } from '../lock.js'
import type { Logger } from '../settings.js'
import type { DjangoCacheStore } from './django.js'

/** Options of {@link memcachedCache}. */
export interface MemcachedCacheOptions {
  /**
   * The servers, as Django's `LOCATION`: `'127.0.0.1:11211'`, `['10.0.0.1:11211', '10.0.0.2:11211']`
   * or `'a:11211;b:11211'`. A host without a port uses 11211; IPv6 as `[::1]:11211`.
   */
  servers: string | readonly string[]
  /** Put in front of every session key in sessionkit's own format. Default `'django.contrib.sessions.cache'`. */
  prefix?: string
  /** How long a connection attempt, and then each command, may take, in milliseconds. Default `2000`. */
  timeoutMs?: number
  /** Where a server that stops answering is reported, once per outage. Default: not reported (commands still fail). */
  logger?: Logger
}

/** One entry as `gets` returns it. */
interface Entry {
  bytes: Buffer
  flags: number
  cas: string
}

type Reply = { kind: 'line'; line: string } | { kind: 'values'; entries: Map<string, Entry> }

interface Pending {
  /** `values` for get/gets (VALUE … END), `line` for everything else. */
  expects: 'line' | 'values'
  resolve(reply: Reply): void
  reject(error: Error): void
  timer: NodeJS.Timeout
}

/** memcached answered, with an error (`SERVER_ERROR object too large for cache`): the server is up. */
class ReplyError extends Error {}

/** memcached's longest relative expiry (30 days); Django switches to absolute times above it. */
const MAX_RELATIVE_EXPIRY = 60 * 60 * 24 * 30

// ---------------------------------------------------------------------------------- hashing

/**
 * pymemcache's `murmur3_32(data, seed=0)`, which reads `ord(c) & 0xff` of each character of a
 * Python `str` (so the low byte of each code point) and its length in characters.
 */
export function murmur3(data: string, seed = 0): number {
  const c1 = 0xcc9e2d51
  const c2 = 0x1b873593
  // Python iterates code points, not UTF-16 units; ASCII keys (the usual) need no conversion.
  const points = /[\ud800-\udfff]/.test(data) ? Array.from(data, (c) => c.codePointAt(0)!) : null
  const length = points ? points.length : data.length
  let h1 = seed >>> 0
  const roundedEnd = length & ~3
  const at = points ? (i: number) => points[i]! & 0xff : (i: number) => data.charCodeAt(i) & 0xff
  for (let i = 0; i < roundedEnd; i += 4) {
    let k1 = at(i) | (at(i + 1) << 8) | (at(i + 2) << 16) | (at(i + 3) << 24)
    k1 = Math.imul(k1, c1)
    k1 = (k1 << 15) | (k1 >>> 17)
    k1 = Math.imul(k1, c2)
    h1 ^= k1
    h1 = (h1 << 13) | (h1 >>> 19)
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0
  }
  let k1 = 0
  const tail = length & 3
  if (tail === 3) k1 = at(roundedEnd + 2) << 16
  if (tail >= 2) k1 |= at(roundedEnd + 1) << 8
  if (tail >= 1) {
    k1 |= at(roundedEnd)
    k1 = Math.imul(k1, c1)
    k1 = (k1 << 15) | (k1 >>> 17)
    k1 = Math.imul(k1, c2)
    h1 ^= k1
  }
  h1 ^= length
  h1 ^= h1 >>> 16
  h1 = Math.imul(h1, 0x85ebca6b)
  h1 ^= h1 >>> 13
  h1 = Math.imul(h1, 0xc2b2ae35)
  h1 ^= h1 >>> 16
  return h1 >>> 0
}

/**
 * The server pymemcache's `RendezvousHash.get_node` picks for `key`: the highest
 * `murmur3("<node>-<key>")`, a tie going to the greater node name.
 */
export function rendezvousNode(nodes: readonly string[], key: string): string {
  let best = -1
  let winner = ''
  for (const node of nodes) {
    const score = murmur3(`${node}-${key}`)
    if (score > best) {
      best = score
      winner = node
    } else if (score === best && node > winner) winner = node
  }
  return winner
}

/** A server of Django's `LOCATION` as pymemcache names it in the hash: `host:port` (`normalize_server_spec`). */
export function serverName(spec: string): { host: string; port: number; name: string } {
  const s = spec.trim()
  if (s === '' || s.startsWith('unix:') || s.startsWith('/')) {
    throw new ImproperlyConfigured(`sessionkit: memcached servers must be host:port, got ${JSON.stringify(spec)} (UNIX sockets are not supported)`)
  }
  let host: string
  let port = 11211
  if (!s.includes(':') || s.endsWith(']')) host = s
  else {
    const at = s.lastIndexOf(':')
    host = s.slice(0, at)
    port = Number(s.slice(at + 1))
  }
  if (host.startsWith('[')) host = host.replace(/^\[|\]$/g, '')
  if (!Number.isSafeInteger(port) || port < 1 || port > 65535 || host === '') {
    throw new ImproperlyConfigured(`sessionkit: memcached servers must be host:port, got ${JSON.stringify(spec)}`)
  }
  return { host, port, name: `${host}:${port}` }
}

// ---------------------------------------------------------------------------------- one server

/** A connection to one server, with its replies matched to requests in order (pipelined). */
class Server {
  readonly name: string
  private socket: net.Socket | null = null
  private connecting: Promise<net.Socket> | null = null
  private buffer: Buffer = Buffer.alloc(0)
  private readonly queue: Pending[] = []
  private down = false
  private closed = false

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly timeoutMs: number,
    private readonly logger: Logger | undefined,
  ) {
    this.name = `${host}:${port}`
  }

  private fail(error: Error): void {
    if (!this.down && !this.closed) {
      this.down = true
      this.logger?.error(`Memcached at ${this.name} is unreachable: ${error.message}`)
    }
  }

  private connect(): Promise<net.Socket> {
    if (this.socket) return Promise.resolve(this.socket)
    this.connecting ??= new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port })
      socket.setNoDelay(true)
      const timer = setTimeout(() => socket.destroy(new Error(`no connection within ${this.timeoutMs} ms`)), this.timeoutMs)
      socket.once('connect', () => {
        clearTimeout(timer)
        this.socket = socket
        this.connecting = null
        resolve(socket)
      })
      socket.on('data', (chunk: Buffer) => this.receive(chunk))
      socket.once('close', () => {
        clearTimeout(timer)
        if (this.socket === socket) this.socket = null
        this.connecting = null
        this.buffer = Buffer.alloc(0)
        this.abortAll(new Error('the connection closed'))
      })
      socket.on('error', (error) => {
        clearTimeout(timer)
        this.connecting = null
        reject(error) // before the connection; afterwards 'close' follows and fails what waits
      })
    })
    return this.connecting
  }

  /** Fail every request waiting on this connection (its replies are lost). */
  private abortAll(error: Error): void {
    for (const p of this.queue.splice(0)) {
      clearTimeout(p.timer)
      p.reject(error)
    }
  }

  /** Send one command (and its data block); resolves with its reply. */
  async command(line: string, data: Buffer | null, expects: 'line' | 'values'): Promise<Reply> {
    if (this.closed) throw new StoreUnavailable(`sessionkit: the Memcached cache is closed`)
    let socket: net.Socket
    try {
      socket = await this.connect()
    } catch (error) {
      this.fail(error as Error)
      throw new StoreUnavailable(`sessionkit: cannot connect to Memcached at ${this.name}: ${(error as Error).message}`, { cause: error })
    }
    try {
      const reply = await new Promise<Reply>((resolve, reject) => {
        const timer = setTimeout(() => {
          // A reply that never came: nothing after it can be matched any more.
          socket.destroy()
          reject(new Error(`no answer within ${this.timeoutMs} ms`))
        }, this.timeoutMs)
        this.queue.push({ expects, resolve, reject, timer })
        socket.write(data ? Buffer.concat([Buffer.from(`${line}\r\n`, 'latin1'), data, Buffer.from('\r\n')]) : `${line}\r\n`)
      })
      if (this.down) {
        this.down = false
        this.logger?.warn(`Memcached at ${this.name} answers again`)
      }
      return reply
    } catch (error) {
      if (!(error instanceof ReplyError)) this.fail(error as Error)
      throw new StoreUnavailable(`sessionkit: Memcached at ${this.name} failed: ${(error as Error).message}`, { cause: error })
    }
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk
    while (this.queue.length) {
      const head = this.queue[0]!
      const reply = head.expects === 'line' ? this.parseLine() : this.parseValues()
      if (reply === null) return
      this.queue.shift()
      clearTimeout(head.timer)
      if (reply.kind === 'line' && /^(ERROR|CLIENT_ERROR|SERVER_ERROR)/.test(reply.line)) head.reject(new ReplyError(`memcached answered ${reply.line}`))
      else head.resolve(reply)
    }
  }

  private parseLine(): Reply | null {
    const end = this.buffer.indexOf('\r\n')
    if (end < 0) return null
    const line = this.buffer.subarray(0, end).toString('latin1')
    this.buffer = this.buffer.subarray(end + 2)
    return { kind: 'line', line }
  }

  /** `VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n` … `END\r\n`, or an error line. */
  private parseValues(): Reply | null {
    const entries = new Map<string, Entry>()
    let at = 0
    for (;;) {
      const end = this.buffer.indexOf('\r\n', at)
      if (end < 0) return null
      const line = this.buffer.subarray(at, end).toString('latin1')
      if (line === 'END') {
        this.buffer = this.buffer.subarray(end + 2)
        return { kind: 'values', entries }
      }
      const m = /^VALUE (\S+) (\d+) (\d+)(?: (\d+))?$/.exec(line)
      if (!m) {
        this.buffer = this.buffer.subarray(end + 2)
        return { kind: 'line', line }
      }
      const size = Number(m[3])
      const start = end + 2
      if (this.buffer.length < start + size + 2) return null
      entries.set(m[1]!, { bytes: Buffer.from(this.buffer.subarray(start, start + size)), flags: Number(m[2]), cas: m[4] ?? '' })
      at = start + size + 2
    }
  }

  close(): void {
    this.closed = true
    this.socket?.end()
    this.socket?.destroy()
    this.abortAll(new Error('the cache was closed'))
  }
}

// ---------------------------------------------------------------------------------- the cache

/** Memcached keys: at most 250 bytes, no whitespace or control characters. */
function checkKey(key: string): void {
  if (Buffer.byteLength(key) > 250 || /[\x00-\x20\x7f]/.test(key)) {
    throw new StoreUnavailable('sessionkit: a Memcached key must be at most 250 bytes without spaces or control characters')
  }
}

/** Django's `get_backend_timeout`: whole seconds, absolute beyond 30 days. `ttl` > 0. */
function exptime(ttl: number): number {
  return ttl > MAX_RELATIVE_EXPIRY ? Math.floor(Date.now() / 1000) + ttl : ttl
}

/** The part of a Memcached cache the Django format and the tests use: commands on exact keys. */
export interface MemcachedCache extends SessionCache {
  readonly django: DjangoCacheStore
  replaceIf(key: string, expected: string, value: string, ttlSeconds: number): Promise<boolean>
  lock(key: string, options: LockOptions): Promise<ReleaseLock>
  /** The server `key` (an exact key, as stored) lives on: `host:port`. */
  serverFor(key: string): string
}

/**
 * A session cache on Memcached. In sessionkit's format (the default) entries hold the signed
 * session string under `<prefix><session key>` with flags 0; its `django` store holds
 * Django's entries (exact keys, pickled bytes, pymemcache's flags) for `cacheFormat: 'django'`.
 * Updates are compare-and-set with `gets`/`cas`: one round trip when this process read the
 * entry last, two otherwise.
 *
 * @example
 * ```ts
 * createSessions({ engine: 'cache', caches: { default: memcachedCache({ servers: ['127.0.0.1:11211'] }) }, … })
 * ```
 * Django: `django.core.cache.backends.memcached.PyMemcacheCache` with the same `LOCATION`.
 */
export function memcachedCache(options: MemcachedCacheOptions): MemcachedCache {
  if (options === null || typeof options !== 'object') throw new ImproperlyConfigured('sessionkit: memcachedCache() takes { servers, … }')
  const list = typeof options.servers === 'string' ? options.servers.split(/[;,]/) : options.servers
  if (!Array.isArray(list) || list.length === 0) throw new ImproperlyConfigured('sessionkit: memcachedCache servers must name at least one host:port')
  const timeoutMs = options.timeoutMs ?? 2000
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new ImproperlyConfigured(`sessionkit: memcachedCache timeoutMs must be a whole number of milliseconds > 0, got ${String(timeoutMs)}`)
  const prefix = options.prefix ?? CACHE_KEY_PREFIX
  if (typeof prefix !== 'string') throw new ImproperlyConfigured(`sessionkit: the Memcached cache prefix must be a string, got ${typeof prefix}`)
  const servers = new Map<string, Server>()
  for (const spec of list) {
    const { host, port, name } = serverName(String(spec))
    if (!servers.has(name)) servers.set(name, new Server(host, port, timeoutMs, options.logger))
  }
  const names = [...servers.keys()]
  const serverFor = (key: string): string => (names.length === 1 ? names[0]! : rendezvousNode(names, key))
  const server = (key: string): Server => {
    checkKey(key)
    return servers.get(serverFor(key))!
  }

  async function gets(key: string): Promise<Entry | null> {
    const reply = await server(key).command(`gets ${key}`, null, 'values')
    if (reply.kind !== 'values') throw new StoreUnavailable(`sessionkit: Memcached answered ${reply.line} to gets`)
    return reply.entries.get(key) ?? null
  }
  /** A storage command; the reply word (`STORED`, `NOT_STORED`, `EXISTS`, `NOT_FOUND`). */
  async function store(cmd: 'set' | 'add' | 'replace' | 'cas', key: string, bytes: Buffer, flags: number, exp: number, cas?: string): Promise<string> {
    const reply = await server(key).command(`${cmd} ${key} ${flags} ${exp} ${bytes.length}${cas ? ` ${cas}` : ''}`, bytes, 'line')
    return (reply as { line: string }).line
  }
  async function remove(key: string): Promise<boolean> {
    const reply = await server(key).command(`delete ${key}`, null, 'line')
    return (reply as { line: string }).line === 'DELETED'
  }
  /** Compare-and-set on the cas token: `true` when stored; a ttl ≤ 0 stores it already expired (a conditional delete). */
  async function casWrite(key: string, bytes: Buffer, flags: number, ttl: number, cas: string): Promise<boolean> {
    return (await store('cas', key, bytes, flags, ttl > 0 ? exptime(ttl) : -1, cas)) === 'STORED'
  }

  // What this process read last per key, for one-round-trip compare-and-set (bounded, oldest first out).
  const lastRead = new Map<string, { value: string; cas: string }>()
  const remember = (key: string, value: string, cas: string): void => {
    lastRead.delete(key)
    lastRead.set(key, { value, cas })
    if (lastRead.size > 10_000) lastRead.delete(lastRead.keys().next().value!)
  }

  const django: DjangoCacheStore = {
    kind: 'memcached',
    async get(key) {
      const entry = await gets(key)
      return entry && { value: { bytes: entry.bytes, flags: entry.flags }, version: `${entry.cas}:${entry.flags}:${entry.bytes.toString('latin1')}` }
    },
    async set(key, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      if (ttl <= 0) await remove(key)
      else if ((await store('set', key, value.bytes, value.flags, exptime(ttl))) !== 'STORED') await remove(key) // Django: never keep the old value
    },
    async add(key, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      if (ttl <= 0) return (await gets(key)) === null
      return (await store('add', key, value.bytes, value.flags, exptime(ttl))) === 'STORED'
    },
    /** One `cas` on the token inside the version (`<cas>:<flags>:<bytes>`). */
    async replaceIf(key, version, value, ttlSeconds) {
      return casWrite(key, value.bytes, value.flags, ttlToSeconds(ttlSeconds), version.slice(0, version.indexOf(':')))
    },
    valueOf(version) {
      const [, flags] = version.split(':', 2)
      return { flags: Number(flags), bytes: Buffer.from(version.slice(version.indexOf(':', version.indexOf(':') + 1) + 1), 'latin1') }
    },
    versionOf: () => null,
    async delete(key) {
      await remove(key)
    },
    async has(key) {
      return (await gets(key)) !== null
    },
  }

  let closing: Promise<void> | null = null
  const cache: MemcachedCache = {
    name: 'memcached',
    django,
    serverFor,
    async get(key) {
      const entry = await gets(prefix + key)
      if (entry === null) return null
      const value = entry.bytes.toString('utf8')
      remember(key, value, entry.cas)
      return value
    },
    async set(key, value, ttlSeconds) {
      await django.set(prefix + key, { bytes: Buffer.from(value, 'utf8'), flags: 0 }, ttlSeconds)
    },
    async add(key, value, ttlSeconds) {
      return django.add(prefix + key, { bytes: Buffer.from(value, 'utf8'), flags: 0 }, ttlSeconds)
    },
    async replace(key, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      if (ttl <= 0) return remove(prefix + key)
      return (await store('replace', prefix + key, Buffer.from(value, 'utf8'), 0, exptime(ttl))) === 'STORED'
    },
    async replaceIf(key, expected, value, ttlSeconds) {
      const ttl = ttlToSeconds(ttlSeconds)
      let seen = lastRead.get(key)
      if (seen?.value !== expected) {
        const entry = await gets(prefix + key)
        if (entry === null) return false
        seen = { value: entry.bytes.toString('utf8'), cas: entry.cas }
        if (seen.value !== expected) return false
      }
      lastRead.delete(key)
      return casWrite(prefix + key, Buffer.from(value, 'utf8'), 0, ttl, seen.cas)
    },
    /**
     * `add <prefix>lock:<key>` holding `<token> <expires at, ms>`, polled until `waitMs`. memcached
     * expires entries in whole seconds, so the lock's own deadline (milliseconds) decides: a lock
     * past it is taken over with a `cas` (atomic, one winner). Released by a `cas` on the
     * holder's token, so only its holder removes it.
     */
    async lock(key, lockOptions) {
      const { waitMs, ttlMs } = checkLockOptions(lockOptions)
      const lockKey = `${prefix}lock:${key}`
      const token = lockToken()
      const ttl = Math.ceil(ttlMs / 1000) + 1
      const value = () => Buffer.from(`${token} ${Date.now() + ttlMs}`, 'latin1')
      await pollLock(async () => {
        if ((await store('add', lockKey, value(), 0, exptime(ttl))) === 'STORED') return true
        const held = await gets(lockKey)
        if (held === null) return false // released meanwhile: the next attempt adds it
        const expiresAt = Number(held.bytes.toString('latin1').split(' ')[1])
        return !(expiresAt > Date.now()) && casWrite(lockKey, value(), 0, ttl, held.cas)
      }, waitMs)
      return async () => {
        const entry = await gets(lockKey)
        if (entry !== null && entry.bytes.toString('latin1').startsWith(`${token} `)) await casWrite(lockKey, entry.bytes, 0, 0, entry.cas)
      }
    },
    async delete(key) {
      lastRead.delete(key)
      await remove(prefix + key)
    },
    async has(key) {
      return (await gets(prefix + key)) !== null
    },
    /** Every server answers `version`; rejects naming the first that does not. */
    async ready() {
      await Promise.all([...servers.values()].map((s) => s.command('version', null, 'line')))
    },
    close() {
      closing ??= Promise.resolve().then(() => {
        for (const s of servers.values()) s.close()
      })
      return closing
    },
  }
  return cache
}
