// node-vault (unmodified) against a real `strongroom server -dev`: transit, the database
// engine with a real PostgreSQL (the issued credentials are used to log in), Kubernetes auth
// against the Kubernetes API stand-in (core/examples/k8s_standin.rs: real HTTPS, TokenReview,
// RS256/ES256 tokens), tokens, policies and leases.
//
// PostgreSQL: STRONGROOM_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Client: PgClient } = require('pg');

const { startServer, startStandIn, stop, status } = require('../lib/harness');

const PG_URL = process.env.STRONGROOM_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

let server;
let standin;
let vault;

before(async () => {
  [server, standin] = await Promise.all([startServer(), startStandIn()]);
  vault = server.vault();
});

after(async () => {
  await Promise.all([stop(server && server.proc), stop(standin && standin.proc)]);
});

const b64 = (s) => Buffer.from(s).toString('base64');

test('transit: create, encrypt, decrypt, rotate, rewrap, sign/verify, delete', async () => {
  await vault.mount({ mount_point: 'transit', type: 'transit' });
  await vault.transitCreateKey({ name: 'orders' });
  const enc = await vault.encryptData({ name: 'orders', plaintext: b64('card 4111') });
  assert.match(enc.data.ciphertext, /^vault:v1:[A-Za-z0-9+/]+=*$/);
  assert.equal(enc.data.key_version, 1);
  // AES-GCM: nonce(12) || ciphertext || tag(16).
  assert.equal(Buffer.from(enc.data.ciphertext.slice(9), 'base64').length, 12 + 9 + 16);
  const dec = await vault.decryptData({ name: 'orders', ciphertext: enc.data.ciphertext });
  assert.equal(Buffer.from(dec.data.plaintext, 'base64').toString(), 'card 4111');

  const rotated = await vault.write('transit/keys/orders/rotate', {});
  assert.equal(rotated.data.latest_version, 2);
  const rewrapped = await vault.rewrapData({ name: 'orders', ciphertext: enc.data.ciphertext });
  assert.match(rewrapped.data.ciphertext, /^vault:v2:/);
  const again = await vault.decryptData({ name: 'orders', ciphertext: rewrapped.data.ciphertext });
  assert.equal(Buffer.from(again.data.plaintext, 'base64').toString(), 'card 4111');

  const key = await vault.transitReadKey({ name: 'orders' });
  assert.equal(key.data.type, 'aes256-gcm96');
  assert.deepEqual(Object.keys(key.data.keys), ['1', '2']);
  const listed = await vault.transitListKeys();
  assert.deepEqual(listed.data.keys, ['orders']);

  // Errors carry OpenBao's texts.
  const tampered = enc.data.ciphertext.slice(0, -4) + (enc.data.ciphertext.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  const bad = await status(vault.decryptData({ name: 'orders', ciphertext: tampered }));
  assert.deepEqual(bad, { code: 400, body: { errors: ['cipher: message authentication failed'] } });
  const noPrefix = await status(vault.decryptData({ name: 'orders', ciphertext: 'garbage' }));
  assert.deepEqual(noPrefix, { code: 400, body: { errors: ['invalid ciphertext: no prefix'] } });

  // ECDSA P-256 signature (ASN.1 DER), checked with Node's own crypto and the published key.
  await vault.write('transit/keys/signer', { type: 'ecdsa-p256' });
  const input = Buffer.from('ship order 42');
  const signed = await vault.write('transit/sign/signer/sha2-256', { input: input.toString('base64') });
  assert.match(signed.data.signature, /^vault:v1:/);
  const signerKey = await vault.transitReadKey({ name: 'signer' });
  const pem = signerKey.data.keys['1'].public_key;
  const der = Buffer.from(signed.data.signature.slice(9), 'base64');
  assert.ok(crypto.verify('sha256', input, pem, der), 'Node crypto must accept the transit signature');
  const ok = await vault.write('transit/verify/signer/sha2-256', {
    input: input.toString('base64'),
    signature: signed.data.signature,
  });
  assert.equal(ok.data.valid, true);
  const forged = await vault.write('transit/verify/signer/sha2-256', {
    input: b64('ship order 43'),
    signature: signed.data.signature,
  });
  assert.equal(forged.data.valid, false);

  const refused = await status(vault.transitDeleteKey({ name: 'orders' }));
  assert.deepEqual(refused, {
    code: 400,
    body: { errors: ['error deleting policy orders: deletion is not allowed for this key'] },
  });
  await vault.write('transit/keys/orders/config', { deletion_allowed: true });
  await vault.transitDeleteKey({ name: 'orders' });
  const gone = await status(vault.transitReadKey({ name: 'orders' }));
  assert.equal(gone.code, 404);
});

// SCRAM-SHA-256 verifier check (RFC 5802): does `password` match the stored pg_authid hash?
function scramMatches(verifier, password) {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier || '');
  assert.ok(m, `not a SCRAM-SHA-256 verifier: ${verifier && verifier.slice(0, 14)}`);
  const salted = crypto.pbkdf2Sync(password, Buffer.from(m[2], 'base64'), Number(m[1]), 32, 'sha256');
  const clientKey = crypto.createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = crypto.createHash('sha256').update(clientKey).digest();
  return storedKey.equals(Buffer.from(m[3], 'base64'));
}

test('database: PostgreSQL config, role, creds usable for login, renew, revoke drops the role', async () => {
  const admin = new PgClient({ connectionString: PG_URL });
  await admin.connect().catch((e) => {
    throw new Error(`PostgreSQL is not reachable at ${PG_URL} (set STRONGROOM_TEST_POSTGRES_URL): ${e.message}`);
  });
  const dbname = `sr_node_${crypto.randomBytes(5).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${dbname}`);
  try {
    const u = new URL(PG_URL);
    const host = `${u.hostname}:${u.port || 5432}`;
    await vault.mount({ mount_point: 'database', type: 'database' });
    await vault.write('database/config/pg', {
      plugin_name: 'postgresql-database-plugin',
      connection_url: `postgresql://{{username}}:{{password}}@${host}/${dbname}?sslmode=disable`,
      username: decodeURIComponent(u.username) || 'postgres',
      password: decodeURIComponent(u.password) || 'unused-under-trust',
      allowed_roles: 'app',
    });
    const cfg = await vault.read('database/config/pg');
    assert.deepEqual(cfg.data.allowed_roles, ['app']);
    assert.equal(cfg.data.connection_details.password, undefined);
    await vault.write('database/roles/app', {
      db_name: 'pg',
      creation_statements: [
        `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
        'GRANT CONNECT ON DATABASE ' + dbname + ' TO "{{name}}";',
      ],
      default_ttl: '1h',
      max_ttl: '24h',
    });
    const role = await vault.read('database/roles/app');
    assert.equal(role.data.default_ttl, 3600);

    const creds = await vault.generateDatabaseCredentials({ databasePath: 'database', name: 'app' });
    const { username, password } = creds.data;
    assert.match(creds.lease_id, /^database\/creds\/app\/[A-Za-z0-9]{24}$/);
    assert.equal(creds.lease_duration, 3600);
    assert.equal(creds.renewable, true);
    assert.match(username, /^v-token-app-[A-Za-z0-9]{20}-\d{10}$/);
    assert.match(password, /^[A-Za-z0-9-]{20}$/);

    // Log in as the issued user and look around; the password is the one PostgreSQL stored.
    const asUser = new PgClient({ connectionString: `postgresql://${encodeURIComponent(username)}:${encodeURIComponent(password)}@${host}/${dbname}` });
    await asUser.connect();
    const who = await asUser.query('SELECT current_user AS u, current_database() AS d');
    assert.deepEqual(who.rows[0], { u: username, d: dbname });
    await asUser.end();
    const stored = await admin.query('SELECT rolpassword, rolvaliduntil FROM pg_authid WHERE rolname = $1', [username]);
    assert.equal(stored.rowCount, 1);
    assert.ok(scramMatches(stored.rows[0].rolpassword, password), 'the stored verifier must match the issued password');
    assert.ok(!scramMatches(stored.rows[0].rolpassword, `${password}x`));
    const validUntil = stored.rows[0].rolvaliduntil.getTime();
    assert.ok(Math.abs(validUntil - (Date.now() + 3605 * 1000)) < 30000, `VALID UNTIL ${stored.rows[0].rolvaliduntil}`);

    // The lease: lookup, renew with an increment (moves VALID UNTIL), then revoke.
    const lease = await vault.write('sys/leases/lookup', { lease_id: creds.lease_id });
    assert.equal(lease.data.id, creds.lease_id);
    assert.equal(lease.data.renewable, true);
    const renewed = await vault.renew({ lease_id: creds.lease_id, increment: 7200 });
    assert.equal(renewed.lease_id, creds.lease_id);
    assert.equal(renewed.lease_duration, 7200);
    const moved = await admin.query('SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1', [username]);
    assert.ok(moved.rows[0].rolvaliduntil.getTime() > validUntil + 3000 * 1000, 'renew must move VALID UNTIL');

    await vault.revoke({ lease_id: creds.lease_id });
    const left = await admin.query('SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1', [username]);
    assert.equal(left.rows[0].n, 0, 'revoking the lease must drop the role');
    const unknownLease = await status(vault.write('sys/leases/lookup', { lease_id: creds.lease_id }));
    assert.deepEqual(unknownLease, { code: 400, body: { errors: ['invalid lease'] } });

    // Prefix revocation drops every user issued under the role.
    const a = await vault.generateDatabaseCredentials({ databasePath: 'database', name: 'app' });
    const b = await vault.generateDatabaseCredentials({ databasePath: 'database', name: 'app' });
    // node-vault's revokePrefix uses Vault's legacy sys/revoke-prefix, which OpenBao removed.
    const legacy = await status(vault.revokePrefix({ path_prefix: 'database/creds/app' }));
    assert.deepEqual(legacy, { code: 404, body: { errors: ['1 error occurred:\n\t* unsupported path\n\n'] } });
    await vault.write('sys/leases/revoke-prefix/database/creds/app', {});
    const none = await admin.query('SELECT count(*)::int AS n FROM pg_roles WHERE rolname = ANY($1)', [[a.data.username, b.data.username]]);
    assert.equal(none.rows[0].n, 0);

    const unknown = await status(vault.generateDatabaseCredentials({ databasePath: 'database', name: 'nope' }));
    assert.deepEqual(unknown, { code: 400, body: { errors: ['unknown role: nope'] } });
    await vault.unmount({ mount_point: 'database' });
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${dbname} WITH (FORCE)`);
    await admin.end();
  }
});

test('kubernetes auth: config, role, login with RS256/ES256/legacy tokens, refusals', async () => {
  await vault.enableAuth({ mount_point: 'kubernetes', type: 'kubernetes' });
  await vault.write('auth/kubernetes/config', {
    kubernetes_host: standin.url,
    kubernetes_ca_cert: standin.ca_pem,
    token_reviewer_jwt: standin.reviewer_jwt,
  });
  const cfg = await vault.read('auth/kubernetes/config');
  assert.equal(cfg.data.kubernetes_host, standin.url);
  assert.equal(cfg.data.token_reviewer_jwt_set, true);
  assert.equal(cfg.data.token_reviewer_jwt, undefined);
  await vault.addPolicy({ name: 'k8s-web', rules: 'path "secret/data/web/*" { capabilities = ["read"] }' });
  await vault.write('secret/data/web/cfg', { data: { db: 'pg' } });
  // node-vault 0.12.0's addKubernetesRole has a malformed request schema (no `properties`), so
  // it throws before sending; the generic write is what works.
  await vault.write('auth/kubernetes/role/web', {
    bound_service_account_names: ['web', 'worker', 'legacy'],
    bound_service_account_namespaces: ['apps'],
    token_policies: ['k8s-web'],
    token_ttl: '1h',
  });
  const role = await vault.getKubernetesRole({ mount_point: 'kubernetes', role_name: 'web' });
  assert.deepEqual(role.data.bound_service_account_namespaces, ['apps']);
  assert.equal(role.data.token_ttl, 3600);

  for (const name of ['web', 'worker', 'legacy']) {
    const sa = standin.sa(name);
    const client = server.vault(null);
    const login = await client.kubernetesLogin({ mount_point: 'kubernetes', role: 'web', jwt: sa.jwt });
    assert.equal(client.token, login.auth.client_token, 'node-vault switches to the login token');
    assert.deepEqual(login.auth.policies, ['default', 'k8s-web']);
    assert.equal(login.auth.lease_duration, 3600);
    assert.equal(login.auth.orphan, true);
    assert.deepEqual(login.auth.metadata, {
      role: 'web',
      service_account_name: name,
      service_account_namespace: 'apps',
      service_account_secret_name: sa.kind === 'legacy' ? 'legacy-token-abcde' : '',
      service_account_uid: sa.uid,
    });
    const got = await client.read('secret/data/web/cfg');
    assert.deepEqual(got.data.data, { db: 'pg' });
    const denied = await status(client.write('secret/data/web/cfg', { data: {} }));
    assert.equal(denied.code, 403);
    const self = await client.tokenLookupSelf();
    assert.equal(self.data.display_name, `kubernetes-apps-${name}`);
    assert.equal(self.data.path, 'auth/kubernetes/login');
  }

  const outsider = await status(server.vault(null).kubernetesLogin({ mount_point: 'kubernetes', role: 'web', jwt: standin.sa('intruder').jwt }));
  assert.deepEqual(outsider, { code: 403, body: { errors: ['service account name not authorized'] } });
  await vault.write('auth/kubernetes/role/any', {
    bound_service_account_names: ['*'],
    bound_service_account_namespaces: ['apps'],
  });
  const wrongNs = await status(server.vault(null).kubernetesLogin({ mount_point: 'kubernetes', role: 'any', jwt: standin.sa('intruder').jwt }));
  assert.deepEqual(wrongNs, { code: 403, body: { errors: ['namespace not authorized'] } });
  // A token the API server did not sign: the local parse passes, the TokenReview refuses it.
  const [h, c] = standin.sa('web').jwt.split('.');
  const forged = `${h}.${c}.${Buffer.from('not a signature').toString('base64url')}`;
  const rejected = await status(server.vault(null).kubernetesLogin({ mount_point: 'kubernetes', role: 'web', jwt: forged }));
  assert.deepEqual(rejected, { code: 403, body: { errors: ['permission denied'] } });
  const noRole = await status(server.vault(null).kubernetesLogin({ mount_point: 'kubernetes', role: 'nope', jwt: standin.sa('web').jwt }));
  assert.deepEqual(noRole, { code: 400, body: { errors: ['invalid role name "nope"'] } });
});

test('tokens: create, lookup, lookup-accessor, renew, revoke by accessor', async () => {
  const created = await vault.tokenCreate({ policies: ['default'], ttl: '10m', meta: { app: 'node' } });
  vault.token = server.token; // tokenCreate is a token source in node-vault
  const { client_token: token, accessor } = created.auth;
  assert.match(token, /^s\.[A-Za-z0-9]{24}$/);
  const look = await vault.tokenLookup({ token });
  assert.equal(look.data.accessor, accessor);
  assert.deepEqual(look.data.meta, { app: 'node' });
  assert.equal(look.data.creation_ttl, 600);
  const byAccessor = await vault.tokenLookupAccessor({ accessor });
  assert.equal(byAccessor.data.id, '', 'a lookup by accessor never shows the token');
  assert.equal(byAccessor.data.accessor, accessor);
  const renewed = await vault.tokenRenew({ token, increment: '5m' });
  vault.token = server.token;
  assert.equal(renewed.auth.lease_duration, 300);
  await vault.tokenRevokeAccessor({ accessor });
  const gone = await status(vault.tokenLookup({ token }));
  assert.deepEqual(gone, { code: 403, body: { errors: ['bad token'] } });
});

test('policies: list, read, update, remove', async () => {
  await vault.addPolicy({ name: 'node-tmp', rules: 'path "a/*" { capabilities = ["read"] }' });
  const names = await vault.policies();
  assert.ok(names.policies.includes('node-tmp') && names.policies.includes('root'));
  await vault.addPolicy({ name: 'node-tmp', rules: 'path "b/*" { capabilities = ["list"] }' });
  assert.match((await vault.getPolicy({ name: 'node-tmp' })).rules, /"b\/\*"/);
  const bad = await status(vault.addPolicy({ name: 'broken', rules: 'path "x" { capabilities = ' }));
  assert.equal(bad.code, 400);
  assert.match(bad.body.errors[0], /^failed to parse policy: /);
  await vault.removePolicy({ name: 'node-tmp' });
  assert.ok(!(await vault.policies()).policies.includes('node-tmp'));
  const root = await status(vault.removePolicy({ name: 'root' }));
  assert.deepEqual(root, { code: 400, body: { errors: ['cannot delete "root" policy'] } });
});
