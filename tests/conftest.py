"""Fixtures. Every test that uses `app` runs once per database backend: SQLite always,
PostgreSQL when a server is reachable (TEST_DATABASE_URL). When CI is set, an unreachable
PostgreSQL fails the run instead of skipping."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.routing.rules import Rule

from tests.helpers import (
    CHROMIUM_ARGS,
    Mailbox,
    app_with_database,
    create_pg_database,
    drop_pg_database,
    free_port,
    log_in,
    make_pat,
    make_user,
)


def _build_on_first_use(compile_builder: Any) -> Any:
    """Werkzeug compiles two URL builders per rule (Python source, parsed and compiled) when an
    app is made: four fifths of create_app's 50 ms, and the suite makes an app per test, most of
    which build few URLs. In tests each builder is compiled when first called instead; the
    builder is the same function, so what it builds is the same."""

    def lazy(rule: Rule, append_unknown: bool = True) -> Any:
        compiled: list[Any] = []

        def build(self: Rule, *args: Any, **kwargs: Any) -> Any:
            if not compiled:
                compiled.append(compile_builder(self, append_unknown).__get__(self, None))
            return compiled[0](*args, **kwargs)

        return build

    return lazy


Rule._compile_builder = _build_on_first_use(Rule._compile_builder)  # type: ignore[method-assign]

PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# Markers (declared in pyproject.toml) that follow from what a test uses; `make test-fast`
# deselects them. Modules mark what cannot be seen from here (a LiveServer started in the
# test body, `slow`) themselves.
MODULE_MARKERS = {"test_browser.py": ("browser", "server"), "test_fuzz.py": ("fuzz", "server", "slow")}
SERVER_FIXTURES = {"live_server", "stack"}  # stack: test_multiprocess's two gunicorn instances
# Tests sharing a costly module-scoped fixture run on one xdist worker (`make test` uses --dist
# loadgroup), so it is set up once, not once per worker: Chromium, and each of the two stacks
# (one per database) of test_multiprocess, which may then run on different workers.
XDIST_GROUPS = {"browser": "browser", "stack": "stack-{stack}"}


# tryfirst: before xdist's worker hook of the same name, which reads the xdist_group marks.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(MODULE_MARKERS.get(item.path.name, ()))
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            names.add("server")
        if "browser" in getattr(item, "fixturenames", ()):
            names.add("browser")
        params = getattr(getattr(item, "callspec", None), "params", {})
        # The database_url fixture's PostgreSQL half, and every other fixture or test
        # parametrized the same way (a module's own stack, empty database, backup backend).
        if "postgresql" in params.values() or "pg_database_url" in getattr(item, "fixturenames", ()):
            names.add("postgres")
        for name in sorted(names):
            item.add_marker(name)
        for fixture, group in XDIST_GROUPS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group.format(**params)))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under `--dist loadgroup` a grouped test's node id ends in @group: that is how xdist's
    scheduler sees the group. pytest 9.2 stopped that silently (pytest-xdist#1386) and every
    group was spread over the workers; fail such a test instead of slowing the suite unseen."""
    if (
        item.config.getoption("loadgroup", False)
        and item.get_closest_marker("xdist_group")
        and "@" not in item.nodeid
    ):
        pytest.fail(f"the xdist group of {item.nodeid} did not form (pytest-xdist#1386?)", pytrace=False)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (its own download cannot work here), one
    per worker: every test that uses it is in one xdist group, so one in all."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (so for each xdist worker: its
    name carries the worker's id and a random part), dropped at the end."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    try:
        url = create_pg_database(PG_ADMIN_URL, prefix=f"bioweb_test_{worker}")
    except sa.exc.OperationalError as exc:
        message = (
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({type(exc).__name__}); set TEST_DATABASE_URL"
        )
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so this is a failure)")
        pytest.skip(message)
    yield url
    drop_pg_database(PG_ADMIN_URL, url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bioweb.db'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free local port for the whole session: every `app`
    and `live_server` sends its mail there (BIOWEB_SMTP_URL). Tests read it via `mailbox`."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    mailbox.url = f"smtp://127.0.0.1:{controller.port}"
    yield mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: Mailbox) -> Mailbox:
    """The SMTP server's messages, none yet."""
    smtp_server.clear()
    return smtp_server


@pytest.fixture
def app(database_url: str, smtp_server: Mailbox):
    """The app on this test's database. Each test request gets its own app context (own g,
    own database session), as in a real server; the test body keeps this outer one."""
    with app_with_database(database_url, BIOWEB_SMTP_URL=smtp_server.url) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def csrf_app(database_url: str, smtp_server: Mailbox):
    """Like `app`, but with real CSRF checks (log in with tests.helpers.log_in_with_csrf)."""
    with app_with_database(database_url, WTF_CSRF_ENABLED=True, BIOWEB_SMTP_URL=smtp_server.url) as app:
        yield app


@pytest.fixture
def csrf_client(csrf_app):
    return csrf_app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def user(app):
    """Ada, the usual account (tests.helpers.PASSWORD)."""
    return make_user()


@pytest.fixture
def pat(user):
    """A personal access token of `user` with both scopes."""
    return make_pat(user)


@pytest.fixture
def web(client, user):
    """A test client logged in to the dashboard as `user`."""
    log_in(client)
    return client


@pytest.fixture
def live_server(request, app, database_url: str, smtp_server: Mailbox):
    """A real gunicorn process serving this test's database; yields its base URL. One worker
    (each imports the app: a second costs a CPU-second per test); a test whose requests must
    race in separate processes asks for more with @pytest.mark.workers(n)."""
    from tests.helpers import LiveServer

    marker = request.node.get_closest_marker("workers")
    workers = marker.args[0] if marker else 1
    server = LiveServer(database_url, workers=workers, env={"BIOWEB_SMTP_URL": smtp_server.url})
    server.start()
    yield server.url
    server.stop()
