// Audit devices through node-vault against a real `strongroom server -dev -config=...`: one
// device from the config file's `audit` stanza, one enabled with sys/audit (the config sets
// OpenBao's unsafe_allow_api_audit_creation). The log lines are read back from the files and
// every secret in them must be an HMAC that sys/audit-hash reproduces.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startServer, stop, status } = require('../lib/harness');

let server;
let vault;
let dir;
let cfgLog;
let apiLog;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongroom-node-audit-'));
  cfgLog = path.join(dir, 'cfg.log');
  apiLog = path.join(dir, 'api.log');
  const hcl = path.join(dir, 'audit.hcl');
  fs.writeFileSync(
    hcl,
    `unsafe_allow_api_audit_creation = true
audit "file" "cfgfile" {
  description = "from the config file"
  options {
    file_path = "${cfgLog}"
  }
}
`,
  );
  server = await startServer([`-config=${hcl}`]);
  vault = server.vault();
});

after(async () => {
  await stop(server && server.proc);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function entries(file) {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

// The entries of `file` once `pred` holds for them (devices may flush just after the reply).
async function entriesWhen(file, pred, what) {
  const deadline = Date.now() + 10000;
  for (;;) {
    const got = entries(file);
    if (pred(got)) return got;
    if (Date.now() > deadline) assert.fail(`${file}: ${what} not logged within 10 s (${got.length} entries)`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const hash = async (device, input) => (await vault.write(`sys/audit-hash/${device}`, { input })).data.hash;

test('a config-file device and an API-enabled device log HMACed request and response entries', async () => {
  await vault.enableAudit({ name: 'api', type: 'file', description: 'via node-vault', options: { file_path: apiLog } });
  const devices = await vault.audits();
  assert.deepEqual(Object.keys(devices.data).sort(), ['api/', 'cfgfile/']);
  assert.deepEqual(devices.data['cfgfile/'], {
    type: 'file',
    description: 'from the config file',
    local: false,
    options: { file_path: cfgLog },
    path: 'cfgfile/',
  });
  assert.equal(devices.data['api/'].description, 'via node-vault');
  assert.deepEqual(devices['api/'], devices.data['api/'], 'sys/audit also answers at the top level');

  await vault.write('secret/data/audited', { data: { password: 'hunter2-node', port: 5432 } });
  await vault.read('secret/data/audited');

  for (const [device, file] of [['cfgfile', cfgLog], ['api', apiLog]]) {
    const isRead = (e) => e.type === 'response' && e.request.path === 'secret/data/audited' && e.request.operation === 'read';
    const all = await entriesWhen(file, (es) => es.some(isRead), 'the KV read response');
    const raw = fs.readFileSync(file, 'utf8');
    assert.ok(!raw.includes('hunter2-node'), `${device}: the secret value must never be logged in clear`);
    assert.ok(!raw.includes(`"${server.token}"`), `${device}: the client token must never be logged in clear`);

    const write = all.find((e) => e.type === 'request' && e.request.path === 'secret/data/audited' && e.request.operation === 'create');
    assert.ok(write, `${device}: no request entry for the KV write`);
    const secretHash = await hash(device, 'hunter2-node');
    assert.match(secretHash, /^hmac-sha256:[0-9a-f]{64}$/);
    assert.equal(write.request.data.data.password, secretHash);
    assert.equal(write.request.data.data.port, 5432, 'numbers are not HMACed');
    assert.equal(write.request.client_token, await hash(device, server.token));
    assert.equal(write.auth.client_token, write.request.client_token);
    assert.deepEqual(write.auth.policies, ['root']);
    assert.equal(write.request.mount_type, 'kv');
    // Each request entry is paired with a response entry of the same id.
    assert.ok(all.some((e) => e.type === 'response' && e.request.id === write.request.id));

    const read = all.find(isRead);
    assert.equal(read.response.data.data.password, secretHash);
    assert.match(read.response.data.metadata.created_time, /^\d{4}-\d\d-\d\dT/, 'timestamps stay in clear');
  }
  // Each device has its own HMAC key.
  assert.notEqual(await hash('api', 'x'), await hash('cfgfile', 'x'));
});

test('audit device refusals and disabling', async () => {
  const cfgOwned = await status(vault.disableAudit({ name: 'cfgfile' }));
  assert.deepEqual(cfgOwned, { code: 400, body: { errors: ['cannot disable configuration-managed audit device'] } });
  const unknown = await status(vault.write('sys/audit-hash/nope', { input: 'x' }));
  assert.deepEqual(unknown, { code: 400, body: { errors: ['unknown audit backend "nope/"'] } });

  await vault.disableAudit({ name: 'api' });
  assert.deepEqual(Object.keys((await vault.audits()).data), ['cfgfile/']);
  const before = entries(apiLog).length;
  await vault.write('secret/data/after-disable', { data: { v: 'x' } });
  await entriesWhen(cfgLog, (es) => es.some((e) => e.request && e.request.path === 'secret/data/after-disable'), 'the later write');
  assert.equal(entries(apiLog).length, before, 'a disabled device logs nothing more');
});
