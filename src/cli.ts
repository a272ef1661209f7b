/**
 * The `sessionkit` command: Django's `manage.py migrate` (for the session table) and
 * `manage.py clearsessions`.
 *
 * Settings come from the environment ({@link fromEnv}: `DATABASE_URL`, `SESSION_ENGINE`, …),
 * then from `--settings <file>` (a JSON file, or a JS module whose default export is the
 * settings), which overrides the environment. A relative SQLite path is relative to the
 * working directory, not to the settings file.
 *
 * Exit status: 0 on success, 1 on failure, 2 on a usage error; a failure prints one line,
 * `sessionkit: <reason>`, on stderr, with database passwords redacted.
 */
import { readFile, realpath } from 'node:fs/promises'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { createSessions } from './middleware.js'
import { fromEnv, type Logger, type Settings } from './settings.js'
import { redactUrl } from './redact.js'
import type { Engine } from './engine.js'
import type { DbEngine } from './engines/db.js'

/** Where the command writes; `process` will do. */
export interface CliIO {
  stdout: { write(chunk: string): unknown }
  stderr: { write(chunk: string): unknown; isTTY?: boolean }
}

export const USAGE = `Usage: sessionkit <command> [--settings <file>]

Commands:
  migrate          create the django_session table and its index if missing (idempotent)
  clearsessions    delete expired sessions, in batches (Django: manage.py clearsessions)

Options:
  --settings <file>  settings as JSON, or a .js/.mjs module whose default export is the
                     settings; overrides the environment
  -h, --help         show this help

Environment: DATABASE_URL (default sqlite:///db.sqlite3), SESSION_ENGINE, SECRET_KEY, and the
other SESSION_* variables of Django's settings.
`

const COMMANDS = ['migrate', 'clearsessions'] as const
type Command = (typeof COMMANDS)[number]

/**
 * Engines whose `migrate` and `clearExpired` never sign or verify: for them the commands run
 * without `SECRET_KEY` (a placeholder satisfies the settings check). The file engine is not
 * here: its clearing reads each session's expiry from the signed data (Django's does too).
 */
const NEVER_SIGN_IN_COMMANDS = new Set<unknown>(['db', 'cached_db', 'cache', 'signed_cookies'])
const NO_SECRET_PLACEHOLDER = 'sessionkit-cli-no-secret'

class UsageError extends Error {}

type Parsed = { help: true } | { help: false; command: Command | undefined; settingsFile: string | undefined }

function parseArgs(argv: readonly string[]): Parsed {
  let command: string | undefined
  let settingsFile: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '-h' || arg === '--help') return { help: true }
    if (arg === '--settings' || arg.startsWith('--settings=')) {
      const value = arg === '--settings' ? argv[++i] : arg.slice('--settings='.length)
      if (!value) throw new UsageError('--settings needs a file')
      settingsFile = value
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option ${JSON.stringify(arg)} (sessionkit --help lists them)`)
    } else if (command !== undefined) {
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`)
    } else {
      command = arg
    }
  }
  if (command !== undefined && !(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`unknown command ${JSON.stringify(command)}; the commands are ${COMMANDS.join(' and ')}`)
  }
  return { help: false, command: command as Command | undefined, settingsFile }
}

async function readSettingsFile(file: string): Promise<Partial<Settings>> {
  let settings: unknown
  try {
    if (path.extname(file).toLowerCase() === '.json') {
      settings = JSON.parse(await readFile(file, 'utf8'))
    } else {
      const module = (await import(pathToFileURL(await realpath(file)).href)) as { default?: unknown }
      settings = module.default
    }
  } catch (error) {
    throw new Error(`cannot read settings file ${file}: ${(error as Error).message}`, { cause: error })
  }
  if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) {
    throw new Error(`settings file ${file} must hold an object of settings (a module: as its default export)`)
  }
  return settings as Partial<Settings>
}

function stderrLogger(io: CliIO): Logger {
  return {
    warn: (message) => void io.stderr.write(`sessionkit: ${oneLine(message)}\n`),
    error: (message, error) =>
      void io.stderr.write(`sessionkit: ${oneLine(message)}${error === undefined ? '' : `: ${oneLine(String(error))}`}\n`),
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

/** The reason of `error`, on one line, without the `sessionkit:` prefix or a database password. */
function reason(error: unknown, urls: readonly (string | null | undefined)[]): string {
  let message = oneLine(error instanceof Error ? error.message : String(error)).replace(/^sessionkit:\s*/, '')
  for (const url of urls) if (url) message = message.split(url).join(redactUrl(url))
  // Any other URL with a password in it (a driver quoting its connection string).
  return message.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/gi, '$1***@')
}

async function migrate(engine: Engine, out: (line: string) => void): Promise<void> {
  const db = engine as Partial<DbEngine>
  if (typeof db.migrateReport === 'function') {
    const { created, where } = await db.migrateReport()
    out(created.length > 0 ? `created ${created.join(' and ')} in ${where}` : `django_session is already in place in ${where}; nothing to do`)
  } else if (engine.migrate) {
    await engine.migrate()
    out(`migrated the ${engine.name} engine's storage`)
  } else {
    out(`the ${engine.name} engine needs no migration; nothing to do`)
  }
}

async function clearSessions(engine: Engine, io: CliIO, out: (line: string) => void): Promise<void> {
  // Progress only for a person watching: a cron log gets the total alone.
  let shown = false
  const progress = io.stderr.isTTY
    ? (deleted: number) => {
        io.stderr.write(`\rdeleting expired sessions… ${deleted}`)
        shown = true
      }
    : undefined
  let total: number | null
  try {
    total = await engine.clearExpired(progress)
  } finally {
    if (shown) io.stderr.write('\n')
  }
  if (total === null) out(`the ${engine.name} engine expires sessions by itself; nothing to clear`)
  else out(`deleted ${total} expired session${total === 1 ? '' : 's'} (${engine.name})`)
}

/**
 * Run the command line `argv` (without `node` and the script) and return the exit status.
 * Never throws: failures are reported on `io.stderr`.
 */
export async function main(
  argv: readonly string[],
  env: Record<string, string | undefined> = process.env,
  io: CliIO = process,
): Promise<number> {
  let parsed: Parsed
  try {
    parsed = parseArgs(argv)
  } catch (error) {
    io.stderr.write(`sessionkit: ${(error as Error).message}\n`)
    return 2
  }
  if (parsed.help) {
    io.stdout.write(USAGE)
    return 0
  }
  if (parsed.command === undefined) {
    io.stderr.write(USAGE)
    return 2
  }
  const out = (line: string): void => void io.stdout.write(`${line}\n`)
  const urls: (string | null | undefined)[] = [env.DATABASE_URL, env.REDIS_URL]
  try {
    const fromFile = parsed.settingsFile === undefined ? {} : await readSettingsFile(parsed.settingsFile)
    const settings: Partial<Settings> = { logger: stderrLogger(io), ...fromEnv(env), ...fromFile }
    urls.push(settings.databaseUrl, settings.redisUrl)
    if (!settings.secretKey && NEVER_SIGN_IN_COMMANDS.has(settings.engine ?? 'db')) {
      settings.secretKey = NO_SECRET_PLACEHOLDER
    }
    const sessions = createSessions(settings)
    try {
      const engine = await sessions.ready()
      if (parsed.command === 'migrate') await migrate(engine, out)
      else await clearSessions(engine, io, out)
    } finally {
      await sessions.close()
    }
    return 0
  } catch (error) {
    io.stderr.write(`sessionkit: ${reason(error, urls)}\n`)
    return 1
  }
}

async function isMain(): Promise<boolean> {
  const script = process.argv[1]
  if (!script) return false
  try {
    return pathToFileURL(await realpath(script)).href === import.meta.url
  } catch {
    return false
  }
}

// `node src/cli.ts …` in development; the installed command is bin/sessionkit.js.
if (await isMain()) process.exitCode = await main(process.argv.slice(2), process.env, process)
