"""Migrations are honest: every revision applies in order from an empty database, and down
again, through the same `flask db` CLI a deploy runs; at head the schema is exactly what the
models declare (Alembic's autogenerate comparison finds nothing), on SQLite and PostgreSQL.

These tests never call db.create_all(): the schema comes from the migrations alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import bioweb.models  # noqa: F401  (fills db.metadata)
from bioweb import MIGRATIONS
from bioweb.config import normalize_database_url
from bioweb.extensions import db
from bioweb.models import include_in_autogenerate, is_sample_partition
from tests.conftest import PG_ADMIN_URL
from tests.helpers import create_pg_database, drop_pg_database, flask_cli, make_app, make_device, make_user

pytestmark = pytest.mark.slow  # every migration test runs `flask db` in a child process

APP_TABLES = {table.name for table in db.metadata.sorted_tables}


def revisions_in_order() -> list[tuple[str, str]]:
    """(revision, down revision or "base") for every revision, oldest first. Reads the scripts only."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, "the migration history has branched: add a merge revision"
    steps = [(rev.revision, rev.down_revision or "base") for rev in script.walk_revisions("base", "heads")]
    steps.reverse()
    return steps


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """An empty database of this test's own: a fresh SQLite file, or a PostgreSQL database created
    and dropped here (never the session database the `app` fixture fills with create_all)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    request.getfixturevalue("pg_database_url")  # skips, or fails under CI, when PostgreSQL is unreachable
    url = create_pg_database(PG_ADMIN_URL, prefix="bioweb_migrations")
    yield url
    drop_pg_database(PG_ADMIN_URL, url)


def _inspect(database_url: str) -> tuple[set[str], str | None]:
    """The tables in the database and the revision Alembic has stamped (None when unstamped)."""
    engine = sa.create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            tables = {name for name in sa.inspect(conn).get_table_names() if not is_sample_partition(name)}
            version = None
            if "alembic_version" in tables:
                version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    return tables, version


def _schema_differences(database_url: str) -> list:
    """What autogenerate would put in a new revision: the diff between the database and the models."""
    engine = sa.create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_name": include_in_autogenerate,  # as bioweb/migrations/env.py
                },
            )
            return compare_metadata(context, db.metadata)
    finally:
        engine.dispose()


def _db(database_url: str, *args: str) -> None:
    result = flask_cli(database_url, "db", *args)
    assert result.returncode == 0, f"flask db {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def test_revision_history_is_linear_and_not_empty():
    steps = revisions_in_order()
    assert steps, "no migrations found"
    assert steps[0][1] == "base"
    for (previous, _), (_, down) in zip(steps, steps[1:], strict=False):
        assert down == previous


def _step(database_url: str, command: str, revision: str) -> None:
    """One `flask db upgrade|downgrade <revision>`, in this process: the same Flask-Migrate call
    the CLI makes, without a child process's start-up (about 1.5 s) per revision."""
    from flask_migrate import Migrate, downgrade, upgrade

    app = make_app(database_url)
    Migrate(app, db, directory=str(MIGRATIONS), render_as_batch=True)
    with app.app_context():
        try:
            (upgrade if command == "upgrade" else downgrade)(directory=str(MIGRATIONS), revision=revision)
        finally:
            db.session.remove()
            db.engine.dispose()


def test_upgrade_step_by_step_then_down_to_base_and_up_again(empty_database_url: str):
    url = empty_database_url
    assert _inspect(url) == (set(), None)

    # From empty, one revision at a time: each step is an upgrade "from the previous revision".
    steps = revisions_in_order()
    for revision, _ in steps:
        _step(url, "upgrade", revision)
        assert _inspect(url)[1] == revision
    tables, version = _inspect(url)
    assert tables == APP_TABLES | {"alembic_version"}
    assert version == steps[-1][0]
    assert _schema_differences(url) == []

    # Down again, one revision at a time, to an empty schema.
    for revision, down in reversed(steps):
        assert _inspect(url)[1] == revision
        _step(url, "downgrade", down)
    assert _inspect(url)[0] <= {"alembic_version"}
    assert _inspect(url)[1] is None

    # And up to head in one go, through the CLI, as `make run` and a deploy do.
    _db(url, "upgrade")
    assert _inspect(url) == (APP_TABLES | {"alembic_version"}, steps[-1][0])
    assert _schema_differences(url) == []


def test_migrated_schema_serves_the_models(empty_database_url: str):
    """The app works on a migrated database: constraints and defaults the services rely on are there."""
    _db(empty_database_url, "upgrade")
    app = make_app(empty_database_url)
    with app.app_context():
        try:
            user = make_user()
            device, _ = make_device(user)
            assert device.id is not None and user.device_count == 1
            # The unique constraint on email is what accounts.create_user trusts to refuse a duplicate.
            from bioweb.errors import Conflict

            with pytest.raises(Conflict):
                make_user()
            # Foreign keys are enforced (SQLite only when PRAGMA foreign_keys is on).
            with pytest.raises(sa.exc.IntegrityError):
                db.session.execute(
                    sa.text(
                        "INSERT INTO users (tenant_id, email, password_hash, first_name, last_name,"
                        " session_version, device_count, created_time)"
                        " VALUES (999999, 'x@example.com', 'x', '', '', 1, 0, CURRENT_TIMESTAMP)"
                    )
                )
                db.session.commit()
            db.session.rollback()
        finally:
            db.session.remove()
            db.engine.dispose()


def test_autogenerate_comparison_detects_a_drift(empty_database_url: str):
    """The comparison the tests above rely on is not blind: a missing index shows up."""
    _db(empty_database_url, "upgrade")
    engine = sa.create_engine(normalize_database_url(empty_database_url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_devices_user_state"))
    finally:
        engine.dispose()
    differences = _schema_differences(empty_database_url)
    assert [(d[0], d[1].name) for d in differences] == [("add_index", "ix_devices_user_state")]


def test_samples_migration_grants_samples_scopes_to_existing_pats(empty_database_url: str):
    """Scripts keep working: 7c3d2a9e5f10 gives each PAT holding devices:* the matching samples:*
    (and takes it back on the way down); other tokens keep their scope."""
    url = empty_database_url
    _db(url, "upgrade", "5b1f0c2d9e47")
    scopes = {
        "both": ("devices:read devices:write", "devices:read devices:write samples:read samples:write"),
        "read": ("devices:read", "devices:read samples:read"),
        "write": ("devices:write", "devices:write samples:write"),
    }
    engine = sa.create_engine(normalize_database_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO tenants (name, created_time) VALUES ('t', CURRENT_TIMESTAMP)"))
            conn.execute(
                sa.text(
                    "INSERT INTO users (tenant_id, email, password_hash, first_name, last_name,"
                    " session_version, device_count, created_time)"
                    " SELECT id, 'ada@example.com', 'x', '', '', 1, 0, CURRENT_TIMESTAMP FROM tenants"
                )
            )
            for name, (old, _) in [*scopes.items(), ("device", ("device", None))]:
                conn.execute(
                    sa.text(
                        "INSERT INTO tokens (kind, digest, name, scope, user_id, created_time)"
                        " SELECT :kind, :digest, :name, :scope, id, CURRENT_TIMESTAMP FROM users"
                    ),
                    {
                        "kind": "pat" if name != "device" else "device",
                        "digest": name * 8,
                        "name": name,
                        "scope": old,
                    },
                )

        def stored() -> dict[str, str]:
            with engine.connect() as conn:
                return {
                    name: scope for name, scope in conn.execute(sa.text("SELECT name, scope FROM tokens"))
                }

        _db(url, "upgrade", "7c3d2a9e5f10")
        assert stored() == {**{name: new for name, (_, new) in scopes.items()}, "device": "device"}
        _db(url, "downgrade", "5b1f0c2d9e47")
        assert stored() == {**{name: old for name, (old, _) in scopes.items()}, "device": "device"}
    finally:
        engine.dispose()


def test_rollups_migration_summarises_the_samples_stored_before(empty_database_url: str):
    """a4c2e8d91b36 fills both rollup levels from the samples already stored, exactly as the
    writes would have (is_null samples left out, latest by start, received time, id)."""
    from bioweb.services import rollups

    url = empty_database_url
    _db(url, "upgrade", "e1a5d0c4b7f2")
    engine = sa.create_engine(normalize_database_url(url))
    now = "2024-05-01 12:00:00"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO tenants (name, created_time) VALUES ('t', :now)"), {"now": now})
            conn.execute(
                sa.text(
                    "INSERT INTO users (tenant_id, email, password_hash, first_name, last_name,"
                    " session_version, device_count, created_time)"
                    " SELECT id, 'ada@example.com', 'x', '', '', 1, 1, :now FROM tenants"
                ),
                {"now": now},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO devices (uuid, tenant_id, user_id, manufacturer, code, product_name,"
                    " is_test_mode, state, client_id, client_secret_digest, credential_generation,"
                    " created_time, modified_time, last_active_time)"
                    " SELECT 'u1', tenant_id, id, 'Apple', 'Watch6,1', 'Apple Watch', false, 1, 'c1', 'd',"
                    " 1, :now, :now, :now FROM users"
                ),
                {"now": now},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO metrics (uuid, tenant_id, user_id, device_id, name, sample_type,"
                    " sample_type_other, quantity_type, quantity_type_other, is_continuous_data,"
                    " created_time, modified_time)"
                    " SELECT 'm1', tenant_id, user_id, id, '', 'heartRate', '', 'count/min', '', false, :now, :now"
                    " FROM devices"
                ),
                {"now": now},
            )
            metric_id = conn.execute(sa.text("SELECT id FROM metrics")).scalar_one()
            base = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
            samples = sa.table(
                "quantity_samples",
                *(sa.column(name) for name in ("uuid", "metric_id", "start_date", "end_date", "quantity",
                  "sample_motion_context", "sample_sensor_location_other", "is_null",
                  "client_sample_version", "received_time")),
            )  # fmt: skip
            rows = []
            for minute in range(0, 300, 7):
                start = base + timedelta(minutes=minute)
                naive = start.replace(tzinfo=None) if conn.dialect.name == "sqlite" else start
                rows.append({
                    "uuid": f"s{minute}", "metric_id": metric_id, "start_date": naive, "end_date": naive,
                    "quantity": None if minute % 5 == 0 else 50.0 + minute % 13,
                    "sample_motion_context": "NotSet", "sample_sensor_location_other": "",
                    "is_null": minute % 5 == 0, "client_sample_version": 1, "received_time": naive,
                })  # fmt: skip
            conn.execute(sa.insert(samples), rows)
    finally:
        engine.dispose()
    _db(url, "upgrade")
    app = make_app(url)
    with app.app_context():
        try:
            from bioweb.models import HourRollup, Sample, SampleRollup

            raw = db.session.execute(sa.select(Sample.__table__)).all()
            slots = rollups.summarise(raw)
            for table, expected in (
                (SampleRollup.__table__, slots),
                (HourRollup.__table__, rollups.by_hour(slots)),
            ):
                unit = table.c.slot if "slot" in table.c else table.c.hour
                stored = {
                    (row.metric_id, row.number): rollups.from_row(row)
                    for row in db.session.execute(sa.select(table, unit.label("number")))
                }
                assert stored == expected and len(expected) > 3
        finally:
            db.session.remove()
            db.engine.dispose()
