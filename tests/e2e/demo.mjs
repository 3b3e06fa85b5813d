// What the Chromium tests against `vestibule demo` share: the demo in a
// fresh directory on a loopback port, Debian's Chromium, and decoding QR
// codes from screenshots.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export const sleep = (ms) => new Promise((r) => { setTimeout(r, ms).unref(); });

function vestibuleBin() {
  const bin = process.env.E2E_VESTIBULE_BIN;
  if (!bin || !fs.existsSync(bin)) {
    throw new Error('E2E_VESTIBULE_BIN must name the vestibule binary (cargo build -p vestibule --bin vestibule)');
  }
  return bin;
}

async function assertPortFree(port) {
  const open = await new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  if (open) throw new Error(`127.0.0.1:${port} is already in use (a leftover test run?)`);
}

/** Debian's Chromium, headless, kept off the network. */
export async function launchChromium() {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root, Chromium needs --no-sandbox; the rest keep it off the
    // (closed) network.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * Starts `vestibule demo` on 127.0.0.1:`port` in a fresh directory (it
 * keeps its database in ./vestibule-demo-data) and Chromium; `stop()`
 * ends both and removes the directory.
 */
export async function startDemo(port, name) {
  // Before the demo starts, so that a missing browser leaves no process behind.
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  await assertPortFree(port);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `vestibule-e2e-${name}-`));
  // vestibule reads `VESTIBULE_*` variables as configuration: pass none.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VESTIBULE_')));
  const demo = spawn(vestibuleBin(), ['demo', '--listen', `127.0.0.1:${port}`], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  demo.stdout.setEncoding('utf8');
  demo.stderr.setEncoding('utf8');
  demo.stdout.on('data', (d) => { out += d; });
  demo.stderr.on('data', (d) => { out += d; });
  const end = Date.now() + 20000;
  while (!out.includes('Press Ctrl-C to stop')) {
    if (demo.exitCode !== null) throw new Error(`the demo exited:\n${out}`);
    if (Date.now() > end) throw new Error(`the demo did not start:\n${out}`);
    await sleep(50);
  }
  const browser = await launchChromium();
  const stop = async () => {
    await browser.close();
    if (demo.exitCode === null) {
      demo.kill('SIGTERM');
      await new Promise((r) => { demo.once('exit', r); setTimeout(r, 5000).unref(); });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { browser, stop };
}

/** Decodes the QR code in a PNG screenshot. */
export function decodeQr(png) {
  const img = PNG.sync.read(png);
  const code = jsQR(new Uint8ClampedArray(img.data), img.width, img.height);
  assert.ok(code, 'no QR code could be decoded from the screenshot');
  return code.data;
}
