/**
 * The `db` engine itself, whatever the database: how `databaseUrl` picks one (parsed like
 * dj-database-url), and what a bad URL or an absent server does at start-up. Each driver's own
 * tests, and the SQL driver contract they all pass, are in test/drivers/.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createSessions } from 'sessionkit'
import { parseDatabaseUrl } from '../../src/engines/db.ts'

const dir = mkdtempSync(path.join(tmpdir(), 'sessionkit-db-engine-'))
after(() => rmSync(dir, { recursive: true, force: true }))

describe('databaseUrl for the db engine', () => {
  const cwd = '/srv/app'
  for (const [url, filename] of [
    ['sqlite:///db.sqlite3', '/srv/app/db.sqlite3'],
    ['sqlite:///data/sessions.db', '/srv/app/data/sessions.db'],
    ['sqlite:////var/lib/app/sessions.db', '/var/lib/app/sessions.db'],
    ['sqlite:///my%20db.sqlite3', '/srv/app/my db.sqlite3'],
    ['sqlite::memory:', ':memory:'],
    ['sqlite://:memory:', ':memory:'],
    ['sqlite:db.sqlite3', '/srv/app/db.sqlite3'],
    ['sqlite:/abs/path.db', '/abs/path.db'],
  ] as const) {
    it(`reads ${url} as ${filename}`, () => {
      assert.deepEqual(parseDatabaseUrl(url, cwd), { dialect: 'sqlite', filename })
    })
  }

  for (const url of ['sqlite:', 'sqlite://', 'sqlite:///', 'sqlite://host/db.sqlite3', 'sqlite:///db.sqlite3?mode=ro', 'sqlite:///%zz']) {
    it(`refuses ${JSON.stringify(url)} with a message that shows the accepted forms`, () => {
      assert.throws(
        () => parseDatabaseUrl(url, cwd),
        (e: Error & { code?: string }) => e.code === 'ERR_IMPROPERLY_CONFIGURED' && e.message.includes('sqlite:////absolute/path.db'),
      )
    })
  }

  it('recognises PostgreSQL and MySQL URLs', () => {
    assert.equal(parseDatabaseUrl('postgres://u:p@h/db').dialect, 'postgresql')
    assert.equal(parseDatabaseUrl('postgresql://h/db').dialect, 'postgresql')
    assert.equal(parseDatabaseUrl('mysql://h/db').dialect, 'mysql')
    assert.equal(parseDatabaseUrl('mariadb://h/db').dialect, 'mysql')
  })

  it('opens PostgreSQL asynchronously: a refused connection rejects ready() without the password', async () => {
    const sessions = createSessions({ secretKey: 'test', databaseUrl: 'postgres://app:hunter2@127.0.0.1:1/app' })
    await assert.rejects(sessions.ready(), (e: Error & { code?: string }) => e.code === 'ERR_STORE_UNAVAILABLE' && !e.message.includes('hunter2'))
  })

  it('refuses a SQLite file in a directory that does not exist, naming the file', () => {
    const file = path.join(dir, 'no-such-dir', 'db.sqlite3')
    assert.throws(
      () => createSessions({ secretKey: 'test', databaseUrl: `sqlite:${file}` }),
      (e: Error & { code?: string }) => e.code === 'ERR_IMPROPERLY_CONFIGURED' && e.message.includes(file),
    )
  })
})
