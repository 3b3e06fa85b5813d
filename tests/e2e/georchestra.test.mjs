// geOrchestra's pre-authentication, as docs/integrations/georchestra-mellon.md
// configures it, in two parts:
//
//  - Real front (the last two tests): the page's ```apache block runs in a
//    private Apache 2.4 with Debian's mod_auth_mellon (ports and file paths
//    changed only), against a SAML 2.0 IdP run in this process with samlify
//    (signed Response, RSA-SHA256). A client with a cookie jar signs in at
//    /login/saml: mellon's AuthnRequest (HTTP-Redirect), the IdP's Response
//    (HTTP-POST), mellon's session, then the doc's RequestHeader lines send
//    the preauth-* headers to a vestibule running the page's [accounts.ldap]
//    block against Debian's slapd. The test checks the user, organisation and
//    role membership with ldapsearch, the sec-* headers the app gets (roles
//    read back from slapd), that Apache strips forged headers, and that
//    mellon refuses a Response changed after signing.
//  - Header edge cases (the first tests): vestibule alone, running the
//    page's first ```toml block byte for byte, gets the headers that Apache
//    configuration produces, sent by the test from a trusted and from an
//    untrusted address: duplicates, spellings, markers and encodings that a
//    well-behaved Apache would never send.
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test georchestra.test.mjs
// (needs apache2, libapache2-mod-auth-mellon, slapd, ldap-utils, openssl;
// Apache starts as root and drops to www-data when run as root).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import saml from 'samlify';

import { CookieJar, request } from './http.mjs';
import { Processes, assertPortFree, sleep, vestibuleBin, vestibuleEnv } from './processes.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DOC = path.join(HERE, '..', '..', 'docs', 'integrations', 'georchestra-mellon.md');

const VESTIBULE_PORT = 18792;
const WHOAMI_PORT = 18793;
const VESTIBULE = `http://127.0.0.1:${VESTIBULE_PORT}`;

// The SAML user, as the IdP would describe them.
const USER = {
  username: 'zoe.oster@example.org',
  email: 'zoe.oster@example.org',
  firstname: 'Zoë',
  lastname: 'Øster',
  org: 'Région Sud',
  roles: ['ROLE_USER', 'ROLE_GN_EDITOR'],
};

/** Apache's `{base64}%{base64:…}`: the prefix and padded standard base64 of UTF-8. */
const b64 = (s) => `{base64}${Buffer.from(s, 'utf8').toString('base64')}`;

/** What the doc's Apache config sends for USER (see its RequestHeader set lines). */
function preauthHeaders() {
  return [
    ['sec-georchestra-preauthenticated', 'true'],
    ['preauth-username', USER.username],
    ['preauth-email', USER.email],
    ['preauth-firstname', b64(USER.firstname)],
    ['preauth-lastname', b64(USER.lastname)],
    ['preauth-org', b64(USER.org)],
    ['preauth-roles', USER.roles.join(';')],
    ['preauth-provider', 'renater'],
    ['preauth-provider-id', USER.username],
  ];
}

// ---------------------------------------------------------------- helpers

/** The body of the first ```lang fenced block of a Markdown file, exactly. */
function fencedBlock(file, lang) {
  const text = fs.readFileSync(file, 'utf8');
  const re = new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'm');
  const m = re.exec(text);
  if (!m) throw new Error(`${file}: no \`\`\`${lang} block`);
  return m[1];
}

const procs = new Processes();

/** A GET asking whoami for JSON; `headers` is a list of [name, value] pairs sent as given. */
function get(url, { headers = [], localAddress } = {}) {
  return request(url, { headers: [['Accept', 'application/json'], ...headers], localAddress });
}

/** whoami's JSON: every header line as received, by lowercased name. */
function seen(res) {
  assert.equal(res.status, 200, `expected 200, got ${res.status}: ${res.body.slice(0, 500)}`);
  const body = JSON.parse(res.body);
  const m = new Map();
  for (const [n, v] of body.headers) {
    const k = n.toLowerCase();
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(v);
  }
  return {
    body,
    headers: m,
    /** The single value of `name` (fails if sent more than once). */
    one(name) {
      const v = m.get(name);
      if (v === undefined) return undefined;
      assert.equal(v.length, 1, `${name} sent ${v.length} times: ${JSON.stringify(v)}`);
      return v[0];
    },
  };
}

/** No identity reached the app: every sec-* value vestibule sets is empty, no preauth-* at all. */
function assertAnonymous(s, why) {
  for (const h of ['sec-username', 'sec-email', 'sec-firstname', 'sec-lastname', 'sec-org', 'sec-roles']) {
    assert.equal(s.one(h) ?? '', '', `${why}: ${h} must be empty, got ${JSON.stringify(s.headers.get(h))}`);
  }
  for (const name of s.headers.keys()) {
    assert.ok(!/^(preauth[-_]|sec[-_]georchestra)/.test(name), `${why}: ${name} reached the app`);
  }
  for (const [n, v] of s.body.identity) {
    if (n === 'sec-proxy') continue;
    assert.equal(v, '', `${why}: identity header ${n}=${v} reached the app`);
  }
}

// ---------------------------------------------------------------- set-up

let dir;

before(() => procs.track(setUp));

async function setUp() {
  const bin = vestibuleBin();
  for (const port of [VESTIBULE_PORT, WHOAMI_PORT]) await assertPortFree(port);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-e2e-georchestra-'));
  fs.writeFileSync(path.join(dir, 'vestibule.toml'), fencedBlock(DOC, 'toml'));
  const whoami = procs.start('whoami', bin, ['whoami', '--listen', `127.0.0.1:${WHOAMI_PORT}`], { env: vestibuleEnv() });
  const vestibule = procs.start('vestibule', bin, ['serve', '--config', path.join(dir, 'vestibule.toml')], { env: vestibuleEnv() });
  await procs.waitForOutput(whoami, `whoami: listening on http://127.0.0.1:${WHOAMI_PORT}`);
  await procs.waitForOutput(vestibule, `vestibule: listening on http://127.0.0.1:${VESTIBULE_PORT}`);
}

after(async () => {
  await procs.stopAll();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const t = (name, fn) => test(name, (ctx) => procs.track(() => fn(ctx)));

// ---------------------------------------------------------------- tests

t('the doc\'s configuration uses the georchestra dialect and profile and passes `check --strict`', () => {
  const toml = fencedBlock(DOC, 'toml');
  assert.match(toml, /^dialect = "georchestra"$/m);
  assert.match(toml, /^profile = "georchestra"$/m);
  assert.match(toml, /^trusted_proxies = \["127\.0\.0\.1"\]$/m);
  const r = spawnSync(vestibuleBin(), ['check', '--strict', '--config', path.join(dir, 'vestibule.toml')], {
    env: vestibuleEnv(), encoding: 'utf8', timeout: 10000,
  });
  assert.equal(r.status, 0, `vestibule check --strict: exit ${r.status}\n${r.stderr}`);
});

t('from the trusted front, preauth-* becomes geOrchestra sec-* headers', async () => {
  const s = seen(await get(`${VESTIBULE}/geonetwork/srv/eng/catalog.search`, {
    headers: preauthHeaders(),
    localAddress: '127.0.0.1',
  }));
  assert.equal(s.body.uri, '/geonetwork/srv/eng/catalog.search');
  assert.equal(s.one('sec-username'), USER.username);
  assert.equal(s.one('sec-email'), USER.email);
  // Non-ASCII values go out as {base64} + padded standard base64 of UTF-8.
  assert.equal(s.one('sec-firstname'), '{base64}Wm/Dqw==');
  assert.equal(s.one('sec-firstname'), b64(USER.firstname));
  assert.equal(s.one('sec-lastname'), b64(USER.lastname));
  assert.equal(s.one('sec-org'), b64(USER.org));
  assert.equal(s.one('sec-roles'), USER.roles.join(';'));
  assert.equal(s.one('sec-proxy'), 'true');
  // The input contract itself is not passed on.
  for (const name of s.headers.keys()) {
    assert.ok(!/^(preauth[-_]|sec[-_]georchestra)/.test(name), `${name} reached the app`);
  }
});

t('ASCII values are sent plain, and unpadded {base64} input is accepted', async () => {
  const headers = preauthHeaders().map(([n, v]) => {
    if (n === 'preauth-firstname') return [n, '{base64}UGllcnJl']; // "Pierre", no padding needed
    if (n === 'preauth-lastname') return [n, '{base64}Wm/Dqw']; // Zoë, without the == padding
    if (n === 'preauth-org') return [n, 'geOrchestra'];
    return [n, v];
  });
  const s = seen(await get(`${VESTIBULE}/`, { headers, localAddress: '127.0.0.1' }));
  assert.equal(s.one('sec-firstname'), 'Pierre');
  assert.equal(s.one('sec-lastname'), '{base64}Wm/Dqw==');
  assert.equal(s.one('sec-org'), 'geOrchestra');
});

t('client-sent sec-* headers never reach the app, even through the trusted front', async () => {
  const s = seen(await get(`${VESTIBULE}/console/`, {
    headers: [
      ...preauthHeaders(),
      ['sec-username', 'admin'],
      ['sec_roles', 'ROLE_SUPERUSER'],
      ['Sec-Org', 'evil'],
      ['sec-json-user', 'eyJ1c2VybmFtZSI6ImFkbWluIn0='],
    ],
    localAddress: '127.0.0.1',
  }));
  assert.equal(s.one('sec-username'), USER.username);
  assert.equal(s.one('sec-roles'), USER.roles.join(';'));
  assert.equal(s.one('sec-org'), b64(USER.org));
  assert.ok(!s.headers.has('sec_roles'), 'sec_roles reached the app');
  assert.ok(!s.headers.has('sec-json-user'), 'sec-json-user reached the app');
});

t('the same headers from an untrusted address yield no identity', async () => {
  const s = seen(await get(`${VESTIBULE}/geonetwork/`, {
    headers: [...preauthHeaders(), ['sec-username', 'admin'], ['preauth_username', 'admin']],
    localAddress: '127.0.0.2',
  }));
  assertAnonymous(s, 'from 127.0.0.2');
  assert.equal(s.one('sec-proxy'), 'true');
});

t('preauth-* without the `true` marker yields no identity', async () => {
  const without = preauthHeaders().filter(([n]) => n !== 'sec-georchestra-preauthenticated');
  assertAnonymous(seen(await get(`${VESTIBULE}/`, { headers: without, localAddress: '127.0.0.1' })), 'no marker');

  const wrong = [['sec-georchestra-preauthenticated', 'false'], ...without];
  assertAnonymous(seen(await get(`${VESTIBULE}/`, { headers: wrong, localAddress: '127.0.0.1' })), 'marker false');

  const encoded = [['sec-georchestra-preauthenticated', b64('true')], ...without];
  assertAnonymous(seen(await get(`${VESTIBULE}/`, { headers: encoded, localAddress: '127.0.0.1' })), 'marker {base64}');
});

t('the trusted front sending a header twice or under two spellings is refused', async () => {
  const twice = await get(`${VESTIBULE}/`, {
    headers: [...preauthHeaders(), ['preauth_username', 'admin']],
    localAddress: '127.0.0.1',
  });
  assert.equal(twice.status, 400, `two spellings: ${twice.status} ${twice.body.slice(0, 300)}`);
  const comma = await get(`${VESTIBULE}/`, {
    headers: preauthHeaders().map(([n, v]) => (n === 'preauth-roles' ? [n, 'ROLE_USER;ROLE_A,ROLE_B'] : [n, v])),
    localAddress: '127.0.0.1',
  });
  assert.equal(comma.status, 400, `role with a comma: ${comma.status} ${comma.body.slice(0, 300)}`);
});

// ------------------------- the real front: Apache + mod_auth_mellon + SAML IdP
//
// The page's ```apache block runs in a private Apache 2.4 with Debian's
// mod_auth_mellon, on loopback with its own ServerRoot (no system service).
// Only ports and file paths are changed: the listener, the TLS and SP key
// files, the IdP metadata file, and the vestibule it proxies to (the one with
// the page's [accounts.ldap] block, on its own port). The SAML IdP is samlify
// in this process: it publishes its metadata, reads mellon's AuthnRequest
// (HTTP-Redirect binding, signature checked against mellon's SP metadata)
// and answers with a Response signed with RSA-SHA256 (HTTP-POST binding),
// which the test's client posts to mellon like a browser's auto-submitting
// form. vestibule writes the account to Debian's slapd, started here with
// geOrchestra's schema (crates/vestibule/tests/fixtures/ldap).

const APACHE_PORT = 18798;
const IDP_PORT = 18799;
const APACHE = `https://127.0.0.1:${APACHE_PORT}`;
const IDP = `http://127.0.0.1:${IDP_PORT}`;
const IDP_ENTITY_ID = `${IDP}/metadata`;
const LDAP_PORT = 18796;
const LDAP_VESTIBULE_PORT = 18797;
const LDAP_BASE = 'dc=georchestra,dc=org';
const LDAP_PASSWORD = 'e2e-slapd-password';
const FIXTURES = path.join(HERE, '..', '..', 'crates', 'vestibule', 'tests', 'fixtures', 'ldap');

// The SAML attributes the doc's MellonSetEnv lines read (by OID, URI name
// format), with the values the IdP asserts for USER. Roles are
// eduPersonEntitlement: one value per role, which mellon merges with ";".
const SAML_ATTRIBUTES = [
  ['urn:oid:1.3.6.1.4.1.5923.1.1.1.6', [USER.username]], // eduPersonPrincipalName
  ['urn:oid:0.9.2342.19200300.100.1.3', [USER.email]], // mail
  ['urn:oid:2.5.4.42', [USER.firstname]], // givenName
  ['urn:oid:2.5.4.4', [USER.lastname]], // sn
  ['urn:oid:2.5.4.10', [USER.org]], // o
  ['urn:oid:1.3.6.1.4.1.5923.1.1.1.7', ['ROLE_SUPERUSER', 'ROLE_ADMINISTRATOR', 'ROLE_GN_EDITOR']], // eduPersonEntitlement
];

/** Every ```lang fenced block of a Markdown file, in order. */
function fencedBlocks(file, lang) {
  const text = fs.readFileSync(file, 'utf8');
  const re = new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'gm');
  return [...text.matchAll(re)].map((m) => m[1]);
}

async function waitForPort(port, rec, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const open = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (open) return;
    if (rec?.exited) throw new Error(`${rec.name} exited (${JSON.stringify(rec.exited)}):\n${rec.out}`);
    if (Date.now() > end) throw new Error(`nothing listens on ${port}`);
    await sleep(20);
  }
}

/** `ldapsearch` as the admin: Map DN → Map attribute (lowercased) → sorted values; `::` values decoded. */
function ldapsearch(base, filter) {
  const r = spawnSync('ldapsearch', ['-x', '-LLL', '-o', 'ldif-wrap=no', '-H', `ldap://127.0.0.1:${LDAP_PORT}`,
    '-D', `cn=admin,${LDAP_BASE}`, '-w', LDAP_PASSWORD, '-b', base, filter], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, `ldapsearch: ${r.stderr}`);
  const entries = new Map();
  for (const block of r.stdout.split('\n\n').filter((b) => b.trim())) {
    let dn = '';
    const attrs = new Map();
    for (const line of block.split('\n')) {
      const m = /^([^:]+)(::?) (.*)$/.exec(line);
      if (!m) continue;
      const value = m[2] === '::' ? Buffer.from(m[3], 'base64').toString('utf8') : m[3];
      if (m[1] === 'dn') { dn = value; continue; }
      const k = m[1].toLowerCase();
      if (!attrs.has(k)) attrs.set(k, []);
      attrs.get(k).push(value);
    }
    for (const v of attrs.values()) v.sort();
    entries.set(dn, attrs);
  }
  return entries;
}

/** Runs a command, failing the test with its output if it fails. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30000, ...opts });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r;
}

const xmlEscape = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const xmlUnescape = (s) => s.replace(/&quot;/g, '"').replace(/&gt;/g, '>').replace(/&lt;/g, '<').replace(/&amp;/g, '&');

/**
 * A browser: keeps Apache's cookies (never sent to the IdP, another origin),
 * follows redirects, and submits the IdP's auto-submitting POST form as a
 * browser's script would. Returns the final response and the hops.
 */
async function browse(jar, ca, url, extraHeaders = []) {
  const hops = [];
  let method = 'GET';
  let body;
  for (let hop = 0; hop < 20; hop++) {
    hops.push(`${method} ${url}`);
    const toApache = url.startsWith(APACHE);
    const res = await request(url, {
      method,
      body,
      ca,
      // JSON from whoami at the end of the way (mellon does not look at Accept).
      headers: [['Accept', 'application/json'], ...extraHeaders, ...(toApache ? jar.header(url) : [])],
    });
    if (toApache) jar.store(res.headers['set-cookie']);
    if ([301, 302, 303, 307, 308].includes(res.status)) {
      url = new URL(res.headers.location, url).href;
      method = 'GET';
      body = undefined;
      continue;
    }
    const form = /<form method="post" action="([^"]+)">([\s\S]*?)<\/form>/.exec(res.body);
    if (res.status === 200 && !toApache && form) {
      const fields = [...form[2].matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)]
        .map(([, n, v]) => `${n}=${encodeURIComponent(xmlUnescape(v))}`);
      url = xmlUnescape(form[1]);
      method = 'POST';
      body = fields.join('&');
      continue;
    }
    return { res, hops };
  }
  throw new Error(`too many hops:\n${hops.join('\n')}`);
}

/** The IdP's Response for one AuthnRequest, as the test wrote it (before base64). */
const issuedResponses = [];
/** When set, the IdP changes its signed Response with it before sending it. */
let tamperWith = null;

/**
 * The SAML IdP, with samlify: its metadata, and its SSO endpoint for the
 * HTTP-Redirect binding answering with the HTTP-POST binding
 * (SAML 2.0 Bindings §3.4 and §3.5).
 */
function startIdp(spMetadataXml, key, cert) {
  // samlify refuses to parse without a schema validator. The messages it
  // parses here are mellon's AuthnRequests, whose signature it checks; the
  // XML parser under test is mellon's (lasso), not this one.
  saml.setSchemaValidator({ validate: async () => 'skipped' });
  const idp = saml.IdentityProvider({
    entityID: IDP_ENTITY_ID,
    privateKey: key,
    signingCert: cert,
    wantAuthnRequestsSigned: true,
    requestSignatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    nameIDFormat: ['urn:oasis:names:tc:SAML:2.0:nameid-format:transient'],
    singleSignOnService: [{ Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${IDP}/sso` }],
  });
  // wantMessageSigned: the whole Response is signed too (mellon checks it).
  const sp = saml.ServiceProvider({ metadata: spMetadataXml, wantMessageSigned: true });

  const server = http.createServer(async (req, res) => {
    try {
      const u = new URL(req.url, IDP);
      if (u.pathname === '/metadata') {
        res.writeHead(200, { 'Content-Type': 'application/samlmetadata+xml' });
        res.end(idp.getMetadata());
        return;
      }
      assert.equal(u.pathname, '/sso');
      // The signed part of a Redirect-binding message is the query as sent,
      // without Signature (Bindings §3.4.4.1).
      const raw = req.url.slice(req.url.indexOf('?') + 1);
      const octetString = raw.split('&').filter((p) => !p.startsWith('Signature=')).join('&');
      const query = Object.fromEntries(u.searchParams);
      const parsed = await idp.parseLoginRequest(sp, 'redirect', { query, octetString });
      const requestId = parsed.extract.request.id;
      const acs = sp.entityMeta.getAssertionConsumerService('post');
      const { context, entityEndpoint } = await idp.createLoginResponse(sp, parsed, 'post', {}, () => {
        const now = new Date();
        const at = (s) => new Date(now.getTime() + s * 1000).toISOString();
        const assertionId = `_${crypto.randomUUID()}`;
        const attrs = SAML_ATTRIBUTES.map(([name, values]) => `<saml:Attribute Name="${name}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">${
          values.map((v) => `<saml:AttributeValue>${xmlEscape(v)}</saml:AttributeValue>`).join('')}</saml:Attribute>`).join('');
        const xml = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_${crypto.randomUUID()}" Version="2.0" IssueInstant="${at(0)}" Destination="${acs}" InResponseTo="${requestId}">`
          + `<saml:Issuer>${IDP_ENTITY_ID}</saml:Issuer>`
          + '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
          + `<saml:Assertion ID="${assertionId}" Version="2.0" IssueInstant="${at(0)}">`
          + `<saml:Issuer>${IDP_ENTITY_ID}</saml:Issuer>`
          + `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient">_${crypto.randomUUID()}</saml:NameID>`
          + `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${at(300)}" Recipient="${acs}" InResponseTo="${requestId}"/></saml:SubjectConfirmation></saml:Subject>`
          + `<saml:Conditions NotBefore="${at(-60)}" NotOnOrAfter="${at(300)}"><saml:AudienceRestriction><saml:Audience>${xmlEscape(sp.entityMeta.getEntityID())}</saml:Audience></saml:AudienceRestriction></saml:Conditions>`
          + `<saml:AuthnStatement AuthnInstant="${at(0)}" SessionIndex="${assertionId}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`
          + `<saml:AttributeStatement>${attrs}</saml:AttributeStatement>`
          + '</saml:Assertion></samlp:Response>';
        return { id: assertionId, context: xml };
      }, u.searchParams.get('RelayState') ?? '');
      let xml = Buffer.from(context, 'base64').toString('utf8');
      // A forgery: a value changed after the signature was made.
      if (tamperWith) xml = tamperWith(xml);
      issuedResponses.push(xml);
      const sent = tamperWith ? Buffer.from(xml, 'utf8').toString('base64') : context;
      const relay = u.searchParams.get('RelayState');
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html><body onload="document.forms[0].submit()"><form method="post" action="${xmlEscape(entityEndpoint)}">`
        + `<input type="hidden" name="SAMLResponse" value="${xmlEscape(sent)}"/>`
        + (relay ? `<input type="hidden" name="RelayState" value="${xmlEscape(relay)}"/>` : '')
        + '</form></body></html>');
    } catch (e) {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`IdP error: ${e?.stack ?? e}`);
    }
  });
  return { idp, server };
}

let idpServer;

after(async () => {
  if (idpServer) {
    idpServer.closeAllConnections?.();
    await new Promise((r) => idpServer.close(r));
  }
});

/** Starts slapd with geOrchestra's tree, and the vestibule with the page's [accounts.ldap] block. */
async function startLdapVestibule(ldapDir) {
  fs.mkdirSync(path.join(ldapDir, 'db'), { recursive: true });
  const conf = path.join(ldapDir, 'slapd.conf');
  fs.writeFileSync(conf, [
    'include /etc/ldap/schema/core.schema',
    'include /etc/ldap/schema/cosine.schema',
    'include /etc/ldap/schema/inetorgperson.schema',
    'include /etc/ldap/schema/nis.schema',
    `include ${path.join(FIXTURES, 'georchestra.schema')}`,
    `pidfile ${ldapDir}/slapd.pid`,
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    'database mdb',
    `suffix "${LDAP_BASE}"`,
    `rootdn "cn=admin,${LDAP_BASE}"`,
    `rootpw ${LDAP_PASSWORD}`,
    `directory ${ldapDir}/db`,
    'maxsize 10485760',
    '',
  ].join('\n'));
  run('/usr/sbin/slapadd', ['-f', conf, '-l', path.join(FIXTURES, 'georchestra-tree.ldif')]);
  const slapd = procs.start('slapd', '/usr/sbin/slapd', ['-f', conf, '-h', `ldap://127.0.0.1:${LDAP_PORT}/`, '-d', '0']);
  await waitForPort(LDAP_PORT, slapd);

  // The page's LDAP block, pointed at this slapd; the route is the first
  // block's (optional identity, the georchestra profile).
  const block = fencedBlocks(DOC, 'toml').find((b) => b.includes('[accounts.ldap]'));
  assert.ok(block, 'the page has a ```toml block with [accounts.ldap]');
  assert.match(block, /^layout = "georchestra"$/m);
  fs.writeFileSync(path.join(ldapDir, 'password'), `${LDAP_PASSWORD}\n`);
  const config = [
    `[server]\nlisten = ["127.0.0.1:${LDAP_VESTIBULE_PORT}"]\nadmin_listen = ""\n`,
    `[database]\ndata_dir = "${path.join(ldapDir, 'data')}"\n`,
    block
      .replace(/^url = "ldap:\/\/127\.0\.0\.1:389".*$/m, `url = "ldap://127.0.0.1:${LDAP_PORT}"`)
      .replace(/^bind_password_file = .*$/m, `bind_password_file = "${path.join(ldapDir, 'password')}"`),
    `[[route]]\nname = "georchestra"\npath_prefix = "/"\nupstream = "http://127.0.0.1:${WHOAMI_PORT}"\nauth = "optional"\nprofile = "georchestra"\n`,
  ].join('\n');
  assert.match(config, new RegExp(`url = "ldap://127.0.0.1:${LDAP_PORT}"`));
  fs.writeFileSync(path.join(ldapDir, 'vestibule.toml'), config);
  const checked = spawnSync(vestibuleBin(), ['check', '--online', '--config', path.join(ldapDir, 'vestibule.toml')], {
    env: vestibuleEnv(), encoding: 'utf8', timeout: 10000,
  });
  assert.equal(checked.status, 0, `vestibule check --online: exit ${checked.status}\n${checked.stderr}`);
  const v = procs.start('vestibule-ldap', vestibuleBin(), ['serve', '--config', path.join(ldapDir, 'vestibule.toml')], { env: vestibuleEnv() });
  await procs.waitForOutput(v, `vestibule: listening on http://127.0.0.1:${LDAP_VESTIBULE_PORT}`);
}

/**
 * The page's ```apache block in a private Apache, with ports and paths
 * changed only. Returns the CA (the TLS certificate) the client trusts.
 */
async function startApache(apacheDir, idpMetadataXml) {
  const mellonDir = path.join(apacheDir, 'mellon');
  fs.mkdirSync(mellonDir, { recursive: true });
  // TLS for the virtual host: a self-signed certificate for 127.0.0.1.
  const tlsCert = path.join(apacheDir, 'georchestra.example.org.pem');
  const tlsKey = path.join(apacheDir, 'georchestra.example.org.key');
  run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=georchestra.example.org',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', tlsKey, '-out', tlsCert]);
  // The SP key, certificate and metadata, as the page says: with
  // mellon_create_metadata, for the entity ID the block names and this
  // Apache's /mellon endpoint.
  const apacheBlock = fencedBlocks(DOC, 'apache');
  assert.equal(apacheBlock.length, 1, 'the page has one ```apache block');
  const entityId = /^\s*MellonSPentityId (\S+)$/m.exec(apacheBlock[0])?.[1];
  assert.equal(entityId, 'https://georchestra.example.org/mellon/metadata');
  run('/usr/sbin/mellon_create_metadata', [entityId, `${APACHE}/mellon`], { cwd: mellonDir });
  const base = entityId.replace(/[^0-9A-Za-z.]/g, '_').replace(/__*/g, '_');
  fs.renameSync(path.join(mellonDir, `${base}.key`), path.join(mellonDir, 'sp.key'));
  fs.renameSync(path.join(mellonDir, `${base}.cert`), path.join(mellonDir, 'sp.cert'));
  const spMetadata = fs.readFileSync(path.join(mellonDir, `${base}.xml`), 'utf8');
  fs.writeFileSync(path.join(mellonDir, 'federation-metadata.xml'), idpMetadataXml);
  // Apache starts as root and its workers run as www-data, which reads the
  // SP key and the metadata: open the test's private directory to it.
  for (const p of [dir, apacheDir, mellonDir, ...fs.readdirSync(mellonDir).map((f) => path.join(mellonDir, f))]) {
    fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o755 : 0o644);
  }

  // Ports and paths only; each replacement must hit.
  let vhost = apacheBlock[0];
  const swap = (from, to, times) => {
    const n = vhost.split(from).length - 1;
    assert.equal(n, times, `the doc's Apache block has ${JSON.stringify(from)} ${n} times, expected ${times}`);
    vhost = vhost.replaceAll(from, to);
  };
  swap('<VirtualHost *:443>', `<VirtualHost 127.0.0.1:${APACHE_PORT}>`, 1);
  swap('/etc/ssl/certs/georchestra.example.org.pem', tlsCert, 1);
  swap('/etc/ssl/private/georchestra.example.org.key', tlsKey, 1);
  swap('/etc/apache2/mellon/', `${mellonDir}/`, 3);
  swap(`http://127.0.0.1:${VESTIBULE_PORT}/`, `http://127.0.0.1:${LDAP_VESTIBULE_PORT}/`, 2);
  const modules = ['mpm_event', 'authn_core', 'authz_core', 'authz_user', 'alias', 'headers',
    'proxy', 'proxy_http', 'socache_shmcb', 'ssl', 'auth_mellon'];
  const conf = [
    '# The server around the page\'s virtual host (Debian\'s apache2.conf, reduced).',
    `ServerRoot "${apacheDir}"`,
    `DefaultRuntimeDir "${apacheDir}"`,
    `PidFile "${apacheDir}/httpd.pid"`,
    `ErrorLog "${apacheDir}/error.log"`,
    'LogLevel warn ssl:error',
    'ServerName 127.0.0.1',
    `Listen 127.0.0.1:${APACHE_PORT}`,
    'User www-data',
    'Group www-data',
    `Define APACHE_LOG_DIR ${apacheDir}`,
    ...modules.map((m) => `LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so`),
    '',
    vhost,
  ].join('\n');
  const confFile = path.join(apacheDir, 'httpd.conf');
  fs.writeFileSync(confFile, conf);
  const apache2 = fs.existsSync('/usr/sbin/apache2') ? '/usr/sbin/apache2' : 'apache2';
  run(apache2, ['-t', '-f', confFile]);
  const apache = procs.start('apache', apache2, ['-f', confFile, '-DFOREGROUND'], { detached: true });
  await waitForPort(APACHE_PORT, apache);
  const end = Date.now() + 10000;
  while (!fs.existsSync(path.join(apacheDir, 'httpd.pid'))) {
    if (apache.exited || Date.now() > end) throw new Error(`apache did not start: ${apache.out}`);
    await sleep(50);
  }
  return { ca: fs.readFileSync(tlsCert), spMetadata };
}

/** Apache's error log, for failure messages. */
function apacheLog() {
  // The server's log, then the virtual host's (the doc's ErrorLog).
  return ['error.log', 'georchestra-error.log'].map((f) => {
    const log = path.join(dir, 'apache', f);
    return fs.existsSync(log) ? `----- apache ${f} -----\n${fs.readFileSync(log, 'utf8')}` : `(no apache ${f})`;
  }).join('\n');
}

t('a SAML login through Apache + mod_auth_mellon creates the user, organisation and role membership in slapd', async () => {
  for (const port of [LDAP_PORT, LDAP_VESTIBULE_PORT, APACHE_PORT, IDP_PORT]) await assertPortFree(port);
  await startLdapVestibule(path.join(dir, 'ldap'));

  // The IdP's key and certificate, and its metadata (what the federation
  // publishes), before Apache reads it.
  const idpDir = path.join(dir, 'idp');
  fs.mkdirSync(idpDir);
  run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=e2e SAML IdP',
    '-keyout', path.join(idpDir, 'idp.key'), '-out', path.join(idpDir, 'idp.pem')]);
  const idpKey = fs.readFileSync(path.join(idpDir, 'idp.key'), 'utf8');
  const idpCert = fs.readFileSync(path.join(idpDir, 'idp.pem'), 'utf8');
  const metadataIdp = saml.IdentityProvider({
    entityID: IDP_ENTITY_ID,
    signingCert: idpCert,
    wantAuthnRequestsSigned: true,
    singleSignOnService: [{ Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${IDP}/sso` }],
  }).getMetadata();

  const { ca, spMetadata } = await startApache(path.join(dir, 'apache'), metadataIdp);
  const started = startIdp(spMetadata, idpKey, idpCert);
  idpServer = started.server;
  idpServer.listen(IDP_PORT, '127.0.0.1');
  await new Promise((resolve, reject) => { idpServer.once('listening', resolve); idpServer.once('error', reject); });

  // mod_auth_mellon answers its own endpoint (not proxied to vestibule).
  const md = await request(`${APACHE}/mellon/metadata`, { ca });
  assert.equal(md.status, 200, md.body.slice(0, 300));
  assert.match(md.body, /entityID="https:\/\/georchestra\.example\.org\/mellon\/metadata"/);

  // An anonymous visitor with forged headers: Apache strips them, and
  // vestibule sees no identity (and writes nothing).
  const jar = new CookieJar();
  const forged = [['sec-georchestra-preauthenticated', 'true'], ['preauth-username', 'admin'], ['preauth_username', 'admin'],
    ['preauth-roles', 'ROLE_SUPERUSER'], ['sec-username', 'admin']];
  const anon = await browse(jar, ca, `${APACHE}/geonetwork/`, forged);
  assertAnonymous(seen(anon.res), 'anonymous through Apache');
  assert.deepEqual(anon.hops, [`GET ${APACHE}/geonetwork/`]);

  // The login: /login/saml → mellon → the IdP (Redirect binding) → mellon's
  // postResponse (POST binding) → back to /login/saml → / through vestibule.
  const login = await browse(jar, ca, `${APACHE}/login/saml`, forged);
  const idpHop = login.hops.find((h) => h.startsWith(`GET ${IDP}/sso?`));
  assert.ok(idpHop, `no hop to the IdP:\n${login.hops.join('\n')}`);
  const sso = new URL(idpHop.slice(4)).searchParams;
  assert.equal(sso.get('SigAlg'), 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256', 'mellon signs its AuthnRequest with RSA-SHA256');
  assert.ok(login.hops.includes(`POST ${APACHE}/mellon/postResponse`), login.hops.join('\n'));
  assert.equal(login.hops.at(-1), `GET ${APACHE}/`,
    `${login.hops.join('\n')}\n${login.res.status} ${login.res.body.slice(0, 500)}\n${apacheLog()}`);
  // What the IdP sent: a Response signed with RSA-SHA256 (mellon's metadata
  // does not ask for signed assertions, so samlify signs the whole message).
  assert.equal(issuedResponses.length, 1);
  assert.equal(issuedResponses[0].match(/<ds:Signature /g)?.length, 1, issuedResponses[0]);
  assert.match(issuedResponses[0], /<ds:SignatureMethod Algorithm="http:\/\/www\.w3\.org\/2001\/04\/xmldsig-more#rsa-sha256"\/>/);
  assert.ok(jar.value('mellon-cookie') && jar.value('mellon-cookie') !== 'cookietest', `mellon set no session cookie: ${[...jar.cookies.keys()]}`);

  const s = seen(login.res);
  assert.equal(s.body.uri, '/');
  assert.equal(s.one('sec-username'), USER.username);
  assert.equal(s.one('sec-email'), USER.email);
  assert.equal(s.one('sec-firstname'), b64(USER.firstname));
  assert.equal(s.one('sec-lastname'), b64(USER.lastname));
  assert.equal(s.one('sec-org'), b64(USER.org));
  // Read back from the directory: USER (always) and SUPERUSER (mapped);
  // ROLE_ADMINISTRATOR and ROLE_GN_EDITOR from the IdP are not mapped.
  assert.equal(s.one('sec-roles'), 'ROLE_SUPERUSER;ROLE_USER');
  assert.equal(s.one('sec-proxy'), 'true');
  for (const name of s.headers.keys()) {
    assert.ok(!/^(preauth[-_]|sec[-_]georchestra)/.test(name), `${name} reached the app`);
  }

  // The entries in slapd.
  const dn = `uid=${USER.username},ou=users,${LDAP_BASE}`;
  const users = ldapsearch(`ou=users,${LDAP_BASE}`, '(objectClass=*)');
  assert.deepEqual([...users.keys()].filter((k) => k !== `ou=users,${LDAP_BASE}`), [dn]);
  const u = users.get(dn);
  assert.deepEqual(u.get('objectclass'),
    ['georchestraUser', 'inetOrgPerson', 'organizationalPerson', 'person', 'shadowAccount', 'top']);
  assert.deepEqual(u.get('uid'), [USER.username]);
  assert.deepEqual(u.get('cn'), [`${USER.firstname} ${USER.lastname}`]);
  assert.deepEqual(u.get('sn'), [USER.lastname]);
  assert.deepEqual(u.get('givenname'), [USER.firstname]);
  assert.deepEqual(u.get('mail'), [USER.email]);
  assert.deepEqual(u.get('oauth2provider'), ['renater']);
  assert.deepEqual(u.get('oauth2uid'), [USER.username]);
  assert.match(u.get('georchestraobjectidentifier')[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.deepEqual([...u.keys()].sort(), ['cn', 'georchestraobjectidentifier', 'givenname', 'mail',
    'oauth2provider', 'oauth2uid', 'objectclass', 'sn', 'uid']);

  const orgs = ldapsearch(`ou=orgs,${LDAP_BASE}`, '(objectClass=*)');
  const group = orgs.get(`cn=${USER.org},ou=orgs,${LDAP_BASE}`);
  assert.ok(group, `no organisation group: ${[...orgs.keys()].join(', ')}`);
  assert.deepEqual(group.get('objectclass'), ['groupOfMembers', 'top']);
  assert.deepEqual(group.get('member'), [dn]);
  assert.deepEqual(group.get('seealso'), [`o=${USER.org},ou=orgs,${LDAP_BASE}`]);
  const ext = orgs.get(`o=${USER.org},ou=orgs,${LDAP_BASE}`);
  assert.deepEqual(ext.get('objectclass'), ['georchestraOrg', 'organization', 'top']);

  const members = (role) => ldapsearch(`cn=${role},ou=roles,${LDAP_BASE}`, '(objectClass=*)')
    .get(`cn=${role},ou=roles,${LDAP_BASE}`)?.get('member') ?? [];
  assert.deepEqual(members('USER'), [dn]);
  assert.deepEqual(members('SUPERUSER'), [dn]);
  assert.deepEqual(members('ADMINISTRATOR'), []);
  assert.ok(ldapsearch(`ou=roles,${LDAP_BASE}`, '(cn=GN_EDITOR)').size === 0, 'an unmapped role group was created');

  // The next request rides mellon's session: same identity, no IdP hop,
  // and forged headers are still replaced by the session's.
  const again = await browse(jar, ca, `${APACHE}/geonetwork/srv/eng/catalog.search`, forged);
  assert.deepEqual(again.hops, [`GET ${APACHE}/geonetwork/srv/eng/catalog.search`]);
  const s2 = seen(again.res);
  assert.equal(s2.one('sec-username'), USER.username);
  assert.equal(s2.one('sec-roles'), 'ROLE_SUPERUSER;ROLE_USER');
  assert.equal(issuedResponses.length, 1, 'no second SAML login');
});

t('mellon refuses a Response changed after the IdP signed it, and no identity reaches vestibule', async () => {
  assert.ok(idpServer, 'the SAML login test started the IdP');
  const before = issuedResponses.length;
  const ca = fs.readFileSync(path.join(dir, 'apache', 'georchestra.example.org.pem'));
  // A role added inside the signed assertion: the signature no longer matches.
  tamperWith = (xml) => xml.replace('<saml:AttributeValue>ROLE_GN_EDITOR</saml:AttributeValue>',
    '<saml:AttributeValue>ROLE_GN_EDITOR</saml:AttributeValue><saml:AttributeValue>ROLE_ADMINISTRATOR_2</saml:AttributeValue>');
  try {
    const jar = new CookieJar();
    const r = await browse(jar, ca, `${APACHE}/login/saml`);
    assert.equal(issuedResponses.length, before + 1);
    assert.match(issuedResponses.at(-1), /ROLE_ADMINISTRATOR_2/, 'the forgery was sent');
    assert.equal(r.hops.at(-1), `POST ${APACHE}/mellon/postResponse`, r.hops.join('\n'));
    assert.ok(r.res.status >= 400, `mellon accepted a forged Response: ${r.res.status}`);
    assert.ok([undefined, 'cookietest'].includes(jar.value('mellon-cookie')),
      'mellon opened a session for a forged Response');
    // Without a session, the next request is anonymous.
    assertAnonymous(seen((await browse(jar, ca, `${APACHE}/geonetwork/`)).res), 'after a forged Response');
    // Lasso's own words: the signature check is what refused it.
    assert.match(apacheLog(), /Failed to verify signature/);
  } finally {
    tamperWith = null;
  }
});
