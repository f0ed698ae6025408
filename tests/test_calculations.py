"""Calculations, rollups and figures (issue 12), through HTTP on both databases.

The heart of it is a property test: random samples written, replaced and deleted through the
API, then every function and frequency in several time zones (one 45 minutes off the hour,
one 30 minutes off with daylight saving, one with daylight saving, UTC) over random ranges,
compared with a straightforward recomputation from the raw samples. The rollups themselves
are compared with a rebuild from the samples after every kind of write.
"""

from __future__ import annotations

import random
import uuid
import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from bioweb.extensions import db
from bioweb.models import Sample, SampleRollup
from bioweb.services import rollups
from tests.helpers import assert_error, bearer, make_device, make_pat, make_user
from tests.test_samples import batch, iso, new_metric

CALC = "/api/v1/quantity-sample-calculations"
ZONES = ["Asia/Kathmandu", "America/St_Johns", "Europe/Berlin", "UTC"]
FUNCTIONS = {1: "average", 2: "sum", 3: "minimum", 4: "maximum", 5: "count", 6: "latest"}
# Around the autumn changes of 2024 (Berlin 27 October, St. John's 3 November), and a year.
DENSE = (datetime(2024, 10, 25, tzinfo=UTC), datetime(2024, 11, 6, tzinfo=UTC))
SPARSE = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))


def stored_samples(metric_ids: list[int]) -> list:
    with db.engine.connect() as conn:
        return conn.execute(sa.select(Sample.__table__).where(Sample.metric_id.in_(metric_ids))).all()


def stored_rollups(metric_ids: list[int]) -> dict:
    with db.engine.connect() as conn:
        result = conn.execute(sa.select(SampleRollup.__table__).where(SampleRollup.metric_id.in_(metric_ids)))
        return {
            (row.metric_id, row.slot): (
                row.sample_count,
                round(row.total, 6),
                row.minimum,
                row.maximum,
                row.latest_value,
                (row.latest_start, row.latest_received, row.latest_id),
            )
            for row in result
        }


def assert_rollups_exact(metric_ids: list[int]) -> None:
    """The rollups equal a recomputation from the stored samples."""
    expected = {
        key: (r.count, round(r.total, 6), r.minimum, r.maximum, r.latest_value, r.latest_key)
        for key, r in rollups.summarise(stored_samples(metric_ids)).items()
    }
    assert stored_rollups(metric_ids) == expected


def bucket_key(frequency: int, moment: datetime, zone: zoneinfo.ZoneInfo) -> tuple:
    """The local bucket of an instant, by plain calendar arithmetic on the local time."""
    local = moment.astimezone(zone)
    if frequency == 5:
        return (local.date(), local.hour, local.utcoffset())
    if frequency == 1:
        return (local.date(),)
    if frequency == 2:
        return tuple(local.date().isocalendar()[:2])
    if frequency == 3:
        return (local.year, local.month)
    return (local.year,)


def recompute(samples: list, function: int, start: datetime, finish: datetime, key) -> dict:
    """bucket key -> (value, count) straight from raw samples."""
    groups: dict = {}
    for s in samples:
        if s.is_null or not start <= s.start_date <= finish:
            continue
        groups.setdefault(key(s.start_date), []).append(s)
    answer = {}
    for k, members in groups.items():
        values = [m.quantity for m in members]
        if function == 1:
            value = sum(values) / len(values)
        elif function == 2:
            value = sum(values)
        elif function == 3:
            value = min(values)
        elif function == 4:
            value = max(values)
        elif function == 5:
            value = float(len(values))
        else:
            value = max(members, key=lambda m: (m.start_date, m.received_time, m.id)).quantity
        answer[k] = (value, len(values))
    return answer


def calc(client, token, **params):
    response = client.get(CALC, query_string=params, headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def check_answer(body, expected: dict, frequency: int, zone, start: datetime, finish: datetime) -> None:
    results = body["results"]
    assert results, "every bucket of the range is answered"
    first, last = results[0], results[-1]
    assert datetime.fromisoformat(first["start"]) <= start < datetime.fromisoformat(first["finish"])
    assert datetime.fromisoformat(last["start"]) <= finish < datetime.fromisoformat(last["finish"])
    seen = set()
    for before, after in zip(results, results[1:], strict=False):
        assert before["finish"] == after["start"], "buckets are contiguous"
    for bucket in results:
        begins = datetime.fromisoformat(bucket["start"])
        ends = datetime.fromisoformat(bucket["finish"])
        key = bucket_key(frequency, begins, zone)
        assert key not in seen
        seen.add(key)
        assert bucket_key(frequency, ends - timedelta(microseconds=1), zone) == key, "one whole local bucket"
        assert begins.utcoffset() == begins.astimezone(zone).utcoffset(), "times carry the zone's offset"
        assert bucket["partial"] == (begins < start or ends - timedelta(microseconds=1) > finish)
        value, count = expected.get(key, (None, 0))
        assert bucket["count"] == count, (key, bucket)
        if value is None:
            assert bucket["value"] is None
        else:
            assert bucket["value"] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, bucket)
    assert set(expected) <= seen


def random_samples(
    rng: random.Random, metric_id: int, n: int, window: tuple[datetime, datetime]
) -> list[dict]:
    span = (window[1] - window[0]).total_seconds()
    items = []
    for _ in range(n):
        start = window[0] + timedelta(seconds=rng.uniform(0, span))
        start = start.replace(microsecond=rng.choice([0, rng.randrange(10**6)]))
        item = {
            "metric_id": metric_id,
            "start_date": iso(start),
            "end_date": iso(start + timedelta(seconds=rng.randrange(0, 600))),
            "quantity": round(rng.uniform(40, 180), rng.choice([0, 2])),
            "client_sample_id": str(uuid.UUID(int=rng.getrandbits(128))),
        }
        if rng.random() < 0.05:
            item["quantity"], item["is_null"] = None, True
        items.append(item)
    return items


@pytest.fixture
def pat(user):
    return make_pat(user)


def test_calculations_match_a_recomputation_from_raw_samples(client, pat, user):
    rng = random.Random(20261126)
    device, _ = make_device(user, "Watch6,1")
    metric = new_metric(client, pat, device.id)
    mid = metric["id"]
    items = random_samples(rng, mid, 500, DENSE) + random_samples(rng, mid, 150, SPARSE)
    # Samples exactly on slot and local-day boundaries, and two at one instant.
    for moment in (datetime(2024, 10, 26, 22, 0, tzinfo=UTC), datetime(2024, 10, 27, 0, 45, tzinfo=UTC)):
        for value in (50.0, 70.0):
            items.append({"metric_id": mid, "start_date": iso(moment), "end_date": iso(moment), "quantity": value,
                          "client_sample_id": f"edge-{moment.timestamp()}-{value}"})  # fmt: skip
    for chunk in range(0, len(items), 200):
        assert not batch(client, pat, items[chunk : chunk + 200])["rejected"]
    assert_rollups_exact([mid])
    # Replace some (a higher version moves a sample to another slot) and delete some.
    replaced = []
    for item in rng.sample(items[:500], 40):
        moved = dict(item, client_sample_version=2, quantity=rng.uniform(40, 180))
        moved["start_date"] = moved["end_date"] = iso(
            datetime.fromisoformat(item["start_date"]) + timedelta(minutes=rng.randrange(-500, 500))
        )
        moved.pop("is_null", None)
        replaced.append(moved)
    assert batch(client, pat, replaced)["replaced"] == 40
    assert_rollups_exact([mid])
    listed = client.get(
        f"/api/v1/quantity-samples?metric_id={mid}&limit=1000", headers=bearer(pat)
    ).get_json()
    for sample in rng.sample(listed["results"], 30):
        assert (
            client.delete(f"/api/v1/quantity-sample/{sample['uuid']}", headers=bearer(pat)).status_code == 204
        )
    assert_rollups_exact([mid])

    samples = stored_samples([mid])
    for zone_name in ZONES:
        zone = zoneinfo.ZoneInfo(zone_name)
        for frequency in (5, 1, 2, 3, 4):
            window = DENSE if frequency in (5, 1) else SPARSE
            span = (window[1] - window[0]).total_seconds()
            start = window[0] + timedelta(seconds=rng.uniform(0, span / 4), microseconds=rng.randrange(10**6))
            finish = window[1] - timedelta(seconds=rng.uniform(0, span / 4))
            if frequency in (5, 2, 4):  # ends with a whole slot: ...:59:59.999999, nothing read raw
                finish = finish.replace(minute=finish.minute // 15 * 15, second=0, microsecond=0)
                finish -= timedelta(microseconds=1)
            for function in FUNCTIONS:
                body = calc(
                    client, pat, metric_id=mid, function=rng.choice([function, FUNCTIONS[function]]),
                    frequency=frequency, start_gte=iso(start), finish_lte=iso(finish), time_zone=zone_name,
                )  # fmt: skip
                assert body["function"] == function and body["frequency"] == frequency
                assert body["time_zone"] == zone_name and body["metric_ids"] == [mid]
                expected = recompute(
                    samples,
                    function,
                    start,
                    finish,
                    lambda moment: bucket_key(frequency, moment, zone),  # noqa: B023
                )
                check_answer(body, expected, frequency, zone, start, finish)


def test_a_local_day_is_23_or_25_hours_across_daylight_saving(client, pat, user):
    device, _ = make_device(user, "Watch6,1")
    mid = new_metric(client, pat, device.id, sample_type="stepCount", quantity_type="count")["id"]
    # One sample of 1 step every UTC hour for three days around each change of 2024 in Berlin.
    items = []
    for day in (date(2024, 3, 30), date(2024, 10, 26)):
        base = datetime.combine(day, datetime.min.time(), UTC)
        for hour in range(72):
            moment = base + timedelta(hours=hour, minutes=30)
            items.append(
                {"metric_id": mid, "start_date": iso(moment), "end_date": iso(moment), "quantity": 1}
            )
    batch(client, pat, items)
    spring = calc(client, pat, metric_id=mid, function="sum", frequency="day",
                  start_gte="2024-03-31T00:00:00+01:00", finish_lte="2024-03-31T23:59:59+02:00",
                  time_zone="Europe/Berlin")["results"]  # fmt: skip
    assert [(b["start"], b["finish"], b["value"], b["partial"]) for b in spring] == [
        ("2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00", 23.0, True)
    ]
    autumn = calc(client, pat, metric_id=mid, function="count", frequency="hour",
                  start_gte="2024-10-27T01:00:00+02:00", finish_lte="2024-10-27T03:59:59+01:00",
                  time_zone="Europe/Berlin")["results"]  # fmt: skip
    assert [b["start"] for b in autumn] == [
        "2024-10-27T01:00:00+02:00",
        "2024-10-27T02:00:00+02:00",
        "2024-10-27T02:00:00+01:00",
        "2024-10-27T03:00:00+01:00",
    ]
    assert [b["count"] for b in autumn] == [1, 1, 1, 1]
    whole = calc(client, pat, metric_id=mid, function="sum", frequency="day",
                 start_gte="2024-10-27T00:00:00+02:00", finish_lte="2024-10-28T00:00:00+01:00",
                 time_zone="Europe/Berlin")["results"]  # fmt: skip
    assert [(b["value"], b["partial"]) for b in whole] == [(25.0, False), (None, True)]


def test_empty_buckets_are_null_and_kathmandu_days_begin_at_18_15_utc(client, pat, user):
    device, _ = make_device(user, "Watch6,1")
    mid = new_metric(client, pat, device.id)["id"]
    batch(client, pat, [
        {"metric_id": mid, "start_date": "2024-05-01T18:14:59Z", "end_date": "2024-05-01T18:14:59Z", "quantity": 60},
        {"metric_id": mid, "start_date": "2024-05-01T18:15:00Z", "end_date": "2024-05-01T18:15:00Z", "quantity": 80},
    ])  # fmt: skip
    body = calc(client, pat, metric_id=mid, function=1, frequency=1, time_zone="Asia/Kathmandu",
                start_gte="2024-04-30T00:00:00+05:45", finish_lte="2024-05-04T00:00:00+05:45")  # fmt: skip
    assert [(b["start"][:10], b["value"], b["count"]) for b in body["results"]] == [
        ("2024-04-30", None, 0),
        ("2024-05-01", 60.0, 1),
        ("2024-05-02", 80.0, 1),
        ("2024-05-03", None, 0),
        ("2024-05-04", None, 0),
    ]
    assert body["results"][0]["start"] == "2024-04-30T00:00:00+05:45"
    assert body["results"][-1]["partial"] is True and body["results"][0]["partial"] is False


def test_the_owners_time_zone_is_the_default(client, pat, user):
    device, _ = make_device(user, "Watch6,1")
    mid = new_metric(client, pat, device.id)["id"]
    user.time_zone = "America/New_York"
    db.session.commit()
    body = calc(client, pat, metric_id=mid, function=1, frequency=1,
                start_gte="2024-01-01T00:00:00Z", finish_lte="2024-01-01T12:00:00Z")  # fmt: skip
    assert body["time_zone"] == "America/New_York"
    assert body["results"][0]["start"] == "2023-12-31T00:00:00-05:00"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"function": 9}, "function"),
        ({"function": "median"}, "function"),
        ({"frequency": "minute"}, "frequency"),
        ({"time_zone": "Europe/Berlyn"}, "time_zone"),
        ({"start_gte": "yesterday"}, "start_gte"),
        ({"finish_lte": "2023-01-01T00:00:00Z"}, "finish_lte"),
        ({"frequency": "hour", "start_gte": "2000-01-01T00:00:00Z"}, "finish_lte"),
        ({"colour": "red"}, "colour"),
        ({"metric_id": "١"}, "metric_id"),
        ({"metric_id": None, "sample_type": "heartbeat"}, "sample_type"),
        ({"sample_type": "heartRate"}, "sample_type"),
        (
            {"time_zone": "Europe/Amsterdam", "start_gte": "1900-01-01T00:00:00Z", "frequency": "year"},
            "time_zone",
        ),
        (
            {
                "time_zone": "Europe/Amsterdam",
                "frequency": "hour",
                "start_gte": "1900-01-01T00:00:00Z",
                "finish_lte": "1900-01-02T00:00:00Z",
            },
            "time_zone",
        ),  # fmt: skip
        (
            {"frequency": "day", "start_gte": "1990-01-01T00:00:00Z", "finish_lte": "2017-05-19T00:00:00Z"},
            "finish_lte",
        ),
    ],
)
def test_bad_parameters_are_400_naming_them(client, pat, user, params, field):
    device, _ = make_device(user, "Watch6,1")
    mid = new_metric(client, pat, device.id)["id"]
    query = {"metric_id": mid, "function": 1, "frequency": 1,
             "start_gte": "2024-01-01T00:00:00Z", "finish_lte": "2024-12-31T00:00:00Z"}  # fmt: skip
    query.update(params)
    query = {k: v for k, v in query.items() if v is not None}
    body = assert_error(client.get(CALC, query_string=query, headers=bearer(pat)), 400)
    assert field in body["fields"], body
    if field == "time_zone" and "Berlyn" in str(params):
        assert "Europe/Berlin" in body["fields"]["time_zone"][0]


def test_another_persons_metric_is_404_and_scopes_apply(client, pat, user):
    device, _ = make_device(user, "Watch6,1")
    mid = new_metric(client, pat, device.id)["id"]
    other = make_pat(make_user("eve@example.com"))
    query = {"metric_id": mid, "function": 1, "frequency": 1,
             "start_gte": "2024-01-01T00:00:00Z", "finish_lte": "2024-01-02T00:00:00Z"}  # fmt: skip
    assert_error(client.get(CALC, query_string=query, headers=bearer(other)), 404)
    write_only = make_pat(user, "samples:write")
    assert client.get(CALC, query_string=query, headers=bearer(write_only)).status_code == 403


def test_metric_figures_in_the_owners_zone(client, pat, user):
    """avg_today ... avg_last_year: sums for a cumulative type, averages for a discrete one."""
    user.time_zone = "Pacific/Auckland"
    db.session.commit()
    device, _ = make_device(user, "Watch6,1")
    steps = new_metric(client, pat, device.id, sample_type="stepCount", quantity_type="count")["id"]
    heart = new_metric(client, pat, device.id)["id"]
    zone = zoneinfo.ZoneInfo("Pacific/Auckland")
    now = datetime.now(UTC)
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    moments = {
        "today": now - timedelta(minutes=1) if now - timedelta(minutes=1) >= today else today,
        "yesterday": today - timedelta(hours=12),
        "last_year": today.replace(year=today.year - 1, month=6, day=15),
    }
    for metric_id, values in ((steps, (100, 200, 300)), (heart, (60, 80, 100))):
        items = []
        for (name, moment), value in zip(moments.items(), values, strict=True):
            for extra in (0, value):  # two samples each: sum value, average value / 2
                items.append({"metric_id": metric_id, "start_date": iso(moment.astimezone(UTC)),
                              "end_date": iso(moment.astimezone(UTC)), "quantity": extra,
                              "client_sample_id": f"{name}-{extra}"})  # fmt: skip
        batch(client, pat, items)
    body = client.get(f"/api/v1/metric/{steps}", headers=bearer(pat)).get_json()
    assert body["time_zone"] == "Pacific/Auckland"
    assert body["avg_today"] == 100 and body["avg_yesterday"] == 200 and body["avg_last_year"] == 300
    assert body["avg_last_month"] is None or today.day > 1
    heart_body = client.get(f"/api/v1/metric/{heart}", headers=bearer(pat)).get_json()
    assert (
        heart_body["avg_today"] == 30
        and heart_body["avg_yesterday"] == 40
        and heart_body["avg_last_year"] == 50
    )
    listed = client.get("/api/v1/metrics", headers=bearer(pat)).get_json()["results"]
    assert "avg_today" not in listed[0] and "latest_value" in listed[0]


def test_person_level_steps_count_each_slot_once(client, pat, user):
    """A phone and a watch worn together: each 15 minutes takes one source, the device with more
    samples there, or the person's order; a test-mode device never counts."""
    phone, _ = make_device(user, "iPhone14,5")
    watch, _ = make_device(user, "Watch6,1")
    tester, _ = make_device(user, "Watch6,1", is_test_mode=True)
    steps = {d.id: new_metric(client, pat, d.id, sample_type="stepCount", quantity_type="count")["id"]
             for d in (phone, watch, tester)}  # fmt: skip
    base = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)

    def walk(device, minutes, per_sample):
        items = []
        for minute in minutes:
            moment = base + timedelta(minutes=minute)
            items.append({"metric_id": steps[device.id], "start_date": iso(moment),
                          "end_date": iso(moment + timedelta(minutes=1)), "quantity": per_sample})  # fmt: skip
        batch(client, pat, items)

    walk(phone, [0, 5, 10], 100)  # slot 08:00: the phone has 3 samples, 300 steps
    walk(watch, [1, 2, 3, 4], 90)  # ... the watch 4 samples, 360 steps: the watch counts
    walk(watch, [15, 16], 50)  # slot 08:15: only the watch, 100
    walk(phone, [30], 70)  # slot 08:30: only the phone, 70
    walk(tester, [0, 1, 2, 3, 4, 5, 6], 1000)  # never counted
    query = {"sample_type": "stepCount", "function": "sum", "frequency": "day",
             "start_gte": "2024-06-01T00:00:00Z", "finish_lte": "2024-06-01T23:59:59Z", "time_zone": "UTC"}  # fmt: skip
    body = calc(client, pat, **query)
    assert body["metric_id"] is None and sorted(body["metric_ids"]) == sorted(
        [steps[phone.id], steps[watch.id]]
    )
    assert body["results"][0]["value"] == 360 + 100 + 70
    # The person puts the phone first: in 08:00 the phone counts now.
    from bioweb.services import sources

    sources.set_order(user, "stepCount", [phone.id, watch.id])
    assert calc(client, pat, **query)["results"][0]["value"] == 300 + 100 + 70
    # A range cutting a slot: only that slot's chosen source, and only its samples in range.
    cut = dict(query, start_gte="2024-06-01T08:04:00Z", finish_lte="2024-06-01T08:15:30Z", frequency="hour")
    assert calc(client, pat, **cut)["results"][0]["value"] == 200 + 50
    # Discrete types pool the samples.
    hr = {d.id: new_metric(client, pat, d.id)["id"] for d in (phone, watch)}
    batch(client, pat, [{"metric_id": hr[phone.id], "start_date": iso(base), "end_date": iso(base), "quantity": 60},
                        {"metric_id": hr[watch.id], "start_date": iso(base), "end_date": iso(base), "quantity": 80}])  # fmt: skip
    pooled = calc(client, pat, **dict(query, sample_type="heartRate", function="average"))
    assert pooled["results"][0]["value"] == 70 and pooled["results"][0]["count"] == 2


def test_a_deleted_metric_takes_its_rollups_along(client, pat, user):
    device, _ = make_device(user, "Watch6,1")
    mid = new_metric(client, pat, device.id)["id"]
    batch(client, pat, random_samples(random.Random(1), mid, 50, DENSE))
    assert stored_rollups([mid])
    assert client.delete(f"/api/v1/metric/{mid}", headers=bearer(pat)).status_code == 204
    assert stored_rollups([mid]) == {}


def test_rebuild_reproduces_the_rollups(app, client, pat, user):
    device, _ = make_device(user, "Watch6,1")
    mid = new_metric(client, pat, device.id)["id"]
    batch(client, pat, random_samples(random.Random(2), mid, 300, SPARSE))
    before = stored_rollups([mid])
    with db.engine.begin() as conn:
        conn.execute(sa.delete(SampleRollup.__table__))
        assert rollups.rebuild(conn, chunk=37) == len(before)
    assert stored_rollups([mid]) == before
