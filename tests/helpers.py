"""Plain helpers with explicit arguments: build an app, users, tokens, devices; run a server."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from jinja2 import MemcachedBytecodeCache

from bench import servers
from bioweb import create_app
from bioweb.extensions import db
from bioweb.models import Device, User, is_sample_partition
from bioweb.readmodels import NewDevice
from bioweb.services import accounts, devices, tokens
from bioweb.views import authorize as authorize_view

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
# New password hashes in tests: scrypt at a tiny cost (under 1 ms, against about 125 ms for
# production's full-cost default, which test_security asserts). Every app, CLI and server here uses it.
PASSWORD_HASH_METHOD = "scrypt:256:8:1"
# Device access tokens are signed with this key in tests (in-process apps and gunicorn alike).
TOKEN_KEYS = "test-key:" + "k" * 43


# Mail that no test server receives (apps without BIOWEB_SMTP_URL) lands here, never in the
# checkout's instance/outbox.
OUTBOX = Path(tempfile.gettempdir()) / f"bioweb-test-outbox-{os.getpid()}"


class _TemplateCode:
    """Compiled templates by key, for jinja2's MemcachedBytecodeCache (its client: get and set)."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.code.get(key)

    def set(self, key: str, value: bytes, timeout: int | None = None) -> None:
        self.code[key] = value


# Every test makes an app, and every app a Jinja environment that would compile each template it
# renders again (a page's templates cost tens of milliseconds). The compiled code is shared
# within the process instead; Jinja keys it by the template's name and checks its source.
_TEMPLATE_CACHE = MemcachedBytecodeCache(_TemplateCode())  # type: ignore[arg-type]


def make_app(database_url: str, **overrides: Any) -> Flask:
    config = {
        "BIOWEB_MAIL_OUTBOX": str(OUTBOX),
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": False,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "BIOWEB_TOKEN_KEYS": TOKEN_KEYS,
        "BIOWEB_PASSWORD_HASH_METHOD": PASSWORD_HASH_METHOD,
    }
    config.update(overrides)
    app = create_app(config)
    app.jinja_env.bytecode_cache = _TEMPLATE_CACHE
    return app


@contextmanager
def app_with_database(database_url: str, **overrides: Any) -> Iterator[Flask]:
    """An app on `database_url` with its tables created and its app context pushed for the
    test body; every test request gets its own context (IsolatedClient). Afterwards the
    tables are emptied (PostgreSQL: one database per session) and connections closed.

    A new SQLite file starts as a copy of a schema made once per process (create_all costs
    about 30 ms a test). PostgreSQL is emptied with DELETE and its sequences restarted, in
    one transaction: TRUNCATE made new files for every table and partition, about 90 ms a test.
    """
    sqlite_file = _sqlite_path(database_url)
    copied = sqlite_file is not None and not sqlite_file.exists() and _copy_sqlite_schema(sqlite_file)
    app = make_app(database_url, **overrides)
    isolate_requests(app)
    with app.app_context():
        if not copied and database_url not in _CREATED:
            db.create_all()
            if database_url.startswith("postgresql"):  # a session's database keeps its tables
                _CREATED.add(database_url)
        try:
            yield app
        finally:
            db.session.remove()
            if database_url.startswith("postgresql"):
                _empty_postgresql()
            db.engine.dispose()


def _sqlite_path(database_url: str) -> Path | None:
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or database_url == prefix or ":memory:" in database_url:
        return None
    return Path(database_url[len(prefix) :])


_SQLITE_TEMPLATE: list[bytes] = []
_CREATED: set[str] = set()


def _copy_sqlite_schema(target: Path) -> bool:
    """Write the schema's SQLite file (made once per process by create_all) to `target`."""
    if not _SQLITE_TEMPLATE:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            template = Path(folder) / "schema.db"
            app = make_app(f"sqlite:///{template}")
            with app.app_context():
                db.create_all()
                db.engine.dispose()
            _SQLITE_TEMPLATE.append(template.read_bytes())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_SQLITE_TEMPLATE[0])
    return True


_EMPTYING: dict[str, str] = {}


def _empty_postgresql() -> None:
    """Every table emptied (children first) and every sequence restarted, as TRUNCATE ...
    RESTART IDENTITY would, in one round trip: the statements are made once per database (its
    tables and sequences do not change within a session)."""
    url = db.engine.url.render_as_string()
    with db.engine.begin() as conn:
        if url not in _EMPTYING:
            sequences = conn.execute(
                sa.text(
                    "SELECT relname FROM pg_class WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace"
                )
            ).scalars()
            tables = [f'DELETE FROM "{table.name}"' for table in reversed(db.metadata.sorted_tables)]
            _EMPTYING[url] = "; ".join([*tables, *(f'ALTER SEQUENCE "{name}" RESTART' for name in sequences)])
        conn.exec_driver_sql(_EMPTYING[url])


def make_user(email: str = "ada@example.com", password: str = PASSWORD, tenant: str | None = None) -> User:
    return accounts.create_user(email, password, "Ada", "Lovelace", tenant)


def make_pat(user: User, scope: str | None = None, expires_in_days: int | None = None) -> str:
    _, plaintext = tokens.create_personal_token(user, "test", scope, expires_in_days)
    return plaintext


def make_device(user: User, code: str = "iPhone1,1", is_test_mode: bool = False) -> tuple[Device, str]:
    """A registered device and its client secret."""
    creds = devices.create_device(user, NewDevice("Apple", code, is_test_mode))
    device = db.session.get(Device, creds.id)
    assert device is not None
    return device, creds.oauth2_client_secret


def basic(client_id: str, secret: str) -> dict[str, str]:
    """An HTTP Basic Authorization header for client credentials (UTF-8; lone surrogates in
    hostile test input are passed through as their bytes rather than refused here)."""
    raw = base64.b64encode(f"{client_id}:{secret}".encode("utf-8", "surrogatepass")).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


free_port = servers.free_port


class LiveServer(servers.Server):
    """bioweb (app:app) served by gunicorn under the production gunicorn.conf.py on a free
    loopback port, against `database_url`, with the test settings. The launcher itself is
    bench.servers.Server, shared with `make bench` and `make soak`."""

    def __init__(self, database_url: str, workers: int = 2, env: dict[str, str] | None = None):
        super().__init__("bioweb", workers=workers, args=("--log-level", "warning"))
        self.database_url = database_url
        self.env = {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "RATELIMIT_ENABLED": "false",
            "BIOWEB_BASE_URL": self.url,
            "BIOWEB_TOKEN_KEYS": TOKEN_KEYS,
            "BIOWEB_ACCESS_LOG": "",  # tests that read it name a file
            "BIOWEB_PASSWORD_HASH_METHOD": PASSWORD_HASH_METHOD,
            "BIOWEB_MAIL_OUTBOX": str(OUTBOX),
            **(env or {}),
        }


# --- Production-shape helpers (issue 5): CLI subprocesses, server pairs, throwaway databases.


# The settings a child process (flask CLI, gunicorn) of the tests gets, so it never falls back
# to generating keys in the checkout's instance/ folder.
CLI_ENV = {
    "BIOWEB_MAIL_OUTBOX": str(OUTBOX),
    "SECRET_KEY": "test-secret-key-not-for-production",
    "BIOWEB_TOKEN_KEYS": TOKEN_KEYS,
    "BIOWEB_PASSWORD_HASH_METHOD": PASSWORD_HASH_METHOD,
}


def flask_cli(database_url: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `flask --app app <args>` in a child process against `database_url`, as a deploy would."""
    env = {**os.environ, **CLI_ENV, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_servers(
    database_url: str, count: int = 2, workers: int = 2, env: dict[str, str] | None = None
) -> list[LiveServer]:
    """Start `count` gunicorn instances on one database at the same time; stop them all on failure."""
    instances = [LiveServer(database_url, workers=workers, env=env) for _ in range(count)]
    # One deployment: every instance has the same public base URL, the issuer of its tokens.
    for server in instances[1:]:
        server.env["BIOWEB_BASE_URL"] = (env or {}).get("BIOWEB_BASE_URL", instances[0].url)
    return servers.start_many(instances)


def _pg_admin(admin_url: str, statement: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the server of `admin_url`, outside a transaction."""
    engine = sa.create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def create_pg_database(admin_url: str, prefix: str = "bioweb_test") -> str:
    """Create an empty PostgreSQL database next to `admin_url`'s; return its URL.

    Raises sqlalchemy.exc.OperationalError when the server is not reachable.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _pg_admin(admin_url, f'CREATE DATABASE "{name}"')
    # A throwaway database: a commit need not wait for its WAL to reach the disk (a crash of the
    # server may lose the last moments, never leave them half-written). Every session opened on
    # it, the tests' and their servers', takes this.
    _pg_admin(admin_url, f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def drop_pg_database(admin_url: str, database_url: str) -> None:
    """Drop the database of `database_url`, closing any connections still open to it."""
    _pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')


# --- Dashboard helpers (test_views_*.py, test_browser.py) --------------------------------------------

SCREENSHOTS = ROOT / "tests" / "screenshots"

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def input_value(html: str, name: str) -> str:
    """The value of the first <input name=`name`> in `html` (hidden nonces and CSRF tokens)."""
    import re

    for tag in re.findall(r"<input\b[^>]*>", html):
        if re.search(rf'\bname="{re.escape(name)}"', tag):
            match = re.search(r'\bvalue="([^"]*)"', tag)
            return match.group(1) if match else ""
    raise AssertionError(f"no input named {name!r} in the page")


def log_in(client: Any, email: str = "ada@example.com", password: str = PASSWORD) -> Any:
    """Log `client` in through the login form (CSRF off in the default test app); returns the response."""
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 303, response.text
    return response


def log_in_with_csrf(client: Any, email: str = "ada@example.com", password: str = PASSWORD) -> str:
    """Log `client` in to an app that checks CSRF tokens (the `csrf_app` fixture), with the token
    its login page carries, as a browser would. Returns that token (the pre-login session's)."""
    token = input_value(client.get("/login").text, "csrf_token")
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 303, response.text
    return token


class IsolatedClient(FlaskClient):
    """A test client whose every request gets its own app context, hence its own `g` and its own
    database session, as in a real server.

    The `app` fixture keeps one app context pushed for the whole test, and Flask reuses a pushed
    context for requests: without this, `g` would carry Flask-Login's current user and
    Flask-WTF's CSRF token from one request (and one client) to the next.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        with self.application.app_context():
            return super().open(*args, **kwargs)


def isolate_requests(app: Flask) -> None:
    """Make app.test_client() hand out IsolatedClient from now on."""
    app.test_client_class = IsolatedClient


class Journey:
    """A page in a browser test plus the problems it reported: console errors, CSP violations,
    failed requests; `snap` saves it at desktop and phone width as <label>-<name>[-phone].png.
    A journey run on both databases shows the same pages: it takes screenshots on one only
    (`screenshots=False` on the other), about a quarter of a second each."""

    def __init__(self, page: Page, label: str, screenshots: bool = True):
        self.page = page
        self.label = label
        self.screenshots = screenshots
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("response", self._response)

    def _console(self, message) -> None:
        # A page answered with 400 or 404 on purpose logs "Failed to load resource"; _response
        # judges those. Anything else (a CSP refusal, a script error) is a problem.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text}")

    def _response(self, response) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            self.problems.append(f"{response.status} for {response.url}")

    def snap(self, name: str) -> None:
        """Full-page screenshots at desktop and phone width."""
        if not self.screenshots:
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{self.label}-{name}.png", full_page=True)
        self.page.set_viewport_size(PHONE)
        self.page.screenshot(path=SCREENSHOTS / f"{self.label}-{name}-phone.png", full_page=True)
        self.page.set_viewport_size(DESKTOP)


def token_for(base: str, client_id: str, secret: str) -> requests.Response:
    return requests.post(
        f"{base}/token", auth=(client_id, secret), data={"grant_type": "client_credentials"}, timeout=10
    )


def assert_error(response, status: int, code: str | None = None) -> dict:
    """An API error answer: the status, JSON with error, a non-empty error_description and maybe
    fields (and the error code when given); its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) <= {"error", "error_description", "fields"}
    assert isinstance(body["error_description"], str) and body["error_description"]
    if code is not None:
        assert body["error"] == code
    return body


# --- Mail (issue 16): a real SMTP server on a local port, and what reached it -------------------------


class Mailbox:
    """What an aiosmtpd server (the conftest `mailbox` fixture) received: each message parsed,
    with the envelope's recipients. Its handle_DATA runs on the server's thread."""

    def __init__(self) -> None:
        import threading

        self.messages: list[tuple[list[str], Any]] = []
        self.url = ""
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        from email import message_from_bytes
        from email.policy import default

        with self._lock:
            self.messages.append(
                (list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=default))
            )
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def to(self, address: str) -> list[Any]:
        """The messages whose envelope named `address`, oldest first."""
        with self._lock:
            return [message for rcpt, message in self.messages if address in rcpt]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        """The messages to `address` once there are `count` of them (a live server's mail)."""
        import time

        deadline = time.monotonic() + timeout
        while len(found := self.to(address)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} message(s) to {address}, expected {count}")
            time.sleep(0.05)
        return found


def mail_link(message: Any, path: str) -> str:
    """The link in a mail's body whose path starts with `path` ("/reset-password/")."""
    import re

    body = message.get_content()
    match = re.search(rf"https?://[^\s/]+{re.escape(path)}[^\s]+", body)
    assert match, f"no {path} link in:\n{body}"
    return match.group(0)


# --- the authorization-code flow (issue 13) ------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 4.1, 4.2)."""
    import base64
    import hashlib
    import secrets

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


# The request's parameters, which the consent form carries as hidden fields.
AUTHORIZE_FIELDS = authorize_view.PARAMETERS


def approve_in_dashboard(
    web: Any,
    client_id: str,
    *,
    redirect_uri: str | None = None,
    scope: str = "all",
    challenge: str | None = None,
    state: str = "st-1",
) -> str:
    """GET /authorize and click Allow on the consent form, with `web` (a test client signed in
    as the person); returns the code the redirect carries (its state checked)."""
    from urllib.parse import parse_qs, urlsplit

    params = {"response_type": "code", "client_id": client_id, "scope": scope, "state": state}
    if redirect_uri is not None:
        params["redirect_uri"] = redirect_uri
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    page = web.get("/authorize", query_string=params)
    assert page.status_code == 200, page.text
    form = {name: input_value(page.text, name) for name in AUTHORIZE_FIELDS}
    answer = web.post("/authorize", data={**form, "approve": "Allow"})
    assert answer.status_code == 303, answer.text
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["state"] == [state], query
    return query["code"][0]


def grant_code(user: User, client_id: str, scope: str = "all", challenge: str | None = None) -> str:
    """An authorization code for `client_id` approved by `user`, made through the service (for
    tests of what comes after the consent; tests/test_authorize.py drives the consent itself).
    Redirect URI: the client's first registered one, not named in the request."""
    from bioweb.services import grants

    client = grants.find_client(client_id)
    assert client is not None
    return grants.approve(user, client, grants.parse_scope(scope), client.redirect_uris[0], False, challenge)


def assert_nothing_left(
    user_ids: list[int], device_ids: list[int], metric_ids: list[int], application_ids: Sequence[int] = ()
) -> None:
    """No row of any table points at these users, devices, metrics or applications (every table of
    the models with such a column; PostgreSQL's sample partitions each on their own too)."""
    owned = {
        "user_id": user_ids,
        "device_id": device_ids,
        "metric_id": metric_ids,
        "application_id": list(application_ids),
    }
    checked = 0
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for column, ids in owned.items():
                if column in table.c and ids:
                    left = conn.execute(
                        sa.select(sa.func.count()).select_from(table).where(table.c[column].in_(ids))
                    ).scalar()
                    assert left == 0, f"{table.name}.{column}: {left} rows left"
                    checked += 1
            if table.name == "users" and user_ids:
                assert (
                    conn.execute(
                        sa.select(sa.func.count()).select_from(table).where(table.c.id.in_(user_ids))
                    ).scalar()
                    == 0
                )
            if table.name == "devices" and device_ids:
                assert (
                    conn.execute(
                        sa.select(sa.func.count()).select_from(table).where(table.c.id.in_(device_ids))
                    ).scalar()
                    == 0
                )
            if table.name == "metrics" and metric_ids:
                assert (
                    conn.execute(
                        sa.select(sa.func.count()).select_from(table).where(table.c.id.in_(metric_ids))
                    ).scalar()
                    == 0
                )
        if conn.dialect.name == "postgresql" and metric_ids:
            partitions = [name for name in sa.inspect(conn).get_table_names() if is_sample_partition(name)]
            assert len(partitions) == 48
            for name in partitions:
                left = conn.execute(
                    sa.text(f"SELECT count(*) FROM {name} WHERE metric_id = ANY(:ids)"), {"ids": metric_ids}
                ).scalar()
                assert left == 0, name
    assert checked >= 3
