"""The smaller items of issue 14, point 7, each through the surface where it showed: one device
code lookup for the API's "did you mean" and the dashboard's suggestions; the CLI's email rule
and token lifetime, as the dashboard's; a confirmation step before revoking a token; the 413
answer stating the limit; the header saying who is signed in; the error summary in the form's
order."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from bioweb import devicecodes
from bioweb.extensions import db
from bioweb.models import Token, TokenKind, User
from tests.helpers import PASSWORD, bearer, input_value, make_pat, make_user

# --- One lookup for device codes -----------------------------------------------------------------


def test_did_you_mean_names_products_and_matches_the_dashboards_suggestions(client, user, web):
    response = client.post(
        "/api/v1/devices",
        json={"manufacturer": "Apple", "device_code": "iPhone 13"},
        headers=bearer(make_pat(user)),
    )
    assert response.status_code == 400
    message = response.get_json()["fields"]["device_code"][0]
    # The product called "iPhone 13" first, then its siblings, each with its product name.
    assert "Did you mean iPhone14,5 (iPhone 13), iPhone14,2 (iPhone 13 Pro)" in message
    assert "iPhone18" not in message
    suggested = re.findall(r"(\w+\d+,\d+) \(", message)
    listed = [e["code"] for e in web.get("/devices/codes", query_string={"q": "iPhone 13"}).get_json()]
    assert listed[: len(suggested)] == suggested  # the same helper, the same order


@pytest.mark.parametrize(
    ("typed", "first"),
    [
        ("iPhone 13", "iPhone14,5"),
        ("iphone  13 PRO", "iPhone14,2"),
        ("iPhone14,5", "iPhone14,5"),
        ("Wacth6,1", "Watch6,1"),  # a typo: the closest spelling
        ("iPhone14.5", "iPhone14,5"),
        ("ipad", "iPad1,1"),
    ],
)
def test_device_code_search_puts_the_best_match_first(typed, first):
    assert devicecodes.search(typed)[0].code == first


def test_dashboard_form_suggests_with_product_names(web):
    nonce = input_value(web.get("/devices/new").text, "nonce")
    response = web.post(
        "/devices/new", data={"manufacturer": "Apple", "device_code": "iPhone 13", "nonce": nonce}
    )
    assert response.status_code == 400
    assert "Did you mean iPhone14,5 (iPhone 13)" in response.text


# --- The CLI as the dashboard ------------------------------------------------------------------------


def _cli_user(runner, email: str):
    return runner.invoke(args=["users", "create", email, "--password-stdin"], input=PASSWORD + "\n")


@pytest.mark.parametrize(
    "email",
    ["notanemail", "ada@", "@example.com", "ada@example", "a b@example.com", "x" * 250 + "@example.com"],
)
def test_cli_refuses_an_email_the_sign_up_form_refuses(runner, client, email):
    result = _cli_user(runner, email)
    assert result.exit_code == 1 and "Error: email:" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    # The same words as the sign-up form's.
    page = client.post(
        "/signup", data={"email": email, "password": PASSWORD, "first_name": "A", "last_name": "B"}
    )
    assert page.status_code == 400
    cli_message = result.output.split("Error: email: ", 1)[1].strip()
    assert cli_message in page.text


def test_cli_takes_a_good_email(runner, app):
    assert _cli_user(runner, "Grace.Hopper+ops@Example.com").exit_code == 0
    assert db.session.scalar(sa.select(User.email)) == "grace.hopper+ops@example.com"


def _token_days(runner, *args: str) -> float | None:
    result = runner.invoke(args=["tokens", "create", "ada@example.com", *args])
    assert result.exit_code == 0, result.output
    row = db.session.scalar(sa.select(Token).where(Token.kind == TokenKind.PERSONAL))
    if row.expires_time is None:
        return None
    return (row.expires_time - row.created_time).total_seconds() / 86400


def test_cli_tokens_expire_after_the_dashboards_default(runner, web):
    assert round(_token_days(runner)) == 30
    # The dashboard's form preselects the same.
    assert re.search(
        r'<option selected value="30">|<option value="30" selected>', web.get("/api-tokens").text
    )


def test_cli_token_without_expiry_only_when_asked(runner, user):
    assert _token_days(runner, "--no-expiry") is None


def test_cli_refuses_both_expiry_options(runner, app):
    make_user()
    result = runner.invoke(
        args=["tokens", "create", "ada@example.com", "--no-expiry", "--expires-in-days", "7"]
    )
    assert result.exit_code != 0 and "not both" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Token)) == 0


@pytest.mark.parametrize("value", ["١", "1_0", " 7", "+7", "7.0", "0x7"])
def test_cli_reads_numbers_as_the_web_forms_do(runner, app, value):
    make_user()
    result = runner.invoke(args=["tokens", "create", "ada@example.com", "--expires-in-days", value])
    assert result.exit_code == 2 and "is not a whole number" in result.output
    assert runner.invoke(args=["tokens", "revoke", value]).exit_code == 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Token)) == 0


# --- Revoking a token asks first -------------------------------------------------------------------------


def _token_id(user: User) -> int:
    make_pat(user)
    return db.session.scalar(sa.select(Token.id).where(Token.kind == TokenKind.PERSONAL))


def _revoked(token_id: int) -> bool:
    db.session.expire_all()
    return db.session.get(Token, token_id).revoked_time is not None


def test_revoking_a_token_goes_through_a_confirmation_page(web, user):
    token_id = _token_id(user)
    listing = web.get("/api-tokens").text
    # The list links to the confirmation; no form on it revokes at once.
    assert f'action="/api-tokens/{token_id}/revoke"' not in listing
    assert f'href="/api-tokens/{token_id}/revoke"' in listing
    page = web.get(f"/api-tokens/{token_id}/revoke")
    assert page.status_code == 200 and not _revoked(token_id)
    html = page.text
    assert "Revoke “test”?" in html and "cannot be brought back" in html
    assert f'action="/api-tokens/{token_id}/revoke"' in html and 'href="/api-tokens">Cancel' in html.replace(
        'class="button button-quiet" ', ""
    )
    # No inline script: every <script> is a file, no on* handler attributes.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+=", html)
    done = web.post(f"/api-tokens/{token_id}/revoke")
    assert done.status_code == 303 and _revoked(token_id)
    assert "already revoked" in web.get(f"/api-tokens/{token_id}/revoke").text


def test_another_users_token_has_no_confirmation_page(web):
    theirs = _token_id(make_user("grace@example.com"))
    assert web.get(f"/api-tokens/{theirs}/revoke").status_code == 404
    assert not _revoked(theirs)


# --- 413 states the limit ------------------------------------------------------------------------------


def test_too_large_says_the_limit_on_pages_and_in_the_api(app, web, user):
    client = app.test_client()  # signed out
    page = web.post("/devices/new", data={"name": "a" * 70000})
    assert page.status_code == 413 and page.mimetype == "text/html"
    assert "at most 65,536 bytes (64 KiB)" in page.text
    signup = client.post("/signup", data={"email": "a" * 70000})
    assert signup.status_code == 413 and "65,536 bytes" in signup.text
    api = client.post("/api/v1/devices", json={"name": "a" * 70000}, headers=bearer(make_pat(user)))
    assert api.status_code == 413
    assert api.get_json()["error_description"].endswith("the limit here is 65,536 bytes (64 KiB).")
    batch = client.post(
        "/api/v1/quantity-samples",
        data=b'{"samples": "' + b"a" * (1024 * 1024 + 10) + b'"}',
        content_type="application/json",
        headers=bearer(make_pat(user)),
    )
    assert batch.status_code == 413 and "1,048,576 bytes (1 MiB)" in batch.get_json()["error_description"]


# --- Who is signed in --------------------------------------------------------------------------------------


def test_the_header_says_who_is_signed_in(app, web):
    client = app.test_client()  # signed out
    header = re.search(r"<header.*?</header>", web.get("/devices").text, re.S).group(0)
    assert "ada@example.com" in header and "Signed in as" in header
    assert 'title="Signed in as Ada Lovelace · ada@example.com"' in header
    signed_out = re.search(r"<header.*?</header>", client.get("/login").text, re.S).group(0)
    assert "Signed in as" not in signed_out


# --- Error summaries in the form's order -----------------------------------------------------------------


def _order(html: str) -> tuple[list[str], list[str]]:
    """(the fields the error summary links to, the invalid fields of the form), each in page order."""
    summary = re.search(r'<div class="error-summary".*?</div>', html, re.S)
    assert summary, "no error summary"
    linked = re.findall(r'href="#([\w-]+)"', summary.group(0))
    invalid = re.findall(
        r'<(?:input|select|textarea|fieldset)\b[^>]*\bid="([\w-]+)"[^>]*aria-invalid="true"', html
    )
    invalid += re.findall(r'<(?:input|select|textarea)\b[^>]*aria-invalid="true"[^>]*\bid="([\w-]+)"', html)
    positions = {name: html.index(f'id="{name}"') for name in invalid}
    return linked, sorted(set(invalid), key=positions.__getitem__)


def test_sign_up_errors_are_listed_in_the_forms_order(client):
    response = client.post(
        "/signup", data={"email": "notanemail", "password": "short", "first_name": "", "last_name": ""}
    )
    assert response.status_code == 400
    linked, fields = _order(response.text)
    assert linked == ["email", "first_name", "last_name", "password"] == fields


def test_other_forms_list_their_errors_in_their_order(web):
    page = web.post("/account/password", data={"current_password": "", "new_password": "short"})
    linked, fields = _order(page.text)
    assert linked == ["current_password", "new_password"] == fields
    nonce = input_value(web.get("/api-tokens").text, "nonce")
    page = web.post("/api-tokens", data={"name": "", "expires_in_days": "2", "nonce": nonce})
    linked, _ = _order(page.text)
    assert linked == ["name", "scopes", "expires_in_days"]
