/**
 * sessionkit as published: `src/` compiled by the TypeScript compiler with the package's
 * `tsconfig.build.json` (the build behind `dist/`), into `bench/.build`. Rebuilt only when a
 * file in `src/` is newer than the last build. Type errors in work in progress do not stop
 * it (tsc still emits); a missing output does.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const BENCH_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const ROOT = path.dirname(BENCH_DIR)
export const BUILD_DIR = path.join(BENCH_DIR, '.build')
const STAMP = path.join(BUILD_DIR, '.built')

function newest(dir: string): number {
  let t = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }
  return t
}

/** Compile `src/` into `bench/.build` if needed; returns the directory, and tsc's complaints (if any). */
export function buildSessionkit(): { dir: string; rebuilt: boolean; diagnostics: string } {
  if (existsSync(STAMP) && statSync(STAMP).mtimeMs >= newest(path.join(ROOT, 'src'))) return { dir: BUILD_DIR, rebuilt: false, diagnostics: '' }
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const result = spawnSync(
    process.execPath,
    [tsc, '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', BUILD_DIR, '--declaration', 'false', '--declarationMap', 'false', '--sourceMap', 'false'],
    { cwd: ROOT, encoding: 'utf8', timeout: 180_000 },
  )
  if (!existsSync(path.join(BUILD_DIR, 'index.js'))) {
    throw new Error(`bench: compiling sessionkit failed: ${result.error?.message ?? ''}${result.stdout}${result.stderr}`)
  }
  writeFileSync(STAMP, new Date().toISOString())
  return { dir: BUILD_DIR, rebuilt: true, diagnostics: (result.stdout + result.stderr).trim() }
}
