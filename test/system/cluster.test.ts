/**
 * Several app processes sharing one store (issue 8, item 4): a session made in one process is
 * honoured by all. Each scenario runs the soak harness's Express app (`test/helpers/soak.ts`)
 * in separate processes on the same store — `cache` on Redis (`redisCacheFromUrl`, a prefix of
 * its own) and `db` on PostgreSQL (a scratch schema):
 *
 * - three forked processes, each on its own port, so that the test chooses who answers:
 *   created on 1, read on 2 and 3, modified on 2, read on 3, flushed on 3 → gone on 1 and 2;
 * - a Node `cluster` of three workers sharing one port (the primary hands out connections):
 *   requests on fresh connections land on ≥ 2 workers (each answers with its `process.pid`)
 *   and every one of them honours, modifies and finally forgets the same session.
 *
 * An absent service: skipped with a notice, except under CI, where the file fails.
 */
import { after, describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { REDIS_URL, redisAvailable } from '../helpers/redis.ts'
import { postgresAvailable, postgresScratch } from '../helpers/databases.ts'
import { get, redisPrefix, startApp, type AppProcess, type AppSpec } from '../helpers/soak.ts'
import { Redis } from 'ioredis'

const redisSkip = await redisAvailable()
const pgSkip = await postgresAvailable()
const pg = pgSkip ? undefined : await postgresScratch('cluster', 1)
const prefix = redisPrefix('cluster')
after(async () => {
  await pg?.drop()
  if (!redisSkip) {
    const redis = new Redis(REDIS_URL)
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length) await redis.del(...keys)
    await redis.quit()
  }
})

const stores: { name: string; skip: string | false; spec: () => AppSpec }[] = [
  { name: 'cache on Redis', skip: redisSkip, spec: () => ({ engine: 'cache', redisUrl: REDIS_URL, redisPrefix: prefix }) },
  { name: 'db on PostgreSQL', skip: pgSkip, spec: () => ({ engine: 'db', databaseUrl: pg!.url }) },
]

interface Seen {
  status: number
  pid: number
  data: Record<string, string>
  cookie: string | null | undefined
}

/** GET on a fresh connection (no keep-alive: in a cluster, each one may go to another worker). */
async function ask(app: AppProcess, path: string, cookie?: string): Promise<Seen> {
  const a = await get(app.url + path, cookie, false)
  assert.equal(a.status, 200, `${path}: ${a.body}`)
  const body = JSON.parse(a.body) as { pid: number; data: Record<string, string> }
  return { status: a.status, pid: body.pid, data: body.data, cookie: a.cookie }
}

async function started(t: TestContext, spec: AppSpec, workers = 0): Promise<AppProcess> {
  const app = await startApp(spec, workers)
  t.after(() => app.stop())
  return app
}

for (const store of stores) {
  describe(`several app processes sharing ${store.name}`, { skip: store.skip }, () => {
    it('three processes: created on 1, read on 2 and 3, modified on 2, read on 3, flushed on 3 → gone on 1 and 2', async (t) => {
      const spec = store.spec()
      const [one, two, three] = await Promise.all([started(t, spec), started(t, spec), started(t, spec)])
      assert.equal(new Set([one.pid, two.pid, three.pid]).size, 3, 'three processes')

      const made = await ask(one, '/kv/set?user=alice')
      assert.ok(made.cookie, 'process 1 issues a session cookie')
      const cookie = made.cookie
      assert.equal(made.pid, one.pid)

      for (const other of [two, three]) {
        const seen = await ask(other, '/kv', cookie)
        assert.equal(seen.pid, other.pid)
        assert.deepEqual(seen.data, { user: 'alice' }, `process ${other.pid} honours the session made by ${one.pid}`)
      }
      const changed = await ask(two, '/kv/set?cart=book', cookie)
      assert.deepEqual(changed.data, { user: 'alice', cart: 'book' })
      assert.notEqual(changed.cookie, null)
      if (changed.cookie) assert.equal(changed.cookie, cookie, 'the key does not change on a modification')
      assert.deepEqual((await ask(three, '/kv', cookie)).data, { user: 'alice', cart: 'book' }, 'process 3 sees the change made on 2')

      const flushed = await ask(three, '/kv/flush', cookie)
      assert.equal(flushed.cookie, null, 'process 3 deletes the cookie')
      for (const other of [one, two]) {
        const gone = await ask(other, '/kv', cookie)
        assert.deepEqual(gone.data, {}, `process ${other.pid} no longer honours the flushed session`)
        // Django's SessionMiddleware deletes the cookie of an empty session it was sent; no new session is issued.
        assert.equal(typeof gone.cookie === 'string', false, 'and issues no session for it')
      }
    })

    it('a Node cluster of three workers on one port: connections land on ≥ 2 workers, each honours the same session', async (t) => {
      const app = await started(t, store.spec(), 3)
      const made = await ask(app, '/kv/set?user=bob')
      const cookie = made.cookie!
      assert.ok(cookie, 'a session cookie')

      const reads = await Promise.all(Array.from({ length: 12 }, () => ask(app, '/kv', cookie)))
      const pids = new Set(reads.map((r) => r.pid))
      assert.ok(pids.size >= 2, `requests landed on ${pids.size} worker(s): ${[...pids].join(', ')}`)
      assert.ok(!pids.has(app.pid), 'workers answer, not the primary')
      for (const r of reads) assert.deepEqual(r.data, { user: 'bob' }, `worker ${r.pid} honours the session`)

      // Modified by whichever worker answers, seen by all the others.
      const changed = await ask(app, '/kv/set?step=2', cookie)
      const after = await Promise.all(Array.from({ length: 12 }, () => ask(app, '/kv', cookie)))
      assert.ok(new Set(after.map((r) => r.pid)).size >= 2)
      for (const r of after) assert.deepEqual(r.data, { user: 'bob', step: '2' }, `worker ${r.pid} sees the change made by ${changed.pid}`)

      const flushed = await ask(app, '/kv/flush', cookie)
      assert.equal(flushed.cookie, null)
      const gone = await Promise.all(Array.from({ length: 12 }, () => ask(app, '/kv', cookie)))
      assert.ok(new Set(gone.map((r) => r.pid)).size >= 2)
      for (const r of gone) {
        assert.deepEqual(r.data, {}, `worker ${r.pid} forgets the session flushed by ${flushed.pid}`)
        assert.equal(typeof r.cookie === 'string', false, 'and issues no session for it')
      }
      t.diagnostic(`${store.name}: cluster workers answering: ${[...new Set([...reads, ...after, ...gone].map((r) => r.pid))].length} of 3`)
    })
  })
}
