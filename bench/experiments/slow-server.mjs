/**
 * Is the throughput lost to a small per-request cost larger than that cost? A raw node:http
 * server that burns `busy` µs of CPU per request (a spin on the clock), driven by autocannon
 * (50 connections, 5 s, after 1 s of warm-up), for busy = 0, 10, 20, 40 µs, interleaved over
 * 3 rounds: `node experiments/slow-server.mjs` (from bench/). Prints the measured req/s and
 * what a pure CPU cost would predict from the busy = 0 rate: 1 / (1/r0 + busy).
 */
import http from 'node:http'
import { fork } from 'node:child_process'
import autocannon from 'autocannon'

if (process.argv[2] === 'serve') {
  const busy = Number(process.argv[3]) * 1000 // ns
  const server = http.createServer((req, res) => {
    if (busy > 0) {
      const until = process.hrtime.bigint() + BigInt(busy)
      while (process.hrtime.bigint() < until);
    }
    res.setHeader('Content-Type', 'text/plain; charset=utf-8')
    res.end('1')
  })
  server.listen(0, '127.0.0.1', () => process.send(server.address().port))
} else {
  const busyList = [0, 10, 20, 40]
  const rates = new Map(busyList.map((b) => [b, []]))
  for (let round = 0; round < 3; round++) {
    for (const busy of busyList) {
      const child = fork(new URL(import.meta.url).pathname, ['serve', String(busy)])
      const port = await new Promise((resolve) => child.once('message', resolve))
      const url = `http://127.0.0.1:${port}/`
      await autocannon({ url, connections: 50, duration: 1 })
      const result = await autocannon({ url, connections: 50, duration: 5 })
      rates.get(busy).push(result.requests.average)
      child.kill()
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[1]
  const r0 = median(rates.get(0))
  for (const busy of busyList) {
    const measured = median(rates.get(busy))
    const predicted = 1 / (1 / r0 + busy / 1e6)
    console.log(`busy ${String(busy).padStart(2)} µs: ${Math.round(measured)} req/s (${(measured / r0).toFixed(2)} × busy 0); a pure CPU cost predicts ${Math.round(predicted)} (${(predicted / r0).toFixed(2)} ×)`)
  }
}
