"""The authorization-code flow attacked (issue 13): each test is an attack that must fail.
Redirect URIs that a browser reads differently from the server, errors as an open redirector,
codes raced and replayed, tokens of one client or person used against another's.
tests/test_authorize.py is the flow working; this is the flow holding."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from bioweb import redirects
from bioweb.extensions import db
from bioweb.models import AuthorizationCode
from bioweb.services import applications, devices, grants
from tests.helpers import (
    AUTHORIZE_FIELDS,
    basic,
    bearer,
    grant_code,
    input_value,
    log_in,
    make_device,
    make_user,
    pkce_pair,
)

CALLBACK = "http://127.0.0.1/callback"


@pytest.fixture
def native_app(user):
    """Ada's public application with a loopback redirect URI."""
    return applications.register(user, "Pulse Diary", CALLBACK, "public").application


def authorize(http, **params):
    return http.get("/authorize", query_string={"response_type": "code", "state": "s1", **params})


def is_page(response) -> bool:
    """An answer shown to the person: no redirect anywhere."""
    return response.status_code == 400 and "Location" not in response.headers


# --- open redirects ------------------------------------------------------------------------------

# Presented for the registered http://127.0.0.1/callback, whose port is free: each must not match.
NOT_LOOPBACK = [
    "http://evil.example\\@127.0.0.1/callback",  # a browser reads host evil.example (\ is /)
    "http://evil.example@127.0.0.1/callback",  # userinfo: refused at registration, so here too
    "http://127.0.0.1:0x50/callback",  # a port no browser reads
    "http://127.0.0.1:80:81/callback",
    "http://127.0.0.1:80/call\nback",  # Python drops the newline, the Location header would not
    "http://[::1",  # urlsplit raises: a 500 before
    "http://a\uff0fb@127.0.0.1/callback",
]


def test_loopback_matching_is_host_and_port_only():
    for presented in NOT_LOOPBACK:
        assert redirects.find_match([CALLBACK], presented) is None, presented
    assert (
        redirects.find_match([CALLBACK], "http://127.0.0.1:51234/callback")
        == "http://127.0.0.1:51234/callback"
    )
    assert redirects.find_match(["http://[::1]:8/cb"], "http://[::1]:9/cb") == "http://[::1]:9/cb"


def test_a_backslash_in_a_loopback_uri_sends_nothing_to_another_host(client, user, native_app):
    """Before the fix each of these matched (or crashed: 500 for http://[::1 and for a port
    Werkzeug cannot read when it writes the Location). The backslash one was shown on the
    consent screen and bound to the code; only Werkzeug's re-encoding of the Location header
    (evil.example%5C as a user name) kept the code on 127.0.0.1, where a browser reading the
    raw URI would have gone to evil.example."""
    evil = NOT_LOOPBACK[0]
    for signed_in in (False, True):
        if signed_in:
            log_in(client)
        for presented in NOT_LOOPBACK:
            page = authorize(
                client, client_id=native_app.client_id, redirect_uri=presented
            )  # no PKCE: an error
            assert is_page(page), (presented, page.status_code, page.headers.get("Location"))
    _, challenge = pkce_pair()
    page = authorize(
        client,
        client_id=native_app.client_id,
        redirect_uri=evil,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert is_page(page) and "not registered" in page.text


def test_request_errors_never_redirect_before_sign_in_or_to_a_stranger(client, user):
    """RFC 9700 4.11.2: anyone may register https://evil.example; a broken request for their
    app sent people there (before sign-in, or signed in as someone who never used the app)."""
    mallory = make_user("mallory@example.com")
    evil = applications.register(
        mallory, "Free Prizes", "https://evil.example/cb", "confidential"
    ).application
    device, _ = make_device(mallory)
    devices.set_redirect_uris(mallory, device.id, "https://evil.example/d")
    broken = {"client_id": evil.client_id, "response_type": "token"}
    to_login = authorize(client, **broken)
    assert to_login.status_code == 302 and to_login.headers["Location"].startswith("/login?next=")
    log_in(client)
    page = authorize(client, **broken)
    assert is_page(page) and "evil.example" not in page.headers.get("Location", "")
    # Mallory's device, with her redirect URI: only its owner can authorize it, told on a page.
    page = authorize(client, client_id=device.client_id, redirect_uri="https://evil.example/d")
    assert is_page(page) and "owner" in page.text
    # Deny on a consent screen that named evil.example is the person's choice (RFC 9700 4.11.2).
    page = authorize(client, client_id=evil.client_id, state="s1")
    form = {name: input_value(page.text, name) for name in AUTHORIZE_FIELDS}
    assert "evil.example" in page.text
    denied = client.post("/authorize", data={**form, "deny": "Deny"})
    assert denied.status_code == 303 and denied.headers["Location"].startswith(
        "https://evil.example/cb?error=access_denied"
    )
    # Once the person has authorized an app, its errors go back to it as RFC 6749 4.1.2.1 says.
    client.post("/authorize", data={**form, "approve": "Allow"})
    again = authorize(client, **broken)
    assert again.status_code == 303 and "error=unsupported_response_type" in again.headers["Location"]


# --- codes: raced, replayed, and presented by the wrong party -------------------------------------


def race(app, count: int, form: dict[str, str], auth: dict[str, str]) -> list[tuple[int, dict]]:
    """`count` POSTs of `form` to /token let go at once from as many threads, each with its own
    client, app context, database session and connection: a race in the database, as between
    gunicorn's workers (checked against a live gunicorn with 2 workers x 4 threads on both
    databases too; the in-process race costs no server start). The answers, 200 first."""
    barrier, answers = threading.Barrier(count), []

    def post() -> None:
        http = app.test_client()
        barrier.wait()
        sent = http.post("/token", data=form, headers=auth)
        answers.append((sent.status_code, sent.get_json()))

    threads = [threading.Thread(target=post) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(answers, key=lambda answer: answer[0])


def test_racing_replays_of_a_code_or_refresh_token_win_once_and_revoke_the_winner(app, client, user):
    """Eight exchanges of one code at once: one gets tokens, seven invalid_grant, and those
    are replays (RFC 6749 4.1.2), so the tokens given end. Before the fix, a replay that lost
    the conditional UPDATE (rather than arriving after the commit) revoked nothing: an
    attacker racing the client with a leaked code kept what it won. The same for a refresh
    token (rotation: one new pair, and the replay ends the family)."""
    device, secret = make_device(user)
    auth = basic(device.client_id, secret)
    for form in (
        {"grant_type": "authorization_code", "code": grant_code(user, device.client_id)},
        {"grant_type": "refresh_token", "refresh_token": client.post(
            "/token", data={"grant_type": "authorization_code", "code": grant_code(user, device.client_id)}, headers=auth
        ).get_json()["refresh_token"]},
    ):  # fmt: skip
        answers = race(app, 8, form, auth)
        assert [status for status, _ in answers] == [200] + [400] * 7, answers
        assert {body["error"] for _, body in answers[1:]} == {"invalid_grant"}
        won = answers[0][1]
        assert client.get("/api/v1/devices", headers=bearer(won["access_token"])).status_code == 401
        again = {"grant_type": "refresh_token", "refresh_token": won["refresh_token"]}
        assert client.post("/token", data=again, headers=auth).get_json()["error"] == "invalid_grant"


def test_a_spent_code_without_its_verifier_revokes_nothing(client, user, native_app):
    """A public client authenticates with its client_id alone, so whoever saw a spent code (in
    a browser's history, on a shared screen) could replay it with that id and end the
    person's sign-in. The code's PKCE verifier is the proof that it is the client's replay."""
    verifier, challenge = pkce_pair()
    code = grant_code(user, native_app.client_id, challenge=challenge)
    form = {"grant_type": "authorization_code", "code": code, "client_id": native_app.client_id}
    tokens = client.post("/token", data={**form, "code_verifier": verifier}).get_json()
    for replay in ({}, {"code_verifier": pkce_pair()[0]}, {"code_verifier": "x"}):
        assert client.post("/token", data={**form, **replay}).status_code == 400
        assert client.get("/api/v1/devices", headers=bearer(tokens["access_token"])).status_code == 200
    assert (
        client.post("/token", data={**form, "code_verifier": verifier}).get_json()["error"] == "invalid_grant"
    )
    assert client.get("/api/v1/devices", headers=bearer(tokens["access_token"])).status_code == 401


# --- one client, person or grant against another's -------------------------------------------------


def test_another_client_can_neither_use_revoke_nor_read_a_clients_tokens(client, user, native_app):
    """Mallory's confidential app holds Ada's tokens and codes for Ada's app (Coach): refresh,
    exchange, revocation and introspection with Mallory's credentials change and tell nothing;
    Bob's token for Coach reads none of Ada's devices; Mallory's dashboard finds no Coach."""
    uri = "https://coach.example/cb"
    coach = applications.register(user, "Coach", uri, "confidential")
    mallory = make_user("mallory@example.com")
    evil = applications.register(mallory, "Evil", "https://evil.example/cb", "confidential")
    ada_device, _ = make_device(user)
    coach_auth = basic(coach.application.client_id, coach.client_secret)
    evil_auth = basic(evil.application.client_id, evil.client_secret)
    code = grant_code(user, coach.application.client_id)
    tokens = client.post(
        "/token", data={"grant_type": "authorization_code", "code": code}, headers=coach_auth
    ).get_json()
    for token in (tokens["access_token"], tokens["refresh_token"]):
        revoked = client.post("/token/revoke", data={"token": token}, headers=evil_auth)
        assert revoked.status_code == 200 and revoked.get_json() == {}
        read = client.post("/token/introspect", data={"token": token}, headers=evil_auth)
        assert read.get_json() == {"active": False}
    assert client.post(
        "/token/introspect", data={"token": tokens["access_token"]}, headers=coach_auth
    ).get_json()["active"]
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert client.post("/token", data=refresh, headers=evil_auth).get_json()["error"] == "invalid_grant"
    fresh = {"grant_type": "authorization_code", "code": grant_code(user, coach.application.client_id)}
    assert client.post("/token", data=fresh, headers=evil_auth).get_json()["error"] == "invalid_grant"
    public = {**fresh, "client_id": native_app.client_id, "code_verifier": pkce_pair()[0]}
    assert client.post("/token", data=public).get_json()["error"] == "invalid_grant"
    assert client.post("/token", data=fresh, headers=coach_auth).status_code == 200  # unspent by all that
    assert client.get("/api/v1/devices", headers=bearer(tokens["access_token"])).status_code == 200
    assert client.post("/token", data=refresh, headers=coach_auth).status_code == 200
    bob = make_user("bob@example.com")
    bobs = client.post("/token", data={"grant_type": "authorization_code", "code": grant_code(bob, coach.application.client_id)}, headers=coach_auth).get_json()  # fmt: skip
    assert (
        client.get(f"/api/v1/devices/{ada_device.id}", headers=bearer(bobs["access_token"])).status_code
        == 404
    )
    assert client.get("/api/v1/devices", headers=bearer(bobs["access_token"])).get_json()["count"] == 0
    log_in(client, "mallory@example.com")
    app_id = coach.application.id
    assert client.get(f"/applications/{app_id}").status_code == 404
    assert client.post(f"/applications/{app_id}/secret").status_code == 404
    live = client.post("/token/introspect", data={"token": bobs["access_token"]}, headers=coach_auth)
    assert live.get_json()["active"]  # the secret was not rotated: its grants stand


# --- consent: only what the person saw, only by the person ------------------------------------------


def test_the_consent_post_checks_everything_again_and_the_page_cannot_be_framed(client, user):
    """The consent form's hidden fields, changed before the post (scope, redirect URI, client,
    PKCE method), get what the same GET would: an error, and no code. The page refuses frames."""
    uri = "https://coach.example/cb"
    coach = applications.register(user, "Coach", uri, "confidential").application
    mallory = make_user("mallory@example.com")
    theirs, _ = make_device(mallory)
    log_in(client)
    page = authorize(client, client_id=coach.client_id, redirect_uri=uri, scope="samples:read")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    form = {name: input_value(page.text, name) for name in AUTHORIZE_FIELDS}
    for changed, expect in (
        ({"scope": "device"}, "error=invalid_scope"),
        ({"scope": "samples:read openid"}, "error=invalid_scope"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "error=invalid_request"),
        ({"redirect_uri": "https://evil.example/cb"}, None),
        ({"redirect_uri": "https://coach.example/cb/../evil"}, None),
        ({"client_id": theirs.client_id, "redirect_uri": ""}, None),
    ):
        sent = client.post("/authorize", data={**form, **changed, "approve": "Allow"})
        if expect is None:
            assert is_page(sent), changed
        else:
            assert sent.status_code == 303 and expect in sent.headers["Location"], changed
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuthorizationCode)) == 0
    assert "code=" in client.post("/authorize", data={**form, "approve": "Allow"}).headers["Location"]


def test_pkce_values_are_checked_whole(client, user, native_app):
    """`$` in a regular expression also matches before a final newline: a challenge with one
    passed as 43 characters, and a verifier of 43 characters and a newline (its challenge
    computed over the newline) got tokens, outside RFC 7636's alphabet."""
    import base64
    import hashlib

    assert not grants.valid_challenge(pkce_pair()[1] + "\n")
    verifier = pkce_pair()[0][:43] + "\n"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    code = grant_code(user, native_app.client_id, challenge=challenge)
    form = {"grant_type": "authorization_code", "code": code, "client_id": native_app.client_id}
    sent = client.post("/token", data={**form, "code_verifier": verifier})
    assert sent.status_code == 400 and "43 to 128 characters" in sent.get_json()["error_description"]
