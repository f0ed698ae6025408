"""Applications (OAuth clients a person registers), the apps a person authorized, and a device's
redirect URIs: the dashboard pages and /api/v1, on both databases (issue 13, point 0 and 4)."""

from __future__ import annotations

import re

import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Application, Device, Grant
from bioweb.security import digest
from bioweb.services import grants
from tests.helpers import (
    assert_error,
    bearer,
    input_value,
    log_in_with_csrf,
    make_device,
    make_pat,
    make_user,
)

APPS = "/api/v1/applications"
CALLBACK = "https://coach.example.com/cb"


def stored() -> list[Application]:
    db.session.expire_all()  # see what the requests committed
    return list(db.session.scalars(sa.select(Application).order_by(Application.id)))


def grant_rows() -> list[Grant]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Grant).order_by(Grant.id)))


def register(client, pat: str, **fields) -> dict:
    body = {"name": "Step coach", "redirect_uris": [CALLBACK], "client_type": "confidential", **fields}
    response = client.post(APPS, json=body, headers=bearer(pat))
    assert response.status_code == 201, response.text
    return response.get_json()


def authorize(user, client_id: str, scope: str = "devices:read samples:read") -> str:
    """The person approves the client (as the consent screen would): the authorization code."""
    client = grants.find_client(client_id)
    assert client is not None
    return grants.approve(user, client, scope, client.redirect_uris[0], True, None)


def shown(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]+)<', html)
    assert match, f"no {element_id} on the page"
    return match.group(1).strip()


# --- registering -------------------------------------------------------------------------------------


def test_register_a_confidential_application_shows_its_secret_once(web, user):
    page = web.get("/applications")
    assert page.status_code == 200 and "You have registered no applications yet." in page.text
    form = {
        "name": "Step coach",
        "homepage_url": "https://coach.example.com",
        "redirect_uris": f"{CALLBACK}\r\nhttp://127.0.0.1/cb\r\n",
        "client_type": "confidential",
        "nonce": input_value(page.text, "nonce"),
    }
    response = web.post("/applications", data=form)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "will not be shown again" in response.text
    secret, client_id = shown(response.text, "client-secret"), shown(response.text, "client-id")
    assert secret.startswith("bcs_") and len(secret) > 40 and client_id.startswith("app_")
    (app,) = stored()
    assert (app.user_id, app.client_id, app.client_type) == (user.id, client_id, "confidential")
    assert app.client_secret_digest == digest(secret) and secret not in app.client_secret_digest
    assert app.redirect_uris.split() == [CALLBACK, "http://127.0.0.1/cb"]
    assert all(secret not in value for value in response.headers.getlist("Set-Cookie"))
    # Sending the form again registers nothing and shows no secret.
    again = web.post("/applications", data=form)
    assert again.status_code == 303 and again.headers["Location"] == f"/applications/{app.id}"
    detail = web.get(again.headers["Location"]).text
    assert "already sent" in detail and secret not in detail and client_id in detail
    listing = web.get("/applications").text
    assert "Step coach" in listing and client_id in listing and secret not in listing
    assert len(stored()) == 1


def test_register_a_public_application_through_the_api(client, user, pat):
    body = register(
        client, pat, name="Pocket coach", client_type="public", redirect_uris=["com.example.coach:/cb"]
    )
    assert body["client_secret"] is None and body["client_type"] == "public"
    assert body["client_id"].startswith("app_") and body["redirect_uris"] == ["com.example.coach:/cb"]
    (app,) = stored()
    assert app.client_secret_digest == "" and app.client_secret_created_time is None
    listed = client.get(APPS, headers=bearer(pat)).get_json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]
    assert "client_secret" not in listed["results"][0]


# Each redirect URI, and whether it may be registered (else the start of what the 400 says).
REDIRECT_URIS = [
    ("https://coach.example.com/oauth/cb", None),
    ("http://127.0.0.1:53124/cb", None),
    ("http://[::1]/cb", None),
    ("com.example.app:/cb", None),
    ("http://localhost/cb", "'http://localhost/cb': plain http is allowed only for a native app's loopback"),
    (
        "http://example.com/cb",
        "'http://example.com/cb': plain http is allowed only for a native app's loopback",
    ),
    ("javascript:alert(1)", "'javascript:alert(1)': the scheme 'javascript' cannot be a redirect URI."),
    ("myapp:/cb", "'myapp:/cb': a private-use scheme must be a reverse domain name your app owns"),
    (
        "https://coach.example.com/cb#top",
        "'https://coach.example.com/cb#top': a redirect URI cannot have a fragment",
    ),
    ("/cb", "'/cb' has no scheme: give an absolute URI"),
]
# Bodies that are refused, and the one field each names (one test: a fresh database apiece would
# cost more than the requests).
BAD_BODIES = [
    ({"name": "", "redirect_uris": [CALLBACK], "client_type": "public"}, "name"),
    ({"name": "x" * 101, "redirect_uris": [CALLBACK], "client_type": "public"}, "name"),
    ({"name": "a\ud800", "redirect_uris": [CALLBACK], "client_type": "public"}, "name"),  # no 500 on PostgreSQL
    ({"name": "x", "redirect_uris": [], "client_type": "public"}, "redirect_uris"),
    ({"name": "x", "redirect_uris": CALLBACK, "client_type": "public"}, "redirect_uris"),
    ({"name": "x", "redirect_uris": [1], "client_type": "public"}, "redirect_uris"),
    ({"name": "x", "redirect_uris": [CALLBACK], "client_type": "secret"}, "client_type"),
    ({"name": "x", "redirect_uris": [CALLBACK]}, "client_type"),
    ({"name": "x", "redirect_uris": [CALLBACK], "client_type": "public", "homepage_url": "ftp://x"}, "homepage_url"),
    ({"name": "x", "redirect_uris": [CALLBACK], "client_type": "public", "homepage_url": "https://"}, "homepage_url"),
    ({"name": "x", "redirect_uris": [f"{CALLBACK}{i}" for i in range(11)], "client_type": "public"}, "redirect_uris"),
    ({"name": "x", "redirect_uris": [CALLBACK], "client_type": "public", "secret": "mine"}, "secret"),
]  # fmt: skip


def test_redirect_uri_rules_and_bad_bodies(client, user, pat):
    for uri, refusal in REDIRECT_URIS:
        body = {"name": "Coach", "redirect_uris": [uri], "client_type": "public"}
        response = client.post(APPS, json=body, headers=bearer(pat))
        if refusal is None:
            assert response.status_code == 201, (uri, response.text)
            assert response.get_json()["redirect_uris"] == [uri]
        else:
            error = assert_error(response, 400, "invalid_request")
            assert error["fields"]["redirect_uris"][0].startswith(refusal), (uri, error)
    assert len(stored()) == 4
    for body, field in BAD_BODIES:
        error = assert_error(client.post(APPS, json=body, headers=bearer(pat)), 400, "invalid_request")
        assert list(error["fields"]) == [field], (body, error)
    assert len(stored()) == 4


def test_the_register_form_puts_errors_on_their_fields(web):
    page = web.get("/applications").text
    form = {
        "name": "",
        "redirect_uris": "myapp:/cb",
        "client_type": "public",
        "nonce": input_value(page, "nonce"),
    }
    response = web.post("/applications", data=form)
    assert response.status_code == 400
    assert "Give the application a name." in response.text
    # The URIs are the service's to check once the form is complete.
    response = web.post("/applications", data={**form, "name": "Coach"})
    assert (
        response.status_code == 400 and "a private-use scheme must be a reverse domain name" in response.text
    )
    assert 'id="client_type-public" name="client_type" value="public" checked' in response.text
    assert stored() == []


# --- changing, rotating, deleting --------------------------------------------------------------------


def test_the_application_page_changes_it_and_refuses_bad_values_on_their_fields(web, client, user, pat):
    app_id = register(client, pat)["id"]
    page = web.get(f"/applications/{app_id}")
    assert page.status_code == 200 and CALLBACK in page.text
    changed = {"name": "Coach 2", "homepage_url": "", "redirect_uris": "com.example.coach:/cb"}
    response = web.post(f"/applications/{app_id}", data=changed)
    assert response.status_code == 303 and response.headers["Location"] == f"/applications/{app_id}"
    (app,) = stored()
    assert (app.name, app.homepage_url, app.redirect_uris) == ("Coach 2", "", "com.example.coach:/cb")
    bad = web.post(
        f"/applications/{app_id}", data={**changed, "name": "Coach 3", "redirect_uris": "http://localhost/x"}
    )
    assert bad.status_code == 400 and "plain http is allowed only" in bad.text
    assert "Coach 3" in bad.text  # what was typed stays in the field
    assert stored()[0].name == "Coach 2"  # nothing of a refused change is saved
    patched = client.patch(
        f"{APPS}/{app_id}", json={"homepage_url": "https://c.example"}, headers=bearer(pat)
    )
    assert patched.status_code == 200 and patched.get_json()["homepage_url"] == "https://c.example"
    assert patched.get_json()["name"] == "Coach 2"
    assert_error(client.patch(f"{APPS}/{app_id}", json={}, headers=bearer(pat)), 400)


def test_rotating_the_secret_shows_it_once_and_ends_every_grant(web, client, user, pat):
    created = register(client, pat)
    other = make_user(email="grace@example.com")
    authorize(user, created["client_id"])
    authorize(other, created["client_id"])
    assert len(grant_rows()) == 2
    confirm = web.get(f"/applications/{created['id']}/secret")
    assert (
        confirm.status_code == 200
        and "everyone who authorized Step coach is signed out of it" in confirm.text
    )
    form = {"nonce": input_value(confirm.text, "nonce")}
    response = web.post(f"/applications/{created['id']}/secret", data=form)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    secret = shown(response.text, "client-secret")
    assert secret.startswith("bcs_") and secret != created["client_secret"]
    assert stored()[0].client_secret_digest == digest(secret)
    assert grant_rows() == []
    again = web.post(f"/applications/{created['id']}/secret", data=form)
    assert again.status_code == 303 and stored()[0].client_secret_digest == digest(secret)
    # The API rotates too; a public application has no secret to rotate.
    rotated = client.post(f"{APPS}/{created['id']}/secret", headers=bearer(pat))
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    assert stored()[0].client_secret_digest == digest(rotated.get_json()["client_secret"])
    public = register(client, pat, client_type="public")
    assert_error(client.post(f"{APPS}/{public['id']}/secret", headers=bearer(pat)), 400)


def test_deleting_an_application_ends_its_grants(web, client, user, pat):
    first, second = register(client, pat), register(client, pat, name="Other")
    authorize(user, first["client_id"])
    authorize(user, second["client_id"])
    assert "cannot be brought back" in web.get(f"/applications/{first['id']}/delete").text
    response = web.post(f"/applications/{first['id']}/delete")
    assert response.status_code == 303 and response.headers["Location"] == "/applications"
    assert "“Step coach” is deleted" in web.get("/applications").text
    assert [a.id for a in stored()] == [second["id"]]
    assert [g.application_id for g in grant_rows()] == [second["id"]]
    assert client.delete(f"{APPS}/{second['id']}", headers=bearer(pat)).status_code == 204
    assert stored() == [] and grant_rows() == []
    assert_error(client.delete(f"{APPS}/{second['id']}", headers=bearer(pat)), 404, "not_found")


def test_another_persons_application_is_a_404(web, client, user):
    theirs = register(client, make_pat(make_user(email="eve@example.com")))
    url = f"/applications/{theirs['id']}"
    for path in (url, f"{url}/secret", f"{url}/delete"):
        assert web.get(path).status_code == 404, path
        assert web.post(path, data={"name": "mine"}).status_code == 404, path
    mine = bearer(make_pat(user))
    assert_error(client.get(f"/api/v1{url}", headers=mine), 404, "not_found")
    assert_error(client.patch(f"/api/v1{url}", json={"name": "mine"}, headers=mine), 404)
    assert_error(client.post(f"/api/v1{url}/secret", headers=mine), 404)
    assert_error(client.delete(f"/api/v1{url}", headers=mine), 404)
    assert stored()[0].name == "Step coach"


def test_only_a_personal_access_token_manages_applications(client, user, pat):
    created = register(client, pat)
    code = authorize(user, created["client_id"], "devices:read devices:write samples:read samples:write")
    client_record = grants.find_client(created["client_id"])
    assert client_record is not None
    issued = grants.exchange_code(client_record, code, CALLBACK, None)
    app_token = bearer(issued.access_token)
    assert client.get("/api/v1/devices", headers=app_token).status_code == 200  # a working token ...
    for method, path in (
        ("GET", APPS),
        ("POST", APPS),
        ("GET", f"{APPS}/{created['id']}"),
        ("PATCH", f"{APPS}/{created['id']}"),
        ("POST", f"{APPS}/{created['id']}/secret"),
        ("DELETE", f"{APPS}/{created['id']}"),
        ("GET", "/api/v1/account/grants"),
        ("DELETE", "/api/v1/account/grants/1"),
    ):
        response = client.open(path, method=method, json={"name": "x"}, headers=app_token)
        error = assert_error(response, 403, "insufficient_scope")  # ... that manages no applications
        assert "personal access token" in error["error_description"]
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    device, secret = make_device(user)
    token = client.post("/token", data={"grant_type": "client_credentials"}, auth=(device.client_id, secret))
    device_token = bearer(token.get_json()["access_token"])
    assert_error(client.get(APPS, headers=device_token), 403, "insufficient_scope")
    assert_error(client.post(APPS, json={}, headers=bearer(make_pat(user, scope="devices:read"))), 403)
    assert len(stored()) == 1 and len(grant_rows()) == 1


# --- authorized apps ----------------------------------------------------------------------------------


def test_authorized_apps_lists_and_revokes(web, client, user, pat):
    assert "You have authorized no apps." in web.get("/account/authorized-apps").text
    grace = make_user(email="grace@example.com")
    theirs = register(client, make_pat(grace), homepage_url="https://coach.example.com")
    device, _ = make_device(user)
    authorize(user, theirs["client_id"])
    authorize(user, device.client_id, "devices:write")
    page = web.get("/account/authorized-apps").text
    assert "Step coach" in page and "By Ada Lovelace (grace@example.com)" in page
    assert 'href="https://coach.example.com" rel="noopener noreferrer nofollow"' in page
    assert "Read your devices and their data" in page and "Your device" in page and ">never<" in page
    listed = client.get("/api/v1/account/grants", headers=bearer(pat)).get_json()
    assert listed["count"] == 2
    by_kind = {entry["kind"]: entry for entry in listed["results"]}
    assert by_kind["application"]["scope"] == "devices:read samples:read"
    assert by_kind["device"]["owner_name"] == "you" and by_kind["device"]["client_id"] == device.client_id
    response = web.post(f"/account/authorized-apps/{by_kind['application']['id']}/revoke")
    assert response.status_code == 303 and response.headers["Location"] == "/account/authorized-apps"
    assert "Step coach can no longer act for you." in web.get("/account/authorized-apps").text
    assert [g.device_id for g in grant_rows()] == [device.id]
    # Another person's grant: 404 on the page and in the API, and it stays.
    authorize(grace, theirs["client_id"])
    their_grant = grant_rows()[-1].id
    assert web.post(f"/account/authorized-apps/{their_grant}/revoke").status_code == 404
    assert_error(
        client.delete(f"/api/v1/account/grants/{their_grant}", headers=bearer(pat)), 404, "not_found"
    )
    assert (
        client.delete(f"/api/v1/account/grants/{by_kind['device']['id']}", headers=bearer(pat)).status_code
        == 204
    )
    assert [g.user_id for g in grant_rows()] == [grace.id]


def test_revoke_needs_the_csrf_token(csrf_client, csrf_app):
    user = make_user()
    device, _ = make_device(user)
    authorize(user, device.client_id)
    (grant,) = grant_rows()
    log_in_with_csrf(csrf_client)
    assert csrf_client.post(f"/account/authorized-apps/{grant.id}/revoke").status_code == 400
    assert len(grant_rows()) == 1
    page = csrf_client.get("/account/authorized-apps").text
    response = csrf_client.post(
        f"/account/authorized-apps/{grant.id}/revoke", data={"csrf_token": input_value(page, "csrf_token")}
    )
    assert response.status_code == 303 and grant_rows() == []


# --- a device's redirect URIs ---------------------------------------------------------------------------


def test_the_device_page_sets_its_redirect_uris(web, client, user):
    device, _ = make_device(user)
    page = web.get(f"/devices/{device.id}").text
    assert (
        "Redirect URIs" in page and "http://127.0.0.1:8000/appauth/code</code> is always registered" in page
    )
    response = web.post(
        f"/devices/{device.id}/redirect-uris",
        data={"redirect_uris": "com.example.app:/cb\nhttp://127.0.0.1/cb"},
    )
    assert (
        response.status_code == 303 and response.headers["Location"] == f"/devices/{device.id}#redirect-uris"
    )
    db.session.expire_all()
    assert db.session.get(Device, device.id).redirect_uris == "com.example.app:/cb\nhttp://127.0.0.1/cb"
    assert "com.example.app:/cb\nhttp://127.0.0.1/cb</textarea>" in web.get(f"/devices/{device.id}").text
    bad = web.post(f"/devices/{device.id}/redirect-uris", data={"redirect_uris": "myapp:/cb"})
    assert bad.status_code == 400 and "a private-use scheme must be a reverse domain name" in bad.text
    assert "myapp:/cb</textarea>" in bad.text
    db.session.expire_all()
    assert db.session.get(Device, device.id).redirect_uris.startswith("com.example.app:/cb")
    assert web.post(f"/devices/{device.id}/redirect-uris", data={"redirect_uris": ""}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Device, device.id).redirect_uris == ""
    other, _ = make_device(make_user(email="eve@example.com"))
    assert web.post(f"/devices/{other.id}/redirect-uris", data={"redirect_uris": ""}).status_code == 404


def test_pages_need_a_login(client):
    for path in ("/applications", "/account/authorized-apps"):
        assert client.get(path).headers["Location"].startswith("/login?next=")


def test_an_unconfirmed_address_registers_no_application(client, user):
    """The consent screen names an application's owner by email address: only a confirmed one."""
    from bioweb.extensions import db as database

    user.email_confirmed_time = None
    database.session.commit()
    pat = make_pat(user)
    body = {"name": "Spoof", "redirect_uris": ["https://spoof.example/cb"], "client_type": "public"}
    refused = client.post("/api/v1/applications", json=body, headers=bearer(pat))
    assert (
        refused.status_code == 403
        and "before registering applications" in refused.get_json()["error_description"]
    )
