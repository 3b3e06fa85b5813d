// vestibule's own OIDC login (`[source.oidc]`, issue 15) against npm
// `oidc-provider` as the upstream identity provider, with Debian's
// Chromium (playwright-core) as the browser.
//
// vestibule runs docs/deploy/oidc-login/vestibule.toml, the guide "with its
// own OIDC login" (issue 19), byte for byte except its placeholders: the
// provider's issuer, vestibule's public origin, the client-secret file and
// the data directory. Its ports are the file's own (1933x). The app is
// `vestibule whoami`, which shows the identity it was given.
//
// Covered: sign-in through the provider; the session ending after
// RP-initiated logout at vestibule, after a back-channel logout from the
// provider, and (with `recheck_every`) after the provider refuses the
// refresh token; logout tokens signed by the test (with the provider's own
// key, and forged ones) refused or accepted (Back-Channel Logout 1.0 §2.6,
// §2.8); logins refused (tampered `state` and `iss`, an issuer that does
// not match discovery).
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test oidc_login.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as jose from 'jose';

import { launchChromium } from './demo.mjs';
import { request } from './http.mjs';
import {
  Processes, assertPortFree, sleep, vestibuleBin, vestibuleEnv,
} from './processes.mjs';
import {
  BACKCHANNEL_EVENT, confirmLogoutAtIdp, signInAtIdp, startUpstreamIdp,
} from './upstream_idp.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GUIDE = path.join(HERE, '..', '..', 'docs', 'deploy', 'oidc-login', 'vestibule.toml');

// The guide's own ports, and the test's provider beside them.
const GATE_PORT = 19331;
const APP_PORT = 19332;
const IDP_PORT = 19333;
const ADMIN_PORT = 19334;
// A second vestibule, configured with an issuer its provider's discovery
// does not name.
const MISMATCH_PORT = 19335;
const GATE = `http://127.0.0.1:${GATE_PORT}`;
const MISMATCH = `http://127.0.0.1:${MISMATCH_PORT}`;
const CALLBACK = `${GATE}/.vestibule/oidc/callback`;
const LOGIN = `${GATE}/.vestibule/oidc/login`;
const BACKCHANNEL = `${GATE}/.vestibule/oidc/backchannel-logout`;
const CLIENT_ID = 'vestibule';
// 256 random bits, as the guide asks.
const SECRET = crypto.randomBytes(32).toString('base64url');
// How long a session may take to end once the store says so (the session
// cache hears it on the change feed).
const END_DEADLINE_MS = 5000;
// `recheck_every` here: every session is re-checked at the provider each
// second, so every test also shows that accepted re-checks keep sessions.
const RECHECK_EVERY = '1s';
// How long to watch re-checks pass before disabling a user, and how long a
// refused one may take to end the session (a few re-check periods).
const RECHECK_SETTLE_MS = 2500;
const RECHECK_DEADLINE_MS = 10000;

const USERS = {
  alice: { email: 'alice@example.test', name: 'Alice Example', groups: ['staff', 'admins'] },
  bob: { email: 'bob@example.test', name: 'Bob Example', groups: ['staff'] },
  carol: { email: 'carol@example.test', name: 'Carol Example', groups: ['staff'] },
  frank: { email: 'frank@example.test', name: 'Frank Example', groups: ['staff'] },
  dave: { email: 'dave@example.test', name: 'Dave Example', groups: ['staff'] },
  erin: { email: 'erin@example.test', name: 'Erin Example', groups: ['staff'] },
};

const procs = new Processes();
let dir;
let cfgPath;
let idp;
let browser;

// ---------------------------------------------------------------- helpers

/**
 * The guide's vestibule.toml with its placeholders filled in (each must be
 * there: a guide that lost one would no longer be what the test runs).
 */
function guideConfig(fill) {
  let text = fs.readFileSync(GUIDE, 'utf8');
  for (const [from, to] of fill) {
    assert.ok(text.includes(from), `docs/deploy/oidc-login/vestibule.toml no longer has \`${from}\``);
    text = text.replaceAll(from, to);
  }
  return text;
}

function cli(args, cfg = cfgPath) {
  const r = spawnSync(vestibuleBin(), [...args, '--config', cfg], { env: vestibuleEnv(), encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `vestibule ${args.join(' ')}: ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The audit log's entries of `action` about `sub` at the provider (`issuer:sub`). */
function audit(action, sub) {
  return cli(['audit', '--action', action, '--json', '--limit', '1000']).trim().split('\n').filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((e) => e.subject === `${idp.issuer}:${sub}`);
}

async function startGateway(name, cfg, port) {
  cli(['migrate'], cfg);
  const gw = procs.start(name, vestibuleBin(), ['serve', '--config', cfg], { env: vestibuleEnv() });
  await procs.waitForOutput(gw, `listening on http://127.0.0.1:${port}`);
  return gw;
}

/** What the app (whoami) was given for `url` in browser context `ctx`: its identity headers, lower-cased. */
async function appSaw(ctx, url = `${GATE}/hello`) {
  const r = await ctx.request.get(url, { maxRedirects: 0, headers: { Accept: 'application/json' } });
  assert.equal(r.status(), 200, `${url}: ${r.status()} ${await r.text()}`);
  const seen = await r.json();
  return new Map(seen.identity.map(([k, v]) => [k.toLowerCase(), v]));
}

/**
 * What vestibule answers `ctx` for an app route, redirects not followed:
 * 200 (the app) or a redirect to the OIDC login.
 */
async function gateAnswers(ctx, url = `${GATE}/hello`) {
  const r = await ctx.request.get(url, { maxRedirects: 0, headers: { Accept: 'text/html' } });
  return { status: r.status(), location: r.headers().location ?? '' };
}

const toLogin = (a) => [302, 303].includes(a.status) && a.location.startsWith(`${LOGIN}?`);

/** Waits (bounded) until the app route sends `ctx` to the login again. */
async function waitSignedOut(ctx, what, deadline = END_DEADLINE_MS) {
  const end = Date.now() + deadline;
  let last;
  for (;;) {
    last = await gateAnswers(ctx);
    if (toLogin(last)) return;
    if (Date.now() > end) break;
    await sleep(50);
  }
  assert.fail(`${what}: vestibule still answers ${last.status} ${last.location} ${deadline} ms later`);
}

/**
 * A fresh browser opens an app route, is sent through vestibule's login to
 * the provider, signs `user` in there and lands back on the route.
 */
async function signIn(user, url = `${GATE}/hello`) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const visited = [];
  page.on('request', (r) => { if (r.isNavigationRequest()) visited.push(new URL(r.url())); });
  await page.goto(url);
  await signInAtIdp(page, idp.issuer, user);
  await page.waitForURL(url);
  return { ctx, page, visited };
}

/** The session cookie vestibule set in `ctx` (plain HTTP: `vestibule`). */
async function sessionCookie(ctx) {
  return (await ctx.cookies(GATE)).find((c) => c.name === 'vestibule');
}

/**
 * A logout token (`typ` logout+jwt) signed RS256 with `key`, under the
 * provider's key id: with the provider's own key by default.
 */
async function logoutToken(claims, { key = idp.key } = {}) {
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: idp.kid, typ: 'logout+jwt' }).sign(key);
}

/** Logout-token claims for `sub`'s provider session `sid`, as the provider would make them. */
function logoutClaims(sub, sid, overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: idp.issuer,
    aud: CLIENT_ID,
    iat: now,
    exp: now + 120,
    jti: crypto.randomUUID(),
    events: { [BACKCHANNEL_EVENT]: {} },
    sid,
    sub,
    ...overrides,
  };
}

const postLogout = (token) => request(BACKCHANNEL, {
  method: 'POST', body: new URLSearchParams({ logout_token: token }).toString(),
});

// ---------------------------------------------------------------- set-up

before(() => procs.track(async () => {
  vestibuleBin();
  for (const port of [GATE_PORT, APP_PORT, IDP_PORT, ADMIN_PORT, MISMATCH_PORT]) await assertPortFree(port);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-oidc-login-'));
  const secretFile = path.join(dir, 'oidc-client-secret');
  fs.writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  // As the guide makes it: `openssl rand -base64 32`.
  const kekFile = path.join(dir, 'kek');
  fs.writeFileSync(kekFile, `${crypto.randomBytes(32).toString('base64')}\n`, { mode: 0o600 });

  idp = await startUpstreamIdp({
    port: IDP_PORT,
    users: USERS,
    clients: [{
      client_id: CLIENT_ID,
      client_secret: SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [CALLBACK],
      post_logout_redirect_uris: [`${GATE}/`],
      backchannel_logout_uri: BACKCHANNEL,
      backchannel_logout_session_required: true,
    }],
  });

  const fill = (gate, issuer, data) => [
    ['https://gate.example.com', gate],
    ['https://sso.example.com', issuer],
    ['/etc/vestibule/oidc-client-secret', secretFile],
    ['/etc/vestibule/kek', kekFile],
    ['/var/lib/vestibule', data],
    ['recheck_every = "5m"', `recheck_every = "${RECHECK_EVERY}"`],
  ];
  cfgPath = path.join(dir, 'vestibule.toml');
  fs.writeFileSync(cfgPath, guideConfig(fill(GATE, idp.issuer, path.join(dir, 'data'))));
  // The second gateway: the same guide, but `localhost` for the issuer
  // (loopback, so allowed) while the provider calls itself 127.0.0.1.
  const mismatchCfg = path.join(dir, 'mismatch.toml');
  fs.writeFileSync(mismatchCfg, guideConfig([
    ...fill(MISMATCH, `http://localhost:${IDP_PORT}`, path.join(dir, 'mismatch-data')),
    [`127.0.0.1:${GATE_PORT}`, `127.0.0.1:${MISMATCH_PORT}`],
    [`admin_listen = "127.0.0.1:${ADMIN_PORT}"`, 'admin_listen = ""'],
  ]));

  const whoami = procs.start('whoami', vestibuleBin(), ['whoami', '--listen', `127.0.0.1:${APP_PORT}`], { env: vestibuleEnv() });
  await procs.waitForOutput(whoami, `whoami: listening on http://127.0.0.1:${APP_PORT}`);
  await startGateway('vestibule', cfgPath, GATE_PORT);
  await startGateway('vestibule (issuer mismatch)', mismatchCfg, MISMATCH_PORT);
  browser = await launchChromium();
}));

after(async () => {
  await browser?.close();
  await idp?.close();
  await procs.stopAll({ report: procs.failed || Boolean(process.env.KEEP_E2E_DIR) });
  if (dir && !process.env.KEEP_E2E_DIR) fs.rmSync(dir, { recursive: true, force: true });
});

/** Wraps a test body so that a failure prints the peers' output in after(). */
const t = (name, fn) => test(name, () => procs.track(fn));

// ---------------------------------------------------------------- tests

t('the guide shows its vestibule.toml verbatim, and that file passes `vestibule check`', () => {
  const doc = fs.readFileSync(path.join(path.dirname(GUIDE), '..', 'oidc-login.md'), 'utf8');
  assert.ok(doc.includes(`\`\`\`toml\n${fs.readFileSync(GUIDE, 'utf8')}\`\`\`\n`), 'docs/deploy/oidc-login.md does not show docs/deploy/oidc-login/vestibule.toml byte for byte');
  cli(['check']);
});

t('Chromium signs in through oidc-provider; the app gets the provider\'s identity', async () => {
  const { ctx, visited } = await signIn('alice');
  try {
    // App route → vestibule's login → the provider's authorize endpoint,
    // with PKCE S256, state and nonce → back to the callback.
    const auth = visited.find((u) => u.origin === idp.issuer && u.pathname === '/auth');
    assert.ok(auth, visited.map((u) => u.href).join('\n'));
    const q = auth.searchParams;
    assert.equal(q.get('client_id'), CLIENT_ID);
    assert.equal(q.get('redirect_uri'), CALLBACK);
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(q.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
    assert.ok(q.get('state') && q.get('nonce'));
    assert.deepEqual(q.get('scope').split(' '), ['openid', 'profile', 'email']);
    const cb = visited.find((u) => u.href.startsWith(`${CALLBACK}?`));
    assert.ok(cb?.searchParams.get('code'));
    assert.equal(cb.searchParams.get('iss'), idp.issuer, 'the provider sends iss (RFC 9207)');

    const saw = await appSaw(ctx);
    assert.equal(saw.get('remote-user'), 'alice', JSON.stringify([...saw]));
    assert.equal(saw.get('remote-email'), 'alice@example.test');
    assert.equal(saw.get('remote-name'), 'Alice Example');
    assert.deepEqual(saw.get('remote-groups').split(',').sort(), ['admins', 'staff']);
    // The guide's admin route: group `admins` only.
    assert.equal((await gateAnswers(ctx, `${GATE}/admin/x`)).status, 200);
    const cookie = await sessionCookie(ctx);
    assert.ok(cookie?.httpOnly, 'an HttpOnly session cookie');
  } finally {
    await ctx.close();
  }
  const bob = await signIn('bob');
  try {
    assert.equal((await gateAnswers(bob.ctx, `${GATE}/admin/x`)).status, 403, 'bob is not in admins');
    assert.equal((await appSaw(bob.ctx)).get('remote-user'), 'bob');
  } finally {
    await bob.ctx.close();
  }
});

t('(a) RP-initiated logout at vestibule: the provider\'s end_session with id_token_hint, back, and the app asks for login again', async () => {
  const { ctx, page } = await signIn('alice');
  try {
    const idToken = idp.idTokens.get('alice');
    assert.equal((await gateAnswers(ctx)).status, 200);
    const seen = [];
    page.on('request', (r) => { if (r.isNavigationRequest()) seen.push(new URL(r.url())); });
    await page.goto(`${GATE}/.vestibule/logout`);
    await page.waitForURL((u) => u.href.startsWith(`${idp.issuer}/session/end`));
    const end = seen.find((u) => u.origin === idp.issuer && u.pathname === '/session/end');
    assert.ok(end, seen.map((u) => u.href).join('\n'));
    const hint = end.searchParams.get('id_token_hint');
    assert.equal(jose.decodeJwt(hint).sid, idToken.sid, 'the hint is the ID token of this session');
    assert.equal(end.searchParams.get('client_id'), CLIENT_ID);
    assert.equal(end.searchParams.get('post_logout_redirect_uri'), `${GATE}/`);
    // Ended at vestibule before the provider was even asked.
    assert.ok(toLogin(await gateAnswers(ctx)), 'the session ended at vestibule');
    await confirmLogoutAtIdp(page);
    // Back at the registered address, an app route: with no session there
    // and none at the provider, the browser is at the provider's login form.
    await page.waitForURL((u) => u.href.startsWith(`${idp.issuer}/interaction/`));
    assert.ok(seen.some((u) => u.href === `${GATE}/`), seen.map((u) => u.href).join('\n'));
    assert.ok(toLogin(await gateAnswers(ctx)));
  } finally {
    await ctx.close();
  }
});

t('(b) back-channel logout from the provider ends the session', async () => {
  const { ctx, page } = await signIn('carol');
  try {
    assert.equal((await appSaw(ctx)).get('remote-user'), 'carol');
    const { sid } = idp.idTokens.get('carol');
    const before = idp.backchannel.length;
    // The user signs out at the provider itself.
    await page.goto(`${idp.issuer}/session/end`);
    await confirmLogoutAtIdp(page);
    const sent = idp.backchannel.slice(before).map(({ at, ...rest }) => rest);
    assert.deepEqual(sent, [{ ok: true, clientId: CLIENT_ID, sub: 'carol', sid }], 'the provider delivered its logout token, answered 200');
    await waitSignedOut(ctx, 'after the provider\'s back-channel logout');
    // Ended by the logout token, not by a re-check (which the provider,
    // having revoked the grant, would now refuse too).
    const ends = audit('session-end', 'carol');
    assert.ok(ends.some((e) => e.detail === 'back-channel logout, 1 session(s)'), JSON.stringify(ends));
    const rechecks = audit('oidc-recheck', 'carol');
    assert.ok(!rechecks.some((e) => e.detail.startsWith('session ended')), JSON.stringify(rechecks));
  } finally {
    await ctx.close();
  }
});

t('refused logout tokens: 400 with a JSON error and the session alive; a good one: 200, no-store, the session gone', async () => {
  const { ctx } = await signIn('dave');
  try {
    const { sid } = idp.idTokens.get('dave');
    const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const now = Math.floor(Date.now() / 1000);
    // A jti used once (by a token naming no session), then again.
    const usedJti = crypto.randomUUID();
    const first = await postLogout(await logoutToken(logoutClaims('dave', 'no-such-sid', { jti: usedJti })));
    assert.equal(first.status, 200, first.body);
    const withoutEvents = logoutClaims('dave', sid);
    delete withoutEvents.events;
    const refused = {
      'bad signature (another key, the provider\'s kid)': await logoutToken(logoutClaims('dave', sid), { key: otherKey }),
      'wrong aud': await logoutToken(logoutClaims('dave', sid, { aud: 'someone-else' })),
      'replayed jti': await logoutToken(logoutClaims('dave', sid, { jti: usedJti })),
      'with nonce': await logoutToken(logoutClaims('dave', sid, { nonce: 'n-0S6_WzA2Mj' })),
      'missing events': await logoutToken(withoutEvents),
      'expired iat': await logoutToken(logoutClaims('dave', sid, { iat: now - 600, exp: now + 60 })),
    };
    for (const [what, token] of Object.entries(refused)) {
      const r = await postLogout(token);
      assert.equal(r.status, 400, `${what}: ${r.status} ${r.body}`);
      assert.match(r.headers['content-type'], /^application\/json/, what);
      assert.equal(JSON.parse(r.body).error, 'invalid_request', what);
      assert.equal(r.headers['cache-control'], 'no-store', what);
      assert.equal((await gateAnswers(ctx)).status, 200, `${what}: the session survived`);
    }
    const good = await postLogout(await logoutToken(logoutClaims('dave', sid)));
    assert.equal(good.status, 200, good.body);
    assert.equal(good.headers['cache-control'], 'no-store');
    await waitSignedOut(ctx, 'after a good logout token');
  } finally {
    await ctx.close();
  }
});

/**
 * Starts a login in a fresh browser and signs erin in at the provider's
 * form, following the provider's redirects one by one (with the browser's
 * cookies) up to the one that would take the browser to the callback; then
 * opens the callback with its query rewritten by `tamper` (the login cookie
 * is the browser's own). Playwright's routing sees no redirect hops, hence
 * the walk. The callback's answer.
 */
async function tamperedCallback(tamper) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${GATE}/hello`);
  await page.waitForURL((u) => u.href.startsWith(`${idp.issuer}/interaction/`));
  const action = new URL(await page.getAttribute('form', 'action'), page.url());
  let r = await ctx.request.post(action.href, { form: { login: 'erin' }, maxRedirects: 0 });
  for (let hops = 0; hops < 10; hops += 1) {
    assert.ok([302, 303].includes(r.status()), `the provider answered ${r.status()} ${await r.text()}`);
    const next = new URL(r.headers().location, idp.issuer);
    if (next.href.startsWith(`${CALLBACK}?`)) {
      tamper(next.searchParams);
      return { ctx, page, answer: await page.goto(next.href) };
    }
    r = await ctx.request.get(next.href, { maxRedirects: 0 });
  }
  assert.fail('the provider never sent the browser to the callback');
}

for (const [what, tamper] of [
  ['a tampered state', (q) => q.set('state', 'forged')],
  ['another iss (RFC 9207)', (q) => q.set('iss', 'http://127.0.0.1:1')],
]) {
  t(`login refused: ${what} at the callback ⇒ an error page, no session`, async () => {
    const { ctx, page, answer } = await tamperedCallback(tamper);
    try {
      assert.equal(answer.status(), 400);
      assert.match(await page.textContent('body'), /Sign-in not accepted/);
      assert.equal(await sessionCookie(ctx), undefined, 'no session cookie');
      assert.ok(toLogin(await gateAnswers(ctx)), 'the app route still asks for login');
    } finally {
      await ctx.close();
    }
  });
}

t('login refused: a provider whose discovery names another issuer ⇒ an error page, no session', async () => {
  const ctx = await browser.newContext();
  try {
    const page = await ctx.newPage();
    const res = await page.goto(`${MISMATCH}/hello`);
    assert.equal(new URL(page.url()).pathname, '/.vestibule/oidc/login');
    assert.equal(res.status(), 502);
    assert.match(await page.textContent('body'), /Sign-in unavailable/);
    assert.deepEqual(await ctx.cookies(MISMATCH), [], 'no cookie at all: no login was started');
  } finally {
    await ctx.close();
  }
});

t('(c) the provider refusing the refresh token (user disabled there) ends the session at the next re-check', async () => {
  const { ctx } = await signIn('frank');
  try {
    // Re-checks every second pass while the provider still knows frank.
    await sleep(RECHECK_SETTLE_MS);
    assert.equal((await appSaw(ctx)).get('remote-user'), 'frank', 'the session survives re-checks the provider accepts');
    const refreshes = () => idp.grants.filter((g) => g.type === 'refresh_token' && g.sub === 'frank');
    assert.ok(refreshes().some((g) => g.ok), `vestibule re-checked with frank's refresh token: ${JSON.stringify(idp.grants)}`);
    // Disabled at the provider: its account lookup fails, so it refuses
    // the refresh token (invalid_grant).
    idp.disabled.add('frank');
    await waitSignedOut(ctx, 'after the provider refused the refresh token', RECHECK_DEADLINE_MS);
    assert.ok(refreshes().some((g) => !g.ok && g.error === 'invalid_grant'), JSON.stringify(refreshes()));
    const rechecks = audit('oidc-recheck', 'frank');
    assert.ok(rechecks.some((e) => e.detail.startsWith('session ended')), JSON.stringify(rechecks));
    assert.deepEqual(audit('session-end', 'frank'), [], 'no back-channel logout was involved');
  } finally {
    await ctx.close();
  }
});
