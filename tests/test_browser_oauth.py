"""Sign-in for apps (issue 13) in real headless Chromium against a gunicorn process, with real
OAuth client libraries: Authlib's OAuth2Session for a device's companion app (the code on
/appauth/code, client_secret_basic, PKCE S256) and requests-oauthlib's for a public native app
registered by clicking through /applications (a loopback listener of its own, PKCE, no secret).

The person signs in when /authorize asks, reads the consent screen and clicks Allow; the apps
trade their codes, read /api/v1 with their tokens, refresh with rotation (a spent refresh token
presented again ends its family), and are cut off when the person clicks Revoke on Authorized
apps. The negative paths each end with their RFC error, seen through the library or the browser:
a wrong verifier, a reused code (its tokens die), another client's code, an unregistered
redirect (a page; nothing sent there), plain PKCE, a request with neither state nor PKCE, and a
consent form posted from other origins without its CSRF token (a 400 page, no code).
HTTP-level versions of the rest are in tests/test_authorize.py. No console errors (a CSP
refusal, such as a form-action one on the redirect to the app, would be one). Screenshots at
desktop and phone width land in tests/screenshots/ (oauth-sqlite-*.png: the pages are the same
on PostgreSQL), and the consent and code pages are checked to fit a phone's width."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from oauthlib.oauth2 import InvalidGrantError, OAuth2Error
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from requests_oauthlib import OAuth2Session as OAuthlibSession

from bioweb.extensions import db
from bioweb.models import AuthorizationCode
from tests.helpers import DESKTOP, PASSWORD, PHONE, Journey, bearer, free_port, make_pat, make_user

pytestmark = [pytest.mark.browser, pytest.mark.server]

ALL = "devices:read devices:write samples:read samples:write"
# A long redirect URI and homepage, so the consent screen shows it wraps them on a phone.
CALLBACK_PATH = "/pulse-diary/callback_after_signing_in_with_your_bioweb_account"
CALLBACK_PAGE = b"<!doctype html><title>Pulse Diary</title><p>Signed in. You can close this window."


class _Listener(BaseHTTPRequestHandler):
    """A native app's loopback listener (RFC 8252 7.3): answers whatever the browser brings."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(CALLBACK_PAGE)))
        self.end_headers()
        self.wfile.write(CALLBACK_PAGE)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def loopback_listener() -> Iterator[int]:
    """A listener on a free loopback port, as the native app opens at each sign-in; its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def codes_issued() -> int:
    db.session.rollback()  # a fresh read of what the live server wrote
    return db.session.scalar(sa.select(sa.func.count()).select_from(AuthorizationCode)) or 0


def status(token: str, base: str) -> int:
    return requests.get(f"{base}/api/v1/devices", headers=bearer(token), timeout=10).status_code


def refresh_error(session: OAuth2Session, base: str, refresh_token: str) -> str:
    with pytest.raises(OAuthError) as refused:
        session.refresh_token(f"{base}/token", refresh_token=refresh_token)
    return refused.value.error


def consent(page: Page, url: str, asks: str) -> None:
    """Open the app's authorization URL and see the consent screen of `asks`."""
    page.goto(url)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Allow {asks} to act for you?")


def allow_on_landing(page: Page, base: str, state: str) -> str:
    """Click Allow, land on /appauth/code, check the state it shows; the code it shows."""
    page.get_by_role("button", name="Allow").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/appauth/code\?code=bcc_"))
    expect(page.locator("#auth-state")).to_have_text(state)
    query = parse_qs(urlsplit(page.url).query)
    assert query["state"] == [state] and query["iss"] == [base]
    code = page.locator("#auth-code").inner_text()
    assert query["code"] == [code]
    return code


def fits_a_phone(page: Page) -> None:
    """Nothing on the page is wider than a phone's screen (long codes and URIs wrap). The page
    gets up to 3 s to lay itself out at the new width (once in CI, 415 px was read right after
    the resize, on a page that fits); past that, the elements that stick out are named."""
    width = PHONE["width"]
    page.set_viewport_size(PHONE)
    try:
        page.wait_for_function(f"document.documentElement.scrollWidth <= {width}", timeout=3000)
    except PlaywrightTimeoutError:
        wide = page.evaluate(
            f"""Array.from(document.querySelectorAll('body *'))
                .filter(e => e.getBoundingClientRect().right > {width})
                .map(e => `${{e.tagName}}.${{e.className}}#${{e.id}} ${{Math.round(e.getBoundingClientRect().right)}}px`)
                .slice(0, 10)"""
        )
        raise AssertionError(f"{page.url} is wider than a phone ({width} px): {wide}") from None
    finally:
        page.set_viewport_size(DESKTOP)


def test_apps_sign_in_with_pkce_in_chromium(
    live_server: str, browser: Browser, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = live_server
    label = "sqlite" if database_url.startswith("sqlite") else "pg"
    # requests-oauthlib refuses plain http (even on loopback) and a scope other than the one it
    # asked for ("all" comes back as the four scopes) unless told.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    user = make_user()
    pat = make_pat(user)

    # A device registered through the API: its redirect URL is this server's landing page.
    created = requests.post(
        f"{base}/api/v1/devices",
        json={"manufacturer": "Apple", "device_code": "Watch6,1", "name": "Ada's watch"},
        headers=bearer(pat),
        timeout=10,
    )
    assert created.status_code == 200, created.text
    creds = created.json()
    landing = f"{base}/appauth/code"
    assert creds["oauth2_redirect_url"] == landing
    device_id, secret = creds["oauth2_client_id"], creds["oauth2_client_secret"]

    context = browser.new_context(viewport=DESKTOP, base_url=base)
    journey = Journey(context.new_page(), f"oauth-{label}", screenshots=label == "sqlite")
    page = journey.page
    # Nothing may ever be sent to an unregistered redirect URI, nor asked of the attacker's host.
    strays: list[str] = []
    page.route(
        re.compile(r"^https://evil\.example/"),
        lambda route: (strays.append(route.request.url), route.abort()),
    )
    try:
        # --- the companion app (Authlib): sign in when asked, consent, the code page ---------
        app = OAuth2Session(
            device_id, secret, scope="all", redirect_uri=landing, code_challenge_method="S256"
        )
        verifier = secrets.token_urlsafe(48)
        url, state = app.create_authorization_url(
            f"{base}/authorize", code_verifier=verifier, state=secrets.token_urlsafe(48)
        )
        page.goto(url)
        expect(page).to_have_url(
            re.compile(rf"^{re.escape(base)}/login\?next=/authorize\?response_type%3Dcode%26")
        )
        page.get_by_label("Email address").fill("ada@example.com")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Allow Ada's watch to act for you?")
        expect(page.get_by_text("is one of your devices")).to_be_visible()
        scopes = page.locator(".consent-scopes li")
        expect(scopes.first).to_have_text("Read your devices and their data")
        expect(scopes).to_have_count(2)
        expect(page.get_by_text("The code will be shown on a bioweb page")).to_be_visible()
        fits_a_phone(page)
        journey.snap("01-consent-device")
        code = allow_on_landing(page, base, state)
        expect(page.get_by_text("It works once, within 10 minutes")).to_be_visible()
        fits_a_phone(page)
        journey.snap("02-code")

        # A wrong verifier: invalid_grant (bioweb leaves the code unspent: the right one works).
        with pytest.raises(OAuthError) as refused:
            app.fetch_token(f"{base}/token", code=code, code_verifier=secrets.token_urlsafe(48))
        assert refused.value.error == "invalid_grant" and "does not match" in refused.value.description
        token = app.fetch_token(f"{base}/token", code=code, code_verifier=verifier)
        assert token["scope"] == ALL and token["token_type"] == "Bearer"
        first_refresh = token["refresh_token"]
        listed = app.get(f"{base}/api/v1/devices", timeout=10)
        assert listed.status_code == 200 and [d["name"] for d in listed.json()["results"]] == ["Ada's watch"]
        page.reload()
        expect(page.get_by_text("This code has been used.")).to_be_visible()

        # Refresh rotates: a new pair; the spent refresh token is refused, and presenting it ends
        # its family with the grant's access tokens (reuse detection).
        renewed = app.refresh_token(f"{base}/token")
        assert renewed["refresh_token"] != first_refresh and renewed["access_token"] != token["access_token"]
        assert app.get(f"{base}/api/v1/devices", timeout=10).status_code == 200
        assert refresh_error(app, base, first_refresh) == "invalid_grant"
        assert status(renewed["access_token"], base) == 401
        assert refresh_error(app, base, renewed["refresh_token"]) == "invalid_grant"

        # A reused code: invalid_grant, and the tokens it gave are revoked.
        url, state = app.create_authorization_url(f"{base}/authorize", code_verifier=verifier)
        consent(page, url, "Ada's watch")
        code = allow_on_landing(page, base, state)
        token = app.fetch_token(f"{base}/token", code=code, code_verifier=verifier)
        assert status(token["access_token"], base) == 200
        with pytest.raises(OAuthError) as refused:
            app.fetch_token(f"{base}/token", code=code, code_verifier=verifier)
        assert refused.value.error == "invalid_grant" and "already used" in refused.value.description
        assert status(token["access_token"], base) == 401
        assert refresh_error(app, base, token["refresh_token"]) == "invalid_grant"

        # Neither state nor PKCE: invalid_request, shown on the landing page.
        page.goto(f"{base}/authorize?response_type=code&client_id={device_id}&scope=all")
        expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/appauth/code\?error=invalid_request&"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in not completed")
        expect(page.get_by_text("Send a state parameter (or use PKCE)")).to_be_visible()
        journey.snap("03-code-error")

        # An unregistered redirect URI: a page here, nothing sent there.
        url, _ = app.create_authorization_url(
            f"{base}/authorize", code_verifier=verifier, redirect_uri="https://evil.example/callback"
        )
        answered = page.goto(url)
        assert answered is not None and answered.status == 400
        expect(page.get_by_role("heading", level=1)).to_have_text("This redirect URI is not registered")
        assert page.url == url
        journey.snap("04-unregistered-redirect")

        # The consent form posted from another origin, without its CSRF token: a 400 page and
        # no code. From another site (the session cookie is SameSite=Lax, so it stays home) and
        # from this site's other port (the cookie goes along; the CSRF token is the wall).
        url, state = app.create_authorization_url(f"{base}/authorize", code_verifier=verifier)
        fields = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()} | {"approve": "Allow"}
        inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
        forged = (
            f'<!doctype html><form method="post" action="{base}/authorize">{inputs}</form>'
            "<script>document.forms[0].submit()</script>"
        )
        before = codes_issued()
        for origin in ("https://attacker.example", f"http://127.0.0.1:{free_port()}"):
            page.route(f"{origin}/**", lambda route: route.fulfill(content_type="text/html", body=forged))
            with page.expect_response(f"{base}/authorize") as posted:
                page.goto(f"{origin}/prize", wait_until="commit")
            assert posted.value.request.method == "POST" and posted.value.status == 400
            expect(page).to_have_url(f"{base}/authorize")
            expect(page.get_by_text("did not come from this site")).to_be_visible()
        assert codes_issued() == before
        journey.snap("05-csrf")

        # --- a public app registered in the dashboard, through requests-oauthlib ----------------
        page.goto("/applications")
        page.get_by_label("Name").fill("Pulse Diary")
        page.get_by_label("Homepage").fill("https://pulse-diary.example/for-people-who-track-their-heart")
        page.get_by_label("Redirect URIs").fill(f"http://127.0.0.1{CALLBACK_PATH}")
        page.get_by_label("Public").check()
        page.get_by_role("button", name="Register application").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Registered: Pulse Diary")
        app_id = page.locator("#client-id").inner_text()
        assert app_id.startswith("app_")
        expect(page.locator("#client-secret")).to_have_count(0)

        with loopback_listener() as port:
            callback = f"http://127.0.0.1:{port}{CALLBACK_PATH}"
            native = OAuthlibSession(
                app_id, redirect_uri=callback, scope="devices:read samples:read", pkce="S256"
            )
            url, state = native.authorization_url(f"{base}/authorize")
            consent(page, url, "Pulse Diary")
            expect(page.get_by_text("is an application you registered")).to_be_visible()
            expect(page.locator(".consent-scopes li")).to_have_text(["Read your devices and their data"])
            expect(page.locator(".consent-redirect")).to_have_text(callback)
            fits_a_phone(page)
            journey.snap("06-consent-app")
            page.get_by_role("button", name="Allow").click()  # the form-action CSP lets it go there
            page.wait_for_url(f"{callback}?**")
            expect(page.get_by_text("Signed in. You can close this window.")).to_be_visible()
            answer = parse_qs(urlsplit(page.url).query)
            assert answer["state"] == [state] and answer["iss"] == [base]
            native_token = native.fetch_token(
                f"{base}/token", authorization_response=page.url, include_client_id=True
            )
            assert native_token["scope"] == ["devices:read", "samples:read"]  # oauthlib splits it
            assert native.get(f"{base}/api/v1/devices", timeout=10).status_code == 200
            # A public client refreshes with its client_id alone.
            renewed = native.refresh_token(f"{base}/token", client_id=app_id)
            assert renewed["refresh_token"] != native_token["refresh_token"]
            native_token = renewed

            # Plain PKCE: invalid_request back at the app's listener, raised by the library.
            # (requests-oauthlib's pkce="plain" sends no challenge at all, so it is spelled out.)
            plain = OAuthlibSession(app_id, redirect_uri=callback, scope="devices:read")
            challenge = secrets.token_urlsafe(32)
            url, state = plain.authorization_url(
                f"{base}/authorize", code_challenge=challenge, code_challenge_method="plain"
            )
            page.goto(url)
            page.wait_for_url(f"{callback}?**")
            assert parse_qs(urlsplit(page.url).query)["state"] == [state]
            with pytest.raises(OAuth2Error) as refused_plain:
                plain.fetch_token(f"{base}/token", authorization_response=page.url, include_client_id=True)
            assert refused_plain.value.error == "invalid_request"
            assert "plain is not" in refused_plain.value.description

            # Another client's code: the device's code, presented by the app, is invalid_grant,
            # and stays good for the device.
            url, state = app.create_authorization_url(f"{base}/authorize", code_verifier=verifier)
            consent(page, url, "Ada's watch")
            code = allow_on_landing(page, base, state)
            with pytest.raises(InvalidGrantError, match="issued to another client"):
                native.fetch_token(f"{base}/token", code=code, include_client_id=True)
        token = app.fetch_token(f"{base}/token", code=code, code_verifier=verifier)
        assert status(token["access_token"], base) == 200

        # --- Authorized apps: Revoke cuts the device's app off, and only it ---------------------
        page.goto("/account/authorized-apps")
        grants = (
            page.get_by_role("list", name="Apps you authorized")
            .get_by_role("listitem")
            .filter(has=page.get_by_role("button", name=re.compile("^Revoke")))
        )
        expect(grants).to_have_count(2)
        journey.snap("07-authorized-apps")
        page.get_by_role("button", name="Revoke Ada's watch").click()
        expect(grants).to_have_count(1)
        expect(grants.first).to_contain_text("Pulse Diary")
        assert status(token["access_token"], base) == 401
        assert refresh_error(app, base, token["refresh_token"]) == "invalid_grant"
        assert status(native_token["access_token"], base) == 200

        page.get_by_role("button", name="Revoke Pulse Diary").click()
        expect(page.get_by_text("You have authorized no apps.")).to_be_visible()
        assert status(native_token["access_token"], base) == 401
        with pytest.raises(InvalidGrantError):
            native.refresh_token(f"{base}/token", client_id=app_id)

        assert strays == []
        assert journey.problems == []
    finally:
        context.close()
