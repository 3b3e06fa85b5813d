// Debian's Apache 2.4 with mod_auth_openidc as a real relying party of
// vestibule's OpenID Connect provider (issue 14), driven by Debian's
// Chromium (playwright-core).
//
// The client registration and the mod_auth_openidc settings are the two
// blocks of the "Apache mod_auth_openidc" recipe in docs/oidc-provider.md,
// byte for byte except the addresses (`ISSUER`, `https://H`) and, in the
// registration, the placeholder `secret_sha256 = "…"` (the hash of the
// secret Apache is given through its environment, as the recipe says).
// What is around them here (ServerRoot, modules, the CGI app) is the test's
// own server.
//
// The user comes from a trusted front: vestibule believes authelia's
// Remote-* headers from 127.0.0.1, which the browser context sends with
// every request (as an SSO front in front of vestibule would add them).
// The app is a CGI script that prints what mod_auth_openidc passed it.
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test oidc_provider_apache.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  PROVIDER_DOC as DOC, apacheErrorLog, appSaw, recipeBlock, startApache,
} from './apache_rp.mjs';
import { launchChromium } from './demo.mjs';
import { request } from './http.mjs';
import {
  Processes, assertPortFree, sleep, trustedFrontConfig, vestibuleBin, vestibuleEnv,
} from './processes.mjs';

const VESTIBULE_PORT = 18861;
const APACHE_PORT = 18862;
const ISSUER = `http://127.0.0.1:${VESTIBULE_PORT}`;
const APACHE = `http://127.0.0.1:${APACHE_PORT}`;
const APP_URL = `${APACHE}/app/claims`;
const AUTHORIZE = `${ISSUER}/.vestibule/oidc/authorize`;
// 256 random bits each, as the recipe asks; the secret's SHA-256 is what
// vestibule keeps.
const SECRET = crypto.randomBytes(32).toString('base64url');
const PASSPHRASE = crypto.randomBytes(32).toString('base64url');
// How long ending a vestibule session may take to end Apache's: the logout
// token is sent from an outbox, not in the request that ends the session.
const BACKCHANNEL_DEADLINE_MS = 15000;

const identity = (user, groups, name) => ({
  'Remote-User': user,
  'Remote-Email': `${user}@example.test`,
  'Remote-Name': name,
  'Remote-Groups': groups,
});
const ALICE = identity('alice', 'staff,admins', 'Alice Example');
const BOB = identity('bob', 'guests', 'Bob Example');

const procs = new Processes();
let dir;
let cfgPath;
let browser;
let backchannelClaimed;

// ---------------------------------------------------------------- helpers

/** The recipe's addresses replaced by the test's loopback ones. */
const localise = (block) => block.replaceAll('https://H', APACHE).replaceAll('ISSUER', ISSUER);

function gatewayConfig(registration) {
  return `${trustedFrontConfig(VESTIBULE_PORT, path.join(dir, 'data'))}
[oidc_provider]
issuer = "${ISSUER}"

${registration}
[[route]]
name = "app"
path_prefix = "/"
upstream = "http://127.0.0.1:9"
`;
}

function cli(args) {
  const r = spawnSync(vestibuleBin(), [...args, '--config', cfgPath], { env: vestibuleEnv(), encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `vestibule ${args.join(' ')}: ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The account id of `username`: vestibule's `sub` for it. */
function accountId(username) {
  const rows = JSON.parse(cli(['users', 'list', '--json']));
  const list = Array.isArray(rows) ? rows : rows.accounts;
  const row = list.find((a) => a.username === username);
  assert.ok(row, `no account ${username}: ${JSON.stringify(rows)}`);
  return String(row.id);
}

/**
 * A browser for `who` opening the Apache-protected URL; the requests it
 * made are kept (to see the authorize request and whether Apache got a code).
 */
async function visit(who) {
  const ctx = await browser.newContext({ extraHTTPHeaders: who });
  const page = await ctx.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(new URL(r.url())));
  const res = await page.goto(APP_URL);
  return { ctx, page, res, requests };
}

/** Signs `who` in to Apache through vestibule; the browser context and what the app saw. */
async function signIn(who) {
  const v = await visit(who);
  assert.equal(v.page.url(), APP_URL, `did not land on the app:\n${v.requests.map((u) => u.href).join('\n')}`);
  assert.equal(v.res.status(), 200, await v.res.text());
  return { ...v, saw: appSaw(await v.res.text()) };
}

/**
 * What Apache answers the browser `ctx` for the app now, redirects not
 * followed: 200 (the app) or 302 to vestibule's authorize endpoint.
 */
async function apacheAnswers(ctx) {
  const r = await ctx.request.get(APP_URL, { maxRedirects: 0, headers: { Accept: 'text/html' } });
  return { status: r.status(), location: r.headers().location ?? '' };
}

/**
 * Waits (bounded) until Apache no longer serves `ctx` the app but sends
 * it to vestibule's authorize endpoint.
 */
async function waitSignedOutOfApache(ctx, what) {
  const end = Date.now() + BACKCHANNEL_DEADLINE_MS;
  let last;
  for (;;) {
    last = await apacheAnswers(ctx);
    if (last.status === 302 && last.location.startsWith(`${AUTHORIZE}?`)) return;
    if (Date.now() > end) break;
    await sleep(200);
  }
  assert.fail(`${what}: Apache still answers ${last.status} ${last.location} ${BACKCHANNEL_DEADLINE_MS} ms later`);
}

// ---------------------------------------------------------------- set-up

before(() => procs.track(async () => {
  const bin = vestibuleBin();
  for (const port of [VESTIBULE_PORT, APACHE_PORT]) await assertPortFree(port);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-oidc-apache-'));
  // Apache's workers and the CGI run as www-data: they read below dir.
  fs.chmodSync(dir, 0o755);

  const registration = localise(recipeBlock(DOC, 'toml', 'client_id = "apache"'));
  assert.match(registration, /^secret_sha256 = "…"$/m);
  const secretSha256 = crypto.createHash('sha256').update(SECRET).digest('hex');
  cfgPath = path.join(dir, 'vestibule.toml');
  fs.writeFileSync(cfgPath, gatewayConfig(registration.replace('secret_sha256 = "…"', `secret_sha256 = "${secretSha256}"`)));
  cli(['migrate']);
  const gw = procs.start('vestibule', bin, ['serve', '--config', cfgPath], { env: vestibuleEnv() });
  await procs.waitForOutput(gw, `listening on ${ISSUER}`);

  // The recipe reads the secret and the cookie key from the environment.
  await startApache(procs, dir, APACHE_PORT, localise(recipeBlock(DOC, 'apache', 'OIDCClientID apache')), {
    OIDC_CLIENT_SECRET: SECRET, OIDC_CRYPTO_PASSPHRASE: PASSPHRASE,
  });
  const discovery = JSON.parse((await request(`${ISSUER}/.well-known/openid-configuration`)).body);
  backchannelClaimed = discovery.backchannel_logout_supported === true;
  browser = await launchChromium();
}));

after(async () => {
  const report = procs.failed || Boolean(process.env.KEEP_E2E_DIR);
  await browser?.close();
  await procs.stopAll({ report });
  if (report) console.error(`----- apache error.log -----\n${apacheErrorLog(dir)}`);
  if (dir && !process.env.KEEP_E2E_DIR) fs.rmSync(dir, { recursive: true, force: true });
});

/** Wraps a test body so that a failure prints the peers' logs in after(). */
const t = (name, opts, fn) => test(name, opts, (ctx) => procs.track(() => fn(ctx)));

// ---------------------------------------------------------------- tests

t('the recipe\'s registration passes `vestibule check` without a word about it', {}, () => {
  // Not --strict: the test's plain-HTTP listener draws a warning of its
  // own (session cookies without Secure), which is not the recipe's.
  const r = spawnSync(vestibuleBin(), ['check', '--config', cfgPath], { env: vestibuleEnv(), encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(`${r.stdout}${r.stderr}`, /oidc_provider/);
});

t('Chromium signs in to Apache through vestibule with PKCE; the app gets the claims', {}, async () => {
  const { ctx, saw, requests } = await signIn(ALICE);
  try {
    // The authorization request mod_auth_openidc sent the browser with.
    const auth = requests.filter((u) => u.origin + u.pathname === AUTHORIZE);
    assert.equal(auth.length, 1, requests.map((u) => u.href).join('\n'));
    const q = auth[0].searchParams;
    assert.equal(q.get('client_id'), 'apache');
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('redirect_uri'), `${APACHE}/redirect_uri`);
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(q.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(q.get('scope').split(' ').sort(), ['email', 'groups', 'openid', 'profile']);
    assert.ok(q.get('state') && q.get('nonce'));
    // Back at Apache with a code and iss (RFC 9207), no consent page
    // (consent = "implicit").
    const back = requests.filter((u) => u.origin + u.pathname === `${APACHE}/redirect_uri`);
    assert.equal(back.length, 1);
    assert.ok(back[0].searchParams.get('code'));
    assert.equal(back[0].searchParams.get('iss'), ISSUER);
    assert.equal(back[0].searchParams.get('state'), q.get('state'));

    // What mod_auth_openidc passed the app, from vestibule's ID token.
    assert.equal(saw.get('REMOTE_USER'), 'alice', 'OIDCRemoteUserClaim preferred_username');
    assert.equal(saw.get('OIDC_CLAIM_sub'), accountId('alice'));
    assert.equal(saw.get('OIDC_CLAIM_preferred_username'), 'alice');
    assert.equal(saw.get('OIDC_CLAIM_email'), 'alice@example.test');
    assert.equal(saw.get('OIDC_CLAIM_name'), 'Alice Example');
    assert.deepEqual(saw.get('OIDC_CLAIM_groups').split(',').sort(), ['admins', 'staff']);
    assert.equal(saw.get('OIDC_CLAIM_iss'), ISSUER);
    assert.equal(saw.get('OIDC_CLAIM_aud'), 'apache');
    assert.match(saw.get('OIDC_CLAIM_sid'), /^[A-Za-z0-9_-]{22}$/);

    // Signed in: the next request is the app at once.
    assert.equal((await apacheAnswers(ctx)).status, 200);
  } finally {
    await ctx.close();
  }
});

t('refused: a user outside the client\'s allowed_groups stops at vestibule, Apache gets no code', {}, async () => {
  const { ctx, page, res, requests } = await visit(BOB);
  try {
    assert.ok(page.url().startsWith(`${AUTHORIZE}?`), page.url());
    assert.equal(res.status(), 403);
    assert.match(await page.textContent('body'), /Intranet/);
    assert.ok(
      !requests.some((u) => u.origin === APACHE && u.pathname === '/redirect_uri'),
      `Apache got a response:\n${requests.map((u) => u.href).join('\n')}`,
    );
    assert.equal((await apacheAnswers(ctx)).status, 302, 'and Apache has no session for bob');
  } finally {
    await ctx.close();
  }
});

t('a forged logout token posted to Apache\'s back-channel endpoint ends nothing', {}, async () => {
  const { ctx, saw } = await signIn(ALICE);
  try {
    const unsigned = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const forged = `${unsigned({ alg: 'none', typ: 'logout+jwt' })}.${unsigned({
      iss: ISSUER, aud: 'apache', iat: now, exp: now + 60, jti: crypto.randomUUID(),
      events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
      sid: saw.get('OIDC_CLAIM_sid'), sub: saw.get('OIDC_CLAIM_sub'),
    })}.`;
    const r = await request(`${APACHE}/redirect_uri?logout=backchannel`, {
      method: 'POST', body: new URLSearchParams({ logout_token: forged }).toString(),
    });
    assert.equal(r.status, 400, r.body.slice(0, 300));
    // The 400 is mod_auth_openidc's back-channel handler refusing it: the
    // address the registration names reaches that handler.
    assert.match(fs.readFileSync(path.join(dir, 'error.log'), 'utf8'), /logout token is not signed/);
    assert.equal((await apacheAnswers(ctx)).status, 200, 'the session survived the forged token');
  } finally {
    await ctx.close();
  }
});

// Back-channel logout (OpenID Connect Back-Channel Logout 1.0). vestibule
// sends logout tokens once its outbox exists; until then discovery says
// `backchannel_logout_supported: false` and these three are reported as
// TODO (they run, their failure is shown, it does not fail the suite).
// Once discovery claims support they are ordinary tests. What they expect:
// when the vestibule session the Apache session came from ends, vestibule
// POSTs `logout_token` (application/x-www-form-urlencoded) to the client's
// backchannel_logout_uri, `${APACHE}/redirect_uri?logout=backchannel`: a
// JWS with typ logout+jwt, signed RS256 by a key of vestibule's JWK Set,
// with iss = the issuer, aud = "apache", iat, exp, jti, events
// {"http://schemas.openid.net/event/backchannel-logout": {}}, sid = the
// ID token's sid, sub = the ID token's sub, no nonce; mod_auth_openidc
// then drops the session with that sid, and within
// BACKCHANNEL_DEADLINE_MS Apache answers the same browser with a 302 to
// vestibule's authorize endpoint instead of the app.

/**
 * A back-channel logout test: TODO while discovery does not claim the
 * feature (decided when it runs, after before() has read discovery).
 */
const bcl = (name, fn) => test(name, (ctx) => {
  if (!backchannelClaimed) {
    ctx.todo('vestibule does not send back-channel logout tokens yet (discovery: backchannel_logout_supported false)');
  }
  // Tracked (its failure prints the peers' logs) only when it must pass.
  return backchannelClaimed ? procs.track(fn) : fn();
});

/** Signs `who` in to Apache, checks the control case, runs `end`, waits for Apache to let go. */
async function endsApacheSession(who, what, end) {
  const { ctx, page, saw } = await signIn(who);
  try {
    assert.match(saw.get('OIDC_CLAIM_sid'), /^[A-Za-z0-9_-]{22}$/, 'the ID token carried the sid the logout token names');
    assert.equal((await apacheAnswers(ctx)).status, 200, 'signed in before the vestibule session ends');
    await end(page);
    await waitSignedOutOfApache(ctx, what);
  } finally {
    await ctx.close();
  }
}

bcl('back-channel logout: signing out at vestibule\'s logout page ends the Apache session', () => endsApacheSession(
  ALICE, 'after /.vestibule/logout',
  async (page) => {
    const res = await page.goto(`${ISSUER}/.vestibule/logout`);
    assert.equal(res.status(), 200);
    assert.match(await page.textContent('body'), /signed out of vestibule/);
  },
));

bcl('back-channel logout: an admin\'s `vestibule sessions revoke` ends the Apache session', () => endsApacheSession(
  ALICE, 'after vestibule sessions revoke --user alice',
  async () => { cli(['sessions', 'revoke', '--user', 'alice']); },
));

bcl('back-channel logout: disabling the account ends the Apache session', () => endsApacheSession(
  identity('carol', 'staff', 'Carol Example'), 'after vestibule users disable carol',
  async () => { cli(['users', 'disable', 'carol']); },
));
