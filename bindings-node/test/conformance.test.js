'use strict'
// The shared conformance scenarios (tests/conformance/*.json, specified in its README) replayed
// through the Node binding. The Rust runner is core/tests/conformance.rs, the Python one
// bindings-python/tests/test_conformance.py; results are compared as JSON the same way.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const sr = require('..')
const { POSTGRES_URL } = require('./helpers')

const DIR = path.join(__dirname, '..', '..', 'tests', 'conformance')
const SCENARIOS = fs.readdirSync(DIR).filter((f) => f.endsWith('.json')).sort()

test('every scenario is found', () => {
  assert.ok(SCENARIOS.length >= 7, `only ${SCENARIOS.length} scenarios in ${DIR}`)
})

/** Go-style duration (`1h30m`, `90s`) or a number, in whole seconds. */
function seconds(text) {
  if (typeof text === 'number') return Math.trunc(text)
  let total = 0
  let num = ''
  for (const c of text) {
    if (c >= '0' && c <= '9') {
      num += c
      continue
    }
    total += Number(num) * { h: 3600, m: 60, s: 1 }[c]
    num = ''
  }
  return total + (num ? Number(num) : 0)
}

const snake = (k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** A binding result as the README's JSON: Secret -> its value, Date -> ISO text, camelCase -> snake_case. */
function plain(v) {
  if (v instanceof sr.Secret) return v.reveal()
  if (v instanceof Date) return v.toISOString()
  if (Buffer.isBuffer(v)) return v.toString()
  if (Array.isArray(v)) return v.map(plain)
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [snake(k), plain(x)]))
  return v === undefined ? null : v
}

/** Engine data (`request`'s `data`) is not renamed: only the binding's own fields are. */
function response(r) {
  if (r === null) return null
  if (!('leaseId' in r)) return plain(r)
  const out = plain({ ...r, data: undefined })
  out.data = r.data === null ? null : r.data
  return out
}

function matches(want, got, at) {
  if (typeof want === 'string' && want.startsWith('$')) {
    let ok
    if (want === '$any') ok = got !== null && got !== undefined
    else if (want === '$absent') ok = got === null || got === undefined
    else if (want === '$nonempty') ok = (typeof got === 'string' || Array.isArray(got)) ? got.length > 0 : !!got && typeof got === 'object' && Object.keys(got).length > 0
    else if (want.startsWith('$prefix:')) ok = typeof got === 'string' && got.startsWith(want.slice(8))
    else if (want.startsWith('$contains:')) ok = typeof got === 'string' && got.includes(want.slice(10))
    else throw new Error(`${at}: unknown matcher ${want}`)
    assert.ok(ok, `${at}: ${want} does not hold for ${JSON.stringify(got)}`)
  } else if (Array.isArray(want)) {
    assert.ok(Array.isArray(got) && got.length === want.length, `${at}: wanted ${JSON.stringify(want)}, got ${JSON.stringify(got)}`)
    want.forEach((w, i) => matches(w, got[i], `${at}[${i}]`))
  } else if (want !== null && typeof want === 'object') {
    assert.ok(got !== null && typeof got === 'object', `${at}: wanted an object, got ${JSON.stringify(got)}`)
    for (const [k, w] of Object.entries(want)) matches(w, got[k] === undefined ? null : got[k], `${at}.${k}`)
  } else {
    assert.deepEqual(got === undefined ? null : got, want, `${at}: wanted ${JSON.stringify(want)}, got ${JSON.stringify(got)}`)
  }
}

const keyVersion = (c) => {
  const m = /^vault:v(\d+):/.exec(c)
  return m ? Number(m[1]) : null
}
const none = async (p) => {
  await p
  return null
}

/** One call through the binding's typed surface; the result as the README specifies. */
async function call(client, engine, name, a) {
  switch (name) {
    case 'request':
      return response(await client.request(a.op, a.path, a.data))
    case 'kv.put':
    case 'kv.patch': {
      const kv = client.kv(a.mount)
      const v = name === 'kv.put' ? await kv.put(a.key, a.data) : await kv.patch(a.key, a.data)
      return { version: v.version }
    }
    case 'kv.get': {
      const s = await client.kv(a.mount).get(a.key, a.version === undefined ? undefined : { version: a.version })
      return s === null ? null : { data: s.data, version: s.version }
    }
    case 'kv.delete':
      return none(client.kv(a.mount).delete(a.key))
    case 'kv.list':
      return { keys: await client.kv(a.mount).list(a.prefix) }
    case 'kv.metadata': {
      const m = await client.kv(a.mount).metadata(a.key)
      if (m === null) return null
      return {
        current_version: m.currentVersion,
        oldest_version: m.oldestVersion,
        max_versions: m.maxVersions,
        versions: Object.keys(m.versions).map(Number).sort((x, y) => x - y).map(String)
      }
    }
    case 'transit.encrypt': {
      const c = await client.transit(a.mount).encrypt(a.key, Buffer.from(a.plaintext))
      return { ciphertext: c, key_version: keyVersion(c) }
    }
    case 'transit.decrypt':
      return { plaintext: (await client.transit(a.mount).decrypt(a.key, a.ciphertext)).toString() }
    case 'transit.rotate':
      return { latest_version: await client.transit(a.mount).rotate(a.key) }
    case 'transit.hmac':
      return { hmac: await client.transit(a.mount).hmac(a.key, Buffer.from(a.input)) }
    case 'transit.sign':
      return { signature: await client.transit(a.mount).sign(a.key, Buffer.from(a.input)) }
    case 'transit.verify':
      return { valid: await client.transit(a.mount).verify(a.key, Buffer.from(a.input), a.signature) }
    case 'token.create':
      return plain(await client.token().create({
        policies: a.policies || [],
        ttl: a.ttl === undefined ? undefined : seconds(a.ttl),
        numUses: a.num_uses || 0,
        type: a.type
      }))
    case 'token.lookup_self': {
      const i = plain(await client.token().lookupSelf())
      const out = {}
      for (const k of ['policies', 'ttl', 'num_uses', 'orphan', 'renewable', 'type', 'path']) out[k] = i[k]
      return out
    }
    case 'token.revoke_self':
      return none(client.token().revokeSelf())
    // Logins as the auth block: the typed login* calls return a Client, so the block comes
    // from the same endpoints through `request`.
    case 'auth.userpass.login':
      return plain((await client.request('write', `auth/${a.mount}/login/${a.username}`, { password: a.password })).auth)
    case 'auth.approle.role_id':
      return { role_id: (await client.request('read', `auth/${a.mount}/role/${a.role}/role-id`)).data.role_id }
    case 'auth.approle.secret_id': {
      const d = (await client.request('write', `auth/${a.mount}/role/${a.role}/secret-id`)).data
      return { secret_id: d.secret_id, accessor: d.secret_id_accessor }
    }
    case 'auth.approle.login':
      return plain((await client.request('write', `auth/${a.mount}/login`, { role_id: a.role_id, secret_id: a.secret_id })).auth)
    case 'leases.lookup': {
      const d = await client.leases().lookup(a.lease_id)
      return { id: d.id, ttl: d.ttl, renewable: d.renewable, path: d.path }
    }
    case 'leases.renew': {
      const r = await client.leases().renew(a.lease_id, seconds(a.increment || 0))
      return { lease_id: r.leaseId, ttl: r.ttl }
    }
    case 'leases.revoke':
      return none(client.leases().revoke(a.lease_id))
    case 'leases.revoke_prefix':
      return none(client.leases().revokePrefix(a.prefix))
    case 'database.creds': {
      const c = await client.database(a.mount).creds(a.role)
      return {
        username: c.username,
        has_password: c.password.reveal().length > 0,
        lease_id: c.leaseId,
        lease_duration: c.leaseDuration,
        renewable: c.renewable
      }
    }
    case 'sys.seal':
      return none(engine.seal())
    default:
      throw new Error(`unknown call \`${name}\``)
  }
}

class Run {
  constructor(root) {
    this.root = root
    this.vars = {}
  }
  lookup(expr) {
    const [head, ...parts] = expr.split('.')
    if (head === 'env') {
      assert.deepEqual(parts, ['POSTGRES_URL'], expr)
      return POSTGRES_URL
    }
    if (head === 'root') return this.root
    let v = this.vars[head]
    for (const p of parts) v = Array.isArray(v) ? v[Number(p)] : (v || {})[p]
    return v
  }
  interpolate(v) {
    if (typeof v === 'string') {
      const whole = /^\$\{([^${}]*)\}$/.exec(v)
      if (whole) return this.lookup(whole[1])
      return v.replace(/\$\{([^}]*)\}/g, (_, e) => {
        const x = this.lookup(e)
        return typeof x === 'string' ? x : JSON.stringify(x)
      })
    }
    if (Array.isArray(v)) return v.map((x) => this.interpolate(x))
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, this.interpolate(x)]))
    return v
  }
}

async function replay(file) {
  const scenario = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'))
  assert.equal(scenario.open.config, 'dev')
  const clock = new sr.VirtualClock()
  const engine = await sr.Strongroom.open(sr.Config.dev().clock(clock))
  const root = engine.devRootToken().reveal()
  const run = new Run(root)
  const clients = new Map()
  try {
    for (const [i, step] of scenario.steps.entries()) {
      const at = `${file} step ${i}`
      if ('advance' in step) {
        clock.advance(seconds(step.advance))
        await engine.runExpiry()
        continue
      }
      const name = step.call
      const args = run.interpolate(step.args || {})
      const token = 'token' in step ? run.interpolate(step.token) : root
      if (!clients.has(token)) clients.set(token, engine.client(token))
      let got
      try {
        got = await call(clients.get(token), engine, name, args)
      } catch (e) {
        if (!(e instanceof sr.StrongroomError)) throw e
        const code = step.expect_error
        assert.ok(code !== undefined, `${at} (${name}): ${e.name}: ${e.message}`)
        assert.equal(e.code, code.toUpperCase(), `${at} (${name}): wanted ${code}, got ${e.code}: ${e.message}`)
        assert.ok(e instanceof sr.ERROR_CLASSES[code.toUpperCase()], at)
        if ('error_contains' in step) assert.ok(e.message.includes(step.error_contains), `${at}: ${e.message}`)
        continue
      }
      assert.ok(!('expect_error' in step), `${at} (${name}): wanted ${step.expect_error}, got ${JSON.stringify(got)}`)
      if ('expect' in step) matches(run.interpolate(step.expect), got, `${at} (${name}) result`)
      if ('save' in step) run.vars[step.save] = got
    }
  } finally {
    await engine.close()
  }
  return scenario.steps.length
}

for (const file of SCENARIOS) {
  test(`scenario ${path.basename(file, '.json')}`, async () => {
    assert.ok((await replay(file)) > 0)
  })
}
