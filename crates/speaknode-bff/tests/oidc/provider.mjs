// An independent OpenID provider for the BFF's upstream token tests: npm oidc-provider on
// 127.0.0.1, configured like research/bff-security.md appendix B.
//
//   node provider.mjs PORT [ACCESS_TOKEN_TTL_SECS]
//
// PORT 0 picks a free port. Prints "listening on http://127.0.0.1:PORT" once it accepts
// connections. GET /test/events answers counters the tests assert on: every request to the
// token endpoint (`token_requests`), each grant's outcome (`<grant_type>:ok`,
// `<grant_type>:<error>`) and each grant revoked by refresh-token reuse (`grant_revoked`).

import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? 0);
const accessTokenTtl = Number(process.argv[3] ?? 300);

export const CLIENT_ID = 'speaknode-bff';
export const CLIENT_SECRET = 'oidc-test-secret-5c1d8e';
export const RESOURCE = 'https://voice-api.test';

function jwk(type, options, kid, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

const counts = {};
const bump = (key) => { counts[key] = (counts[key] ?? 0) + 1; };

const server = createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    // A native client may use any port on a loopback redirect URI (RFC 8252 §7.3).
    application_type: 'native',
    redirect_uris: ['http://127.0.0.1/callback'],
  }],
  jwks: {
    keys: [
      jwk('ed25519', {}, 'ed1', 'EdDSA'),
      // ID tokens default to RS256, so the provider needs an RSA key too.
      jwk('rsa', { modulusLength: 2048 }, 'rs1', 'RS256'),
    ],
  },
  cookies: { keys: ['oidc-test-cookie-key'] },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The BFF must name the resource on every request; nothing is filled in for it.
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo: (_ctx, resource) => {
        if (resource !== RESOURCE) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: 'agents:read',
          audience: 'voice-api',
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'EdDSA' } },
        };
      },
    },
  },
  pkce: { required: () => true },
  // Rotate on every refresh, and issue refresh tokens without offline_access, as Keycloak
  // does for the authorization code grant.
  rotateRefreshToken: true,
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: accessTokenTtl,
    ClientCredentials: accessTokenTtl,
    RefreshToken: 24 * 3600,
    Grant: 24 * 3600,
  },
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/events') {
    ctx.body = counts;
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/token') {
    bump('token_requests');
  }
  await next();
});
provider.on('grant.success', (ctx) => bump(`${ctx.oidc.params.grant_type}:ok`));
provider.on('grant.error', (ctx, error) => bump(`${ctx.oidc?.params?.grant_type}:${error.error}`));
provider.on('grant.revoked', () => bump('grant_revoked'));

server.on('request', provider.callback());
console.log(`listening on ${issuer}`);
