/**
 * The long fuzzing run: every target of `test/helpers/fuzz-targets.ts` with 100 000 cases
 * (the checklist's bar), or `--cases N`.
 *
 *   npm run fuzz                          # 100 000 cases per target
 *   npm run fuzz -- --cases 1000000       # more
 *   npm run fuzz -- --only cookie --seed 42
 *
 * Prints, per target, the cases run, the time taken and how often each outcome came up;
 * exits 1 at the first property violation, with fast-check's counterexample and the seed
 * to replay it.
 */
import { parseArgs } from 'node:util'
import { targets } from '../test/helpers/fuzz-targets.ts'

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '100000' },
    only: { type: 'string' },
    seed: { type: 'string' },
    path: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})

if (values.help) {
  console.log('usage: npm run fuzz -- [--cases N] [--only <part of a target name>] [--seed N [--path P]]')
  for (const t of targets) console.log(`  ${t.name}`)
  process.exit(0)
}

const cases = Number(values.cases)
if (!Number.isSafeInteger(cases) || cases < 1) {
  console.error(`fuzz: --cases must be a whole number ≥ 1, got ${JSON.stringify(values.cases)}`)
  process.exit(2)
}
const seed = values.seed === undefined ? undefined : Number(values.seed)
const chosen = targets.filter((t) => values.only === undefined || t.name.includes(values.only))
if (chosen.length === 0) {
  console.error(`fuzz: no target matches ${JSON.stringify(values.only)}`)
  process.exit(2)
}

console.log(`fuzz: ${cases.toLocaleString('en')} cases per target, ${chosen.length} targets, Node ${process.version}${seed === undefined ? '' : `, seed ${seed}`}`)
const started = performance.now()
let failed = false
for (const target of chosen) {
  const t0 = performance.now()
  try {
    const outcomes = await target.run(cases, seed, values.path)
    const seconds = (performance.now() - t0) / 1000
    console.log(`ok    ${target.name}: ${cases.toLocaleString('en')} cases in ${seconds.toFixed(1)} s`)
    console.log(`      ${JSON.stringify(outcomes)}`)
  } catch (error) {
    failed = true
    console.log(`FAIL  ${target.name} after ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    const summary = error instanceof Error ? error.message.replace(/Counterexample: (.{300}).*/s, 'Counterexample: $1…') : String(error)
    console.log(summary)
    const cause = (error as { cause?: unknown }).cause
    if (cause !== undefined) console.log('cause:', cause)
    break
  }
}
console.log(`fuzz: ${failed ? 'FAILED' : 'passed'} in ${((performance.now() - started) / 1000).toFixed(1)} s`)
process.exit(failed ? 1 : 0)
