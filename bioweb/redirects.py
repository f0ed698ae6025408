"""Redirect URIs of the authorization-code flow: which may be registered, and which presented
URI matches a registered one.

What may be registered (RFC 6749 3.1.2, RFC 8252 for native apps, the OAuth security BCP):
- `https://host/path`: any HTTPS URL, without userinfo or fragment;
- `http://127.0.0.1:{port}/path` and `http://[::1]:{port}/path`: a native app's loopback
  listener (RFC 8252 7.3). The port is left out when matching: the app picks a free one at
  each sign-in. `localhost` is refused (RFC 8252 8.3: it may resolve elsewhere);
- `com.example.app:/callback`: a private-use URI scheme (RFC 8252 7.1), which must be a
  reverse domain name (it holds a dot), so it names its app;
- the service's own `<base URL>/appauth/code`, the landing page for clients that cannot
  receive a redirect themselves.
Matching is otherwise exact, character for character (no prefixes, no wildcards): an open
redirect needs only one loose comparison.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_LENGTH = 1000
MAX_PER_CLIENT = 10
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")
# Schemes a browser would run or read, or that are not an app's: never a redirect target.
FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss"})
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")


class RedirectProblem(ValueError):
    """Why a URI cannot be registered (a sentence for the person registering it)."""


def _printable(uri: str) -> bool:
    """Printable ASCII without spaces or backslashes (a browser reads a backslash as a slash,
    Python's urlsplit does not)."""
    return not any(ord(c) <= 32 or ord(c) >= 127 or c == "\\" for c in uri)


def _loopback_without_port(uri: str) -> str | None:
    """`uri` with its port removed, if it is an http loopback URI; else None. Its authority
    must be the host and a port and nothing else (no user name, no port a browser reads
    otherwise), so that what is compared is what a browser would connect to."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or parts.hostname is None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if host not in LOOPBACK_HOSTS or parts.netloc not in (host, f"{host}:{port}"):
        return None
    return parts._replace(netloc=host).geturl()


def check(uri: str, base_url: str) -> str:
    """`uri`, stripped, if it may be registered; raises RedirectProblem saying why not."""
    uri = uri.strip()
    if not uri:
        raise RedirectProblem("A redirect URI cannot be empty.")
    if len(uri) > MAX_LENGTH:
        raise RedirectProblem(f"A redirect URI has at most {MAX_LENGTH} characters.")
    if not _printable(uri):
        raise RedirectProblem(
            f"{uri[:100]!r}: a redirect URI is printable ASCII without spaces or backslashes "
            "(percent-encode anything else)."
        )
    if uri == own_landing_page(base_url):
        return uri
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise RedirectProblem(f"{uri[:100]!r} is not a valid URI.") from None
    if "#" in uri:
        raise RedirectProblem(f"{uri[:100]!r}: a redirect URI cannot have a fragment (#...).")
    scheme = parts.scheme
    if not scheme or not _SCHEME.match(scheme):
        raise RedirectProblem(f"{uri[:100]!r} has no scheme: give an absolute URI (https://...).")
    if scheme == "https":
        if not parts.hostname:
            raise RedirectProblem(f"{uri[:100]!r} has no host.")
        if parts.username is not None or parts.password is not None:
            raise RedirectProblem(f"{uri[:100]!r}: a redirect URI cannot carry a user name or password.")
        return uri
    if scheme == "http":
        if _loopback_without_port(uri) is None or parts.username is not None or parts.password is not None:
            raise RedirectProblem(
                f"{uri[:100]!r}: plain http is allowed only for a native app's loopback address "
                "(http://127.0.0.1 or http://[::1], any port; not localhost). Use https."
            )
        return uri
    if scheme in FORBIDDEN_SCHEMES:
        raise RedirectProblem(f"{uri[:100]!r}: the scheme {scheme!r} cannot be a redirect URI.")
    if "." not in scheme:
        raise RedirectProblem(
            f"{uri[:100]!r}: a private-use scheme must be a reverse domain name your app owns, "
            "such as com.example.app:/callback (RFC 8252 7.1)."
        )
    return uri


def check_all(text: str, base_url: str) -> list[str]:
    """The URIs of `text` (one per line, or separated by spaces), each checked, duplicates
    dropped; raises RedirectProblem naming the first bad one."""
    uris: list[str] = []
    for item in text.split():
        uri = check(item, base_url)
        if uri not in uris:
            uris.append(uri)
    if len(uris) > MAX_PER_CLIENT:
        raise RedirectProblem(f"Register at most {MAX_PER_CLIENT} redirect URIs.")
    return uris


def own_landing_page(base_url: str) -> str:
    """This service's landing page for codes: <base URL>/appauth/code."""
    return base_url.rstrip("/") + "/appauth/code"


def find_match(registered: list[str], presented: str) -> str | None:
    """The presented URI if it matches a registered one (exactly, or a loopback URI on any
    port: then it must be a URI that could be registered itself), else None."""
    if presented in registered:
        return presented
    loopback = _loopback_without_port(presented) if _printable(presented) else None
    if loopback is not None and "#" not in presented:
        for uri in registered:
            if _loopback_without_port(uri) == loopback:
                return presented
    return None
