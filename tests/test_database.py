"""The database layer as deployed: URL spellings, psycopg 3, the PostgreSQL pool, SQLite's WAL
and busy timeout, and /healthz telling a load balancer the truth about the database."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time

import pytest
import requests
import sqlalchemy as sa

from bioweb import create_app
from bioweb.config import normalize_database_url
from bioweb.extensions import db
from tests.conftest import PG_ADMIN_URL
from tests.helpers import (
    LiveServer,
    basic,
    bearer,
    create_pg_database,
    drop_pg_database,
    flask_cli,
    free_port,
    make_app,
    make_device,
    make_pat,
    make_user,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/bio", "postgresql+psycopg://u:p@db.example:5432/bio"),
        ("postgresql://u@db.example/bio", "postgresql+psycopg://u@db.example/bio"),
        ("postgresql+psycopg://u@db.example/bio", "postgresql+psycopg://u@db.example/bio"),
        ("sqlite:////var/lib/bioweb/bioweb.db", "sqlite:////var/lib/bioweb/bioweb.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
    ],
)
def test_normalize_database_url(given: str, expected: str):
    assert normalize_database_url(given) == expected


def test_default_database_is_a_sqlite_file_in_instance(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app({"TESTING": True})
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    assert uri.startswith("sqlite:///") and uri.endswith("/instance/bioweb.db")


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_database_url_from_the_environment_uses_psycopg3_and_the_configured_pool(
    scheme: str, pg_database_url: str, monkeypatch
):
    url = scheme + "://" + pg_database_url.split("://", 1)[1]
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("BIOWEB_DB_POOL_SIZE", "3")
    app = create_app({"TESTING": True})
    with app.app_context():
        try:
            engine = db.engine
            assert engine.url.drivername == "postgresql+psycopg"
            assert engine.dialect.driver == "psycopg"
            assert engine.pool.size() == 3
            response = app.test_client().get("/healthz")
            assert response.status_code == 200
            assert response.get_json() == {"status": "ok"}
            assert db.session.execute(sa.text("SELECT current_database()")).scalar() == url.rsplit("/", 1)[1]
            assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"] == {"connect_timeout": 5}
            assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True
        finally:
            db.session.remove()
            db.engine.dispose()


def kill_connections(database_url: str) -> int:
    """Terminate every server connection to the database of `database_url` (as a restart or an
    idle-connection killer would); return how many there were."""
    admin = sa.create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database_url.rsplit("/", 1)[1]},
            ).scalar_one()
    finally:
        admin.dispose()


def test_single_reads_survive_connections_killed_by_the_server(pg_database_url: str):
    """bioweb/reads.first runs without pre-ping on PostgreSQL: a pooled connection the server
    closed is found dead at its first use, and the read is tried once more on a fresh one."""
    url = create_pg_database(PG_ADMIN_URL, prefix="bioweb_reads")
    app = make_app(url)
    try:
        with app.app_context():
            db.create_all()
            device, secret = make_device(make_user())
            device_id, client_id = device.id, device.client_id
            db.session.remove()
        client = app.test_client()
        auth = basic(client_id, secret)
        access = client.post("/token", data={"grant_type": "client_credentials"}, headers=auth).get_json()
        read = f"/api/v1/device/{device_id}"
        assert client.get(read, headers=bearer(access["access_token"])).status_code == 200
        assert kill_connections(url) >= 1
        for _ in range(3):  # the bearer check and the client lookup are single reads
            assert client.get(read, headers=bearer(access["access_token"])).status_code == 200
            token = client.post("/token", data={"grant_type": "client_credentials"}, headers=auth)
            assert token.status_code == 200
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_pg_database(PG_ADMIN_URL, url)


def test_postgresql_pool_survives_connections_killed_by_the_server(pg_database_url: str):
    """pool_pre_ping: a pooled connection the server has closed (restart, failover, idle kill)
    is replaced before use, so the next request succeeds instead of failing."""
    app = make_app(pg_database_url)
    client = app.test_client()
    try:
        assert client.get("/healthz").status_code == 200
        with app.app_context():
            assert db.engine.pool.checkedin() == 1  # the request's connection waits in the pool
        assert kill_connections(pg_database_url) >= 1
        for _ in range(3):
            response = client.get("/healthz")
            assert response.status_code == 200, response.get_data(as_text=True)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'wal.db'}")
    with app.app_context():
        try:
            db.create_all()
            pragma = lambda name: db.session.execute(sa.text(f"PRAGMA {name}")).scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("busy_timeout") == 10000
            assert pragma("foreign_keys") == 1
            assert pragma("synchronous") == 1  # NORMAL: safe with WAL, one fsync per checkpoint
        finally:
            db.session.remove()
            db.engine.dispose()


def test_sqlite_write_waits_for_another_writer_instead_of_failing(tmp_path):
    """A second process holding the write lock delays a request; it does not fail it with
    'database is locked' (the busy timeout at work)."""
    path = tmp_path / "busy.db"
    app = make_app(f"sqlite:///{path}")
    with app.app_context():
        try:
            db.create_all()
            pat = make_pat(make_user())
            db.session.remove()
            other = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")  # the write lock, as another worker mid-transaction holds it
            release = threading.Timer(1.0, other.execute, ("COMMIT",))
            release.start()
            started = time.monotonic()
            response = app.test_client().post(
                "/api/v1/devices",
                json={"manufacturer": "Apple", "device_code": "iPhone1,1"},
                headers=bearer(pat),
            )
            waited = time.monotonic() - started
            release.join()
            other.close()
            assert response.status_code == 200, response.get_data(as_text=True)
            assert waited >= 0.9
        finally:
            db.session.remove()
            db.engine.dispose()


def test_healthz_answers_200_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize(
    "unreachable",
    [
        "postgresql://postgres@127.0.0.1:{port}/bioweb",  # nothing listens on that port
        "sqlite:///{tmp}/no/such/directory/bioweb.db",  # a file that cannot be opened
    ],
)
def test_healthz_answers_503_json_when_the_database_is_unreachable(unreachable: str, tmp_path):
    app = make_app(unreachable.format(port=free_port(), tmp=tmp_path))
    with app.app_context():
        try:
            client = app.test_client()
            response = client.get("/healthz")
            assert response.status_code == 503
            assert response.mimetype == "application/json"
            body = response.get_json()
            assert body["error"] == "temporarily_unavailable"
            assert body["error_description"]
            # The API says the same, in the same shape, with a hint when to retry.
            response = client.get("/api/v1/devices", headers=bearer("bcp_whatever"))
            assert response.status_code == 503
            assert response.get_json()["error"] == "temporarily_unavailable"
            assert response.headers["Retry-After"].isdigit()
        finally:
            db.session.remove()
            db.engine.dispose()


@pytest.mark.server
def test_live_server_healthz_follows_the_database_away_and_back(pg_database_url: str):
    """A real gunicorn server: /healthz is 200, then 503 once its database is gone, then 200
    again when it is back, without a restart (what a load balancer's health check relies on)."""
    url = create_pg_database(PG_ADMIN_URL, prefix="bioweb_health")
    server = LiveServer(url, workers=2)
    try:
        result = flask_cli(url, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        server.start()

        def statuses() -> set[int]:
            return {requests.get(server.url + "/healthz", timeout=5).status_code for _ in range(6)}

        assert statuses() == {200}
        drop_pg_database(PG_ADMIN_URL, url)
        assert statuses() == {503}
        body = requests.get(server.url + "/healthz", timeout=5).json()
        assert body["error"] == "temporarily_unavailable"
        admin = sa.create_engine(
            PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
        )
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"'))
        finally:
            admin.dispose()
        assert statuses() == {200}
    finally:
        server.stop()
        drop_pg_database(PG_ADMIN_URL, url)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_backup_restores_a_working_database(backend: str, tmp_path, request):
    """The README's backup recipes: `sqlite3 .backup` of a live WAL database, `pg_dump -Fc` +
    `pg_restore` for PostgreSQL. The restored copy serves the same credentials and is at head."""
    made: list[str] = []
    if backend == "sqlite":
        source, restored = f"sqlite:///{tmp_path / 'live.db'}", f"sqlite:///{tmp_path / 'backup.db'}"
    else:
        request.getfixturevalue("pg_database_url")
        source = create_pg_database(PG_ADMIN_URL, prefix="bioweb_backup")
        made.append(source)
    try:
        assert flask_cli(source, "db", "upgrade").returncode == 0
        app = make_app(source)
        with app.app_context():
            try:
                pat = make_pat(make_user())
                # A connection stays open during the backup, as a running server's would.
                db.session.execute(sa.text("SELECT 1"))
                if backend == "sqlite":
                    dump = subprocess.run(
                        ["sqlite3", str(tmp_path / "live.db"), f".backup '{tmp_path / 'backup.db'}'"],
                        capture_output=True,
                        text=True,
                        timeout=30,
                    )
                else:
                    dump = subprocess.run(
                        [
                            "pg_dump",
                            "--format=custom",
                            "--no-owner",
                            f"--dbname={source}",
                            "--file",
                            str(tmp_path / "dump"),
                        ],
                        capture_output=True,
                        text=True,
                        timeout=30,
                    )
                assert dump.returncode == 0, dump.stderr
            finally:
                db.session.remove()
                db.engine.dispose()
        if backend == "postgresql":
            restored = create_pg_database(PG_ADMIN_URL, prefix="bioweb_restored")
            made.append(restored)
            load = subprocess.run(
                ["pg_restore", "--no-owner", f"--dbname={restored}", str(tmp_path / "dump")],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert load.returncode == 0, load.stderr

        # The restored database is at head: the next deploy's `db upgrade` has nothing to do.
        current = flask_cli(restored, "db", "current")
        assert current.returncode == 0 and "(head)" in current.stdout, current.stdout + current.stderr
        copy = make_app(restored)
        client = copy.test_client()
        try:
            created = client.post(
                "/api/v1/devices",
                json={"manufacturer": "Apple", "device_code": "iPhone1,1"},
                headers=bearer(pat),
            )
            assert created.status_code == 200, created.get_data(as_text=True)
            listed = client.get("/api/v1/devices", headers=bearer(pat))
            assert listed.get_json()["count"] == 1
        finally:
            with copy.app_context():
                db.engine.dispose()
    finally:
        for url in made:
            drop_pg_database(PG_ADMIN_URL, url)


def test_engine_options_given_by_the_caller_keep_pre_ping_and_the_timeout(pg_database_url: str):
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": pg_database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": {"echo": False},
        }
    )
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_pre_ping"] is True and options["connect_args"]["connect_timeout"] == 5


def test_token_endpoint_keeps_working_when_the_rate_limit_store_is_away(database_url: str):
    """Redis down: limits fall back to per-process memory instead of failing /token."""
    from tests.helpers import app_with_database, make_device, make_user

    with app_with_database(
        database_url, RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0"
    ) as app:
        device, secret = make_device(make_user("redis-down@example.com"))
        response = app.test_client().post(
            "/token", data={"grant_type": "client_credentials"}, auth=(device.client_id, secret)
        )
        assert response.status_code == 200, response.get_data(as_text=True)
