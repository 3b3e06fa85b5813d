// vestibule's own pages in a real browser (Debian's Chromium, driven by
// playwright-core) against `vestibule demo`:
//
// - every page, at 1280 px and at 390 px (a phone): no horizontal
//   overflow, the nav with Sign out, a screenshot under
//   target/e2e-screenshots/, and an axe-core scan without serious or
//   critical violations;
// - safe actions: self-disable refused, confirmation pages, a flash
//   message after each action, a reload after "create" makes no second
//   device;
// - the pairing QR code opened in a second browser (the phone) works;
// - the demo app signs in through vestibule's OpenID Connect provider
//   (code + PKCE, consent, ID token and userinfo shown), and revoking it
//   on the apps page makes it ask for consent again;
// - every refusal a browser sees is the common page.
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test pages.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { decodeQr, startDemo } from './demo.mjs';

const FRONT_PORT = 18795;
const FRONT = `http://127.0.0.1:${FRONT_PORT}`;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = path.resolve(HERE, '../../target/e2e-screenshots');
const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const WIDTHS = [1280, 390];

let demo;
let browser;

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  demo = await startDemo(FRONT_PORT, 'pages');
  browser = demo.browser;
});

after(async () => {
  await demo?.stop();
});

/** A browser signed in to the demo front as `preset`. */
async function signedIn(preset) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${FRONT}/.demo/login?rd=${encodeURIComponent(`${FRONT}/`)}`);
  await Promise.all([page.waitForLoadState(), page.click(`button[name=preset][value=${preset}]`)]);
  return page;
}

/** A click that navigates (a form's POST and its 303). */
async function submit(page, selector) {
  await Promise.all([page.waitForNavigation(), page.click(selector)]);
}

/**
 * Checks the page now shown at both widths: no horizontal overflow, the
 * nav with Sign out, no serious or critical axe-core violation; saves a
 * screenshot per width.
 */
async function checkPage(page, name, { waits = false } = {}) {
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 900 });
    const { scrollWidth, innerWidth } = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
    }));
    assert.ok(scrollWidth <= innerWidth, `${name} at ${width}px: ${scrollWidth}px wide`);
    assert.ok(await page.isVisible('nav #nav-signout'), `${name}: no Sign out`);
    assert.ok(await page.isVisible('nav #nav-account'), `${name}: no nav`);
    // Every action on the page is reachable, not off-screen.
    const offscreen = await page.evaluate(() => [...document.querySelectorAll('main button, main a.button')]
      .filter((b) => b.getBoundingClientRect().right > window.innerWidth).length);
    assert.equal(offscreen, 0, `${name} at ${width}px: ${offscreen} buttons off-screen`);
    await page.screenshot({ path: path.join(SHOTS, `${name}-${width}.png`), fullPage: true });
  }
  // Through DevTools, not a <script>: the page's CSP allows no script,
  // and must not be loosened for the test.
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => window.axe.run(document));
  // The two waiting pages reload themselves (meta refresh, no script) and
  // offer "stop updating" (WCAG 2.2.1), which axe cannot see: its
  // meta-refresh rule is checked on their "stop updating" view instead.
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .filter((v) => !(waits && v.id === 'meta-refresh'));
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(', ')})`), [],
    `${name}: axe-core violations`);
}

/** The common refusal page, with its status. */
async function assertRefusal(page, status, name) {
  assert.equal(await page.getAttribute('#refusal', 'data-status'), String(status), `${name}: ${await page.content()}`);
  assert.ok(await page.isVisible('#refusal a.button'), `${name}: no link on`);
  assert.doesNotMatch(await page.content(), /admin_groups|login_url|\[accounts\]/, `${name}: a config key`);
  await checkPage(page, name);
}

let alice;

test('the signed-in pages: design, phone width, nav, accessibility', async () => {
  alice = await signedIn('alice');
  for (const [name, url] of [['account', '/.vestibule/account'], ['devices', '/.vestibule/devices'], ['app-access', '/.vestibule/apps'], ['admin', '/.vestibule/admin']]) {
    const r = await alice.goto(`${FRONT}${url}`);
    assert.equal(r.status(), 200, name);
    assert.equal(await alice.getAttribute(`#nav-${name}`, 'aria-current'), 'page', `${name}: current page marked`);
    assert.ok(await alice.isVisible('#nav-admin'), `${name}: Admin for admins`);
    // One stylesheet, no inline style or script.
    assert.equal(await alice.locator('link[rel=stylesheet]').count(), 1);
    assert.equal(await alice.locator('style, script, [style]').count(), 0);
    await checkPage(alice, name);
  }
});

test('a device: created, shown once, listed; a reload makes no second device', async () => {
  await alice.goto(`${FRONT}/.vestibule/devices`);
  await alice.fill('#add-device input[name=name]', 'Pages phone');
  await alice.check('#add-device input[name=route][value=whoami]');
  await submit(alice, '#add-device button');
  assert.match(alice.url(), /\/\.vestibule\/devices\/created\/[0-9a-f]{64}$/);
  const secret = await alice.inputValue('#secret');
  assert.match(secret, /^vst_[A-Za-z0-9_-]{43}$/);
  // A token's QR code: server, user and token (docs/clients.md).
  const connect = JSON.parse(decodeQr(await alice.locator('#qr svg').screenshot()));
  assert.equal(new URL(connect.server).origin, FRONT);
  assert.equal(connect.user, 'alice');
  assert.equal(connect.token, secret);
  // No claim the Home Assistant app takes a custom header.
  assert.doesNotMatch(await alice.content(), /Home Assistant companion\)/);
  await checkPage(alice, 'device-created');

  const again = await alice.reload();
  assert.equal(again.status(), 410);
  assert.doesNotMatch(await alice.content(), new RegExp(secret));
  await assertRefusal(alice, 410, 'error-410-already-shown');
  await alice.goto(`${FRONT}/.vestibule/devices`);
  assert.equal(await alice.locator('#devices tbody tr', { hasText: 'Pages phone' }).count(), 1);

  // Revoking it: a flash message, once.
  await submit(alice, '#devices tbody tr:has-text("Pages phone") button');
  assert.match(await alice.textContent('#flash'), /device is revoked/);
  await alice.reload();
  assert.equal(await alice.locator('#flash').count(), 0, 'the flash is shown once');
});

test('the demo app signs in through the OIDC provider; App access lists and revokes it', async () => {
  const bob = await signedIn('bob');
  const signIn = async () => {
    await bob.goto(`${FRONT}/.demo/app`);
    await submit(bob, '#oidc-sign-in');
  };
  await signIn();
  // The consent page names the app and the scopes.
  assert.match(await bob.textContent('#consent'), /Demo app/);
  assert.match(await bob.textContent('#consent-scopes'), /Your email address/);
  await submit(bob, '#allow');
  assert.ok(bob.url().startsWith(`${FRONT}/.demo/app/callback?`), bob.url());
  const claims = JSON.parse(await bob.textContent('#id-token-claims'));
  assert.equal(claims.iss, FRONT);
  assert.equal(claims.aud, 'demo-app');
  assert.equal(claims.preferred_username, 'bob');
  assert.equal(claims.email, 'bob@example.com');
  assert.deepEqual(claims.groups, ['users']);
  const userinfo = JSON.parse(await bob.textContent('#userinfo'));
  assert.equal(userinfo.sub, claims.sub);
  assert.equal(userinfo.email, 'bob@example.com');

  // The grant on bob's App access page, then revoked.
  await bob.goto(`${FRONT}/.vestibule/apps`);
  const row = bob.locator('#grants tr[data-client="demo-app"]');
  assert.equal(await row.count(), 1);
  assert.match(await row.textContent(), /Demo app/);
  await checkPage(bob, 'app-access-bob');
  await submit(bob, '#grants tr[data-client="demo-app"] button');
  assert.match(await bob.textContent('#flash'), /access is revoked/);
  assert.ok(await bob.isVisible('#no-grants'));
  // The consent went with it: the app asks again.
  await signIn();
  assert.ok(await bob.isVisible('#consent'), await bob.content());
  await bob.context().close();
});

test('admin actions: confirmation, flash, and no self-lockout', async () => {
  // carol waits for approval, and is told so on the common page.
  const carol = await signedIn('carol');
  const r = await carol.goto(`${FRONT}/.vestibule/account`);
  assert.equal(r.status(), 403);
  await assertRefusal(carol, 403, 'error-403-pending');
  assert.ok(await carol.isVisible('a[href="/.vestibule/logout"]'), 'a way to switch user');

  await alice.goto(`${FRONT}/.vestibule/admin`);
  await submit(alice, 'tr[data-account=carol] button:has-text("Approve")');
  assert.match(await alice.textContent('#flash'), /approved/);

  // Disabling asks first.
  await Promise.all([alice.waitForNavigation(), alice.click('tr[data-account=carol] a:has-text("Disable")')]);
  assert.match(await alice.textContent('h1'), /Disable this account\?/);
  await checkPage(alice, 'admin-confirm');
  await submit(alice, '#confirm');
  assert.match(await alice.textContent('#flash'), /disabled/);
  const disabled = await carol.goto(`${FRONT}/.vestibule/account`);
  assert.equal(disabled.status(), 403);
  await assertRefusal(carol, 403, 'error-403-disabled');

  // Alice's own row offers no "disable", and the form refuses it.
  assert.equal(await alice.locator('tr[data-account=alice] a:has-text("Disable")').count(), 0);
  const csrf = await alice.getAttribute('input[name=csrf]', 'value');
  const id = await alice.getAttribute('tr[data-account=alice]', 'data-account-id');
  const res = await alice.request.post(`${FRONT}/.vestibule/admin/accounts`, {
    form: { csrf, id, action: 'disable' }, headers: { Accept: 'text/html' }, maxRedirects: 0,
  });
  assert.equal(res.status(), 409);
  assert.match(await res.text(), /cannot disable your own account/);
  const back = await alice.goto(`${FRONT}/.vestibule/admin`);
  assert.equal(back.status(), 200, 'alice is still an active admin');
});

test('the pairing QR code, opened in the phone\'s browser, pairs the phone', async () => {
  await alice.goto(`${FRONT}/.vestibule/devices`);
  await alice.check('#pair-device input[name=route][value=whoami]');
  await submit(alice, '#pair-device button');
  const pairingPage = alice.url();
  assert.match(pairingPage, /\/\.vestibule\/devices\/pair\/\d+$/);
  const code = (await alice.textContent('#pairing-code')).trim();
  const url = decodeQr(await alice.locator('#qr svg').screenshot());
  assert.equal(url, `${FRONT}/.vestibule/pair?code=${code}`);
  await checkPage(alice, 'pairing', { waits: true });
  // A reload shows the same pairing, with its code: nothing new started.
  await alice.reload();
  assert.equal(alice.url(), pairingPage);
  assert.equal((await alice.textContent('#pairing-code')).trim(), code);
  // It is listed on the devices page.
  await alice.goto(`${FRONT}/.vestibule/devices`);
  assert.equal(await alice.locator(`#pairings a[href$="${new URL(pairingPage).pathname}"]`).count(), 1);
  await alice.goto(`${pairingPage}?manual=1`);
  assert.equal(await alice.locator('meta[http-equiv=refresh]').count(), 0);
  await checkPage(alice, 'pairing-manual');

  // The phone: a fresh browser, not signed in, opens the QR code's URL.
  const phone = await (await browser.newContext({ viewport: { width: 390, height: 800 } })).newPage();
  const landing = await phone.goto(url);
  assert.equal(landing.status(), 200);
  assert.equal(await phone.inputValue('#code'), code);
  await checkPage(phone, 'pair-device');
  await phone.fill('#name', 'Pages tablet');
  await submit(phone, '#send');
  assert.match(phone.url(), /\/\.vestibule\/pair\/wait$/);
  assert.equal(await phone.locator('meta[http-equiv=refresh]').count(), 1);
  await checkPage(phone, 'pair-wait', { waits: true });

  // Alice's pairing page refreshes itself until the device shows up.
  await alice.goto(pairingPage);
  await alice.waitForSelector('#device-name', { timeout: 15000 });
  assert.equal((await alice.textContent('#device-name')).trim(), 'Pages tablet');
  await submit(alice, '#confirm');
  assert.match(await alice.textContent('#flash'), /confirmed/);

  // The phone's page refreshes itself and shows the credential, once.
  await phone.waitForSelector('#secret', { timeout: 15000 });
  const secret = await phone.inputValue('#secret');
  assert.match(secret, /^vst_/);
  const r = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', `Authorization: Bearer ${secret}`, `${FRONT}/`], { encoding: 'utf8' });
  assert.equal(r.stdout, '200');
  const gone = await phone.reload();
  assert.equal(gone.status(), 410);
  await assertRefusal(phone, 410, 'error-410-pairing-over');
});

test('every refusal a browser sees is the common page', async () => {
  const bob = await signedIn('bob');
  let r = await bob.goto(`${FRONT}/.vestibule/admin`);
  assert.equal(r.status(), 403);
  await assertRefusal(bob, 403, 'error-403-admins-only');
  r = await bob.goto(`${FRONT}/admins`);
  assert.equal(r.status(), 403);
  await assertRefusal(bob, 403, 'error-403-policy');
  r = await bob.goto(`${FRONT}/.vestibule/devices/pair/999999`);
  assert.equal(r.status(), 404);
  await assertRefusal(bob, 404, 'error-404');
  r = await bob.goto(`${FRONT}/.vestibule/login?rd=${encodeURIComponent('https://evil.example/')}`);
  assert.equal(r.status(), 400);
  await assertRefusal(bob, 400, 'error-400-login');
  // Wrong pairing codes from one address: 429, last (the address stays
  // blocked for a minute).
  let status = 0;
  for (let i = 0; i < 30 && status !== 429; i += 1) {
    await bob.goto(`${FRONT}/.vestibule/pair?code=00000-0000${i % 10}`);
    await bob.fill('#name', 'Guess');
    const [resp] = await Promise.all([bob.waitForNavigation(), bob.click('#send')]);
    status = resp.status();
    assert.ok(status === 404 || status === 429, `guess ${i}: ${status}`);
  }
  assert.equal(status, 429);
  await assertRefusal(bob, 429, 'error-429');
});
