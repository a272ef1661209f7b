/**
 * The benchmark runner: `npm run bench` (from the repository root) or
 * `npm --prefix bench run bench -- [options]`.
 *
 *   (no option)        the full run: every variant, 50 connections, 10 s per run, 3 rounds
 *   --quick            a smoke run (< 2 min): a few variants, 2 s runs, 1 round
 *   --only <text>      only variants whose name contains <text> (repeatable, or comma-separated);
 *                      the bare server of each selected framework is added, for the ratios
 *   --rounds N  --duration S  --connections C  --warmup S    override the preset
 *   --out <file>       results file (default bench/results.json); BENCHMARKS.md and chart.svg follow it
 *   --no-micro         skip the micro-benchmarks
 *   --tsx              take sessionkit from src/*.ts through tsx instead of compiling it first
 *                      (see lib/sk.ts: tsx adds a per-request cost the published package has not)
 *   --list             list the variants and exit
 *
 * Each variant runs in a server process of its own (127.0.0.1, port 0); autocannon drives it
 * from this process. Rounds are interleaved: round 1 runs every variant, then round 2, … so
 * a slow minute on the machine hits every variant alike. Every run is bounded in time.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEFAULT_SERVICES, REDIS_PREFIX, type ServerConfig } from './lib/config.ts'
import { startServer, type ServerHandle } from './lib/child.ts'
import { establish, lostKeys, measure, sumCounters, type Measured } from './lib/load.ts'
import { cleanStores, prepareServices, type ServiceState } from './lib/services.ts'
import { buildSessionkit } from './lib/build.ts'
import { bareOf, VARIANTS, type Variant, type Workload } from './variants.ts'
import type { Jar } from './lib/cookies.ts'

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.dirname(BENCH_DIR)

export interface Options {
  quick: boolean
  only: string[]
  rounds: number
  durationS: number
  warmupS: number
  connections: number
  /** Parallel requests of workload (e). */
  parallel: number
  micro: boolean
  /** Load sessionkit from src/ through tsx instead of the compiled build. */
  tsx: boolean
  out: string
}

/** One measurement: one variant, one workload, one round. */
export interface Sample {
  variant: string
  workload: Workload
  round: number
  rps: number
  p99_ms: number
  p50_ms: number
  errors: number
  lost_keys: number | null
  lost_increments: number | null
  rt_load: number | null
  rt_save: number | null
  rt_other: number | null
  failure?: string
}

/** A variant × workload over all rounds: what results.json's `runs` holds. */
export interface Run {
  variant: string
  impl: string
  framework: string
  engine: string
  lazy: boolean
  workload: Workload
  /** Median over rounds, 2xx answers per second. */
  rps: number
  rps_min: number
  rps_max: number
  rps_rounds: number[]
  /** Median over rounds. */
  p99_ms: number
  p50_ms: number
  /** Non-2xx answers, connection errors and timeouts, summed over rounds. */
  errors: number
  /** Workload (e): keys missing after the parallel writes (median over rounds); `null` elsewhere. */
  lost_keys: number | null
  /** Workload (a): increments answered 2xx but missing from the counters afterwards (a check of the harness; 0 expected). */
  lost_increments: number | null
  /** Store round trips per request (median over rounds); `null` for a session kept in the cookie. */
  rt_load: number | null
  rt_save: number | null
  rt_other: number | null
  /** Median over rounds of (this round's rps ÷ the same round's rps of the bare server, same workload). */
  ratio_bare: number | null
  /** The same against the matching peer. */
  ratio_peer: number | null
  bare: string
  peer: string | null
  failures: string[]
}

export interface Results {
  env: Record<string, unknown>
  runs: Run[]
  skipped: { variant: string; reason: string }[]
  micro?: unknown
}

function parseArgs(argv: string[]): Options & { list: boolean } {
  const o = { quick: false, only: [] as string[], list: false, micro: true, tsx: false } as Options & { list: boolean }
  const explicit: Partial<Options> = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const value = (): string => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`bench: ${a} needs a value`)
      return v
    }
    const number = (): number => {
      const n = Number(value())
      if (!Number.isFinite(n) || n <= 0) throw new Error(`bench: ${a} needs a positive number`)
      return n
    }
    switch (a) {
      case '--quick': o.quick = true; break
      case '--only': o.only.push(...value().split(',').filter(Boolean)); break
      case '--rounds': explicit.rounds = number(); break
      case '--duration': explicit.durationS = number(); break
      case '--warmup': explicit.warmupS = number(); break
      case '--connections': explicit.connections = number(); break
      case '--out': explicit.out = path.resolve(value()); break
      case '--no-micro': o.micro = false; break
      case '--tsx': o.tsx = true; break
      case '--list': o.list = true; break
      case '--help': case '-h':
        console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0])
        process.exit(0)
      default:
        throw new Error(`bench: unknown option ${a} (see --help)`)
    }
  }
  const preset = o.quick
    ? { rounds: 1, durationS: 2, warmupS: 0.5, connections: 50 }
    : { rounds: 3, durationS: 10, warmupS: 2, connections: 50 }
  return { ...o, parallel: 50, out: path.join(BENCH_DIR, 'results.json'), ...preset, ...explicit }
}

function select(options: Options): Variant[] {
  let chosen = options.quick && options.only.length === 0 ? VARIANTS.filter((v) => v.quick) : [...VARIANTS]
  if (options.only.length) {
    const wanted = new Set(chosen.filter((v) => options.only.some((s) => v.name.includes(s))).map((v) => v.name))
    for (const v of VARIANTS) if (wanted.has(v.name)) wanted.add(bareOf(v))
    chosen = VARIANTS.filter((v) => wanted.has(v.name))
  }
  return chosen
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

function versionOf(name: string, from: string): string | null {
  try {
    return JSON.parse(readFileSync(path.join(from, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return null
  }
}

function environment(options: Options, services: ServiceState): Record<string, unknown> {
  const benchPkg = JSON.parse(readFileSync(path.join(BENCH_DIR, 'package.json'), 'utf8'))
  const rootPkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const versions: Record<string, string | null> = {}
  for (const name of Object.keys(benchPkg.dependencies)) versions[name] = versionOf(name, BENCH_DIR)
  // What sessionkit itself runs on (resolved from the repository root).
  const sessionkitDeps: Record<string, string | null> = {}
  for (const name of ['cookie', 'ioredis', 'better-sqlite3', 'pg', 'mysql2', 'tsx']) sessionkitDeps[name] = versionOf(name, ROOT)
  let commit: string | null = null
  let dirty: boolean | null = null
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim() !== ''
  } catch {
    // not a git checkout
  }
  const cpus = os.cpus()
  return {
    node: process.version,
    v8: process.versions.v8,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    loadavg_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
    sessionkit: {
      version: rootPkg.version,
      commit,
      src_uncommitted_changes: dirty,
      loaded_from: options.tsx ? 'src/*.ts through tsx' : 'src/ compiled by tsc -p tsconfig.build.json into bench/.build',
      dependencies: sessionkitDeps,
    },
    versions,
    services: Object.fromEntries(Object.entries(services).map(([k, v]) => [k, v === true ? 'up' : `down: ${v}`])),
    options: { quick: options.quick, only: options.only, rounds: options.rounds, duration_s: options.durationS, warmup_s: options.warmupS, connections: options.connections, parallel_e: options.parallel },
    command: `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`,
    started: new Date().toISOString(),
  }
}

const PATHS: Record<Exclude<Workload, 'e'>, string> = { a: '/rmw', b: '/read', c: '/rmw', d: '/plain' }
/** Within one server: (c) last, since it fills the store with new sessions. */
const ORDER: Workload[] = ['a', 'b', 'd', 'e', 'c']

function perRequest(count: number, requests: number, clientSide: boolean): number | null {
  if (clientSide) return null
  return requests > 0 ? count / requests : 0
}

async function runWorkload(server: ServerHandle, variant: Variant, w: Workload, jars: Jar[], options: Options, round: number): Promise<Sample> {
  const sample: Sample = {
    variant: variant.name, workload: w, round, rps: 0, p99_ms: 0, p50_ms: 0, errors: 0,
    lost_keys: null, lost_increments: null, rt_load: null, rt_save: null, rt_other: null,
  }
  try {
    if (w === 'e') {
      await server.reset()
      const result = await lostKeys(server.port, options.parallel)
      const stats = await server.stats()
      sample.lost_keys = result.lost
      sample.errors = result.errors
      sample.rt_load = perRequest(stats.load, stats.requests, variant.clientSide)
      sample.rt_save = perRequest(stats.save, stats.requests, variant.clientSide)
      sample.rt_other = perRequest(stats.other, stats.requests, variant.clientSide)
      return sample
    }
    const before = w === 'a' ? await sumCounters(server.port, jars) : null
    await server.reset()
    const m: Measured = await measure(server.port, PATHS[w], { connections: options.connections, durationS: options.durationS, jars: w === 'c' ? null : jars })
    const stats = await server.stats()
    if (w === 'a' && before !== null) {
      const after = await sumCounters(server.port, jars)
      sample.lost_increments = after === null ? null : Math.max(0, m.ok - (after - before))
    }
    Object.assign(sample, { rps: m.rps, p99_ms: m.p99_ms, p50_ms: m.p50_ms, errors: m.errors })
    sample.rt_load = perRequest(stats.load, stats.requests, variant.clientSide)
    sample.rt_save = perRequest(stats.save, stats.requests, variant.clientSide)
    sample.rt_other = perRequest(stats.other, stats.requests, variant.clientSide)
  } catch (error) {
    sample.failure = error instanceof Error ? error.message : String(error)
  }
  return sample
}

function fmt(s: Sample): string {
  if (s.failure) return `FAILED: ${s.failure}`
  const rt = s.rt_load === null ? 'rt -' : `rt ${s.rt_load.toFixed(2)}/${s.rt_save!.toFixed(2)}`
  if (s.workload === 'e') return `lost ${s.lost_keys}/50 keys, errors ${s.errors}, ${rt}`
  const extra = s.lost_increments ? `, LOST ${s.lost_increments} increments` : ''
  return `${Math.round(s.rps).toString().padStart(6)} rps  p99 ${s.p99_ms} ms  errors ${s.errors}  ${rt}${extra}`
}

/** One variant in one round: start its server, run its workloads, stop it, clean its stores. */
async function runVariant(variant: Variant, options: Options, services: ServiceState, round: number): Promise<Sample[] | { skip: string }> {
  const missing = variant.needs.filter((s) => services[s] !== true)
  if (missing.length) return { skip: `needs ${missing.join(', ')} (${missing.map((s) => services[s]).join('; ')})` }
  await cleanStores(services)
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'sessionkit-bench-'))
  const config: ServerConfig = {
    tmpDir,
    redisUrl: DEFAULT_SERVICES.redisUrl,
    postgresUrl: DEFAULT_SERVICES.postgresUrl,
    mysqlUrl: DEFAULT_SERVICES.mysqlUrl,
    redisPrefix: REDIS_PREFIX,
  }
  const started = await startServer(variant.name, config)
  if (!started.ok) {
    rmSync(tmpDir, { recursive: true, force: true })
    if (started.unavailable) return { skip: started.reason }
    return variant.workloads.map((w) => ({
      variant: variant.name, workload: w, round, rps: 0, p99_ms: 0, p50_ms: 0, errors: 0,
      lost_keys: null, lost_increments: null, rt_load: null, rt_save: null, rt_other: null, failure: started.reason,
    }))
  }
  const { server } = started
  const samples: Sample[] = []
  try {
    const jars = await establish(server.port, options.connections)
    await measure(server.port, variant.workloads.includes('a') ? '/rmw' : PATHS[variant.workloads[0] as 'd'], {
      connections: options.connections, durationS: options.warmupS, jars,
    })
    for (const w of ORDER.filter((x) => variant.workloads.includes(x))) {
      const sample = await runWorkload(server, variant, w, jars, options, round)
      console.log(`  [round ${round}] ${variant.name.padEnd(52)} (${w}) ${fmt(sample)}`)
      samples.push(sample)
    }
  } catch (error) {
    const reason = `${error instanceof Error ? error.message : String(error)}; server stderr: ${server.stderr().trim().slice(-800)}`
    console.log(`  [round ${round}] ${variant.name}: FAILED ${reason}`)
    for (const w of variant.workloads) {
      if (!samples.some((s) => s.workload === w)) {
        samples.push({
          variant: variant.name, workload: w, round, rps: 0, p99_ms: 0, p50_ms: 0, errors: 0,
          lost_keys: null, lost_increments: null, rt_load: null, rt_save: null, rt_other: null, failure: reason,
        })
      }
    }
  } finally {
    await server.stop()
    rmSync(tmpDir, { recursive: true, force: true })
  }
  return samples
}

function aggregate(samples: Sample[], variants: Variant[]): Run[] {
  const runs: Run[] = []
  const byKey = new Map<string, Sample[]>()
  for (const s of samples) {
    const key = `${s.variant}\u0000${s.workload}`
    byKey.set(key, [...(byKey.get(key) ?? []), s])
  }
  const rpsOf = (variant: string | null, w: Workload, round: number): number | undefined =>
    variant === null ? undefined : byKey.get(`${variant}\u0000${w}`)?.find((s) => s.round === round && !s.failure)?.rps
  for (const v of variants) {
    for (const w of v.workloads) {
      const all = byKey.get(`${v.name}\u0000${w}`)
      if (!all) continue
      const ok = all.filter((s) => !s.failure)
      const rounds = ok.map((s) => s.rps)
      const medianOf = (pick: (s: Sample) => number | null): number | null => {
        const xs = ok.map(pick).filter((x): x is number => x !== null)
        return xs.length ? median(xs) : null
      }
      const ratios = (other: string | null): number | null => {
        if (w === 'e') return null
        const rs = ok.map((s) => {
          const base = rpsOf(other, w, s.round)
          return base ? s.rps / base : null
        }).filter((x): x is number => x !== null)
        return rs.length ? median(rs) : null
      }
      const bare = bareOf(v)
      runs.push({
        variant: v.name, impl: v.impl, framework: v.framework, engine: v.engine, lazy: v.lazy, workload: w,
        rps: rounds.length ? median(rounds) : 0,
        rps_min: rounds.length ? Math.min(...rounds) : 0,
        rps_max: rounds.length ? Math.max(...rounds) : 0,
        rps_rounds: rounds.map((x) => Math.round(x)),
        p99_ms: medianOf((s) => s.p99_ms) ?? 0,
        p50_ms: medianOf((s) => s.p50_ms) ?? 0,
        errors: ok.reduce((n, s) => n + s.errors, 0),
        lost_keys: w === 'e' ? medianOf((s) => s.lost_keys) : null,
        lost_increments: w === 'a' ? medianOf((s) => s.lost_increments) : null,
        rt_load: medianOf((s) => s.rt_load),
        rt_save: medianOf((s) => s.rt_save),
        rt_other: medianOf((s) => s.rt_other),
        ratio_bare: v.name === bare ? 1 : ratios(bare),
        ratio_peer: ratios(v.peer),
        bare,
        peer: v.peer,
        failures: all.filter((s) => s.failure).map((s) => `round ${s.round}: ${s.failure}`),
      })
    }
  }
  return runs
}

function runMicro(options: Options): Promise<unknown> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'micro.ts'), '--json', ...(options.quick ? ['--quick'] : [])], {
      cwd: BENCH_DIR,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000)
    child.on('exit', () => {
      clearTimeout(timer)
      try {
        resolve(JSON.parse(out))
      } catch {
        resolve({ error: 'micro-benchmarks failed', output: out.slice(-2000) })
      }
    })
  })
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2))
  if (options.list) {
    for (const v of VARIANTS) console.log(`${v.quick ? 'q' : ' '} ${v.name.padEnd(52)} ${v.workloads.join('')}`)
    return
  }
  const t0 = Date.now()
  const variants = select(options)
  if (variants.length === 0) throw new Error(`bench: no variant matches ${options.only.join(', ')} (see --list)`)
  if (options.tsx) process.env.BENCH_SESSIONKIT = 'tsx'
  else {
    const build = buildSessionkit()
    process.env.BENCH_SESSIONKIT = build.dir
    if (build.rebuilt) console.log(`compiled sessionkit into ${path.relative(process.cwd(), build.dir)}${build.diagnostics ? ` (tsc reported: ${build.diagnostics.split('\n').length} lines, first: ${build.diagnostics.split('\n')[0]})` : ''}`)
  }
  const services = await prepareServices()
  const env = environment(options, services)
  console.log(`sessionkit bench: ${variants.length} variants, ${options.rounds} round(s) of ${options.durationS} s runs, ${options.connections} connections`)
  console.log(`services: ${Object.entries(env.services as object).map(([k, v]) => `${k} ${v}`).join(', ')}; load average ${(env.loadavg_start as number[]).join(' ')}`)
  const samples: Sample[] = []
  const skipped = new Map<string, string>()
  for (let round = 1; round <= options.rounds; round++) {
    for (const variant of variants) {
      if (skipped.has(variant.name)) continue
      const result = await runVariant(variant, options, services, round)
      if ('skip' in result) {
        skipped.set(variant.name, result.skip)
        console.log(`  [round ${round}] ${variant.name.padEnd(52)} skipped: ${result.skip}`)
      } else {
        samples.push(...result)
      }
    }
  }
  await cleanStores(services)
  const results: Results = {
    env: { ...env, loadavg_end: os.loadavg().map((x) => Math.round(x * 100) / 100), finished: new Date().toISOString(), wall_s: 0 },
    runs: aggregate(samples, variants.filter((v) => !skipped.has(v.name))),
    skipped: [...skipped].map(([variant, reason]) => ({ variant, reason })),
  }
  if (options.micro) {
    console.log('micro-benchmarks…')
    results.micro = await runMicro(options)
  }
  results.env.wall_s = Math.round((Date.now() - t0) / 1000)
  writeFileSync(options.out, JSON.stringify(results, null, 2) + '\n')
  const { writeReport } = await import('./report.ts')
  const written = writeReport(results, options.out)
  console.log(`wrote ${path.relative(process.cwd(), options.out)}, ${written.map((f) => path.relative(process.cwd(), f)).join(', ')} in ${results.env.wall_s} s`)
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
