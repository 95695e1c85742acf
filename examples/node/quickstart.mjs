// Strongroom quickstart (Node.js): an embedded, encrypted secret store in ./strongroom-data.
//
// The same steps as examples/quickstart.rs. First run: creates the SQLite store, initialises it
// with one unseal key kept in strongroom-data/unseal.key (mode 0600), mounts `secret/` as KV v2.
// Later runs: unseal from that key file. Every run writes a new version of `secret/app/db` and
// reads it back.
//
//     npm install ./bindings-node
//     node examples/node/quickstart.mjs
//
// Keeping the unseal key next to the data (and the root token in a file) is for a demo only: in
// production the key comes from a secret manager, a KMS or an env var, and the root token is
// revoked once real policies and auth methods exist.
import { randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Config, Secret, Strongroom } from 'strongroom'

const dataDir = 'strongroom-data'
mkdirSync(dataDir, { recursive: true })
const keyFile = join(dataDir, 'unseal.key')
const tokenFile = join(dataDir, 'root.token')

const sr = await Strongroom.open(Config.sqlite(join(dataDir, 'strongroom.db')).unsealKeyFile(keyFile))
try {
  let token
  if (await sr.isInitialized()) {
    console.log(`unsealed an existing store in ${dataDir} (key from ${keyFile})`)
    token = new Secret(readFileSync(tokenFile, 'utf8').trim())
  } else {
    token = await sr.initWithKeyFile(keyFile)
    writeFileSync(tokenFile, token.reveal(), { mode: 0o600, flag: 'wx' })
    await sr.client(token).sys().enableMount('secret', 'kv', { options: { version: '2' } })
    console.log(`initialised a new store in ${dataDir} (unseal key in ${keyFile}, root token in ${tokenFile}, both mode 0600)`)
  }

  const kv = sr.client(token).kv('secret')
  const written = await kv.put('app/db', { username: 'app', password: randomUUID() })
  console.log(`wrote secret/app/db version ${written.version} at ${written.createdTime?.toISOString()}`)

  const secret = await kv.get('app/db')
  if (secret === null) throw new Error('secret/app/db vanished')
  const password = secret.data.password ?? ''
  console.log(`read secret/app/db version ${secret.version}: username=${secret.data.username}, password=<${password.length} characters, not printed>`)
  const meta = await kv.metadata('app/db')
  if (meta === null) throw new Error('metadata vanished')
  console.log(`secret/app/db keeps ${Object.keys(meta.versions).length} versions (current ${meta.currentVersion})`)
} finally {
  await sr.close()
}
