'use strict'
// Database credentials against the real PostgreSQL (STRONGROOM_TEST_POSTGRES_URL), used with
// the `pg` client: leases and lease events (EventEmitter and async iterator), static roles, the
// keeper refreshing a pg pool, and the event loop staying responsive during a slow call.
const test = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const pg = require('pg')
const sr = require('..')
const { ownDatabase, admin } = require('./helpers')

const CREATE = (db) =>
  `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT CONNECT ON DATABASE "${db}" TO "{{name}}";`

async function setup(t, { ttl = '1h', maxTtl = '24h', creation } = {}) {
  const db = await ownDatabase()
  const engine = await sr.Strongroom.open(sr.Config.dev())
  const root = engine.client(engine.devRootToken())
  t.after(async () => {
    await root.leases().revokePrefix('database/creds/app').catch(() => {})
    await engine.close()
    await db.drop()
  })
  await root.sys().enableMount('database', 'database')
  const database = root.database()
  await database.configure('pg', { plugin_name: 'postgresql-database-plugin', connection_url: db.url, allowed_roles: 'app,slow,static' })
  await database.writeRole('app', { db_name: 'pg', creation_statements: creation || CREATE(db.name), default_ttl: ttl, max_ttl: maxTtl })
  return { db, engine, root, database }
}

/** pg settings for `url`'s server and database as this credential's user. */
function as(url, cred) {
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port || 5432), database: u.pathname.slice(1), user: cred.username, password: cred.password.reveal() }
}

async function whoami(url, cred) {
  const c = new pg.Client(as(url, cred))
  await c.connect()
  try {
    return (await c.query('SELECT current_user AS u')).rows[0].u
  } finally {
    await c.end()
  }
}

test('dynamic credentials: connect, lease lookup / renew / revoke, lease events', async (t) => {
  const { db, root, database } = await setup(t)
  const events = root.leases().events()
  t.after(() => events.close())
  const seen = []
  events.on('event', (e) => seen.push(e))
  const cred = await database.creds('app')
  assert.match(cred.username, /^v-/)
  assert.equal(cred.leaseDuration, 3600)
  assert.ok(cred.renewable)
  assert.ok(!util.inspect(cred).includes(cred.password.reveal()), 'the password shows in util.inspect')
  assert.ok(!JSON.stringify(cred).includes(cred.password.reveal()), 'the password shows in JSON')
  assert.equal(await whoami(db.url, cred), cred.username)

  const leases = root.leases()
  const details = await leases.lookup(cred.leaseId)
  assert.equal(details.id, cred.leaseId)
  assert.equal(details.path, 'database/creds/app')
  assert.ok(details.issueTime instanceof Date && details.expireTime instanceof Date)
  assert.ok(details.ttl <= 3600 && details.ttl > 3500)
  const renewed = await leases.renew(cred.leaseId, '2h')
  assert.equal(renewed.ttl, 7200)
  await leases.revoke(cred.leaseId)
  await assert.rejects(whoami(db.url, cred), /password authentication failed|does not exist/)
  await assert.rejects(leases.lookup(cred.leaseId), sr.InvalidInput)
  // The EventEmitter saw the renewal and the revocation.
  for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20))
  events.close()
  assert.deepEqual(seen.map((e) => [e.kind, e.leaseId]), [['renewed', cred.leaseId], ['revoked', cred.leaseId]])
  assert.equal(seen[0].ttl, 7200)
})

test('lease events as an async iterator', async (t) => {
  const { root, database } = await setup(t)
  const events = root.leases().events()
  t.after(() => events.close())
  const cred = await database.creds('app')
  await root.leases().revoke(cred.leaseId)
  for await (const e of events) {
    assert.equal(e.kind, 'revoked')
    assert.equal(e.leaseId, cred.leaseId)
    break
  }
  assert.equal(await events.next(0.05), null, 'nothing else happened')
})

test('static credentials: read, connect, rotate', async (t) => {
  const { db, database } = await setup(t)
  const user = `sr_static_${db.name.slice(-8)}`
  await admin((c) => c.query(`CREATE ROLE "${user}" WITH LOGIN PASSWORD 'initial-pw'`))
  t.after(() => admin((c) => c.query(`DROP ROLE IF EXISTS "${user}"`)))
  await database.writeStaticRole('static', { db_name: 'pg', username: user, rotation_period: '1h' })
  const first = await database.staticCreds('static')
  assert.equal(first.username, user)
  assert.ok(first.lastVaultRotation instanceof Date)
  assert.ok(first.ttl > 0 && first.ttl <= 3600)
  assert.equal(await whoami(db.url, first), user)
  // The test server trusts local connections, so a wrong password would log in too: check the
  // stored password hash instead.
  const hash = () => admin(async (c) => (await c.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [user])).rows[0].rolpassword)
  const before = await hash()
  await database.rotateRole('static')
  const second = await database.staticCreds('static')
  assert.ok(!second.password.equals(first.password), 'rotation changed the password')
  assert.notEqual(await hash(), before, 'the role\'s password in PostgreSQL changed')
  assert.equal(await whoami(db.url, second), user)
})

test('the keeper replaces a credential and a pg pool switches over', async (t) => {
  // A lease of 3 s that cannot be renewed past 3 s: the keeper must replace the credential
  // before it runs out; the 'change' listener builds a new pool on the new credential.
  const { db, database } = await setup(t, { ttl: '3s', maxTtl: '3s' })
  const keeper = await database.keepFresh('app')
  t.after(() => keeper.stop())
  const first = keeper.current()
  const poolOf = (cred) => new pg.Pool({ ...as(db.url, cred), max: 2 })
  let pool = poolOf(first)
  assert.equal((await pool.query('SELECT current_user AS u')).rows[0].u, first.username)
  const switched = new Promise((resolve, reject) => {
    keeper.once('change', async (cred) => {
      try {
        const old = pool
        pool = poolOf(cred)
        await old.end()
        resolve((await pool.query('SELECT current_user AS u')).rows[0].u)
      } catch (e) {
        reject(e)
      }
    })
  })
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('the keeper did not replace the credential in 20 s')), 20000).unref())
  const user = await Promise.race([switched, timeout])
  assert.notEqual(user, first.username)
  assert.equal(user, keeper.current().username)
  const next = await keeper.nextChange(20)
  assert.ok(next !== null && ![first.username, user].includes(next.username))
  keeper.stop()
  await pool.end()
})

test('the event loop keeps running while a slow database call is in flight', async (t) => {
  // Issuing a credential runs the role's statements; pg_sleep makes that take 1.5 s. Timers
  // must keep firing meanwhile (the call runs on the addon's runtime, not the JS thread).
  const { database } = await setup(t, {
    creation: `SELECT pg_sleep(1.5); CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`
  })
  let ticks = 0
  let longestGap = 0
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    longestGap = Math.max(longestGap, now - last)
    last = now
    ticks++
  }, 10)
  const started = performance.now()
  const cred = await database.creds('app')
  const took = performance.now() - started
  clearInterval(timer)
  assert.match(cred.username, /^v-/)
  assert.ok(took >= 1400, `the call took ${took} ms: the sleep did not run`)
  // A blocked loop would give no tick at all until the call returned; allow a slow CI machine.
  assert.ok(ticks >= 20, `only ${ticks} timer ticks during a ${Math.round(took)} ms call`)
  assert.ok(longestGap < 1000, `the loop stalled for ${Math.round(longestGap)} ms`)
})
