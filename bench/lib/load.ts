/**
 * The load side, in the runner's process (the server is another process): autocannon for the
 * timed workloads, plain `node:http` for set-up, read-backs and the parallel-writes test.
 */
import http from 'node:http'
import autocannon from 'autocannon'
import { Jar } from './cookies.ts'

export interface Reply {
  status: number
  body: string
  setCookies: string[]
}

/** One GET on 127.0.0.1:`port`, bounded in time. */
export function get(port: number, path: string, cookie: string, agent?: http.Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: 'GET', agent, headers: cookie ? { cookie } : {}, timeout: 10_000 },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (body += chunk))
        res.on('end', () => {
          const set = res.headers['set-cookie']
          resolve({ status: res.statusCode ?? 0, body, setCookies: set ?? [] })
        })
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within 10 s`)))
    req.on('error', reject)
    req.end()
  })
}

/** `n` visitors with a session each (`/init`), as cookie jars; 8 requests at a time. */
export async function establish(port: number, n: number): Promise<Jar[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
  try {
    return await Promise.all(
      Array.from({ length: n }, async () => {
        const reply = await get(port, '/init', '', agent)
        if (reply.status !== 200) throw new Error(`/init answered ${reply.status}: ${reply.body.slice(0, 200)}`)
        const jar = new Jar()
        jar.apply(reply.setCookies)
        if (jar.size === 0) throw new Error('/init set no cookie')
        return jar
      }),
    )
  } finally {
    agent.destroy()
  }
}

/** The sum of the counters of these visitors (`/read`); `null` if a read failed. */
export async function sumCounters(port: number, jars: readonly Jar[]): Promise<number | null> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
  try {
    const values = await Promise.all(jars.map((jar) => get(port, '/read', jar.header, agent)))
    if (values.some((r) => r.status !== 200)) return null
    return values.reduce((sum, r) => sum + Number(r.body), 0)
  } finally {
    agent.destroy()
  }
}

export interface Measured {
  rps: number
  p99_ms: number
  p50_ms: number
  ok: number
  errors: number
  non2xx: number
  timeouts: number
  duration_s: number
}

export interface MeasureOptions {
  connections: number
  durationS: number
  /** One jar per connection (reused round-robin when fewer), updated from `Set-Cookie` as a browser does; `null`: no cookie at all. */
  jars: readonly Jar[] | null
}

/**
 * autocannon against `path` for `durationS` seconds (stopped by autocannon, and killed by a
 * watchdog 20 s later if it hangs). Throughput counts 2xx answers only.
 */
export function measure(port: number, path: string, options: MeasureOptions): Promise<Measured> {
  const { connections, durationS, jars } = options
  let next = 0
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${port}${path}`,
        connections,
        duration: durationS,
        pipelining: 1,
        timeout: 10,
        setupClient(client: autocannon.Client & NodeJS.EventEmitter & { setHeaders(h: Record<string, string>): void }) {
          if (jars === null) return
          const jar = jars[next++ % jars.length]!
          client.setHeaders({ cookie: jar.header })
          client.on('headers', (info: { headers: string[] }) => {
            if (jar.applyRaw(info.headers)) client.setHeaders({ cookie: jar.header })
          })
        },
      },
      (error, result) => {
        clearTimeout(watchdog)
        if (error) return reject(error)
        const ok = result['2xx']
        resolve({
          rps: ok / result.duration,
          p99_ms: result.latency.p99,
          p50_ms: result.latency.p50,
          ok,
          errors: result.errors + result.timeouts + result.non2xx,
          non2xx: result.non2xx,
          timeouts: result.timeouts,
          duration_s: result.duration,
        })
      },
    )
    const watchdog = setTimeout(() => {
      instance.stop()
      reject(new Error(`autocannon on ${path} did not finish within ${durationS + 20} s`))
    }, (durationS + 20) * 1000)
  })
}

export interface LostKeys {
  /** Keys asked for. */
  asked: number
  /** Keys present afterwards, read back with the cookie a browser would hold. */
  present: number
  lost: number
  /** Requests that did not answer 2xx. */
  errors: number
}

/**
 * Workload (e): one session, `parallel` requests at once, each setting a distinct key, then
 * a read-back with the cookie a browser would hold (the last `Set-Cookie` to arrive wins).
 */
export async function lostKeys(port: number, parallel: number): Promise<LostKeys> {
  const [jar] = await establish(port, 1)
  const agent = new http.Agent({ keepAlive: true, maxSockets: parallel })
  try {
    const sent = jar!.header
    const replies = await Promise.all(
      Array.from({ length: parallel }, (_, i) =>
        get(port, `/set?k=k${i}`, sent, agent).then((reply) => {
          jar!.apply(reply.setCookies) // in arrival order
          return reply
        }),
      ),
    )
    const errors = replies.filter((r) => r.status < 200 || r.status > 299).length
    const back = await get(port, `/count?n=${parallel}`, jar!.header, agent)
    const present = back.status === 200 ? Number(back.body) : 0
    return { asked: parallel, present, lost: parallel - present, errors }
  } finally {
    agent.destroy()
  }
}
