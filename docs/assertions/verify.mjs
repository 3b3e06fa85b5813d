// An app behind vestibule, in Node: it verifies the signed identity
// assertion on every request with npm `jose` and answers with the
// identity it carries (401 without a valid one).
//
//   npm install jose
//   JWKS_URL=https://sso.example.com/.vestibule/jwks.json \
//   ISSUER=https://sso.example.com AUDIENCE=app.example.com PORT=8080 \
//   node verify.mjs
import http from 'node:http';

import { createRemoteJWKSet, jwtVerify } from 'jose';

const { JWKS_URL, ISSUER, AUDIENCE } = process.env;
for (const [name, value] of Object.entries({ JWKS_URL, ISSUER, AUDIENCE })) {
  if (!value) throw new Error(`${name} must be set`);
}
const HOST = process.env.HOST ?? '127.0.0.1';
const PORT = Number(process.env.PORT ?? 8080);

// The gateway's key set: fetched on first use and kept for 10 minutes;
// a token naming a key not in it makes jose fetch the set again (at most
// every 30 seconds), which is how a new key is picked up.
const keys = createRemoteJWKSet(new URL(JWKS_URL), {
  cacheMaxAge: 10 * 60 * 1000,
  cooldownDuration: 30 * 1000,
});

/** The assertion's claims, or an exception saying why it is refused. */
export async function verifyAssertion(token) {
  const { payload } = await jwtVerify(token, keys, {
    // The gateway's `[keys] algorithm`, never what the token says
    // (RFC 8725 §3.1): this refuses `none` and HS256.
    algorithms: ['ES256'],
    // Explicit typing (RFC 8725 §3.11): no other JWT passes for one.
    typ: 'vestibule-id+jwt',
    // Whose it is, and for whom (RFC 8725 §3.8, §3.9).
    issuer: ISSUER,
    audience: AUDIENCE,
    requiredClaims: ['sub', 'iat', 'nbf', 'exp'],
    // Seconds of clock skew allowed on `exp` and `nbf`: at most 60.
    clockTolerance: 30,
  });
  return payload;
}

http.createServer(async (req, res) => {
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const token = req.headers['x-vestibule-assertion'];
  if (!token) return reply(401, { error: 'no identity assertion' });
  try {
    const claims = await verifyAssertion(token);
    reply(200, {
      sub: claims.sub,
      preferred_username: claims.preferred_username,
      email: claims.email,
      name: claims.name,
      groups: claims.groups,
      auth_method: claims.auth_method,
      device_id: claims.device_id,
    });
  } catch (e) {
    reply(401, { error: `assertion refused: ${e.message}` });
  }
}).listen(PORT, HOST, () => console.log(`listening on http://${HOST}:${PORT}`));
