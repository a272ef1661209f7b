/**
 * The session codec's memory of what it signed (src/codec.ts, `createCodec`): decoding a
 * string the codec made itself (remembered: one `JSON.parse`) against decoding the same string
 * in a second codec with the same key (not remembered: HMAC, base64, `JSON.parse`), and
 * `encode` for scale. Interleaved, 5 rounds: `node --import tsx experiments/codec-memo.ts`.
 */
import { buildSessionkit } from '../lib/build.ts'
import { SECRET } from '../lib/config.ts'

process.env.BENCH_SESSIONKIT ??= buildSessionkit().dir
const { skCodec, skSettings } = await import('../lib/sk.ts')
const { createCodec } = await skCodec()
const { resolveSettings } = await skSettings()

const settings = resolveSettings({ secretKey: SECRET })
const writer = createCodec(settings)
const data = new Map<string, unknown>([['n', 17], ['_auth_user_id', '42'], ['cart', [1, 2, 3]]])
const encoded = writer.encode(data)

let sink = 0
function usPer(fn: () => unknown, n = 100_000): number {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) {
    const out = fn() as Map<string, unknown> | string
    sink += typeof out === 'string' ? out.length : out.size
  }
  return Number(process.hrtime.bigint() - t0) / n / 1000
}

const cases: [string, () => unknown][] = [
  ['decode, remembered (this codec signed it)', () => writer.decode(encoded, 'bench')],
  ['encode', () => writer.encode(data)],
]
const rounds = new Map<string, number[]>()
for (let round = 0; round < 5; round++) {
  for (const [name, fn] of cases) rounds.set(name, [...(rounds.get(name) ?? []), usPer(fn)])
}
// Not remembered: a fresh codec with the same key for every decode (made before the clock starts).
const fresh: number[] = []
for (let round = 0; round < 5; round++) {
  const n = 20_000
  const codecs = Array.from({ length: n }, () => createCodec(settings))
  const t0 = process.hrtime.bigint()
  for (const codec of codecs) sink += codec.decode(encoded, 'bench').size
  fresh.push(Number(process.hrtime.bigint() - t0) / n / 1000)
}
rounds.set('decode, verified (another codec, same key)', fresh)
for (const [name, us] of rounds) {
  const median = [...us].sort((a, b) => a - b)[2]!
  console.log(`${name.padEnd(45)} ${median.toFixed(2)} µs (median of 5)`)
}
if (sink === 0) console.log('')
