// Shared by the node-vault tests: start `strongroom server -dev` (STRONGROOM_BIN) and the
// Kubernetes API stand-in (STRONGROOM_K8S_STANDIN_BIN, the `k8s_standin` example of the core
// crate) as child processes. scripts/test-node.sh builds both and sets both variables.
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const net = require('node:net');
const readline = require('node:readline');

const STARTUP_MS = 60000;

// The first line of `child`'s stdout that `pick` accepts, or a rejection when the process
// exits first or nothing comes within STARTUP_MS.
function firstLine(child, what, pick) {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what}: nothing on stdout within ${STARTUP_MS} ms`));
    }, STARTUP_MS);
    const onExit = (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited early with ${code}`));
    };
    child.once('exit', onExit);
    rl.on('line', (line) => {
      const value = pick(line);
      if (value === undefined) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve(value);
    });
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitHealthy(addr) {
  const deadline = Date.now() + STARTUP_MS;
  for (;;) {
    try {
      if ((await fetch(`${addr}/v1/sys/health`)).status === 200) return;
    } catch (_) { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`server at ${addr} not healthy within ${STARTUP_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// `strongroom server -dev` on a free port; `extra` are more arguments (e.g. `-config=...`).
// Resolves to { addr, token, proc, vault(token?) }. The port is chosen here rather than with
// `:0` so that STRONGROOM_BIN may also name OpenBao's `bao` (the reference) to compare.
async function startServer(extra = []) {
  const bin = process.env.STRONGROOM_BIN;
  assert.ok(bin, 'STRONGROOM_BIN must name the strongroom server binary (scripts/test-node.sh sets it)');
  const token = `root-${require('node:crypto').randomBytes(8).toString('hex')}`;
  const port = await freePort();
  const proc = spawn(
    bin,
    ['server', '-dev', `-dev-root-token-id=${token}`, `-dev-listen-address=127.0.0.1:${port}`, ...extra],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const addr = await firstLine(proc, 'server -dev', (line) => {
    const m = /^\s*Api Address:\s*(\S+)/.exec(line);
    return m ? m[1] : undefined;
  });
  proc.stdout.resume();
  await waitHealthy(addr);
  const vault = (t = token) => require('node-vault')({ apiVersion: 'v1', endpoint: addr, token: t });
  return { addr, token, proc, vault };
}

// The Kubernetes API stand-in (HTTPS, own CA, TokenReview, JWKS); resolves to its JSON line
// ({url, ca_pem, reviewer_jwt, audience, rsa_public_pem, namespaces, service_accounts}) plus
// `proc` and `sa(name)`, the service-account entry of that name. It exits when its stdin closes.
async function startStandIn() {
  const bin = process.env.STRONGROOM_K8S_STANDIN_BIN;
  assert.ok(bin, 'STRONGROOM_K8S_STANDIN_BIN must name the k8s_standin example binary (scripts/test-node.sh sets it)');
  const proc = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const info = await firstLine(proc, 'k8s_standin', (line) => JSON.parse(line));
  info.proc = proc;
  info.sa = (name) => {
    const found = info.service_accounts.find((a) => a.name === name);
    assert.ok(found, `the stand-in has no service account ${name}`);
    return found;
  };
  return info;
}

function stop(proc) {
  if (!proc || proc.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    proc.once('exit', resolve);
    if (proc.stdin) proc.stdin.end();
    proc.kill('SIGTERM');
  });
}

// Run `promise`; 200 on success, else { code, body } of the HTTP error node-vault raised.
async function status(promise) {
  try {
    await promise;
    return 200;
  } catch (e) {
    assert.ok(e.response, `expected an HTTP error, got ${e}`);
    return { code: e.response.statusCode, body: e.response.body };
  }
}

module.exports = { startServer, startStandIn, stop, status };
