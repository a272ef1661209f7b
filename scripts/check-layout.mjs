#!/usr/bin/env node
// The layout of src/, checked (`npm test` runs it first, so a change that breaks it fails CI):
//
// 1. No circle among the imports that run: an `import`/`export … from` that survives compilation,
//    in the import graph read with the TypeScript compiler's parser. `import type` and
//    `export type` are erased by tsc and do not count; `import { type A }` does (with
//    `verbatimModuleSyntax` it still loads the module, as `import {} from …`).
// 2. No lower layer imports an upper one, type imports included (the rules below).
// 3. The README's "Layout" section names every file of src/, and no file that is not there: a
//    note, not a failure (adding an engine stays one file and one registry line; the note says
//    which line of the README to add).
//
// Usage: node scripts/check-layout.mjs [--graph]   (--graph prints every module and what it imports)
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const SRC = path.join(ROOT, 'src')


/**
 * Who may not import whom, as [importer, imported, why]: a module whose path (relative to src/,
 * without `.ts`) matches the first pattern never imports one that matches the second.
 */
const UPPER = /^(session|middleware|cli|index|testing(\/.*)?|adapters\/.*)$/
const LAYERS = /^(compat|users|messages)\/|^auth$/
const RULES = [
  [/^(engine|codec|errors|expiry|keys|lock|redact|suspicious|serializers|signing|settings|engines\/.*|drivers\/.*|caches\/.*)$/, UPPER, 'engines, drivers, caches and the leaf modules sit below Session and the middleware'],
  [/^(drivers|caches)\//, /^engines\//, 'drivers and caches sit below the engines that use them'],
  [/^(?!adapters\/).*/, /^adapters\//, 'only adapters import adapters'],
  [/^(?!(compat|users|messages)\/|auth$).*/, LAYERS, 'the core never imports the layers above it (compat, users, messages, auth)'],
]

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return sources(p)
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : []
  })
}

const id = (file) => path.relative(SRC, file).replace(/\\/g, '/').replace(/\.ts$/, '')

/** The modules `file` imports inside src/, each with whether the import survives compilation. */
function importsOf(file) {
  const text = readFileSync(file, 'utf8')
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS)
  const found = []
  for (const node of source.statements) {
    let specifier
    let typeOnly = false
    if (ts.isImportDeclaration(node)) {
      specifier = node.moduleSpecifier
      typeOnly = node.importClause?.isTypeOnly ?? false
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      specifier = node.moduleSpecifier
      typeOnly = node.isTypeOnly
    } else {
      continue
    }
    if (!ts.isStringLiteral(specifier) || !specifier.text.startsWith('.')) continue
    const target = path.resolve(path.dirname(file), specifier.text.replace(/\.js$/, '.ts'))
    found.push({ to: id(target), runtime: !typeOnly, line: source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1 })
  }
  return found
}

const files = sources(SRC).sort()
const modules = new Set(files.map(id))
const graph = new Map(files.map((f) => [id(f), importsOf(f)]))

const problems = []
for (const [from, edges] of graph) {
  for (const edge of edges) {
    if (!modules.has(edge.to)) problems.push(`src/${from}.ts:${edge.line} imports src/${edge.to}.ts, which does not exist`)
    for (const [importer, imported, why] of RULES) {
      if (importer.test(from) && imported.test(edge.to)) problems.push(`src/${from}.ts:${edge.line} imports src/${edge.to}.ts: ${why}`)
    }
  }
}

// Tarjan's strongly connected components over the imports that run: any component of more
// than one module (or a module importing itself) is a circle.
const runtime = new Map([...graph].map(([m, edges]) => [m, [...new Set(edges.filter((e) => e.runtime && modules.has(e.to)).map((e) => e.to))]]))
let counter = 0
const index = new Map()
const low = new Map()
const stack = []
const onStack = new Set()
const circles = []
function connect(v) {
  index.set(v, counter)
  low.set(v, counter++)
  stack.push(v)
  onStack.add(v)
  for (const w of runtime.get(v)) {
    if (!index.has(w)) {
      connect(w)
      low.set(v, Math.min(low.get(v), low.get(w)))
    } else if (onStack.has(w)) {
      low.set(v, Math.min(low.get(v), index.get(w)))
    }
  }
  if (low.get(v) !== index.get(v)) return
  const component = []
  for (let w; w !== v; ) {
    w = stack.pop()
    onStack.delete(w)
    component.push(w)
  }
  if (component.length > 1 || runtime.get(v).includes(v)) circles.push(component.sort())
}
for (const m of runtime.keys()) if (!index.has(m)) connect(m)

/** One circle through the modules of `component`, for the message: a → b → … → a. */
function circleThrough(component) {
  const inside = new Set(component)
  const start = component[0]
  const previous = new Map([[start, null]])
  const queue = [start]
  while (queue.length) {
    const v = queue.shift()
    for (const w of runtime.get(v)) {
      if (w === start) {
        const back = []
        for (let at = v; at !== null; at = previous.get(at)) back.push(at)
        return [...back.reverse(), start]
      }
      if (inside.has(w) && !previous.has(w)) {
        previous.set(w, v)
        queue.push(w)
      }
    }
  }
  return component
}
for (const component of circles) {
  const circle = circleThrough(component)
  const others = component.length + 1 > circle.length ? ` (the circle joins ${component.length} modules: ${component.map((m) => `src/${m}.ts`).join(', ')})` : ''
  problems.push(`import circle: ${circle.map((m) => `src/${m}.ts`).join(' → ')}${others}`)
}

// The README's Layout tree: two spaces of indentation per level, a directory ends with `/`, a file
// with `.ts`; anything else on a line (a description, its continuation) is not a name.
function namedInReadme() {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const section = readme.split(/^## /m).find((s) => s.startsWith('Layout\n'))
  const tree = section?.split('```')[1]
  if (!tree) return null
  const named = new Set()
  const dirs = []
  for (const line of tree.split('\n')) {
    const m = /^( *)(\S+)/.exec(line)
    if (!m) continue
    const depth = m[1].length / 2
    const name = m[2]
    if (!Number.isInteger(depth) || !(name.endsWith('/') || name.endsWith('.ts'))) continue
    dirs.length = depth
    if (name.endsWith('/')) dirs.push(name)
    else if (dirs[0] === 'src/') named.add([...dirs.slice(1), name].join('').replace(/\.ts$/, ''))
  }
  return named
}
const named = namedInReadme()
const notes = []
if (named === null) notes.push('README.md has no "## Layout" section with a tree of src/')
else {
  for (const m of modules) if (!named.has(m)) notes.push(`README.md "Layout" does not name src/${m}.ts`)
  for (const m of named) if (!modules.has(m)) notes.push(`README.md "Layout" names src/${m}.ts, which does not exist`)
}
for (const note of notes) console.log(`check-layout: note: ${note}`)

if (process.argv.includes('--graph')) {
  for (const [m, edges] of graph) {
    console.log(`src/${m}.ts`)
    for (const e of edges) console.log(`  ${e.runtime ? '→' : '⇢'} src/${e.to}.ts${e.runtime ? '' : ' (type only)'}`)
  }
}

const all = [...graph.values()].flat()
const runtimeCount = all.filter((e) => e.runtime).length
const summary = `${modules.size} modules in src/, ${runtimeCount} imports that run and ${all.length - runtimeCount} type-only imports`
if (problems.length) {
  console.error(`check-layout: ${summary}; ${problems.length} problem${problems.length === 1 ? '' : 's'}:`)
  for (const p of problems) console.error(`  ${p}`)
  process.exit(1)
}
console.log(`check-layout: ${summary}: no import circle, no lower layer importing an upper one${notes.length ? '' : ', every file named in README.md'}`)
