// vestibule as an OpenID Connect provider (issue 14), driven by npm
// `openid-client` (a certified relying-party library) and checked with npm
// `jose`, against the real gateway binary on loopback.
//
// The user comes from a trusted front: vestibule believes authelia's
// Remote-* headers from 127.0.0.1 (as the other e2e suites do), so the
// authorize step is plain fetch with those headers and manual redirects,
// the way a browser behind the front would arrive.
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test oidc_provider.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import * as oidc from 'openid-client';
import * as jose from 'jose';

import { launchChromium } from './demo.mjs';
import {
  Processes, assertPortFree, sleep, trustedFrontConfig, vestibuleBin, vestibuleEnv,
} from './processes.mjs';

const PORT = 18841;
const ISSUER = `http://127.0.0.1:${PORT}`;
const SECRET = 'e2e-client-secret-0123456789abcdef';
const SECRET_SHA256 = crypto.createHash('sha256').update(SECRET).digest('hex');
const PRIVATE_USE = 'app.immich:///oauth-callback';
const CODE_LIFETIME_S = 3;
const GRACE_S = 2;
const ALICE = { 'Remote-User': 'alice', 'Remote-Email': 'alice@example.test', 'Remote-Name': 'Alice Example', 'Remote-Groups': 'staff' };

const procs = new Processes();
let dir;
let bin;
let cfgPath;
// Chromium, started by the first test that needs it.
let browser;

function gatewayConfig() {
  const client = (id, lines) => `\n[[oidc_provider.client]]\nclient_id = "${id}"\n${lines}\n`;
  return `${trustedFrontConfig(PORT, path.join(dir, 'data'))}
[oidc_provider]
issuer = "${ISSUER}"
code_lifetime = "${CODE_LIFETIME_S}s"
refresh_grace = "${GRACE_S}s"
${client('native', `name = "Native app"\nkind = "public"\nconsent = "implicit"\nredirect_uris = ["http://127.0.0.1/cb", "${PRIVATE_USE}"]`)}
${client('web', `name = "Web app"\nkind = "confidential"\nsecret_sha256 = "${SECRET_SHA256}"\nconsent = "implicit"\nredirect_uris = ["http://127.0.0.1/cb"]`)}
${client('jwtapp', `kind = "confidential"\nsecret_sha256 = "${SECRET_SHA256}"\nconsent = "implicit"\naccess_token_format = "jwt"\nredirect_uris = ["http://127.0.0.1/cb"]`)}
${client('photos', `name = "Photos"\nkind = "public"\nredirect_uris = ["http://127.0.0.1/cb"]`)}
${client('staffonly', `kind = "public"\nconsent = "implicit"\nallowed_groups = ["admins"]\nredirect_uris = ["http://127.0.0.1/cb"]`)}
${client('tv', `name = "Living-room TV"\nkind = "public"\ngrants = ["device_code", "refresh_token"]`)}
${client('svc', `kind = "confidential"\nsecret_sha256 = "${SECRET_SHA256}"\ngrants = ["client_credentials"]\nscopes = ["api.read"]`)}
[[route]]
name = "app"
path_prefix = "/"
upstream = "http://127.0.0.1:9"
`;
}

function cli(args) {
  const r = spawnSync(bin, [...args, '--config', cfgPath], { env: vestibuleEnv(), encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `vestibule ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

before(() => procs.track(async () => {
  bin = vestibuleBin();
  await assertPortFree(PORT);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-oidc-'));
  cfgPath = path.join(dir, 'vestibule.toml');
  fs.writeFileSync(cfgPath, gatewayConfig());
  cli(['migrate']);
  const gw = procs.start('vestibule', bin, ['serve', '--config', cfgPath], { env: vestibuleEnv() });
  await procs.waitForOutput(gw, `listening on http://127.0.0.1:${PORT}`);
}));

after(async () => {
  await browser?.close();
  await procs.stopAll();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- helpers

/** openid-client's configuration of `clientId`, found by discovery (its issuer check included). */
async function discover(clientId, auth) {
  return oidc.discovery(new URL(ISSUER), clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] });
}

const confidential = (id) => discover(id, oidc.ClientSecretBasic(SECRET));
const publicClient = (id) => discover(id, oidc.None());

/** GET `url` as the browser behind the front would: identity headers, no redirects followed. */
async function browse(url, { identity = ALICE, cookie } = {}) {
  const headers = { ...identity, Accept: 'text/html' };
  if (cookie) headers.Cookie = cookie;
  return fetch(url, { headers, redirect: 'manual' });
}

/** A fresh PKCE pair, state and nonce. */
async function pkce() {
  const verifier = oidc.randomPKCECodeVerifier();
  return {
    verifier,
    challenge: await oidc.calculatePKCECodeChallenge(verifier),
    state: oidc.randomState(),
    nonce: oidc.randomNonce(),
  };
}

/** An authorization request of `config` to `redirectUri`; the response to it. */
async function authorize(config, redirectUri, p, extra = {}, opts = {}) {
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email groups offline_access',
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
    state: p.state,
    nonce: p.nonce,
    ...extra,
  });
  return browse(url, opts);
}

/**
 * A native app's loopback listener on a random port (RFC 8252 §7.3): the
 * browser is sent to it; it hands over the URL it was called with.
 */
async function loopbackListener() {
  let resolve;
  const called = new Promise((r) => { resolve = r; });
  const server = http.createServer((req, res) => {
    res.end('You can close this window.');
    resolve(new URL(req.url, `http://127.0.0.1:${server.address().port}`));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { redirectUri: `http://127.0.0.1:${server.address().port}/cb`, called, close: () => server.close() };
}

/** Signs alice in to `config` through the code flow; the token response. */
async function signIn(config, { redirectUri = 'http://127.0.0.1:45678/cb' } = {}) {
  const p = await pkce();
  const r = await authorize(config, redirectUri, p);
  assert.equal(r.status, 302, await r.text());
  const location = new URL(r.headers.get('location'));
  const tokens = await oidc.authorizationCodeGrant(config, location, {
    pkceCodeVerifier: p.verifier, expectedState: p.state, expectedNonce: p.nonce, idTokenExpected: true,
  });
  return { tokens, location, p, redirectUri };
}

const JWKS = jose.createRemoteJWKSet(new URL(`${ISSUER}/.vestibule/jwks.json`));

/** at_hash of an access token for RS256/ES256 (OIDC Core §3.1.3.6). */
function atHash(token) {
  const d = crypto.createHash('sha256').update(token).digest();
  return jose.base64url.encode(d.subarray(0, d.length / 2));
}

async function expectOAuthError(promise, error) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.error ?? e.cause?.error, error, `${e.name}: ${e.message} ${JSON.stringify(e.cause ?? {})}`);
    return true;
  });
}

// ---------------------------------------------------------------- tests

test('discovery: openid-client accepts the metadata (issuer check) and it lists every endpoint', async () => {
  const config = await confidential('web');
  const m = config.serverMetadata();
  assert.equal(m.issuer, ISSUER);
  for (const [k, p] of [
    ['authorization_endpoint', 'authorize'], ['token_endpoint', 'token'], ['userinfo_endpoint', 'userinfo'],
    ['revocation_endpoint', 'revoke'], ['introspection_endpoint', 'introspect'],
  ]) assert.equal(m[k], `${ISSUER}/.vestibule/oidc/${p}`, k);
  assert.deepEqual(m.code_challenge_methods_supported, ['S256']);
  assert.equal(m.id_token_signing_alg_values_supported[0], 'RS256');
  // Not from Host: another Host gets the app, not the metadata.
  // (fetch cannot set Host; node:http can.)
  const otherType = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: PORT, path: '/.well-known/openid-configuration', headers: { Host: 'evil.test' } }, (res) => {
      res.resume();
      resolve(res.headers['content-type']);
    }).on('error', reject);
  });
  assert.notEqual(otherType, 'application/json');
});

test('code + PKCE to a random-port loopback listener, an ID token verified with jose, userinfo', async () => {
  const config = await publicClient('native');
  const listener = await loopbackListener();
  try {
    const p = await pkce();
    const r = await authorize(config, listener.redirectUri, p);
    assert.equal(r.status, 302, await r.text());
    // The browser follows the redirect to the app's listener.
    const cb = new URL(r.headers.get('location'));
    assert.equal(cb.origin + cb.pathname, listener.redirectUri);
    assert.equal(cb.searchParams.get('iss'), ISSUER, 'RFC 9207 iss');
    await fetch(cb);
    const called = await listener.called;
    const tokens = await oidc.authorizationCodeGrant(config, called, {
      pkceCodeVerifier: p.verifier, expectedState: p.state, expectedNonce: p.nonce, idTokenExpected: true,
    });
    const claims = tokens.claims();
    assert.equal(claims.iss, ISSUER);
    assert.equal(claims.aud, 'native');
    assert.equal(claims.preferred_username, 'alice');
    assert.equal(claims.email, 'alice@example.test');
    assert.deepEqual(claims.groups, ['staff']);
    // jose, independently: typ, alg, iss, aud, at_hash.
    const { payload, protectedHeader } = await jose.jwtVerify(tokens.id_token, JWKS, {
      issuer: ISSUER, audience: 'native', typ: 'JWT', algorithms: ['RS256'],
    });
    assert.ok(protectedHeader.kid);
    assert.equal(payload.at_hash, atHash(tokens.access_token));
    assert.equal(payload.nonce, p.nonce);
    const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.preferred_username, 'alice');
    assert.deepEqual(info.groups, ['staff']);
  } finally {
    listener.close();
  }
});

test('code + PKCE with a private-use scheme redirect, read from Location without following it', async () => {
  const config = await publicClient('native');
  const p = await pkce();
  const r = await authorize(config, PRIVATE_USE, p);
  assert.equal(r.status, 302, await r.text());
  const location = r.headers.get('location');
  assert.ok(location.startsWith(`${PRIVATE_USE}?`), location);
  const tokens = await oidc.authorizationCodeGrant(config, new URL(location), {
    pkceCodeVerifier: p.verifier, expectedState: p.state, expectedNonce: p.nonce, idTokenExpected: true,
  });
  assert.equal(tokens.claims().aud, 'native');
});

test('refresh rotation: a retry inside the grace window gets the same tokens; reuse after it revokes the family', async () => {
  const config = await confidential('web');
  const { tokens } = await signIn(config);
  const r0 = tokens.refresh_token;
  assert.ok(r0);
  const t1 = await oidc.refreshTokenGrant(config, r0);
  assert.notEqual(t1.refresh_token, r0);
  // A lost response: the retry with r0 gets the very same successors.
  const t1b = await oidc.refreshTokenGrant(config, r0);
  assert.equal(t1b.refresh_token, t1.refresh_token);
  assert.equal(t1b.access_token, t1.access_token);
  const t2 = await oidc.refreshTokenGrant(config, t1.refresh_token);
  // After the window, r0 again is a reuse: the family dies (t2 too).
  await sleep((GRACE_S + 0.5) * 1000);
  await expectOAuthError(oidc.refreshTokenGrant(config, r0), 'invalid_grant');
  await expectOAuthError(oidc.refreshTokenGrant(config, t2.refresh_token), 'invalid_grant');
  const i = await oidc.tokenIntrospection(config, t2.access_token);
  assert.deepEqual(i, { active: false });
});

test('a replayed code is refused and revokes what it issued', async () => {
  const config = await confidential('web');
  const { tokens, location, p } = await signIn(config);
  await expectOAuthError(oidc.authorizationCodeGrant(config, location, {
    pkceCodeVerifier: p.verifier, expectedState: p.state,
  }), 'invalid_grant');
  assert.equal((await oidc.tokenIntrospection(config, tokens.access_token)).active, false);
  await expectOAuthError(oidc.refreshTokenGrant(config, tokens.refresh_token), 'invalid_grant');
});

test('revocation: a refresh token takes its family and access tokens; unknown tokens are 200', async () => {
  const config = await confidential('web');
  const { tokens } = await signIn(config);
  assert.equal((await oidc.tokenIntrospection(config, tokens.access_token)).active, true);
  await oidc.tokenRevocation(config, tokens.refresh_token, { token_type_hint: 'refresh_token' });
  await expectOAuthError(oidc.refreshTokenGrant(config, tokens.refresh_token), 'invalid_grant');
  assert.deepEqual(await oidc.tokenIntrospection(config, tokens.access_token), { active: false });
  await oidc.tokenRevocation(config, 'vat_never-issued');
  // An access token alone.
  const again = await signIn(config);
  await oidc.tokenRevocation(config, again.tokens.access_token, { token_type_hint: 'access_token' });
  await assert.rejects(oidc.fetchUserInfo(config, again.tokens.access_token, oidc.skipSubjectCheck));
  const t = await oidc.refreshTokenGrant(config, again.tokens.refresh_token);
  assert.ok(t.access_token);
});

test('introspection: active fields for the own client, inactive for another, 401 without client auth', async () => {
  const config = await confidential('web');
  const { tokens } = await signIn(config);
  const i = await oidc.tokenIntrospection(config, tokens.access_token);
  assert.equal(i.active, true);
  assert.equal(i.client_id, 'web');
  assert.equal(i.username, 'alice');
  assert.equal(i.token_type, 'Bearer');
  assert.equal(i.iss, ISSUER);
  assert.equal(i.sub, tokens.claims().sub);
  assert.ok(i.exp > i.iat);
  assert.match(i.scope, /openid/);
  const other = await confidential('jwtapp');
  assert.deepEqual(await oidc.tokenIntrospection(other, tokens.access_token), { active: false });
  const bare = await fetch(`${ISSUER}/.vestibule/oidc/introspect`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: tokens.access_token }),
  });
  assert.equal(bare.status, 401);
  assert.equal((await bare.json()).error, 'invalid_client');
  const asPublic = await publicClient('native');
  await assert.rejects(oidc.tokenIntrospection(asPublic, tokens.access_token));
});

test('JWT access tokens verified with jose (typ at+jwt, iss, aud, client_id)', async () => {
  const config = await confidential('jwtapp');
  const { tokens } = await signIn(config);
  const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, JWKS, {
    issuer: ISSUER, audience: ISSUER, typ: 'at+jwt',
  });
  assert.equal(protectedHeader.typ, 'at+jwt');
  assert.equal(payload.client_id, 'jwtapp');
  assert.equal(payload.sub, tokens.claims().sub);
  const id = await jose.jwtVerify(tokens.id_token, JWKS, { issuer: ISSUER, audience: 'jwtapp', typ: 'JWT' });
  assert.equal(id.payload.at_hash, atHash(tokens.access_token));
  const i = await oidc.tokenIntrospection(config, tokens.access_token);
  assert.equal(i.jti, payload.jti);
});

test('client_credentials: a token for the client itself, no ID token', async () => {
  const config = await confidential('svc');
  const t = await oidc.clientCredentialsGrant(config, { scope: 'api.read' });
  assert.equal(t.scope, 'api.read');
  assert.equal(t.id_token, undefined);
  assert.equal(t.refresh_token, undefined);
  const i = await oidc.tokenIntrospection(config, t.access_token);
  assert.equal(i.active, true);
  assert.equal(i.sub, 'svc');
});

test('explicit consent: the page names the client; the form is posted with its CSRF token', async () => {
  const config = await publicClient('photos');
  // A page session first (the consent form is checked against it).
  const account = await browse(`${ISSUER}/.vestibule/account`);
  assert.equal(account.status, 200);
  const cookie = account.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  assert.ok(cookie.includes('vestibule='), cookie);
  const p = await pkce();
  const r = await authorize(config, 'http://127.0.0.1:40000/cb', p, { scope: 'openid email' }, { cookie });
  assert.equal(r.status, 200);
  const page = await r.text();
  assert.match(page, /Allow Photos to sign you in\?/);
  const fields = new URLSearchParams();
  for (const m of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    fields.append(m[1], m[2].replaceAll('&#38;', '&').replaceAll('&amp;', '&').replaceAll('&#34;', '"').replaceAll('&#39;', "'"));
  }
  assert.ok(fields.get('csrf'));
  const post = (f) => fetch(`${ISSUER}/.vestibule/oidc/consent`, {
    method: 'POST',
    headers: { ...ALICE, Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded', Origin: ISSUER },
    body: f,
    redirect: 'manual',
  });
  const forged = new URLSearchParams(fields);
  forged.set('csrf', 'forged');
  forged.set('decision', 'allow');
  assert.equal((await post(forged)).status, 403);
  fields.set('decision', 'allow');
  const ok = await post(fields);
  assert.equal(ok.status, 303, await ok.text());
  const tokens = await oidc.authorizationCodeGrant(config, new URL(ok.headers.get('location')), {
    pkceCodeVerifier: p.verifier, expectedState: p.state, expectedNonce: p.nonce,
  });
  assert.equal(tokens.claims().email, 'alice@example.test');
});

test('refused: plain PKCE, a missing verifier, a redirect mismatch, a wrong secret, an expired code', async () => {
  const config = await publicClient('native');
  // plain: back to the app as invalid_request.
  const p = await pkce();
  const plain = await authorize(config, 'http://127.0.0.1:40001/cb', p, { code_challenge: p.verifier, code_challenge_method: 'plain' });
  assert.equal(plain.status, 302);
  assert.equal(new URL(plain.headers.get('location')).searchParams.get('error'), 'invalid_request');
  // A missing verifier.
  const r = await authorize(config, 'http://127.0.0.1:40001/cb', p);
  await expectOAuthError(oidc.authorizationCodeGrant(config, new URL(r.headers.get('location')), {
    expectedState: p.state,
  }), 'invalid_grant');
  // A redirect mismatch: a 400 page, no redirect.
  const mismatch = await authorize(config, 'https://evil.test/cb', p);
  assert.equal(mismatch.status, 400);
  assert.equal(mismatch.headers.get('location'), null);
  // A wrong client secret.
  const wrong = await discover('web', oidc.ClientSecretBasic('not-the-secret'));
  // 401 with a Basic challenge (RFC 6749 §5.2), which openid-client
  // surfaces as a WWW-Authenticate challenge error.
  await assert.rejects(oidc.clientCredentialsGrant(wrong), (e) => {
    assert.equal(e.status ?? e.response?.status ?? e.cause?.status, 401, `${e.name}: ${e.message}`);
    return true;
  });
  // An expired code.
  const late = await authorize(config, 'http://127.0.0.1:40001/cb', p);
  await sleep((CODE_LIFETIME_S + 0.5) * 1000);
  await expectOAuthError(oidc.authorizationCodeGrant(config, new URL(late.headers.get('location')), {
    pkceCodeVerifier: p.verifier, expectedState: p.state,
  }), 'invalid_grant');
});

test('refused: a client the user\'s groups do not allow, and a disabled user', async () => {
  const staff = await publicClient('staffonly');
  const p = await pkce();
  const r = await authorize(staff, 'http://127.0.0.1:40002/cb', p);
  assert.equal(r.status, 403);
  assert.equal(r.headers.get('location'), null);
  // bob signs in once, is disabled, and is refused.
  const BOB = { 'Remote-User': 'bob', 'Remote-Groups': 'staff' };
  const config = await publicClient('native');
  const ok = await authorize(config, 'http://127.0.0.1:40002/cb', p, {}, { identity: BOB });
  assert.equal(ok.status, 302);
  cli(['users', 'disable', 'bob']);
  await expectOAuthError(oidc.authorizationCodeGrant(config, new URL(ok.headers.get('location')), {
    pkceCodeVerifier: p.verifier, expectedState: p.state,
  }), 'invalid_grant');
  // The CLI wrote to the store; the gateway learns of it through its
  // change feed, so the page refusal is awaited (bounded), not timed.
  let refused;
  for (let i = 0; i < 50; i += 1) {
    refused = await authorize(config, 'http://127.0.0.1:40002/cb', p, {}, { identity: BOB });
    if (refused.status !== 302) break;
    await sleep(100);
  }
  assert.equal(refused.status, 403, `${refused.headers.get('location')} ${await refused.text()}`);
});

// ------------------------------------------------- device grant (RFC 8628)

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** A Chromium page for `identity` (the trusted front's headers on every request). */
async function browserPage(identity = ALICE) {
  browser ??= await launchChromium();
  const ctx = await browser.newContext({ extraHTTPHeaders: identity });
  return ctx.newPage();
}

/** One raw poll of the token endpoint for `device_code` (openid-client hides slow_down). */
async function pollOnce(deviceCode) {
  const r = await fetch(`${ISSUER}/.vestibule/oidc/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: 'tv' }),
  });
  return { status: r.status, ...(await r.json()) };
}

/**
 * On the device page: types `typed` (unless the box is already filled),
 * checks the confirmation names the client and the code, and answers.
 */
async function answerOnDevicePage(page, url, userCode, decision, typed) {
  await page.goto(url);
  if (typed !== undefined) await page.fill('#user_code', typed);
  else assert.equal(await page.inputValue('#user_code'), userCode, 'prefilled from verification_uri_complete');
  // Prefilled or typed, the person always confirms (§5.4).
  await page.click('#continue');
  assert.equal(await page.textContent('#device-client'), 'Living-room TV');
  assert.match(await page.textContent('h1'), /Allow Living-room TV on your device\?/);
  assert.equal(await page.textContent('#device-code'), userCode);
  assert.equal(await page.textContent('#device-user'), 'alice');
  await page.click(`#${decision}`);
  return page.textContent('#device-done');
}

test('device grant: approved in Chromium by typing the code in lowercase without its dash; tokens by polling', async () => {
  const config = await publicClient('tv');
  const m = config.serverMetadata();
  assert.equal(m.device_authorization_endpoint, `${ISSUER}/.vestibule/oidc/device_authorization`);
  const d = await oidc.initiateDeviceAuthorization(config, { scope: 'openid profile offline_access' });
  // §6.1: 8 letters of a base-20 alphabet, shown XXXX-XXXX.
  assert.match(d.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
  assert.equal(d.verification_uri, `${ISSUER}/.vestibule/device`);
  assert.equal(d.interval, 5);
  // The device polls (openid-client waits `interval` between polls) while
  // the person answers in the browser.
  const polling = oidc.pollDeviceAuthorizationGrant(config, d);
  polling.catch(() => {});
  const page = await browserPage();
  try {
    const done = await answerOnDevicePage(page, d.verification_uri, d.user_code, 'allow', d.user_code.replace('-', '').toLowerCase());
    assert.equal(done, 'Device signed in');
  } finally {
    await page.context().close();
  }
  const tokens = await polling;
  assert.ok(tokens.access_token);
  assert.ok(tokens.refresh_token, 'offline_access and the refresh_token grant');
  const { payload } = await jose.jwtVerify(tokens.id_token, JWKS, {
    issuer: ISSUER, audience: 'tv', typ: 'JWT', algorithms: ['RS256'],
  });
  assert.equal(payload.preferred_username, 'alice');
  assert.equal(payload.nonce, undefined, 'no nonce in the device grant');
  assert.ok(payload.sid && payload.auth_time);
  assert.equal(payload.at_hash, atHash(tokens.access_token));
  const info = await oidc.fetchUserInfo(config, tokens.access_token, payload.sub);
  assert.equal(info.preferred_username, 'alice');
  // A device code is redeemed once.
  const again = await pollOnce(d.device_code);
  assert.equal(again.error, 'invalid_grant');
});

test('device grant: polling sooner than the interval gets slow_down, and the interval grows by 5 s', async () => {
  const config = await publicClient('tv');
  const d = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
  assert.equal(d.interval, 5);
  const first = await pollOnce(d.device_code);
  assert.deepEqual([first.status, first.error], [400, 'authorization_pending']);
  // At once again: too soon (§3.5), and the interval is now 10 s.
  const second = await pollOnce(d.device_code);
  assert.deepEqual([second.status, second.error], [400, 'slow_down']);
  assert.match(second.error_description, /every 10 s/);
  // A poll one second past the announced 5 s would be on time under the
  // old interval; under the grown one it is still too soon.
  await sleep((d.interval + 1) * 1000);
  const third = await pollOnce(d.device_code);
  assert.equal(third.error, 'slow_down', `${d.interval + 1} s after a slow_down: ${JSON.stringify(third)}`);
  assert.match(third.error_description, /every 15 s/);
});

test('device grant: a denial on the page (arriving from verification_uri_complete) is access_denied', async () => {
  const config = await publicClient('tv');
  const d = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
  assert.equal(d.verification_uri_complete, `${d.verification_uri}?user_code=${encodeURIComponent(d.user_code)}`);
  const page = await browserPage();
  try {
    assert.equal(await answerOnDevicePage(page, d.verification_uri_complete, d.user_code, 'deny'), 'Sign-in denied');
  } finally {
    await page.context().close();
  }
  await expectOAuthError(oidc.pollDeviceAuthorizationGrant(config, d), 'access_denied');
});
