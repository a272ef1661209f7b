/**
 * Session serializers: turn session data into bytes and back.
 *
 * Import from `sessionkit` (or `sessionkit/signing`, which re-exports them).
 *
 * Django: `django.core.signing.JSONSerializer`
 * (`django.contrib.sessions.serializers.JSONSerializer` is an alias).
 */

/**
 * Turns a value into bytes and back. `dumps` throws on a value it cannot represent;
 * `loads` throws on bytes it cannot read (the signer turns that into `BadPayload`).
 *
 * Django: the `SESSION_SERIALIZER` protocol (`dumps(obj) -> bytes`, `loads(bytes) -> obj`).
 */
export interface Serializer {
  dumps(obj: unknown): Buffer
  loads(data: Buffer): unknown
}

/** Any code unit Python's `json.dumps(ensure_ascii=True)` escapes that `JSON.stringify` leaves raw. */
const NON_ASCII = /[\u007f-\uffff]/
const NON_ASCII_ALL = /[\u007f-\uffff]/g
const escapeUnit = (c: string): string => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')

/** Thrown inside the fast pass; never escapes this module. */
const BAD = Symbol('bad JSON value')

/** Why `value` cannot be written as JSON, or `undefined` when it can (before `Map` handling). */
function badValue(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined
    case 'number':
      return Number.isFinite(value) ? undefined : String(value)
    case 'object':
      return value instanceof Set ? 'a Set' : undefined
    case 'undefined':
      return 'undefined'
    case 'bigint':
      return 'a BigInt'
    case 'symbol':
      return 'a symbol'
    default:
      return 'a function'
  }
}

/** Python's `json.dumps` key coercion: str, int, float, bool and None become strings. */
function mapKey(k: unknown, path: string): string {
  if (typeof k === 'string') return k
  if ((typeof k === 'number' && Number.isFinite(k)) || typeof k === 'boolean' || k === null) {
    return String(k)
  }
  throw new TypeError(
    `sessionkit: cannot serialise a Map key of type ${k === undefined ? 'undefined' : typeof k} ` +
      `at ${path || '$'} to JSON (keys must be strings, finite numbers, booleans or null)`,
  )
}

/**
 * A stand-in for `map` that `JSON.stringify` writes as an object with the Map's keys in
 * insertion order. A plain object is used unless a key starts with a digit: V8 lists
 * array-index keys ("0", "12") first, so those Maps go through a Proxy whose `ownKeys`
 * keeps the Map's order, as Python's dict does.
 */
function mapToJSON(map: Map<unknown, unknown>, path: string): object {
  const entries: [string, unknown][] = []
  let digitKey = false
  let coerced = false
  for (const [k, v] of map) {
    let key: string
    if (typeof k === 'string') key = k
    else {
      key = mapKey(k, path)
      coerced = true
    }
    const c = key.charCodeAt(0)
    if (c >= 48 && c <= 57) digitKey = true
    entries.push([key, v])
  }
  // Object.fromEntries defines properties (no `__proto__` setter is ever called).
  const obj: Record<string, unknown> = Object.fromEntries(entries)
  if (coerced && Object.keys(obj).length !== entries.length) {
    throw new TypeError(
      `sessionkit: cannot serialise the Map at ${path || '$'} to JSON: two keys become the same string`,
    )
  }
  if (!digitKey) return obj
  const keys = entries.map((e) => e[0])
  return new Proxy(obj, {
    ownKeys: () => keys,
  })
}

function fastReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null) {
    if (value instanceof Map) return mapToJSON(value, '')
    if (value instanceof Set) throw BAD
    return value
  }
  if (badValue(value) !== undefined) throw BAD
  return value
}

/**
 * The slow pass, run only after the fast one failed: the same traversal, tracking the key
 * path of every container so the error can name where the bad value sits.
 */
function explain(obj: unknown): void {
  const paths = new WeakMap<object, string>()
  let root = true
  JSON.stringify(obj, function (this: unknown, key: string, value: unknown): unknown {
    let path = '$'
    if (root) root = false
    else {
      const parent = typeof this === 'object' && this !== null ? (paths.get(this) ?? '$') : '$'
      path = Array.isArray(this) ? `${parent}[${key}]` : `${parent}[${JSON.stringify(key)}]`
    }
    const bad = badValue(value)
    if (bad !== undefined) {
      throw new TypeError(
        `sessionkit: cannot serialise ${bad} at ${path} to JSON ` +
          '(Django would refuse it too, when the session is saved)',
      )
    }
    if (typeof value !== 'object' || value === null) return value
    const out = value instanceof Map ? mapToJSON(value, path) : value
    paths.set(out, path)
    return out
  })
}

/**
 * JSON, byte-compatible with Django's serializer:
 * `json.dumps(obj, separators=(",", ":")).encode("latin-1")` and
 * `json.loads(data.decode("latin-1"))`.
 *
 * `dumps`:
 * - escapes every UTF-16 code unit outside U+0020–U+007E as `\uXXXX` with lowercase hex
 *   (U+007F too; astral characters become surrogate pairs), as `ensure_ascii=True` does;
 * - writes a `Map` (sessions keep their data in `Map<string, unknown>`) as a JSON object in
 *   insertion order; keys that are numbers, booleans or null become strings, as in Python;
 * - throws a `TypeError` naming the key path (`$["cart"][2]`) for `undefined`, functions,
 *   symbols, BigInt, `Set`, NaN and ±Infinity: `JSON.stringify` would drop or mangle them
 *   silently, and Django cannot store them either (Python writes NaN, but that is not JSON);
 * - calls `toJSON` as `JSON.stringify` does (a `Date` becomes its ISO string).
 *
 * Known differences from Python, by design of JS numbers: an integer-valued float is
 * written `1`, not `1.0`; exponents are `1e-7`, not `1e-07`; integers beyond 2**53 lose
 * precision on `loads`, and 1e21 and up are written in exponent form.
 *
 * `loads` decodes latin-1 and calls `JSON.parse`, which returns plain objects (a
 * `"__proto__"` key becomes an own data property, never the prototype). It throws a
 * `SyntaxError` on bad JSON, including Python's `NaN`/`Infinity` extensions.
 */
export const JSONSerializer: Serializer = Object.freeze({
  dumps(obj: unknown): Buffer {
    let json: string | undefined
    try {
      json = JSON.stringify(obj, fastReplacer)
    } catch (err) {
      explain(obj) // throws the precise error; returns only if the failure was not ours
      throw err === BAD ? new TypeError('sessionkit: value cannot be serialised to JSON') : err
    }
    if (NON_ASCII.test(json)) json = json.replace(NON_ASCII_ALL, escapeUnit)
    return Buffer.from(json, 'latin1')
  },
  loads(data: Buffer): unknown {
    return JSON.parse(data.toString('latin1'))
  },
})
