/**
 * One variant's server, in a process of its own: `node --import tsx server.ts <variant>`,
 * started by `run.ts` with `BENCH_CONFIG` and an IPC channel. It listens on 127.0.0.1, port 0,
 * prints `PORT <n>` and sends `{ type: 'ready', port }`; then answers `stats`, `reset` and
 * `close` messages. It exits when the runner goes away (the IPC channel closes).
 */
import type { AddressInfo } from 'node:net'
import { writeFileSync } from 'node:fs'
import { Session as Inspector } from 'node:inspector/promises'
import { readServerConfig } from './lib/config.ts'
import { newCounters, resetCounters } from './lib/counters.ts'
import { variantNamed } from './variants.ts'
import type { Built } from './apps/types.ts'

type Message =
  | { type: 'stats' }
  | { type: 'reset' }
  | { type: 'close' }
  | { type: 'profile-start'; intervalUs: number }
  | { type: 'profile-stop'; file: string }
  | { type: 'heap-start' }
  | { type: 'heap-stop'; file: string }

const send = (message: object): void => void process.send?.(message)

async function build(name: string): Promise<{ built: Built; counters: ReturnType<typeof newCounters> }> {
  const variant = variantNamed(name)
  const config = readServerConfig()
  const counters = newCounters()
  const builders = {
    node: () => import('./apps/node.ts').then((m) => m.buildNode),
    express: () => import('./apps/express.ts').then((m) => m.buildExpress),
    fastify: () => import('./apps/fastify.ts').then((m) => m.buildFastify),
    koa: () => import('./apps/koa.ts').then((m) => m.buildKoa),
    hono: () => import('./apps/hono.ts').then((m) => m.buildHono),
    fetch: () => import('./apps/fetch.ts').then((m) => m.buildFetch),
  }
  const builder = await builders[variant.framework]()
  const built = await builder(variant, config, counters)
  built.server.on('request', () => {
    counters.requests++
  })
  return { built, counters }
}

/** A variant whose code has not landed yet (a missing adapter file, an engine "not available"). */
function unavailable(error: unknown): string | null {
  const e = error as { code?: string; message?: string; unavailable?: boolean }
  if (e?.unavailable) return e.message ?? 'unavailable'
  if (e?.code === 'ERR_MODULE_NOT_FOUND' && /\/src\//.test(e.message ?? '')) return `not in the source tree: ${e.message!.split('\n')[0]}`
  if (/not available in this version|arrives with/.test(e?.message ?? '')) return e.message!.split('\n')[0]!
  return null
}

async function main(): Promise<void> {
  const name = process.argv[2]
  if (!name) throw new Error('usage: server.ts <variant>')
  process.on('disconnect', () => process.exit(0))
  let result
  try {
    result = await build(name)
  } catch (error) {
    const reason = unavailable(error)
    if (reason === null) throw error
    send({ type: 'unavailable', reason })
    process.exit(0)
  }
  const { built, counters } = result
  const { port } = built.server.address() as AddressInfo
  console.log(`PORT ${port}`)
  send({ type: 'ready', port })
  // The CPU profiler, started and stopped by the runner around a measured run (so that start-up
  // and warm-up stay out of the profile).
  const inspector = new Inspector()
  process.on('message', async (message: Message) => {
    switch (message.type) {
      case 'profile-start':
        inspector.connect()
        await inspector.post('Profiler.enable')
        await inspector.post('Profiler.setSamplingInterval', { interval: message.intervalUs })
        await inspector.post('Profiler.start')
        send({ type: 'profile-start' })
        break
      case 'heap-start':
        // Allocation sampling, counting objects already collected too: what the GC has to clean.
        inspector.connect()
        await inspector.post('HeapProfiler.enable')
        await inspector.post('HeapProfiler.startSampling', {
          samplingInterval: 4096,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        } as never)
        send({ type: 'heap-start' })
        break
      case 'heap-stop': {
        const { profile } = await inspector.post('HeapProfiler.stopSampling')
        writeFileSync(message.file, JSON.stringify(profile))
        inspector.disconnect()
        send({ type: 'heap-stop' })
        break
      }
      case 'profile-stop': {
        const { profile } = await inspector.post('Profiler.stop')
        writeFileSync(message.file, JSON.stringify(profile))
        inspector.disconnect()
        send({ type: 'profile-stop' })
        break
      }
      case 'stats':
        send({ type: 'stats', counters: { ...counters } })
        break
      case 'reset':
        resetCounters(counters)
        send({ type: 'reset' })
        break
      case 'close':
        built.server.closeAllConnections?.()
        built.server.close()
        built
          .close()
          .catch((error: unknown) => console.error('closing the stores failed:', error))
          .finally(() => process.exit(0))
        break
    }
  })
}

main().catch((error: unknown) => {
  console.error(error)
  send({ type: 'failed', reason: error instanceof Error ? error.message : String(error) })
  process.exit(1)
})
