// geOrchestra's pre-authentication contract, as produced by the Apache
// mod_auth_mellon configuration of docs/integrations/georchestra-mellon.md.
// No SAML IdP can run here, so the test plays Apache: it sends vestibule the
// headers that configuration produces and checks what the app receives. The
// vestibule configuration is the page's ```toml block, byte for byte.
//
// Run: E2E_VESTIBULE_BIN=/abs/path/to/vestibule node --test georchestra.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** One request with node:http; `headers` is a list of [name, value] pairs sent as given. */
function request(url, { headers = [], localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const flat = ['Host', u.host, 'Accept', 'application/json'];
    // node:http writes header values as latin1: pass UTF-8 bytes through it.
    for (const [n, v] of headers) flat.push(n, Buffer.from(v, 'utf8').toString('latin1'));
    const req = http.request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      headers: flat,
      localAddress,
      agent: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(10000, () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.on('error', reject);
    req.end();
  });
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
  const s = seen(await request(`${VESTIBULE}/geonetwork/srv/eng/catalog.search`, {
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
  const s = seen(await request(`${VESTIBULE}/`, { headers, localAddress: '127.0.0.1' }));
  assert.equal(s.one('sec-firstname'), 'Pierre');
  assert.equal(s.one('sec-lastname'), '{base64}Wm/Dqw==');
  assert.equal(s.one('sec-org'), 'geOrchestra');
});

t('client-sent sec-* headers never reach the app, even through the trusted front', async () => {
  const s = seen(await request(`${VESTIBULE}/console/`, {
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
  const s = seen(await request(`${VESTIBULE}/geonetwork/`, {
    headers: [...preauthHeaders(), ['sec-username', 'admin'], ['preauth_username', 'admin']],
    localAddress: '127.0.0.2',
  }));
  assertAnonymous(s, 'from 127.0.0.2');
  assert.equal(s.one('sec-proxy'), 'true');
});

t('preauth-* without the `true` marker yields no identity', async () => {
  const without = preauthHeaders().filter(([n]) => n !== 'sec-georchestra-preauthenticated');
  assertAnonymous(seen(await request(`${VESTIBULE}/`, { headers: without, localAddress: '127.0.0.1' })), 'no marker');

  const wrong = [['sec-georchestra-preauthenticated', 'false'], ...without];
  assertAnonymous(seen(await request(`${VESTIBULE}/`, { headers: wrong, localAddress: '127.0.0.1' })), 'marker false');

  const encoded = [['sec-georchestra-preauthenticated', b64('true')], ...without];
  assertAnonymous(seen(await request(`${VESTIBULE}/`, { headers: encoded, localAddress: '127.0.0.1' })), 'marker {base64}');
});

t('the trusted front sending a header twice or under two spellings is refused', async () => {
  const twice = await request(`${VESTIBULE}/`, {
    headers: [...preauthHeaders(), ['preauth_username', 'admin']],
    localAddress: '127.0.0.1',
  });
  assert.equal(twice.status, 400, `two spellings: ${twice.status} ${twice.body.slice(0, 300)}`);
  const comma = await request(`${VESTIBULE}/`, {
    headers: preauthHeaders().map(([n, v]) => (n === 'preauth-roles' ? [n, 'ROLE_USER;ROLE_A,ROLE_B'] : [n, v])),
    localAddress: '127.0.0.1',
  });
  assert.equal(comma.status, 400, `role with a comma: ${comma.status} ${comma.body.slice(0, 300)}`);
});

// ------------------------------------------------- LDAP: accounts in slapd
//
// The page's second ```toml block ([accounts.ldap], layout = "georchestra")
// on Debian's slapd, started here on loopback with a private configuration
// and geOrchestra's schema (crates/vestibule/tests/fixtures/ldap). Only the
// directory's port, the password file and the data directory are changed,
// and a listener and the route are added around it.

const LDAP_PORT = 18796;
const LDAP_VESTIBULE_PORT = 18797;
const LDAP_BASE = 'dc=georchestra,dc=org';
const LDAP_PASSWORD = 'e2e-slapd-password';
const FIXTURES = path.join(HERE, '..', '..', 'crates', 'vestibule', 'tests', 'fixtures', 'ldap');

/** Every ```lang fenced block of a Markdown file, in order. */
function fencedBlocks(file, lang) {
  const text = fs.readFileSync(file, 'utf8');
  const re = new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'gm');
  return [...text.matchAll(re)].map((m) => m[1]);
}

async function waitForPort(port, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const open = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (open) return;
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

t('the page\'s [accounts.ldap] block writes the first login to slapd, and sec-roles comes back from it', async () => {
  for (const port of [LDAP_PORT, LDAP_VESTIBULE_PORT]) await assertPortFree(port);
  const ldapDir = path.join(dir, 'ldap');
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
  const added = spawnSync('/usr/sbin/slapadd', ['-f', conf, '-l', path.join(FIXTURES, 'georchestra-tree.ldif')], { encoding: 'utf8' });
  assert.equal(added.status, 0, `slapadd: ${added.stderr}`);
  procs.start('slapd', '/usr/sbin/slapd', ['-f', conf, '-h', `ldap://127.0.0.1:${LDAP_PORT}/`, '-d', '0']);
  await waitForPort(LDAP_PORT);

  // The page's LDAP block, pointed at this slapd.
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
    `[[route]]\nname = "georchestra"\npath_prefix = "/"\nupstream = "http://127.0.0.1:${WHOAMI_PORT}"\nprofile = "georchestra"\n`,
  ].join('\n');
  assert.match(config, new RegExp(`url = "ldap://127.0.0.1:${LDAP_PORT}"`));
  fs.writeFileSync(path.join(ldapDir, 'vestibule.toml'), config);
  const checked = spawnSync(vestibuleBin(), ['check', '--online', '--config', path.join(ldapDir, 'vestibule.toml')], {
    env: vestibuleEnv(), encoding: 'utf8', timeout: 10000,
  });
  assert.equal(checked.status, 0, `vestibule check --online: exit ${checked.status}\n${checked.stderr}`);
  const v = procs.start('vestibule-ldap', vestibuleBin(), ['serve', '--config', path.join(ldapDir, 'vestibule.toml')], { env: vestibuleEnv() });
  await procs.waitForOutput(v, `vestibule: listening on http://127.0.0.1:${LDAP_VESTIBULE_PORT}`);

  // The first login, as Apache sends it: ROLE_USER;ROLE_GN_EDITOR.
  const s = seen(await request(`http://127.0.0.1:${LDAP_VESTIBULE_PORT}/`, {
    headers: preauthHeaders(),
    localAddress: '127.0.0.1',
  }));
  // Read back from the directory: USER (always); GN_EDITOR is not mapped.
  assert.equal(s.one('sec-roles'), 'ROLE_USER');
  assert.equal(s.one('sec-username'), USER.username);

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
    .get(`cn=${role},ou=roles,${LDAP_BASE}`).get('member') ?? [];
  assert.deepEqual(members('USER'), [dn]);
  assert.deepEqual(members('SUPERUSER'), []);
  assert.deepEqual(members('ADMINISTRATOR'), []);
  assert.ok(ldapsearch(`ou=roles,${LDAP_BASE}`, '(cn=GN_EDITOR)').size === 0, 'an unmapped role group was created');
});
