// Debian's Apache 2.4 with mod_auth_openidc as a relying party of
// vestibule's OpenID provider, as the e2e suites start it: the recipe's
// blocks from docs/oidc-provider.md, the test's own server around them,
// and a CGI app that prints what mod_auth_openidc passed it.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { sleep } from './processes.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The page whose "Apache mod_auth_openidc" recipe the suites run. */
export const PROVIDER_DOC = path.join(HERE, '..', '..', 'docs', 'oidc-provider.md');

/** The one ```lang block of `file` that contains `marker`, exactly. */
export function recipeBlock(file, lang, marker) {
  const text = fs.readFileSync(file, 'utf8');
  const found = [...text.matchAll(new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'gm'))]
    .map((m) => m[1])
    .filter((b) => b.includes(marker));
  assert.equal(found.length, 1, `${file}: ${found.length} \`\`\`${lang} blocks contain ${JSON.stringify(marker)}`);
  return found[0];
}

/** The test's Apache (in `dir`, on 127.0.0.1:`port`) around the recipe's block in `dir`/openidc.conf. */
function apacheConfig(dir, port) {
  return `ServerRoot "${dir}"
DefaultRuntimeDir "${dir}"
PidFile "${dir}/httpd.pid"
ErrorLog "${dir}/error.log"
LogLevel warn auth_openidc:info
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
User www-data
Group www-data

LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
LoadModule cgid_module /usr/lib/apache2/modules/mod_cgid.so
LoadModule auth_openidc_module /usr/lib/apache2/modules/mod_auth_openidc.so
ScriptSock "${dir}/cgid.sock"
ScriptAlias /app/ "${dir}/cgi-bin/"

Include "${dir}/openidc.conf"
`;
}

// The app: what mod_auth_openidc passed, one NAME=value a line.
const CGI = `#!/bin/sh
printf 'Content-Type: text/plain; charset=utf-8\\r\\n\\r\\n'
env | grep -E '^(REMOTE_USER|OIDC_CLAIM_[A-Za-z_]+)=' | sort
`;

/**
 * Starts Apache in `dir` (readable by www-data) on 127.0.0.1:`port` with
 * `openidc` (the recipe's block, addresses filled in) and the CGI app at
 * /app/claims; `env` is Apache's environment (the recipe reads the secret
 * and the cookie key from it). Resolves once Apache has started.
 */
export async function startApache(procs, dir, port, openidc, env) {
  fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, 'openidc.conf'), openidc);
  fs.writeFileSync(path.join(dir, 'httpd.conf'), apacheConfig(dir, port));
  fs.mkdirSync(path.join(dir, 'cgi-bin'), { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'cgi-bin', 'claims'), CGI, { mode: 0o755 });
  const apache2 = fs.existsSync('/usr/sbin/apache2') ? '/usr/sbin/apache2' : 'apache2';
  // Its own process group: stopAll() stops the parent and its children.
  const apache = procs.start('apache', apache2, ['-f', path.join(dir, 'httpd.conf'), '-DFOREGROUND'], {
    detached: true,
    env: { ...process.env, ...env },
  });
  // Apache writes its pid file once it has bound its port and started.
  const end = Date.now() + 15000;
  while (!fs.existsSync(path.join(dir, 'httpd.pid'))) {
    const log = path.join(dir, 'error.log');
    if (apache.exited || Date.now() > end) {
      throw new Error(`apache did not start (${JSON.stringify(apache.exited)}):\n${apache.out}\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
    }
    await sleep(50);
  }
  return apache;
}

/** Apache's error log in `dir`, for a failure report. */
export function apacheErrorLog(dir) {
  const log = dir && path.join(dir, 'error.log');
  return log && fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
}

/** The CGI's output as a Map. */
export function appSaw(text) {
  return new Map(text.trim().split('\n').filter(Boolean).map((l) => {
    const i = l.indexOf('=');
    return [l.slice(0, i), l.slice(i + 1)];
  }));
}
