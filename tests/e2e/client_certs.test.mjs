// Certificate devices in a real browser: Debian's Chromium, driven by
// playwright-core, against `vestibule demo` (docs/client-certificates.md).
//
// - sign in through the demo front, make a certificate device on the
//   devices page with the app picker;
// - the file password is shown once (a reload says it is gone);
// - the .p12 downloads, and Debian's openssl opens it with that password
//   (the "compatible" form: 3DES bags, SHA-1 MAC);
// - the device is listed as a certificate, and revoking it works.
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test client_certs.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startDemo } from './demo.mjs';

const FRONT_PORT = 18796;
const FRONT = `http://127.0.0.1:${FRONT_PORT}`;

let demo;
let page;

before(async () => {
  demo = await startDemo(FRONT_PORT, 'client-certs');
  page = await (await demo.browser.newContext({ acceptDownloads: true })).newPage();
});

after(async () => {
  await demo?.stop();
});

test('a certificate device: made on the page, password shown once, .p12 downloaded and opened', async () => {
  await page.goto(`${FRONT}/.vestibule/devices`);
  await page.click('button[name=preset][value=alice]');
  await page.goto(`${FRONT}/.vestibule/devices`);
  assert.ok(await page.isVisible('#add-certificate'), 'the certificate form is offered');

  await page.fill('#add-certificate input[name=name]', 'E2E phone');
  await page.selectOption('#add-certificate select[name=app]', 'ios-ha');
  await page.check('#add-certificate input[name=route][value=whoami]');
  await Promise.all([page.waitForLoadState(), page.click('#add-certificate button')]);
  assert.equal(await page.title(), 'Certificate ready — vestibule');
  const password = (await page.inputValue('#p12-password')).trim();
  assert.match(password, /^[a-z2-9]{5}(-[a-z2-9]{5}){3}$/);
  // The install steps of the app picked.
  assert.equal(await page.getAttribute('#install', 'data-app'), 'ios-ha');
  assert.match(await page.textContent('#install'), /Home Assistant app/);
  const pageUrl = page.url();

  // The file downloads, and opens with the password shown.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-p12')]);
  assert.match(download.suggestedFilename(), /^E2E-phone\.p12$/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-p12-'));
  const file = path.join(dir, 'device.p12');
  await download.saveAs(file);
  const info = spawnSync('openssl', ['pkcs12', '-info', '-in', file, '-passin', `pass:${password}`, '-noout'],
    { encoding: 'utf8' });
  assert.equal(info.status, 0, info.stderr);
  const text = info.stdout + info.stderr;
  assert.match(text, /MAC: sha1/);
  assert.equal(text.match(/pbeWithSHA1And3-KeyTripleDES-CBC/g)?.length, 2, text);
  fs.rmSync(dir, { recursive: true, force: true });

  // Shown once: a reload says the password is gone and does not show it.
  const again = await page.goto(pageUrl);
  assert.equal(again.status(), 410);
  assert.ok(!(await page.content()).includes(password));

  // Listed as a certificate device; revoked on the page.
  await page.goto(`${FRONT}/.vestibule/devices`);
  const row = page.locator('#devices tr', { hasText: 'E2E phone' });
  assert.equal(await row.count(), 1);
  assert.match(await row.textContent(), /certificate/);
  await Promise.all([page.waitForLoadState(), row.locator('button', { hasText: 'Revoke' }).click()]);
  assert.ok(await page.isVisible('#no-devices'));
});
