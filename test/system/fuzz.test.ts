/**
 * Fuzzing (checklist §4), the quick run: about 1 000 fast-check cases per target in `npm test`;
 * `npm run fuzz` runs the same targets with 100 000 (`--cases N`). The only outcomes
 * allowed are a value or a typed `SessionError`; each target also checks that every kind of
 * outcome came up (a run that never reached the store proves nothing about it).
 *
 * Beside the targets, the fixed worst cases: a decompression bomb measured in a fresh
 * process (time and peak memory), a bomb under a bad signature (never inflated), and JSON
 * nested 100 000 levels deep.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { fileURLToPath } from 'node:url'
import { deflateSync } from 'node:zlib'
import { describe, it } from 'node:test'
import { createCodec, createSessions, resolveSettings, SESSION_STORE_SALT } from 'sessionkit'
import { b64Encode, loads, TimestampSigner } from 'sessionkit/signing'
import { deepJson, targets } from '../helpers/fuzz-targets.ts'

const CASES = 1000
const SECRET = 'fuzz-test-secret-0123456789abcdefghijklmnopqrstuvwxyz'
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

describe('fuzzing, 1 000 cases per target', () => {
  for (const target of targets) {
    it(target.name, { timeout: 60_000 }, async (t) => {
      const outcomes = await target.run(CASES)
      t.diagnostic(JSON.stringify(outcomes))
    })
  }
})

/** Runs in a fresh process: builds a bomb in 1 MiB steps, then decodes it, measuring time and peak RSS of each decoder. */
const BOMB_CHILD = `
import { once } from 'node:events'
import { createDeflate } from 'node:zlib'
import { createCodec, resolveSettings, SESSION_STORE_SALT } from 'sessionkit'
import { b64Encode, loads, TimestampSigner } from 'sessionkit/signing'
const size = Number(process.argv[1])
const deflate = createDeflate({ level: 9 })
const chunks = []
deflate.on('data', (c) => chunks.push(c))
const step = Buffer.alloc(1 << 20, 0x41)
deflate.write('{"a":"')
for (let left = size; left > 0; left -= step.length) {
  if (!deflate.write(left >= step.length ? step : step.subarray(0, left))) await once(deflate, 'drain')
}
deflate.end('"}')
await once(deflate, 'end')
const compressed = Buffer.concat(chunks)
const key = 'bomb-secret-0123456789abcdefghijklmnopqrstuvwxyz'
const signed = new TimestampSigner({ key, salt: SESSION_STORE_SALT }).sign('.' + b64Encode(compressed))
const codec = createCodec(resolveSettings({ secretKey: key, logger: { warn() {}, error() {} } }))
const measure = (decode) => {
  const peakBefore = process.resourceUsage().maxRSS
  const started = performance.now()
  const outcome = decode()
  return { ms: performance.now() - started, grewBytes: (process.resourceUsage().maxRSS - peakBefore) * 1024, outcome }
}
const results = {
  loads: measure(() => {
    try { loads(signed, { key, salt: SESSION_STORE_SALT }); return 'accepted' } catch (e) { return e.code + ' ' + (e.cause?.code ?? '') }
  }),
  codec: measure(() => 'map of ' + codec.decode(signed, 'bomb').size),
}
console.log(JSON.stringify({ inflatesTo: size, compressedBytes: compressed.length, ...results }))
`

describe('F4: decompression bombs', () => {
  const GIB = 1024 ** 3
  let measured: Record<string, { ms: number; grewBytes: number; outcome: string }> & { compressedBytes: number } | undefined
  const bombResult = () => {
    if (measured) return measured
    const child = spawnSync(
      process.execPath,
      ['--conditions=sessionkit-source', '--import', 'tsx', '--input-type=module', '-e', BOMB_CHILD, String(GIB)],
      { cwd: ROOT, encoding: 'utf8', timeout: 55_000 },
    )
    assert.equal(child.status, 0, child.stderr)
    measured = JSON.parse(child.stdout.trim().split('\n').at(-1)!)
    return measured!
  }

  for (const [target, name, cap, expected] of [
    ['loads', 'signing.loads (default cap)', 1024 * 1024, 'ERR_BAD_PAYLOAD ERR_BUFFER_TOO_LARGE'],
    ['codec', 'the server-side codec (db, file, cache)', 16 * 1024 * 1024, 'map of 0'],
  ] as const) {
    it(`F4: a validly signed payload of 1 MiB that inflates to 1 GiB is refused by ${name} in < 250 ms, peak memory growing < 2 × its ${cap / 1048576} MiB cap + the payload itself`, { timeout: 60_000 }, (t) => {
      const all = bombResult()
      const result = all[target]!
      t.diagnostic(JSON.stringify({ compressedBytes: all.compressedBytes, ...result }))
      assert.equal(result.outcome, expected)
      assert.ok(all.compressedBytes < 1.1 * 1024 * 1024, 'a ≈1 000:1 bomb')
      assert.ok(result.ms < 250, `took ${result.ms.toFixed(0)} ms`)
      assert.ok(result.grewBytes < 2 * cap + all.compressedBytes, `peak RSS grew by ${(result.grewBytes / 1048576).toFixed(1)} MiB`)
    })
  }

  it('F4: a bomb under a bad signature, another key or another salt is never inflated (zlib.inflateSync not called)', () => {
    const zlib = createRequire(import.meta.url)('node:zlib') as { inflateSync: (...args: unknown[]) => Buffer }
    const real = zlib.inflateSync
    let calls = 0
    zlib.inflateSync = (...args: unknown[]) => {
      calls++
      return real(...args)
    }
    syncBuiltinESMExports()
    try {
      const compressed = deflateSync(Buffer.alloc(64 * 1024 * 1024, 0x41))
      const good = new TimestampSigner({ key: SECRET, salt: SESSION_STORE_SALT }).sign('.' + b64Encode(compressed))
      const bad = [
        good.slice(0, -1) + (good.endsWith('A') ? 'B' : 'A'),
        new TimestampSigner({ key: 'another-secret-0123456789', salt: SESSION_STORE_SALT }).sign('.' + b64Encode(compressed)),
        new TimestampSigner({ key: SECRET, salt: 'another-salt' }).sign('.' + b64Encode(compressed)),
        '.' + b64Encode(compressed) + ':1r31eq:' + 'A'.repeat(43),
      ]
      const codec = createCodec(resolveSettings({ secretKey: SECRET, logger: { warn() {}, error() {} } }))
      for (const value of bad) {
        assert.throws(() => loads(value, { key: SECRET, salt: SESSION_STORE_SALT }), { code: 'ERR_BAD_SIGNATURE' })
        assert.equal(codec.decode(value, 'bomb').size, 0)
      }
      assert.equal(calls, 0, 'inflated before the signature was checked')
      assert.throws(() => loads(good, { key: SECRET, salt: SESSION_STORE_SALT }), { code: 'ERR_BAD_PAYLOAD' })
      assert.equal(calls, 1, 'the spy works: a good signature is inflated, once, up to the cap')
    } finally {
      zlib.inflateSync = real
      syncBuiltinESMExports()
    }
  })
})

describe('F5: hostile JSON, fixed worst cases', () => {
  const signer = new TimestampSigner({ key: SECRET, salt: SESSION_STORE_SALT })
  const codec = createCodec(resolveSettings({ secretKey: SECRET, logger: { warn() {}, error() {} } }))

  it('F5: JSON nested 100 000 levels ([[[…]]], {"a":{…}}, {"__proto__":{…}}) decodes without a crash or pollution; saving it is a typed error', async () => {
    const sessions = createSessions({ secretKey: SECRET, databaseUrl: 'sqlite::memory:', logger: { warn() {}, error() {} } })
    try {
      for (const [open, close] of [['[', ']'], ['{"a":', '}'], ['{"__proto__":', '}']]) {
        const json = `{"d":${deepJson(100_000, open!, close!, '{"polluted":1}')}}`
        const started = performance.now()
        const map = codec.decode(signer.sign('.' + b64Encode(deflateSync(json))), 'deep')
        assert.ok(performance.now() - started < 2000)
        assert.equal(map.size, 1)
        assert.equal(({} as Record<string, unknown>).polluted, undefined)
        const state = await sessions.start(undefined)
        state.session.set('d', map.get('d'))
        await assert.rejects(Promise.resolve(sessions.finish(state, 200)), (error: unknown) => (error as { code?: string }).code !== undefined)
      }
    } finally {
      await sessions.close()
    }
  })

  it('F5: huge numbers, -0, 2**53 + 1 and lone surrogates decode as JSON.parse reads them; __proto__ and constructor stay data', () => {
    const json = '{"big":1e400,"neg":-1e400,"z":-0,"unsafe":9007199254740993,"s":"\\ud800","__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}'
    const map = codec.decode(signer.sign(b64Encode(Buffer.from(json, 'latin1'))), 'numbers')
    assert.equal(map.get('big'), Infinity)
    assert.equal(map.get('neg'), -Infinity)
    assert.ok(Object.is(map.get('z'), -0))
    assert.equal(map.get('unsafe'), 9007199254740992)
    assert.equal(map.get('s'), '\ud800')
    assert.deepEqual(map.get('__proto__'), { polluted: 1 })
    assert.deepEqual(map.get('constructor'), { prototype: { polluted: 1 } })
    assert.equal(({} as Record<string, unknown>).polluted, undefined)
  })
})
