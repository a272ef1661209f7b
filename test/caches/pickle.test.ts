/**
 * The pickle codec of Django's cache format (src/caches/pickle.ts) against real Python:
 * - the vectors of test/fixtures/pickle-vectors.json (made by make-pickle-vectors.py with
 *   CPython 3.11): every protocol 0–5 read back equal, and protocols 2–5 written byte for byte;
 * - live: Python (`/usr/bin/python3`) reads what we write for random JSON-subset values equal,
 *   and writes the very same bytes back;
 * - refusals: `__reduce__` payloads, datetimes, sets, bytes, class instances, non-str keys,
 *   out-of-band buffers, malformed and oversized streams — a `PickleError`, nothing run.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { inflateSync } from 'node:zlib'
import fc from 'fast-check'
import { dumps, isTuple, loads, tuple, type PickleProtocol, type PyValue } from '../../src/caches/pickle.ts'
import { PickleError } from '../../src/errors.ts'
import { PYTHON, probeDjango } from '../system/interop/django.ts'
import { assertSame, unpack, untag } from '../helpers/pickle.ts'

interface Fixture {
  python: string
  vectors: { name: string; value: unknown; sameBytes: boolean; pickles: Record<string, string> }[]
  refused: { name: string; protocol: number; pickle: string; reasons: string[] }[]
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/pickle-vectors.json', import.meta.url), 'utf8')) as Fixture

describe('pickle vectors made by real Python', () => {
  it(`were made by CPython ${fixture.python}, ${fixture.vectors.length} values in protocols 0 to 5`, () => {
    assert.ok(fixture.vectors.length > 20)
  })

  for (const vector of fixture.vectors) {
    it(`reads "${vector.name}" in protocols 0 to 5 equal to the value Python pickled`, () => {
      const expected = untag(vector.value)
      for (const [protocol, b64] of Object.entries(vector.pickles)) {
        try {
          assertSame(loads(unpack(b64)), expected)
        } catch (error) {
          throw new Error(`protocol ${protocol}: ${(error as Error).message}`, { cause: error })
        }
      }
    })
    if (vector.sameBytes) {
      it(`writes "${vector.name}" in protocols 2 to 5 byte for byte as CPython's pickler`, () => {
        const value = untag(vector.value)
        for (const protocol of [2, 3, 4, 5] as const) {
          const ours = dumps(value, protocol)
          const python = unpack(vector.pickles[String(protocol)]!)
          if (!ours.equals(python)) {
            const at = ours.findIndex((b, i) => b !== python[i])
            assert.fail(`protocol ${protocol}: ${ours.length} vs ${python.length} bytes, first difference at ${at}: ours ${ours.subarray(at, at + 12).toString('hex')}, Python ${python.subarray(at, at + 12).toString('hex')}`)
          }
        }
      })
    }
  }

  it('reads a Python tuple as a frozen array that is written back as a tuple', () => {
    const value = loads(dumps({ t: tuple(1, 'a') }, 4)) as Record<string, PyValue>
    assert.ok(isTuple(value['t']))
    assert.ok(Object.isFrozen(value['t']))
    assert.throws(() => (value['t'] as unknown as unknown[]).push(2), TypeError)
    assert.equal(dumps(value, 4).toString('hex'), dumps({ t: tuple(1, 'a') }, 4).toString('hex'))
  })

  it('copies an object Python shared between two keys, so that the result is a tree', () => {
    const shared = fixture.vectors.find((v) => v.name === 'shared list')!
    const value = loads(unpack(shared.pickles['4']!)) as Record<string, PyValue>
    assert.deepEqual(value['x'], [1, 'two'])
    assert.notEqual(value['x'], value['y'], 'not the same array')
  })

  it('keeps __proto__ and constructor as plain keys: no prototype is touched', () => {
    const proto = fixture.vectors.find((v) => v.name === 'proto keys')!
    for (const b64 of Object.values(proto.pickles)) {
      const value = loads(unpack(b64)) as Record<string, PyValue>
      assert.ok(Object.hasOwn(value, '__proto__'))
      assert.equal(Object.getPrototypeOf(value), Object.prototype)
      assert.equal(({} as Record<string, unknown>)['polluted'], undefined)
    }
  })
})

describe('pickles sessionkit refuses', () => {
  for (const vector of fixture.refused) {
    it(`refuses ${vector.name} with a PickleError naming ${vector.reasons.join(' or ')}`, () => {
      assert.throws(
        () => loads(unpack(vector.pickle)),
        (error: unknown) => {
          assert.ok(error instanceof PickleError, String(error))
          assert.equal(error.code, 'ERR_BAD_PICKLE')
          assert.ok(vector.reasons.some((r) => error.message.includes(r)), error.message)
          return true
        },
      )
    })
  }

  it('never runs the __reduce__ payload (it would write /tmp/sessionkit-pwned)', () => {
    for (const vector of fixture.refused.filter((v) => v.name.startsWith('__reduce__'))) {
      assert.throws(() => loads(unpack(vector.pickle)), /imports or calls code; refused, nothing was run/)
    }
    assert.equal(existsSync('/tmp/sessionkit-pwned'), false)
  })

  const p4 = (hex: string) => Buffer.from(`8004${hex}`, 'hex')
  for (const [name, bytes, pattern] of [
    ['an empty input', Buffer.alloc(0), /ends before STOP/],
    ['a truncated string', p4('8c0561'), /ends inside an opcode/],
    ['a length beyond the input', p4('58ffffff7f61'), /ends inside an opcode/],
    ['bytes after STOP', p4('4e2e00'), /1 bytes after STOP/],
    ['two values at STOP', p4('4e4e2e'), /values left on the stack/],
    ['STOP on an empty stack', p4('2e'), /stack is empty/],
    ['an unknown opcode', p4('ff'), /unknown opcode 0xff/],
    ['protocol 6', Buffer.from('80064e2e', 'hex'), /protocol 6/],
    ['a memo entry never stored', p4('68052e'), /memo entry 5 was never stored/],
    ['SETITEMS on a list', p4('5d284e4e752e'), /on a list, not a dict/],
    ['APPEND to a tuple', p4('294e612e'), /on a tuple, not a list/],
    ['an invalid UTF-8 string', p4('8c02c3282e'), /not valid UTF-8/],
    ['an overlong UTF-8 string', p4('8c03e080af2e'), /not valid UTF-8/],
    ['a text int in another base', Buffer.from('I0x10\n.', 'latin1'), /not decimal/],
    ['an int of 5000 digits', Buffer.from(`I${'9'.repeat(5000)}\n.`, 'latin1'), /more than 4300 digits/],
    ['a LONG4 of 1 MiB', p4(`8b00001000${'00'.repeat(16)}`), /over 1800/],
    ['a cycle (a list containing itself)', p4('5d94286800652e'), /contains itself/],
  ] as const) {
    it(`refuses ${name}`, () => {
      assert.throws(() => loads(bytes), (error: unknown) => error instanceof PickleError && pattern.test(error.message))
    })
  }

  it('refuses nesting past maxDepth (1000 by default), input past maxBytes, memo past maxMemo', () => {
    let deep: PyValue = 1
    for (let i = 0; i < 1000; i++) deep = [deep]
    assert.doesNotThrow(() => loads(dumps(deep, 4)))
    assert.throws(() => loads(dumps([deep], 4)), /nested more than 1000 deep/)
    assert.throws(() => loads(dumps({ a: 'x'.repeat(100) }, 4), { maxBytes: 50 }), /over the 50-byte limit/)
    assert.throws(() => loads(dumps(['a', 'b', 'c'], 4), { maxMemo: 2 }), /more than 2 memo entries/)
  })

  it('refuses a "billion laughs" of shared lists past maxNodes, with bounded work', () => {
    // l0 = [1, 1]; l(n) = [l(n-1), l(n-1)]: 40 levels in 500 bytes reference 2**40 leaves.
    const parts: Buffer[] = [Buffer.from('8004', 'hex')]
    const binget = (i: number) => Buffer.concat([Buffer.from([0x6a]), Buffer.from(new Uint32Array([i]).buffer)])
    parts.push(Buffer.from(']\x94(K\x01K\x01e0', 'latin1'))
    for (let i = 1; i <= 40; i++) parts.push(Buffer.from(']\x94(', 'latin1'), binget(i - 1), binget(i - 1), Buffer.from(i === 40 ? 'e.' : 'e0', 'latin1'))
    const bomb = Buffer.concat(parts)
    assert.ok(bomb.length < 1000)
    const started = process.cpuUsage()
    assert.throws(() => loads(bomb), /more than 1000000 values/)
    const used = process.cpuUsage(started)
    assert.ok((used.user + used.system) / 1000 < 5000, 'bounded work')
    // A small sharing is copied, not refused.
    assert.deepEqual(loads(Buffer.concat([...parts.slice(0, 2), Buffer.from(']\x94(', 'latin1'), binget(0), binget(0), Buffer.from('e.', 'latin1')])), [[1, 1], [1, 1]])
  })
})

describe('dumps refuses what the JSON subset does not hold', () => {
  for (const [name, value, pattern] of [
    ['undefined', { a: undefined }, /undefined at \$\["a"\]/],
    ['a function', { f: () => 1 }, /a function at \$\["f"\]/],
    ['a symbol', [Symbol('x')], /a symbol at \$\[0\]/],
    ['a Set', { s: new Set([1]) }, /an instance of Set/],
    ['a Buffer', { b: Buffer.from('x') }, /an instance of Buffer/],
    ['a class instance', { c: new (class Point { x = 1 })() }, /an instance of Point/],
    ['a Map key that is not a string', new Map([[1, 'one']]), /a Map key of type number/],
  ] as const) {
    it(`refuses ${name}, naming the path`, () => {
      assert.throws(() => dumps(value, 4), (error: unknown) => error instanceof TypeError && pattern.test(error.message))
    })
  }

  it('refuses a cycle and nesting past 1000', () => {
    const cyclic: unknown[] = []
    cyclic.push(cyclic)
    assert.throws(() => dumps({ c: cyclic }, 4), /contains itself/)
    let deep: unknown = 1
    for (let i = 0; i < 1001; i++) deep = [deep]
    assert.throws(() => dumps(deep, 4), /nested more than 1000 deep/)
  })

  it('writes a Date as its ISO string, as JSON.stringify does, and a Map as a dict in insertion order', () => {
    const when = new Date(Date.UTC(2030, 0, 2))
    assertSame(loads(dumps(new Map<string, unknown>([['z', 1], ['a', when]]), 5)), { z: 1, a: '2030-01-02T00:00:00.000Z' })
    assert.deepEqual(Object.keys(loads(dumps(new Map([['z', 1], ['a', 2]]), 5)) as object), ['z', 'a'])
  })
})

// ------------------------------------------------------------------------------ live Python

const python = probeDjango()
const pythonMissing = python.ok || spawnSync(PYTHON, ['-c', 'import pickle'], { encoding: 'utf8' }).status === 0 ? null : `no Python at ${PYTHON}`
const ci = Boolean(process.env['CI'])

/** Python reads each pickle, compares it with the tagged value it builds itself, and pickles it again with the same protocol. */
const PY_CHECK = String.raw`
import base64, json, pickle, sys
def untag(v):
    if isinstance(v, list): return [untag(x) for x in v]
    if isinstance(v, dict):
        if "$tuple" in v: return tuple(untag(x) for x in v["$tuple"])
        if "$int" in v: return int(v["$int"])
        if "$float" in v: return float(v["$float"])
        return {k: untag(x) for k, x in v.items()}
    return v
def same(a, b):
    if type(a) is not type(b): return False
    if isinstance(a, float): return (a != a and b != b) or (a == b and str(a) == str(b))
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict): return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b
out = []
for line in sys.stdin:
    case = json.loads(line)
    data = base64.b64decode(case["pickle"])
    value = pickle.loads(data)
    out.append({"equal": same(value, untag(case["value"])), "again": base64.b64encode(pickle.dumps(value, case["protocol"])).decode()})
print(json.dumps(out))
`

/** Tag a codec value for Python (the fixture's format). */
function tag(v: unknown): unknown {
  if (typeof v === 'bigint') return { $int: v.toString() }
  if (typeof v === 'number') return Number.isSafeInteger(v) && !Object.is(v, -0) ? v : { $float: Number.isNaN(v) ? 'nan' : Object.is(v, -0) ? '-0.0' : v === Infinity ? 'inf' : v === -Infinity ? '-inf' : String(v) }
  if (Array.isArray(v)) return isTuple(v) ? { $tuple: (v as unknown[]).map(tag) } : v.map(tag)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, tag(x)]))
  return v
}

/** Random values of the JSON subset, with tuples, big ints, special floats, lone surrogates and long strings. */
const pyValue: fc.Arbitrary<PyValue> = fc.letrec<{ value: PyValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom<PyValue>(null, true, false, 0, -0, 255, 256, 65536, -1, 2 ** 31, -(2 ** 31) - 1, 2 ** 53, Number.NaN, Infinity, 1e300, '\ud800', '😀', 'x'.repeat(65536)),
    fc.integer(),
    fc.bigInt({ min: -(2n ** 300n), max: 2n ** 300n }),
    fc.double(),
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.string({ unit: 'grapheme', maxLength: 300 }),
    fc.array(tie('value'), { maxLength: 6 }),
    fc.array(tie('value'), { maxLength: 4 }).map((items) => tuple(...items)),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 6 }).map((d) => d as PyValue),
  ),
})).value

describe('live: Python reads what sessionkit pickles', { skip: pythonMissing && !ci ? pythonMissing : false }, () => {
  it('reads random JSON-subset values equal in protocols 2 to 5, and pickles them again to the very same bytes', { timeout: 120_000 }, () => {
    if (pythonMissing) assert.fail(`${pythonMissing} (required under CI)`)
    const cases: { value: unknown; protocol: PickleProtocol; pickle: string }[] = []
    const samples = fc.sample(fc.tuple(pyValue, fc.constantFrom<PickleProtocol>(2, 3, 4, 5)), { numRuns: 400, seed: 17 })
    // Large values too: frames, batches of 1000, big strings.
    samples.push([{ big: Array.from({ length: 2500 }, (_, i) => ({ i, s: 'é'.repeat(i % 50) })) }, 4])
    samples.push([{ a: 'x'.repeat(70_000), b: ['y'.repeat(40_000), 'z'.repeat(40_000)] }, 5])
    for (const [value, protocol] of samples) {
      // Python sees a str with lone surrogates as is; both sides must agree on that too.
      cases.push({ value: tag(value), protocol, pickle: dumps(value, protocol).toString('base64') })
    }
    const run = spawnSync(PYTHON, ['-c', PY_CHECK], { input: cases.map((c) => JSON.stringify(c)).join('\n'), encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
    assert.equal(run.status, 0, run.stderr)
    const answers = JSON.parse(run.stdout) as { equal: boolean; again: string }[]
    assert.equal(answers.length, cases.length)
    answers.forEach((answer, i) => {
      assert.equal(answer.equal, true, `case ${i}: Python read another value: ${JSON.stringify(cases[i]!.value).slice(0, 300)}`)
      assert.equal(answer.again, cases[i]!.pickle, `case ${i}: Python pickles it to other bytes (protocol ${cases[i]!.protocol})`)
    })
  })
})
