"""Generated samples for test-mode devices (docs/samples.md, Test mode; issue 12):
POST /api/v1/metric-operations/simulators and `flask samples simulate`, on both databases.
Refused for live, disabled and other people's devices; plausible values for every type and
unit (heart rate with a day and a night, steps only while awake in the owner's zone, body
mass drifting, fractions within 0..1); deterministic, so a second run stores nothing twice;
stored through the samples service, so the rollups agree with the samples."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest
import sqlalchemy as sa

from bioweb import quantitytypes
from bioweb.errors import Conflict
from bioweb.extensions import db
from bioweb.models import Sample
from bioweb.services import accounts, metrics, samples, simulator
from tests.helpers import assert_error, basic, bearer, flask_cli, make_device, make_pat, make_user

SIMULATORS = "/api/v1/metric-operations/simulators"


def stored(metric_id: int) -> list[dict]:
    """The metric's samples in start order (read on a connection of its own)."""
    with db.engine.connect() as conn:
        result = conn.execute(
            sa.select(Sample.__table__).where(Sample.metric_id == metric_id).order_by(Sample.start_date)
        )
        return [dict(row._mapping) for row in result]


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC times; PostgreSQL aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def new_metric(client, token: str, device_id: int, sample_type: str, unit: str) -> int:
    response = client.post(
        "/api/v1/metrics",
        json={"device_id": device_id, "sample_type": sample_type, "quantity_type": unit},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    return response.get_json()["id"]


def simulate(client, token: str, body: dict):
    return client.post(SIMULATORS, json=body, headers=bearer(token))


@pytest.fixture
def test_device(user):
    return make_device(user, "Watch6,1", is_test_mode=True)


@pytest.fixture
def heart(client, pat, test_device) -> int:
    return new_metric(client, pat, test_device[0].id, "heartRate", "bpm")


# --- who may ------------------------------------------------------------------------------------


def test_a_live_device_is_refused_with_409(client, user, pat):
    live, _ = make_device(user, "Watch1,1")
    metric_id = new_metric(client, pat, live.id, "heartRate", "count/min")
    body = assert_error(simulate(client, pat, {"metric_id": metric_id, "days": 1}), 409, "conflict")
    assert "Only test-mode devices can be simulated" in body["error_description"]
    assert stored(metric_id) == []


def test_someone_elses_metric_is_404_like_one_that_does_not_exist(client, pat, heart):
    grace = make_user("grace@example.com")
    theirs, _ = make_device(grace, "Watch6,1", is_test_mode=True)
    grace_pat = make_pat(grace)
    their_metric = new_metric(client, grace_pat, theirs.id, "heartRate", "count/min")
    for metric_id in (their_metric, 424242):
        body = assert_error(simulate(client, pat, {"metric_id": metric_id, "days": 1}), 404, "not_found")
        assert f"no metric with id {metric_id}" in body["error_description"]
    assert_error(simulate(client, grace_pat, {"metric_id": heart, "days": 1}), 404)
    assert stored(their_metric) == [] and stored(heart) == []


def test_a_disabled_test_device_is_refused_with_409(client, pat, test_device, heart):
    assert client.delete(f"/api/v1/device/{test_device[0].id}", headers=bearer(pat)).status_code == 204
    body = assert_error(simulate(client, pat, {"metric_id": heart, "days": 1}), 409, "conflict")
    assert "disabled" in body["error_description"]
    assert stored(heart) == []


def test_scopes_and_the_devices_own_token(client, user, pat, test_device, heart):
    for scope in ("samples:read", "devices:read devices:write"):
        assert_error(
            simulate(client, make_pat(user, scope=scope), {"metric_id": heart, "days": 1}),
            403,
            "insufficient_scope",
        )
    assert_error(client.post(SIMULATORS, json={"metric_id": heart}), 401, "invalid_token")
    device, secret = test_device
    token = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(device.client_id, secret)
    ).get_json()["access_token"]
    other, _ = make_device(user, "Watch6,2", is_test_mode=True)
    others_metric = new_metric(client, pat, other.id, "stepCount", "count")
    # A device fills its own metrics only.
    assert_error(simulate(client, token, {"metric_id": others_metric, "days": 1}), 404)
    response = simulate(client, token, {"metric_id": heart, "days": 1})
    assert response.status_code == 201, response.text
    assert response.get_json()["accepted"] > 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"days": 1}, "metric_id"),
        ({"metric_id": 0, "days": 1}, "metric_id"),
        ({"metric_id": "1", "days": 1}, "metric_id"),
        ({"metric_id": 1, "days": 0}, "days"),
        ({"metric_id": 1, "days": 32}, "days"),
        ({"metric_id": 1, "days": "7"}, "days"),
        ({"metric_id": 1, "days": True}, "days"),
        ({"metric_id": 1, "days": 1, "end": "2022-01-01T00:00:00Z"}, "end"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(client, pat, body, field):
    assert field in assert_error(simulate(client, pat, body), 400, "invalid_request")["fields"]


def test_days_default_to_seven(client, pat, test_device):
    metric_id = new_metric(client, pat, test_device[0].id, "bodyMass", "kg")
    for body in ({"metric_id": metric_id}, {"metric_id": metric_id, "days": None}):
        response = simulate(client, pat, body)
        assert response.status_code == 201, response.text
        result = response.get_json()
        assert result["days"] == 7
        start, finish = (datetime.fromisoformat(result[k]) for k in ("start", "finish"))
        assert finish - start == timedelta(days=7)


# --- what it stores -----------------------------------------------------------------------------


def test_heart_rate_every_five_minutes_in_range_never_in_the_future(client, pat, heart):
    before = datetime.now(UTC)
    response = simulate(client, pat, {"metric_id": heart, "days": 2})
    after = datetime.now(UTC)
    assert response.status_code == 201, response.text
    result = response.get_json()
    assert list(result) == ["metric_id", "days", "accepted", "duplicates", "start", "finish"]
    assert (result["metric_id"], result["days"], result["duplicates"]) == (heart, 2, 0)
    finish = datetime.fromisoformat(result["finish"])
    assert before <= finish <= after and result["finish"].endswith("+00:00")
    assert finish - datetime.fromisoformat(result["start"]) == timedelta(days=2)
    # 2 days of 5-minute steps: 576, give or take the step the range's ends cut.
    assert 575 <= result["accepted"] <= 577
    rows = stored(heart)
    assert len(rows) == result["accepted"]
    assert all(40 <= row["quantity"] <= 200 and row["quantity"] == int(row["quantity"]) for row in rows)
    assert all(aware(row["start_date"]) <= finish and row["end_date"] == row["start_date"] for row in rows)
    starts = [aware(row["start_date"]) for row in rows]
    assert {b - a for a, b in zip(starts, starts[1:], strict=False)} == {timedelta(minutes=5)}
    assert all(int(start.timestamp()) % 300 == 0 for start in starts)
    assert all(
        row["client_sample_id"] == f"sim-{heart}-{int(aware(row['start_date']).timestamp() * 1000)}"
        for row in rows
    )
    assert {row["sample_sensor_location"] for row in rows} == {2}
    assert {row["sample_motion_context"] for row in rows} <= {"Active", "Sedentary"}


def test_a_second_run_stores_nothing_twice(client, pat, heart):
    first = simulate(client, pat, {"metric_id": heart, "days": 1}).get_json()
    again = simulate(client, pat, {"metric_id": heart, "days": 1})
    assert again.status_code == 201
    second = again.get_json()
    assert second["accepted"] <= 1  # the clock moved on: at most the newest 5-minute step is new
    assert second["duplicates"] >= first["accepted"] - 1
    assert len(stored(heart)) == first["accepted"] + second["accepted"]


def test_runs_over_overlapping_ranges_agree_on_every_sample(app, user, pat, client, heart):
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    first = simulator.simulate(user, heart, 2, end=end)
    values = {row["client_sample_id"]: row["quantity"] for row in stored(heart)}
    later = simulator.simulate(user, heart, 2, end=end + timedelta(hours=1))
    assert later.accepted == 12  # only the hour after the first range is new
    assert later.duplicates == first.accepted - 12
    rows = stored(heart)
    assert len(rows) == first.accepted + 12
    assert all(values.get(row["client_sample_id"], row["quantity"]) == row["quantity"] for row in rows)


def test_heart_rate_is_lower_at_night_than_by_day(app, user, client, pat, heart):
    accounts.set_time_zone(user, "Asia/Tokyo")
    simulator.simulate(user, heart, 14)
    tokyo = ZoneInfo("Asia/Tokyo")
    night, day = [], []
    for row in stored(heart):
        hour = aware(row["start_date"]).astimezone(tokyo).hour
        (night if 1 <= hour < 5 else day if 10 <= hour < 21 else []).append(row["quantity"])
    assert 50 <= sum(night) / len(night) <= 67
    assert 68 <= sum(day) / len(day) <= 115
    assert max(day) >= 120  # a workout or two in a fortnight


def test_steps_come_in_walks_while_the_owner_is_awake(app, user, client, pat, test_device):
    accounts.set_time_zone(user, "America/New_York")
    metric_id = new_metric(client, pat, test_device[0].id, "stepCount", "count")
    result = simulator.simulate(user, metric_id, 7)
    rows = stored(metric_id)
    assert len(rows) == result.accepted > 0
    new_york = ZoneInfo("America/New_York")
    for row in rows:
        start, end = aware(row["start_date"]), aware(row["end_date"])
        assert end - start == timedelta(minutes=5)
        assert 6 <= start.astimezone(new_york).hour <= 23, "no steps at night"
        assert row["quantity"] >= 1 and row["quantity"] == int(row["quantity"])
        assert row["quantity"] <= 5 * 200  # at most 200 steps a minute
    per_day = sum(row["quantity"] for row in rows) / 7
    assert 3_000 <= per_day <= 25_000


@pytest.mark.parametrize(("unit", "low", "high"), [("kg", 45, 110), ("lb", 100, 245), ("g", 45_000, 110_000)])
def test_body_mass_drifts_slowly_once_or_twice_a_day(app, user, client, pat, test_device, unit, low, high):
    metric_id = new_metric(client, pat, test_device[0].id, "bodyMass", unit)
    simulator.simulate(user, metric_id, 30)
    rows = stored(metric_id)
    assert 28 <= len(rows) <= 62
    values = [row["quantity"] for row in rows]
    assert all(low <= value <= high for value in values)
    assert (max(values) - min(values)) / min(values) < 0.15  # drifts, does not jump


def test_every_type_in_every_unit_gets_plausible_values():
    """All of the table's types in each of their units (generated, not stored): every item is
    a valid sample, finite, not negative, fractions within 0..1, counts of things whole."""
    finish = datetime(2026, 3, 29, 12, tzinfo=UTC)  # a daylight-saving change in Berlin
    count = 0
    for qtype in quantitytypes.all_types():
        for unit in qtype.units:
            target = simulator.Target(1, 1, qtype.identifier, unit, True, 1, "Europe/Berlin")
            items = list(simulator.Simulation(target).items(finish - timedelta(days=2), finish))
            assert items, (qtype.identifier, unit)
            for item in items:
                sample = msgspec.convert(item, samples.SampleIn)
                assert math.isfinite(sample.quantity) and sample.quantity >= 0, (qtype.identifier, item)
                assert sample.start_date <= sample.end_date <= finish
                if unit == "%":
                    assert sample.quantity <= 1, (qtype.identifier, item)
                if qtype.is_cumulative and unit == "count":
                    assert sample.quantity >= 1 and sample.quantity == int(sample.quantity)
            count += 1
    assert count > 200
    other = simulator.Target(1, 1, "other", "other", True, 1, "UTC")
    assert list(simulator.Simulation(other).items(finish - timedelta(days=1), finish))


@pytest.mark.parametrize(
    ("sample_type", "unit"),
    [
        ("oxygenSaturation", "%"),  # hourly, a fraction
        ("bodyTemperature", "degF"),  # daily, converted
        ("dietaryWater", "fl_oz_us"),  # meals
        ("flightsClimbed", "count"),  # bursts of whole things
        ("activeEnergyBurned", "kJ"),  # per step while walking
        ("bloodGlucose", "mmol<180.1558800000541>/L"),
    ],
)
def test_each_kind_of_type_is_stored_without_a_refusal(app, user, test_device, sample_type, unit):
    metric = metrics.create_metric(user, test_device[0].id, sample_type, unit)
    result = simulator.simulate(user, metric.id, 2)
    assert result.accepted == len(stored(metric.id)) > 0
    assert simulator.simulate(user, metric.id, 2).accepted <= 1


def test_the_rollups_agree_with_the_samples(client, pat, heart):
    result = simulate(client, pat, {"metric_id": heart, "days": 3}).get_json()
    response = client.get(
        "/api/v1/quantity-sample-calculations",
        query_string={
            "metric_id": heart,
            "function": "count",
            "frequency": "day",
            "start_gte": result["start"],
            "finish_lte": result["finish"],
            "time_zone": "UTC",
        },
        headers=bearer(pat),
    )
    assert response.status_code == 200, response.text
    assert sum(bucket["count"] for bucket in response.get_json()["results"]) == result["accepted"]


def test_a_device_disabled_midway_stops_with_a_conflict(
    app, user, pat, client, test_device, heart, monkeypatch
):
    from bioweb.services import devices

    calls = []
    submit = simulator.samples.submit_batch

    def disable_after_the_first(actor, items, origin=None):
        if calls:
            devices.disable_device(user, test_device[0].id)
        calls.append(len(items))
        return submit(actor, items, origin)

    monkeypatch.setattr(simulator.samples, "submit_batch", disable_after_the_first)
    with pytest.raises(Conflict, match="Stopped after storing 1000 generated samples"):
        simulator.simulate(user, heart, 7)
    assert calls[0] == 1000 and len(stored(heart)) == 1000


# --- the command line ---------------------------------------------------------------------------


def test_cli_simulates_as_the_metrics_owner(runner, client, pat, user, heart):
    result = runner.invoke(args=["samples", "simulate", "--metric-id", str(heart), "--days", "1"])
    assert result.exit_code == 0, result.output
    match = re.search(rf"Metric {heart}: stored (\d+) generated samples \(0 already there\)", result.output)
    assert match and 287 <= int(match.group(1)) <= 289
    again = runner.invoke(args=["samples", "simulate", "--metric-id", str(heart), "--days", "1"])
    assert again.exit_code == 0 and re.search(r"stored [01] generated samples", again.output)


def test_cli_refuses_live_unknown_and_bad_input(runner, client, pat, user):
    live, _ = make_device(user, "Watch1,1")
    metric_id = new_metric(client, pat, live.id, "heartRate", "count/min")
    result = runner.invoke(args=["samples", "simulate", "--metric-id", str(metric_id)])
    assert result.exit_code == 1 and "Only test-mode devices can be simulated" in result.output
    result = runner.invoke(args=["samples", "simulate", "--metric-id", "424242"])
    assert result.exit_code == 1 and "no metric with id 424242" in result.output
    result = runner.invoke(args=["samples", "simulate", "--metric-id", str(metric_id), "--days", "400"])
    assert result.exit_code == 2 and "'400' is not a whole number from 1 to 366" in result.output
    assert stored(metric_id) == []


@pytest.mark.slow
def test_flask_samples_simulate_in_a_child_process(database_url, client, pat, heart):
    result = flask_cli(database_url, "samples", "simulate", "--metric-id", str(heart), "--days", "1")
    assert result.returncode == 0, result.stderr
    assert f"Metric {heart}: stored" in result.stdout
    assert 287 <= len(stored(heart)) <= 289
