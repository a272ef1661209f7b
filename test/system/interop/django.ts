/**
 * Real Django for the interop tests: Debian's python3-django run by /usr/bin/python3 (or
 * `SESSIONKIT_TEST_PYTHON`), on the small project in this directory (settings from the
 * environment, see interop_site/settings.py).
 *
 * - {@link probeDjango}: is Django there, and which version;
 * - {@link startDriver}: a long-lived `driver.py` answering JSON-line requests with Django's
 *   own `SessionStore`, `Session` model, signing and test `Client` (one process per
 *   configuration, so Django starts once per suite, not once per check);
 * - {@link manage}: `python manage.py <command>`, as a Django user runs it.
 */
import { execFile, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** The Python with Django: `SESSIONKIT_TEST_PYTHON`, default Debian's /usr/bin/python3 (python3-django). */
export const PYTHON = process.env['SESSIONKIT_TEST_PYTHON'] || '/usr/bin/python3'
export const INTEROP_DIR = fileURLToPath(new URL('.', import.meta.url))

/** The environment of the Django project: what `interop_site/settings.py` reads. */
export interface DjangoEnv {
  SECRET_KEY: string
  DATABASE_URL?: string
  SESSION_ENGINE?: string
  SESSION_COOKIE_NAME?: string
  SESSION_COOKIE_AGE?: string
  SECRET_KEY_FALLBACKS?: string
  SESSION_FILE_PATH?: string
  /** Django's `CACHES` as JSON. */
  DJANGO_CACHES?: string
}

export type Probe = { ok: true; version: string; versionInfo: [number, number, number] } | { ok: false; reason: string }

/** Whether {@link PYTHON} imports Django (and, with `modules`, those modules too). */
export function probeDjango(modules: string[] = []): Probe {
  const code = `import json, django\n${modules.map((m) => `import ${m}\n`).join('')}print(json.dumps([django.get_version(), list(django.VERSION[:3])]))`
  const run = spawnSync(PYTHON, ['-c', code], { encoding: 'utf8' })
  if (run.status !== 0) {
    const reason = run.error ? String(run.error) : (run.stderr.trim().split('\n').pop() ?? `exit ${run.status}`)
    return { ok: false, reason }
  }
  const [version, versionInfo] = JSON.parse(run.stdout) as [string, [number, number, number]]
  return { ok: true, version, versionInfo }
}

function childEnv(env: DjangoEnv): NodeJS.ProcessEnv {
  // Only what Django needs: no SESSION_* or DATABASE_URL of the developer's shell leaks in.
  const { PATH, HOME, LANG, TMPDIR } = process.env
  return { PATH, HOME, LANG, TMPDIR, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', ...env }
}

/** A Python-side session as `interop_site.views.describe` reports it. */
export interface DjangoSession {
  key: string | null
  data: Record<string, unknown>
  /** Python type names: `int`, `float`, `str`, `bool`, `NoneType`, `list`, `dict`. */
  types: Record<string, string>
  expiryAge?: number
  expiryDate?: string
  browserClose?: boolean
  /** Set when Django could not compute the expiry (e.g. 3.2 given an ISO-string expiry). */
  expiryError?: string
  /** With `expect`: Python's own `data == expect`. */
  equal?: boolean
  /** The django_session row (db engine). */
  row?: { sessionData: string; expireDate: string } | null
}

/** A response from Django's test Client, through `SessionMiddleware`. */
export interface DjangoResponse {
  status: number
  body: unknown
  /** `response.cookies[…].OutputString()`: what Django sends as `Set-Cookie`. */
  setCookie: string[]
  vary: string | null
}

export interface Driver {
  /** One request to driver.py; `settings` are applied with Django's `override_settings` for that request. */
  call<T>(op: string, args?: Record<string, unknown>): Promise<T>
  close(): Promise<void>
}

/** Start driver.py with `env`; it answers once Django is set up. */
export async function startDriver(env: DjangoEnv): Promise<Driver> {
  const child: ChildProcessWithoutNullStreams = spawn(PYTHON, ['driver.py'], { cwd: INTEROP_DIR, env: childEnv(env) })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8000)
  })
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()
  let next = 1
  let exited: Error | null = null
  createInterface({ input: child.stdout }).on('line', (line) => {
    const answer = JSON.parse(line) as { id: number; ok: boolean; result?: unknown; error?: string; traceback?: string }
    const waiter = pending.get(answer.id)
    pending.delete(answer.id)
    if (!waiter) return
    if (answer.ok) waiter.resolve(answer.result)
    else waiter.reject(new Error(`Django driver: ${answer.error}\n${answer.traceback ?? ''}`))
  })
  const closed = new Promise<void>((resolve) => {
    child.on('close', (code, signal) => {
      exited = new Error(`Django driver exited (${signal ?? code}): ${stderr}`)
      for (const waiter of pending.values()) waiter.reject(exited)
      pending.clear()
      resolve()
    })
  })
  const driver: Driver = {
    call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
      if (exited) return Promise.reject(exited)
      const id = next++
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
        child.stdin.write(`${JSON.stringify({ ...args, id, op })}\n`)
      })
    },
    async close() {
      child.stdin.end()
      await closed
    },
  }
  await driver.call('version')
  return driver
}

export interface ManageResult {
  status: number | null
  stdout: string
  stderr: string
}

/** `python manage.py <args>` in the interop project with `env`. */
export function manage(args: string[], env: DjangoEnv): Promise<ManageResult> {
  return new Promise((resolve) => {
    execFile(PYTHON, ['manage.py', ...args], { cwd: INTEROP_DIR, env: childEnv(env), encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr })
    })
  })
}
