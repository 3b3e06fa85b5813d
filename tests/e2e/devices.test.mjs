// Device credentials in a real browser: Debian's Chromium, driven by
// playwright-core, against `vestibule demo` (its SSO front, vestibule and
// whoami, on loopback).
//
// - sign in through the demo front, create a credential, read it back;
// - decode the QR code on the page (jsQR) and use its value with curl
//   through the gateway;
// - revoke it on the page and see curl refused;
// - check the session cookie's flags and the CSRF check;
// - pair a second device with a code and a confirmation.
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test devices.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

import { decodeQr, startDemo } from './demo.mjs';

const FRONT_PORT = 18794;
const FRONT = `http://127.0.0.1:${FRONT_PORT}`;

// ---------------------------------------------------------------- helpers

/** curl, as a person would run it: status code and body. */
function curl(args) {
  const r = spawnSync('curl', ['-s', '-o', '-', '-w', '\n%{http_code}', '-H', 'Accept: application/json', ...args], {
    encoding: 'utf8',
    timeout: 15000,
  });
  if (r.error) throw r.error;
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
}

/** The identity whoami received, from its JSON. */
function remoteUser(res) {
  assert.equal(res.status, 200, `expected 200, got ${res.status}: ${res.body.slice(0, 300)}`);
  const body = JSON.parse(res.body);
  const pair = body.headers.find(([n]) => n === 'remote-user');
  for (const [n] of body.headers) {
    assert.ok(n !== 'authorization' && n !== 'x-vestibule-token', `${n} reached the app`);
  }
  return pair?.[1];
}

// ---------------------------------------------------------------- set-up

let demo;
let browser;
let page;

before(async () => {
  demo = await startDemo(FRONT_PORT, 'devices');
  browser = demo.browser;
  page = await (await browser.newContext()).newPage();
});

after(async () => {
  await demo?.stop();
});

// ---------------------------------------------------------------- tests

test('a device credential: created in the browser, read from its QR code, used with curl, revoked', async () => {
  // Sign in as alice through the demo SSO front.
  await page.goto(`${FRONT}/.vestibule/devices`);
  assert.match(page.url(), /\/\.demo\/login/, 'anonymous: sent to the login page');
  await page.click('button[name=preset][value=alice]');
  await page.goto(`${FRONT}/.vestibule/devices`);
  assert.equal(await page.title(), 'Your devices — vestibule');
  assert.ok(await page.isVisible('#no-devices'));

  // The session cookie: HttpOnly, SameSite=Lax; not Secure over plain
  // HTTP (so not __Host- either).
  const cookies = await page.context().cookies(FRONT);
  const session = cookies.find((c) => c.name === 'vestibule');
  assert.ok(session, `no vestibule session cookie: ${JSON.stringify(cookies)}`);
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.equal(session.path, '/');
  assert.match(session.value, /^vss_[A-Za-z0-9_-]{43}$/);

  // Create a device for the whoami app.
  await page.fill('#add-device input[name=name]', 'E2E phone');
  await page.check('#add-device input[name=route][value=whoami]');
  await Promise.all([page.waitForLoadState(), page.click('#add-device button')]);
  assert.equal(await page.title(), 'Device created — vestibule');
  const secret = (await page.inputValue('#secret')).trim();
  assert.match(secret, /^vst_[A-Za-z0-9_-]{43}$/);

  // A token's QR code holds server, user and token as JSON
  // (docs/clients.md): a token is a bearer value and rides in no address.
  const connect = JSON.parse(decodeQr(await page.locator('#qr svg').screenshot()));
  assert.equal(new URL(connect.server).origin, FRONT);
  assert.equal(connect.user, 'alice');
  assert.equal(connect.token, secret);
  assert.equal(connect.send_as, 'Bearer');
  const qr = connect.token;

  // curl, through the SSO front and vestibule, with what the QR code said.
  assert.equal(remoteUser(curl(['-H', `Authorization: Bearer ${qr}`, `${FRONT}/`])), 'alice');
  // A token is no password: as HTTP Basic it is refused (create an app
  // password for Basic clients).
  const asBasic = curl(['-u', `alice:${qr}`, `${FRONT}/`]);
  assert.equal(asBasic.status, 401);
  assert.match(asBasic.body, /This is a token/);
  assert.equal(remoteUser(curl(['-H', `X-Vestibule-Token: ${qr}`, `${FRONT}/`])), 'alice');
  assert.equal(curl(['-H', `Authorization: Bearer ${qr}`, `${FRONT}/admins`]).status, 401,
    'the device was not given the admins app');

  // It is listed, with its last use.
  await page.goto(`${FRONT}/.vestibule/devices`);
  const row = page.locator('#devices tr', { hasText: 'E2E phone' });
  assert.equal(await row.count(), 1);

  // The CSRF check: the same browser session, a form without the page's
  // token, is refused and creates nothing.
  const forged = await page.request.post(`${FRONT}/.vestibule/devices/new`, {
    form: { csrf: 'forged', name: 'Forged', kind: 'token', route: 'whoami', expires_days: '0' },
    maxRedirects: 0,
  });
  assert.equal(forged.status(), 403);
  await page.reload();
  assert.equal(await page.locator('#devices tr', { hasText: 'Forged' }).count(), 0);

  // Revoke it on the page: curl is refused at once.
  await Promise.all([page.waitForLoadState(), row.locator('button', { hasText: 'Revoke' }).click()]);
  assert.ok(await page.isVisible('#no-devices'));
  const refused = curl(['-H', `Authorization: Bearer ${qr}`, `${FRONT}/`]);
  assert.equal(refused.status, 401);
  assert.match(refused.body, /not recognised/);
});

test('pairing: the code from the page, the device named on the page, confirmed, then issued once', async () => {
  await page.goto(`${FRONT}/.vestibule/devices`);
  await page.check('#pair-device input[name=route][value=whoami]');
  await Promise.all([page.waitForLoadState(), page.click('#pair-device button')]);
  const code = (await page.textContent('#pairing-code')).trim();
  assert.match(code, /^[0-9A-Z]{5}-[0-9A-Z]{5}$/);
  // The QR code holds the address a device redeems the code at.
  const qr = decodeQr(await page.locator('#qr svg').screenshot());
  assert.equal(qr, `${FRONT}/.vestibule/pair?code=${code}`);

  // The device redeems it, with curl.
  const claimed = curl(['-H', 'Content-Type: application/json',
    '-d', JSON.stringify({ code, name: 'Kitchen tablet' }), `${FRONT}/.vestibule/pair`]);
  assert.equal(claimed.status, 202, claimed.body);
  const { claim } = JSON.parse(claimed.body);
  const poll = () => curl(['-H', 'Content-Type: application/json',
    '-d', JSON.stringify({ claim }), `${FRONT}/.vestibule/pair/poll`]);
  assert.equal(poll().status, 202, 'nothing before the person confirms');

  // The page names the device; confirm it.
  await Promise.all([page.waitForLoadState(), page.click('#check')]);
  assert.equal((await page.textContent('#device-name')).trim(), 'Kitchen tablet');
  await Promise.all([page.waitForLoadState(), page.click('#confirm')]);
  assert.equal(await page.getAttribute('#pairing-state', 'data-state'), 'confirmed');

  const issued = poll();
  assert.equal(issued.status, 200, issued.body);
  const { credential, user } = JSON.parse(issued.body);
  assert.equal(user, 'alice');
  assert.equal(poll().status, 410, 'collected once');
  assert.equal(remoteUser(curl(['-H', `Authorization: Bearer ${credential}`, `${FRONT}/`])), 'alice');

  await page.reload();
  assert.equal(await page.getAttribute('#pairing-state', 'data-state'), 'issued');
  await page.goto(`${FRONT}/.vestibule/devices`);
  assert.equal(await page.locator('#devices tr', { hasText: 'Kitchen tablet' }).count(), 1);
});
