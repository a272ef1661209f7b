#!/usr/bin/env node
// Runs every test/**/*.test.ts with Node's test runner, the TypeScript sources resolved
// through the package's own exports (`--conditions=sessionkit-source`) and loaded by tsx.
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return e.name === 'fixtures' || e.name === 'helpers' ? [] : find(p)
    return e.name.endsWith('.test.ts') ? [p] : []
  })
}

const only = process.argv.slice(2)
const files = only.length ? only : find('test').sort()
const child = spawn(
  process.execPath,
  ['--conditions=sessionkit-source', '--import', 'tsx', '--test', '--test-concurrency=2', ...files],
  { stdio: 'inherit' },
)
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
