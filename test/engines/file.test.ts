/**
 * The file engine: Django's FileSessionTests (`tests/sessions_tests/tests.py`), the file
 * format Django reads and writes, and where ours is stricter than Django's (write errors
 * throw, integer expiries expire, loading an expired session writes nothing).
 *
 * Round trips, by construction of `src/engines/file.ts` (not counted here): a load is one
 * open + fstat + read + close; a save is one temporary-file write + fsync + rename, plus an
 * O_EXCL create (new session) or a stat (update).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, describe, it, type TestContext } from 'node:test'
import {
  createCodec,
  createSessions,
  ImproperlyConfigured,
  newSessionKey,
  StoreUnavailable,
  type Engine,
  type SaveOptions,
  type Settings,
} from 'sessionkit'
import { capturingLogger, manualClock } from 'sessionkit/testing'

interface SessionVector {
  name: string
  data?: Record<string, unknown>
  json: string
  dbSigned: string
  dbCompressed: boolean
}
const VECTORS: { secretKey: string; now: number; sessions: SessionVector[] } = JSON.parse(
  readFileSync(new URL('../fixtures/django-vectors.json', import.meta.url), 'utf8'),
)
const SECRET = VECTORS.secretKey

const root = mkdtempSync(path.join(tmpdir(), 'sessionkit-file-'))
after(() => rmSync(root, { recursive: true, force: true }))

/** A fresh empty directory under this file's scratch root. */
function freshDir(): string {
  return mkdtempSync(path.join(root, 'd-'))
}

/** Sessions on the file engine in a fresh directory (or `extra.filePath`), with a manual clock and a capturing logger. */
function setup(extra: Partial<Settings> = {}) {
  const dir = extra.filePath ?? freshDir()
  const clock = manualClock()
  const logger = capturingLogger()
  const sessions = createSessions({ secretKey: SECRET, engine: 'file', filePath: dir, now: clock, logger, ...extra })
  const cookieName = sessions.settings.cookieName
  return {
    dir,
    clock,
    logger,
    sessions,
    engine: () => sessions.ready() as Promise<Engine>,
    /** The path of the file of `key`. */
    fileOf: (key: string) => path.join(dir, cookieName + key),
    /** What the codec of these settings writes for `data`, at the clock's current time. */
    encode: (data: Record<string, unknown>) => createCodec(sessions.settings).encode(new Map(Object.entries(data))),
  }
}

/** A saved session holding `data`, and its key. */
async function savedSession(sessions: ReturnType<typeof setup>['sessions'], data: Record<string, unknown>, expiry?: number | Date) {
  const s = sessions.session()
  s.update(data)
  if (expiry !== undefined) s.setExpiry(expiry)
  await s.save()
  return { session: s, key: s.sessionKey! }
}

/** Every path under `dir`, for "nothing else was created or deleted" checks. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()
}

const saveOptions = (mustCreate: boolean): SaveOptions => ({ mustCreate, expireDate: new Date(0), expiryAge: 0 })

/**
 * Make `dir` really unwritable for this process: chmod for a normal user; as root, whom
 * modes do not stop, the immutable attribute. The caller skips the test when neither works
 * (a probe write is the judge), so the test never passes without a real failure.
 */
function makeUnwritable(t: TestContext, dir: string): (() => void) | null {
  let undo: () => void
  if (process.getuid?.() === 0) {
    try {
      execFileSync('chattr', ['+i', dir], { stdio: 'ignore' })
    } catch {
      t.skip('running as root, and chattr +i is not available to make a directory unwritable')
      return null
    }
    undo = () => execFileSync('chattr', ['-i', dir], { stdio: 'ignore' })
  } else {
    chmodSync(dir, 0o500)
    undo = () => chmodSync(dir, 0o700)
  }
  try {
    writeFileSync(path.join(dir, 'probe'), '')
  } catch {
    return undo
  }
  undo()
  rmSync(path.join(dir, 'probe'))
  t.skip('this environment cannot make a directory unwritable')
  return null
}

describe('file engine: FileSessionTests', () => {
  it('test_configuration_check: a missing directory is ImproperlyConfigured at createSessions, naming filePath', () => {
    assert.throws(
      () => setup({ filePath: '/if/this/directory/exists/you/have/a/weird/computer' }),
      (error: unknown) => {
        assert.ok(error instanceof ImproperlyConfigured)
        assert.equal(error.code, 'ERR_IMPROPERLY_CONFIGURED')
        assert.match(error.message, /filePath/)
        assert.match(error.message, /\/if\/this\/directory/)
        return true
      },
    )
  })

  it('a filePath that is a file, not a directory, is ImproperlyConfigured at createSessions', () => {
    const file = path.join(freshDir(), 'plain-file')
    writeFileSync(file, '')
    assert.throws(() => setup({ filePath: file }), { code: 'ERR_IMPROPERLY_CONFIGURED', message: /filePath.*not a directory/ })
  })

  it('a directory this process cannot write to is ImproperlyConfigured at createSessions', (t) => {
    const dir = freshDir()
    const undo = makeUnwritable(t, dir)
    if (!undo) return
    try {
      assert.throws(() => setup({ filePath: dir }), { code: 'ERR_IMPROPERLY_CONFIGURED', message: /filePath/ })
    } finally {
      undo()
    }
  })

  describe('test_invalid_key_backslash / test_invalid_key_forwardslash: a hostile key never becomes a path', () => {
    const HOSTILE = [
      'a\\b\\c',
      'a/b/c',
      'abcdefgh/../../planted',
      '..\\..\\..\\planted',
      '../../../etc/passwd',
      '..%2f..%2fplanted',
      '/etc/passwd',
      '/abcdefghij',
      'abcdefgh\u0000',
      'abcdefgh\u0000/../../planted',
      'ABCDEFGHIJ',
      'abcdefgh.',
      'a'.repeat(41),
      'abcdefg',
      '',
    ]

    /**
     * The sessions directory is `<base>/sessions`. For each key, a valid session file is
     * planted where a naive `path.join(dir, cookieName + key)` would land (outside the
     * directory, or inside under an odd name): an engine that built that path would load it.
     */
    function plant() {
      const base = freshDir()
      const dir = path.join(base, 'sessions')
      mkdirSync(dir)
      const ctx = setup({ filePath: dir })
      const content = ctx.encode({ planted: true })
      const now = ctx.clock() / 1000 // live by the engine's clock: a naive engine would return it
      const planted = new Map<string, string>()
      for (const key of HOSTILE) {
        if (key.includes('\u0000') || key === '') continue
        const target = path.join(dir, 'sessionid' + key)
        mkdirSync(path.dirname(target), { recursive: true })
        writeFileSync(target, content)
        utimesSync(target, now, now)
        planted.set(key, target)
      }
      assert.ok([...planted.values()].some((p) => !p.startsWith(dir + path.sep)), 'some planted files are outside the directory')
      return { ...ctx, base, content, planted }
    }

    it('load gives no session and reads no file', async () => {
      const { engine, planted, sessions } = plant()
      const e = await engine()
      for (const key of HOSTILE) {
        assert.equal(await e.load(key), null, JSON.stringify(key))
        const s = sessions.session(key)
        await s.load()
        assert.equal(s.sessionKey, null, JSON.stringify(key))
        assert.equal(s.has('planted'), false, JSON.stringify(key))
      }
      assert.ok(planted.size > 10)
    })

    it('exists is false, delete is a no-op, save refuses: no file is created or deleted anywhere', async () => {
      const { engine, base, content, planted } = plant()
      const e = await engine()
      const before = tree(base)
      for (const key of HOSTILE) {
        assert.equal(await e.exists(key), false, JSON.stringify(key))
        await e.delete(key)
        for (const mustCreate of [true, false]) {
          await assert.rejects(e.save(key, new Map([['x', 1]]), saveOptions(mustCreate)), { code: 'ERR_INVALID_SESSION_KEY' }, JSON.stringify(key))
        }
      }
      assert.deepEqual(tree(base), before)
      for (const file of planted.values()) assert.equal(readFileSync(file, 'utf8'), content)
    })

    it('clearExpired ignores files whose name after the prefix is not a key', async () => {
      const { sessions, base, planted } = plant()
      for (const file of planted.values()) utimesSync(file, 0, 0) // long expired, were they sessions
      const before = tree(base)
      assert.equal(await sessions.clearExpired(), 0)
      assert.deepEqual(tree(base), before)
    })
  })

  it('test_clearsessions_command: with cookieAge 0, setExpiry(3600) survives, setExpiry(-3600) and no expiry are removed', async () => {
    const { sessions, dir } = setup({ cookieAge: 0 })
    const { key: live } = await savedSession(sessions, { a: 1 }, 3600)
    await savedSession(sessions, { b: 2 }, -3600)
    await savedSession(sessions, { c: 3 })
    assert.equal(readdirSync(dir).filter((n) => n.startsWith('sessionid')).length, 3)
    assert.equal(await sessions.clearExpired(), 2)
    assert.deepEqual(readdirSync(dir), [`sessionid${live}`])
  })

  it('unlike Django, an integer setExpiry(N) expires on the server N seconds after the last save', async () => {
    const { sessions, clock, fileOf } = setup()
    const { key } = await savedSession(sessions, { a: 1 }, 60)
    clock.advance(59)
    assert.equal(await sessions.clearExpired(), 0, 'still live after 59 s')
    const live = sessions.session(key)
    await live.load()
    assert.equal(live.get('a'), 1)
    clock.advance(2)
    assert.equal(await sessions.clearExpired(), 1, 'gone after 61 s (Django would keep it forever)')
    assert.equal(existsSync(fileOf(key)), false)
  })

  it('setExpiry(0) expires after cookieAge, and an ISO date at that date', async () => {
    const { sessions, clock } = setup({ cookieAge: 100 })
    const { key: browser } = await savedSession(sessions, { a: 1 }, 0)
    const { key: dated } = await savedSession(sessions, { b: 2 }, new Date(clock() + 50_000))
    clock.advance(49)
    assert.equal(await sessions.clearExpired(), 0)
    clock.advance(2)
    assert.equal(await sessions.clearExpired(), 1)
    assert.equal(await sessions.session().exists(dated), false)
    clock.advance(50)
    assert.equal(await sessions.clearExpired(), 1)
    assert.equal(await sessions.session().exists(browser), false)
  })
})

describe('file engine: the files', () => {
  it('a session is the file <cookieName><key> holding exactly the encoded data, ASCII, no newline', async () => {
    const { sessions, dir, encode } = setup({ cookieName: 'sid' })
    const { key } = await savedSession(sessions, { 'a test key': 'a test value', n: [1, 2] })
    assert.deepEqual(readdirSync(dir), [`sid${key}`])
    const content = readFileSync(path.join(dir, `sid${key}`), 'latin1')
    assert.equal(content, encode({ 'a test key': 'a test value', n: [1, 2] }))
    assert.match(content, /^[\x21-\x7e]+$/)
  })

  it('Django reads our files and we read Django’s: the vectors made by real Django', async () => {
    const { sessions, fileOf, clock } = setup()
    assert.equal(clock(), VECTORS.now * 1000)
    for (const v of VECTORS.sessions.filter((x) => ['empty', 'auth', 'accents', 'nested', 'cart'].includes(x.name))) {
      const { key } = await savedSession(sessions, v.data!)
      const ours = readFileSync(fileOf(key), 'latin1')
      if (v.dbCompressed) {
        // Node's zlib may choose other deflate bytes than Python's (reference §3.4); any zlib inflates them.
        assert.ok(ours.startsWith('.') && ours.split(':')[1] === '1r31eq', `${v.name}: compressed, signed at the clock's time`)
      } else {
        assert.equal(ours, v.dbSigned, `${v.name}: what we write is what Django writes`)
      }

      const djangoKey = newSessionKey()
      writeFileSync(fileOf(djangoKey), v.dbSigned, 'ascii')
      const loaded = sessions.session(djangoKey)
      await loaded.load()
      assert.equal(loaded.sessionKey, djangoKey, v.name)
      assert.deepEqual(Object.fromEntries(loaded.entries()), JSON.parse(v.json), `${v.name}: what we read`)
    }
  })

  it('session files are mode 0600 and no temporary file is left behind', async () => {
    const { sessions, dir, fileOf } = setup()
    const { session, key } = await savedSession(sessions, { a: 1 })
    session.set('a', 2)
    await session.save()
    assert.equal(statSync(fileOf(key)).mode & 0o777, 0o600)
    assert.deepEqual(readdirSync(dir), [`sessionid${key}`])
  })

  it('a saved file’s mtime is the injected clock, so expiry follows that clock', async () => {
    const { sessions, clock, fileOf } = setup()
    clock.advance(12.345)
    const { key } = await savedSession(sessions, { a: 1 })
    assert.equal(Math.round(statSync(fileOf(key)).mtimeMs), clock())
  })

  it('an empty file (Django’s placeholder) loads as an empty session, without a warning', async () => {
    const { sessions, fileOf, logger } = setup()
    const key = newSessionKey()
    writeFileSync(fileOf(key), '')
    const s = sessions.session(key)
    await s.load()
    assert.equal(s.sessionKey, key)
    assert.deepEqual(s.entries(), [])
    assert.deepEqual(logger.warnings, [])
  })

  it('a corrupt file loads as an empty session and logs one warning, without the key', async () => {
    const { sessions, fileOf, logger } = setup()
    for (const bad of ['bad:encoded:value', Buffer.from('flaskdj:alkdjf').toString('base64')]) {
      const key = newSessionKey()
      writeFileSync(fileOf(key), bad)
      const s = sessions.session(key)
      await s.load()
      assert.deepEqual(s.entries(), [])
      assert.equal(logger.warnings.length, 1)
      assert.match(logger.warnings[0]!, /Session data corrupted/)
      assert.ok(!logger.warnings[0]!.includes(key))
      logger.warnings.length = 0
    }
  })

  it('loading an expired session removes its file and creates none (unlike Django)', async () => {
    const { sessions, clock, dir } = setup({ cookieAge: 60 })
    const { key } = await savedSession(sessions, { a: 1 })
    clock.advance(61)
    const s = sessions.session(key)
    await s.load()
    assert.equal(s.sessionKey, null)
    assert.deepEqual(readdirSync(dir), [])
  })

  it('exists ignores expiry, as Django; delete of a missing session is not an error', async () => {
    const { sessions, clock } = setup({ cookieAge: 60 })
    const { key } = await savedSession(sessions, { a: 1 })
    clock.advance(61)
    assert.equal(await sessions.session().exists(key), true)
    await sessions.session().destroy(key)
    await sessions.session().destroy(key)
    assert.equal(await sessions.session().exists(key), false)
  })

  it('save with mustCreate on a taken key throws CreateError and leaves the file alone', async () => {
    const { sessions, engine, fileOf } = setup()
    const { key } = await savedSession(sessions, { a: 1 })
    const before = readFileSync(fileOf(key), 'utf8')
    await assert.rejects((await engine()).save(key, new Map([['b', 2]]), saveOptions(true)), { code: 'ERR_SESSION_CREATE' })
    assert.equal(readFileSync(fileOf(key), 'utf8'), before)
  })

  it('an update of a deleted session throws UpdateError and leaves no file', async () => {
    const { sessions, dir } = setup()
    const { session, key } = await savedSession(sessions, { a: 1 })
    await sessions.session().destroy(key)
    session.set('a', 2)
    await assert.rejects(session.save(), { code: 'ERR_SESSION_UPDATE' })
    assert.deepEqual(readdirSync(dir), [])
  })
})

describe('file engine: write failures throw (Django swallows them)', () => {
  it('the directory made unwritable: save rejects and the previous file is intact', async (t) => {
    const { sessions, dir, fileOf } = setup()
    const { session, key } = await savedSession(sessions, { a: 1 })
    const before = readFileSync(fileOf(key), 'utf8')
    const undo = makeUnwritable(t, dir)
    if (!undo) return
    try {
      session.set('a', 2)
      await assert.rejects(session.save(), (error: unknown) => {
        assert.ok(error instanceof StoreUnavailable)
        assert.equal(error.code, 'ERR_STORE_UNAVAILABLE')
        assert.ok(!error.message.includes(key), 'the message never carries the key')
        return true
      })
    } finally {
      undo()
    }
    assert.equal(readFileSync(fileOf(key), 'utf8'), before)
    assert.deepEqual(readdirSync(dir), [`sessionid${key}`])
    const again = sessions.session(key)
    await again.load()
    assert.equal(again.get('a'), 1)
  })

  // A cookie name so long that `<name><key>` fits in NAME_MAX (255) but the temporary file
  // `<name><key>_out_<16 hex>` does not: open() fails with ENAMETOOLONG, for root too.
  const LONG_NAME = 's'.repeat(210)

  it('the temporary file cannot be created (ENAMETOOLONG): an update rejects and the previous file is intact', async () => {
    const { sessions, dir, fileOf, encode } = setup({ cookieName: LONG_NAME })
    const key = newSessionKey()
    const before = encode({ a: 1 })
    writeFileSync(fileOf(key), before)
    const s = sessions.session(key)
    await s.load()
    assert.equal(s.get('a'), 1)
    s.set('a', 2)
    await assert.rejects(s.save(), (error: unknown) => {
      assert.ok(error instanceof StoreUnavailable)
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'ENAMETOOLONG')
      return true
    })
    assert.equal(readFileSync(fileOf(key), 'utf8'), before)
    assert.deepEqual(readdirSync(dir), [LONG_NAME + key])
  })

  it('a new session whose write fails leaves no empty placeholder behind', async () => {
    const { sessions, dir } = setup({ cookieName: LONG_NAME })
    const s = sessions.session()
    s.set('a', 1)
    await assert.rejects(s.save(), { code: 'ERR_STORE_UNAVAILABLE' })
    assert.equal(s.sessionKey, null)
    assert.deepEqual(readdirSync(dir), [])
  })

  it('the rename fails (the session file replaced by a directory: EISDIR): save rejects and no temporary file is left', async () => {
    const { sessions, dir, fileOf } = setup()
    const { session, key } = await savedSession(sessions, { a: 1 })
    rmSync(fileOf(key))
    mkdirSync(fileOf(key))
    session.set('a', 2)
    await assert.rejects(session.save(), (error: unknown) => {
      assert.ok(error instanceof StoreUnavailable)
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'EISDIR')
      assert.ok(!error.message.includes(key), 'the message never carries the key')
      return true
    })
    assert.deepEqual(readdirSync(dir), [`sessionid${key}`])
    assert.ok(statSync(fileOf(key)).isDirectory())
  })
})

describe('file engine: clearExpired', () => {
  it('removes temporary files older than an hour and keeps younger ones and files of other names', async () => {
    const { sessions, dir, clock } = setup()
    const key = newSessionKey()
    const stale = path.join(dir, `sessionid${key}_out_0123456789abcdef`)
    const django = path.join(dir, `sessionid${key}_out_k2_x9abc`) // Django's mkstemp names
    const young = path.join(dir, `sessionid${key}_out_fedcba9876543210`)
    const other = path.join(dir, 'unrelated-file')
    for (const f of [stale, django, young, other]) writeFileSync(f, 'x')
    const twoHoursAgo = (clock() - 2 * 3600_000) / 1000
    const halfAnHourAgo = (clock() - 1800_000) / 1000
    utimesSync(stale, twoHoursAgo, twoHoursAgo)
    utimesSync(django, twoHoursAgo, twoHoursAgo)
    utimesSync(young, halfAnHourAgo, halfAnHourAgo)
    utimesSync(other, 0, 0)
    assert.equal(await sessions.clearExpired(), 0, 'temporary files are not sessions')
    assert.deepEqual(readdirSync(dir).sort(), [path.basename(young), 'unrelated-file'].sort())
  })

  it('reports progress every 100 deletions and returns the count; live sessions are not rewritten', async () => {
    const { sessions, dir, clock, encode, fileOf } = setup({ cookieAge: 60 })
    const content = encode({})
    const old = (clock() - 3600_000) / 1000
    for (let i = 0; i < 250; i++) {
      const file = fileOf(newSessionKey())
      writeFileSync(file, content)
      utimesSync(file, old, old)
    }
    const { key: live } = await savedSession(sessions, { a: 1 })
    const mtime = statSync(fileOf(live)).mtimeMs
    const progress: number[] = []
    assert.equal(await sessions.clearExpired((n) => progress.push(n)), 250)
    assert.deepEqual(progress, [100, 200])
    assert.deepEqual(readdirSync(dir), [`sessionid${live}`])
    assert.equal(statSync(fileOf(live)).mtimeMs, mtime)
  })

  it('skips a session file it may not read or remove (another user’s, in a shared directory) and goes on', async (t) => {
    const { sessions, dir, clock, encode, fileOf } = setup({ cookieAge: 60 })
    const [mine, theirs] = [fileOf(newSessionKey()), fileOf(newSessionKey())]
    const old = (clock() - 3600_000) / 1000
    for (const file of [mine, theirs]) {
      writeFileSync(file, encode({}))
      utimesSync(file, old, old)
    }
    let undo: () => void
    if (process.getuid?.() === 0) {
      try {
        execFileSync('chattr', ['+i', theirs], { stdio: 'ignore' }) // root reads it but may not remove it
      } catch {
        t.skip('running as root, and chattr +i is not available')
        return
      }
      undo = () => execFileSync('chattr', ['-i', theirs], { stdio: 'ignore' })
    } else {
      chmodSync(theirs, 0o000)
      undo = () => chmodSync(theirs, 0o600)
    }
    try {
      assert.equal(await sessions.clearExpired(), 1)
    } finally {
      undo()
    }
    assert.deepEqual(readdirSync(dir), [path.basename(theirs)])
  })

  it('a corrupt or empty file expires by its mtime and cookieAge, as Django', async () => {
    const { sessions, dir, clock, fileOf } = setup({ cookieAge: 60 })
    writeFileSync(fileOf(newSessionKey()), 'bad:encoded:value')
    writeFileSync(fileOf(newSessionKey()), '')
    const now = clock() / 1000
    for (const name of readdirSync(dir)) utimesSync(path.join(dir, name), now, now)
    assert.equal(await sessions.clearExpired(), 0)
    clock.advance(61)
    assert.equal(await sessions.clearExpired(), 2)
    assert.deepEqual(readdirSync(dir), [])
  })
})
