// The logout chain of issue 15: npm `oidc-provider` (the upstream identity
// provider) → vestibule, which signs people in against it (`[source.oidc]`)
// AND is the OpenID provider of the apps behind it (`[oidc_provider]`) →
// Debian's Apache with mod_auth_openidc as such an app. Debian's Chromium
// (playwright-core) is the browser.
//
// Chromium opens the Apache-protected page, is sent to vestibule's
// authorize endpoint, from there to vestibule's own login at the upstream,
// signs in there, and comes back through vestibule to Apache with a code.
// Then the user signs out at the upstream provider; the provider POSTs a
// back-channel logout token to vestibule, which ends its session and, from
// its outbox, POSTs a logout token of its own to Apache, which drops its
// session. The test measures that whole path: from the click on the
// provider's "sign me out" to the first request Apache no longer serves
// (polled every 10 ms), over several rounds, and prints median and max
// (BENCHMARKS.md, "Logout chain (issue 15)").
//
// Apache's client registration and mod_auth_openidc block are the
// "Apache mod_auth_openidc" recipe of docs/oidc-provider.md, as in
// oidc_provider_apache.test.mjs.
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test oidc_chain.test.mjs
// (CHAIN_ROUNDS=N for more rounds; 5 by default.)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  PROVIDER_DOC, apacheErrorLog, appSaw, recipeBlock, startApache,
} from './apache_rp.mjs';
import { launchChromium } from './demo.mjs';
import {
  Processes, assertPortFree, sleep, vestibuleBin, vestibuleEnv,
} from './processes.mjs';
import { confirmLogoutAtIdp, signInAtIdp, startUpstreamIdp } from './upstream_idp.mjs';

const GATE_PORT = 18881;
const APACHE_PORT = 18882;
const IDP_PORT = 18883;
const GATE = `http://127.0.0.1:${GATE_PORT}`;
const APACHE = `http://127.0.0.1:${APACHE_PORT}`;
const APP_URL = `${APACHE}/app/claims`;
const AUTHORIZE = `${GATE}/.vestibule/oidc/authorize`;
const UPSTREAM_CLIENT = 'vestibule';
// 256 random bits each.
const UPSTREAM_SECRET = crypto.randomBytes(32).toString('base64url');
const APACHE_SECRET = crypto.randomBytes(32).toString('base64url');
const PASSPHRASE = crypto.randomBytes(32).toString('base64url');
const ROUNDS = Number(process.env.CHAIN_ROUNDS ?? 5);
// How long the chain may take before the test gives up on a round.
const CHAIN_DEADLINE_MS = 15000;
const POLL_MS = 10;

const USERS = {
  alice: { email: 'alice@example.test', name: 'Alice Example', groups: ['staff', 'admins'] },
};

const procs = new Processes();
let dir;
let idp;
let browser;

function gatewayConfig(registration) {
  return `[server]
listen = ["127.0.0.1:${GATE_PORT}"]
admin_listen = ""

[source.oidc]
preset = "generic"
issuer = "${idp.issuer}"
client_id = "${UPSTREAM_CLIENT}"
client_secret_env = "E2E_UPSTREAM_SECRET"
redirect_url = "${GATE}/.vestibule/oidc/callback"
post_logout_redirect_url = "${GATE}/"
provisioning = "auto"

[database]
data_dir = "${path.join(dir, 'data')}"

[accounts]

[oidc_provider]
issuer = "${GATE}"

${registration}
[[route]]
name = "app"
path_prefix = "/"
upstream = "http://127.0.0.1:9"
`;
}

/** What Apache answers `ctx` for the app now, redirects not followed. */
async function apacheAnswers(ctx) {
  const r = await ctx.request.get(APP_URL, { maxRedirects: 0, headers: { Accept: 'text/html' } });
  return { status: r.status(), location: r.headers().location ?? '' };
}

const signedOutOfApache = (a) => a.status === 302 && a.location.startsWith(`${AUTHORIZE}?`);

/** Signs alice in to Apache through vestibule and the upstream; the browser context, its page, what the app saw. */
async function signIn() {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const visited = [];
  page.on('request', (r) => { if (r.isNavigationRequest()) visited.push(new URL(r.url())); });
  try {
    await page.goto(APP_URL);
    await signInAtIdp(page, idp.issuer, 'alice');
    await page.waitForURL(APP_URL);
  } catch (e) {
    throw new Error(`${e.message}\nat ${page.url()}: ${(await page.textContent('body').catch(() => '')).slice(0, 500)}\nvisited:\n${visited.map((u) => u.href).join('\n')}`);
  }
  const saw = appSaw(await page.textContent('body'));
  return { ctx, page, visited, saw };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------- set-up

before(() => procs.track(async () => {
  vestibuleBin();
  for (const port of [GATE_PORT, APACHE_PORT, IDP_PORT]) await assertPortFree(port);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-oidc-chain-'));
  idp = await startUpstreamIdp({
    port: IDP_PORT,
    users: USERS,
    clients: [{
      client_id: UPSTREAM_CLIENT,
      client_secret: UPSTREAM_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [`${GATE}/.vestibule/oidc/callback`],
      post_logout_redirect_uris: [`${GATE}/`],
      backchannel_logout_uri: `${GATE}/.vestibule/oidc/backchannel-logout`,
      backchannel_logout_session_required: true,
    }],
  });

  const localise = (block) => block.replaceAll('https://H', APACHE).replaceAll('ISSUER', GATE);
  const registration = localise(recipeBlock(PROVIDER_DOC, 'toml', 'client_id = "apache"'));
  assert.match(registration, /^secret_sha256 = "…"$/m);
  const secretSha256 = crypto.createHash('sha256').update(APACHE_SECRET).digest('hex');
  const cfgPath = path.join(dir, 'vestibule.toml');
  fs.writeFileSync(cfgPath, gatewayConfig(registration.replace('secret_sha256 = "…"', `secret_sha256 = "${secretSha256}"`)));
  const env = vestibuleEnv({ E2E_UPSTREAM_SECRET: UPSTREAM_SECRET });
  const migrate = spawnSync(vestibuleBin(), ['migrate', '--config', cfgPath], { env, encoding: 'utf8', timeout: 20000 });
  assert.equal(migrate.status, 0, `${migrate.stdout}\n${migrate.stderr}`);
  const gw = procs.start('vestibule', vestibuleBin(), ['serve', '--config', cfgPath], { env });
  await procs.waitForOutput(gw, `listening on ${GATE}`);

  // Apache's workers and the CGI run as www-data: they read below dir.
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'apache'));
  await startApache(procs, path.join(dir, 'apache'), APACHE_PORT, localise(recipeBlock(PROVIDER_DOC, 'apache', 'OIDCClientID apache')), {
    OIDC_CLIENT_SECRET: APACHE_SECRET, OIDC_CRYPTO_PASSPHRASE: PASSPHRASE,
  });
  browser = await launchChromium();
}));

after(async () => {
  const report = procs.failed || Boolean(process.env.KEEP_E2E_DIR);
  await browser?.close();
  await idp?.close();
  await procs.stopAll({ report });
  if (report) console.error(`----- apache error.log -----\n${apacheErrorLog(dir && path.join(dir, 'apache'))}`);
  if (dir && !process.env.KEEP_E2E_DIR) fs.rmSync(dir, { recursive: true, force: true });
});

/** Wraps a test body so that a failure prints the peers' output in after(). */
const t = (name, fn) => test(name, () => procs.track(fn));

// ---------------------------------------------------------------- tests

t('Chromium signs in to Apache through vestibule, which signs in at the upstream provider', async () => {
  const { ctx, visited, saw } = await signIn();
  try {
    const hops = visited.map((u) => u.origin + u.pathname);
    // Apache → vestibule's authorize → vestibule's login → the upstream's
    // authorize → its login form → vestibule's callback → vestibule's
    // authorize again → Apache's redirect URI → the app.
    const order = [
      APP_URL, AUTHORIZE, `${GATE}/.vestibule/oidc/login`, `${idp.issuer}/auth`,
      `${GATE}/.vestibule/oidc/callback`, AUTHORIZE, `${APACHE}/redirect_uri`, APP_URL,
    ];
    let at = 0;
    for (const hop of hops) if (hop === order[at]) at += 1;
    assert.equal(at, order.length, `the hops were:\n${visited.map((u) => u.href).join('\n')}`);
    assert.equal(saw.get('REMOTE_USER'), 'alice');
    assert.equal(saw.get('OIDC_CLAIM_email'), 'alice@example.test');
    assert.equal(saw.get('OIDC_CLAIM_iss'), GATE, 'Apache\'s ID token is vestibule\'s');
    assert.equal((await apacheAnswers(ctx)).status, 200);
  } finally {
    await ctx.close();
  }
});

t(`logout at the upstream provider ends the Apache session; the time it takes, over ${ROUNDS} rounds`, async () => {
  const total = [];
  const toSend = [];
  const atVestibule = [];
  const fromVestibule = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    const { ctx, page } = await signIn();
    try {
      assert.equal((await apacheAnswers(ctx)).status, 200, 'signed in to Apache before the logout');
      const before = idp.backchannel.length;
      const postsBefore = idp.posts.length;
      await page.goto(`${idp.issuer}/session/end`);
      // Apache is polled every POLL_MS from the click on, beside the
      // browser's logout at the provider.
      const t0 = performance.now();
      let gone;
      const poll = (async () => {
        for (;;) {
          const a = await apacheAnswers(ctx);
          if (signedOutOfApache(a)) { gone = performance.now(); return; }
          assert.equal(a.status, 200, `Apache answered ${a.status} ${a.location}`);
          if (performance.now() - t0 > CHAIN_DEADLINE_MS) return;
          await sleep(POLL_MS);
        }
      })();
      await confirmLogoutAtIdp(page);
      await poll;
      assert.ok(gone !== undefined, `round ${round + 1}: Apache still serves the app ${CHAIN_DEADLINE_MS} ms after the upstream logout`);
      // The upstream's logout token reached vestibule (answered 200)
      // before the provider answered the browser.
      const sent = idp.backchannel.slice(before);
      assert.equal(sent.length, 1, JSON.stringify(sent));
      assert.equal(sent[0].ok, true, JSON.stringify(sent));
      const posted = idp.posts.slice(postsBefore);
      assert.equal(posted.length, 1, JSON.stringify(posted));
      total.push(gone - t0);
      toSend.push(posted[0].at - t0);
      atVestibule.push(sent[0].at - posted[0].at);
      fromVestibule.push(gone - sent[0].at);
    } finally {
      await ctx.close();
    }
  }
  const fmt = (xs) => `median ${median(xs).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
  console.log(`logout chain (${ROUNDS} rounds, Apache polled every ${POLL_MS} ms)`);
  console.log(`  upstream logout (the click) → Apache session gone: ${fmt(total)}`);
  console.log(`    click → the upstream posts its logout token: ${fmt(toSend)}`);
  console.log(`    the token posted → vestibule answers 200: ${fmt(atVestibule)}`);
  console.log(`    vestibule's 200 → Apache session gone: ${fmt(fromVestibule)}`);
});
