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
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import { chromium } from 'playwright-core';

const FRONT_PORT = 18794;
const FRONT = `http://127.0.0.1:${FRONT_PORT}`;
const CHROMIUM = '/usr/bin/chromium';

// ---------------------------------------------------------------- helpers

function vestibuleBin() {
  const bin = process.env.E2E_VESTIBULE_BIN;
  if (!bin || !fs.existsSync(bin)) {
    throw new Error('E2E_VESTIBULE_BIN must name the vestibule binary (cargo build -p vestibule --bin vestibule)');
  }
  return bin;
}

/** vestibule reads `VESTIBULE_*` variables as configuration: pass none. */
function vestibuleEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VESTIBULE_')));
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms).unref(); });

async function assertPortFree(port) {
  const open = await new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  if (open) throw new Error(`127.0.0.1:${port} is already in use (a leftover test run?)`);
}

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

/** Decodes the QR code in a PNG screenshot. */
function decodeQr(png) {
  const img = PNG.sync.read(png);
  const code = jsQR(new Uint8ClampedArray(img.data), img.width, img.height);
  assert.ok(code, 'no QR code could be decoded from the screenshot');
  return code.data;
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

let dir;
let demo;
let demoOut = '';
let browser;
let page;

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  await assertPortFree(FRONT_PORT);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-devices-'));
  // The demo keeps its database in ./vestibule-demo-data: run it in a
  // fresh directory.
  demo = spawn(vestibuleBin(), ['demo', '--listen', `127.0.0.1:${FRONT_PORT}`], {
    cwd: dir,
    env: vestibuleEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demo.stdout.setEncoding('utf8');
  demo.stderr.setEncoding('utf8');
  demo.stdout.on('data', (d) => { demoOut += d; });
  demo.stderr.on('data', (d) => { demoOut += d; });
  const end = Date.now() + 20000;
  while (!demoOut.includes('Press Ctrl-C to stop')) {
    if (demo.exitCode !== null) throw new Error(`the demo exited:\n${demoOut}`);
    if (Date.now() > end) throw new Error(`the demo did not start:\n${demoOut}`);
    await sleep(50);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root, Chromium needs --no-sandbox; the rest keep it off the
    // (closed) network.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await (await browser.newContext()).newPage();
});

after(async () => {
  await browser?.close();
  if (demo && demo.exitCode === null) {
    demo.kill('SIGTERM');
    await new Promise((r) => { demo.once('exit', r); setTimeout(r, 5000).unref(); });
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
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

  // The QR code holds the same value.
  const qr = decodeQr(await page.locator('#qr svg').screenshot());
  assert.equal(qr, secret);

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
