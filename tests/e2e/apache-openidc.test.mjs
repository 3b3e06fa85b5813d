// Apache 2.4 + mod_auth_openidc as the SSO front, vestibule in trusted-header
// mode behind it, `vestibule whoami` as the app. The Apache and vestibule
// configurations are the fenced blocks of docs/integrations/apache-openidc.md,
// byte for byte; only `__DIR__` is replaced by a temporary directory.
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test apache-openidc.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider from 'oidc-provider';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DOC = path.join(HERE, '..', '..', 'docs', 'integrations', 'apache-openidc.md');

const OP_PORT = 18780;
const APACHE_PORT = 18781;
const VESTIBULE_PORT = 18782;
const WHOAMI_PORT = 18783;
const ISSUER = `http://127.0.0.1:${OP_PORT}`;
const APACHE = `http://127.0.0.1:${APACHE_PORT}`;
const VESTIBULE = `http://127.0.0.1:${VESTIBULE_PORT}`;

const USER = 'alice';
const ACCOUNT = {
  email: 'alice@example.org',
  name: 'Alice Liddell-Ångström', // non-ASCII: passed as raw UTF-8 end to end
  groups: ['admins', 'users'],
};

// ---------------------------------------------------------------- helpers

function vestibuleBin() {
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

/** The body of the first ```lang fenced block of a Markdown file, exactly. */
function fencedBlock(file, lang) {
  const text = fs.readFileSync(file, 'utf8');
  const re = new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'm');
  const m = re.exec(text);
  if (!m) throw new Error(`${file}: no \`\`\`${lang} block`);
  return m[1];
}

/** The single value of an Apache directive in a config text. */
function directive(conf, name) {
  const m = new RegExp('^\\s*' + name + '\\s+(\\S+)\\s*$', 'm').exec(conf);
  if (!m) throw new Error(`Apache config has no ${name}`);
  return m[1];
}

/**
 * The environment for vestibule: without `VESTIBULE_*` variables, which
 * vestibule reads as configuration keys (`E2E_VESTIBULE_BIN` would be the
 * unknown key `bin`, and `serve` would refuse to start).
 */
function vestibuleEnv() {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VESTIBULE_')));
  env.RUST_LOG ??= 'info';
  return env;
}

const children = [];

/** Starts a child process, keeping its output for the failure report. */
function start(name, cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const rec = { name, child, out: '', exited: null };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => { rec.out += d; });
  child.stderr.on('data', (d) => { rec.out += d; });
  child.on('exit', (code, signal) => { rec.exited = { code, signal }; });
  child.on('error', (e) => { rec.out += `\nspawn error: ${e.message}`; rec.exited = { error: e }; });
  children.push(rec);
  return rec;
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms).unref(); });

/** Waits until `rec`'s output contains `text`. */
async function waitForOutput(rec, text, ms = 15000) {
  const end = Date.now() + ms;
  while (!rec.out.includes(text)) {
    if (rec.exited) throw new Error(`${rec.name} exited (${JSON.stringify(rec.exited)}):\n${rec.out}`);
    if (Date.now() > end) throw new Error(`${rec.name}: no "${text}" after ${ms} ms:\n${rec.out}`);
    await sleep(50);
  }
}

/** Waits until a TCP port accepts connections. */
async function waitForPort(port, rec, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (rec?.exited) throw new Error(`${rec.name} exited (${JSON.stringify(rec.exited)}):\n${rec.out}`);
    if (Date.now() > end) throw new Error(`port ${port} not open after ${ms} ms`);
    await sleep(50);
  }
}

/** Fails unless nothing listens on `port` yet (a leftover would answer instead). */
async function assertPortFree(port) {
  const open = await new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  if (open) throw new Error(`127.0.0.1:${port} is already in use: stop whatever listens there (a leftover test run?)`);
}

/**
 * One HTTP/1.1 request with node:http (not fetch: fetch sends
 * `Sec-Fetch-Mode: cors`, and mod_auth_openidc answers such requests 401
 * instead of redirecting). `headers` is a list of [name, value] pairs, sent
 * as given (so `Remote_User` keeps its underscore).
 */
function request(url, { method = 'GET', headers = [], body, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    // With headers given as a list, node:http adds no Host of its own.
    const flat = ['Host', u.host];
    // node:http writes header values as latin1: pass UTF-8 bytes through it.
    for (const [n, v] of headers) flat.push(n, Buffer.from(v, 'utf8').toString('latin1'));
    if (body !== undefined) flat.push('Content-Type', 'application/x-www-form-urlencoded', 'Content-Length', String(Buffer.byteLength(body)));
    const req = http.request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method,
      headers: flat,
      localAddress,
      agent: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(10000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A cookie jar good enough for one host: name, value and path. */
class CookieJar {
  constructor() { this.cookies = new Map(); }

  store(setCookie) {
    for (const line of setCookie ?? []) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let cpath = '/';
      let expired = value === '';
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        const key = k.trim().toLowerCase();
        if (key === 'path') cpath = v.trim() || '/';
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) < Date.now()) expired = true;
      }
      const id = `${name}\0${cpath}`;
      if (expired) this.cookies.delete(id);
      else this.cookies.set(id, { name, value, path: cpath });
    }
  }

  header(url) {
    const p = new URL(url).pathname;
    const v = [...this.cookies.values()]
      .filter((c) => p === c.path || p.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    return v ? [['Cookie', v]] : [];
  }
}

/**
 * A browser-like client: sends `Accept: text/html`, keeps cookies and
 * follows redirects. Returns the last response and the URLs visited.
 */
async function browse(jar, url, { method = 'GET', body, headers = [] } = {}) {
  const visited = [];
  for (let hop = 0; hop < 20; hop++) {
    visited.push(`${method} ${url}`);
    const res = await request(url, {
      method,
      body,
      headers: [['Accept', 'text/html'], ...headers, ...jar.header(url)],
    });
    jar.store(res.headers['set-cookie']);
    if (![301, 302, 303, 307, 308].includes(res.status)) return { res, url, visited };
    url = new URL(res.headers.location, url).href;
    if (res.status !== 307 && res.status !== 308) { method = 'GET'; body = undefined; }
  }
  throw new Error(`too many redirects:\n${visited.join('\n')}`);
}

/** The `action` of the page's form, as an absolute URL. */
function formAction(html, base) {
  const m = /<form[^>]*action="([^"]+)"/.exec(html);
  if (!m) throw new Error(`no form in page:\n${html.slice(0, 2000)}`);
  return new URL(m[1].replaceAll('&amp;', '&'), base).href;
}

/** whoami's JSON as a Map of lowercased header name to list of values. */
function seenHeaders(res) {
  assert.equal(res.status, 200, `expected 200, got ${res.status}: ${res.body.slice(0, 500)}`);
  const seen = JSON.parse(res.body);
  const m = new Map();
  for (const [n, v] of seen.headers) {
    const k = n.toLowerCase();
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(v);
  }
  return { seen, headers: m, one: (n) => m.get(n)?.[0] };
}

// ---------------------------------------------------------------- set-up

let dir;
let provider;
let opServer;
let apacheConf;
let failed = false;

before(async () => {
  try {
    await setUp();
  } catch (e) {
    failed = true;
    throw e;
  }
});

async function setUp() {
  const bin = vestibuleBin();
  for (const port of [OP_PORT, APACHE_PORT, VESTIBULE_PORT, WHOAMI_PORT]) await assertPortFree(port);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-apache-'));

  // The doc's configurations; `__DIR__` is the only substitution.
  apacheConf = fencedBlock(DOC, 'apache').replaceAll('__DIR__', dir);
  const toml = fencedBlock(DOC, 'toml');
  fs.writeFileSync(path.join(dir, 'httpd.conf'), apacheConf);
  fs.writeFileSync(path.join(dir, 'vestibule.toml'), toml);

  // The demo OpenID Connect provider, registered with the client the doc's
  // Apache config names.
  const clientId = directive(apacheConf, 'OIDCClientID');
  const clientSecret = directive(apacheConf, 'OIDCClientSecret');
  const redirectUri = directive(apacheConf, 'OIDCRedirectURI');
  assert.equal(directive(apacheConf, 'OIDCProviderMetadataURL'), `${ISSUER}/.well-known/openid-configuration`);
  provider = new Provider(ISSUER, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: {
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['vestibule-e2e-cookie-key'] },
    // Explicit lifetimes (seconds), which also keeps the defaults' notices quiet.
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: ACCOUNT.email, email_verified: true, name: ACCOUNT.name, groups: ACCOUNT.groups };
        },
      };
    },
  });
  // Errors inside the provider would otherwise only show as a 500 page.
  provider.on('server_error', (ctx, err) => { console.error('oidc-provider server_error:', err); });
  opServer = provider.listen(OP_PORT, '127.0.0.1');
  await new Promise((resolve, reject) => { opServer.once('listening', resolve); opServer.once('error', reject); });

  const whoami = start('whoami', bin, ['whoami', '--listen', `127.0.0.1:${WHOAMI_PORT}`], { env: vestibuleEnv() });
  const vestibule = start('vestibule', bin, ['serve', '--config', path.join(dir, 'vestibule.toml')], { env: vestibuleEnv() });
  // Its own process group, so that after() can stop the parent and its children.
  // /usr/sbin is not on every user's PATH.
  const apache2 = fs.existsSync('/usr/sbin/apache2') ? '/usr/sbin/apache2' : 'apache2';
  const apache = start('apache', apache2, ['-f', path.join(dir, 'httpd.conf'), '-DFOREGROUND'], { detached: true });
  await waitForOutput(whoami, `whoami: listening on http://127.0.0.1:${WHOAMI_PORT}`);
  await waitForOutput(vestibule, `vestibule: listening on http://127.0.0.1:${VESTIBULE_PORT}`);
  await waitForPort(APACHE_PORT, apache);
  // Apache writes its pid file once it has bound its port and started.
  const end = Date.now() + 10000;
  while (!fs.existsSync(path.join(dir, 'httpd.pid'))) {
    if (apache.exited || Date.now() > end) {
      const log = path.join(dir, 'error.log');
      throw new Error(`apache did not start (${JSON.stringify(apache.exited)}):\n${apache.out}\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
    }
    await sleep(50);
  }
}

after(async () => {
  for (const rec of children) {
    if (rec.exited) continue;
    try {
      if (rec.name === 'apache') process.kill(-rec.child.pid, 'SIGTERM');
      else rec.child.kill('SIGTERM');
    } catch { /* already gone */ }
  }
  const end = Date.now() + 5000;
  while (children.some((r) => !r.exited) && Date.now() < end) await sleep(50);
  for (const rec of children) {
    if (rec.exited) continue;
    try {
      if (rec.name === 'apache') process.kill(-rec.child.pid, 'SIGKILL');
      else rec.child.kill('SIGKILL');
    } catch { /* already gone */ }
  }
  if (opServer) {
    opServer.closeAllConnections?.();
    await new Promise((r) => opServer.close(r));
  }
  if (failed || process.env.KEEP_E2E_DIR) {
    for (const rec of children) console.error(`----- ${rec.name} output -----\n${rec.out}`);
    if (dir) {
      const log = path.join(dir, 'error.log');
      if (fs.existsSync(log)) console.error(`----- apache error.log -----\n${fs.readFileSync(log, 'utf8')}`);
    }
  }
  if (dir && !process.env.KEEP_E2E_DIR) fs.rmSync(dir, { recursive: true, force: true });
});

/** Wraps a test body so that a failure prints the peers' logs in after(). */
const t = (name, fn) => test(name, async (ctx) => {
  try { await fn(ctx); } catch (e) { failed = true; throw e; }
});

// ---------------------------------------------------------------- tests

const jar = new CookieJar();
let signedIn = false;

async function signIn() {
  if (signedIn) return;
  // Apache → provider's /auth → login interaction.
  let { res, url, visited } = await browse(jar, `${APACHE}/hello?x=1`);
  assert.equal(res.status, 200, `login page: ${res.status}\n${visited.join('\n')}\n${res.body.slice(0, 1000)}`);
  assert.ok(url.startsWith(`${ISSUER}/interaction/`), `expected the provider's login page, got ${url}`);
  assert.match(res.body, /name="login"/);

  // Sign in (devInteractions accepts any password).
  ({ res, url, visited } = await browse(jar, formAction(res.body, url), {
    method: 'POST',
    body: new URLSearchParams({ prompt: 'login', login: USER, password: 'any' }).toString(),
  }));
  assert.equal(res.status, 200, `consent page: ${res.status}\n${visited.join('\n')}\n${res.body.slice(0, 1000)}`);
  assert.ok(url.startsWith(`${ISSUER}/interaction/`), `expected the consent page, got ${url}`);
  assert.match(res.body, /name="prompt" value="consent"/);

  // Consent: → /auth → redirect_uri?code=… → Apache → the original URL.
  ({ res, url, visited } = await browse(jar, formAction(res.body, url), {
    method: 'POST',
    body: new URLSearchParams({ prompt: 'consent' }).toString(),
  }));
  assert.ok(visited.some((v) => v.startsWith(`GET ${APACHE}/redirect_uri?`)), `never came back to redirect_uri:\n${visited.join('\n')}`);
  assert.equal(url, `${APACHE}/hello?x=1`, `did not land on the original URL:\n${visited.join('\n')}`);
  assert.equal(res.status, 200, `${res.status}: ${res.body.slice(0, 1000)}`);
  assert.ok(
    [...jar.cookies.values()].some((c) => c.name === 'mod_auth_openidc_session'),
    'no mod_auth_openidc session cookie',
  );
  signedIn = true;
}

/** A JSON request to Apache with the session cookie. */
function asSignedIn(pathAndQuery, extra = []) {
  const url = `${APACHE}${pathAndQuery}`;
  return request(url, { headers: [['Accept', 'application/json'], ...extra, ...jar.header(url)] });
}

t('the doc\'s vestibule configuration passes `vestibule check --strict`', () => {
  const r = spawnSync(vestibuleBin(), ['check', '--strict', '--config', path.join(dir, 'vestibule.toml')], {
    env: vestibuleEnv(), encoding: 'utf8', timeout: 10000,
  });
  assert.equal(r.status, 0, `vestibule check: exit ${r.status}\n${r.stderr}`);
});

t('(a) a full OpenID Connect sign-in through Apache reaches the app as that user', async () => {
  await signIn();
  const { seen, one, headers } = seenHeaders(await asSignedIn('/hello?x=1'));
  assert.equal(seen.uri, '/hello?x=1');
  assert.equal(one('remote-user'), USER, 'Remote-User is the subject (OIDCRemoteUserClaim sub)');
  assert.equal(one('remote-email'), ACCOUNT.email);
  assert.equal(one('remote-name'), ACCOUNT.name);
  assert.equal(one('remote-groups'), ACCOUNT.groups.join(','));
  for (const h of ['remote-user', 'remote-email', 'remote-name', 'remote-groups']) {
    assert.equal(headers.get(h).length, 1, `${h} once`);
  }
  // OIDCPassClaimsAs environment: no OIDC_CLAIM_* / access token headers upstream.
  for (const name of headers.keys()) {
    assert.ok(!/^oidc[-_]/i.test(name), `claim header leaked upstream: ${name}`);
  }
  const ids = new Map(seen.identity);
  assert.equal(ids.get('remote-user'), USER);
});

t('(b) the same headers sent straight to vestibule from an untrusted address are refused', async () => {
  const forged = [
    ['Accept', 'application/json'],
    ['Remote-User', USER],
    ['Remote-Email', ACCOUNT.email],
    ['Remote-Name', ACCOUNT.name],
    ['Remote-Groups', ACCOUNT.groups.join(',')],
  ];
  const denied = await request(`${VESTIBULE}/hello`, { headers: forged, localAddress: '127.0.0.2' });
  assert.equal(denied.status, 401, `required route from 127.0.0.2: ${denied.status} ${denied.body.slice(0, 300)}`);

  const pub = await request(`${VESTIBULE}/public/page`, { headers: forged, localAddress: '127.0.0.2' });
  const { seen, headers } = seenHeaders(pub);
  assert.equal(seen.uri, '/public/page');
  for (const h of ['remote-user', 'remote-email', 'remote-name', 'remote-groups']) {
    const v = headers.get(h) ?? [];
    assert.ok(v.every((x) => x === ''), `${h} reached the app on a public route: ${JSON.stringify(v)}`);
  }
  for (const [n, v] of seen.identity) {
    assert.equal(v, '', `identity header ${n}=${v} reached the app on a public route`);
  }
  // And the trusted peer (what Apache is) is believed: the control case.
  const trusted = await request(`${VESTIBULE}/hello`, { headers: forged, localAddress: '127.0.0.1' });
  assert.equal(seenHeaders(trusted).one('remote-user'), USER);
});

t('(c) identity headers a signed-in client sends to Apache are replaced', async () => {
  await signIn();
  const res = await asSignedIn('/hello', [
    ['Remote-User', 'admin'],
    ['Remote_User', 'admin'],
    ['REMOTE-USER', 'admin'],
    ['Remote_Groups', 'superadmins'],
    ['Remote-Groups', 'superadmins'],
    ['Remote_Email', 'admin@example.org'],
    ['Remote-Name', 'Administrator'],
  ]);
  const { headers, one } = seenHeaders(res);
  assert.equal(one('remote-user'), USER);
  assert.equal(one('remote-groups'), ACCOUNT.groups.join(','));
  assert.equal(one('remote-email'), ACCOUNT.email);
  assert.equal(one('remote-name'), ACCOUNT.name);
  for (const [name, values] of headers) {
    for (const v of values) {
      assert.ok(!/admin@|^admin$|superadmins|Administrator/.test(v), `forged value reached the app: ${name}: ${v}`);
    }
  }
});
