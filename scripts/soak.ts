/**
 * Load and soak (issue 8, item 4): for each engine, an Express app with sessionkit in a child
 * process of its own, driven by 50 keep-alive clients for 60 s (see `test/helpers/soak.ts`).
 * Passes when every engine has 0 errors, 0 cross-session leaks, 0 lost updates and an RSS
 * growth under 10 % between the first and the last 10 s after a 20 % warm-up.
 *
 *   npm run soak                                  # every engine, 60 s × 50 connections
 *   npm run soak -- --seconds 10 --only redis     # --only may repeat or take a comma list
 *   npm run soak -- --connections 20
 *
 * Prints a table and writes test-artifacts/soak-results.json. All traffic is on 127.0.0.1.
 * An engine whose service (PostgreSQL, MariaDB, Redis) is absent is skipped with a notice,
 * except under CI, where the run fails.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ENGINES, soak, type SoakResult } from '../test/helpers/soak.ts'

const MAX_GROWTH = 0.1
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string', multiple: true },
  },
})
const seconds = Number(values.seconds)
const connections = Number(values.connections)
if (!(seconds > 0) || !Number.isSafeInteger(connections) || connections < 1) {
  console.error('usage: npm run soak -- [--seconds N] [--connections N] [--only <engine>[,<engine>…]]')
  process.exit(2)
}
const only = (values.only ?? []).flatMap((o) => o.split(',')).filter(Boolean)
const unknown = only.filter((o) => !ENGINES.some((e) => e.id === o))
if (unknown.length) {
  console.error(`unknown engine ${unknown.join(', ')}; one of ${ENGINES.map((e) => e.id).join(', ')}`)
  process.exit(2)
}
const engines = only.length ? ENGINES.filter((e) => only.includes(e.id)) : ENGINES

console.log(`soak: ${seconds} s × ${connections} connections per engine, ${engines.length} engines (${engines.map((e) => e.id).join(', ')})`)
const results: (SoakResult | { engine: string; skipped: string })[] = []
let failed = false
for (const engine of engines) {
  const skip = await engine.available()
  if (skip) {
    results.push({ engine: engine.name, skipped: skip })
    continue
  }
  const r = await soak(engine, { connections, seconds })
  const ok = r.errors === 0 && r.leaks === 0 && r.lost === 0 && r.appErrors === 0 && r.rssGrowth < MAX_GROWTH
  if (!ok) failed = true
  console.log(
    `${ok ? 'ok  ' : 'FAIL'} ${engine.name}: ${r.requests} requests, ${r.rps}/s, p50 ${r.p50ms} ms, p99 ${r.p99ms} ms, ` +
      `${r.errors} errors ${JSON.stringify(r.statuses)}, ${r.leaks} leaks, ${r.lost} lost, ${r.visits} visits; ` +
      `RSS ${r.rssStartMiB} → ${r.rssEndMiB} MiB (${(r.rssGrowth * 100).toFixed(1)} %)` +
      (r.appErrors ? `; app logged ${r.appErrors} errors: ${r.appLog.join(' | ')}` : ''),
  )
  results.push(r)
}

const pad = (s: string, n: number) => s.padEnd(n)
console.log('')
console.log(`| Engine | Requests | req/s | p50 ms | p99 ms | Errors | Leaks | Lost | Visits | RSS after warm-up (MiB) | Growth |`)
console.log(`|---|---|---|---|---|---|---|---|---|---|---|`)
for (const r of results) {
  if ('skipped' in r) console.log(`| ${pad(r.engine, 44)} | skipped: ${r.skipped} |`)
  else
    console.log(
      `| ${r.engine} | ${r.requests.toLocaleString('en-US')} | ${r.rps} | ${r.p50ms} | ${r.p99ms} | ${r.errors} | ${r.leaks} | ${r.lost} | ${r.visits} | ${r.rssStartMiB} → ${r.rssEndMiB} | ${(r.rssGrowth * 100).toFixed(1)} % |`,
    )
}

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const dir = path.join(root, 'test-artifacts')
mkdirSync(dir, { recursive: true })
const file = path.join(dir, 'soak-results.json')
writeFileSync(
  file,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
      seconds,
      connections,
      maxGrowth: MAX_GROWTH,
      passed: !failed,
      results,
    },
    null,
    2,
  ),
)
console.log(`\nwritten: ${path.relative(process.cwd(), file)}`)
if (failed) {
  console.error('soak: FAILED (errors, leaks, lost updates or RSS growth ≥ 10 %)')
  process.exitCode = 1
}
