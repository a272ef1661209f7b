/**
 * Memcached servers of the test's own: `memcached` (Debian's package) started on free loopback
 * ports and stopped by pid when the test file ends. Absent binary: the tests skip with a
 * one-line notice, except under CI, where that is a failure.
 */
import { after } from 'node:test'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { underCI } from './redis.ts'
import { freePort } from './http.ts'

export const MEMCACHED = process.env['SESSIONKIT_TEST_MEMCACHED'] || '/usr/bin/memcached'

/** `false` when the memcached binary runs, else the reason to skip (a failure under CI). */
export function memcachedAvailable(): string | false {
  const run = spawnSync(MEMCACHED, ['-V'], { encoding: 'utf8' })
  if (run.status === 0) return false
  const reason = `memcached not runnable at ${MEMCACHED} (apt-get install -y memcached): ${run.error?.message ?? run.stderr.trim()}`
  if (underCI()) throw new Error(`${reason}; CI is set, so the Memcached tests must run, not skip`)
  console.warn(`# skipping the Memcached tests: ${reason}`)
  return reason
}

async function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('connect', () => socket.write('version\r\n'))
    socket.once('data', (d) => done(d.toString().startsWith('VERSION')))
    socket.once('error', () => done(false))
  })
}

export interface MemcachedServer {
  /** `127.0.0.1:<port>`, as Django's LOCATION names it. */
  location: string
  port: number
  process: ChildProcess
  /** Stop it (SIGTERM to its pid) and wait for it to exit. */
  stop(): Promise<void>
  /** Start it again on the same port (empty). */
  restart(): Promise<void>
}

/** Start `count` memcached servers on free ports; every one is stopped when the test file ends. */
export async function startMemcached(count = 1): Promise<MemcachedServer[]> {
  const servers: MemcachedServer[] = []
  for (let i = 0; i < count; i++) {
    const port = await freePort()
    const server: MemcachedServer = {
      location: `127.0.0.1:${port}`,
      port,
      process: null as unknown as ChildProcess,
      async stop() {
        const child = server.process
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
        child.kill('SIGTERM')
        await exited
      },
      async restart() {
        await server.stop()
        await launch()
      },
    }
    const launch = async () => {
      server.process = spawn(MEMCACHED, ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', '64', '-t', '1', ...(process.getuid?.() === 0 ? ['-u', 'root'] : [])], { stdio: 'ignore' })
      for (let tries = 0; tries < 100; tries++) {
        if (await answers(port)) return
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error(`memcached on port ${port} did not start`)
    }
    await launch()
    servers.push(server)
  }
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()))
  })
  return servers
}
