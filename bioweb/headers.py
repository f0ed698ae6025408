"""Security headers on every response (pages, API, OAuth) and the flags of every cookie, in one place.

Headers are set unless a view already chose one (the one-time secret pages choose
no-referrer). With BIOWEB_SECURE_COOKIES (serving over HTTPS) cookies are Secure and
responses carry Strict-Transport-Security.
"""

from __future__ import annotations

from flask import Flask, Response, current_app

# No inline script and no inline style anywhere: everything comes from /static.
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
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if current_app.config["BIOWEB_SECURE_COOKIES"]:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


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
    app.after_request(add_security_headers)
