// A device getting and using a token with openid-client (v6), as an off-the-shelf client
// would: discovery through bioweb's RFC 8414 metadata (/.well-known/oauth-authorization-server),
// the client credentials grant with the published system's scope "all", then a protected
// resource request for the device's own record. Driven by tests/test_clients.py.
//
// Input (environment only; a secret on the command line shows up in ps):
// BIOWEB_URL, BIOWEB_CLIENT_ID, BIOWEB_CLIENT_SECRET, BIOWEB_DEVICE_ID.
// Output: one JSON line on standard output. Exit status 0 only when a token came and the
// device read answered 200 with its own id.
import * as client from 'openid-client';

const report = { client: 'node openid-client', ok: false, stage: 'config', refresh_token: false };

function emit() {
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exitCode = report.ok ? 0 : 1;
}

function fail(error, detail, status) {
  report.error = error;
  report.detail = detail;
  if (status !== undefined) report.status = status;
  emit();
}

// [error, detail, status] of a failed request. openid-client throws a ResponseBodyError for an
// RFC 6749 section 5.2 answer, but a WWWAuthenticateChallengeError for any 401 that carries a
// WWW-Authenticate header (bioweb's invalid_client does, as RFC 6749 asks): its response body
// is still unread and holds the error, and the parsed challenges are its cause.
async function oauthError(err, fallback) {
  if (err.error) return [err.error, err.error_description ?? err.message, err.status];
  if (err instanceof client.WWWAuthenticateChallengeError && err.response) {
    const body = await err.response.json().catch(() => ({}));
    const challenge = err.cause?.find((c) => c.parameters?.error)?.parameters ?? {};
    const error = body.error ?? challenge.error;
    if (error) return [error, body.error_description ?? challenge.error_description ?? err.message, err.status];
  }
  return [err.code ?? fallback, err.message, err.status];
}

async function main() {
  const env = {};
  for (const name of ['BIOWEB_URL', 'BIOWEB_CLIENT_ID', 'BIOWEB_CLIENT_SECRET', 'BIOWEB_DEVICE_ID']) {
    env[name] = process.env[name];
    if (!env[name]) return fail('config', `${name} is not set`);
  }
  const deviceId = Number(env.BIOWEB_DEVICE_ID);
  if (!Number.isInteger(deviceId)) return fail('config', 'BIOWEB_DEVICE_ID is not an integer');

  report.stage = 'discovery';
  let config;
  try {
    config = await client.discovery(
      new URL(env.BIOWEB_URL),
      env.BIOWEB_CLIENT_ID,
      env.BIOWEB_CLIENT_SECRET, // client_secret: openid-client then uses client_secret_post
      undefined,
      // RFC 8414 metadata, not OpenID Connect's; plain http is the test server on loopback
      { algorithm: 'oauth2', execute: [client.allowInsecureRequests], timeout: 30 },
    );
  } catch (err) {
    return fail(err.code ?? 'discovery_failed', err.message);
  }
  report.token_endpoint = config.serverMetadata().token_endpoint;

  report.stage = 'token';
  let tokens;
  try {
    tokens = await client.clientCredentialsGrant(config, { scope: 'all' });
  } catch (err) {
    return fail(...(await oauthError(err, 'token_request_failed')));
  }
  report.token_type = tokens.token_type;
  report.refresh_token = tokens.refresh_token !== undefined;
  report.scope = tokens.scope;

  report.stage = 'read';
  let response;
  try {
    response = await client.fetchProtectedResource(
      config,
      tokens.access_token,
      new URL(`${env.BIOWEB_URL}/api/v1/device/${deviceId}`),
      'GET',
    );
  } catch (err) {
    return fail(...(await oauthError(err, 'read_failed')));
  }
  report.status = response.status;
  if (response.status !== 200) return fail('unexpected_status', await response.text());
  const device = await response.json();
  report.device_id = device.id;
  // openid-client normalizes token_type to lower case ("bearer"); the server sent "Bearer".
  report.ok = device.id === deviceId && tokens.token_type?.toLowerCase() === 'bearer' && !report.refresh_token;
  if (!report.ok) report.error = 'unexpected_answer';
  emit();
}

main().catch((err) => fail('unexpected_exception', String(err?.stack ?? err)));
