/** Reading the pickle fixtures (test/fixtures/pickle-vectors.json): their compressed bytes and tagged values. */
import assert from 'node:assert/strict'
import { inflateSync } from 'node:zlib'
import { isTuple, tuple, type PyValue } from '../../src/caches/pickle.ts'

/** A fixture pickle: base64 of zlib of the bytes. */
export function unpack(b64: string): Buffer {
  return inflateSync(Buffer.from(b64, 'base64'))
}

/** The fixture's tagged JSON as the codec's values. */
export function untag(v: unknown): PyValue {
  if (Array.isArray(v)) return v.map(untag)
  if (v === null || typeof v !== 'object') return v as PyValue
  const o = v as Record<string, unknown>
  if ('$tuple' in o) return tuple(...(o['$tuple'] as unknown[]).map(untag))
  if ('$int' in o) return BigInt(o['$int'] as string)
  if ('$repeat' in o) {
    const [s, n] = o['$repeat'] as [string, number]
    return s.repeat(n)
  }
  if ('$float' in o) {
    const r = o['$float'] as string
    return r === 'nan' ? Number.NaN : r === 'inf' ? Infinity : r === '-inf' ? -Infinity : Number(r)
  }
  const out: Record<string, PyValue> = {}
  for (const [k, x] of Object.entries(o)) Object.defineProperty(out, k, { value: untag(x), enumerable: true, writable: true, configurable: true })
  return out
}

/** Equal as Python values: tuples are tuples, ints stay ints (number or bigint), −0 and NaN exact. */
export function assertSame(actual: unknown, expected: unknown, path = '$'): void {
  if (typeof expected === 'number') {
    assert.equal(typeof actual, 'number', `${path}: ${String(actual)} is not a number`)
    assert.ok(Object.is(actual, expected), `${path}: ${String(actual)} !== ${String(expected)}`)
  } else if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: not an array`)
    assert.equal(isTuple(actual), isTuple(expected), `${path}: tuple vs list`)
    assert.equal(actual.length, expected.length, `${path}: length`)
    expected.forEach((x, i) => assertSame((actual as unknown[])[i], x, `${path}[${i}]`))
  } else if (expected !== null && typeof expected === 'object') {
    assert.ok(actual !== null && typeof actual === 'object' && !Array.isArray(actual), `${path}: not a dict`)
    assert.deepEqual(Object.keys(actual), Object.keys(expected), `${path}: keys`)
    assert.equal(Object.getPrototypeOf(actual), Object.prototype, `${path}: a plain object`)
    for (const k of Object.keys(expected)) assertSame((actual as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k], `${path}[${JSON.stringify(k)}]`)
  } else assert.equal(actual, expected, path)
}
