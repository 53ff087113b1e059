// A real OpenID Connect provider for the single sign-on tests: the certified
// `oidc-provider` package, on a loopback port, in development mode (an http issuer on
// 127.0.0.1 is allowed there; production requires https).
//
//   node provider.mjs <port> <config.json>
//
// config.json: {"clients": [{client_id, client_secret, redirect_uris,
// post_logout_redirect_uris}], "users_file": "users.json", "id_token_ttl": 3600}.
// users.json maps an account id (what is typed as "login" on the provider's dev sign-in
// page; any password) to its claims, e.g. {"alice": {"email": "...", "groups": ["ops"]}}.
// It is re-read at every token, so a test changes a user's groups by rewriting it.
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));

function users() {
  return JSON.parse(readFileSync(config.users_file, 'utf8'));
}

const configuration = {
  clients: config.clients.map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  // PKCE for every client, confidential ones included.
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // The ID token carries the scopes' claims too (as many providers' do).
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    const claims = users()[id];
    if (!claims) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, ...claims };
      },
    };
  },
  // First-party client: no consent screen (the provider's documented recipe).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      if (existing) return existing;
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email groups');
    grant.addOIDCClaims(['groups']);
    await grant.save();
    return grant;
  },
  ttl: { IdToken: config.id_token_ttl || 3600 },
  cookies: { keys: ['keelson-test-oidc-cookie-key'] },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
};

const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on http://127.0.0.1:${port}`);
});
