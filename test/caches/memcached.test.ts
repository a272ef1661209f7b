/**
 * The Memcached cache (src/caches/memcached.ts) on real memcached servers of the test's own:
 * the cache contract, pymemcache's server choice (rendezvous hashing with MurmurHash3) checked
 * against pymemcache itself, entries shared with pymemcache's HashClient over three servers,
 * compare-and-set, locks, and a server that goes down (503, logged once) and comes back.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { capturingLogger } from 'sessionkit/testing'
import { createSessions } from 'sessionkit'
import { memcachedCache, murmur3, rendezvousNode } from '../../src/caches/memcached.ts'
import { describeCacheContract } from '../helpers/cache-contract.ts'
import { memcachedAvailable, startMemcached } from '../helpers/memcached.ts'
import { PYTHON } from '../system/interop/django.ts'
import { underCI } from '../helpers/redis.ts'

const skip = memcachedAvailable()
const servers = skip ? [] : await startMemcached(3)
const pymemcache = spawnSync(PYTHON, ['-c', 'import pymemcache'], { encoding: 'utf8' }).status === 0
const pySkip = pymemcache ? false : underCI() ? false : `pymemcache not installed for ${PYTHON} (apt-get install -y python3-pymemcache)`

/** One raw text-protocol exchange with one server: what a `get` of `key` answers there. */
function rawGet(port: number, key: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    let reply = ''
    socket.on('connect', () => socket.write(`get ${key}\r\n`))
    socket.on('data', (d) => {
      reply += d.toString('latin1')
      if (reply.endsWith('END\r\n')) {
        socket.destroy()
        resolve(reply)
      }
    })
    socket.on('error', reject)
  })
}

/** The remaining TTL of `key` on a server, by memcached's meta command (`mg <key> t` → `HD t<seconds>`). */
function rawTtl(port: number, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.on('connect', () => socket.write(`mg ${key} t\r\n`))
    socket.on('data', (d) => {
      socket.destroy()
      const m = /t(-?\d+)/.exec(d.toString('latin1'))
      if (m) resolve(Number(m[1]))
      else reject(new Error(`no TTL for ${key}: ${d.toString('latin1')}`))
    })
    socket.on('error', reject)
  })
}

describeCacheContract('Memcached (one server of the test’s own)', () => {
  const prefix = `sk:${randomBytes(4).toString('hex')}:`
  return { cache: memcachedCache({ servers: servers[0]!.location, prefix }), ttlOf: (key) => rawTtl(servers[0]!.port, prefix + key) }
}, { skip: skip || false })
describeCacheContract('Memcached (three servers)', () => ({ cache: memcachedCache({ servers: servers.map((s) => s.location), prefix: `sk:${randomBytes(4).toString('hex')}:` }) }), { skip: skip || false })

describe('pymemcache’s server choice', { skip: pySkip }, () => {
  it('murmur3 gives pymemcache’s murmur3_32 for ASCII, Latin-1 and wider characters', () => {
    const inputs = ['', 'a', 'ab', 'abc', 'abcd', 'abcde', ':1:django.contrib.sessions.cachexfzpa45l5m1e7av5lepnm860mz7d2aoz', 'é', 'naïve café', '日本語', '😀', ...Array.from({ length: 200 }, (_, i) => randomBytes(i % 40).toString('base64'))]
    const run = spawnSync(PYTHON, ['-c', 'import json,sys\nfrom pymemcache.client.murmur3 import murmur3_32\nprint(json.dumps([murmur3_32(s) for s in json.load(sys.stdin)]))'], { input: JSON.stringify(inputs), encoding: 'utf8' })
    assert.equal(run.status, 0, run.stderr)
    assert.deepEqual(inputs.map((s) => murmur3(s)), JSON.parse(run.stdout))
  })

  it('picks the same server as pymemcache’s RendezvousHash for 3000 session keys over 1, 2, 3 and 5 servers', () => {
    const keys = Array.from({ length: 3000 }, () => `:1:django.contrib.sessions.cache${randomBytes(16).toString('hex')}`)
    const nodeSets = [['127.0.0.1:11211'], ['127.0.0.1:11211', '127.0.0.1:11212'], ['10.0.0.1:11211', '10.0.0.2:11211', '10.0.0.3:11211'], ['a:1', 'b:2', 'c:3', 'd:4', 'e:5']]
    const code = 'import json,sys\nfrom pymemcache.client.rendezvous import RendezvousHash\nd=json.load(sys.stdin)\nout=[]\nfor nodes in d["nodes"]:\n  h=RendezvousHash(nodes)\n  out.append([h.get_node(k) for k in d["keys"]])\nprint(json.dumps(out))'
    const run = spawnSync(PYTHON, ['-c', code], { input: JSON.stringify({ nodes: nodeSets, keys }), encoding: 'utf8' })
    assert.equal(run.status, 0, run.stderr)
    const python = JSON.parse(run.stdout) as string[][]
    nodeSets.forEach((nodes, i) => assert.deepEqual(keys.map((k) => rendezvousNode(nodes, k)), python[i], `nodes ${nodes.join(', ')}`))
    // Spread: each of three servers holds a share.
    const counts = new Map<string, number>()
    for (const k of keys) counts.set(rendezvousNode(nodeSets[2]!, k), (counts.get(rendezvousNode(nodeSets[2]!, k)) ?? 0) + 1)
    for (const n of counts.values()) assert.ok(n > 700, `uneven: ${JSON.stringify([...counts])}`)
  })
})

describe('Memcached shared with pymemcache over three servers', { skip: skip || pySkip }, () => {
  it('reads what pymemcache’s HashClient wrote and writes where it reads, each key on the server both pick', async () => {
    const cache = memcachedCache({ servers: servers.map((s) => s.location), prefix: '' })
    try {
      const keys = Array.from({ length: 60 }, (_, i) => `:1:django.contrib.sessions.cache${i}${randomBytes(12).toString('hex')}`)
      const code = `import json,sys
from pymemcache.client.hash import HashClient
d=json.load(sys.stdin)
c=HashClient(d["servers"], allow_unicode_keys=True, default_noreply=False)
for k in d["keys"][:30]: c.set(k, ("py:"+k).encode(), 60)
print(json.dumps([(c.get(k) or b"").decode() for k in d["keys"][30:]]))`
      // Node writes the second half first; Python writes the first half and reads the second.
      for (const k of keys.slice(30)) await cache.django.set(k, { bytes: Buffer.from(`node:${k}`), flags: 0 }, 60)
      const run = spawnSync(PYTHON, ['-c', code], { input: JSON.stringify({ servers: servers.map((s) => s.location), keys }), encoding: 'utf8' })
      assert.equal(run.status, 0, run.stderr)
      assert.deepEqual(JSON.parse(run.stdout), keys.slice(30).map((k) => `node:${k}`))
      for (const k of keys.slice(0, 30)) assert.equal((await cache.django.get(k))?.value.bytes.toString(), `py:${k}`)
      // And each entry sits on exactly the server rendezvous hashing names.
      const used = new Set<string>()
      for (const k of keys) {
        const home = cache.serverFor(k)
        used.add(home)
        for (const s of servers) {
          const reply = await rawGet(s.port, k)
          assert.equal(reply.startsWith('VALUE'), s.location === home, `${k} on ${s.location} (home ${home})`)
        }
      }
      assert.equal(used.size, 3, 'the keys spread over the three servers')
    } finally {
      await cache.close()
    }
  })
})

describe('Memcached cache behaviour', { skip: skip || false }, () => {
  it('replaceIf writes only over the value read, in one round trip after a read, and with a fresh gets otherwise', async () => {
    const prefix = `cas:${randomBytes(4).toString('hex')}:`
    const a = memcachedCache({ servers: servers[0]!.location, prefix })
    const b = memcachedCache({ servers: servers[0]!.location, prefix })
    try {
      await a.set('k', 'v1', 60)
      assert.equal(await a.get('k'), 'v1')
      assert.equal(await a.replaceIf('k', 'v1', 'v2', 60), true)
      assert.equal(await a.replaceIf('k', 'v1', 'v3', 60), false, 'the value changed since')
      assert.equal(await a.get('k'), 'v2')
      assert.equal(await a.replaceIf('k', 'v2', 'gone', 0), true, 'a ttl of 0 is a conditional delete')
      assert.equal(await a.has('k'), false)
      assert.equal(await a.replaceIf('k', 'v2', 'v4', 60), false, 'never resurrected')
      // Another process (b) read nothing: its replaceIf reads the token first (gets, then cas).
      await a.set('k', 'v5', 60)
      assert.equal(await b.replaceIf('k', 'v5', 'v6', 60), true)
      assert.equal(await a.replaceIf('k', 'v5', 'v7', 60), false, 'a’s remembered token is stale: refused')
      assert.equal(await a.get('k'), 'v6')
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('50 concurrent compare-and-set writers: exactly one wins each round', async () => {
    const cache = memcachedCache({ servers: servers.map((s) => s.location), prefix: `race:${randomBytes(4).toString('hex')}:` })
    try {
      for (let round = 0; round < 5; round++) {
        await cache.set('k', `base${round}`, 60)
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => cache.replaceIf('k', `base${round}`, `w${i}`, 60)))
        assert.equal(results.filter(Boolean).length, 1)
      }
    } finally {
      await cache.close()
    }
  })

  it('session locks: one holder at a time, released only by its holder', async () => {
    const cache = memcachedCache({ servers: servers[1]!.location, prefix: `lock:${randomBytes(4).toString('hex')}:` })
    try {
      const release = await cache.lock('s', { waitMs: 0, ttlMs: 5000 })
      await assert.rejects(cache.lock('s', { waitMs: 50, ttlMs: 5000 }), { code: 'ERR_SESSION_LOCKED' })
      await release()
      const again = await cache.lock('s', { waitMs: 0, ttlMs: 5000 })
      await again()
    } finally {
      await cache.close()
    }
  })

  it('a server that is down fails its keys with StoreUnavailable (503) fast, logged once; the others keep working; it comes back', async () => {
    const [victim] = await startMemcached(1)
    const logger = capturingLogger()
    const cache = memcachedCache({ servers: [servers[0]!.location, victim!.location], prefix: '', timeoutMs: 500, logger })
    try {
      const keys = Array.from({ length: 40 }, (_, i) => `down${i}${randomBytes(8).toString('hex')}`)
      const onVictim = keys.filter((k) => cache.serverFor(k) === victim!.location)
      const onOther = keys.filter((k) => cache.serverFor(k) !== victim!.location)
      assert.ok(onVictim.length > 0 && onOther.length > 0)
      await cache.set(onVictim[0]!, 'v', 60)
      await victim!.stop()
      const started = Date.now()
      for (const k of onVictim.slice(0, 5)) await assert.rejects(cache.get(k), { code: 'ERR_STORE_UNAVAILABLE', status: 503 })
      assert.ok(Date.now() - started < 5 * 2000, 'each failure within the timeout')
      assert.equal(await cache.get(onOther[0]!), null, 'the other server still answers')
      assert.equal(logger.errors.filter((m) => m.includes(victim!.location)).length, 1, `logged once: ${JSON.stringify(logger.errors)}`)
      await victim!.restart()
      assert.equal(await cache.get(onVictim[0]!), null, 'back, empty (memcached keeps nothing over a restart)')
      await cache.set(onVictim[0]!, 'again', 60)
      assert.equal(await cache.get(onVictim[0]!), 'again')
    } finally {
      await cache.close()
    }
  })

  it('refuses a server list it cannot use, naming it', () => {
    assert.throws(() => memcachedCache({ servers: [] }), /at least one host:port/)
    assert.throws(() => memcachedCache({ servers: 'unix:/tmp/m.sock' }), /UNIX sockets are not supported/)
    assert.throws(() => memcachedCache({ servers: 'host:99999' }), /host:port/)
  })
})

describe('cached_db over Memcached when Memcached is down', { skip: skip || false }, () => {
  for (const cacheFormat of ['signed', 'django'] as const) {
    it(`serves sessions from the database, logs the outage once, and uses the cache again when it is back (${cacheFormat} format)`, async () => {
      const [server] = await startMemcached(1)
      const logger = capturingLogger()
      const sessions = createSessions({
        secretKey: 'memcached-down-secret',
        engine: 'cached_db',
        databaseUrl: 'sqlite::memory:',
        cacheFormat,
        logger,
        caches: { default: memcachedCache({ servers: server!.location, timeoutMs: 300 }) },
      })
      try {
        await sessions.ready()
        const s = sessions.session()
        s.set('user', 'alice')
        await s.save()
        const key = s.sessionKey!
        await server!.stop()
        for (let i = 0; i < 3; i++) {
          const again = sessions.session(key)
          await again.load()
          assert.equal(again.get('user'), 'alice', 'served from the database')
        }
        const changed = sessions.session(key)
        await changed.load()
        changed.set('seen', true)
        await changed.save()
        assert.equal(logger.errors.filter((m) => /the cache failed/.test(m)).length, 1, JSON.stringify(logger.errors))
        await server!.restart()
        const engine = sessions.engine as unknown as { repairStale(): Promise<void> }
        await engine.repairStale()
        const back = sessions.session(key)
        await back.load()
        assert.deepEqual(Object.fromEntries(back.entries()), { user: 'alice', seen: true })
      } finally {
        await sessions.close()
      }
    })
  }
})

describe('Memcached errors that are not outages', { skip: skip || false }, () => {
  it('a value over memcached’s item size fails that save (503) without marking the server down or logging an outage', async () => {
    const logger = capturingLogger()
    const cache = memcachedCache({ servers: servers[0]!.location, prefix: `big:${randomBytes(4).toString('hex')}:`, logger })
    try {
      await assert.rejects(cache.set('k', 'x'.repeat(2 * 1024 * 1024), 60), { code: 'ERR_STORE_UNAVAILABLE' })
      assert.deepEqual(logger.errors, [])
      await cache.set('k', 'small', 60)
      assert.equal(await cache.get('k'), 'small')
    } finally {
      await cache.close()
    }
  })
})
