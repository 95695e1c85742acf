// node-vault (the Node.js Vault client from npm, unmodified) against `strongroom server -dev`
// started by this test on a free loopback port. STRONGROOM_BIN names the server binary.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { startServer, stop, status } = require('../lib/harness');

let server;
let addr;
let vault;

before(async () => {
  server = await startServer();
  addr = server.addr;
  vault = server.vault();
});

after(() => stop(server && server.proc));

test('health and seal status', async () => {
  const h = await vault.health();
  assert.equal(h.initialized, true);
  assert.equal(h.sealed, false);
  const s = await vault.status();
  assert.equal(s.sealed, false);
  assert.equal(s.type, 'shamir');
});

test('KV v2 write, read, versions, metadata, delete', async () => {
  const w = await vault.write('secret/data/node/app', { data: { password: 's3cr3t', user: 'app' } });
  assert.equal(w.data.version, 1);
  await vault.write('secret/data/node/app', { data: { password: 'rotated' }, options: { cas: 1 } });
  const r = await vault.read('secret/data/node/app');
  assert.deepEqual(r.data.data, { password: 'rotated' });
  assert.equal(r.data.metadata.version, 2);
  const old = await vault.read('secret/data/node/app?version=1');
  assert.equal(old.data.data.password, 's3cr3t');
  // A stale cas is refused with OpenBao's text.
  const stale = await status(vault.write('secret/data/node/app', { data: { x: 1 }, options: { cas: 1 } }));
  assert.equal(stale.code, 400);
  assert.match(stale.body.errors.join(' '), /check-and-set parameter did not match the current version/);
  const keys = await vault.list('secret/metadata/node');
  assert.deepEqual(keys.data.keys, ['app']);
  await vault.delete('secret/metadata/node/app');
  const gone = await status(vault.read('secret/data/node/app'));
  assert.equal(gone.code, 404);
});

test('policies and tokens: a restricted token is confined to its policy', async () => {
  await vault.addPolicy({
    name: 'node-ro',
    rules: 'path "secret/data/shared/*" { capabilities = ["read"] }',
  });
  const p = await vault.getPolicy({ name: 'node-ro' });
  assert.match(p.rules, /secret\/data\/shared/);
  await vault.write('secret/data/shared/cfg', { data: { a: 'b' } });
  const created = await vault.tokenCreate({ policies: ['node-ro'], ttl: '1h' });
  // node-vault switches a client to the token it just created (tokenSource); switch back.
  vault.token = server.token;
  assert.match(created.auth.client_token, /^s\.[A-Za-z0-9]{24}$/);
  assert.deepEqual(created.auth.policies, ['default', 'node-ro']);
  const limited = require('node-vault')({ apiVersion: 'v1', endpoint: addr, token: created.auth.client_token });
  const self = await limited.tokenLookupSelf();
  assert.ok(self.data.ttl >= 3599 && self.data.ttl <= 3600, `ttl ${self.data.ttl}`);
  const ok = await limited.read('secret/data/shared/cfg');
  assert.deepEqual(ok.data.data, { a: 'b' });
  const denied = await status(limited.write('secret/data/shared/cfg', { data: { a: 'c' } }));
  assert.equal(denied.code, 403);
  // A policy denial is wrapped in go-multierror's text, as OpenBao 2.7 answers it.
  assert.deepEqual(denied.body, { errors: ['1 error occurred:\n\t* permission denied\n\n'] });
  await vault.tokenRevoke({ token: created.auth.client_token });
  const revoked = await status(limited.tokenLookupSelf());
  assert.equal(revoked.code, 403);
});

test('leases: the token lease, lookup, tidy (202), irrevocable count', async () => {
  await vault.tokenCreate({ ttl: '30m' });
  vault.token = server.token;
  const list = await vault.list('sys/leases/lookup/auth/token/create/');
  assert.ok(list.data.keys.length >= 1);
  const id = `auth/token/create/${list.data.keys[0]}`;
  const l = await vault.write('sys/leases/lookup', { lease_id: id });
  assert.equal(l.data.id, id);
  const unknown = await status(vault.write('sys/leases/lookup', { lease_id: 'nope/x' }));
  assert.deepEqual(unknown, { code: 400, body: { errors: ['invalid lease'] } });
  // Tidy answers 202 as OpenBao does (node-vault reports any non-200/204 as an error).
  const tidy = await status(vault.write('sys/leases/tidy', {}));
  assert.equal(tidy.code, 202);
  const count = await vault.read('sys/leases/count?type=irrevocable');
  assert.deepEqual(count.data, { counts: {}, lease_count: 0 });
});

test('mounts: enable a KV v1 engine and use it', async () => {
  await vault.mount({ mount_point: 'node-kv1', type: 'kv', description: 'from node-vault' });
  const mounts = await vault.mounts();
  assert.equal(mounts['node-kv1/'].type, 'kv');
  await vault.write('node-kv1/a', { v: '1' });
  const r = await vault.read('node-kv1/a');
  assert.deepEqual(r.data, { v: '1' });
  await vault.unmount({ mount_point: 'node-kv1' });
});
