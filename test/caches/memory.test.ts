/**
 * The in-process LRU (`memoryCache`, Django's `LocMemCache`): the cache contract, eviction,
 * expiry by the injected clock.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { manualClock } from 'sessionkit/testing'
import { memoryCache } from '../../src/caches/memory.ts'
import { describeCacheContract } from '../helpers/cache-contract.ts'

describe('memoryCache: the in-process LRU', () => {
  it('keeps at most maxEntries, evicting the least recently used', async () => {
    const cache = memoryCache({ maxEntries: 3 })
    await cache.set('a', '1', 60)
    await cache.set('b', '2', 60)
    await cache.set('c', '3', 60)
    assert.equal(await cache.get('a'), '1') // a is now the most recently used; b the least
    await cache.set('d', '4', 60)
    assert.equal(await cache.has('b'), false, 'the least recently used entry is evicted')
    assert.deepEqual(await Promise.all(['a', 'c', 'd'].map((k) => cache.get(k))), ['1', '3', '4'])
  })

  it('counts a write as a use, and has() as none', async () => {
    const cache = memoryCache({ maxEntries: 2 })
    await cache.set('a', '1', 60)
    await cache.set('b', '2', 60)
    await cache.has('a')
    await cache.set('a', '1b', 60) // a rewritten: b is now the least recently used
    await cache.set('c', '3', 60)
    assert.equal(await cache.has('b'), false)
    assert.equal(await cache.get('a'), '1b')
  })

  it('expires an entry by the injected clock, exactly when its TTL runs out', async () => {
    const clock = manualClock()
    const cache = memoryCache({ now: clock })
    await cache.set('a', 'v', 10)
    clock.advance(9.999)
    assert.equal(await cache.get('a'), 'v')
    clock.advance(0.001)
    assert.equal(await cache.get('a'), null)
    assert.equal(await cache.has('a'), false)
    assert.equal(await cache.add('a', 'again', 10), true, 'an expired key is free for add')
    clock.advance(11)
    assert.equal(await cache.replace('a', 'x', 10), false, 'an expired key is missing for replace')
  })

  it('refuses a maxEntries that is not a whole number ≥ 1', () => {
    for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => memoryCache({ maxEntries }), { code: 'ERR_IMPROPERLY_CONFIGURED' })
    }
  })
})

describeCacheContract('memory', () => ({ cache: memoryCache({ now: manualClock() }) }))
