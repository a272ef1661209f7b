/**
 * The `sessionkit` command: `migrate` and `clearsessions` run in-process through `main()`,
 * plus one run of the real command in a child process for its exit status.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadBetterSqlite3 } from '../src/drivers/sqlite.ts'
import { main } from '../src/cli.ts'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const dir = mkdtempSync(path.join(tmpdir(), 'sessionkit-cli-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const newFile = (ext = 'sqlite3') => path.join(dir, `f-${n++}.${ext}`)

async function run(argv: string[], env: Record<string, string | undefined> = {}, isTTY = false) {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, env, {
    stdout: { write: (s: string) => void (stdout += s) },
    stderr: { write: (s: string) => void (stderr += s), isTTY },
  })
  return { code, stdout, stderr }
}

/** The file's database, with `rows` inserted as [key, expire_date]. */
function seed(file: string, rows: [string, string][]): void {
  const Database = loadBetterSqlite3()
  const db = new Database(file)
  try {
    db.exec(
      'CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" datetime NOT NULL)',
    )
    const insert = db.prepare('INSERT INTO django_session VALUES (?, ?, ?)')
    db.transaction(() => rows.forEach(([key, date]) => insert.run(key, 'x', date)))()
  } finally {
    db.close()
  }
}

function query<T>(file: string, sql: string): T[] {
  const db = new (loadBetterSqlite3())(file, { readonly: true })
  try {
    return db.prepare(sql).pluck().all() as T[]
  } finally {
    db.close()
  }
}

const keys = (file: string) => query<string>(file, 'SELECT session_key FROM django_session ORDER BY session_key')

function assertOneLine(stderr: string): void {
  assert.match(stderr, /^sessionkit: [^\n]+\n$/, `one line on stderr, got ${JSON.stringify(stderr)}`)
}

describe('sessionkit migrate', () => {
  it('creates the table, then says there is nothing to do', async () => {
    const file = newFile()
    const env = { DATABASE_URL: `sqlite:${file}` }
    const first = await run(['migrate'], env)
    assert.deepEqual(first, {
      code: 0,
      stdout: `created table django_session and index django_session_expire_date_a5c62663 in ${file}\n`,
      stderr: '',
    })
    const second = await run(['migrate'], env)
    assert.deepEqual(second, { code: 0, stdout: `django_session is already in place in ${file}; nothing to do\n`, stderr: '' })
    assert.deepEqual(query(file, "SELECT name FROM sqlite_master WHERE tbl_name = 'django_session' AND sql IS NOT NULL ORDER BY name"), [
      'django_session',
      'django_session_expire_date_a5c62663',
    ])
  })

  it('needs no SECRET_KEY for the db engine, which never signs here', async () => {
    const { code } = await run(['migrate'], { DATABASE_URL: `sqlite:${newFile()}`, SECRET_KEY: '' })
    assert.equal(code, 0)
  })

  it('reads settings from --settings file.json over the environment', async () => {
    const fromEnv = newFile()
    const fromSettings = newFile()
    const json = newFile('json')
    writeFileSync(json, JSON.stringify({ databaseUrl: `sqlite:${fromSettings}` }))
    const { code, stdout } = await run(['migrate', '--settings', json], { DATABASE_URL: `sqlite:${fromEnv}` })
    assert.equal(code, 0)
    assert.ok(stdout.includes(fromSettings), stdout)
    assert.equal(query(fromSettings, "SELECT count(*) FROM sqlite_master WHERE name = 'django_session'")[0], 1)
  })

  it('reads settings from the default export of --settings=file.mjs', async () => {
    const db = newFile()
    const mjs = newFile('mjs')
    writeFileSync(mjs, `export default { databaseUrl: ${JSON.stringify(`sqlite:${db}`)} }\n`)
    const { code, stdout } = await run([`--settings=${mjs}`, 'migrate'])
    assert.equal(code, 0)
    assert.ok(stdout.includes(db), stdout)
  })

  it('says an engine without server storage needs no migration', async () => {
    const { code, stdout } = await run(['migrate'], { SESSION_ENGINE: 'signed_cookies' })
    assert.equal(code, 0)
    assert.equal(stdout, 'the signed_cookies engine needs no migration; nothing to do\n')
  })
})

describe('sessionkit clearsessions', () => {
  const expired: [string, string][] = [
    ['expired00001', '2020-01-01 00:00:00'],
    ['expired00002', '2020-01-01 00:00:00.5'],
  ]
  const live: [string, string][] = [['live00000001', '2099-01-01 00:00:00']]

  it('deletes expired sessions, keeps live ones, and prints the total only (no terminal)', async () => {
    const file = newFile()
    seed(file, [...expired, ...live])
    const { code, stdout, stderr } = await run(['clearsessions'], { DATABASE_URL: `sqlite:${file}` })
    assert.deepEqual({ code, stdout, stderr }, { code: 0, stdout: 'deleted 2 expired sessions (db:sqlite)\n', stderr: '' })
    assert.deepEqual(keys(file), ['live00000001'])
  })

  it('shows progress on a terminal, on stderr', async () => {
    const file = newFile()
    const many: [string, string][] = Array.from({ length: 1500 }, (_, i) => [`old${String(i).padStart(9, '0')}`, '2020-01-01 00:00:00'])
    seed(file, [...many, ...live])
    const { code, stdout, stderr } = await run(['clearsessions'], { DATABASE_URL: `sqlite:${file}` }, true)
    assert.equal(code, 0)
    assert.equal(stdout, 'deleted 1500 expired sessions (db:sqlite)\n')
    assert.equal(stderr, '\rdeleting expired sessions… 1000\rdeleting expired sessions… 1500\n')
  })

  it('says plainly that signed cookies expire by themselves', async () => {
    const { code, stdout, stderr } = await run(['clearsessions'], { SESSION_ENGINE: 'django.contrib.sessions.backends.signed_cookies' })
    assert.deepEqual({ code, stdout, stderr }, {
      code: 0,
      stdout: 'the signed_cookies engine expires sessions by itself; nothing to clear\n',
      stderr: '',
    })
  })
})

describe('sessionkit usage and failures', () => {
  it('prints the usage for --help and -h', async () => {
    for (const flag of ['--help', '-h']) {
      const { code, stdout, stderr } = await run([flag])
      assert.equal(code, 0)
      assert.match(stdout, /^Usage: sessionkit <command>/)
      assert.equal(stderr, '')
    }
  })

  it('prints the usage on stderr and fails without a command', async () => {
    const { code, stdout, stderr } = await run([])
    assert.equal(code, 2)
    assert.equal(stdout, '')
    assert.match(stderr, /^Usage: sessionkit <command>/)
  })

  it('refuses an unknown command or option with one line', async () => {
    for (const argv of [['frobnicate'], ['migrate', '--verbose'], ['migrate', 'extra'], ['migrate', '--settings']]) {
      const { code, stdout, stderr } = await run(argv)
      assert.equal(code, 2, argv.join(' '))
      assert.equal(stdout, '')
      assertOneLine(stderr)
    }
    assert.equal((await run(['frobnicate'])).stderr, 'sessionkit: unknown command "frobnicate"; the commands are migrate and clearsessions\n')
  })

  it('fails on a bad DATABASE_URL with one line that does not show the password', async () => {
    for (const url of ['oracle://scott:tiger@db.example/app', 'postgres://scott:tiger@db.example/app']) {
      const { code, stdout, stderr } = await run(['migrate'], { DATABASE_URL: url })
      assert.equal(code, 1, url)
      assert.equal(stdout, '')
      assertOneLine(stderr)
      assert.ok(!stderr.includes('tiger'), stderr)
    }
  })

  it('fails with one line when the database cannot be opened', async () => {
    const file = path.join(dir, 'missing-dir', 'db.sqlite3')
    const { code, stderr } = await run(['clearsessions'], { DATABASE_URL: `sqlite:${file}` })
    assert.equal(code, 1)
    assert.equal(stderr, `sessionkit: cannot open the SQLite database ${file}: Cannot open database because the directory does not exist\n`)
  })

  it('fails with one line on an unreadable or invalid settings file', async () => {
    const bad = newFile('json')
    writeFileSync(bad, '{ not json')
    const list = newFile('json')
    writeFileSync(list, '[]')
    const unknown = newFile('json')
    writeFileSync(unknown, '{"databaseURL": "sqlite::memory:"}')
    for (const file of [bad, list, unknown, path.join(dir, 'absent.json')]) {
      const { code, stderr } = await run(['migrate', '--settings', file])
      assert.equal(code, 1, file)
      assertOneLine(stderr)
    }
  })

  it('still needs SECRET_KEY for an engine that signs', async () => {
    const { code, stderr } = await run(['clearsessions'], { SESSION_ENGINE: 'file' })
    assert.equal(code, 1)
    assert.match(stderr, /^sessionkit: secretKey must be set/)
  })
})

describe('the sessionkit command in a child process', () => {
  it('exits 0 on success and non-zero on a usage error', () => {
    const env = { ...process.env, DATABASE_URL: `sqlite:${newFile()}` }
    const cli = (command: string) =>
      spawnSync(process.execPath, ['--conditions=sessionkit-source', '--import', 'tsx', 'src/cli.ts', command], { cwd: root, env, encoding: 'utf8' })
    const ok = cli('migrate')
    assert.equal(ok.status, 0, ok.stderr)
    assert.match(ok.stdout, /^created table django_session/)
    const bad = cli('frobnicate')
    assert.equal(bad.status, 2)
    assertOneLine(bad.stderr)
  })
})
