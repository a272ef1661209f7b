/**
 * Settings: Django's defaults (reference §5), validation at start-up with an error that
 * names the setting (checklist S23–S27), `fromEnv`, and `redactUrl`.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import os from 'node:os'
import {
  createSessions,
  defaults,
  fromEnv,
  ImproperlyConfigured,
  JSONSerializer,
  redactUrl,
  resolveSettings,
  type Settings,
} from 'sessionkit'

const SECRET = 'settings-test-secret-0123456789abcdefghijklmnopqrstuv'

/** Assert that `fn` throws ImproperlyConfigured whose message contains every one of `names`. */
function refuses(fn: () => unknown, ...names: string[]): string {
  let message = ''
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ImproperlyConfigured, `ImproperlyConfigured, got ${String(error)}`)
    assert.equal(error.code, 'ERR_IMPROPERLY_CONFIGURED')
    for (const name of names) assert.ok(error.message.includes(name), `${JSON.stringify(error.message)} names ${name}`)
    message = error.message
    return true
  })
  return message
}

/** `resolveSettings` with a valid secret and `input` over it; `input` may hold values of any type. */
function resolve(input: Record<string, unknown>): Readonly<Settings> {
  return resolveSettings({ secretKey: SECRET, ...input } as Partial<Settings>)
}

describe('settings defaults', () => {
  const django = {
    engine: 'db', // SESSION_ENGINE = "django.contrib.sessions.backends.db"
    cookieName: 'sessionid',
    cookieAge: 1209600,
    cookieDomain: null,
    cookiePath: '/',
    cookieSecure: false,
    cookieHttpOnly: true,
    cookieSameSite: 'Lax',
    expireAtBrowserClose: false,
    saveEveryRequest: false,
    filePath: os.tmpdir(), // SESSION_FILE_PATH = None → tempfile.gettempdir()
    serializer: JSONSerializer,
    cacheAlias: 'default',
    secretKeyFallbacks: [],
  }

  it("the defaults are Django's global_settings", () => {
    for (const [name, value] of Object.entries(django)) {
      assert.deepEqual(defaults[name as keyof typeof defaults], value, name)
    }
    assert.equal(defaults.cookiePartitioned, false)
    assert.equal(defaults.lazy, false)
  })

  it("resolving only a secret gives Django's defaults, frozen", () => {
    const s = resolveSettings({ secretKey: SECRET })
    for (const [name, value] of Object.entries(django)) assert.deepEqual(s[name as keyof Settings], value, name)
    assert.equal(s.secretKey, SECRET)
    assert.ok(Object.isFrozen(s))
    assert.ok(Object.isFrozen(s.secretKeyFallbacks))
  })

  it('cookieSameSite is matched case-insensitively and written as Django spells it', () => {
    assert.equal(resolve({ cookieSameSite: 'lax' }).cookieSameSite, 'Lax')
    assert.equal(resolve({ cookieSameSite: 'STRICT' }).cookieSameSite, 'Strict')
    assert.equal(resolve({ cookieSameSite: 'none', cookieSecure: true }).cookieSameSite, 'None')
    assert.equal(resolve({ cookieSameSite: false }).cookieSameSite, false)
    assert.equal(resolve({ cookieSameSite: null }).cookieSameSite, false, 'Django: None omits the attribute')
  })
})

describe('settings validation', () => {
  it('cookieSameSite "lax " is refused with a message naming the setting and what is allowed', () => {
    const message = refuses(() => resolve({ cookieSameSite: 'lax ' }), 'cookieSameSite')
    assert.equal(message, 'sessionkit: cookieSameSite must be "Lax", "Strict", "None" or false, got "lax "')
  })

  const invalid: [string, unknown[]][] = [
    ['engine', ['redis', 'django.contrib.sessions.backends.db', 42]],
    ['cookieName', ['', 'session id', 'sess;id', 'sess=id', 42]],
    ['cookieAge', [-1, 1.5, '1209600', Number.NaN, Infinity]],
    ['cookieDomain', ['', 5, 'exa mple.com']],
    ['cookiePath', ['', 'app', '/a;b', 5]],
    ['cookieSecure', ['true', 1]],
    ['cookieHttpOnly', ['yes', 0]],
    ['cookieSameSite', ['foo', '', true, 'Lax;', 0]],
    ['cookiePartitioned', ['true']],
    ['expireAtBrowserClose', [1]],
    ['saveEveryRequest', ['false']],
    ['lazy', ['yes']],
    ['filePath', ['', 5]],
    ['serializer', [{}, { dumps: () => Buffer.alloc(0) }]],
    ['cacheAlias', ['', 5]],
    ['secretKeyFallbacks', ['old-secret', [''], [1]]],
    ['databaseUrl', ['http://example.com/db', '', 'db.sqlite3']],
    ['redisUrl', ['localhost:6379', 'http://localhost:6379', '']],
    ['logger', [{}, { warn: () => {} }]],
    ['onSuspicious', ['log', {}]],
    ['now', [123, 'Date.now']],
  ]
  for (const [name, values] of invalid) {
    for (const value of values) {
      const shown = typeof value === 'number' && !Number.isFinite(value) ? String(value) : JSON.stringify(value)
      it(`${name} ${shown} is refused with ImproperlyConfigured naming ${name}`, () => {
        refuses(() => resolve({ [name]: value }), name)
      })
    }
  }

  for (const secretKey of [undefined, '', 42]) {
    it(`a missing secretKey (${JSON.stringify(secretKey)}) is refused, naming secretKey and Django's SECRET_KEY`, () => {
      refuses(() => resolveSettings({ secretKey } as Partial<Settings>), 'secretKey', 'SECRET_KEY')
    })
  }

  it('createSessions refuses a missing secretKey at once', () => {
    refuses(() => createSessions({ engine: 'signed_cookies' }), 'secretKey')
  })

  it('an unknown setting name is refused, naming it', () => {
    refuses(() => resolve({ cookieSamesite: 'Lax' }), 'cookieSamesite')
    refuses(() => resolve({ SESSION_COOKIE_AGE: 60 }), 'SESSION_COOKIE_AGE')
  })

  it('a __Host- cookie without cookieSecure is refused, naming cookieSecure', () => {
    refuses(() => resolve({ cookieName: '__Host-sid' }), 'cookieSecure', '__Host-sid')
  })

  it('a __Host- cookie with a domain is refused, naming cookieDomain', () => {
    refuses(() => resolve({ cookieName: '__Host-sid', cookieSecure: true, cookieDomain: 'example.com' }), 'cookieDomain')
  })

  it('a __Host- cookie with a path other than / is refused, naming cookiePath', () => {
    refuses(() => resolve({ cookieName: '__Host-sid', cookieSecure: true, cookiePath: '/app/' }), 'cookiePath')
  })

  it('a __Host- cookie with Secure, no domain and path / is accepted', () => {
    assert.equal(resolve({ cookieName: '__Host-sid', cookieSecure: true }).cookieName, '__Host-sid')
  })

  it('a __Secure- cookie without cookieSecure is refused, naming cookieSecure', () => {
    refuses(() => resolve({ cookieName: '__Secure-sid' }), 'cookieSecure', '__Secure-sid')
    assert.equal(resolve({ cookieName: '__Secure-sid', cookieSecure: true, cookieDomain: 'example.com' }).cookieDomain, 'example.com')
  })

  it('SameSite=None without cookieSecure is refused, naming both settings', () => {
    refuses(() => resolve({ cookieSameSite: 'None' }), 'cookieSecure', 'cookieSameSite')
  })

  it('cookiePartitioned without cookieSecure is refused, naming both settings', () => {
    refuses(() => resolve({ cookiePartitioned: true }), 'cookieSecure', 'cookiePartitioned')
  })

  it('an invalid secretKeyFallbacks is refused without echoing the secrets it holds', () => {
    const message = refuses(() => resolve({ secretKeyFallbacks: ['previous-secret-0123456789abcdef', ''] }), 'secretKeyFallbacks')
    assert.ok(!message.includes('previous-secret-0123456789abcdef'), message)
  })

  it('an invalid databaseUrl or redisUrl is refused without echoing its password', () => {
    const db = refuses(() => resolve({ databaseUrl: 'http://admin:hunter2@db.example.com/app' }), 'databaseUrl')
    assert.ok(!db.includes('hunter2'), db)
    const redis = refuses(() => resolve({ redisUrl: 'http://:hunter2@cache.example.com:6379' }), 'redisUrl')
    assert.ok(!redis.includes('hunter2'), redis)
  })

  it('createSessions validates a frozen partial settings object too', () => {
    const partial = Object.freeze({ secretKey: SECRET, now: () => 0, engine: 'signed_cookies', cookieSameSite: 'lax ' }) as unknown as Partial<Settings>
    refuses(() => createSessions(partial), 'cookieSameSite')
  })

  it('createSessions accepts settings resolved beforehand', async () => {
    const s = resolveSettings({ secretKey: SECRET, engine: 'signed_cookies', cookieAge: 60 })
    const sessions = createSessions(s)
    assert.equal(sessions.settings.cookieAge, 60)
    await sessions.close()
  })
})

describe('fromEnv', () => {
  const full = {
    SECRET_KEY: 'env-secret-0123456789abcdefghijklmnopqrstuvwxyz',
    SECRET_KEY_FALLBACKS: 'old-one, old-two',
    SESSION_ENGINE: 'django.contrib.sessions.backends.signed_cookies',
    SESSION_COOKIE_NAME: 'sid',
    SESSION_COOKIE_AGE: '3600',
    SESSION_COOKIE_DOMAIN: '.example.com',
    SESSION_COOKIE_PATH: '/app/',
    SESSION_COOKIE_SECURE: 'True',
    SESSION_COOKIE_HTTPONLY: 'False',
    SESSION_COOKIE_SAMESITE: 'Strict',
    SESSION_COOKIE_PARTITIONED: '1',
    SESSION_EXPIRE_AT_BROWSER_CLOSE: 'yes',
    SESSION_SAVE_EVERY_REQUEST: 'on',
    SESSION_FILE_PATH: '/var/lib/sessions',
    SESSION_CACHE_ALIAS: 'sessions',
    DATABASE_URL: 'sqlite:////var/lib/app/db.sqlite3',
    REDIS_URL: 'redis://localhost:6379/1',
  }

  it('reads every variable', () => {
    assert.deepEqual(fromEnv(full), {
      secretKey: full.SECRET_KEY,
      secretKeyFallbacks: ['old-one', 'old-two'],
      engine: 'signed_cookies',
      cookieName: 'sid',
      cookieAge: 3600,
      cookieDomain: '.example.com',
      cookiePath: '/app/',
      cookieSecure: true,
      cookieHttpOnly: false,
      cookieSameSite: 'Strict',
      cookiePartitioned: true,
      expireAtBrowserClose: true,
      saveEveryRequest: true,
      filePath: '/var/lib/sessions',
      cacheAlias: 'sessions',
      databaseUrl: 'sqlite:////var/lib/app/db.sqlite3',
      redisUrl: 'redis://localhost:6379/1',
    })
  })

  it('gives settings that resolve', () => {
    const s = resolveSettings(fromEnv(full))
    assert.equal(s.engine, 'signed_cookies')
    assert.equal(s.cookieAge, 3600)
  })

  it('leaves unset and empty variables out, so it spreads under explicit settings', () => {
    assert.deepEqual(fromEnv({}), {})
    assert.deepEqual(fromEnv({ SESSION_COOKIE_SECURE: '', SESSION_COOKIE_AGE: '', SECRET_KEY: '', SESSION_ENGINE: '' }), {})
    assert.deepEqual({ cookieAge: 60, ...fromEnv({ SESSION_COOKIE_NAME: 'sid' }) }, { cookieAge: 60, cookieName: 'sid' })
  })

  it('takes SESSION_ENGINE as a short name or as Django\'s dotted path', () => {
    assert.equal(fromEnv({ SESSION_ENGINE: 'db' }).engine, 'db')
    assert.equal(fromEnv({ SESSION_ENGINE: 'django.contrib.sessions.backends.cached_db' }).engine, 'cached_db')
    assert.equal(fromEnv({ SESSION_ENGINE: 'django.contrib.sessions.backends.file' }).engine, 'file')
  })

  for (const [raw, value] of [
    ['true', true], ['True', true], ['TRUE', true], ['1', true], ['yes', true], ['on', true], [' true ', true],
    ['false', false], ['False', false], ['0', false], ['no', false], ['off', false],
  ] as const) {
    it(`reads the boolean ${JSON.stringify(raw)} as ${value}`, () => {
      assert.equal(fromEnv({ SESSION_COOKIE_SECURE: raw }).cookieSecure, value)
    })
  }

  for (const name of ['SESSION_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'SESSION_COOKIE_PARTITIONED', 'SESSION_EXPIRE_AT_BROWSER_CLOSE', 'SESSION_SAVE_EVERY_REQUEST']) {
    for (const raw of ['maybe', 'tru', '2']) {
      it(`a malformed boolean ${name}=${JSON.stringify(raw)} throws naming the variable`, () => {
        refuses(() => fromEnv({ [name]: raw }), name)
      })
    }
  }

  for (const raw of ['ten', '-5', '1.5', '1e3', '0x10']) {
    it(`a malformed integer SESSION_COOKIE_AGE=${JSON.stringify(raw)} throws naming the variable`, () => {
      refuses(() => fromEnv({ SESSION_COOKIE_AGE: raw }), 'SESSION_COOKIE_AGE')
    })
  }

  it('reads SECRET_KEY_FALLBACKS as a comma-separated list, dropping blanks', () => {
    assert.deepEqual(fromEnv({ SECRET_KEY_FALLBACKS: 'a,, b ,' }).secretKeyFallbacks, ['a', 'b'])
  })

  it('reads SECRET_KEY_FALLBACKS as a JSON array', () => {
    assert.deepEqual(fromEnv({ SECRET_KEY_FALLBACKS: ' ["old,with,commas", "older"] ' }).secretKeyFallbacks, ['old,with,commas', 'older'])
  })

  for (const raw of ['[1, 2]', '["a", 3]', '["unterminated', '[not json]']) {
    it(`a malformed SECRET_KEY_FALLBACKS ${JSON.stringify(raw)} throws ImproperlyConfigured naming the variable, not echoing it`, () => {
      const message = refuses(() => fromEnv({ SECRET_KEY_FALLBACKS: raw }), 'SECRET_KEY_FALLBACKS')
      assert.ok(!message.includes('unterminated') && !message.includes('not json'), message)
    })
  }

  it('reads SESSION_COOKIE_SAMESITE "false" as false and "None" as SameSite=None', () => {
    assert.equal(fromEnv({ SESSION_COOKIE_SAMESITE: 'false' }).cookieSameSite, false)
    assert.equal(fromEnv({ SESSION_COOKIE_SAMESITE: 'False' }).cookieSameSite, false)
    assert.equal(fromEnv({ SESSION_COOKIE_SAMESITE: 'None' }).cookieSameSite, 'None')
  })
})

describe('redactUrl', () => {
  const cases: [string, string][] = [
    ['postgres://user:secret@db.example.com:5432/app', 'postgres://user:***@db.example.com:5432/app'],
    ['redis://:secret@localhost:6379/0', 'redis://:***@localhost:6379/0'],
    ['rediss://default:se:cret@cache.example.com:6380', 'rediss://default:***@cache.example.com:6380'],
    ['mysql://user:p%40ss@host/db', 'mysql://user:***@host/db'],
    ['postgres://user:p@ss@host/db', 'postgres://user:***@host/db'],
    ['postgres://user:secret@host?sslmode=require&application_name=a@b', 'postgres://user:***@host?sslmode=require&application_name=a@b'],
    ['mysql://user@host/db', 'mysql://user@host/db'],
    ['redis://localhost:6379', 'redis://localhost:6379'],
    ['sqlite:////var/lib/db.sqlite3', 'sqlite:////var/lib/db.sqlite3'],
    ['sqlite::memory:', 'sqlite::memory:'],
  ]
  for (const [url, expected] of cases) {
    it(`shows ${JSON.stringify(url)} as ${JSON.stringify(expected)}`, () => {
      assert.equal(redactUrl(url), expected)
    })
  }
})
