// Apache 2.4 + mod_auth_openidc as the SSO front, vestibule behind it,
// `vestibule whoami` as the app, in two set-ups side by side:
//  - trusted headers: Apache sends Remote-* headers, vestibule's
//    [source.headers] believes them from Apache's address;
//  - signed ID token: Apache sends the ID token in X-Id-Token, vestibule's
//    [source.jwt] (preset oidc) verifies it against the provider's JWK Set.
// The Apache and vestibule configurations are the fenced blocks of
// docs/integrations/apache-openidc.md, byte for byte; only `__DIR__` is
// replaced by a temporary directory (one per set-up).
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test apache-openidc.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider from 'oidc-provider';

import { CookieJar, request } from './http.mjs';
import { Processes, assertPortFree, sleep, vestibuleBin, vestibuleEnv } from './processes.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DOC = path.join(HERE, '..', '..', 'docs', 'integrations', 'apache-openidc.md');

const OP_PORT = 18780;
const APACHE_PORT = 18781;
const VESTIBULE_PORT = 18782;
const WHOAMI_PORT = 18783;
const ISSUER = `http://127.0.0.1:${OP_PORT}`;
const APACHE = `http://127.0.0.1:${APACHE_PORT}`;
const VESTIBULE = `http://127.0.0.1:${VESTIBULE_PORT}`;
// The signed-ID-token variant: a second Apache and a second vestibule, in
// front of the same app.
const JWT_APACHE_PORT = 18784;
const JWT_VESTIBULE_PORT = 18785;
const JWT_APACHE = `http://127.0.0.1:${JWT_APACHE_PORT}`;
const JWT_VESTIBULE = `http://127.0.0.1:${JWT_VESTIBULE_PORT}`;
// Lifetime of the ID tokens issued to the variant's client, in seconds:
// short, so that the test sees Apache's session end with the token.
const JWT_ID_TOKEN_TTL = 15;

const USER = 'alice';
const ACCOUNT = {
  email: 'alice@example.org',
  name: 'Alice Liddell-Ångström', // non-ASCII: passed as raw UTF-8 end to end
  groups: ['admins', 'users'],
};

// The provider's signing key. The test gives oidc-provider a key of its own
// (instead of its development keys) so that it can also sign tokens itself:
// a correct one as the control case, and forged ones next to it.
const OP_KID = 'e2e-op-key';
const OP_KEY = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const OP_JWK = { ...OP_KEY.privateKey.export({ format: 'jwk' }), kid: OP_KID, use: 'sig', alg: 'RS256' };

// ---------------------------------------------------------------- helpers

/**
 * The body of the `index`-th (from 0) ```lang fenced block of a Markdown
 * file, exactly. With `marker`, the block must contain that text: a check
 * that the page's blocks were not reordered.
 */
function fencedBlock(file, lang, { index = 0, marker } = {}) {
  const text = fs.readFileSync(file, 'utf8');
  const re = new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'gm');
  const blocks = [...text.matchAll(re)].map((m) => m[1]);
  if (blocks.length <= index) throw new Error(`${file}: no \`\`\`${lang} block number ${index + 1} (${blocks.length} found)`);
  const block = blocks[index];
  if (marker !== undefined && !block.includes(marker)) {
    throw new Error(`${file}: \`\`\`${lang} block number ${index + 1} does not contain ${JSON.stringify(marker)}`);
  }
  return block;
}

/** The single value of an Apache directive in a config text. */
function directive(conf, name) {
  const m = new RegExp('^\\s*' + name + '\\s+(\\S+)\\s*$', 'm').exec(conf);
  if (!m) throw new Error(`Apache config has no ${name}`);
  return m[1];
}

/** A `key = "string"` line of a TOML text (first occurrence). */
function tomlString(toml, key) {
  const m = new RegExp('^' + key + ' = "([^"]*)"\\s*(?:#.*)?$', 'm').exec(toml);
  if (!m) throw new Error(`TOML has no ${key} = "..." line`);
  return m[1];
}

// ------------------------------------------------------------ JWT helpers

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/**
 * A compact JWS. `sign` gets the signing input and returns the signature
 * bytes; the default is RS256 with the provider's key.
 */
function jws(header, payload, sign = (input) => crypto.sign('sha256', Buffer.from(input), OP_KEY.privateKey)) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${Buffer.from(sign(input)).toString('base64url')}`;
}

/** ID token claims as the provider would issue them to `aud` for alice. */
function idTokenClaims(aud, overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: USER,
    preferred_username: USER,
    email: ACCOUNT.email,
    email_verified: true,
    name: ACCOUNT.name,
    groups: ACCOUNT.groups,
    iat: now,
    auth_time: now,
    exp: now + 600,
    iss: ISSUER,
    aud,
    ...overrides,
  };
}

const procs = new Processes();

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

/**
 * One SSO front: an Apache configuration of the doc and the vestibule
 * behind it, each in its own directory.
 */
const fronts = {
  headers: {
    name: 'headers',
    apache: APACHE,
    vestibule: VESTIBULE,
    apachePort: APACHE_PORT,
    vestibulePort: VESTIBULE_PORT,
    apacheBlock: { index: 0, marker: 'Listen 127.0.0.1:18781' },
    tomlBlock: { index: 0, marker: '[source.headers]' },
    jar: new CookieJar(),
  },
  jwt: {
    name: 'jwt',
    apache: JWT_APACHE,
    vestibule: JWT_VESTIBULE,
    apachePort: JWT_APACHE_PORT,
    vestibulePort: JWT_VESTIBULE_PORT,
    apacheBlock: { index: 1, marker: 'OIDCPassIDTokenAs serialized' },
    tomlBlock: { index: 1, marker: '[source.jwt]' },
    jar: new CookieJar(),
  },
};

before(() => procs.track(setUp));

/** Writes a front's two files from the doc; `__DIR__` is the only substitution. */
function prepareFront(front) {
  front.dir = path.join(dir, front.name);
  fs.mkdirSync(front.dir);
  front.apacheConf = fencedBlock(DOC, 'apache', front.apacheBlock).replaceAll('__DIR__', front.dir);
  front.toml = fencedBlock(DOC, 'toml', front.tomlBlock);
  fs.writeFileSync(path.join(front.dir, 'httpd.conf'), front.apacheConf);
  fs.writeFileSync(path.join(front.dir, 'vestibule.toml'), front.toml);
  assert.equal(directive(front.apacheConf, 'Listen'), `127.0.0.1:${front.apachePort}`);
  assert.equal(directive(front.apacheConf, 'ProxyPass'), `${front.vestibule}/`);
  assert.equal(directive(front.apacheConf, 'OIDCProviderMetadataURL'), `${ISSUER}/.well-known/openid-configuration`);
  front.clientId = directive(front.apacheConf, 'OIDCClientID');
}

/** Starts a front's vestibule and Apache. */
async function startFront(front, bin) {
  const vestibule = procs.start(`vestibule (${front.name})`, bin, ['serve', '--config', path.join(front.dir, 'vestibule.toml')], { env: vestibuleEnv() });
  // Its own process group, so that after() can stop the parent and its children.
  // /usr/sbin is not on every user's PATH.
  const apache2 = fs.existsSync('/usr/sbin/apache2') ? '/usr/sbin/apache2' : 'apache2';
  const apache = procs.start(`apache (${front.name})`, apache2, ['-f', path.join(front.dir, 'httpd.conf'), '-DFOREGROUND'], { detached: true });
  await procs.waitForOutput(vestibule, `vestibule: listening on ${front.vestibule}`);
  await waitForPort(front.apachePort, apache);
  // Apache writes its pid file once it has bound its port and started.
  const end = Date.now() + 10000;
  while (!fs.existsSync(path.join(front.dir, 'httpd.pid'))) {
    if (apache.exited || Date.now() > end) {
      const log = path.join(front.dir, 'error.log');
      throw new Error(`apache (${front.name}) did not start (${JSON.stringify(apache.exited)}):\n${apache.out}\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
    }
    await sleep(50);
  }
}

async function setUp() {
  const bin = vestibuleBin();
  for (const port of [OP_PORT, APACHE_PORT, VESTIBULE_PORT, WHOAMI_PORT, JWT_APACHE_PORT, JWT_VESTIBULE_PORT]) {
    await assertPortFree(port);
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-apache-'));
  for (const front of Object.values(fronts)) prepareFront(front);

  // The demo OpenID Connect provider, with the client each of the doc's
  // Apache configurations names.
  const clients = Object.values(fronts).map((front) => ({
    client_id: front.clientId,
    client_secret: directive(front.apacheConf, 'OIDCClientSecret'),
    redirect_uris: [directive(front.apacheConf, 'OIDCRedirectURI')],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }));
  assert.notEqual(fronts.headers.clientId, fronts.jwt.clientId, 'the two Apache configurations register distinct clients');
  provider = new Provider(ISSUER, {
    clients,
    // The provider's signing key, published at its jwks_uri.
    jwks: { keys: [OP_JWK] },
    claims: {
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    // Put the scopes' claims (email, name, groups, ...) in the ID token too,
    // not only in the userinfo response: vestibule sees only the token.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['vestibule-e2e-cookie-key'] },
    // Explicit lifetimes (seconds), which also keeps the defaults' notices quiet.
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: (ctx, token, client) => (client?.clientId === fronts.jwt.clientId ? JWT_ID_TOKEN_TTL : 600),
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            preferred_username: id,
            email: ACCOUNT.email,
            email_verified: true,
            name: ACCOUNT.name,
            groups: ACCOUNT.groups,
          };
        },
      };
    },
  });
  // Errors inside the provider would otherwise only show as a 500 page.
  provider.on('server_error', (ctx, err) => { console.error('oidc-provider server_error:', err); });
  opServer = provider.listen(OP_PORT, '127.0.0.1');
  await new Promise((resolve, reject) => { opServer.once('listening', resolve); opServer.once('error', reject); });

  // The variant's vestibule must name the provider's issuer and key set
  // exactly as its discovery document does.
  const discovery = JSON.parse((await request(`${ISSUER}/.well-known/openid-configuration`)).body);
  assert.equal(tomlString(fronts.jwt.toml, 'issuer'), discovery.issuer);
  assert.equal(tomlString(fronts.jwt.toml, 'jwks_url'), discovery.jwks_uri);
  assert.match(fronts.jwt.toml, new RegExp(`^audience = \\["${fronts.jwt.clientId}"\\]$`, 'm'), 'audience = the variant\'s client ID');

  const whoami = procs.start('whoami', bin, ['whoami', '--listen', `127.0.0.1:${WHOAMI_PORT}`], { env: vestibuleEnv() });
  await procs.waitForOutput(whoami, `whoami: listening on http://127.0.0.1:${WHOAMI_PORT}`);
  for (const front of Object.values(fronts)) await startFront(front, bin);

  // The variant's vestibule answers 503 until it has fetched the provider's
  // keys once: wait for that with a correctly signed token.
  const token = jws({ alg: 'RS256', kid: OP_KID }, idTokenClaims(fronts.jwt.clientId));
  const end = Date.now() + 15000;
  for (;;) {
    const res = await request(`${JWT_VESTIBULE}/ready`, { headers: [['Accept', 'application/json'], ['X-Id-Token', token]] });
    if (res.status !== 503) break;
    if (Date.now() > end) throw new Error(`vestibule (jwt) still answers 503 after 15 s: ${res.body.slice(0, 300)}`);
    await sleep(100);
  }
}

after(async () => {
  const report = procs.failed || Boolean(process.env.KEEP_E2E_DIR);
  await procs.stopAll({ report });
  if (opServer) {
    opServer.closeAllConnections?.();
    await new Promise((r) => opServer.close(r));
  }
  if (report) {
    for (const front of Object.values(fronts)) {
      const log = front.dir && path.join(front.dir, 'error.log');
      if (log && fs.existsSync(log)) console.error(`----- apache (${front.name}) error.log -----\n${fs.readFileSync(log, 'utf8')}`);
    }
  }
  if (dir && !process.env.KEEP_E2E_DIR) fs.rmSync(dir, { recursive: true, force: true });
});

/** Wraps a test body so that a failure prints the peers' logs in after(). */
const t = (name, fn) => test(name, (ctx) => procs.track(() => fn(ctx)));

// ---------------------------------------------------------------- tests

/**
 * A full OpenID Connect sign-in through `front`'s Apache with the front's
 * cookie jar, as a browser would: Apache → the provider's login and consent
 * pages → Apache's redirect_uri → the original URL. Once per front.
 */
async function signIn(front) {
  if (front.signedIn) return;
  const { jar } = front;
  const start = `${front.apache}/hello?x=1`;
  // Apache → provider's /auth → login interaction.
  let { res, url, visited } = await browse(jar, start);
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
  assert.ok(visited.some((v) => v.startsWith(`GET ${front.apache}/redirect_uri?`)), `never came back to redirect_uri:\n${visited.join('\n')}`);
  assert.equal(url, start, `did not land on the original URL:\n${visited.join('\n')}`);
  assert.equal(res.status, 200, `${res.status}: ${res.body.slice(0, 1000)}`);
  assert.ok(
    [...jar.cookies.values()].some((c) => c.name === 'mod_auth_openidc_session'),
    'no mod_auth_openidc session cookie',
  );
  front.signedIn = true;
  front.signedInAt = Date.now();
}

/** A JSON request to `front`'s Apache with its session cookie. */
function asSignedIn(front, pathAndQuery, extra = []) {
  const url = `${front.apache}${pathAndQuery}`;
  return request(url, { headers: [['Accept', 'application/json'], ...extra, ...front.jar.header(url)] });
}

/** Runs `vestibule check --strict` on a front's vestibule.toml. */
function checkStrict(front) {
  const r = spawnSync(vestibuleBin(), ['check', '--strict', '--config', path.join(front.dir, 'vestibule.toml')], {
    env: vestibuleEnv(), encoding: 'utf8', timeout: 10000,
  });
  assert.equal(r.status, 0, `vestibule check: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
}

// ------------------------------------------------ tests: trusted headers

t('the doc\'s vestibule configuration passes `vestibule check --strict`', () => {
  checkStrict(fronts.headers);
});

t('(a) a full OpenID Connect sign-in through Apache reaches the app as that user', async () => {
  await signIn(fronts.headers);
  const { seen, one, headers } = seenHeaders(await asSignedIn(fronts.headers, '/hello?x=1'));
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
  await signIn(fronts.headers);
  const res = await asSignedIn(fronts.headers, '/hello', [
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

// --------------------------------------------- tests: signed ID token

/** No token, under any header name, reached the app. */
function assertNoTokenUpstream(seen) {
  for (const [name, value] of seen.headers) {
    assert.ok(!/^x[-_]id[-_]token$/i.test(name), `the token header reached the app: ${name}`);
    assert.ok(!/^oidc[-_]/i.test(name), `claim or token header leaked upstream: ${name}`);
    // A JWS starts with base64url('{"'): eyJ.
    assert.ok(!/eyJ[\w-]*\.[\w-]*\./.test(value), `a token reached the app in ${name}`);
  }
}

t('(jwt-a) a full sign-in through the second Apache reaches the app as the ID token\'s user', async () => {
  await signIn(fronts.jwt);
  const { seen, one, headers } = seenHeaders(await asSignedIn(fronts.jwt, '/hello?x=1'));
  assert.equal(seen.uri, '/hello?x=1');
  // The oidc preset's username is preferred_username (the provider sends it).
  assert.equal(one('remote-user'), USER, 'Remote-User is the ID token\'s preferred_username');
  assert.equal(one('remote-email'), ACCOUNT.email);
  assert.equal(one('remote-name'), ACCOUNT.name);
  assert.equal(one('remote-groups'), ACCOUNT.groups.join(','));
  for (const h of ['remote-user', 'remote-email', 'remote-name', 'remote-groups']) {
    assert.equal(headers.get(h).length, 1, `${h} once`);
  }
  assertNoTokenUpstream(seen);
  assert.equal(new Map(seen.identity).get('remote-user'), USER);
});

t('(jwt-b) forged and altered tokens sent straight to vestibule from Apache\'s address get 401', async () => {
  const aud = fronts.jwt.clientId;
  const header = { alg: 'RS256', kid: OP_KID };
  const good = jws(header, idTokenClaims(aud));
  const [h64, , s64] = good.split('.');
  const admin = { sub: 'admin', preferred_username: 'admin', email: 'admin@example.org', groups: ['superadmins'] };
  const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const now = Math.floor(Date.now() / 1000);
  const publicPem = OP_KEY.publicKey.export({ type: 'spki', format: 'pem' });
  const forged = {
    // The real signature over another payload.
    'altered payload': `${h64}.${b64url(idTokenClaims(aud, admin))}.${s64}`,
    'alg none, no signature': `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(idTokenClaims(aud, admin))}.`,
    'alg none, real signature': `${b64url({ alg: 'none', kid: OP_KID })}.${b64url(idTokenClaims(aud, admin))}.${s64}`,
    'signed with another key, same kid': jws(header, idTokenClaims(aud, admin), (i) => crypto.sign('sha256', Buffer.from(i), otherKey)),
    'HS256 keyed with the provider\'s public key': jws({ alg: 'HS256', kid: OP_KID }, idTokenClaims(aud, admin),
      (i) => crypto.createHmac('sha256', publicPem).update(i).digest()),
    'expired an hour ago': jws(header, idTokenClaims(aud, { iat: now - 4200, auth_time: now - 4200, exp: now - 3600 })),
    'another audience': jws(header, idTokenClaims('some-other-client')),
    'another issuer': jws(header, idTokenClaims(aud, { iss: 'http://127.0.0.1:18780/other' })),
    'not a JWT': 'not-a-token',
  };
  for (const [what, token] of Object.entries(forged)) {
    const res = await request(`${JWT_VESTIBULE}/hello`, {
      headers: [['Accept', 'application/json'], ['X-Id-Token', token]],
      localAddress: '127.0.0.1',
    });
    assert.equal(res.status, 401, `${what}: expected 401, got ${res.status} ${res.body.slice(0, 300)}`);
  }

  // The control case: the same request with a correctly signed token passes.
  const ok = seenHeaders(await request(`${JWT_VESTIBULE}/hello`, {
    headers: [['Accept', 'application/json'], ['X-Id-Token', good]],
    localAddress: '127.0.0.1',
  }));
  assert.equal(ok.one('remote-user'), USER);
  assert.equal(ok.one('remote-groups'), ACCOUNT.groups.join(','));
  assertNoTokenUpstream(ok.seen);

  // Two spellings of the token header from one peer are ambiguous: 400.
  const twice = await request(`${JWT_VESTIBULE}/hello`, {
    headers: [['Accept', 'application/json'], ['X-Id-Token', good], ['X_Id_Token', good]],
    localAddress: '127.0.0.1',
  });
  assert.equal(twice.status, 400, `X-Id-Token and X_Id_Token: ${twice.status} ${twice.body.slice(0, 300)}`);
});

t('(jwt-b) a valid token from an untrusted address counts for nothing and is stripped', async () => {
  const token = jws({ alg: 'RS256', kid: OP_KID }, idTokenClaims(fronts.jwt.clientId));
  const headers = [['Accept', 'application/json'], ['X-Id-Token', token]];
  const denied = await request(`${JWT_VESTIBULE}/hello`, { headers, localAddress: '127.0.0.2' });
  assert.equal(denied.status, 401, `required route from 127.0.0.2: ${denied.status} ${denied.body.slice(0, 300)}`);

  const pub = seenHeaders(await request(`${JWT_VESTIBULE}/public/page`, { headers, localAddress: '127.0.0.2' }));
  assert.equal(pub.seen.uri, '/public/page');
  assertNoTokenUpstream(pub.seen);
  for (const [n, v] of pub.seen.identity) assert.equal(v, '', `identity header ${n}=${v} reached the app on a public route`);

  // On a public route, even a trusted peer's valid token is stripped.
  const trustedPub = seenHeaders(await request(`${JWT_VESTIBULE}/public/page`, { headers, localAddress: '127.0.0.1' }));
  assertNoTokenUpstream(trustedPub.seen);
  for (const [n, v] of trustedPub.seen.identity) assert.equal(v, '', `identity header ${n}=${v} reached the app on a public route`);
});

t('(jwt-c) the doc\'s signed-token vestibule configuration passes `vestibule check --strict`', () => {
  checkStrict(fronts.jwt);
});

t('(jwt-d) a token and identity headers a signed-in client sends to the second Apache are replaced', async () => {
  await signIn(fronts.jwt);
  const forgedToken = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(idTokenClaims(fronts.jwt.clientId, { sub: 'admin', preferred_username: 'admin', groups: ['superadmins'] }))}.`;
  const res = await asSignedIn(fronts.jwt, '/hello', [
    ['X-Id-Token', forgedToken],
    ['X_Id_Token', forgedToken],
    ['Remote-User', 'admin'],
    ['Remote_User', 'admin'],
    ['Remote-Groups', 'superadmins'],
    ['Remote-Email', 'admin@example.org'],
  ]);
  const { seen, headers, one } = seenHeaders(res);
  assert.equal(one('remote-user'), USER);
  assert.equal(one('remote-groups'), ACCOUNT.groups.join(','));
  assert.equal(one('remote-email'), ACCOUNT.email);
  for (const [name, values] of headers) {
    for (const v of values) {
      assert.ok(!/admin@|^admin$|superadmins/.test(v), `forged value reached the app: ${name}: ${v}`);
    }
  }
  assertNoTokenUpstream(seen);
});

t('(jwt-e) Apache\'s session ends with the ID token, and a page load signs in again silently', async () => {
  await signIn(fronts.jwt);
  // The variant's ID tokens live JWT_ID_TOKEN_TTL seconds from the code
  // exchange, which happened just before signedInAt.
  const wait = fronts.jwt.signedInAt + JWT_ID_TOKEN_TTL * 1000 + 1500 - Date.now();
  if (wait > 0) await sleep(wait);

  // A script's request: the session is over, Apache answers 401 itself
  // (vestibule would still accept the token for its 60 s leeway).
  const script = await asSignedIn(fronts.jwt, '/after-expiry');
  assert.equal(script.status, 401, `after the ID token expired, a JSON request through Apache: ${script.status} ${script.body.slice(0, 300)}`);
  assert.ok(
    (script.headers['set-cookie'] ?? []).some((c) => /^mod_auth_openidc_session=;/.test(c)),
    `the 401 is not Apache ending its session: ${JSON.stringify(script.headers)}`,
  );

  // A page load: Apache → provider (its session is still on, no prompt) →
  // redirect_uri → the page, with a fresh ID token.
  const { res, url, visited } = await browse(fronts.jwt.jar, `${JWT_APACHE}/after-expiry`);
  assert.ok(visited.some((v) => v.startsWith(`GET ${ISSUER}/`)), `did not go back to the provider:\n${visited.join('\n')}`);
  assert.ok(!visited.some((v) => v.includes('/interaction/')), `the provider showed a page:\n${visited.join('\n')}`);
  assert.equal(url, `${JWT_APACHE}/after-expiry`, `did not land on the page:\n${visited.join('\n')}`);
  assert.equal(res.status, 200, `${res.status}: ${res.body.slice(0, 500)}`);
  const { one, seen } = seenHeaders(await asSignedIn(fronts.jwt, '/after-expiry'));
  assert.equal(one('remote-user'), USER);
  assertNoTokenUpstream(seen);
});
