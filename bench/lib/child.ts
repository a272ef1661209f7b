/**
 * A variant's server process, seen from the runner: started with `fork` (its own process,
 * an IPC channel for counters), ready once it reports its port, stopped by its pid — asked
 * first, killed if it does not go within a few seconds.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Counters } from './counters.ts'
import type { ServerConfig } from './config.ts'

const SERVER = fileURLToPath(new URL('../server.ts', import.meta.url))

export interface ServerHandle {
  port: number
  pid: number
  stats(): Promise<Counters>
  reset(): Promise<void>
  /** Start the V8 CPU profiler in the server, sampling every `intervalUs` microseconds. */
  profileStart(intervalUs: number): Promise<void>
  /** Stop it and write the `.cpuprofile` to `file`. */
  profileStop(file: string): Promise<void>
  /** Start sampling allocations (collected objects included). */
  heapStart(): Promise<void>
  /** Stop and write the `.heapprofile` to `file`. */
  heapStop(file: string): Promise<void>
  stop(): Promise<void>
  /** What the server wrote on stderr (the last 4 KB), for failure reports. */
  stderr(): string
}

export type StartResult = { ok: true; server: ServerHandle } | { ok: false; unavailable: boolean; reason: string }

export interface StartOptions {
  /** Extra Node options for the server, e.g. `--cpu-prof`. */
  execArgv?: string[]
  timeoutMs?: number
}

export function startServer(variant: string, config: ServerConfig, options: StartOptions = {}): Promise<StartResult> {
  const child: ChildProcess = fork(SERVER, [variant], {
    execArgv: ['--import', 'tsx', ...(options.execArgv ?? [])],
    env: { ...process.env, BENCH_CONFIG: JSON.stringify(config), NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  let err = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    err = (err + chunk.toString()).slice(-4096)
  })
  child.stdout!.resume()
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))

  function ask<T>(type: string, extra: object = {}): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${variant}: no answer to ${type}`)), 5000)
      const onMessage = (message: { type: string } & Record<string, unknown>) => {
        if (message.type !== type) return
        clearTimeout(timer)
        child.off('message', onMessage)
        resolve(message as T)
      }
      child.on('message', onMessage)
      child.send({ type, ...extra })
    })
  }

  const handle = (port: number): ServerHandle => ({
    port,
    pid: child.pid!,
    stats: async () => (await ask<{ counters: Counters }>('stats')).counters,
    reset: async () => void (await ask('reset')),
    profileStart: async (intervalUs) => void (await ask('profile-start', { intervalUs })),
    profileStop: async (file) => void (await ask('profile-stop', { file })),
    heapStart: async () => void (await ask('heap-start')),
    heapStop: async (file) => void (await ask('heap-stop', { file })),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.send({ type: 'close' })
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
    stderr: () => err,
  })

  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      resolve({ ok: false, unavailable: false, reason: `no port within ${options.timeoutMs ?? 30000} ms; stderr: ${err.trim()}` })
    }, options.timeoutMs ?? 30000)
    child.on('message', (message: { type: string; port?: number; reason?: string }) => {
      if (message.type === 'ready') {
        clearTimeout(timer)
        resolve({ ok: true, server: handle(message.port!) })
      } else if (message.type === 'unavailable' || message.type === 'failed') {
        clearTimeout(timer)
        resolve({ ok: false, unavailable: message.type === 'unavailable', reason: message.reason ?? 'unknown' })
      }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ ok: false, unavailable: false, reason: `exited (${code ?? signal}) before listening; stderr: ${err.trim().slice(-1500)}` })
    })
  })
}
