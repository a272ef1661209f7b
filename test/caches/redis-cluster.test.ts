/**
 * The cache engine on a real Redis Cluster, made for this file: six `redis-server`
 * processes on free loopback ports (three masters, three replicas), joined with
 * `redis-cli --cluster create`, killed afterwards whatever happens.
 *
 * Without `redis-server`/`redis-cli`, or when the cluster does not come up, the file skips
 * with a notice — except under CI (`CI` set), where it fails.
 */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { Cluster } from 'ioredis'
import { createCluster } from 'redis'
import { createSessions, type Settings } from 'sessionkit'
import { capturingLogger, describeEngine } from 'sessionkit/testing'
import { redisCache } from '../../src/caches/redis.ts'
import { describeCacheContract } from '../helpers/cache-contract.ts'
import { ping, recorded, underCI, uniquePrefix } from '../helpers/redis.ts'

const run = promisify(execFile)
const NODES = 6
/** The whole start-up (ports, servers, create, cluster_state:ok) must fit in this. */
const START_BUDGET_MS = 30_000

/** Every server this file started, from the moment it is spawned: killed on any way out. */
const spawned: ChildProcess[] = []
/** Their directories, removed on the way out too. */
const dirs: string[] = []

function killAll(): void {
  for (const server of spawned) if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL')
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
}

// Never leave servers behind: on exit, and on a signal (which skips 'exit'), even mid start-up.
process.once('exit', killAll)
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.once(signal, () => {
    killAll()
    process.exit(code)
  })
}

interface TestCluster {
  ports: number[]
  /** Kill every server (SIGKILL) and remove the directory; idempotent. */
  stop(): Promise<void>
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Six ports whose cluster bus ports (+10000) are free too, in 7101–7996. */
async function freePorts(): Promise<number[]> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const base = 7100 + 10 * Math.floor(Math.random() * 89)
    const ports = Array.from({ length: NODES }, (_, i) => base + 1 + i)
    const free = await Promise.all(ports.flatMap((p) => [portFree(p), portFree(p + 10_000)]))
    if (free.every(Boolean)) return ports
  }
  throw new Error('no six free loopback ports (with their bus ports) in 7101–7996')
}

async function until(what: string, deadline: number, check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function startCluster(): Promise<TestCluster> {
  const deadline = Date.now() + START_BUDGET_MS
  const dir = await mkdtemp(path.join(tmpdir(), 'sessionkit-redis-cluster-'))
  dirs.push(dir)
  const servers: ChildProcess[] = []
  let stopped = false
  const killNow = () => {
    for (const server of servers) if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL')
  }
  const stop = async () => {
    if (stopped) return
    stopped = true
    const exits = servers
      .filter((s) => s.exitCode === null && s.signalCode === null)
      .map((s) => new Promise<void>((resolve) => s.once('exit', () => resolve())))
    killNow()
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 5000))])
    rmSync(dir, { recursive: true, force: true })
  }
  const log = (port: number) => {
    try {
      return readFileSync(path.join(dir, `redis-${port}.log`), 'utf8').trim().split('\n').slice(-3).join(' | ')
    } catch {
      return '(no log)'
    }
  }
  try {
    const ports = await freePorts()
    for (const port of ports) {
      const server = spawn(
        'redis-server',
        [
          '--port', String(port),
          '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes',
          '--cluster-config-file', path.join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', '2000',
          '--dir', dir,
          '--logfile', path.join(dir, `redis-${port}.log`),
          '--save', '',
          '--appendonly', 'no',
          '--daemonize', 'no',
        ],
        { stdio: 'ignore' },
      )
      server.on('error', () => undefined) // reported by the ping wait below
      servers.push(server)
      spawned.push(server)
    }
    for (const [i, port] of ports.entries()) {
      await until(`redis-server on port ${port}`, deadline, async () => {
        if (servers[i]!.exitCode !== null) throw new Error(`redis-server on port ${port} exited: ${log(port)}`)
        return (await ping('127.0.0.1', port, 300)) === true
      })
    }
    const create = ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes']
    await run('redis-cli', create, { timeout: Math.max(1000, deadline - Date.now()) })
    for (const port of ports) {
      await until(`cluster_state:ok on port ${port}`, deadline, async () => {
        const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info'], { timeout: 2000 })
        return stdout.includes('cluster_state:ok')
      })
    }
    return { ports, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

const tools = ['redis-server', 'redis-cli'].filter((t) => spawnSync(t, ['--version']).status !== 0)
let skip: string | false = tools.length ? `${tools.join(' and ')} not installed` : false
let cluster: TestCluster | undefined
let ioCluster: Cluster | undefined
let nodeCluster: ReturnType<typeof createCluster> | undefined

if (!skip) {
  try {
    cluster = await startCluster()
    const [first] = cluster.ports
    ioCluster = new Cluster([{ host: '127.0.0.1', port: first! }], { lazyConnect: true, redisOptions: { connectTimeout: 2000 } })
    await ioCluster.connect()
    nodeCluster = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${first}` }] })
    nodeCluster.on('error', () => undefined)
    await nodeCluster.connect()
  } catch (error) {
    skip = `could not start a Redis Cluster: ${(error as Error).message}`
  }
}
if (skip) {
  ioCluster?.disconnect()
  await cluster?.stop()
  if (underCI()) throw new Error(`${skip}; CI is set, so the Redis Cluster tests must run`)
  console.warn(`# skipping the Redis Cluster tests: ${skip}`)
}

after(async () => {
  try {
    await Promise.all([ioCluster?.quit().catch(() => ioCluster?.disconnect()), nodeCluster?.close().catch(() => undefined)])
  } finally {
    await cluster?.stop()
  }
})

function sessionsOn(client: Cluster | NonNullable<typeof nodeCluster>, extra: Partial<Settings> = {}) {
  const prefix = uniquePrefix('cluster')
  const sessions = createSessions({
    secretKey: 'sessionkit-cluster-tests-secret-0123456789',
    engine: 'cache',
    logger: capturingLogger(),
    caches: { default: redisCache(client, { prefix }) },
    ...extra,
  })
  return { sessions, prefix }
}

describeEngine(
  'cache on Redis Cluster',
  (settings) => createSessions({ ...settings, engine: 'cache', caches: { default: redisCache(ioCluster!, { prefix: uniquePrefix('conformance') }) } }),
  { skip },
)

describeCacheContract(
  'Redis Cluster through ioredis',
  () => {
    const prefix = uniquePrefix('contract')
    return { cache: redisCache(ioCluster!, { prefix }), ttlOf: (key) => ioCluster!.ttl(prefix + key) }
  },
  { skip },
)

describeCacheContract('Redis Cluster through node-redis', () => ({ cache: redisCache(nodeCluster!, { prefix: uniquePrefix('contract') }) }), { skip })

describe('cache engine on Redis Cluster', { skip, timeout: 20_000 }, () => {
  it('sessions spread over the three masters, and each is found again by its key', async () => {
    const { sessions, prefix } = sessionsOn(ioCluster!)
    const keys: string[] = []
    for (let i = 0; i < 30; i++) {
      const session = sessions.session()
      session.set('i', i)
      await session.save()
      keys.push(session.sessionKey!)
    }
    const perMaster = await Promise.all(ioCluster!.nodes('master').map((node) => node.keys(`${prefix}*`)))
    assert.equal(perMaster.length, 3)
    assert.equal(perMaster.flat().length, 30)
    assert.ok(perMaster.filter((k) => k.length > 0).length >= 2, `keys per master: ${perMaster.map((k) => k.length).join(', ')}`)
    for (const [i, key] of keys.entries()) {
      const again = sessions.session(key)
      await again.load()
      assert.equal(again.get('i'), i)
    }
  })

  it('one command per operation through an ioredis Cluster client', async () => {
    const rec = recorded(ioCluster!)
    const { sessions } = sessionsOn(rec.client)
    const session = sessions.session()
    session.set('a', 1)
    rec.reset()
    await session.save()
    assert.deepEqual(rec.names(), ['set'])
    rec.reset()
    const again = sessions.session(session.sessionKey)
    await again.load()
    again.set('a', 2)
    await again.save()
    assert.deepEqual(rec.names(), ['get', 'eval'])
  })

  it('the TTL of the key is the expiry age, on whichever node holds it', async () => {
    const { sessions, prefix } = sessionsOn(ioCluster!)
    const session = sessions.session()
    session.setExpiry(600)
    await session.save()
    const ttl = await ioCluster!.ttl(prefix + session.sessionKey)
    assert.ok(ttl <= 600 && ttl >= 599, `TTL ${ttl}`)
  })

  it('a node-redis cluster client round-trips a session and reads what ioredis wrote', async () => {
    const { sessions, prefix } = sessionsOn(nodeCluster!)
    const session = sessions.session()
    session.update({ user: 'élève 😀' })
    await session.save()
    const again = sessions.session(session.sessionKey)
    await again.load()
    assert.equal(again.get('user'), 'élève 😀')
    const viaIo = createSessions({ ...sessions.settings, caches: { default: redisCache(ioCluster!, { prefix }) } })
    const third = viaIo.session(session.sessionKey)
    await third.load()
    assert.equal(third.get('user'), 'élève 😀')
    await third.destroy()
    assert.equal(await again.exists(session.sessionKey!), false)
  })
})
