// npm `oidc-provider` (a certified OpenID provider) as the upstream identity
// provider of vestibule's `[source.oidc]` login: authorization code with
// PKCE, RP-initiated logout and back-channel logout (OpenID Connect
// Back-Channel Logout 1.0), refresh tokens.
//
// The provider signs with a key the test generates (not its development
// keys), so the test can sign logout tokens of its own with the very key the
// provider publishes, and forged ones beside them. Its pages are the test's
// own minimal ones (the defaults load web fonts from the Internet): a login
// form that takes any known user name, consent granted without a page, and a
// plain logout confirmation.

import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

/** The claim every back-channel logout token carries (Back-Channel Logout 1.0 §2.4). */
export const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title, body) => `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>${body}</body></html>`;

async function formBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * Starts the provider on 127.0.0.1:`port`.
 *
 * - `clients`: oidc-provider client metadata (client_id, client_secret,
 *   redirect_uris, backchannel_logout_uri, post_logout_redirect_uris, …).
 * - `users`: user name → claims (`email`, `name`, `groups`); the user name
 *   is the `sub` and `preferred_username`.
 *
 * Returns the issuer, the provider, its private signing key (`key`, a
 * KeyObject, with `kid`), what it did (`idTokens`: the last ID token issued
 * to each `sub` by a code exchange; `backchannel`: each logout token delivery, `{ ok, clientId,
 * sub, sid, error, at }`, `at` the
 * performance.now() of the answer; `posts`: each request the provider
 * sent, `{ url, at }`; `grants`: each token request, `{ type, ok, sub,
 * error }`), `disabled` (a Set of user names the provider no
 * longer knows: their refresh tokens are refused), and `close()`.
 */
export async function startUpstreamIdp({ port, clients, users }) {
  const issuer = `http://127.0.0.1:${port}`;
  const kid = `upstream-${crypto.randomBytes(4).toString('hex')}`;
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
  const disabled = new Set();
  const idTokens = new Map();
  const backchannel = [];
  const posts = [];
  const grants = [];

  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [jwk] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      // Groups in `profile`, as authentik and Keycloak put them: the
      // generic preset asks for `openid profile email`.
      profile: ['name', 'preferred_username', 'groups'],
    },
    // The scopes' claims in the ID token too, not only at userinfo:
    // vestibule reads the ID token.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.body = page('Sign out', `${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page('Signed out', '<p>You are signed out of the provider.</p>');
        },
      },
    },
    // Refresh tokens for every code grant of a client allowed the
    // refresh_token grant (no offline_access scope needed).
    issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('openid'),
    // oidc-provider refuses to POST logout tokens to special-use addresses
    // (its SSRF guard, a dispatcher it passes to fetch); vestibule is on
    // loopback here, so the guard is left out of the test's provider.
    // Each outgoing request is noted (`posts`, with its performance.now()).
    fetch: (url, { dispatcher, ...options }) => {
      posts.push({ url: String(url), at: performance.now() });
      return globalThis.fetch(url, options);
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
    },
    async findAccount(ctx, id) {
      // A disabled user is unknown: oidc-provider then refuses their
      // refresh token (invalid_grant, "referenced account not found").
      const user = users[id];
      if (!user || disabled.has(id)) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: id, preferred_username: id, email_verified: true, ...user,
          };
        },
      };
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Provider error', `<pre>${escape(JSON.stringify(out))}</pre>`);
    },
  });
  provider.on('server_error', (ctx, err) => { console.error('oidc-provider server_error:', err); });
  provider.on('grant.success', (ctx) => {
    const type = ctx.oidc.params?.grant_type;
    const token = ctx.body?.id_token;
    const claims = token && JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
    grants.push({ type, ok: true, sub: claims?.sub });
    if (type === 'authorization_code' && claims) idTokens.set(claims.sub, claims);
  });
  provider.on('grant.error', (ctx, err) => {
    grants.push({ type: ctx.oidc.params?.grant_type, ok: false, sub: ctx.oidc.entities?.RefreshToken?.accountId, error: err.error });
  });
  provider.on('backchannel.success', (ctx, client, sub, sid) => {
    backchannel.push({ ok: true, clientId: client.clientId, sub, sid, at: performance.now() });
  });
  provider.on('backchannel.error', (ctx, err, client, sub, sid) => {
    backchannel.push({ ok: false, clientId: client.clientId, sub, sid, at: performance.now(), error: `${err.message} ${err.cause ?? ''}` });
  });

  const callback = provider.callback();
  // The interactions: a login form, and consent given for what was asked.
  async function interaction(req, res) {
    try {
      const details = await provider.interactionDetails(req, res);
      const { uid, prompt, params } = details;
      if (req.method === 'GET' && prompt.name === 'login') {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(page('Sign in to the provider', `<form method="post" action="/interaction/${escape(uid)}/login">
<label>User name <input name="login" autofocus></label>
<button type="submit">Sign in</button></form>`));
        return;
      }
      if (req.method === 'POST' && req.url.endsWith('/login')) {
        const login = (await formBody(req)).get('login') ?? '';
        if (!users[login] || disabled.has(login)) {
          res.statusCode = 403;
          res.setHeader('Content-Type', 'text/html; charset=utf-8');
          res.end(page('Unknown user', `<p>${escape(login)}</p>`));
          return;
        }
        await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
        return;
      }
      if (prompt.name === 'consent') {
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
        if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
        if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
        const grantId = await grant.save();
        await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
        return;
      }
      res.statusCode = 400;
      res.end(`unexpected interaction ${prompt.name}`);
    } catch (e) {
      res.statusCode = 500;
      res.end(`interaction failed: ${e.message}`);
    }
  }

  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/interaction/')) interaction(req, res);
    else callback(req, res);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });

  return {
    issuer,
    provider,
    key: privateKey,
    kid,
    idTokens,
    backchannel,
    posts,
    grants,
    disabled,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}

/**
 * In Chromium, at the provider's login form (after vestibule sent the
 * browser there): signs `user` in; consent is given without a page.
 */
export async function signInAtIdp(page, issuer, user) {
  await page.waitForURL((u) => u.href.startsWith(`${issuer}/interaction/`));
  await page.fill('input[name="login"]', user);
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
}

/** In Chromium, on the provider's logout confirmation page: says yes. */
export async function confirmLogoutAtIdp(page) {
  await page.waitForSelector('button[name="logout"][value="yes"]');
  await Promise.all([page.waitForNavigation(), page.click('button[name="logout"][value="yes"]')]);
}
