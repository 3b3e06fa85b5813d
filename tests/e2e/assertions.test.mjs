// Signed identity assertions, checked by apps in other languages: the
// snippets of docs/assertions.md (docs/assertions/verify.mjs with npm
// `jose`, docs/assertions/verify.py with PyJWT) run, as they are, as the
// upstreams of a real gateway.
//
// - the doc's code blocks are those files, byte for byte;
// - round trip: each app verifies the assertion the gateway sends it and
//   answers the identity (a client's own copy of the header is dropped);
// - rejection matrix: every forged or unfit token in CASES, sent straight
//   to each app (as by someone who reaches it around the gateway), is
//   refused by every verifier in VERIFIERS.
//
// These are node tests rather than Rust ones because the Node verifier
// needs tests/e2e/node_modules, which `.ci/run` installs (npm ci) only
// after `cargo test`.
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test assertions.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Processes, assertPortFree, vestibuleBin, vestibuleEnv } from './processes.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, '..', '..');
const DOC = path.join(ROOT, 'docs', 'assertions.md');
const SNIPPETS = path.join(ROOT, 'docs', 'assertions');
const PYTHON = '/usr/bin/python3';

const VESTIBULE_PORT = 18800;
const WHOAMI_PORT = 18801;
const ISSUER = 'https://sso.example.test';
const TYP = 'vestibule-id+jwt';

/**
 * The verifiers under test: HTTP apps that read `JWKS_URL`, `ISSUER`,
 * `AUDIENCE`, `HOST` and `PORT` from the environment, print
 * "listening on", and answer 200 with the identity's claims as JSON for a
 * valid `X-Vestibule-Assertion`, 401 otherwise. Another verifier is one
 * more line. `start(dir)` gives the command, args and extra environment.
 */
const VERIFIERS = [
  { id: 'node', port: 18802, start: (dir) => [process.execPath, [nodeSnippet(dir)], {}] },
  { id: 'python', port: 18803, start: () => [PYTHON, [path.join(SNIPPETS, 'verify.py')], { PYTHONUNBUFFERED: '1' }] },
];

/** The app's audience: its route's host (the default `aud`). */
const audience = (v) => `${v.id}.test`;

/** What the SSO front says about alice (authelia's headers). */
const ALICE = [
  ['Remote-User', 'alice'],
  ['Remote-Email', 'alice@example.com'],
  ['Remote-Name', 'Alice Liddell'],
  ['Remote-Groups', 'admins,users'],
];

// ---------------------------------------------------------------- helpers

/** Fails, saying what to install, unless both verifiers' libraries are here. */
function assertPrerequisites() {
  if (!fs.existsSync(path.join(HERE, 'node_modules', 'jose', 'package.json'))) {
    throw new Error('npm `jose` is missing from tests/e2e/node_modules: run `npm ci` in tests/e2e');
  }
  const py = spawnSync(PYTHON, ['-c', 'import jwt, cryptography'], { encoding: 'utf8' });
  if (py.error || py.status !== 0) {
    throw new Error(`${PYTHON} cannot import PyJWT with cryptography: apt-get install python3-jwt python3-cryptography\n`
      + `${py.error?.message ?? py.stderr}`);
  }
}

/**
 * verify.mjs, copied as it is into `dir` beside a link to
 * tests/e2e/node_modules: ES modules resolve `jose` from where the file
 * lies (NODE_PATH does not apply to them), and the doc's copy lies in docs/.
 */
function nodeSnippet(dir) {
  const file = path.join(dir, 'verify.mjs');
  fs.copyFileSync(path.join(SNIPPETS, 'verify.mjs'), file);
  if (!fs.existsSync(path.join(dir, 'node_modules'))) {
    fs.symlinkSync(path.join(HERE, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  }
  return file;
}

const procs = new Processes();

/** GET with node:http: `headers` is a list of [name, value] pairs sent as given. */
function get(port, urlPath, { host = `127.0.0.1:${port}`, headers = [] } = {}) {
  return new Promise((resolve, reject) => {
    const flat = ['Host', host, 'Accept', 'application/json'];
    for (const [n, v] of headers) flat.push(n, v);
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, headers: flat, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(10000, () => req.destroy(new Error(`timeout: GET ${host}${urlPath}`)));
    req.on('error', reject);
    req.end();
  });
}

const json = (r) => {
  assert.equal(r.status, 200, `expected 200, got ${r.status}: ${r.body.slice(0, 500)}`);
  return JSON.parse(r.body);
};

// ------------------------------------------------------- JWS, by hand

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const enc = (obj) => b64u(JSON.stringify(obj));
const dec = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

/** A compact JWS of `header` and `claims`, signed by `sign(signingInput)`. */
function jws(header, claims, sign) {
  const input = `${enc(header)}.${enc(claims)}`;
  return `${input}.${b64u(sign(Buffer.from(input, 'ascii')))}`;
}

/** ES256 (RFC 7518 §3.4: r || s, not DER). */
const es256 = (privateKey) => (input) => crypto.sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' });

// ------------------------------------------------------------ the cases

/**
 * Tokens every verifier must refuse, in one place: each makes a token from
 * `c`, what the test holds for one verifier:
 * - `real`: an assertion the gateway sent for the verifier's audience;
 * - `claims`: its claims, with times made fresh (`now`);
 * - `kid`, `key`: the gateway's signing key (read from its store);
 * - `otherKid`: another key the gateway publishes (one rotated in ahead);
 * - `publicPem`: the signing key's public half, as PEM;
 * - `stranger`: a P-256 key the gateway never published.
 * The first entry, `valid`, is the control: made the same way, it must be
 * accepted, so that the refusals are down to what each case changes.
 */
const CASES = [
  ['valid', (c) => jws({ alg: 'ES256', kid: c.kid, typ: TYP }, c.claims, es256(c.key))],
  ['tampered payload', (c) => {
    const [h, p, s] = c.real.split('.');
    return [h, enc({ ...dec(p), preferred_username: 'admin', groups: ['admins'] }), s].join('.');
  }],
  ['tampered signature', (c) => {
    const [h, p, s] = c.real.split('.');
    const sig = Buffer.from(s, 'base64url');
    sig[sig.length - 1] ^= 0x01;
    return [h, p, b64u(sig)].join('.');
  }],
  ['alg none', (c) => jws({ alg: 'none', kid: c.kid, typ: TYP }, c.claims, () => Buffer.alloc(0))],
  ['kid swapped to another published key', (c) => jws({ alg: 'ES256', kid: c.otherKid, typ: TYP }, c.claims, es256(c.key))],
  ['HS256 signed with the public key', (c) => jws({ alg: 'HS256', kid: c.kid, typ: TYP }, c.claims,
    (input) => crypto.createHmac('sha256', c.publicPem).update(input).digest())],
  ['signed by an unpublished key', (c) => jws({ alg: 'ES256', kid: c.kid, typ: TYP }, c.claims, es256(c.stranger))],
  ['expired', (c) => jws({ alg: 'ES256', kid: c.kid, typ: TYP },
    { ...c.claims, iat: c.now - 300, nbf: c.now - 300, exp: c.now - 120 }, es256(c.key))],
  ['not yet valid', (c) => jws({ alg: 'ES256', kid: c.kid, typ: TYP },
    { ...c.claims, iat: c.now + 120, nbf: c.now + 120, exp: c.now + 180 }, es256(c.key))],
  ['wrong aud', (c) => jws({ alg: 'ES256', kid: c.kid, typ: TYP }, { ...c.claims, aud: 'other.test' }, es256(c.key))],
  ['wrong iss', (c) => jws({ alg: 'ES256', kid: c.kid, typ: TYP }, { ...c.claims, iss: 'https://evil.test' }, es256(c.key))],
  ['wrong typ', (c) => jws({ alg: 'ES256', kid: c.kid, typ: 'JWT' }, c.claims, es256(c.key))],
  ['no typ', (c) => jws({ alg: 'ES256', kid: c.kid }, c.claims, es256(c.key))],
];

// ---------------------------------------------------------------- set-up

let dir;
/** The gateway's keys: kid -> KeyObject (private), read from its store. */
const privateKeys = new Map();
let jwks;

function gatewayConfig() {
  const routes = VERIFIERS.map((v) => `
[[route]]
name = "${v.id}"
host = "${audience(v)}"
upstream = "http://127.0.0.1:${v.port}"
assertion = true

# The same audience, to an app that shows what it received: the test's
# source of real assertions to tamper with.
[[route]]
name = "${v.id}-echo"
host = "${audience(v)}"
path_prefix = "/_echo"
upstream = "http://127.0.0.1:${WHOAMI_PORT}"
assertion = true
`).join('');
  return `[server]
listen = ["127.0.0.1:${VESTIBULE_PORT}"]
admin_listen = ""

[source.headers]
dialect = "authelia"
trusted_proxies = ["127.0.0.1"]
provisioning = "auto"

[database]
data_dir = "${path.join(dir, 'data')}"

[accounts]

[assertions]
issuer = "${ISSUER}"
${routes}`;
}

/** The signing keys in the gateway's SQLite store (no key-encryption key is configured). */
function readStoreKeys() {
  const script = [
    'import json, sqlite3, sys',
    'db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)',
    'rows = db.execute("SELECT kid, alg, private_format, private_key FROM signing_keys")',
    'print(json.dumps([[k, a, f, bytes(p).hex()] for k, a, f, p in rows]))',
  ].join('\n');
  const r = spawnSync(PYTHON, ['-c', script, path.join(dir, 'data', 'vestibule.db')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `reading the store's keys: ${r.error?.message ?? r.stderr}`);
  for (const [kid, alg, format, der] of JSON.parse(r.stdout)) {
    assert.equal(alg, 'ES256');
    assert.equal(format, 'plain');
    privateKeys.set(kid, crypto.createPrivateKey({ key: Buffer.from(der, 'hex'), format: 'der', type: 'pkcs8' }));
  }
}

before(() => procs.track(setUp));

async function setUp() {
  assertPrerequisites();
  const bin = vestibuleBin();
  for (const port of [VESTIBULE_PORT, WHOAMI_PORT, ...VERIFIERS.map((v) => v.port)]) await assertPortFree(port);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-assertions-'));
  const cfg = path.join(dir, 'vestibule.toml');
  fs.writeFileSync(cfg, gatewayConfig());
  // A second key, published ahead of signing: the gateway then publishes
  // two, and a token can name the one that did not sign it.
  for (const args of [['migrate'], ['keys', 'rotate']]) {
    const r = spawnSync(bin, [...args, '--config', cfg], { env: vestibuleEnv(), encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, `vestibule ${args.join(' ')}: ${r.stderr}`);
  }

  const whoami = procs.start('whoami', bin, ['whoami', '--listen', `127.0.0.1:${WHOAMI_PORT}`], { env: vestibuleEnv() });
  const gateway = procs.start('vestibule', bin, ['serve', '--config', cfg], { env: vestibuleEnv() });
  await procs.waitForOutput(whoami, `listening on http://127.0.0.1:${WHOAMI_PORT}`);
  await procs.waitForOutput(gateway, `listening on http://127.0.0.1:${VESTIBULE_PORT}`);

  for (const v of VERIFIERS) {
    const [cmd, args, env] = v.start(dir);
    const rec = procs.start(v.id, cmd, args, {
      cwd: dir,
      env: vestibuleEnv({
        ...env,
        JWKS_URL: `http://127.0.0.1:${VESTIBULE_PORT}/.vestibule/jwks.json`,
        ISSUER,
        AUDIENCE: audience(v),
        HOST: '127.0.0.1',
        PORT: String(v.port),
      }),
    });
    await procs.waitForOutput(rec, `listening on http://127.0.0.1:${v.port}`);
  }
  const r = await get(VESTIBULE_PORT, '/.vestibule/jwks.json');
  jwks = json(r);
  readStoreKeys();
}

after(async () => {
  await procs.stopAll();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const t = (name, fn) => test(name, (ctx) => procs.track(() => fn(ctx)));

/** Through the gateway as alice, from the trusted front, to `v`'s host. */
const viaGateway = (v, urlPath, extra = []) => get(VESTIBULE_PORT, urlPath, {
  host: audience(v),
  headers: [...ALICE, ...extra],
});

/** The one assertion whoami received through `v`'s echo route. */
async function realAssertion(v) {
  const seen = json(await viaGateway(v, '/_echo/'));
  const values = seen.headers.filter(([n]) => n.toLowerCase() === 'x-vestibule-assertion').map(([, val]) => val);
  assert.equal(values.length, 1, `assertions received: ${JSON.stringify(values)}`);
  return values[0];
}

// ---------------------------------------------------------------- tests

t('the doc\'s code blocks are the files the tests run', () => {
  const text = fs.readFileSync(DOC, 'utf8');
  // Each snippet follows a `<!-- file: docs/assertions/NAME -->` line.
  const re = /^<!-- file: (docs\/assertions\/[\w.]+) -->\n```\w+\n([\s\S]*?)^```$/gm;
  const shown = new Map([...text.matchAll(re)].map((m) => [m[1], m[2]]));
  for (const name of ['verify.mjs', 'verify.py']) {
    const rel = `docs/assertions/${name}`;
    assert.ok(shown.has(rel), `docs/assertions.md does not show ${rel}`);
    assert.equal(shown.get(rel), fs.readFileSync(path.join(ROOT, rel), 'utf8'), `docs/assertions.md's copy of ${rel} differs`);
  }
});

t('the key set is published with a Cache-Control, two keys (one ahead), public halves only', async () => {
  const r = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: VESTIBULE_PORT, path: '/.vestibule/jwks.json', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    }).on('error', reject);
  });
  assert.equal(r.statusCode, 200);
  assert.match(r.headers['cache-control'], /^public, max-age=\d+$/);
  assert.equal(jwks.keys.length, 2);
  for (const k of jwks.keys) {
    assert.equal(k.kty, 'EC');
    assert.equal(k.d, undefined, 'a private key is published');
    assert.ok(privateKeys.has(k.kid), `${k.kid} is not in the store`);
  }
});

for (const v of VERIFIERS) {
  t(`${v.id}: the app verifies the gateway's assertion and answers the identity`, async () => {
    // The client's own copy of the header, in two spellings, is dropped:
    // the app sees one assertion, the gateway's.
    const r = await viaGateway(v, '/anything', [['X-Vestibule-Assertion', 'forged'], ['x_vestibule_assertion', 'forged']]);
    const id = json(r);
    assert.equal(id.preferred_username, 'alice');
    assert.equal(id.email, 'alice@example.com');
    assert.equal(id.name, 'Alice Liddell');
    assert.deepEqual(id.groups, ['admins', 'users']);
    assert.equal(id.auth_method, 'header');
    assert.ok(typeof id.sub === 'string' && id.sub.length > 0, `sub: ${JSON.stringify(id.sub)}`);
    // Straight to the app, without an assertion: refused.
    const bare = await get(v.port, '/', { headers: ALICE });
    assert.equal(bare.status, 401, bare.body);
  });

  t(`${v.id}: a token from another app's audience is refused`, async () => {
    const other = VERIFIERS.find((o) => o !== v) ?? v;
    const token = await realAssertion(other);
    if (other !== v) {
      const r = await get(v.port, '/', { headers: [['X-Vestibule-Assertion', token]] });
      assert.equal(r.status, 401, `${other.id}'s assertion accepted by ${v.id}: ${r.body}`);
    }
    // Its own audience's assertion, straight to it, is accepted.
    const own = await get(v.port, '/', { headers: [['X-Vestibule-Assertion', await realAssertion(v)]] });
    assert.equal(json(own).preferred_username, 'alice');
  });
}

t('rejection matrix: every verifier refuses every case, and accepts the control', async () => {
  const real = new Map();
  for (const v of VERIFIERS) real.set(v.id, await realAssertion(v));
  const kid = dec(real.get(VERIFIERS[0].id).split('.')[0]).kid;
  const otherKid = jwks.keys.map((k) => k.kid).find((k) => k !== kid);
  assert.ok(privateKeys.has(kid) && otherKid, `signing kid ${kid}, other ${otherKid}`);
  const publicPem = crypto.createPublicKey({ key: jwks.keys.find((k) => k.kid === kid), format: 'jwk' })
    .export({ type: 'spki', format: 'pem' });
  const { privateKey: stranger } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = Math.floor(Date.now() / 1000);

  const outcomes = [];
  for (const v of VERIFIERS) {
    const token = real.get(v.id);
    const claims = { ...dec(token.split('.')[1]), iat: now, nbf: now, exp: now + 60 };
    const c = { real: token, claims, kid, key: privateKeys.get(kid), otherKid, publicPem, stranger, now };
    for (const [name, make] of CASES) {
      const r = await get(v.port, '/', { headers: [['X-Vestibule-Assertion', make(c)]] });
      const want = name === 'valid' ? 200 : 401;
      outcomes.push({ verifier: v.id, case: name, status: r.status, ok: r.status === want, body: r.body.slice(0, 200) });
    }
  }
  const wrong = outcomes.filter((o) => !o.ok);
  assert.deepEqual(wrong, [], `unexpected outcomes:\n${wrong.map((o) => JSON.stringify(o)).join('\n')}`);
  assert.equal(outcomes.length, VERIFIERS.length * CASES.length);
});
