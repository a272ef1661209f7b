/**
 * The fuzzing targets of the security checklist (§4 F1–F6), shared by `test/system/fuzz.test.ts`
 * (about 1 000 cases each, in `npm test`) and `scripts/fuzz.ts` (100 000 and more, `npm run fuzz`).
 *
 * Every target states the only outcomes allowed — a value or a typed `SessionError` — and
 * checks, after its run, what must not have happened at all (a store write, a file touched
 * outside the session directory, a polluted prototype, memory spent on a bomb).
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createDeflate, deflateSync } from 'node:zlib'
import fc from 'fast-check'
import {
  createCodec,
  createSessions,
  InvalidSessionKey,
  isServerKey,
  newSessionKey,
  resolveSettings,
  SessionError,
  SESSION_STORE_SALT,
  type Logger,
  type SessionMap,
  type Sessions,
} from 'sessionkit'
import { b64Encode, loads, TimestampSigner } from 'sessionkit/signing'
import { createEngine } from '../../src/engines/index.ts'
import { signedCookiesEngine } from '../../src/engines/signed-cookies.ts'
import { instrument } from './http.ts'
import { dumps as pickleDumps, loads as pickleLoads, tuple, type PyValue } from '../../src/caches/pickle.ts'
import { PickleError } from '../../src/errors.ts'

const SECRET = 'fuzz-secret-0123456789abcdefghijklmnopqrstuvwxyz'
const NOW = 1_700_000_000_000

/** How often each outcome came up: a run that never reached an outcome proves nothing about it. */
export type Outcomes = Record<string, number>

/** A fuzzing target: `run(cases)` throws (with fast-check's counterexample) on a property violation. */
export interface FuzzTarget {
  name: string
  run(cases: number, seed?: number, path?: string): Promise<Outcomes>
}

/** Count an outcome. */
function tally(outcomes: Outcomes, name: string): void {
  outcomes[name] = (outcomes[name] ?? 0) + 1
}

/** With enough cases, every outcome listed must have come up at least once. */
function assertReached(outcomes: Outcomes, cases: number, names: string[]): void {
  if (cases < 500) return
  for (const name of names) assert.ok((outcomes[name] ?? 0) > 0, `no case reached "${name}": ${JSON.stringify(outcomes)}`)
}

const quiet: Logger = { warn: () => {}, error: () => {} }

/** The error codes decoding may throw; anything else is a bug. */
const DECODE_CODES = new Set(['ERR_BAD_SIGNATURE', 'ERR_SIGNATURE_EXPIRED', 'ERR_BAD_PAYLOAD'])

function assertTyped(error: unknown, codes?: Set<string>): void {
  if (!(error instanceof SessionError)) throw error
  if (codes && !codes.has(error.code)) throw error
}

function options(cases: number, seed: number | undefined, path?: string) {
  return { numRuns: cases, ...(seed === undefined ? {} : { seed }), ...(path === undefined ? {} : { path }), endOnFailure: true }
}

/** What `Object.prototype`, `Array.prototype` and `Function.prototype` hold now. */
function prototypes(): string {
  return [Object.prototype, Array.prototype, Function.prototype, String.prototype]
    .map((p) => Reflect.ownKeys(p).map(String).sort().join(','))
    .join('|')
}

function assertNoPollution(before: string): void {
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype polluted')
  assert.equal(([] as unknown as Record<string, unknown>).polluted, undefined, 'Array.prototype polluted')
  assert.equal(prototypes(), before, 'a prototype gained or lost a property')
}

// ----------------------------------------------------------------------------- F1: Cookie headers

const COOKIE = 'sessionid'

/** What the session cookie's value must be: RFC 6265 pairs, SP/HTAB trimmed only, first wins, value percent-decoded. */
export function expectedCookieValue(header: string | undefined, name = COOKIE): string | undefined {
  if (!header || !header.includes(name)) return undefined
  const trim = (s: string) => s.replace(/^[ \t]+|[ \t]+$/g, '')
  for (const segment of header.split(';')) {
    const eq = segment.indexOf('=')
    if (eq < 0 || trim(segment.slice(0, eq)) !== name) continue
    const raw = trim(segment.slice(eq + 1))
    if (!raw.includes('%')) return raw
    try {
      return decodeURIComponent(raw)
    } catch {
      return raw
    }
  }
  return undefined
}

const cookieHeaders: FuzzTarget = {
  name: 'cookie headers → Sessions.start/finish',
  async run(cases, seed, replay) {
    // db on SQLite in memory: a real engine, no files.
    const engine = instrument((context) => createEngine({ ...context.settings, engine: 'db', databaseUrl: 'sqlite::memory:' }, context.codec))
    const kinds = new Map<string, number>()
    const sessions = createSessions({
      secretKey: SECRET,
      now: () => NOW,
      logger: quiet,
      engine: engine.factory,
      onSuspicious: (e) => void kinds.set(e.kind, (kinds.get(e.kind) ?? 0) + 1),
    })
    try {
      await sessions.ready()
      const live = new Map<string, number>()
      for (let i = 0; i < 3; i++) {
        const s = sessions.session()
        s.set('n', i)
        await s.save()
        live.set(s.sessionKey!, i)
      }
      engine.reset()
      const keys = [...live.keys()]
      const key = fc.constantFrom(...keys, newSessionKey(), 'a'.repeat(7), 'a'.repeat(41), 'A'.repeat(32), '../../etc/passwd', '', 'a\0' + 'b'.repeat(30))
      const name = fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(COOKIE, ` ${COOKIE}`, `\t${COOKIE} `, `\u2000${COOKIE}`, `\u00a0${COOKIE}`, `\u3000${COOKIE}`, `${COOKIE}\u2000`, 'SESSIONID', '%73essionid', `${COOKIE}\v`) },
        { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'csrftoken', '', '=', '$Version') },
        { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
      )
      const value = fc.oneof(
        key,
        key.map((k) => ` \t${k} `),
        key.map((k) => `"${k}"`),
        key.map((k) => k.replace(/[a-f]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)),
        key.map((k) => `${k}%`),
        fc.string({ unit: 'binary', maxLength: 40 }),
      )
      const pair = fc.oneof(
        { weight: 5, arbitrary: fc.tuple(name, value).map(([n, v]) => `${n}=${v}`) },
        { weight: 1, arbitrary: name },
        { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
      )
      const separator = fc.constantFrom(';', '; ', ';\t', ' ;', ',', ';;', '\u2000;', ';\r\n')
      const header = fc.oneof(
        { weight: 6, arbitrary: fc.tuple(fc.array(pair, { maxLength: 8 }), separator).map(([pairs, sep]) => pairs.join(sep)) },
        { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
        { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(COOKIE, '=', ';', ' ', '\t', '\u2000', '%', '"', keys[0]!), maxLength: 12 }) },
        { weight: 1, arbitrary: fc.constantFrom(undefined, '', `${COOKIE}=${keys[0]}`) },
      )
      const outcomes: Outcomes = {}
      await fc.assert(
        fc.asyncProperty(header, async (h) => {
          let state
          try {
            state = await sessions.start(h)
          } catch (error) {
            assertTyped(error)
            tally(outcomes, 'typed error')
            return
          }
          const expected = expectedCookieValue(h)
          assert.equal(state.hadCookie, expected !== undefined, 'hadCookie')
          const key = state.session.sessionKey
          if (expected !== undefined && live.has(expected)) {
            assert.equal(key, expected)
            assert.equal(state.session.get('n'), live.get(expected))
            tally(outcomes, 'live session loaded')
          } else {
            assert.equal(key, null, 'only a live key is ever adopted')
            assert.equal(state.session.get('n'), undefined)
            tally(outcomes, expected === undefined ? 'no session cookie' : 'cookie refused')
          }
          let decision
          try {
            decision = await sessions.finish(state, 200)
          } catch (error) {
            assertTyped(error)
            return
          }
          if (decision.setCookie !== null) assert.match(decision.setCookie, /^sessionid=""; expires=Thu, 01 Jan 1970/, 'only a deletion')
        }),
        options(cases, seed, replay),
      )
      assert.equal(engine.writes(), 0, 'reading never writes')
      assertReached(outcomes, cases, ['live session loaded', 'no session cookie', 'cookie refused'])
      return { ...outcomes, ...Object.fromEntries([...kinds].map(([k, n]) => [`event ${k}`, n])) }
    } finally {
      await sessions.close()
    }
  },
}

// ----------------------------------------------------------------------------- F3: signed values

const signedValues: FuzzTarget = {
  name: 'signed values → loads, the codec, the signed_cookies engine',
  async run(cases, seed, replay) {
    const settings = resolveSettings({ secretKey: SECRET, now: () => NOW, logger: quiet, engine: 'signed_cookies' })
    const codec = createCodec(settings)
    const cookies = signedCookiesEngine({ settings, codec })
    const signer = new TimestampSigner({ key: SECRET, salt: 'fuzz', now: () => NOW })
    const samples = [{}, { a: 1 }, { user: 'alice', cart: [1, 2, 3] }, { t: 'x'.repeat(300) }, { u: 'é€😀' }]
    const forLoads = new Set<string>()
    const forCodec = new Set<string>()
    const forCookie = new Set<string>()
    for (const data of samples) {
      for (const compress of [false, true]) forLoads.add(signer.signObject(data, { compress }))
      forCodec.add(codec.encode(new Map(Object.entries(data))))
      const saved: unknown = await cookies.save('', new Map(Object.entries(data)), { mustCreate: true, expireDate: new Date(NOW), expiryAge: 60 })
      forCookie.add(typeof saved === 'string' ? saved : (saved as { key: string }).key)
    }
    const originals = [...forLoads, ...forCodec, ...forCookie]
    const b64ish = fc.string({ unit: fc.constantFrom(...'AZaz09-_.=+/ :%'.split('')), maxLength: 40 })
    const mutated = fc
      .tuple(fc.constantFrom(...originals), fc.nat(), fc.string({ unit: 'binary', minLength: 0, maxLength: 3 }), fc.constantFrom('replace', 'insert', 'delete', 'truncate', 'swap-sig'))
      .map(([s, at, text, how]) => {
        const i = at % (s.length + 1)
        switch (how) {
          case 'replace':
            return s.slice(0, i) + text + s.slice(i + text.length)
          case 'insert':
            return s.slice(0, i) + text + s.slice(i)
          case 'delete':
            return s.slice(0, i) + s.slice(i + 1 + (at % 3))
          case 'truncate':
            return s.slice(0, i)
          default: {
            const other = originals[at % originals.length]!
            return s.slice(0, s.lastIndexOf(':')) + other.slice(other.lastIndexOf(':'))
          }
        }
      })
    const value = fc.oneof(
      { weight: 4, arbitrary: mutated },
      { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 120 }) },
      { weight: 2, arbitrary: fc.tuple(b64ish, b64ish, b64ish, fc.constantFrom(':', '::', '.')).map(([a, b, c, sep]) => [a, b, c].join(sep)) },
      { weight: 1, arbitrary: fc.constantFrom(...originals) },
    )
    const outcomes: Outcomes = {}
    await fc.assert(
      fc.asyncProperty(value, async (s) => {
        try {
          loads(s, { key: SECRET, salt: 'fuzz', now: () => NOW })
          assert.ok(forLoads.has(s), 'accepted only what was signed with this key and salt')
          tally(outcomes, 'loads accepted')
        } catch (error) {
          assertTyped(error, DECODE_CODES)
          tally(outcomes, (error as SessionError).code)
        }
        const map = codec.decode(s, 'fuzz')
        assert.ok(map instanceof Map)
        if (!forCodec.has(s)) assert.equal(map.size, 0, 'the codec accepted a value it did not sign')
        else tally(outcomes, 'codec accepted')
        const loaded = cookies.validKey!(s) ? await cookies.load(s) : null
        if (loaded !== null) {
          assert.ok(forCookie.has(s), 'the signed_cookies engine accepted a value it did not sign')
          tally(outcomes, 'cookie accepted')
        }
      }),
      options(cases, seed, replay),
    )
    assertReached(outcomes, cases, ['loads accepted', 'codec accepted', 'cookie accepted', 'ERR_BAD_SIGNATURE'])
    return outcomes
  },
}

// ----------------------------------------------------------------------------- F4: compressed payloads

/** zlib of `size` bytes of `fill` (inside a JSON string when `json`), built in 64 KiB steps: no large buffer is ever held. */
async function bomb(size: number, fill: number, json: boolean): Promise<Buffer> {
  const deflate = createDeflate({ level: 9 })
  const chunks: Buffer[] = []
  deflate.on('data', (c: Buffer) => chunks.push(c))
  const step = Buffer.alloc(64 * 1024, fill)
  if (json) deflate.write('{"a":"')
  for (let left = size; left > 0; left -= step.length) {
    if (!deflate.write(left >= step.length ? step : step.subarray(0, left))) await once(deflate, 'drain')
  }
  deflate.end(json ? '"}' : undefined)
  await once(deflate, 'end')
  return Buffer.concat(chunks)
}

/** The size cap of the fuzzed `loads` calls: Django's data fits, a bomb does not. */
export const FUZZ_CAP = 1024 * 1024

const compressedPayloads: FuzzTarget = {
  name: 'compressed payloads (decompression bombs) → loads',
  async run(cases, seed, replay) {
    const signer = new TimestampSigner({ key: SECRET, salt: 'fuzz', now: () => NOW })
    const sign = (deflated: Uint8Array) => signer.sign('.' + b64Encode(deflated))
    const bombs: Buffer[] = []
    for (const [size, fill, json] of [
      [FUZZ_CAP + 1, 0x41, true],
      [2 * FUZZ_CAP, 0, false],
      [16 * 1024 * 1024 + 1, 0x41, true],
      [256 * 1024 * 1024, 0x20, true],
    ] as const) {
      bombs.push(await bomb(size, fill, json))
    }
    const fromBomb = fc
      .tuple(fc.constantFrom(...bombs), fc.constantFrom('as is', 'flip', 'truncate', 'append'), fc.nat(), fc.integer({ min: 0, max: 255 }))
      .map(([b, how, at, byte]) => {
        const i = at % b.length
        if (how === 'truncate') return b.subarray(0, i)
        if (how === 'append') return Buffer.concat([b, Buffer.from([byte, byte])])
        if (how !== 'flip') return b
        const copy = Buffer.from(b)
        copy[i] = byte
        return copy
      })
    const payload = fc.oneof(
      { weight: 3, arbitrary: fromBomb },
      { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }) },
      { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => deflateSync(b)) },
      { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => deflateSync(JSON.stringify(v) ?? 'null')) },
    )
    let slowest = 0
    const outcomes: Outcomes = {}
    await fc.assert(
      fc.property(payload, (deflated) => {
        const signed = sign(deflated)
        // CPU time, not wall time: a loaded machine must not fail the property.
        const started = process.cpuUsage()
        try {
          const value = loads(signed, { key: SECRET, salt: 'fuzz', now: () => NOW, maxDecompressedBytes: FUZZ_CAP })
          assert.ok(JSON.stringify(value ?? null).length <= FUZZ_CAP + 2, 'a value larger than the cap')
          tally(outcomes, 'value')
        } catch (error) {
          assertTyped(error, new Set(['ERR_BAD_PAYLOAD']))
          const tooLarge = ((error as Error).cause as { code?: string } | undefined)?.code === 'ERR_BUFFER_TOO_LARGE'
          tally(outcomes, tooLarge ? 'refused at the cap' : 'bad payload')
        }
        const used = process.cpuUsage(started)
        const took = (used.user + used.system) / 1000
        slowest = Math.max(slowest, took)
        assert.ok(took < 500, `one payload took ${took.toFixed(0)} ms of CPU`)
      }),
      options(cases, seed, replay),
    )
    // Memory: inflating stops at the cap by construction (zlib maxOutputLength); the peak is
    // measured where nothing else allocates, in a fresh process, by fuzz.test.ts.
    assertReached(outcomes, cases, ['value', 'refused at the cap', 'bad payload'])
    return { ...outcomes, 'slowest (CPU ms)': Math.ceil(slowest) }
  },
}

// ----------------------------------------------------------------------------- F5: hostile JSON

const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'polluted', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', '_session_expiry', '_session_created', '']
const NUMBERS = ['1e400', '-1e400', '9007199254740993', '-0', '0.1e-400', '1'.repeat(400), '123456789012345678901234567890', '1E+2', '0', '-1']

/** JSON text, with hostile keys, numbers and strings. */
const hostileJson: fc.Arbitrary<string> = fc.letrec<{ value: string; array: string; object: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...NUMBERS),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
    fc.string({ unit: 'binary', maxLength: 20 }).map((s) => JSON.stringify(s)),
    fc.constantFrom('"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', 'true', 'false', 'null'),
    tie('array'),
    tie('object'),
  ),
  array: fc.array(tie('value'), { maxLength: 4 }).map((a) => `[${a.join(',')}]`),
  object: fc
    .array(fc.tuple(fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 8 })), tie('value')), { maxLength: 5 })
    .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
})).value

/** JSON nested `depth` levels deep. */
export function deepJson(depth: number, open: string, close: string, inner = '1'): string {
  return open.repeat(depth) + inner + close.repeat(depth)
}

const deep = fc
  .tuple(fc.integer({ min: 1000, max: 100_000 }), fc.constantFrom<[string, string]>(['[', ']'], ['{"a":', '}'], ['{"__proto__":', '}'], ['{"constructor":{"prototype":', '}}']))
  .map(([depth, [open, close]]) => `{"d":${deepJson(depth, open, close, '{"polluted":1}')}}`)

const hostileJsonTarget: FuzzTarget = {
  name: 'hostile JSON (deep, huge numbers, __proto__) → decode and save',
  async run(cases, seed, replay) {
    const settings = resolveSettings({ secretKey: SECRET, now: () => NOW, logger: quiet })
    const codec = createCodec(settings)
    const signer = new TimestampSigner({ key: SECRET, salt: SESSION_STORE_SALT, now: () => NOW })
    const sessions: Sessions = createSessions({ secretKey: SECRET, now: () => NOW, logger: quiet, databaseUrl: 'sqlite::memory:' })
    const before = prototypes()
    try {
      const text = fc.oneof({ weight: 99, arbitrary: fc.oneof(hostileJson.map((v) => `{"v":${v}}`), hostileJson) }, { weight: 1, arbitrary: deep })
      const outcomes: Outcomes = {}
      await fc.assert(
        fc.asyncProperty(text, fc.boolean(), async (json, compress) => {
          if (json.length > 100_000) tally(outcomes, 'deep')
          const raw = Buffer.from(json, 'latin1')
          const signed = compress ? signer.sign('.' + b64Encode(deflateSync(raw))) : signer.sign(b64Encode(raw))
          const map = codec.decode(signed, 'fuzz')
          assert.ok(map instanceof Map)
          assertNoPollution(before)
          for (const value of map.values()) {
            if (value !== null && typeof value === 'object') assert.ok([Object.prototype, Array.prototype].includes(Object.getPrototypeOf(value)))
          }
          // Deep values: decoding is the point; their save (a typed error) is a fixed case in fuzz.test.ts.
          if (json.length > 100_000) return
          // The save side: the data as a session, through the middleware: a cookie, or a typed error.
          const state = await sessions.start(undefined)
          state.session.update(map as Iterable<readonly [string, unknown]>)
          state.session.set('ok', 1)
          try {
            const decision = await sessions.finish(state, 200)
            assert.match(decision.setCookie ?? '', /^sessionid=[a-z0-9]{32};/)
            tally(outcomes, 'saved')
          } catch (error) {
            assertTyped(error)
            tally(outcomes, `save refused: ${(error as SessionError).code}`)
          }
          assertNoPollution(before)
        }),
        options(cases, seed, replay),
      )
      assertReached(outcomes, cases, ['deep', 'saved'])
      return outcomes
    } finally {
      await sessions.close()
    }
  },
}

// ----------------------------------------------------------------------------- F6: keys with path characters

/** Every file under `root` with its size and content, for a before/after comparison. */
function tree(root: string): string {
  const out: string[] = []
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name)
      if (entry.isDirectory()) {
        out.push(`${p}/`)
        walk(p)
      } else out.push(`${p} ${statSync(p).size} ${readFileSync(p, 'latin1')}`)
    }
  }
  walk(root)
  return out.sort().join('\n')
}

const fileKeys: FuzzTarget = {
  name: 'session keys with path characters → the file engine',
  async run(cases, seed, replay) {
    const root = mkdtempSync(path.join(tmpdir(), 'sessionkit-fuzz-keys-'))
    const dir = path.join(root, 'sessions')
    mkdirSync(dir)
    mkdirSync(path.join(root, 'outside'))
    writeFileSync(path.join(root, 'outside', 'secret.txt'), 'do not touch')
    writeFileSync(path.join(root, 'sessionid'), 'decoy beside the directory')
    writeFileSync(path.join(root, 'sessionidabcdefgh12345678'), 'decoy: a valid key, one level up')
    const before = tree(root)
    // Every path the engine hands to the file system, recorded.
    const fsp = createRequire(import.meta.url)('node:fs/promises') as Record<string, (...args: unknown[]) => unknown>
    const touched: string[] = []
    const originals = new Map<string, (...args: unknown[]) => unknown>()
    for (const method of ['open', 'stat', 'lstat', 'unlink', 'rename', 'opendir', 'readFile', 'writeFile', 'rm', 'utimes']) {
      const original = fsp[method]!
      originals.set(method, original)
      fsp[method] = (...args: unknown[]) => {
        for (const a of args.slice(0, method === 'rename' ? 2 : 1)) touched.push(String(a))
        return original(...args)
      }
    }
    syncBuiltinESMExports()
    const sessions = createSessions({ secretKey: SECRET, now: () => NOW, logger: quiet, engine: 'file', filePath: dir })
    const engine = sessions.engine!
    const data: SessionMap = new Map([['a', 1]])
    const saveOptions = { mustCreate: true, expireDate: new Date(NOW + 60_000), expiryAge: 60 }
    const outcomes: Outcomes = {}
    try {
      const parts = ['.', '..', '/', '\\', '\0', '%2F', '%2e', '%00', 'a', 'z', '0', '9', '\u2215', '\uff0e', '\uff0f', '\uff41', 'CON', 'NUL', ' ', '\n', '\r', '~', '*', ':', 'outside', 'secret.txt', '..\\..\\', 'sessions']
      const key = fc.oneof(
        { weight: 3, arbitrary: fc.string({ unit: fc.constantFrom(...parts), maxLength: 24 }) },
        { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
        { weight: 1, arbitrary: fc.stringMatching(/^[a-z0-9]{6,42}$/) },
        { weight: 1, arbitrary: fc.constantFrom('../outside/secret.txt', '../sessionidabcdefgh12345678', '/etc/passwd', '..', '', 'a'.repeat(300), 'abcdefgh12345678/..', 'abcdefgh12345678\0') },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom('../', '..\\', '%2e%2e%2f', './', '\u2025/'), fc.stringMatching(/^[a-z0-9]{8,32}$/)).map(([a, b]) => a + b) },
      )
      await fc.assert(
        fc.asyncProperty(key, async (k) => {
          const valid = isServerKey(k)
          tally(outcomes, valid ? 'well-formed key' : 'malformed key')
          assert.equal(sessions.session(k).sessionKey, valid ? k : null, 'only a well-formed key is kept')
          assert.equal(await engine.load(k), null)
          assert.equal(await engine.exists(k), false)
          await engine.delete(k)
          try {
            const saved: unknown = await engine.save(k, data, saveOptions)
            assert.equal(typeof saved === 'string' ? saved : (saved as { key: string }).key, k)
            assert.ok(valid, 'saved under a malformed key')
            assert.ok(statSync(path.join(dir, `sessionid${k}`)).isFile())
            await engine.delete(k)
          } catch (error) {
            if (valid) throw error
            assert.ok(error instanceof InvalidSessionKey, `expected InvalidSessionKey, got ${String(error)}`)
          }
        }),
        options(cases, seed, replay),
      )
    } finally {
      for (const [method, original] of originals) fsp[method] = original
      syncBuiltinESMExports()
      await sessions.close()
    }
    try {
      const outside = touched.filter((p) => path.dirname(path.resolve(p)) !== dir)
      assert.deepEqual(outside.slice(0, 5), [], `${outside.length} file-system calls outside the session directory`)
      const strange = touched.filter((p) => !/^sessionid[a-z0-9]{8,40}(_out_[0-9a-f]+|\.lock)?$/.test(path.basename(p)))
      assert.deepEqual(strange.slice(0, 5), [], 'only session files were touched')
      assert.equal(tree(root), before, 'nothing changed around the session directory')
      assert.deepEqual(readdirSync(dir), [], 'every session saved was deleted again')
      assertReached(outcomes, cases, ['well-formed key', 'malformed key'])
      assert.ok(touched.length > 0 || cases < 10, 'the file system was reached')
      return { ...outcomes, 'file-system calls': touched.length }
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  },
}

// ----------------------------------------------------------------------------- pickles (Django's cache format)

/** The opcodes that import or call code; a pickle using one must be refused before anything is built. */
const CODE_OPCODES = [0x63, 0x93, 0x52, 0x62, 0x69, 0x6f, 0x81, 0x92, 0x82, 0x83, 0x84, 0x50, 0x51]

/** Every opcode byte of protocols 0 to 5, and the argument bytes that make them interesting. */
const OPCODE_SOUP = [...'(.0123FGIJKLMNPQRSTUVXabcdeghijlopqrstu}])'].map((c) => c.charCodeAt(0)).concat([0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x0a, 0x00, 0x01, 0x02, 0x04, 0x05, 0xff, 0x7f])

const pickles: FuzzTarget = {
  name: 'pickles (Django cache entries) → the pickle decoder',
  async run(cases, seed, replay) {
    const fixture = JSON.parse(readFileSync(new URL('../fixtures/pickle-vectors.json', import.meta.url), 'utf8')) as {
      vectors: { pickles: Record<string, string> }[]
      refused: { pickle: string }[]
    }
    const { inflateSync } = await import('node:zlib')
    const seeds: Buffer[] = []
    for (const v of fixture.vectors) for (const b64 of Object.values(v.pickles)) {
      const bytes = inflateSync(Buffer.from(b64, 'base64'))
      if (bytes.length <= 4096) seeds.push(bytes)
    }
    for (const r of fixture.refused) seeds.push(inflateSync(Buffer.from(r.pickle, 'base64')))
    const session = new Map<string, unknown>([['_auth_user_id', '1'], ['cart', [1, 2.5, 'x', null, true]], ['t', tuple(1, 'a')], ['n', { deep: { er: [] } }]])
    for (const protocol of [2, 3, 4, 5] as const) seeds.push(pickleDumps(session, protocol))
    const mutated = fc
      .tuple(fc.constantFrom(...seeds), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 6 }), fc.constantFrom('replace', 'insert', 'delete', 'truncate', 'opcode'))
      .map(([b, at, bytes, how]) => {
        const i = at % (b.length + 1)
        switch (how) {
          case 'replace':
            return Buffer.concat([b.subarray(0, i), bytes, b.subarray(i + bytes.length)])
          case 'insert':
            return Buffer.concat([b.subarray(0, i), bytes, b.subarray(i)])
          case 'delete':
            return Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + (at % 4))])
          case 'truncate':
            return b.subarray(0, i)
          default:
            return Buffer.concat([b.subarray(0, i), Buffer.from([OPCODE_SOUP[at % OPCODE_SOUP.length]!]), b.subarray(i)])
        }
      })
    const soup = fc
      .array(fc.oneof(fc.constantFrom(...OPCODE_SOUP), fc.integer({ min: 0, max: 255 })), { maxLength: 64 })
      .map((ops) => Buffer.from([0x80, 4, ...ops, 0x2e]))
    const input = fc.oneof(
      { weight: 5, arbitrary: mutated },
      { weight: 2, arbitrary: soup },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 128 }).map((b) => Buffer.from(b)) },
      { weight: 2, arbitrary: fc.constantFrom(...seeds) },
    )
    const before = prototypes()
    const outcomes: Outcomes = {}
    let slowest = 0
    await fc.assert(
      fc.property(input, (bytes) => {
        const started = process.cpuUsage()
        let value: PyValue
        try {
          value = pickleLoads(bytes)
        } catch (error) {
          if (!(error instanceof PickleError)) throw error
          tally(outcomes, /imports or calls code/.test(error.message) ? 'refused: code' : /outside the JSON subset|dict key/.test(error.message) ? 'refused: type' : 'refused: malformed')
          return
        } finally {
          const used = process.cpuUsage(started)
          slowest = Math.max(slowest, (used.user + used.system) / 1000)
        }
        // What was read never came through an opcode that imports or calls code.
        const opcodes = new Set(bytes)
        if (CODE_OPCODES.every((op) => !opcodes.has(op))) tally(outcomes, 'value')
        else tally(outcomes, 'value (code byte as data)')
        // It is a tree of the JSON subset: it pickles again and reads back the same.
        const again = pickleLoads(pickleDumps(value, 4))
        assert.deepEqual(again, value)
        assertNoPollution(before)
      }),
      options(cases, seed, replay),
    )
    assertReached(outcomes, cases, ['value', 'refused: code', 'refused: type', 'refused: malformed'])
    assert.ok(slowest < 500, `one pickle took ${slowest.toFixed(0)} ms of CPU`)
    return { ...outcomes, 'slowest (CPU ms)': Math.ceil(slowest) }
  },
}

/** Every target, in the order the script runs them. */
export const targets: readonly FuzzTarget[] = [cookieHeaders, signedValues, compressedPayloads, hostileJsonTarget, fileKeys, pickles]
