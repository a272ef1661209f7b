/**
 * Python's pickle, for the JSON subset only: what Django's cache backends store for a session
 * (a pickled `dict`), read and written without executing anything.
 *
 * - {@link loads} reads protocols 0 to 5 (`pickle.loads`), building only `dict`, `list`,
 *   `tuple`, `str`, `int` (a `bigint` beyond 2**53), `float`, `bool` and `None`. Every opcode
 *   that imports or calls code (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`,
 *   `NEWOBJ`, `NEWOBJ_EX`, `EXT1/2/4`, `PERSID`, `BINPERSID`) is refused before anything is
 *   built, as are the types outside the subset (bytes, bytearray, sets, out-of-band buffers)
 *   and dict keys that are not strings: a `datetime` or a class instance in a session is a
 *   {@link PickleError}, never code run. Input, nesting, memo and integer sizes are bounded;
 *   the result is always a tree (an object referenced twice is copied, up to a node budget).
 * - {@link dumps} writes what CPython's C pickler writes for the same data (protocols 2 to 5:
 *   framing, memo, batches of 1000, the large-string rule), byte for byte, so that Python's
 *   `pickle.loads` reads it back equal.
 *
 * How JavaScript values map: a `dict` is a plain object (`__proto__` is an own key, never the
 * prototype); a `list` an array; a `tuple` a frozen array that {@link isTuple} recognises and
 * {@link dumps} writes back as a tuple ({@link tuple} makes one); an `int` a number, or a
 * `bigint` outside ±(2**53 − 1); a `float` a number. A JavaScript number that is a safe integer
 * (other than −0) is written as an `int` — Python's `1.0` comes back as `1`, as with JSON —
 * and any other number as a `float`.
 *
 * Python: `pickle` (`Lib/pickle.py`, `Modules/_pickle.c`).
 */
import { PickleError } from '../errors.js'

/** What {@link loads} may return and {@link dumps} writes. */
export type PyValue = null | boolean | number | bigint | string | readonly PyValue[] | { [key: string]: PyValue }

/** Bounds of {@link loads}. */
export interface PickleLimits {
  /** Largest input, in bytes. Default 16 MiB (the codec's cap on stored session data). */
  maxBytes?: number
  /** Deepest nesting of containers. Default 1000 (Python's own recursion limit when it pickles). */
  maxDepth?: number
  /** Most values in the result, counting a copied shared one each time. Default 1,000,000. */
  maxNodes?: number
  /** Most memo entries. Default 1,000,000. */
  maxMemo?: number
}

const DEFAULTS: Required<PickleLimits> = { maxBytes: 16 * 1024 * 1024, maxDepth: 1000, maxNodes: 1_000_000, maxMemo: 1_000_000 }

/** Python's `sys.int_info.default_max_str_digits`: longer decimal integers are refused, as Python refuses them. */
const MAX_INT_DIGITS = 4300
/** The longest binary integer (`LONG1`/`LONG4`) read, in bytes: 4300 decimal digits fit in 1786. */
const MAX_LONG_BYTES = 1800

const TUPLES = new WeakSet<readonly unknown[]>()

/** A Python tuple: a frozen array that {@link dumps} writes as a tuple (a plain array is a list). */
export function tuple(...items: PyValue[]): readonly PyValue[] {
  const t = Object.freeze(items)
  TUPLES.add(t)
  return t
}

/** Whether `value` is a tuple made by {@link tuple} or read by {@link loads}. */
export function isTuple(value: unknown): boolean {
  return Array.isArray(value) && TUPLES.has(value)
}

// ---------------------------------------------------------------------------------- opcodes

/** Opcodes that import or call code: refused, by name. */
const CODE: Record<number, string> = {
  0x63: 'GLOBAL', // c
  0x93: 'STACK_GLOBAL',
  0x52: 'REDUCE', // R
  0x62: 'BUILD', // b
  0x69: 'INST', // i
  0x6f: 'OBJ', // o
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x50: 'PERSID', // P
  0x51: 'BINPERSID', // Q
}

/** Opcodes of types outside the JSON subset: refused, by name and type. */
const OUTSIDE: Record<number, string> = {
  0x42: 'BINBYTES (bytes)', // B
  0x43: 'SHORT_BINBYTES (bytes)', // C
  0x8e: 'BINBYTES8 (bytes)',
  0x96: 'BYTEARRAY8 (bytearray)',
  0x97: 'NEXT_BUFFER (an out-of-band buffer)',
  0x98: 'READONLY_BUFFER (an out-of-band buffer)',
  0x8f: 'EMPTY_SET (set)',
  0x90: 'ADDITEMS (set)',
  0x91: 'FROZENSET (frozenset)',
}

const MARK = Symbol('mark')

/** A dict or list while it is being built, and a tuple once made; finished values stay plain. */
type Built = PyValue

function fail(message: string, at?: number): never {
  throw new PickleError(`sessionkit: unreadable pickle: ${message}${at === undefined ? '' : ` (at byte ${at})`}`)
}

const UTF8 = new TextDecoder('utf-8', { fatal: true })

const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }).latin1Slice

/** `data[start, end)` as `decodeUtf8` reads it; ASCII (keys, ids, hashes: the usual case) without a decoder or a copy. */
function decodeUtf8Range(data: Uint8Array, start: number, end: number, at: number): string {
  let i = start
  while (i < end && data[i]! < 0x80) i++
  if (i === end) return latin1Slice.call(data, start, end)
  return decodeUtf8(data.subarray(start, end), at)
}

/** Python's `bytes.decode('utf-8', 'surrogatepass')`: strict UTF-8, lone surrogates (ED A0–BF xx) allowed. */
function decodeUtf8(bytes: Uint8Array, at: number): string {
  try {
    return UTF8.decode(bytes)
  } catch {
    // A lone surrogate, or invalid UTF-8: the slow path tells them apart.
  }
  let out = ''
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!
    let cp: number
    let n: number
    if (b < 0x80) (cp = b), (n = 1)
    else if (b >= 0xc2 && b < 0xe0) (cp = b & 0x1f), (n = 2)
    else if (b >= 0xe0 && b < 0xf0) (cp = b & 0x0f), (n = 3)
    else if (b >= 0xf0 && b < 0xf5) (cp = b & 0x07), (n = 4)
    else fail('a string is not valid UTF-8', at)
    if (i + n > bytes.length) fail('a string is not valid UTF-8', at)
    for (let k = 1; k < n; k++) {
      const c = bytes[i + k]!
      if ((c & 0xc0) !== 0x80) fail('a string is not valid UTF-8', at)
      cp = (cp << 6) | (c & 0x3f)
    }
    if ((n === 3 && cp < 0x800) || (n === 4 && (cp < 0x10000 || cp > 0x10ffff))) fail('a string is not valid UTF-8 (overlong)', at)
    out += String.fromCodePoint(cp)
    i += n
  }
  return out
}

/** Python's `str.encode('utf-8', 'surrogatepass')`: a lone surrogate becomes its 3-byte form, as CPython writes it. */
function encodeUtf8(s: string): Buffer {
  if (!LONE_SURROGATE.test(s)) return Buffer.from(s, 'utf8')
  const parts: number[] = []
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i)
    if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < s.length) {
      const low = s.charCodeAt(i + 1)
      if (low >= 0xdc00 && low < 0xe000) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00)
        i++
      }
    }
    if (cp < 0x80) parts.push(cp)
    else if (cp < 0x800) parts.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f))
    else if (cp < 0x10000) parts.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f))
    else parts.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f))
  }
  return Buffer.from(parts)
}
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
const ASCII = /^[\x00-\x7f]*$/

/** Python's `raw_unicode_escape` decoding (protocol 0 `UNICODE`): `\uXXXX`/`\UXXXXXXXX` after an odd run of backslashes; other bytes are Latin-1. */
function decodeRawUnicodeEscape(bytes: Uint8Array, at: number): string {
  let out = ''
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!
    if (b !== 0x5c) {
      out += String.fromCharCode(b)
      i++
      continue
    }
    let run = 0
    while (i + run < bytes.length && bytes[i + run] === 0x5c) run++
    out += '\\'.repeat(run - 1)
    i += run - 1 // the last backslash of the run may start an escape
    const next = bytes[i + 1]
    if (run % 2 === 1 && (next === 0x75 || next === 0x55)) {
      const digits = next === 0x75 ? 4 : 8
      const hex = Buffer.from(bytes.subarray(i + 2, i + 2 + digits)).toString('latin1')
      if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(hex)) fail('a truncated \\uXXXX escape in UNICODE', at)
      const cp = parseInt(hex, 16)
      if (cp > 0x10ffff) fail('a \\U escape beyond U+10FFFF in UNICODE', at)
      out += String.fromCodePoint(cp)
      i += 2 + digits
    } else {
      out += '\\'
      i++
    }
  }
  return out
}

const SIMPLE_ESCAPES: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\n': '' }

/** Python 2's `str` repr (protocol 0 `STRING`), read as Python 3 does with the default `encoding='ASCII'`. */
function decodeStringRepr(text: string, at: number): string {
  const q = text[0]
  if (text.length < 2 || (q !== "'" && q !== '"') || text[text.length - 1] !== q) fail('the STRING opcode argument must be quoted', at)
  const body = text.slice(1, -1)
  let out = ''
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!
    if (c !== '\\') {
      out += c
      continue
    }
    const e = body[++i]
    if (e === undefined) fail('a trailing backslash in STRING', at)
    if (e in SIMPLE_ESCAPES) out += SIMPLE_ESCAPES[e]
    else if (e === 'x') {
      const hex = body.slice(i + 1, i + 3)
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) fail('an invalid \\x escape in STRING', at)
      out += String.fromCharCode(parseInt(hex, 16))
      i += 2
    } else if (e >= '0' && e <= '7') {
      const oct = /^[0-7]{1,3}/.exec(body.slice(i))![0]
      out += String.fromCharCode(parseInt(oct, 8) & 0xff)
      i += oct.length - 1
    } else out += '\\' + e
  }
  if (/[^\x00-\x7f]/.test(out)) fail('a Python 2 str with non-ASCII bytes (Python 3 reads it only with encoding="bytes")', at)
  return out
}

function checkAscii(bytes: Uint8Array, at: number): string {
  for (const b of bytes) if (b > 0x7f) fail('a Python 2 str with non-ASCII bytes (Python 3 reads it only with encoding="bytes")', at)
  return Buffer.from(bytes).toString('latin1')
}

const DECIMAL = /^\s*[+-]?\d+\s*$/
const FLOAT_TEXT = /^\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)\s*$/i

/** A decimal integer as Python's `int()` reads it: a number when it is safe, else a bigint. */
function parseDecimal(text: string, at: number): number | bigint {
  if (!DECIMAL.test(text)) fail(`an integer that is not decimal: ${JSON.stringify(text.slice(0, 40))}`, at)
  const trimmed = text.trim()
  if (trimmed.replace(/^[+-]/, '').length > MAX_INT_DIGITS) fail(`an integer of more than ${MAX_INT_DIGITS} digits (Python refuses them too)`, at)
  return normalInt(BigInt(trimmed))
}

function parseFloatText(text: string, at: number): number {
  if (!FLOAT_TEXT.test(text)) fail(`a float Python would not read: ${JSON.stringify(text.slice(0, 40))}`, at)
  const t = text.trim().toLowerCase()
  const sign = t.startsWith('-') ? -1 : 1
  const bare = t.replace(/^[+-]/, '')
  if (bare === 'nan') return Number.NaN
  if (bare === 'inf' || bare === 'infinity') return sign * Number.POSITIVE_INFINITY
  return Number(t)
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

/** A number when exactly representable as a safe integer, else the bigint. */
function normalInt(n: bigint): number | bigint {
  return n <= MAX_SAFE && n >= -MAX_SAFE ? Number(n) : n
}

/** Python's `decode_long`: little-endian two's complement. */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0
  let n = BigInt('0x' + Buffer.from(bytes).reverse().toString('hex'))
  if (bytes[bytes.length - 1]! & 0x80) n -= 1n << BigInt(bytes.length * 8)
  return normalInt(n)
}

function isDict(v: unknown): v is Record<string, PyValue> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function setKey(dict: Record<string, PyValue>, key: unknown, value: unknown, at: number): void {
  if (typeof key !== 'string') {
    fail(`a dict key of type ${pyType(key)}, not str (only string keys are in the JSON subset)`, at)
  }
  if (key === '__proto__') Object.defineProperty(dict, key, { value, writable: true, enumerable: true, configurable: true })
  else dict[key] = value as PyValue
}

function pyType(v: unknown): string {
  if (v === null) return 'NoneType'
  if (typeof v === 'boolean') return 'bool'
  if (typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v))) return 'int'
  if (typeof v === 'number') return 'float'
  if (typeof v === 'string') return 'str'
  if (isTuple(v)) return 'tuple'
  if (Array.isArray(v)) return 'list'
  return 'dict'
}

/**
 * Read a pickle of the JSON subset. Executes nothing; throws {@link PickleError} (never
 * anything else) for an opcode that imports or calls code, a value outside the subset, a
 * non-string dict key, a malformed stream, trailing bytes after `STOP`, or input past `limits`.
 *
 * Python: `pickle.loads(data)`.
 */
export function loads(data: Uint8Array, limits: PickleLimits = {}): PyValue {
  const { maxBytes, maxDepth, maxNodes, maxMemo } = { ...DEFAULTS, ...limits }
  if (!(data instanceof Uint8Array)) throw new TypeError('sessionkit: pickle loads() takes bytes (a Buffer or Uint8Array)')
  if (data.length > maxBytes) fail(`${data.length} bytes, over the ${maxBytes}-byte limit`)
  const stack: (Built | typeof MARK)[] = []
  const memo = new Map<number, Built>()
  /** Whether a container was fetched from the memo: the result may share or cycle, and is copied. */
  let shared = false
  let pos = 0

  const need = (n: number, at: number): void => {
    if (n < 0 || pos + n > data.length) fail('the stream ends inside an opcode', at)
  }
  const bytes = (n: number, at: number): Uint8Array => {
    need(n, at)
    const out = data.subarray(pos, pos + n)
    pos += n
    return out
  }
  const u8 = (at: number): number => {
    need(1, at)
    return data[pos++]!
  }
  /** A UTF-8 string of `n` bytes at the read position. */
  const text = (n: number, at: number): string => {
    need(n, at)
    const start = pos
    pos += n
    return decodeUtf8Range(data, start, pos, at)
  }
  const u16 = (at: number): number => {
    const b = bytes(2, at)
    return b[0]! | (b[1]! << 8)
  }
  const u32 = (at: number): number => {
    need(4, at)
    const v = (data[pos]! | (data[pos + 1]! << 8) | (data[pos + 2]! << 16)) + data[pos + 3]! * 0x1000000
    pos += 4
    return v
  }
  const i32 = (at: number): number => u32(at) | 0
  const u64 = (at: number): number => {
    const lo = u32(at)
    const hi = u32(at)
    if (hi > 0x1fffff) fail('a length beyond 2**53', at)
    return hi * 0x100000000 + lo
  }
  const line = (at: number): string => {
    const end = data.indexOf(0x0a, pos)
    if (end < 0) fail('a text argument without its newline', at)
    const text = Buffer.from(data.subarray(pos, end)).toString('latin1')
    pos = end + 1
    return text
  }
  const push = (v: Built): void => void stack.push(v)
  const pop = (at: number): Built => {
    const v = stack.pop()
    if (v === undefined) fail('the stack is empty', at)
    if (v === MARK) fail('a value expected, a MARK found', at)
    return v
  }
  const top = (at: number): Built => {
    const v = stack[stack.length - 1]
    if (v === undefined || v === MARK) fail('the stack is empty', at)
    return v
  }
  /** The values above the topmost MARK, which is removed. */
  const popMark = (at: number): Built[] => {
    const i = stack.lastIndexOf(MARK)
    if (i < 0) fail('no MARK on the stack', at)
    const items = stack.splice(i + 1) as Built[]
    stack.pop()
    return items
  }
  const put = (index: number, at: number): void => {
    if (memo.size >= maxMemo && !memo.has(index)) fail(`more than ${maxMemo} memo entries`, at)
    memo.set(index, top(at))
  }
  const get = (index: number, at: number): void => {
    if (!memo.has(index)) fail(`memo entry ${index} was never stored`, at)
    const v = memo.get(index)!
    if (v !== null && typeof v === 'object') shared = true
    push(v)
  }
  const setItems = (dict: Built, items: Built[], at: number): void => {
    if (!isDict(dict) || Object.isFrozen(dict)) fail(`SETITEM(S) on a ${pyType(dict)}, not a dict`, at)
    if (items.length % 2) fail('SETITEMS with an odd number of values', at)
    for (let i = 0; i < items.length; i += 2) setKey(dict, items[i], items[i + 1], at)
  }
  const append = (list: Built, items: Built[], at: number): void => {
    if (!Array.isArray(list) || Object.isFrozen(list)) fail(`APPEND(S) on a ${pyType(list)}, not a list`, at)
    for (const item of items) (list as PyValue[]).push(item)
  }
  const makeTuple = (items: Built[]): Built => tuple(...items)

  for (;;) {
    const at = pos
    if (pos >= data.length) fail('the stream ends before STOP', at)
    const op = data[pos++]!
    switch (op) {
      case 0x80: { // PROTO
        const v = u8(at)
        if (v > 5) fail(`protocol ${v} (this reader knows 0 to 5)`, at)
        break
      }
      case 0x95: // FRAME: an 8-byte length; the frame's content follows
        if (u64(at) > data.length - pos) fail('a FRAME longer than the stream', at)
        break
      case 0x2e: { // STOP
        const value = pop(at)
        if (stack.length) fail('values left on the stack at STOP', at)
        if (pos !== data.length) fail(`${data.length - pos} bytes after STOP`, at)
        return finish(value, shared, maxDepth, maxNodes)
      }
      case 0x28: // MARK
        stack.push(MARK)
        break
      case 0x30: { // POP
        if (stack.length === 0) fail('POP on an empty stack', at)
        if (stack[stack.length - 1] === MARK) popMark(at)
        else stack.pop()
        break
      }
      case 0x31: // POP_MARK
        popMark(at)
        break
      case 0x32: // DUP
        push(top(at))
        break
      case 0x4e: // NONE
        push(null)
        break
      case 0x88: // NEWTRUE
        push(true)
        break
      case 0x89: // NEWFALSE
        push(false)
        break
      case 0x49: { // INT (text); "01"/"00" are True/False (protocol 0 and 1 bools)
        const text = line(at)
        if (text === '01') push(true)
        else if (text === '00') push(false)
        else push(parseDecimal(text, at))
        break
      }
      case 0x4c: { // LONG (text, trailing L)
        const text = line(at)
        push(parseDecimal(text.endsWith('L') ? text.slice(0, -1) : text, at))
        break
      }
      case 0x4a: // BININT
        push(i32(at))
        break
      case 0x4b: // BININT1
        push(u8(at))
        break
      case 0x4d: // BININT2
        push(u16(at))
        break
      case 0x8a: // LONG1
        push(decodeLong(bytes(u8(at), at)))
        break
      case 0x8b: { // LONG4
        const n = i32(at)
        if (n < 0) fail('LONG4 with a negative length', at)
        if (n > MAX_LONG_BYTES) fail(`an integer of ${n} bytes, over ${MAX_LONG_BYTES}`, at)
        push(decodeLong(bytes(n, at)))
        break
      }
      case 0x46: // FLOAT (text)
        push(parseFloatText(line(at), at))
        break
      case 0x47: { // BINFLOAT (big-endian double)
        const b = bytes(8, at)
        push(Buffer.from(b.buffer, b.byteOffset, 8).readDoubleBE(0))
        break
      }
      case 0x56: // UNICODE (raw-unicode-escape text)
        push(decodeRawUnicodeEscape(Buffer.from(line(at), 'latin1'), at))
        break
      case 0x8c: // SHORT_BINUNICODE
        push(text(u8(at), at))
        break
      case 0x58: // BINUNICODE
        push(text(u32(at), at))
        break
      case 0x8d: // BINUNICODE8
        push(text(u64(at), at))
        break
      case 0x53: // STRING (a Python 2 str repr)
        push(decodeStringRepr(line(at), at))
        break
      case 0x54: { // BINSTRING
        const n = i32(at)
        if (n < 0) fail('BINSTRING with a negative length', at)
        push(checkAscii(bytes(n, at), at))
        break
      }
      case 0x55: // SHORT_BINSTRING
        push(checkAscii(bytes(u8(at), at), at))
        break
      case 0x7d: // EMPTY_DICT
        push({})
        break
      case 0x5d: // EMPTY_LIST
        push([])
        break
      case 0x29: // EMPTY_TUPLE
        push(tuple())
        break
      case 0x64: { // DICT
        const items = popMark(at)
        const dict: Record<string, PyValue> = {}
        setItems(dict, items, at)
        push(dict)
        break
      }
      case 0x6c: // LIST
        push(popMark(at) as PyValue[])
        break
      case 0x74: // TUPLE
        push(makeTuple(popMark(at)))
        break
      case 0x85: // TUPLE1
        push(makeTuple([pop(at)]))
        break
      case 0x86: { // TUPLE2
        const b = pop(at)
        push(makeTuple([pop(at), b]))
        break
      }
      case 0x87: { // TUPLE3
        const c = pop(at)
        const b = pop(at)
        push(makeTuple([pop(at), b, c]))
        break
      }
      case 0x73: { // SETITEM
        const value = pop(at)
        const key = pop(at)
        setItems(top(at), [key, value], at)
        break
      }
      case 0x75: { // SETITEMS
        const items = popMark(at)
        setItems(top(at), items, at)
        break
      }
      case 0x61: { // APPEND
        const item = pop(at)
        append(top(at), [item], at)
        break
      }
      case 0x65: { // APPENDS
        const items = popMark(at)
        append(top(at), items, at)
        break
      }
      case 0x70: { // PUT (text index)
        const text = line(at)
        if (!/^\d{1,10}$/.test(text)) fail('PUT with an index that is not a number', at)
        put(Number(text), at)
        break
      }
      case 0x71: // BINPUT
        put(u8(at), at)
        break
      case 0x72: // LONG_BINPUT
        put(u32(at), at)
        break
      case 0x94: // MEMOIZE
        put(memo.size, at)
        break
      case 0x67: { // GET (text index)
        const text = line(at)
        if (!/^\d{1,10}$/.test(text)) fail('GET with an index that is not a number', at)
        get(Number(text), at)
        break
      }
      case 0x68: // BINGET
        get(u8(at), at)
        break
      case 0x6a: // LONG_BINGET
        get(u32(at), at)
        break
      default: {
        const hex = `0x${op.toString(16).padStart(2, '0')}`
        if (op in CODE) fail(`opcode ${CODE[op]} (${hex}) imports or calls code; refused, nothing was run`, at)
        if (op in OUTSIDE) fail(`opcode ${OUTSIDE[op]} (${hex}) is outside the JSON subset`, at)
        fail(`unknown opcode ${hex}`, at)
      }
    }
    if (stack.length > data.length) fail('the stack outgrew the stream', at)
  }
}

/**
 * Check the result: nesting within `maxDepth`, no cycle, and — when containers were
 * shared through the memo — a copy in which every container appears once, within `maxNodes`.
 */
function finish(value: Built, shared: boolean, maxDepth: number, maxNodes: number): PyValue {
  let nodes = 0
  const onPath = new Set<object>()
  const walk = (v: PyValue, depth: number): PyValue => {
    if (++nodes > maxNodes) fail(`more than ${maxNodes} values (shared values count each time they appear)`)
    if (v === null || typeof v !== 'object') return v
    if (depth > maxDepth) fail(`containers nested more than ${maxDepth} deep`)
    if (onPath.has(v)) fail('a container that contains itself (JSON has no cycles)')
    onPath.add(v)
    let out: PyValue
    if (Array.isArray(v)) {
      const items = (v as readonly PyValue[]).map((item) => walk(item, depth + 1))
      out = shared ? (isTuple(v) ? tuple(...items) : items) : v
    } else {
      const dict = v as Record<string, PyValue>
      if (shared) {
        const copy: Record<string, PyValue> = {}
        for (const key of Object.keys(dict)) setKey(copy, key, walk(dict[key]!, depth + 1), -1)
        out = copy
      } else {
        for (const key of Object.keys(dict)) walk(dict[key]!, depth + 1)
        out = v
      }
    }
    onPath.delete(v)
    return out
  }
  return walk(value as PyValue, 1)
}

// ---------------------------------------------------------------------------------- dumps

/** The protocols {@link dumps} writes. */
export type PickleProtocol = 2 | 3 | 4 | 5

/** CPython's frame target: a frame of 64 KiB or more is closed before the next value is written. */
const FRAME_SIZE_TARGET = 64 * 1024
const FRAME_SIZE_MIN = 4
/** CPython's batch size for `SETITEMS` and `APPENDS`. */
const BATCHSIZE = 1000
/** Deepest nesting written: Python's default recursion limit, past which Python cannot pickle either. */
const MAX_DUMP_DEPTH = 1000

/** A growable byte buffer. */
class Bytes {
  buf = Buffer.allocUnsafe(256)
  len = 0
  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.len + n) size *= 2
    const next = Buffer.allocUnsafe(size)
    this.buf.copy(next, 0, 0, this.len)
    this.buf = next
  }
  byte(b: number): void {
    this.reserve(1)
    this.buf[this.len++] = b
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length)
    this.buf.set(b, this.len)
    this.len += b.length
  }
  u32(n: number): void {
    this.reserve(4)
    this.buf.writeUInt32LE(n, this.len)
    this.len += 4
  }
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.len))
    this.len = 0
    return out
  }
}

function refuse(what: string, path: string): never {
  throw new TypeError(`sessionkit: cannot pickle ${what} at ${path} (the JSON subset: dict, list, tuple, str, int, float, bool, None)`)
}

/** Python's `encode_long`: minimal little-endian two's complement (`x.to_bytes((x.bit_length() >> 3) + 1, 'little', signed=True)`, trimmed). */
function encodeLong(n: bigint): Buffer {
  if (n === 0n) return Buffer.alloc(0)
  const magnitude = n < 0n ? -n : n
  const nbytes = (magnitude.toString(2).length >> 3) + 1
  const twos = n < 0n ? n + (1n << BigInt(nbytes * 8)) : n
  const out = Buffer.from(twos.toString(16).padStart(nbytes * 2, '0'), 'hex').reverse()
  if (n < 0n && nbytes > 1 && out[nbytes - 1] === 0xff && (out[nbytes - 2]! & 0x80) !== 0) return out.subarray(0, nbytes - 1)
  return out
}

/**
 * Write `value` as CPython's C pickler does (`pickle.dumps(value, protocol)`), for the JSON
 * subset: a `Map` with string keys or a plain object is a `dict`, an array a `list` (a
 * {@link tuple} a `tuple`), a string a `str`, a safe integer (or a `bigint`) an `int`, any other
 * number (−0, fractions, beyond 2**53, NaN, ±Infinity) a `float`, a boolean a `bool`, `null` `None`; a value
 * with `toJSON` (a `Date`) is written as what `toJSON` returns, as `JSON.stringify` does.
 * Anything else — `undefined`, functions, symbols, `Set`, buffers, class instances, a Map key that
 * is not a string, a cycle, nesting past 1000 — throws a `TypeError` naming the path.
 *
 * Python: `pickle.dumps(value, protocol)`; Django's cache backends use protocol 5
 * (`RedisCache`, pymemcache) or 4 (django-redis's default, `pickle.DEFAULT_PROTOCOL`).
 */
export function dumps(value: unknown, protocol: PickleProtocol = 5): Buffer {
  if (protocol !== 2 && protocol !== 3 && protocol !== 4 && protocol !== 5) {
    throw new RangeError(`sessionkit: pickle protocol must be 2, 3, 4 or 5, got ${String(protocol)}`)
  }
  const framing = protocol >= 4
  const chunks: Buffer[] = []
  const frame = new Bytes()
  const memo = new Map<object, number>()
  let memoSize = 0
  const onPath = new Set<object>()

  const commit = (): void => {
    if (frame.len === 0) return
    const data = frame.take()
    if (framing && data.length >= FRAME_SIZE_MIN) {
      const header = Buffer.alloc(9)
      header[0] = 0x95
      header.writeBigUInt64LE(BigInt(data.length), 1)
      chunks.push(header)
    }
    chunks.push(data)
  }
  const memoize = (obj: object | null): void => {
    const index = memoSize++
    if (obj !== null) memo.set(obj, index)
    if (protocol >= 4) frame.byte(0x94)
    else if (index < 256) (frame.byte(0x71), frame.byte(index))
    else (frame.byte(0x72), frame.u32(index))
  }
  const getMemo = (index: number): void => {
    if (index < 256) (frame.byte(0x68), frame.byte(index))
    else (frame.byte(0x6a), frame.u32(index))
  }

  /** CPython's shared strings: `''` and each one-character Latin-1 string are singletons, so a second one is a memo reference. */
  const singletons = new Map<string, number>()
  const saveStr = (s: string): void => {
    const singleton = s.length === 0 || (s.length === 1 && s.charCodeAt(0) < 256)
    if (singleton) {
      const known = singletons.get(s)
      if (known !== undefined) return getMemo(known)
      singletons.set(s, memoSize)
    }
    if (protocol >= 4 && s.length <= 0xff && ASCII.test(s)) {
      // The usual case: a short ASCII string, written in place (no intermediate buffer).
      frame.reserve(2 + s.length)
      frame.buf[frame.len++] = 0x8c
      frame.buf[frame.len++] = s.length
      frame.len += frame.buf.write(s, frame.len, 'latin1')
      return memoize(null)
    }
    const encoded = encodeUtf8(s)
    const n = encoded.length
    if (n <= 0xff && protocol >= 4) {
      frame.byte(0x8c)
      frame.byte(n)
      frame.bytes(encoded)
    } else {
      const header = Buffer.alloc(n > 0xffffffff ? 9 : 5)
      if (n > 0xffffffff) {
        header[0] = 0x8d
        header.writeBigUInt64LE(BigInt(n), 1)
      } else {
        header[0] = 0x58
        header.writeUInt32LE(n, 1)
      }
      if (framing && n >= FRAME_SIZE_TARGET) {
        // CPython writes large strings outside any frame.
        commit()
        chunks.push(header, encoded)
      } else {
        frame.bytes(header)
        frame.bytes(encoded)
      }
    }
    memoize(null) // any other string from JavaScript is a new object each time: memoized, never fetched again
  }

  const saveInt = (n: bigint | number): void => {
    if (typeof n === 'bigint') {
      if (n >= -0x80000000n && n <= 0x7fffffffn) return saveInt(Number(n))
    } else if (n >= 0 && n <= 0xff) {
      frame.byte(0x4b) // BININT1
      frame.byte(n)
      return
    } else if (n >= 0 && n <= 0xffff) {
      frame.byte(0x4d) // BININT2
      frame.byte(n & 0xff)
      frame.byte(n >> 8)
      return
    } else if (n >= -0x80000000 && n <= 0x7fffffff) {
      frame.byte(0x4a) // BININT
      frame.reserve(4)
      frame.buf.writeInt32LE(n, frame.len)
      frame.len += 4
      return
    }
    const encoded = encodeLong(BigInt(n))
    if (encoded.length < 256) {
      frame.byte(0x8a) // LONG1
      frame.byte(encoded.length)
    } else {
      frame.byte(0x8b) // LONG4
      frame.u32(encoded.length)
    }
    frame.bytes(encoded)
  }

  const saveFloat = (n: number): void => {
    frame.byte(0x47)
    frame.reserve(8)
    frame.buf.writeDoubleBE(n, frame.len)
    frame.len += 8
  }

  /** Entries of a dict-like value, in order; keys checked. */
  const entriesOf = (obj: object, path: string): [string, unknown][] => {
    if (obj instanceof Map) {
      const out: [string, unknown][] = []
      for (const [k, v] of obj) {
        if (typeof k !== 'string') refuse(`a Map key of type ${typeof k}`, path)
        out.push([k, v])
      }
      return out
    }
    return Object.keys(obj).map((k) => [k, (obj as Record<string, unknown>)[k]])
  }

  const save = (input: unknown, path: string, depth: number): void => {
    // CPython closes a frame when it has reached the target, before the next value.
    if (framing && frame.len >= FRAME_SIZE_TARGET) commit()
    let v = input
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) refuse(`an instance of ${(v as object).constructor.name} (bytes)`, path)
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      v = (v as { toJSON(key: string): unknown }).toJSON(path)
    }
    switch (typeof v) {
      case 'string':
        saveStr(v)
        break
      case 'boolean':
        frame.byte(v ? 0x88 : 0x89)
        break
      case 'number':
        // A safe integer is an int; beyond ±(2**53 − 1) a number is a double (Python's big ints read as bigints).
        if (Number.isSafeInteger(v) && !Object.is(v, -0)) saveInt(v)
        else saveFloat(v)
        break
      case 'bigint':
        saveInt(v)
        break
      case 'object': {
        if (v === null) {
          frame.byte(0x4e)
          break
        }
        const known = memo.get(v)
        if (known !== undefined && !onPath.has(v)) {
          getMemo(known)
          break
        }
        if (onPath.has(v)) refuse('a value that contains itself (a cycle)', path)
        if (depth > MAX_DUMP_DEPTH) refuse(`containers nested more than ${MAX_DUMP_DEPTH} deep`, path)
        onPath.add(v)
        if (Array.isArray(v)) saveSequence(v, isTuple(v), path, depth)
        else {
          const proto = Object.getPrototypeOf(v)
          if (!(v instanceof Map) && proto !== Object.prototype && proto !== null) {
            refuse(`an instance of ${(v as object).constructor?.name ?? 'a class'}`, path)
          }
          saveDict(entriesOf(v, path), v, path, depth)
        }
        onPath.delete(v)
        break
      }
      default:
        refuse(typeof v === 'undefined' ? 'undefined' : `a ${typeof v}`, path)
    }
  }

  const saveDict = (entries: [string, unknown][], obj: object, path: string, depth: number): void => {
    frame.byte(0x7d) // EMPTY_DICT
    memoize(obj)
    if (entries.length === 0) return
    const child = (k: string) => `${path}[${JSON.stringify(k)}]`
    if (entries.length === 1) {
      const [k, value] = entries[0]!
      save(k, path, depth + 1)
      save(value, child(k), depth + 1)
      frame.byte(0x73) // SETITEM
      return
    }
    // CPython's batch_dict_exact: MARK, up to 1000 pairs, SETITEMS; again while a batch was full
    // (so a multiple of 1000 ends with an empty MARK SETITEMS).
    let i = 0
    let inBatch: number
    do {
      inBatch = 0
      frame.byte(0x28) // MARK
      while (i < entries.length) {
        const [k, value] = entries[i++]!
        save(k, path, depth + 1)
        save(value, child(k), depth + 1)
        if (++inBatch === BATCHSIZE) break
      }
      frame.byte(0x75) // SETITEMS
    } while (inBatch === BATCHSIZE)
  }

  const saveSequence = (items: readonly unknown[], isTupleValue: boolean, path: string, depth: number): void => {
    const child = (i: number) => `${path}[${i}]`
    if (isTupleValue) {
      if (items.length === 0) return frame.byte(0x29) // EMPTY_TUPLE, not memoized
      if (items.length <= 3) {
        items.forEach((item, i) => save(item, child(i), depth + 1))
        frame.byte(0x84 + items.length) // TUPLE1..3
      } else {
        frame.byte(0x28)
        items.forEach((item, i) => save(item, child(i), depth + 1))
        frame.byte(0x74) // TUPLE
      }
      memoize(items)
      return
    }
    frame.byte(0x5d) // EMPTY_LIST
    memoize(items)
    if (items.length === 0) return
    if (items.length === 1) {
      save(items[0], child(0), depth + 1)
      frame.byte(0x61) // APPEND
      return
    }
    // CPython's batch_list_exact: MARK, up to 1000 items, APPENDS, while items remain.
    let i = 0
    while (i < items.length) {
      frame.byte(0x28)
      for (let inBatch = 0; i < items.length && inBatch < BATCHSIZE; inBatch++, i++) save(items[i], child(i), depth + 1)
      frame.byte(0x65) // APPENDS
    }
  }

  chunks.push(Buffer.from([0x80, protocol]))
  save(value, '$', 1)
  frame.byte(0x2e) // STOP
  commit()
  return Buffer.concat(chunks)
}
