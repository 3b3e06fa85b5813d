// One HTTP/1.1 request, as the end-to-end tests need it: headers sent exactly
// as given (names, spelling, order, UTF-8 bytes), from a chosen local address,
// over plain HTTP or HTTPS with the test's own CA.

import http from 'node:http';
import https from 'node:https';

/**
 * One request with node:http(s), not fetch: fetch adds headers of its own
 * (`Sec-Fetch-Mode: cors`, which mod_auth_openidc answers 401 instead of
 * redirecting) and normalises names. `headers` is a list of [name, value]
 * pairs, sent as given (so `Remote_User` keeps its underscore). A `body` is
 * sent as a form. `ca` is the certificate an https:// server is trusted by.
 * Resolves to { status, headers, body }.
 */
export function request(url, { method = 'GET', headers = [], body, localAddress, ca } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    // With headers given as a list, node:http adds no Host of its own.
    const flat = ['Host', u.host];
    // node:http writes header values as latin1: pass UTF-8 bytes through it.
    for (const [n, v] of headers) flat.push(n, Buffer.from(v, 'utf8').toString('latin1'));
    if (body !== undefined) flat.push('Content-Type', 'application/x-www-form-urlencoded', 'Content-Length', String(Buffer.byteLength(body)));
    const req = (u.protocol === 'https:' ? https : http).request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method,
      headers: flat,
      localAddress,
      agent: false,
      ca,
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
export class CookieJar {
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

  /** The value of the cookie `name` (any path), or undefined. */
  value(name) {
    return [...this.cookies.values()].find((c) => c.name === name)?.value;
  }

  /** The Cookie header for `url`, as a list of [name, value] pairs (empty without cookies). */
  header(url) {
    const p = new URL(url).pathname;
    const v = [...this.cookies.values()]
      .filter((c) => p === c.path || p.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    return v ? [['Cookie', v]] : [];
  }
}
