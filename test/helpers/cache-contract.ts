/**
 * The contract every `SessionCache` driver passes (memory, Redis through ioredis and
 * node-redis, Redis Cluster): one suite, one `describe` per driver.
 */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { SessionCache } from '../../src/caches/cache.ts'

export interface CacheUnderTest {
  cache: SessionCache
  /** The remaining time to live of `key` in whole seconds (Redis `TTL`), where the driver can tell. */
  ttlOf?(key: string): Promise<number>
}

/** Register the contract for the caches `make` builds (a fresh, empty namespace per call). */
export function describeCacheContract(name: string, make: () => CacheUnderTest | Promise<CacheUnderTest>, options: { skip?: string | false } = {}): void {
  describe(`cache contract: ${name}`, { skip: options.skip ?? false }, () => {
    const made: SessionCache[] = []
    after(async () => {
      // The suite deletes what it wrote; the caches themselves belong to the caller.
      await Promise.all(made.map((c) => Promise.all(KEYS.map((k) => c.delete(k)))))
    })
    async function setup(): Promise<CacheUnderTest> {
      const under = await make()
      made.push(under.cache)
      return under
    }

    it('get of a missing key gives null and has gives false', async () => {
      const { cache } = await setup()
      assert.equal(await cache.get('k1'), null)
      assert.equal(await cache.has('k1'), false)
    })

    it('set stores a value that get returns, overwriting any previous one', async () => {
      const { cache } = await setup()
      await cache.set('k1', 'one', 60)
      await cache.set('k1', 'two', 60)
      assert.equal(await cache.get('k1'), 'two')
      assert.equal(await cache.has('k1'), true)
    })

    it('add stores only when the key is free and reports whether it did', async () => {
      const { cache } = await setup()
      assert.equal(await cache.add('k1', 'first', 60), true)
      assert.equal(await cache.add('k1', 'second', 60), false)
      assert.equal(await cache.get('k1'), 'first')
    })

    it('replace stores only when the key exists and reports whether it did', async () => {
      const { cache } = await setup()
      assert.equal(await cache.replace('k1', 'ghost', 60), false)
      assert.equal(await cache.has('k1'), false, 'replace never creates')
      await cache.set('k1', 'old', 60)
      assert.equal(await cache.replace('k1', 'new', 60), true)
      assert.equal(await cache.get('k1'), 'new')
    })

    it('delete removes the key; deleting a missing key is not an error', async () => {
      const { cache } = await setup()
      await cache.set('k1', 'v', 60)
      await cache.delete('k1')
      assert.equal(await cache.get('k1'), null)
      await cache.delete('k1')
    })

    it('a time to live ≤ 0 writes nothing: set deletes, replace deletes, add only reports', async () => {
      const { cache } = await setup()
      await cache.set('k1', 'v', 60)
      await cache.set('k1', 'expired', 0)
      assert.equal(await cache.has('k1'), false, 'set with ttl 0 deletes')
      await cache.set('k2', 'v', 60)
      assert.equal(await cache.replace('k2', 'expired', -5), true)
      assert.equal(await cache.has('k2'), false, 'replace with a negative ttl deletes')
      assert.equal(await cache.replace('k2', 'expired', -5), false)
      assert.equal(await cache.add('k3', 'expired', 0), true)
      assert.equal(await cache.has('k3'), false, 'add with ttl 0 writes nothing')
      await cache.set('k3', 'live', 60)
      assert.equal(await cache.add('k3', 'expired', 0), false)
      assert.equal(await cache.get('k3'), 'live')
    })

    it('a non-finite time to live is refused', async () => {
      const { cache } = await setup()
      await assert.rejects(cache.set('k1', 'v', Number.NaN), TypeError)
      await assert.rejects(cache.add('k1', 'v', Number.POSITIVE_INFINITY), TypeError)
      assert.equal(await cache.has('k1'), false)
    })

    it('values round-trip byte for byte: non-ASCII, emoji, colons, 200 kB', async () => {
      const { cache } = await setup()
      const value = `.eJx:élève 日本語 😀 \u0000 \r\n:${'x'.repeat(200_000)}`
      await cache.set('k1', value, 60)
      assert.equal(await cache.get('k1'), value)
    })

    it('the time to live is whole seconds, fractions floored', async (t) => {
      const { cache, ttlOf } = await setup()
      if (!ttlOf) return t.skip('the driver does not expose remaining TTLs')
      await cache.set('k1', 'v', 300.9)
      const ttl = await ttlOf('k1')
      assert.ok(ttl >= 299 && ttl <= 300, `TTL ${ttl} is 300 s, give or take the test's own second`)
      await cache.add('k2', 'v', 42)
      assert.ok((await ttlOf('k2')) <= 42)
      await cache.set('k3', 'v', 10)
      await cache.replace('k3', 'v2', 1000)
      assert.ok((await ttlOf('k3')) > 900, 'replace sets a new TTL')
    })
  })
}

/** Every key the suite writes, deleted afterwards. */
const KEYS = ['k1', 'k2', 'k3']
