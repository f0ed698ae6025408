"""The README's app sign-in example (docs/examples/sign_in.py, Authlib's OAuth2Session) runs as
written against a live gunicorn: it prints the /authorize address, a person (here a requests
session with the dashboard's cookies and CSRF token, as a browser would) signs in and allows
it, the code from the redirect goes to the script's standard input, and the script trades it
with PKCE, reads the devices and refreshes."""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import requests

from tests.helpers import AUTHORIZE_FIELDS, PASSWORD, ROOT, input_value, make_device

EXAMPLE = ROOT / "docs" / "examples" / "sign_in.py"


def allow_in_dashboard(url: str, email: str) -> str:
    """Sign in and click Allow on the consent screen at `url`; the code of the redirect."""
    person = requests.Session()
    consent = person.get(url, timeout=10)
    assert "/login" in consent.url
    form = {"email": email, "password": PASSWORD, "csrf_token": input_value(consent.text, "csrf_token")}
    consent = person.post(consent.url, data=form, timeout=10)
    assert consent.status_code == 200 and "/authorize?" in consent.url, consent.text
    fields = {name: input_value(consent.text, name) for name in (*AUTHORIZE_FIELDS, "csrf_token")}
    answer = person.post(
        consent.url.split("?")[0], data={**fields, "approve": "Allow"}, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 303, answer.text
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


def test_the_sign_in_example_runs_as_written(live_server, user):
    device, secret = make_device(user)
    script = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE),
            "--base",
            live_server,
            "--client-id",
            device.client_id,
            "--client-secret",
            secret,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert script.stderr is not None and script.stdin is not None
    script.stderr.readline()
    url = script.stderr.readline().strip()
    assert url.startswith(f"{live_server}/authorize?") and "code_challenge_method=S256" in url
    out, err = script.communicate(allow_in_dashboard(url, user.email) + "\n", timeout=60)
    assert script.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == [
        {"scope": "devices:read samples:read", "expires_in": 3600},
        {"devices": 1},
        {"refreshed": True},
    ]
