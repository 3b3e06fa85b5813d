// Login refused for forged ID tokens (issue 15, "Login refused: … an ID
// token signed by another key, `alg: none` …").
//
// No honest provider issues such tokens, so the upstream here is a hostile
// one: a small node:http server that speaks the protocol (discovery, JWK
// Set, authorization and token endpoints) and, at the token endpoint, hands
// vestibule the ID token each test forges with `jose`. It plays the
// attacker, not a stand-in for a peer: the honest provider is npm
// `oidc-provider` in oidc_login.test.mjs. The first test signs in with an
// honest token from the same server, so every refusal after it is the
// token's fault, not the harness's.
//
// vestibule is the real binary, over a real SQLite file; the "browser" is
// this test, following redirects by hand with the login cookie.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import * as jose from 'jose';

import { CookieJar, request } from './http.mjs';
import { Processes, assertPortFree, vestibuleBin, vestibuleEnv } from './processes.mjs';

const GATE_PORT = 19341;
const APP_PORT = 19342;
const IDP_PORT = 19343;
const GATE = `http://127.0.0.1:${GATE_PORT}`;
const ISSUER = `http://127.0.0.1:${IDP_PORT}`;
const CALLBACK = `${GATE}/.vestibule/oidc/callback`;
const CLIENT_ID = 'vestibule';
const SECRET = crypto.randomBytes(32).toString('base64url');
const KID = 'idp-1';

const procs = new Processes();
let dir;
let server;
let gw; // the vestibule under test (its output holds the logged reasons)
let key; // the provider's real signing key (published in its JWK Set)
let otherKey; // a key the provider never published
/** What the token endpoint answers next: (nonce) => ID token. */
let forge;

const now = () => Math.floor(Date.now() / 1000);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** Claims an honest provider would put in the ID token for `nonce`. */
function honestClaims(nonce) {
  return { iss: ISSUER, aud: CLIENT_ID, sub: 'mallory-target', nonce, iat: now(), exp: now() + 300 };
}

async function sign(claims, { with: k = key, kid = KID, alg = 'ES256' } = {}) {
  return new jose.SignJWT(claims).setProtectedHeader({ alg, kid, typ: 'JWT' }).sign(k);
}

/** The hostile provider: honest protocol, forged tokens. */
function startProvider(jwks) {
  const pendingNonce = new Map(); // code → nonce
  return new Promise((resolve) => {
    const s = http.createServer(async (req, res) => {
      const u = new URL(req.url, ISSUER);
      const json = (code, body) => {
        res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
        res.end(JSON.stringify(body));
      };
      if (u.pathname === '/.well-known/openid-configuration') {
        return json(200, {
          issuer: ISSUER,
          authorization_endpoint: `${ISSUER}/auth`,
          token_endpoint: `${ISSUER}/token`,
          jwks_uri: `${ISSUER}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['ES256'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['client_secret_basic'],
        });
      }
      if (u.pathname === '/jwks') return json(200, jwks);
      if (u.pathname === '/auth') {
        // Signs anyone in at once: the code remembers the nonce vestibule sent.
        const code = crypto.randomBytes(16).toString('base64url');
        pendingNonce.set(code, u.searchParams.get('nonce'));
        const back = new URL(u.searchParams.get('redirect_uri'));
        back.searchParams.set('code', code);
        back.searchParams.set('state', u.searchParams.get('state'));
        res.writeHead(302, { Location: back.href });
        return res.end();
      }
      if (u.pathname === '/token' && req.method === 'POST') {
        let body = '';
        for await (const c of req) body += c;
        const code = new URLSearchParams(body).get('code');
        const nonce = pendingNonce.get(code);
        pendingNonce.delete(code);
        if (nonce === undefined) return json(400, { error: 'invalid_grant' });
        return json(200, {
          access_token: crypto.randomBytes(32).toString('base64url'),
          token_type: 'Bearer',
          expires_in: 300,
          id_token: await forge(nonce),
        });
      }
      res.writeHead(404);
      res.end();
    });
    s.listen(IDP_PORT, '127.0.0.1', () => resolve(s));
  });
}

/**
 * One login through the hostile provider, redirects followed by hand: the
 * callback's answer and the cookies the browser holds afterwards.
 */
async function login() {
  const jar = new CookieJar();
  const get = async (url) => {
    const r = await request(url, { headers: [...jar.header(url), ['Accept', 'text/html']] });
    jar.store(r.headers['set-cookie']);
    return r;
  };
  let r = await get(`${GATE}/hello`);
  for (let hops = 0; hops < 6; hops += 1) {
    if (![302, 303].includes(r.status)) break;
    const next = new URL(r.headers.location, GATE).href;
    if (next.startsWith(`${CALLBACK}?`)) return { answer: await get(next), jar };
    r = await get(next);
  }
  assert.fail(`the login never reached the callback (last answer ${r.status} ${r.body.slice(0, 200)})`);
}

const sessionCookie = (jar) => jar.value('vestibule');

/** Runs `fn`, noting a failure so after() prints vestibule's output. */
const t = (name, fn) => test(name, () => procs.track(fn));

before(() => procs.track(async () => {
  vestibuleBin();
  for (const port of [GATE_PORT, APP_PORT, IDP_PORT]) await assertPortFree(port);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-oidc-forged-'));
  ({ privateKey: key } = await jose.generateKeyPair('ES256', { extractable: true }));
  ({ privateKey: otherKey } = await jose.generateKeyPair('ES256', { extractable: true }));
  const pub = await jose.exportJWK(key);
  delete pub.d;
  server = await startProvider({ keys: [{ ...pub, kid: KID, alg: 'ES256', use: 'sig' }] });

  const secretFile = path.join(dir, 'secret');
  fs.writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  const cfg = path.join(dir, 'vestibule.toml');
  fs.writeFileSync(cfg, `[server]
listen = ["127.0.0.1:${GATE_PORT}"]
admin_listen = ""

[source.oidc]
preset = "generic"
issuer = "${ISSUER}"
client_id = "${CLIENT_ID}"
client_secret_file = "${secretFile}"
redirect_url = "${CALLBACK}"
provisioning = "auto"

[accounts]

[database]
data_dir = "${path.join(dir, 'data')}"

[[route]]
name = "app"
upstream = "http://127.0.0.1:${APP_PORT}"
`);
  const env = vestibuleEnv();
  const m = spawnSync(vestibuleBin(), ['migrate', '--config', cfg], { env, encoding: 'utf8', timeout: 20000 });
  assert.equal(m.status, 0, `vestibule migrate: ${m.stdout}\n${m.stderr}`);
  const whoami = procs.start('whoami', vestibuleBin(), ['whoami', '--listen', `127.0.0.1:${APP_PORT}`], { env });
  await procs.waitForOutput(whoami, `whoami: listening on http://127.0.0.1:${APP_PORT}`);
  gw = procs.start('vestibule', vestibuleBin(), ['serve', '--config', cfg], { env });
  await procs.waitForOutput(gw, `listening on http://127.0.0.1:${GATE_PORT}`);
}));

after(async () => {
  await new Promise((r) => (server ? server.close(r) : r()));
  await procs.stopAll({ report: procs.failed || Boolean(process.env.KEEP_E2E_DIR) });
  if (dir && !process.env.KEEP_E2E_DIR) fs.rmSync(dir, { recursive: true, force: true });
});

t('the harness: an honest ID token from the same provider signs in', async () => {
  forge = (nonce) => sign(honestClaims(nonce));
  const { answer, jar } = await login();
  assert.equal(answer.status, 303, `${answer.status} ${answer.body.slice(0, 300)}`);
  assert.ok(sessionCookie(jar), 'a session cookie');
  const app = await request(`${GATE}/hello`, { headers: [...jar.header(`${GATE}/hello`), ['Accept', 'application/json']] });
  assert.equal(app.status, 200, app.body);
});

for (const [what, forgery, reason] of [
  // OIDC Core §3.1.3.7 item 6: the signature, with a key of the issuer's.
  ['an ID token signed by another key (under the provider\'s kid)', (nonce) => sign(honestClaims(nonce), { with: otherKey }),
    'signature does not verify'],
  // RFC 8725 §3.1 / §2.1: `none` is never accepted.
  ['alg: none', async (nonce) => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(honestClaims(nonce))}.`,
    'algorithm "none" is not supported'],
  // §3.1.3.7 item 11: the nonce sent in the authorization request.
  ['another nonce', (nonce) => sign({ ...honestClaims(nonce), nonce: `${nonce}x` }),
    'nonce is not the one sent'],
  // §3.1.3.7 item 2: `iss` exactly the issuer.
  ['another iss', (nonce) => sign({ ...honestClaims(nonce), iss: 'http://127.0.0.1:1' }),
    'issuer is not the expected one'],
  // §3.1.3.7 item 3: `aud` contains the client id.
  ['another aud', (nonce) => sign({ ...honestClaims(nonce), aud: 'someone-else' }),
    'audience is not an expected one'],
  // §3.1.3.7 item 9: not expired.
  ['an expired token', (nonce) => sign({ ...honestClaims(nonce), iat: now() - 3600, exp: now() - 1800 }),
    'the assertion has expired'],
]) {
  t(`login refused: ${what} ⇒ an error page, no session`, async () => {
    forge = forgery;
    const { answer, jar } = await login();
    assert.ok([400, 401, 403, 502].includes(answer.status), `refused, not ${answer.status} ${answer.body.slice(0, 300)}`);
    assert.equal(answer.headers.location, undefined, 'no redirect onwards');
    assert.match(answer.body, /Sign-in not accepted|Sign-in unavailable/);
    assert.equal(sessionCookie(jar), undefined, 'no session cookie');
    const app = await request(`${GATE}/hello`, { headers: [...jar.header(`${GATE}/hello`), ['Accept', 'text/html']] });
    assert.ok([302, 303].includes(app.status), `the app route still asks for login (${app.status})`);
    // Refused for this forgery's reason, as the log says (the page shows
    // the user no detail).
    await procs.waitForOutput(gw, `an OIDC sign-in was refused reason=ID token: `, 5000);
    await procs.waitForOutput(gw, reason, 5000);
  });
}
