'use strict'
// Kubernetes login through the binding, against the Kubernetes API stand-in (a real HTTPS
// server speaking TokenReview, with RS256/ES256 service-account JWTs; core/tests/k8s_standin,
// built as the `k8s_standin` example). STRONGROOM_K8S_STANDIN_BIN names the binary
// (scripts/test-node-binding.sh builds it); without it the test fails, it does not skip.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const readline = require('node:readline')
const sr = require('..')
const { Config, Secret, Strongroom } = sr

async function standin(t) {
  const bin = process.env.STRONGROOM_K8S_STANDIN_BIN
  assert.ok(bin, 'STRONGROOM_K8S_STANDIN_BIN is not set: run scripts/test-node-binding.sh')
  // It exits when its stdin closes.
  const child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.after(() => child.stdin.end())
  const line = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the Kubernetes API stand-in printed nothing within 60 s')), 60_000)
    readline.createInterface({ input: child.stdout }).once('line', (l) => { clearTimeout(timer); resolve(l) })
    child.once('error', reject)
  })
  return JSON.parse(line)
}

test('loginKubernetes: the seed role against the API stand-in', async (t) => {
  const info = await standin(t)
  const jwt = (name) => info.service_accounts.find((a) => a.name === name).jwt
  const engine = await Strongroom.open(Config.dev())
  t.after(() => engine.close())
  const root = engine.client(engine.devRootToken())
  await root.sys().enableAuth('kubernetes', 'kubernetes')
  await root.request('write', 'auth/kubernetes/config', {
    kubernetes_host: info.url, kubernetes_ca_cert: info.ca_pem, token_reviewer_jwt: info.reviewer_jwt,
  })
  await root.sys().writePolicy('api-secrets', 'path "secret/data/production/api-service" { capabilities = ["read"] }')
  await root.request('write', 'auth/kubernetes/role/api-service', {
    bound_service_account_names: 'api-service-sa', bound_service_account_namespaces: 'production', policies: 'api-secrets', ttl: '1h',
  })
  await root.kv().put('production/api-service', { api_key: 'sk_live_xxxxx' })

  const app = await engine.loginKubernetes('kubernetes', 'api-service', new Secret(jwt('api-service-sa')))
  const self = await app.token().lookupSelf()
  assert.equal(self.path, 'auth/kubernetes/login')
  assert.deepEqual([...self.policies].sort(), ['api-secrets', 'default'])
  assert.equal(self.meta.service_account_namespace, 'production')
  assert.deepEqual((await app.kv().get('production/api-service')).data, { api_key: 'sk_live_xxxxx' })
  await assert.rejects(app.kv().get('production/other'), sr.PermissionDenied)
  // Another namespace's account is refused with the method's text.
  await assert.rejects(engine.loginKubernetes('kubernetes', 'api-service', jwt('intruder')), (e) => e instanceof sr.StrongroomError && /not authorized/.test(e.message))
})
