/**
 * The `file` engine: one file per session in `settings.filePath`, named `<cookieName><key>`
 * and holding exactly the encoded `session_data` string (ASCII, no newline), as Django's
 * `django.contrib.sessions.backends.file` writes it. With the same `secretKey` and
 * `cookieName`, Django reads our files and we read Django's.
 *
 * Where it parts from Django, on purpose:
 * - a failed write (ENOSPC, EACCES, EIO…) throws `StoreUnavailable`; Django swallows it and the
 *   user silently loses the change. The previous file is never touched: data goes to a
 *   temporary file that is synced and then renamed over it.
 * - a per-session `setExpiry(N)` also expires on the server, N seconds after the last save
 *   (Django only enforces it in the cookie, so a stolen key lives forever there).
 * - loading an expired session deletes it and writes nothing (Django writes a new empty file).
 * - a hostile key is "no session" in every method; Django raises from `exists`/`delete`.
 * - `clearExpired` streams the directory and removes temporary files left by a crash.
 *
 * Unlike Django (ticket #8616), an update is a compare-and-set under a per-session `.lock`
 * file, and `session.lock()` holds a per-session `.block` file for a whole request.
 */
import { randomBytes } from 'node:crypto'
import { accessSync, constants, statSync, type Stats } from 'node:fs'
import { lstat, open, opendir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { CreateError, ImproperlyConfigured, InvalidSessionKey, SessionError, StoreUnavailable, UpdateError } from '../errors.js'
import type { Engine, EngineContext, SessionMap } from '../engine.js'
import { EXPIRY_KEY, expiresAt } from '../expiry.js'
import { isServerKey } from '../keys.js'
import { checkLockOptions, lockToken, pollLock } from '../lock.js'

/** Session files (and their temporary files) are readable by the owner only, as Django's `mkstemp` makes them. */
const FILE_MODE = 0o600
/** Django's infix of temporary files: `tempfile.mkstemp(prefix=<file name> + "_out_")`. */
const TEMP_INFIX = '_out_'
/** The name, after the cookie-name prefix, of a temporary file (ours: hex; Django's: `[a-z0-9_]{8}`). */
const TEMP_NAME = /^[a-z0-9]{8,40}_out_[a-z0-9_]+$/
/** A temporary file older than this is the leftover of a crash; `clearExpired` removes it. */
const STALE_TEMP_MS = 60 * 60 * 1000
/** `clearExpired` reports progress after every this many deletions. */
const PROGRESS_EVERY = 100

/** A session file as read in one round trip: its data and the `fstat` of the same open file. */
interface Stored {
  data: SessionMap
  /** The file's text: the version a compare-and-set save checks. */
  text: string
  stats: Stats
}

/** `<cookieName><key>.lock`: held while a save compares and replaces, or a delete removes, a session file. */
const LOCK_SUFFIX = '.lock'
const LOCK_NAME = /^[a-z0-9]{8,40}\.lock$/
/** A lock older than this was left by a process that died holding it. */
const STALE_LOCK_MS = 10_000
/** How long a save waits for another request's lock on the same session. */
const LOCK_WAIT_MS = 5_000
/**
 * `<cookieName><key>.block`: the session lock of `session.lock()`, held for a whole request,
 * holding `<token> <expires at, ms since the epoch>`. A name apart from `.lock` (held only for
 * the instant of a compare-and-replace), so that a request holding the session's lock still
 * saves it. Read and written only under the `.lock`, so taking over an expired one is atomic.
 */
const BLOCK_SUFFIX = '.block'
const BLOCK_NAME = /^[a-z0-9]{8,40}\.block$/
const BLOCK_TEXT = /^([0-9a-f]{32}) (\d+)$/

/**
 * The engine. Throws `ImproperlyConfigured` at once (so `createSessions` fails at start-up)
 * when `filePath` is not an existing directory in which files can be created.
 *
 * Round trips: `load` is one open + fstat + read + close; `save` is one temporary-file write
 * (+ fsync) and one rename, plus an O_EXCL create for a new session or a stat for an update.
 *
 * Django: `django.contrib.sessions.backends.file.SessionStore`.
 */
export function fileEngine({ settings, codec }: EngineContext): Engine {
  const dir = storageDirectory(settings.filePath)
  const { cookieName: prefix, cookieAge } = settings
  const name = 'file'

  /** The session file of a key already checked by `isServerKey`: never a path outside `dir`. */
  const fileOf = (key: string): string => path.join(dir, prefix + key)

  /**
   * Django: `get_expiry_age(expiry=…) <= 0`, the age being whole seconds, floored; counted from
   * the file's last modification (Django's `_expiry_date()`, which ignores integer expiries: here
   * a `setExpiry(N)` expires on the server too). We set mtimes in whole milliseconds; rounding
   * undoes the float error of `mtimeMs`.
   */
  function expired(stored: Stored): boolean {
    const at = expiresAt(stored.data.get(EXPIRY_KEY), Math.round(stored.stats.mtimeMs), cookieAge)
    return Math.floor((at - settings.now()) / 1000) <= 0
  }

  /** Per session file: the tail of this process's queue for its lock. */
  const queues = new Map<string, Promise<void>>()

  /** Open, fstat, read and close: one round trip, and the stat is of the file read. `null` if there is no file. */
  async function read(file: string): Promise<Stored | null> {
    let handle
    try {
      handle = await open(file, 'r')
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null
      throw error
    }
    try {
      const stats = await handle.stat()
      const text = await handle.readFile('utf8')
      // An empty file is Django's placeholder between its O_EXCL create and the rename.
      return { data: text === '' ? new Map() : codec.decode(text, name), text, stats }
    } finally {
      await handle.close()
    }
  }

  /**
   * Unlink `file` unless it was replaced since `seen` was taken (a concurrent save renamed a
   * fresh version over it). Narrows that race; there is no lock to close it.
   */
  async function removeIfUnchanged(file: string, seen: Stats): Promise<boolean> {
    try {
      const current = await stat(file)
      if (current.ino !== seen.ino || current.dev !== seen.dev || current.mtimeMs !== seen.mtimeMs || current.size !== seen.size) {
        return false
      }
      await unlink(file)
      return true
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return false
      throw error
    }
  }

  /**
   * Write `encoded` to a temporary file beside `file` (mode 0600, mtime = the injected clock),
   * fsync it and rename it over `file`. For an update, `file` must still exist: checked just
   * before the rename, so that a session deleted meanwhile is not resurrected. On any
   * failure the temporary file is removed and `file` is left as it was.
   */
  async function writeAtomically(file: string, encoded: string, mtimeSeconds: number, mustExist: boolean, expected?: string | null): Promise<void> {
    if (expected != null) {
      // Compare-and-set: under the session's lock, replace only the version this request
      // loaded. Compared before writing, so a lost race costs no write.
      return withLock(file, async () => {
        let current: string
        try {
          current = await readFile(file, 'utf8')
        } catch (error) {
          if (errorCode(error) === 'ENOENT') throw new UpdateError()
          throw error
        }
        if (current !== expected) throw new UpdateError()
        await writeAtomically(file, encoded, mtimeSeconds, false)
      })
    }
    const temp = `${file}${TEMP_INFIX}${randomBytes(8).toString('hex')}`
    const handle = await open(temp, 'wx', FILE_MODE)
    let renamed = false
    try {
      try {
        await handle.writeFile(encoded, 'utf8')
        // Expiry is computed from the mtime: make it the injected clock's "now", not the wall clock's.
        await handle.utimes(mtimeSeconds, mtimeSeconds)
        await handle.sync()
      } finally {
        await handle.close()
      }
      if (mustExist) {
        try {
          await stat(file)
        } catch (error) {
          if (errorCode(error) === 'ENOENT') throw new UpdateError()
          throw error
        }
      }
      await rename(temp, file)
      renamed = true
    } finally {
      if (!renamed) await unlink(temp).catch(() => undefined)
    }
  }

  /**
   * Run `fn` holding `<file>.lock` (an O_EXCL create), so that compare-and-replace and delete
   * of one session never interleave. Waits up to LOCK_WAIT_MS for another holder; a lock
   * older than STALE_LOCK_MS (its holder died) is broken.
   */
  async function withLock<R>(file: string, fn: () => Promise<R>): Promise<R> {
    // Requests of this process queue on a promise (no polling); the lock file then orders
    // this process against the others.
    const before = queues.get(file) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>((resolve) => (release = resolve))
    const tail = before.then(() => mine)
    queues.set(file, tail)
    await before
    try {
      return await withFileLock(file, fn)
    } finally {
      release()
      if (queues.get(file) === tail) queues.delete(file)
    }
  }

  async function withFileLock<R>(file: string, fn: () => Promise<R>): Promise<R> {
    const lock = file + LOCK_SUFFIX
    const deadline = Date.now() + LOCK_WAIT_MS
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      try {
        await (await open(lock, 'wx', FILE_MODE)).close()
        break
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error
        const held = await lstat(lock).catch(() => null)
        if (held && Date.now() - held.mtimeMs > STALE_LOCK_MS) await unlink(lock).catch(() => undefined)
        else if (Date.now() > deadline) throw new StoreUnavailable(`sessionkit: file engine waited ${LOCK_WAIT_MS} ms for a session lock in ${JSON.stringify(dir)}`)
        else await new Promise((resolve) => setTimeout(resolve, wait))
      }
    }
    try {
      return await fn()
    } finally {
      await unlink(lock).catch(() => undefined)
    }
  }

  /** The holder of a `.block` file and when it expires; an unreadable one (a crash mid-write) has expired. `null` if there is none. */
  async function readBlock(block: string): Promise<{ token: string; expiresAt: number } | null> {
    let text: string
    try {
      text = await readFile(block, 'utf8')
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null
      throw error
    }
    const m = BLOCK_TEXT.exec(text)
    return m ? { token: m[1]!, expiresAt: Number(m[2]) } : { token: '', expiresAt: 0 }
  }

  /** Take `<file>.block` for `token` if it is free or expired; under the session's `.lock`. */
  function tryBlock(file: string, token: string, ttlMs: number): Promise<boolean> {
    return withLock(file, async () => {
      const block = file + BLOCK_SUFFIX
      const held = await readBlock(block)
      const now = Date.now()
      if (held !== null && held.expiresAt > now) return false
      await writeFile(block, `${token} ${now + ttlMs}`, { mode: FILE_MODE })
      return true
    })
  }

  /** Remove `<file>.block` if `keep` says so of its holder; under the session's `.lock`. */
  function removeBlock(file: string, remove: (held: { token: string; expiresAt: number }) => boolean): Promise<boolean> {
    return withLock(file, async () => {
      const block = file + BLOCK_SUFFIX
      const held = await readBlock(block)
      if (held === null || !remove(held)) return false
      await unlink(block).catch((error: unknown) => {
        if (errorCode(error) !== 'ENOENT') throw error
      })
      return true
    })
  }

  /** Remove a temporary file older than an hour: a crash between write and rename left it. */
  async function removeStaleTemp(file: string, olderThanMs = STALE_TEMP_MS, now = settings.now()): Promise<void> {
    try {
      const stats = await lstat(file)
      if (now - stats.mtimeMs > olderThanMs) await unlink(file)
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error
    }
  }

  /** A store error whose message names the directory and the system error, never the file (it holds the key). */
  function storeError(what: string, error: unknown): SessionError {
    if (error instanceof SessionError) return error
    const code = errorCode(error)
    const syscall = (error as NodeJS.ErrnoException | null)?.syscall
    const reason = code ? `${code}${syscall ? ` (${syscall})` : ''}` : String((error as Error | null)?.message ?? error)
    return new StoreUnavailable(`sessionkit: file engine could not ${what} in ${JSON.stringify(dir)}: ${reason}`, { cause: error })
  }

  return {
    name,
    validKey: isServerKey,

    async load(key) {
      if (!isServerKey(key)) return null
      const file = fileOf(key)
      let stored: Stored | null
      try {
        stored = await read(file)
      } catch (error) {
        throw storeError('read a session', error)
      }
      if (stored === null) return null
      if (!expired(stored)) return { data: stored.data, version: stored.text }
      try {
        await removeIfUnchanged(file, stored.stats)
      } catch (error) {
        // The answer (no live session) stands; the file is left for clearExpired.
        settings.logger.error(storeError('delete an expired session', error).message)
      }
      return null
    },

    /** Whether the file exists; like Django, its expiry is not checked. */
    async exists(key) {
      if (!isServerKey(key)) return false
      try {
        await stat(fileOf(key))
        return true
      } catch (error) {
        if (errorCode(error) === 'ENOENT') return false
        throw storeError('look up a session', error)
      }
    },

    /**
     * With `mustCreate`, claim the name with an O_EXCL create (`CreateError` if taken), then
     * write; otherwise replace the existing file (`UpdateError` if it is gone). An invalid
     * key throws `InvalidSessionKey`: `Session` never passes one.
     */
    async save(key, data, { mustCreate, expected }) {
      if (!isServerKey(key)) throw new InvalidSessionKey()
      const file = fileOf(key)
      const encoded = codec.encode(data)
      const mtimeSeconds = settings.now() / 1000
      if (mustCreate) {
        try {
          await (await open(file, 'wx', FILE_MODE)).close()
        } catch (error) {
          if (errorCode(error) === 'EEXIST') throw new CreateError()
          throw storeError('create a session', error)
        }
      }
      try {
        await writeAtomically(file, encoded, mtimeSeconds, !mustCreate, expected)
      } catch (error) {
        // Our own empty placeholder: a session that could not be written is not created.
        if (mustCreate) await unlink(file).catch(() => undefined)
        throw storeError('save a session', error)
      }
      return { key, version: encoded }
    },

    /**
     * The session lock: `<cookieName><key>.block`, taken when absent or expired (checked and
     * written under the session's `.lock`), polled with a jittered backoff until `waitMs`;
     * released only by its holder's token. Real time (`Date.now`), as the `.lock` files.
     */
    async lock(key, options) {
      const { waitMs, ttlMs } = checkLockOptions(options)
      if (!isServerKey(key)) throw new InvalidSessionKey()
      const file = fileOf(key)
      const token = lockToken()
      try {
        await pollLock(() => tryBlock(file, token, ttlMs), waitMs)
      } catch (error) {
        throw storeError('lock a session', error)
      }
      return async () => {
        try {
          await removeBlock(file, (held) => held.token === token)
        } catch (error) {
          throw storeError('unlock a session', error)
        }
      }
    },

    /** Remove the file, under the session's lock; a missing file (or an invalid key) is not an error. */
    async delete(key) {
      if (!isServerKey(key)) return
      const file = fileOf(key)
      try {
        await withLock(file, () => unlink(file))
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') throw storeError('delete a session', error)
      }
    },

    /**
     * Stream the directory; for every `<cookieName><key>` file, read it (writing nothing) and
     * remove it when expired. Temporary files older than an hour (a crash between write and
     * rename) are removed too; they are not counted. Files this process may not read or remove
     * are skipped. Returns the number of sessions removed.
     * Django: `SessionStore.clear_expired()` (`manage.py clearsessions`).
     */
    async clearExpired(onProgress) {
      let deleted = 0
      let entries
      try {
        entries = await opendir(dir)
      } catch (error) {
        throw storeError('list the sessions', error)
      }
      // `for await` closes the directory handle at the end, on break and on throw.
      for await (const entry of entries) {
        if (!entry.name.startsWith(prefix) || !entry.isFile()) continue
        const rest = entry.name.slice(prefix.length)
        const file = path.join(dir, entry.name)
        let removed = false
        try {
          if (isServerKey(rest)) {
            const stored = await read(file)
            removed = stored !== null && expired(stored) && (await removeIfUnchanged(file, stored.stats))
          } else if (TEMP_NAME.test(rest)) {
            await removeStaleTemp(file)
          } else if (LOCK_NAME.test(rest)) {
            await removeStaleTemp(file, STALE_LOCK_MS, Date.now()) // lock mtimes are wall-clock
          } else if (BLOCK_NAME.test(rest)) {
            // A session lock whose holder died: expired by real time.
            await removeBlock(file.slice(0, -BLOCK_SUFFIX.length), (held) => held.expiresAt <= Date.now())
          }
        } catch (error) {
          // Not ours to judge: in a shared directory (the default, the OS temp dir) another
          // user's app may keep files under the same prefix.
          if (errorCode(error) === 'EACCES' || errorCode(error) === 'EPERM') continue
          throw storeError('clear expired sessions', error)
        }
        if (removed && ++deleted % PROGRESS_EVERY === 0) onProgress?.(deleted)
      }
      return deleted
    },

    async close() {},
  }
}

/**
 * `filePath`, resolved once (a later `chdir` does not move the sessions), checked to be an
 * existing directory in which files can be created. Synchronous, so that a bad path fails
 * `createSessions` at start-up. Django: `_get_storage_path()`.
 */
function storageDirectory(filePath: string): string {
  const dir = path.resolve(filePath)
  const got = JSON.stringify(filePath)
  let stats: Stats
  try {
    stats = statSync(dir)
  } catch (error) {
    throw new ImproperlyConfigured(
      `sessionkit: filePath must be an existing directory to store session files in, got ${got} (${errorCode(error) ?? 'cannot stat it'})`,
      { cause: error },
    )
  }
  if (!stats.isDirectory()) {
    throw new ImproperlyConfigured(`sessionkit: filePath must be an existing directory to store session files in, got ${got} (not a directory)`)
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK)
  } catch (error) {
    throw new ImproperlyConfigured(
      `sessionkit: filePath must be a directory this process can create files in, got ${got} (${errorCode(error) ?? 'not writable'})`,
      { cause: error },
    )
  }
  return dir
}

function errorCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | null)?.code
  return typeof code === 'string' ? code : undefined
}
