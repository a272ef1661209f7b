/**
 * sessionkit/signing and the JSON serializer against vectors made by real Django
 * (test/fixtures/django-vectors.json, written by test/fixtures/make-django-vectors.py),
 * plus a live round trip through /usr/bin/python3 + Django when it is installed.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { deflateSync } from 'node:zlib'
import {
  BadPayload,
  DEFAULT_MAX_DECOMPRESSED_BYTES,
  JSONSerializer,
  Signer,
  TimestampSigner,
  b62Decode,
  b62Encode,
  b64Decode,
  b64Encode,
  dumps,
  loads,
  saltedHmac,
} from 'sessionkit/signing'
import { createCodec, resolveSettings } from 'sessionkit'

// ------------------------------------------------------------------------------ fixtures

interface ReferenceVector {
  id: string
  salt: string
  data: Record<string, unknown>
  json: string
  signed: string
  compressed: boolean
  key?: string
  fallbackKeys?: string[]
  oldSigned?: string
}
interface SignerVector {
  key?: string
  keyHex?: string
  sep?: string
  salt?: string
  algorithm?: string
  value: string
  signed?: string
  signature?: string
  verifyWith?: { key: string; fallbackKeys: string[] }
}
interface SessionVector {
  name: string
  data?: Record<string, unknown>
  entries?: [string, unknown][]
  json: string
  dbSigned: string
  dbCompressed: boolean
  cookieSigned: string
  cookieCompressed: boolean
}
interface DecodeOnlyVector {
  name: string
  salt: string
  signed: string
  expected?: unknown
  refusedWith?: string
  python: string
}
interface RefusedVector {
  name: string
  value: string
  salt: string
  djangoError: string | null
  django32Accepts?: boolean
}
interface ExpiryVector {
  signed: string
  salt: string
  now: number
  maxAge: number
  djangoError: string | null
}
interface Vectors {
  secretKey: string
  now: number
  nowBase62: string
  saltedHmac: { keySalt: string; value: string; secret: string; algorithm: string; hex: string }[]
  reference: ReferenceVector[]
  signer: SignerVector[]
  sessions: SessionVector[]
  decodeOnly: DecodeOnlyVector[]
  refused: RefusedVector[]
  expiry: ExpiryVector[]
}

const V: Vectors = JSON.parse(readFileSync(new URL('./fixtures/django-vectors.json', import.meta.url), 'utf8'))
const SECRET = V.secretKey
const SESSION_SALT = 'django.contrib.sessions.SessionStore'
const COOKIE_SALT = 'django.contrib.sessions.backends.signed_cookies'
const at = (seconds: number) => () => seconds * 1000
const pinned = at(V.now)

/** The session data of a vector, as sessionkit holds it: a Map. */
const sessionMap = (v: SessionVector): Map<string, unknown> =>
  new Map(v.entries ?? Object.entries(v.data ?? {}))
/** The same data as JSON.parse returns it (digit keys first, as JS orders them). */
const plain = (v: SessionVector): unknown => JSON.parse(v.json)

const dumpsText = (value: unknown): string => JSONSerializer.dumps(value).toString('latin1')
const payloadOf = (signed: string): string => signed.split(':')[0]!

// ------------------------------------------------------------------------------ serializer

describe('JSONSerializer', () => {
  it('writes the same bytes as Python json.dumps for every session vector', () => {
    for (const v of V.sessions) {
      assert.equal(dumpsText(sessionMap(v)), v.json, v.name)
      if (v.data) assert.equal(dumpsText(v.data), v.json, `${v.name} (plain object)`)
    }
    for (const v of V.reference) assert.equal(dumpsText(v.data), v.json, v.id)
  })

  it('writes a Map as a JSON object in insertion order, digit keys included', () => {
    const m = new Map<string, unknown>([
      ['b', 1],
      ['1', new Map([['z', 1], ['0', 2]])],
      ['a', [new Map([['9', null]])]],
    ])
    assert.equal(dumpsText(m), '{"b":1,"1":{"z":1,"0":2},"a":[{"9":null}]}')
    assert.equal(dumpsText(new Map([['__proto__', 1]])), '{"__proto__":1}')
  })

  it('stringifies number, boolean and null Map keys as Python stringifies dict keys', () => {
    const m = new Map<unknown, unknown>([[0, 'int'], [true, 'bool'], [null, 'none'], [1.5, 'float']])
    assert.equal(dumpsText(m), '{"0":"int","true":"bool","null":"none","1.5":"float"}')
    assert.throws(() => JSONSerializer.dumps(new Map([[{}, 1]])), { name: 'TypeError' })
    assert.throws(() => JSONSerializer.dumps(new Map<unknown, unknown>([[1, 'a'], ['1', 'b']])), { name: 'TypeError' })
  })

  it('escapes U+007F, non-ASCII and astral characters as lowercase \\u escapes', () => {
    assert.equal(dumpsText('\x7f\xe9\u2028\ud83d\ude00\ufeff'), '"\\u007f\\u00e9\\u2028\\ud83d\\ude00\\ufeff"')
    assert.equal(dumpsText('\x00\x1f\n\t"\\/<>&'), '"\\u0000\\u001f\\n\\t\\"\\\\/<>&"')
    assert.equal(dumpsText('\ud800'), '"\\ud800"')
  })

  it('refuses values JSON cannot hold, naming the key path', () => {
    const cases: [unknown, RegExp][] = [
      [{ a: { b: [1, undefined] } }, /undefined at \$\["a"\]\["b"\]\[1\]/],
      [new Map([['f', () => 1]]), /a function at \$\["f"\]/],
      [{ s: Symbol('x') }, /a symbol at \$\["s"\]/],
      [{ n: [10n] }, /a BigInt at \$\["n"\]\[0\]/],
      [new Map([['x', new Map([['nan', NaN]])]]), /NaN at \$\["x"\]\["nan"\]/],
      [{ inf: -Infinity }, /-Infinity at \$\["inf"\]/],
      [{ set: new Set([1]) }, /a Set at \$\["set"\]/],
      [undefined, /undefined at \$/],
    ]
    for (const [value, message] of cases) {
      assert.throws(() => JSONSerializer.dumps(value), { name: 'TypeError', message })
    }
  })

  it('reads latin-1 JSON into plain objects and keeps "__proto__" as an own key', () => {
    const obj = JSONSerializer.loads(Buffer.from('{"__proto__":{"polluted":1},"e":"\\u00e9"}', 'latin1'))
    assert.ok(obj !== null && typeof obj === 'object')
    assert.ok(Object.hasOwn(obj, '__proto__'))
    assert.equal(Object.getPrototypeOf(obj), Object.prototype)
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined)
    assert.equal((obj as Record<string, unknown>)['e'], 'é')
  })
})

// ------------------------------------------------------------------------------ encodings

describe('base62 and base64', () => {
  it('round-trips base62 for ±10**10, 1620378259 and every integer in -100..99', () => {
    const values = [-(10 ** 10), 10 ** 10, 1620378259, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]
    for (let n = -100; n < 100; n++) values.push(n)
    for (const n of values) assert.equal(b62Decode(b62Encode(n)), n, String(n))
    assert.equal(b62Encode(V.now), V.nowBase62)
    assert.equal(b62Encode(0), '0')
    assert.equal(b62Encode(-61), '-z')
  })

  it('refuses base62 text outside the alphabet or beyond safe integers', () => {
    for (const s of ['', '-', '1r31eq!', '1.5', 'é', 'zzzzzzzzzzzz']) {
      assert.throws(() => b62Decode(s), { code: 'ERR_BAD_PAYLOAD' }, JSON.stringify(s))
    }
    assert.throws(() => b62Encode(1.5), { name: 'TypeError' })
  })

  it('writes URL-safe base64 without padding and reads it strictly', () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x00])
    assert.equal(b64Encode(bytes), '-_-_AA')
    assert.deepEqual(b64Decode('-_-_AA'), bytes)
    assert.equal(b64Encode(new Uint8Array([1, 2, 3])), 'AQID')
    for (const s of ['-_-_AA==', '+/+/AA', 'ab cd', 'abcde', 'ab\ncd']) {
      assert.throws(() => b64Decode(s), { code: 'ERR_BAD_PAYLOAD' }, JSON.stringify(s))
    }
  })
})

// ------------------------------------------------------------------------------ Signer

describe('saltedHmac and Signer', () => {
  it('computes Django salted_hmac (sha1 by default)', () => {
    for (const v of V.saltedHmac) {
      const hmac = v.algorithm === 'sha1' ? saltedHmac(v.keySalt, v.value, v.secret) : saltedHmac(v.keySalt, v.value, v.secret, v.algorithm)
      assert.equal(hmac.digest('hex'), v.hex)
    }
  })

  it('signs like Django Signer for every vector: separators, bytes key, sha512, salt', () => {
    for (const v of V.signer) {
      const key = v.keyHex !== undefined ? Buffer.from(v.keyHex, 'hex') : v.key!
      const signer = new Signer({
        key,
        ...(v.sep !== undefined && { sep: v.sep }),
        ...(v.salt !== undefined && { salt: v.salt }),
        ...(v.algorithm !== undefined && { algorithm: v.algorithm }),
      })
      if (v.signed !== undefined) {
        assert.equal(signer.sign(v.value), v.signed)
        assert.equal(signer.unsign(v.signed), v.value)
      }
      if (v.signature !== undefined) assert.equal(signer.signature(v.value), v.signature)
    }
  })

  it('refuses unsafe separators at construction', () => {
    for (const sep of ['', '-', 'abc', '=', '_', '[', 'A-z']) {
      assert.throws(() => new Signer({ key: 'k', sep }), { name: 'TypeError', message: /Unsafe Signer separator/ }, sep)
    }
    assert.doesNotThrow(() => new Signer({ key: 'k', sep: '.' }))
  })

  it('refuses a missing key and an unknown algorithm at construction', () => {
    assert.throws(() => new Signer({ key: '' }), { name: 'TypeError' })
    assert.throws(() => new Signer({ key: 'k', fallbackKeys: [''] }), { name: 'TypeError' })
    assert.throws(() => new Signer({ key: 'k', algorithm: 'sha-nothing' }), { name: 'TypeError' })
  })

  it('verifies with a fallback key but signs with the main key', () => {
    const old = V.signer.find((v) => v.verifyWith)!
    const rotated = new Signer(old.verifyWith!)
    assert.equal(rotated.unsign(old.signed!), old.value)
    assert.notEqual(rotated.sign(old.value), old.signed)
    assert.throws(() => new Signer({ key: old.verifyWith!.key }).unsign(old.signed!), { code: 'ERR_BAD_SIGNATURE' })
    assert.equal(rotated.signature(old.value, 'secret'), old.signed!.split(':')[1])

    const v8 = V.reference.find((v) => v.id === 'V8')!
    const signer = new TimestampSigner({ key: v8.key!, salt: v8.salt, fallbackKeys: v8.fallbackKeys!, now: pinned })
    assert.deepEqual(signer.unsignObject(v8.oldSigned!), v8.data)
    assert.equal(signer.signObject(new Map(Object.entries(v8.data)), { compress: true }), v8.signed)
  })

  it('refuses every single-character change of a signed value', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:'
    const cases = [
      { salt: 'django.core.signing', signed: V.reference[0]!.signed },
      { salt: SESSION_SALT, signed: V.reference[2]!.signed }, // compressed
    ]
    let tried = 0
    for (const { salt, signed } of cases) {
      const signer = new TimestampSigner({ key: SECRET, salt, now: pinned })
      assert.ok(signer.unsignObject(signed))
      for (let i = 0; i < signed.length; i++) {
        for (const c of alphabet) {
          if (c === signed[i]) continue
          const tampered = signed.slice(0, i) + c + signed.slice(i + 1)
          assert.throws(() => signer.unsignObject(tampered), { code: 'ERR_BAD_SIGNATURE' }, `${i}: ${tampered}`)
          tried++
        }
      }
    }
    assert.ok(tried > 10_000)
  })

  it('keeps a value signed for one salt from being accepted under another', () => {
    const a = new Signer({ key: SECRET, salt: 'one' })
    const b = new Signer({ key: SECRET, salt: 'two' })
    assert.notEqual(a.signature('hello'), b.signature('hello'))
    assert.throws(() => b.unsign(a.sign('hello')), { code: 'ERR_BAD_SIGNATURE' })
    // An empty salt means the class default, as in Django.
    assert.equal(new Signer({ key: 'predictable-secret', salt: '' }).sign('foo'), V.signer[0]!.signed)
  })

  it('refuses values without the separator or with a signature of another length', () => {
    const signer = new Signer({ key: SECRET })
    const signed = signer.sign('abc')
    assert.throws(() => signer.unsign('abc'), { code: 'ERR_BAD_SIGNATURE', message: 'No ":" found in value' })
    assert.throws(() => signer.unsign(signed + 'A'), { code: 'ERR_BAD_SIGNATURE' })
    assert.throws(() => signer.unsign(signed.slice(0, -1)), { code: 'ERR_BAD_SIGNATURE' })
    assert.throws(() => signer.unsign(signed + 'é'), { code: 'ERR_BAD_SIGNATURE' })
  })
})

// ------------------------------------------------------------------------------ TimestampSigner

describe('TimestampSigner', () => {
  it('accepts a signature up to maxAge seconds old and refuses an older one', () => {
    const signed = new TimestampSigner({ key: 'predictable-secret', now: at(123456789) }).sign('hello')
    const later = new TimestampSigner({ key: 'predictable-secret', now: at(123456800) })
    assert.equal(later.unsign(signed), 'hello')
    assert.equal(later.unsign(signed, 12), 'hello')
    assert.equal(later.unsign(signed, 11), 'hello')
    assert.throws(() => later.unsign(signed, 10), { code: 'ERR_SIGNATURE_EXPIRED', message: 'Signature age 11 > 10 seconds' })
  })

  it('applies the maxAge rule exactly as Django did on the expiry vectors', () => {
    for (const v of V.expiry) {
      const run = () => loads(v.signed, { key: SECRET, salt: v.salt, maxAge: v.maxAge, now: at(v.now) })
      if (v.djangoError === null) assert.doesNotThrow(run, JSON.stringify(v))
      else assert.throws(run, { code: 'ERR_SIGNATURE_EXPIRED' }, JSON.stringify(v))
    }
  })

  it('returns the signing time with the value', () => {
    const signer = new TimestampSigner({ key: SECRET, salt: COOKIE_SALT, now: () => V.now * 1000 + 999 })
    assert.deepEqual(signer.unsignWithTimestamp(signer.sign('x')), { value: 'x', timestamp: V.now })
    const v4 = V.reference.find((v) => v.id === 'V4')!
    assert.deepEqual(signer.unsignObjectWithTimestamp(v4.signed, { maxAge: 1 }), { value: v4.data, timestamp: V.now })
    // The age is measured in fractional seconds, as Django's time.time() - timestamp is.
    assert.throws(() => signer.unsignObjectWithTimestamp(v4.signed, { maxAge: 0.5 }), { code: 'ERR_SIGNATURE_EXPIRED' })
  })

  it('refuses a validly signed value that carries no timestamp with ERR_BAD_PAYLOAD', () => {
    const salt = 'django.core.signing.TimestampSigner'
    const plainSigned = new Signer({ key: SECRET, salt }).sign('no-timestamp')
    assert.throws(() => new TimestampSigner({ key: SECRET }).unsign(plainSigned), { code: 'ERR_BAD_PAYLOAD' })
  })
})

// ------------------------------------------------------------------------------ dumps / loads

describe('dumps and loads against Django', () => {
  it('reproduces V1–V8 byte for byte where Django did not compress', () => {
    for (const v of V.reference) {
      const key = v.key ?? SECRET
      const value = dumps(v.data, { key, salt: v.salt, compress: v.id !== 'V1', now: pinned })
      if (!v.compressed) assert.equal(value, v.signed, v.id)
      assert.deepEqual(loads(value, { key, salt: v.salt }), v.data, v.id)
    }
  })

  it('decodes every Django vector, compressed or not, to the same data', () => {
    for (const v of V.reference) {
      assert.deepEqual(loads(v.signed, { key: v.key ?? SECRET, salt: v.salt }), v.data, v.id)
    }
    for (const v of V.sessions) {
      assert.deepEqual(loads(v.dbSigned, { key: SECRET, salt: SESSION_SALT }), plain(v), v.name)
      assert.deepEqual(loads(v.cookieSigned, { key: SECRET, salt: COOKIE_SALT }), plain(v), v.name)
    }
  })

  it('encodes every session vector as Django does with the db and signed_cookies salts', () => {
    for (const [salt, pick] of [
      [SESSION_SALT, (v: SessionVector) => [v.dbSigned, v.dbCompressed] as const],
      [COOKIE_SALT, (v: SessionVector) => [v.cookieSigned, v.cookieCompressed] as const],
    ] as const) {
      const signer = new TimestampSigner({ key: SECRET, salt, now: pinned })
      for (const v of V.sessions) {
        const [django, compressed] = pick(v)
        const ours = signer.signObject(sessionMap(v), { compress: true })
        // Uncompressed: identical bytes. Compressed: Node's zlib may differ from Python's.
        if (!compressed) assert.equal(ours, django, v.name)
        else assert.ok(ours.startsWith('.'), `${v.name} should be compressed too`)
        assert.deepEqual(signer.unsignObject(ours), plain(v), v.name)
      }
    }
  })

  it('decodes floats, big ints and stringified keys written by Python, and refuses NaN', () => {
    for (const v of V.decodeOnly) {
      const run = () => loads(v.signed, { key: SECRET, salt: v.salt })
      if (v.refusedWith !== undefined) assert.throws(run, { code: v.refusedWith }, v.name)
      else {
        assert.deepEqual(run(), v.expected, v.name)
        assert.deepEqual(run(), JSON.parse(v.python), v.name)
      }
    }
  })

  it('refuses the tampered, other-salt and other-key values Django refuses', () => {
    for (const v of V.refused) {
      // Django 3.2 still accepted legacy SHA-1 signatures; 4.0+ and sessionkit do not.
      assert.equal(v.djangoError === null, v.django32Accepts === true, v.name)
      assert.throws(() => loads(v.value, { key: SECRET, salt: v.salt }), { code: 'ERR_BAD_SIGNATURE' }, v.name)
    }
  })

  it('refuses a decompression bomb quickly with ERR_BAD_PAYLOAD', () => {
    const json = Buffer.from(`{"a":"${'A'.repeat(50_000_000)}"}`, 'latin1')
    const bomb = deflateSync(json)
    const signer = new TimestampSigner({ key: SECRET, salt: SESSION_SALT })
    const signed = signer.sign('.' + b64Encode(bomb))
    const started = performance.now()
    assert.throws(
      () => signer.unsignObject(signed),
      (err: unknown) =>
        err instanceof BadPayload &&
        err.code === 'ERR_BAD_PAYLOAD' &&
        (err.cause as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE',
    )
    assert.ok(performance.now() - started < 1000, 'should stop inflating at the cap')
    assert.equal(DEFAULT_MAX_DECOMPRESSED_BYTES, 1048576)
  })

  it('accepts a payload past 1 MiB when maxDecompressedBytes allows it', () => {
    const big = { blob: 'x'.repeat(2 * 1048576) }
    const signed = dumps(big, { key: SECRET, compress: true })
    assert.throws(() => loads(signed, { key: SECRET }), { code: 'ERR_BAD_PAYLOAD' })
    assert.deepEqual(loads(signed, { key: SECRET, maxDecompressedBytes: 3 * 1048576 }), big)
    assert.deepEqual(loads(signed, { key: SECRET, maxDecompressedBytes: Infinity }), big)
    assert.throws(() => loads(signed, { key: SECRET, maxDecompressedBytes: 0 }), { name: 'TypeError' })
  })

  it('turns bad base64, zlib or JSON under a valid signature into ERR_BAD_PAYLOAD with a cause', () => {
    const signer = new TimestampSigner({ key: SECRET })
    const payloads = [
      'e30=', // padding
      'e3$0', // outside the alphabet
      '.' + b64Encode(Buffer.from('not zlib')),
      '.' + b64Encode(deflateSync(Buffer.from('{"a":')).subarray(0, 6)), // truncated stream
      b64Encode(Buffer.from('{"a":NaN}')),
      b64Encode(Buffer.from('')),
    ]
    for (const p of payloads) {
      assert.throws(() => signer.unsignObject(signer.sign(p)), { code: 'ERR_BAD_PAYLOAD' }, p)
    }
    try {
      signer.unsignObject(signer.sign(b64Encode(Buffer.from('{'))))
      assert.fail('should have thrown')
    } catch (err) {
      assert.ok(err instanceof BadPayload)
      assert.ok(err.cause instanceof SyntaxError)
    }
  })

  it('decodes hostile "__proto__" JSON without polluting Object.prototype', () => {
    const signer = new TimestampSigner({ key: SECRET, salt: SESSION_SALT })
    const signed = signer.sign(b64Encode(Buffer.from('{"__proto__":{"polluted":1}}')))
    const obj = signer.unsignObject(signed) as Record<string, unknown>
    assert.ok(Object.hasOwn(obj, '__proto__'))
    assert.deepEqual(Object.getOwnPropertyDescriptor(obj, '__proto__')?.value, { polluted: 1 })
    assert.equal(Object.getPrototypeOf(obj), Object.prototype)
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined)
    assert.equal(obj['polluted'], undefined)
  })
})

// ------------------------------------------------------------------------------ live Django

const PYTHON = '/usr/bin/python3'
const LIVE_SCRIPT = `
import json, sys
from django.conf import settings
settings.configure(SECRET_KEY="unused-the-key-is-passed-explicitly")
from django.core import signing
out = []
for r in json.load(sys.stdin):
    try:
        v = signing.loads(r["value"], key=r["key"], salt=r["salt"], max_age=r.get("maxAge"))
        out.append({"ok": True, "json": json.dumps(v, separators=(",", ":"))})
    except Exception as e:
        out.append({"ok": False, "error": type(e).__name__})
print(json.dumps(out))
`

describe('live round trip with Django', () => {
  it('loads values signed by sessionkit in real Django, and refuses tampered ones', (t) => {
    const probe = spawnSync(PYTHON, ['-c', 'import django'], { encoding: 'utf8' })
    if (probe.status !== 0) {
      if (process.env['CI']) assert.fail(`Django is required in CI (apt-get install -y python3-django): ${probe.stderr ?? probe.error}`)
      t.skip('Django not installed for /usr/bin/python3 (apt-get install -y python3-django); live round trip skipped')
      return
    }
    const key = 'sessionkit-live-κλειδί-🔑'
    const requests: { value: string; key: string; salt: string; maxAge?: number; expect: string | null }[] = []
    for (const salt of [SESSION_SALT, COOKIE_SALT]) {
      const signer = new TimestampSigner({ key, salt })
      for (const v of V.sessions) {
        const map = sessionMap(v)
        requests.push({ value: signer.signObject(map, { compress: true }), key, salt, maxAge: 60, expect: v.json })
        requests.push({ value: signer.signObject(map), key, salt, expect: v.json })
      }
    }
    const good = dumps({ x: 1 }, { key })
    requests.push({ value: dumps({ x: 1 }, { key, compress: true }), key, salt: 'django.core.signing', expect: '{"x":1}' })
    requests.push({ value: good.slice(0, -2) + (good.endsWith('AA') ? 'BB' : 'AA'), key, salt: 'django.core.signing', expect: null })
    requests.push({ value: good, key, salt: SESSION_SALT, expect: null })
    requests.push({ value: dumps({ x: 1 }, { key, now: at(1) }), key, salt: 'django.core.signing', maxAge: 60, expect: null })

    const run = spawnSync(PYTHON, ['-c', LIVE_SCRIPT], { input: JSON.stringify(requests), encoding: 'utf8' })
    assert.equal(run.status, 0, run.stderr)
    const results: { ok: boolean; json?: string; error?: string }[] = JSON.parse(run.stdout)
    assert.equal(results.length, requests.length)
    requests.forEach((r, i) => {
      const res = results[i]!
      if (r.expect === null) assert.equal(res.ok, false, `Django should refuse request ${i}`)
      else assert.deepEqual(res, { ok: true, json: r.expect }, `request ${i}`)
    })
  })
})

describe('session codec: what it remembers', () => {
  // createCodec remembers the bytes behind strings it signed or verified, and skips the HMAC
  // for those; these cases check that nothing else gets through, and nothing is shared.
  const settings = (events: string[]) =>
    resolveSettings({
      secretKey: 'codec-memo-secret-0123456789abcdefghijklmnop',
      logger: { warn: (m: string) => events.push(m), error: (m: string) => events.push(m) },
    })

  it('decodes what it encoded, a fresh Map each time', () => {
    const codec = createCodec(settings([]))
    const encoded = codec.encode(new Map<string, unknown>([['cart', [1, 2]], ['user', 'alice']]))
    const first = codec.decode(encoded, 'test')
    assert.deepEqual([...first], [['cart', [1, 2]], ['user', 'alice']])
    ;(first.get('cart') as number[]).push(3)
    first.set('user', 'mallory')
    assert.deepEqual([...codec.decode(encoded, 'test')], [['cart', [1, 2]], ['user', 'alice']])
  })

  it('a tampered copy of a remembered string is refused as tampered; another key cannot read it', () => {
    const events: string[] = []
    const codec = createCodec(settings(events))
    const encoded = codec.encode(new Map([['user', 'alice']]))
    codec.decode(encoded, 'test')
    const i = encoded.indexOf(':')
    const forged = b64Encode(Buffer.from('{"user":"admin"}')) + encoded.slice(i)
    assert.deepEqual([...codec.decode(forged, 'test')], [])
    assert.equal([...codec.decode(encoded.slice(0, -1) + (encoded.endsWith('A') ? 'B' : 'A'), 'test')].length, 0)
    assert.equal(events.filter((e) => /Session data corrupted \(tampered/.test(e)).length, 2)
    const other = createCodec(resolveSettings({ secretKey: 'another-secret-0123456789abcdefghijklmnopqrstu', logger: { warn: () => {}, error: () => {} } }))
    assert.deepEqual([...other.decode(encoded, 'test')], [])
  })

  it('keeps working past its bounds (thousands of sessions, large payloads)', () => {
    const codec = createCodec(settings([]))
    const encoded = Array.from({ length: 10_000 }, (_, i) => codec.encode(new Map<string, unknown>([['i', i]])))
    const big = codec.encode(new Map([['blob', 'x'.repeat(200_000)]]))
    for (const i of [0, 1, 5_000, 9_999]) assert.equal(codec.decode(encoded[i]!, 'test').get('i'), i)
    assert.equal((codec.decode(big, 'test').get('blob') as string).length, 200_000)
  })
})
