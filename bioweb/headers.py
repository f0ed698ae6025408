"""Security headers on every response (pages, API, OAuth) and the flags of every cookie, in one place.

Headers are set unless a view already chose one (the one-time secret pages choose
no-referrer). With BIOWEB_SECURE_COOKIES (serving over HTTPS) cookies are Secure and
responses carry Strict-Transport-Security.
"""

from __future__ import annotations

from flask import Flask, Request, Response, current_app
from flask.sessions import SecureCookieSessionInterface, SessionMixin

from .errors import wants_json

# No inline script and no inline style anywhere: everything comes from /static.
#
# The API reference (/api/docs) runs under this same policy, nothing added: Swagger UI
# (static/vendor/swagger-ui) starts from a script file (static/docs/docs.js), not an inline
# script, so script-src 'self' holds, with no 'unsafe-eval'; its stylesheet is a file
# (style-src 'self': the styles React sets on elements are CSSOM property writes, which a CSP
# does not govern, and the standalone preset with its inline <style> is not served); its icons
# are data: SVGs in that stylesheet (img-src data:); it fetches /api/v1/openapi.json and sends
# "Try it out" requests to this origin only (connect-src 'self'; docs.js puts the page's own
# origin first among the servers). tests/test_browser_docs.py fails on any CSP violation there.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer, by default: Flask-WTF's CSRF check on HTTPS needs a same-site
    # Referer on form posts. Pages that show a secret override this with no-referrer.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


HSTS = "max-age=31536000; includeSubDomains"


def add_security_headers(response: Response) -> Response:
    """Every security header the view did not set itself, added in one pass (every response
    pays for this, so it scans the headers once rather than once per header)."""
    present = {name.lower() for name in response.headers.keys()}
    missing = [(name, value) for name, value in SECURITY_HEADERS.items() if name.lower() not in present]
    if current_app.config["BIOWEB_SECURE_COOKIES"] and "strict-transport-security" not in present:
        missing.append(("Strict-Transport-Security", HSTS))
    response.headers.extend(missing)
    return response


class PagesOnlySessions(SecureCookieSessionInterface):
    """Cookie sessions for the dashboard only. The JSON API and the OAuth endpoints
    authenticate every request by its bearer token or client credentials, never by a cookie:
    there they get a null session, so a stray cookie means nothing and no request pays for
    reading one."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if wants_json():
            return self.make_null_session(app)
        return super().open_session(app, request)


def configure_cookies(app: Flask) -> None:
    """Session and remember-me cookies: never readable by scripts, not sent on cross-site
    posts (SameSite=Lax, with CSRF tokens as the second wall), Secure over HTTPS."""
    secure = app.config["BIOWEB_SECURE_COOKIES"]
    for prefix in ("SESSION_COOKIE", "REMEMBER_COOKIE"):
        app.config.update(
            {f"{prefix}_HTTPONLY": True, f"{prefix}_SAMESITE": "Lax", f"{prefix}_SECURE": secure}
        )


def init_app(app: Flask) -> None:
    configure_cookies(app)
    app.session_interface = PagesOnlySessions()
    app.after_request(add_security_headers)
