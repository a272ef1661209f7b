/**
 * A CPU profile of one variant under load: `npm --prefix bench run profile -- <variant> [workload] [--seconds N] [--top N] [--heap] [--tsx]`.
 * With `--heap`, an allocation profile instead (bytes allocated per function, collected
 * objects included: what the garbage collector has to clean up), printed only.
 * The server's V8 profiler (started through the inspector once the server is warm, so start-up
 * stays out) samples while autocannon drives it as in the benchmark (50 connections, one
 * cookie each); the profile's self time is summed per function and per
 * area (sessionkit, framework, Node internals, GC…), printed, and recorded in
 * `bench/profiles.json` (which BENCHMARKS.md includes). The raw `.cpuprofile` stays in the
 * printed directory for Chrome DevTools.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEFAULT_SERVICES, REDIS_PREFIX } from './lib/config.ts'
import { startServer } from './lib/child.ts'
import { establish, measure } from './lib/load.ts'
import { cleanStores, prepareServices } from './lib/services.ts'
import { variantNamed, type Workload } from './variants.ts'
import { buildSessionkit } from './lib/build.ts'

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.dirname(BENCH_DIR)
const PATHS: Record<string, string> = { a: '/rmw', b: '/read', c: '/rmw', d: '/plain' }

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number }
  selfSize: number
  children: HeapNode[]
}

/** Bytes allocated per function (self), as shares of all sampled allocation. */
function summariseHeap(head: HeapNode, top: number): { fn: string; where: string; pct: number }[] {
  const per = new Map<string, { fn: string; where: string; bytes: number }>()
  let total = 0
  const walk = (n: HeapNode) => {
    const { functionName, url, lineNumber } = n.callFrame
    const fn = functionName || '(anonymous)'
    const key = `${fn}\u0000${url}\u0000${lineNumber}`
    const e = per.get(key) ?? { fn, where: where(url, lineNumber), bytes: 0 }
    e.bytes += n.selfSize
    total += n.selfSize
    per.set(key, e)
    n.children.forEach(walk)
  }
  walk(head)
  return [...per.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top).map((e) => ({ fn: e.fn, where: e.where, pct: Math.round((e.bytes / total) * 1000) / 10 }))
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[]
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileSummary {
  variant: string
  workload: string
  seconds: number
  rps: number
  recorded: string
  /** Where sessionkit came from: the compiled build, or src/ through tsx. */
  sessionkit: string
  top: { fn: string; where: string; self_pct: number }[]
  /** sessionkit's functions by inclusive time (themselves and what they call synchronously: zlib, HMAC…). */
  sessionkit_inclusive: { fn: string; where: string; total_pct: number }[]
  by_area: Record<string, number>
}

function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC'
  if (fn === '(program)' || fn === '(idle)') return fn.slice(1, -1)
  if (url.includes(`${ROOT}/src/`) || url.includes(`${BENCH_DIR}/.build/`)) return 'sessionkit'
  if (url.includes(`${BENCH_DIR}/`) && !url.includes('node_modules')) return 'bench app'
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m) return m[1]!
  if (url.startsWith('node:')) return 'node internals'
  return url === '' ? 'native' : 'other'
}

function where(url: string, line: number): string {
  if (!url) return '(native)'
  const local = url.replace('file://', '').replace(`${ROOT}/`, '')
  // tsx compiles each source file to a single line: a line number there says nothing.
  if (local.startsWith('bench/.build/')) return `src/${local.slice('bench/.build/'.length).replace(/\.js$/, '.ts')}:${line + 1}`
  if (local.startsWith('src/') || local.startsWith('bench/')) return local
  return `${local.replace(/^.*node_modules\//, '')}:${line + 1}`
}

export function summarise(profile: CpuProfile, top: number): Pick<ProfileSummary, 'top' | 'by_area' | 'sessionkit_inclusive'> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  const perFn = new Map<string, { fn: string; where: string; t: number }>()
  const perArea = new Map<string, number>()
  let busy = 0
  for (const [id, t] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    const fn = functionName || '(anonymous)'
    if (fn === '(idle)') continue
    busy += t
    const key = `${fn}\u0000${url}\u0000${lineNumber}`
    const entry = perFn.get(key) ?? { fn, where: where(url, lineNumber), t: 0 }
    entry.t += t
    perFn.set(key, entry)
    const a = area(url, fn)
    perArea.set(a, (perArea.get(a) ?? 0) + t)
  }
  const pct = (t: number) => Math.round((t / busy) * 1000) / 10
  // Inclusive time of sessionkit's functions: each sample counts once for every distinct
  // sessionkit function on its stack.
  const inclusive = new Map<string, { fn: string; where: string; t: number }>()
  for (const [id, t] of self) {
    if (byId.get(id)!.callFrame.functionName === '(idle)') continue
    const seen = new Set<string>()
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
      const { functionName, url, lineNumber } = byId.get(x)!.callFrame
      if (!url.includes(`${ROOT}/src/`) && !url.includes(`${BENCH_DIR}/.build/`)) continue
      const fn = functionName || '(anonymous)'
      const key = `${fn}\u0000${url}\u0000${lineNumber}`
      if (seen.has(key)) continue
      seen.add(key)
      const entry = inclusive.get(key) ?? { fn, where: where(url, lineNumber), t: 0 }
      entry.t += t
      inclusive.set(key, entry)
    }
  }
  return {
    sessionkit_inclusive: [...inclusive.values()].sort((x, y) => y.t - x.t).slice(0, 15).map((e) => ({ fn: e.fn, where: e.where, total_pct: pct(e.t) })),
    top: [...perFn.values()].sort((x, y) => y.t - x.t).slice(0, top).map((e) => ({ fn: e.fn, where: e.where, self_pct: pct(e.t) })),
    by_area: Object.fromEntries([...perArea].sort((x, y) => y[1] - x[1]).filter(([, t]) => pct(t) >= 0.5).map(([k, t]) => [k, pct(t)])),
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const flag = (name: string, fallback: number) => {
    const i = args.indexOf(name)
    if (i < 0) return fallback
    const [, value] = args.splice(i, 2)
    return Number(value)
  }
  const seconds = flag('--seconds', 6)
  const topN = flag('--top', 25)
  const [name, workload = 'a'] = args.filter((a) => !a.startsWith('--'))
  if (!name || !PATHS[workload]) throw new Error('usage: profile.ts <variant> [a|b|c|d] [--seconds N] [--top N]')
  const variant = variantNamed(name)
  const tsx = args.includes('--tsx')
  const heap = args.includes('--heap')
  process.env.BENCH_SESSIONKIT = tsx ? 'tsx' : buildSessionkit().dir
  const services = await prepareServices()
  await cleanStores(services)
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'sessionkit-bench-'))
  const profDir = mkdtempSync(path.join(os.tmpdir(), 'sessionkit-prof-'))
  const started = await startServer(variant.name, {
    tmpDir,
    redisUrl: DEFAULT_SERVICES.redisUrl,
    postgresUrl: DEFAULT_SERVICES.postgresUrl,
    mysqlUrl: DEFAULT_SERVICES.mysqlUrl,
    redisPrefix: REDIS_PREFIX,
  })
  if (!started.ok) throw new Error(`${name}: ${started.reason}`)
  const { server } = started
  let rps = 0
  try {
    const jars = await establish(server.port, 50)
    await measure(server.port, PATHS[workload]!, { connections: 50, durationS: 2, jars: workload === 'c' ? null : jars })
    const base = path.join(profDir, `${name.replace(/\W+/g, '_')}-${workload}`)
    if (heap) await server.heapStart()
    else await server.profileStart(250)
    const m = await measure(server.port, PATHS[workload]!, { connections: 50, durationS: seconds, jars: workload === 'c' ? null : jars })
    if (heap) await server.heapStop(`${base}.heapprofile`)
    else await server.profileStop(`${base}.cpuprofile`)
    rps = m.rps
  } finally {
    await server.stop()
    rmSync(tmpDir, { recursive: true, force: true })
    await cleanStores(services)
  }
  if (heap) {
    const file = readdirSync(profDir).find((f) => f.endsWith('.heapprofile'))!
    const head = (JSON.parse(readFileSync(path.join(profDir, file), 'utf8')) as { head: HeapNode }).head
    console.log(`${name} (${workload}): ${Math.round(rps)} req/s under the allocation sampler; profile in ${path.join(profDir, file)}`)
    console.log(`${(rps * seconds).toFixed(0)} requests; allocation by function (self bytes, % of all sampled):`)
    for (const t of summariseHeap(head, topN)) console.log(`${t.pct.toFixed(1).padStart(5)} %  ${t.fn.padEnd(40)} ${t.where}`)
    return
  }
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'))
  if (!file) throw new Error(`no profile written in ${profDir}`)
  const summary: ProfileSummary = {
    variant: name,
    workload: workload as Workload,
    seconds,
    rps: Math.round(rps),
    recorded: `${new Date().toISOString().slice(0, 16)}Z, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    sessionkit: tsx ? 'src through tsx' : 'compiled (tsc)',
    ...summarise(JSON.parse(readFileSync(path.join(profDir, file), 'utf8')) as CpuProfile, topN),
  }
  console.log(`${name} (${workload}): ${summary.rps} req/s under the profiler; profile in ${path.join(profDir, file)}`)
  console.log(`by area: ${Object.entries(summary.by_area).map(([k, v]) => `${k} ${v}%`).join(', ')}`)
  for (const t of summary.top) console.log(`${t.self_pct.toFixed(1).padStart(5)} %  ${t.fn.padEnd(40)} ${t.where}`)
  console.log('sessionkit functions, inclusive:')
  for (const t of summary.sessionkit_inclusive) console.log(`${t.total_pct.toFixed(1).padStart(5)} %  ${t.fn.padEnd(40)} ${t.where}`)
  const store = path.join(BENCH_DIR, 'profiles.json')
  const all: ProfileSummary[] = existsSync(store) ? JSON.parse(readFileSync(store, 'utf8')) : []
  const kept = all.filter((p) => !(p.variant === summary.variant && p.workload === summary.workload))
  writeFileSync(store, JSON.stringify([...kept, summary], null, 2) + '\n')
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
