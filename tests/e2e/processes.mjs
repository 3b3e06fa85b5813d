// What the end-to-end tests that start vestibule and other servers share:
// the binary under test, its environment, child processes whose output is
// kept for the failure report, and loopback port checks.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

export const sleep = (ms) => new Promise((r) => { setTimeout(r, ms).unref(); });

/** The vestibule binary under test, from `E2E_VESTIBULE_BIN`. */
export function vestibuleBin() {
  const bin = process.env.E2E_VESTIBULE_BIN;
  if (!bin) {
    throw new Error('E2E_VESTIBULE_BIN is not set: build with `cargo build -p vestibule --bin vestibule` '
      + 'and set E2E_VESTIBULE_BIN to the absolute path of target/debug/vestibule');
  }
  if (!fs.existsSync(bin)) {
    throw new Error(`E2E_VESTIBULE_BIN=${bin} does not exist: build it with \`cargo build -p vestibule --bin vestibule\``);
  }
  return bin;
}

/**
 * The environment for vestibule (and anything started beside it), plus
 * `extra`: without `VESTIBULE_*` variables, which vestibule reads as
 * configuration keys (`E2E_VESTIBULE_BIN` would be the unknown key `bin`,
 * and `serve` would refuse to start).
 */
export function vestibuleEnv(extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VESTIBULE_')));
  env.RUST_LOG ??= 'info';
  return { ...env, ...extra };
}

/** Fails unless nothing listens on `port` yet (a leftover would answer instead). */
export async function assertPortFree(port) {
  const open = await new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  if (open) throw new Error(`127.0.0.1:${port} is already in use: stop whatever listens there (a leftover test run?)`);
}

/** Child processes of one test file, stopped together by `stopAll()`. */
export class Processes {
  children = [];

  /** Set when a hook or test failed: `stopAll()` then prints every child's output. */
  failed = false;

  /** Runs `fn`, noting a failure. */
  async track(fn) {
    try {
      return await fn();
    } catch (e) {
      this.failed = true;
      throw e;
    }
  }

  /**
   * Starts a child, keeping its output for the failure report. A
   * `detached` child gets its own process group, which `stopAll()` stops
   * whole (for servers that fork, like Apache).
   */
  start(name, cmd, args, opts = {}) {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    const rec = { name, child, out: '', exited: null, group: Boolean(opts.detached) };
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => { rec.out += d; });
    child.stderr.on('data', (d) => { rec.out += d; });
    child.on('exit', (code, signal) => { rec.exited = { code, signal }; });
    child.on('error', (e) => { rec.out += `\nspawn error: ${e.message}`; rec.exited = { error: e }; });
    this.children.push(rec);
    return rec;
  }

  /** Waits until `rec`'s output contains `text`. */
  async waitForOutput(rec, text, ms = 15000) {
    const end = Date.now() + ms;
    while (!rec.out.includes(text)) {
      if (rec.exited) throw new Error(`${rec.name} exited (${JSON.stringify(rec.exited)}):\n${rec.out}`);
      if (Date.now() > end) throw new Error(`${rec.name}: no "${text}" after ${ms} ms:\n${rec.out}`);
      await sleep(50);
    }
  }

  /**
   * SIGTERM to every child, SIGKILL after 5 s; with `report` (by default
   * after a failure), prints every child's output.
   */
  async stopAll({ report = this.failed } = {}) {
    const stop = (rec, signal) => {
      if (rec.exited) return;
      try {
        if (rec.group) process.kill(-rec.child.pid, signal);
        else rec.child.kill(signal);
      } catch { /* already gone */ }
    };
    for (const rec of this.children) stop(rec, 'SIGTERM');
    const end = Date.now() + 5000;
    // A timer that holds the event loop (sleep()'s is unref'd): once the
    // last child is gone nothing else may, and the process would end here,
    // before the caller's clean-up (its temporary directory) runs.
    const wait = () => new Promise((r) => { setTimeout(r, 50); });
    while (this.children.some((r) => !r.exited) && Date.now() < end) await wait();
    for (const rec of this.children) stop(rec, 'SIGKILL');
    if (report) for (const rec of this.children) console.error(`----- ${rec.name} output -----\n${rec.out}`);
  }
}

/**
 * The start of a vestibule configuration for the suites whose user comes
 * from a trusted front: vestibule on 127.0.0.1:`port`, believing
 * authelia's Remote-* headers from 127.0.0.1, accounts made on first
 * sight, the store in `dataDir`. The caller appends its own tables.
 */
export function trustedFrontConfig(port, dataDir) {
  return `[server]
listen = ["127.0.0.1:${port}"]
admin_listen = ""

[source.headers]
dialect = "authelia"
trusted_proxies = ["127.0.0.1"]
provisioning = "auto"

[database]
data_dir = "${dataDir}"

[accounts]
`;
}
