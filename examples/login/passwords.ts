/**
 * Password storage for the example's user list: scrypt with a random salt per password,
 * verified in constant time. The parameters are Django's `ScryptPasswordHasher` defaults
 * (N=2^14, r=8, p=5: 16 MiB, ~0.2 s), one of the settings OWASP recommends.
 */
import { randomBytes, scrypt, scryptSync, timingSafeEqual, type ScryptOptions } from 'node:crypto'

const PARAMS: ScryptOptions = { N: 2 ** 14, r: 8, p: 5, maxmem: 64 * 1024 * 1024 }
const KEY_LENGTH = 64

/** A stored password: never the password itself. */
export interface PasswordHash {
  readonly salt: Buffer
  readonly hash: Buffer
}

/** Hash `password` with a fresh 16-byte salt. Synchronous: meant for start-up. */
export function hashPassword(password: string): PasswordHash {
  const salt = randomBytes(16)
  return { salt, hash: scryptSync(password, salt, KEY_LENGTH, PARAMS) }
}

/** Whether `password` matches `stored`; the comparison takes the same time for any input. */
export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const hash = await new Promise<Buffer>((resolve, reject) => {
    scrypt(password, stored.salt, KEY_LENGTH, PARAMS, (err, key) => (err ? reject(err) : resolve(key)))
  })
  return timingSafeEqual(hash, stored.hash)
}

/**
 * Build `authenticate(username, password)` over a fixed user list (username → password).
 * It resolves to the canonical username, or `null`. An unknown username still costs one
 * scrypt run against a dummy hash, so the response time does not reveal which users exist
 * (Django's `ModelBackend` does the same).
 */
export function authenticator(
  users: Readonly<Record<string, string>>,
): (username: string, password: string) => Promise<string | null> {
  // A Map, not the object: a username such as "__proto__" or "constructor" must not hit Object.prototype.
  const hashes = new Map<string, PasswordHash>()
  for (const [name, password] of Object.entries(users)) {
    const username = normalizeUsername(name)
    if (username === '') throw new Error('sessionkit example: a username must not be empty')
    if (password === '') throw new Error(`sessionkit example: the password of "${username}" must not be empty`)
    hashes.set(username, hashPassword(password))
  }
  const dummy = hashPassword(randomBytes(16).toString('hex'))

  return async function authenticate(username, password) {
    const name = normalizeUsername(username)
    const stored = hashes.get(name)
    const ok = await verifyPassword(password, stored ?? dummy)
    return ok && stored !== undefined ? name : null
  }
}

/** Usernames compare after NFKC and trimming, as Django's `UsernameField` does; passwords are taken verbatim. */
function normalizeUsername(username: string): string {
  return username.normalize('NFKC').trim()
}
