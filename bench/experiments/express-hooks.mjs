/**
 * What it costs to hook a response, on a plain `ServerResponse` and on an Express one (whose
 * prototype Express swaps for its app's `app.response` on every request), variant by variant,
 * 3 rounds of 50,000 fresh responses each: `node experiments/express-hooks.mjs` (from bench/).
 *
 * It is why src/adapters/node.ts hooks Express responses through their prototype (patched
 * once, state in a WeakMap) and plain ones with own properties: on an object whose prototype
 * was swapped, every property added costs V8 a new hidden class.
 */
import http from 'node:http'
import express from 'express'

const app = express()
const HOOK = Symbol('hook')
function writeHead() { return this }
function write() { return true }
function end() { return this }
const HEADERS_SENT = { configurable: true, get() { return this[HOOK].phase !== 0 } }
class Hook {
  constructor(res) {
    this.phase = 0
    this.res = res
    this.head = null
    this.writes = null
    this.ending = null
  }
}
const child = Object.create(app.response)
Object.assign(child, { writeHead, write, end })
Object.defineProperty(child, 'headersSent', HEADERS_SENT)
const states = new WeakMap()

const VARIANTS = {
  nothing: () => {},
  'symbol property': (res) => { res[HOOK] = new Hook(res) },
  '+ 3 methods (own)': (res) => { res[HOOK] = new Hook(res); res.writeHead = writeHead; res.write = write; res.end = end },
  '+ headersSent accessor': (res) => {
    res[HOOK] = new Hook(res); res.writeHead = writeHead; res.write = write; res.end = end
    Object.defineProperty(res, 'headersSent', HEADERS_SENT)
  },
  '+ deleted again': (res) => {
    res[HOOK] = new Hook(res); res.writeHead = writeHead; res.write = write; res.end = end
    Object.defineProperty(res, 'headersSent', HEADERS_SENT)
    delete res.headersSent; delete res.end; delete res.write; delete res.writeHead
  },
  'prototype swap + WeakMap': (res) => { Object.setPrototypeOf(res, child); states.set(res, new Hook(res)) },
  'WeakMap only (hooks on the prototype)': (res) => { states.set(res, new Hook(res)) },
}

const req = new http.IncomingMessage(null)
for (const express of [false, true]) {
  console.log(express ? '\nExpress response (prototype swapped to app.response):' : 'plain ServerResponse:')
  const results = new Map()
  for (let round = 0; round < 3; round++) {
    for (const [name, hook] of Object.entries(VARIANTS)) {
      const n = 50_000
      let ns = 0
      for (let i = 0; i < n; i++) {
        const res = new http.ServerResponse(req)
        if (express) Object.setPrototypeOf(res, app.response)
        res.locals = Object.create(null)
        const t0 = process.hrtime.bigint()
        hook(res)
        ns += Number(process.hrtime.bigint() - t0)
      }
      results.set(name, [...(results.get(name) ?? []), ns / n / 1000])
    }
  }
  for (const [name, us] of results) {
    const median = [...us].sort((a, b) => a - b)[1]
    console.log(`  ${name.padEnd(40)} ${median.toFixed(3)} µs (median of 3)`)
  }
}
