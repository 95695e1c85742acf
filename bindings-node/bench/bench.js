'use strict'
// Benchmarks of the Node binding (issue 16's targets), side by side with node-vault against
// `bao server -dev` on the same machine. Build the addon in release mode first (`npm run build`);
// node-vault comes from tests/node (`npm install` there). Figures go to docs/benchmarks.md.
//
//   node bench/bench.js            # everything
//   BAO_BIN=/usr/local/bin/bao     # the OpenBao binary for the node-vault side (default: that path)
//   BENCH_SECONDS=3                # how long each throughput run lasts
const { spawn, execFileSync } = require('node:child_process')
const path = require('node:path')
const net = require('node:net')
const sr = require('..')

const SECONDS = Number(process.env.BENCH_SECONDS || 3)

/** Calls per second of `fn` with `inflight` calls pending at any time, for SECONDS. */
async function promiseRate(fn, inflight) {
  for (let i = 0; i < 2000; i++) await fn(i) // warm up
  let done = 0
  const end = performance.now() + SECONDS * 1000
  const start = performance.now()
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (performance.now() < end) {
      await fn(done)
      done++
    }
  }))
  return done / ((performance.now() - start) / 1000)
}

function syncRate(fn) {
  for (let i = 0; i < 5000; i++) fn(i)
  let done = 0
  const start = performance.now()
  const end = start + SECONDS * 1000
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) fn(i)
    done += 1000
  }
  return done / ((performance.now() - start) / 1000)
}

function startupMs() {
  const script = `const t = performance.now(); const sr = require(${JSON.stringify(path.join(__dirname, '..'))});
    sr.Strongroom.open(sr.Config.dev()).then((s) => { console.log(performance.now() - t); return s.close() })`
  const runs = Array.from({ length: 7 }, () => Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim()))
  runs.sort((a, b) => a - b)
  return runs[3]
}

const fmt = (n) => Math.round(n).toLocaleString('en-US')

async function strongroom() {
  const engine = await sr.Strongroom.open(sr.Config.dev())
  const c = engine.client(engine.devRootToken())
  await c.sys().enableMount('transit', 'transit')
  const t = c.transit()
  await t.createKey('bench')
  const pt = Buffer.alloc(64, 7)
  const kv = c.kv()
  await kv.put('bench/one', { value: 'x'.repeat(64) })
  const out = {
    'transit encrypt 64 B, Promise, 64 in flight (calls/s)': await promiseRate(() => t.encrypt('bench', pt), 64),
    'transit encryptSync 64 B (calls/s)': syncRate(() => t.encryptSync('bench', pt)),
    'KV v2 get, Promise, 64 in flight (calls/s)': await promiseRate(() => kv.get('bench/one'), 64)
  }
  await engine.close()
  out["require('strongroom') + open a dev store (ms, median of 7)"] = startupMs()
  return out
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

async function nodeVault() {
  let vaultFactory
  try {
    vaultFactory = require(path.join(__dirname, '..', '..', 'tests', 'node', 'node_modules', 'node-vault'))
  } catch {
    return { 'node-vault': 'not installed (npm install in tests/node)' }
  }
  const bao = process.env.BAO_BIN || '/usr/local/bin/bao'
  const port = await freePort()
  const proc = spawn(bao, ['server', '-dev', '-dev-root-token-id=root', `-dev-listen-address=127.0.0.1:${port}`], { stdio: 'ignore' })
  try {
    const vault = vaultFactory({ endpoint: `http://127.0.0.1:${port}`, token: 'root' })
    for (let i = 0; ; i++) {
      try {
        await vault.health()
        break
      } catch (e) {
        if (i > 100) throw e
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    await vault.mount({ mount_point: 'transit', type: 'transit' })
    await vault.write('transit/keys/bench', {})
    await vault.write('secret/data/bench/one', { data: { value: 'x'.repeat(64) } })
    const b64 = Buffer.alloc(64, 7).toString('base64')
    return {
      'node-vault → bao: transit encrypt 64 B, 64 in flight (calls/s)': await promiseRate(() => vault.write('transit/encrypt/bench', { plaintext: b64 }), 64),
      'node-vault → bao: KV v2 get, 64 in flight (calls/s)': await promiseRate(() => vault.read('secret/data/bench/one'), 64)
    }
  } finally {
    proc.kill()
  }
}

;(async () => {
  const results = { ...(await strongroom()), ...(await nodeVault()) }
  for (const [k, v] of Object.entries(results)) console.log(`${k}: ${typeof v === 'number' ? fmt(v) : v}`)
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
