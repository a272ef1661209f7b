/**
 * `BENCHMARKS.md` and `bench/chart.svg`, generated from `bench/results.json`: called by the
 * runner at the end of every run, or alone (`npm --prefix bench run report [-- results.json]`).
 * Hand-written analysis in `bench/analysis.md` and CPU profiles in `bench/profiles.json`
 * (from `profile.ts`) are included when present.
 *
 * The JSON files are generated and not tracked (bench/.gitignore): a fresh checkout has none, so
 * the tracked BENCHMARKS.md and chart.svg are what the last reference run made. Running the
 * report alone there says so and how to make them, instead of failing on a missing file.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Results, Run } from './run.ts'
import { VARIANTS, WORKLOADS, type Workload } from './variants.ts'

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.dirname(BENCH_DIR)
const DEFAULT_RESULTS = path.join(BENCH_DIR, 'results.json')

/** The targets of issue 7 (workload (a) unless said), and the best peer's ratio in the issue's reference run. */
interface Target {
  label: string
  variant: string
  workload: Workload
  /** `bare`: × the bare framework; `peer`: × the matching peer. */
  against: 'bare' | 'peer'
  min: number
  reference?: string
}

const TARGETS: Target[] = [
  { label: 'in-process cache on Express', variant: 'sessionkit/express/cache-memory', workload: 'a', against: 'bare', min: 0.85, reference: '0.56 (express-session + MemoryStore)' },
  { label: 'signed cookies on Express', variant: 'sessionkit/express/signed_cookies', workload: 'a', against: 'bare', min: 0.75, reference: '0.41 (cookie-session)' },
  { label: 'Redis on Express', variant: 'sessionkit/express/cache-redis', workload: 'a', against: 'bare', min: 0.75, reference: '0.46 (connect-redis)' },
  { label: 'SQLite on Express', variant: 'sessionkit/express/db-sqlite', workload: 'a', against: 'bare', min: 0.6, reference: '0.27 (better-sqlite3-session-store)' },
  { label: 'PostgreSQL on Express', variant: 'sessionkit/express/db-postgres', workload: 'a', against: 'bare', min: 0.4, reference: '0.16 (connect-pg-simple)' },
  { label: 'file on Express', variant: 'sessionkit/express/file', workload: 'a', against: 'bare', min: 0.3, reference: '0.04 (session-file-store)' },
  { label: 'in-process cache on node:http (× raw node:http)', variant: 'sessionkit/node/cache-memory', workload: 'a', against: 'bare', min: 0.6 },
  { label: 'in-process cache on Fastify (× bare Fastify)', variant: 'sessionkit/fastify/cache-memory', workload: 'a', against: 'bare', min: 0.85 },
  { label: 'in-process cache on Fastify (× @fastify/session)', variant: 'sessionkit/fastify/cache-memory', workload: 'a', against: 'peer', min: 1.2, reference: '1.19 × bare Express (@fastify/session)' },
  ...VARIANTS.filter((v) => v.impl === 'sessionkit' && v.lazy).map(
    (v): Target => ({ label: `(d) untouched session, ${v.engine} on ${v.framework}, lazy`, variant: v.name, workload: 'd', against: 'bare', min: 0.95 }),
  ),
]

const IMPL_COLOURS: Record<string, string> = {
  bare: '#8c8c8c',
  sessionkit: '#2b6cb0',
  'express-session': '#dd6b20',
  'cookie-session': '#d69e2e',
  'iron-session': '#b7791f',
  '@fastify/session': '#c05621',
}

const int = (x: number): string => Math.round(x).toLocaleString('en-US')
const ratio = (x: number | null): string => (x === null ? '–' : x.toFixed(2))
const rt = (x: number | null): string => (x === null ? '–' : x.toFixed(2).replace(/\.00$/, ''))

function find(results: Results, variant: string, workload: Workload): Run | undefined {
  return results.runs.find((r) => r.variant === variant && r.workload === workload)
}

function targetsTable(results: Results): string[] {
  const lines = ['| target (issue 7) | variant | workload | measured | target | best peer in the issue | verdict |', '|---|---|---|---|---|---|---|']
  for (const t of TARGETS) {
    const run = find(results, t.variant, t.workload)
    const skipped = results.skipped.find((s) => s.variant === t.variant)
    const value = run ? (t.against === 'bare' ? run.ratio_bare : run.ratio_peer) : null
    const base = t.against === 'bare' ? `× ${run?.bare ?? 'bare'}` : `× ${run?.peer ?? 'peer'}`
    let verdict: string
    if (!run) verdict = skipped ? `not measured: ${skipped.reason}` : 'not measured in this run'
    else if (value === null) verdict = run.failures.length ? `failed: ${run.failures[0]}` : 'no baseline in this run'
    else if (value >= t.min) verdict = '**met**'
    else verdict = `**missed** by ${((1 - value / t.min) * 100).toFixed(0)} % (${value.toFixed(2)} < ${t.min})`
    lines.push(`| ${t.label} | \`${t.variant}\` | (${t.workload}) | ${value === null ? '–' : `${value.toFixed(2)} ${base}`} | ≥ ${t.min} | ${t.reference ?? '–'} | ${verdict} |`)
  }
  const e = results.runs.filter((r) => r.workload === 'e' && r.impl === 'sessionkit')
  const lossy = e.filter((r) => (r.lost_keys ?? 0) > 0)
  lines.push(
    `| 0 lost keys in (e), every sessionkit variant | ${e.length} variants | (e) | ${lossy.length ? lossy.map((r) => `\`${r.variant}\` ${r.lost_keys}`).join(', ') : 'none lost'} | 0 | express-session + connect-redis lost ~96 % | ${e.length === 0 ? 'not measured' : lossy.length ? `**missed** in ${lossy.length} of ${e.length}` : '**met**'} |`,
  )
  return lines
}

function workloadTable(results: Results, w: Workload): string[] {
  const runs = results.runs.filter((r) => r.workload === w)
  if (!runs.length) return ['(not measured in this run)']
  const rounds = Math.max(...runs.map((r) => r.rps_rounds.length))
  const lines = [
    `| variant | req/s (median) | spread${rounds > 1 ? ` over ${rounds} rounds` : ''} | p99 ms | errors | × bare | × peer | store round trips / request (load / save) |`,
    '|---|---:|---|---:|---:|---:|---:|---|',
  ]
  for (const r of runs) {
    const spread = r.rps_rounds.length > 1 ? `${int(r.rps_min)}–${int(r.rps_max)}` : '(1 round)'
    const trips = r.rt_load === null ? 'in the cookie' : `${rt(r.rt_load)} / ${rt(r.rt_save)}${r.rt_other ? ` (+${rt(r.rt_other)} other)` : ''}`
    const failed = r.failures.length ? ` ⚠ ${r.failures.length} failed round(s)` : ''
    const lost = r.lost_increments ? ` ⚠ ${int(r.lost_increments)} increments lost` : ''
    lines.push(
      `| \`${r.variant}\`${failed}${lost} | ${int(r.rps)} | ${spread} | ${r.p99_ms} | ${r.errors} | ${ratio(r.ratio_bare)} | ${r.peer ? ratio(r.ratio_peer) : '–'} | ${trips} |`,
    )
  }
  return lines
}

function lazyTable(results: Results): string[] {
  const lines = [
    '| engine / adapter | bare req/s | eager req/s | eager × bare | lazy req/s | lazy × bare | lazy round trips / request |',
    '|---|---:|---:|---:|---:|---:|---|',
  ]
  for (const lazy of results.runs.filter((r) => r.workload === 'd' && r.lazy)) {
    const eager = find(results, lazy.variant.replace(/\/lazy$/, ''), 'd')
    const bare = find(results, lazy.bare, 'd')
    lines.push(
      `| ${lazy.engine} on ${lazy.framework} | ${bare ? int(bare.rps) : '–'} | ${eager ? int(eager.rps) : '–'} | ${ratio(eager?.ratio_bare ?? null)} | ${int(lazy.rps)} | ${ratio(lazy.ratio_bare)} | ${lazy.rt_load === null ? 'in the cookie' : `${rt(lazy.rt_load)} / ${rt(lazy.rt_save)}`} |`,
    )
  }
  return lines
}

function lostKeysTable(results: Results): string[] {
  const lines = ['| variant | keys lost of 50 | errors | store round trips / request (load / save) |', '|---|---:|---:|---|']
  for (const r of results.runs.filter((x) => x.workload === 'e')) {
    lines.push(`| \`${r.variant}\` | ${r.lost_keys ?? '–'} | ${r.errors} | ${r.rt_load === null ? 'in the cookie' : `${rt(r.rt_load)} / ${rt(r.rt_save)}`} |`)
  }
  return lines
}

function microTable(results: Results): string[] {
  const micro = results.micro as { results?: { group: string; name: string; ops_per_s: number }[]; time_ms?: number } | undefined
  if (!micro?.results) return ['(not run)']
  const lines = ['| group | operation | ops/s |', '|---|---|---:|']
  for (const m of micro.results) lines.push(`| ${m.group} | ${m.name} | ${int(m.ops_per_s)} |`)
  return lines
}

function profilesSection(): string[] {
  const file = path.join(BENCH_DIR, 'profiles.json')
  if (!existsSync(file)) return []
  const profiles = JSON.parse(readFileSync(file, 'utf8')) as {
    variant: string
    workload: string
    seconds: number
    rps: number
    recorded: string
    top: { fn: string; where: string; self_pct: number }[]
    sessionkit_inclusive?: { fn: string; where: string; total_pct: number }[]
    by_area: Record<string, number>
  }[]
  const out = ['## CPU profiles', '', 'Made by `npm --prefix bench run profile -- <variant> [workload]` (`node --cpu-prof` on the server process under load); self time, top functions.', '']
  for (const p of profiles) {
    out.push(`### \`${p.variant}\`, workload (${p.workload}), ${p.seconds} s at ${int(p.rps)} req/s (${p.recorded}${(p as { sessionkit?: string }).sessionkit ? `, sessionkit ${(p as { sessionkit?: string }).sessionkit}` : ''})`, '')
    out.push(`By area: ${Object.entries(p.by_area).map(([k, v]) => `${k} ${v.toFixed(1)} %`).join(' · ')}`, '')
    out.push('| self % | function | where |', '|---:|---|---|')
    for (const t of p.top.slice(0, 12)) out.push(`| ${t.self_pct.toFixed(1)} | \`${t.fn}\` | ${t.where} |`)
    out.push('')
    if (p.sessionkit_inclusive?.length) {
      out.push('sessionkit functions by inclusive time (with what they call synchronously):', '', '| total % | function | where |', '|---:|---|---|')
      for (const t of p.sessionkit_inclusive.slice(0, 8)) out.push(`| ${t.total_pct.toFixed(1)} | \`${t.fn}\` | ${t.where} |`)
      out.push('')
    }
  }
  return out
}

const SHORT: Record<Workload, string> = { a: 'read + modify + save', b: 'read only', c: 'new visitor (create)', d: 'session untouched', e: 'parallel writes' }

/** Horizontal bars of each variant's throughput × its bare framework, one panel per workload (a)–(d), with the spread. */
export function chart(results: Results): string {
  const workloads: Workload[] = ['a', 'b', 'c', 'd']
  const names = [...new Set(results.runs.filter((r) => r.workload !== 'e').map((r) => r.variant))]
  const rowH = 15
  const labelW = 330
  const panelW = 190
  const gap = 16
  const top = 58
  const height = top + names.length * rowH + 40
  const width = labelW + workloads.length * (panelW + gap) + 10
  const maxRatio = Math.max(1.2, ...results.runs.filter((r) => r.workload !== 'e' && r.ratio_bare !== null).map((r) => r.ratio_bare! * (r.rps_max / (r.rps || 1))))
  const scale = Math.min(2.5, Math.ceil(maxRatio * 5) / 5)
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="8" y="18" font-size="14" font-weight="bold">Throughput × the bare framework (same workload, same round; median, whiskers min–max)</text>`,
    `<text x="8" y="34" fill="#555">${esc(String(results.env.command))} · ${esc(String(results.env.cpu))}, ${results.env.cores} cores · Node ${esc(String(results.env.node))}${(results.env.options as { quick?: boolean }).quick ? ' · QUICK RUN (smoke test, not reference numbers)' : ''}</text>`,
  ]
  workloads.forEach((w, i) => {
    const x0 = labelW + i * (panelW + gap)
    const px = (r: number) => x0 + (Math.min(r, scale) / scale) * panelW
    out.push(`<text x="${x0}" y="${top - 8}" font-weight="bold">(${w}) ${SHORT[w]}</text>`)
    for (const tick of [0.5, 1, 1.5, 2].filter((t) => t <= scale)) {
      out.push(`<line x1="${px(tick)}" y1="${top - 2}" x2="${px(tick)}" y2="${top + names.length * rowH}" stroke="${tick === 1 ? '#333' : '#ddd'}" stroke-dasharray="${tick === 1 ? '' : '2,2'}"/>`)
      out.push(`<text x="${px(tick)}" y="${top + names.length * rowH + 12}" text-anchor="middle" fill="#555">${tick}×</text>`)
    }
    names.forEach((name, j) => {
      const r = find(results, name, w)
      const y = top + j * rowH
      if (!r || r.ratio_bare === null) return
      const colour = IMPL_COLOURS[r.impl] ?? '#444'
      out.push(`<rect x="${x0}" y="${y + 2}" width="${Math.max(1, px(r.ratio_bare) - x0).toFixed(1)}" height="${rowH - 4}" fill="${colour}" opacity="${r.lazy ? 0.55 : 0.9}"/>`)
      if (r.rps_rounds.length > 1 && r.rps > 0) {
        const lo = px((r.ratio_bare * r.rps_min) / r.rps)
        const hi = px((r.ratio_bare * r.rps_max) / r.rps)
        out.push(`<line x1="${lo.toFixed(1)}" y1="${y + rowH / 2}" x2="${hi.toFixed(1)}" y2="${y + rowH / 2}" stroke="#000" stroke-width="1"/>`)
      }
      out.push(`<text x="${(Math.min(px(r.ratio_bare), x0 + panelW - 24) + 3).toFixed(1)}" y="${y + rowH - 4}" font-size="9" fill="#222">${r.ratio_bare.toFixed(2)}</text>`)
    })
  })
  names.forEach((name, j) => {
    const r = results.runs.find((x) => x.variant === name)!
    out.push(`<text x="${labelW - 8}" y="${top + j * rowH + rowH - 4}" text-anchor="end" fill="${IMPL_COLOURS[r.impl] ?? '#444'}">${esc(name)}</text>`)
  })
  out.push(`<text x="8" y="${height - 8}" fill="#555">bars: ${Object.entries(IMPL_COLOURS).map(([k]) => k).join(', ')} (colours as the labels); pale: sessionkit lazy; bars cut at ${scale}×</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}

function headline(results: Results): string[] {
  const a = (v: string) => find(results, v, 'a')
  const pairs: [string, string][] = [
    ['sessionkit/express/cache-memory', 'express-session/express/MemoryStore'],
    ['sessionkit/express/cache-redis', 'express-session/express/connect-redis'],
    ['sessionkit/express/db-sqlite', 'express-session/express/better-sqlite3-session-store'],
    ['sessionkit/express/db-postgres', 'express-session/express/connect-pg-simple'],
    ['sessionkit/express/file', 'express-session/express/session-file-store'],
    ['sessionkit/express/signed_cookies', 'cookie-session/express'],
    ['sessionkit/express/encrypted_cookies', 'iron-session/express'],
    ['sessionkit/fastify/cache-memory', '@fastify/session/fastify/MemoryStore'],
  ]
  const lines: string[] = []
  for (const [sk, peer] of pairs) {
    const s = a(sk)
    const p = a(peer)
    if (!s || s.ratio_bare === null) continue
    lines.push(
      `- \`${sk}\`: ${s.ratio_bare.toFixed(2)} × ${s.bare}${p && p.ratio_bare !== null ? `; \`${peer}\`: ${p.ratio_bare.toFixed(2)} × (sessionkit ${ratio(s.ratio_peer)} × the peer)` : ''}`,
    )
  }
  return lines
}

/** Write the Markdown report and the chart; returns the files written. */
export function writeReport(results: Results, resultsFile = DEFAULT_RESULTS): string[] {
  const isDefault = path.resolve(resultsFile) === DEFAULT_RESULTS
  const mdFile = isDefault ? path.join(ROOT, 'BENCHMARKS.md') : resultsFile.replace(/\.json$/, '') + '.md'
  const svgFile = isDefault ? path.join(BENCH_DIR, 'chart.svg') : resultsFile.replace(/\.json$/, '') + '.svg'
  const env = results.env as Record<string, any>
  const opts = env.options as { quick: boolean; rounds: number; duration_s: number; connections: number; warmup_s: number; only: string[] }
  const md: string[] = [
    '# Benchmarks',
    '',
    '<!-- Generated by bench/report.ts from bench/results.json (written by `npm run bench`, not tracked) and bench/analysis.md: edit analysis.md or run the benchmark again, not this file. -->',
    '',
  ]
  if (opts.quick || opts.only.length || opts.rounds < 3 || opts.duration_s < 10) {
    md.push(
      `> **Not the reference run.** ${opts.quick ? 'A `--quick` smoke run' : 'A partial run'} (${opts.rounds} round(s) of ${opts.duration_s} s${opts.only.length ? `, only ${opts.only.join(', ')}` : ''}), ` +
        `load average ${env.loadavg_start?.join(' ')} at the start: the harness works, the numbers are noisy. ` +
        'The reference is `npm run bench` (50 connections, 10 s per run, 3 interleaved rounds) on a quiet machine.',
      '',
    )
  }
  md.push(
    `Command: \`${env.command}\` (from the repository root; the same as \`npm --prefix bench run bench${env.command.includes(' -- ') ? ' -- ' + env.command.split(' -- ')[1] : ''}\`).`,
    '',
    `Machine: ${env.cpu}, ${env.cores} cores, ${env.memory_gib} GiB · ${env.os} · Node ${env.node} · load average ${env.loadavg_start?.join(' ')} at the start, ${env.loadavg_end?.join(' ')} at the end · ${env.started} (${env.wall_s} s).`,
    '',
    `sessionkit ${env.sessionkit?.version} at ${env.sessionkit?.commit?.slice(0, 10) ?? '?'}${env.sessionkit?.src_uncommitted_changes ? ' (with uncommitted changes in src/)' : ''}, loaded from ${env.sessionkit?.loaded_from ?? '?'}. ` +
      `Peers and frameworks: ${Object.entries(env.versions as Record<string, string>).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    '',
    `Services: ${Object.entries(env.services as Record<string, string>).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    '',
    '![throughput × bare framework](bench/chart.svg)',
    '',
    '## Headline (workload a: read, increment, save)',
    '',
    ...headline(results),
    '',
    '## Targets',
    '',
    'Ratios are per round (each variant against the bare server of its framework, or its peer, measured in the same round), then the median over rounds.',
    '',
    ...targetsTable(results),
    '',
  )
  const analysis = path.join(BENCH_DIR, 'analysis.md')
  if (existsSync(analysis)) md.push(readFileSync(analysis, 'utf8').trim(), '')
  for (const w of ['a', 'b', 'c', 'd'] as Workload[]) {
    md.push(`## Workload (${w}): ${WORKLOADS[w]}`, '', ...workloadTable(results, w), '')
  }
  md.push('### (d) eager and lazy side by side', '', 'Eager: the session is loaded before the handler runs (the default). Lazy: `lazy: true`, loaded when the handler awaits it (`aget`, `aset`, `load()`).', '', ...lazyTable(results), '')
  md.push(
    `## Workload (e): ${WORKLOADS.e}`,
    '',
    'Each request sets its own key on the same session; afterwards the session is read back with the cookie a browser would hold (the last `Set-Cookie` to arrive). A session kept in the cookie keeps only the last writer\'s keys, whatever the library.',
    '',
    ...lostKeysTable(results),
    '',
    '## Micro-benchmarks',
    '',
    ...microTable(results),
    '',
    ...profilesSection(),
  )
  if (results.skipped.length) {
    md.push('## Not measured', '', ...results.skipped.map((s) => `- \`${s.variant}\`: ${s.reason}`), '')
  }
  md.push(
    '## How it is measured',
    '',
    `- One server process per variant (\`bench/server.ts\`, 127.0.0.1, port 0), started fresh for every round; the load comes from autocannon in the runner's process (\`bench/run.ts\`). ${opts.connections} connections, pipelining 1, ${opts.duration_s} s per run after a ${opts.warmup_s} s warm-up, ${opts.rounds} round(s); rounds are interleaved (every variant in round 1, then in round 2, …).`,
    '- Throughput counts 2xx answers only; errors are non-2xx answers, connection errors and timeouts.',
    `- (a), (b), (d): ${opts.connections} sessions are made first (\`/init\`), one cookie per connection; each connection updates its cookie from \`Set-Cookie\` as a browser does (which is how a session kept in the cookie moves on). (c) sends no cookie. After (a), the counters are read back: an increment answered 2xx but missing is reported (none expected; it checks the harness).`,
    '- The limits ("bare"): a counter in a plain `Map` keyed by a random id in a cookie, no signing, no expiry: the least a stateful route can do. Every server answers the same routes with the same bodies (`bench/lib/routes.ts`).',
    '- Store round trips are counted where they happen: sessionkit\'s cache (one method, one Redis command), its SQL driver (one method, one statement), the file engine\'s calls; the peers\' store methods (`get`, `set`, `touch`, `destroy`). Divided by the requests the server received.',
    '- Peers are set up as their READMEs say, with the tuning sessionkit gets where there is a choice: express-session `resave: false, saveUninitialized: false`; SQLite in WAL mode with `synchronous = NORMAL` for both; PostgreSQL and MariaDB in a database of the benchmark\'s own (`sessionkit_bench`), emptied before each server starts, as are the benchmark\'s Redis keys.',
    '',
  )
  writeFileSync(mdFile, md.join('\n'))
  writeFileSync(svgFile, chart(results))
  return [mdFile, svgFile]
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = path.resolve(process.argv[2] ?? DEFAULT_RESULTS)
  if (!existsSync(file)) {
    console.error(
      `bench report: no results in ${path.relative(process.cwd(), file)}; they are generated, not tracked: ` +
        '`npm run bench` (the reference run, or `-- --quick` for a smoke run) writes them and this report',
    )
    process.exit(1)
  }
  const written = writeReport(JSON.parse(readFileSync(file, 'utf8')) as Results, file)
  console.log(`wrote ${written.join(', ')}`)
}
