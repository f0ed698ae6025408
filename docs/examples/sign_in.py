"""Sign in to bioweb from an app: the authorization-code flow with PKCE, using Authlib.

    .venv/bin/python docs/examples/sign_in.py --base http://127.0.0.1:8000 \
        --client-id <device or app client id> [--client-secret <its secret>]

It prints the address to open in a browser. Sign in there and click Allow; the code appears on
bioweb's /appauth/code page (the redirect of a device, and of any app registered with it).
Paste it here: the script trades it for tokens (with the PKCE verifier, and the secret of a
confidential client), lists your devices with the access token, refreshes once, and prints
the answers as JSON lines. A public app (a native app) has no secret: leave --client-secret out.

tests/test_authorize_example.py runs this script as written against a live server.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys

from authlib.integrations.requests_client import OAuth2Session


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="http://127.0.0.1:8000", help="bioweb's address")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", help="a confidential client's secret (none for a public app)")
    parser.add_argument("--scope", default="devices:read samples:read")
    args = parser.parse_args()
    base = args.base.rstrip("/")

    session = OAuth2Session(
        args.client_id,
        args.client_secret,
        scope=args.scope,
        redirect_uri=f"{base}/appauth/code",
        code_challenge_method="S256",
        # A public client authenticates with its client_id alone (PKCE proves the rest).
        token_endpoint_auth_method="client_secret_basic" if args.client_secret else "none",
    )
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(f"{base}/authorize", code_verifier=verifier)
    print("Open this address, sign in and allow the app:", file=sys.stderr)
    print(url, file=sys.stderr)
    print("Then paste the code shown on the page:", file=sys.stderr)
    code = sys.stdin.readline().strip()

    token = session.fetch_token(f"{base}/token", code=code, code_verifier=verifier, state=state)
    print(json.dumps({"scope": token["scope"], "expires_in": token["expires_in"]}))
    devices = session.get(f"{base}/api/v1/devices", timeout=10)
    devices.raise_for_status()
    print(json.dumps({"devices": devices.json()["count"]}))
    refreshed = session.refresh_token(f"{base}/token", refresh_token=token["refresh_token"])
    print(json.dumps({"refreshed": refreshed["refresh_token"] != token["refresh_token"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
