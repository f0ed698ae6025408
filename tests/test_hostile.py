"""Bad input, everywhere: a corpus of hostile requests through every API and OAuth endpoint and the
dashboard forms. The API and OAuth answers are always a 4xx in the contract's JSON error shape
(never a 5xx, never HTML) and write nothing; the dashboard answers HTML with a 4xx or a
re-rendered form, never a 5xx, and writes nothing either.

Each test sends its whole corpus and then reports every offending request at once.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from bioweb.extensions import db
from bioweb.models import Device, Event, Metric, Sample, Tenant, Token, User
from tests.helpers import (
    PASSWORD,
    basic,
    bearer,
    input_value,
    isolate_requests,
    log_in,
    make_device,
    make_pat,
    make_user,
)

NUL = "\x00"
# Strings that have broken web apps: NUL and control bytes, RTL override, emoji, combining
# marks, a lone surrogate's UTF-8 lookalike, SQL and template syntax, very long values.
NASTY = [
    "",
    " ",
    NUL,
    f"iPhone1,1{NUL}",
    f"{NUL}Apple",
    "\x01\x02\x1b[31m",
    "\u202eelppA",
    "Ａｐｐｌｅ",
    "🍎" * 20,
    "e\u0301" * 30,
    "'; DROP TABLE devices; --",
    "{{7*7}}",
    "%s%n%x",
    "../../etc/passwd",
    "x" * 5000,
]
HUGE_INTS = [2**31, 2**63, 10**30, -(2**63) - 1]
WRONG_TYPES: list[Any] = [None, True, 0, -1, 1.5, [], {}, ["Apple"], {"$gt": ""}, *HUGE_INTS]
ROWS = (Tenant, User, Device, Token, Event)


def row_counts(*models) -> dict[str, int]:
    models = models or ROWS
    db.session.remove()
    return {m.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(m)) for m in models}


class World:
    def __init__(self, app):
        isolate_requests(app)
        self.client = app.test_client()
        self.user = make_user()
        self.pat = make_pat(self.user)
        device, self.secret = make_device(self.user)
        self.device_id, self.client_id = device.id, device.client_id
        other = make_user("mallory@example.com")
        self.other_device_id = make_device(other)[0].id


@pytest.fixture
def world(app) -> World:
    return World(app)


def json_error_problem(response, oauth: bool = False) -> str | None:
    """Why `response` is not a 4xx in the contract's JSON error shape (None when it is)."""
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}"
    if response.mimetype != "application/json":
        return f"{response.status_code} with {response.mimetype}"
    try:
        body = json.loads(response.get_data(as_text=True))
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return f"no error code: {body!r}"[:300]
    if not re.fullmatch(r"[a-z_]+", body["error"]):
        return f"error code not snake_case: {body['error']!r}"
    allowed = {"error", "error_description", "fields"} | ({"error_uri"} if oauth else set())
    if set(body) - allowed:
        return f"unexpected keys {set(body) - allowed}"
    if not oauth and not isinstance(body.get("error_description"), str):
        return "no error_description"
    if "error_description" in body and not isinstance(body["error_description"], str):
        return "error_description is not a string"
    fields = body.get("fields")
    if fields is not None and not (
        isinstance(fields, dict)
        and all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in fields.values())
    ):
        return f"malformed fields {fields!r}"[:300]
    if response.status_code == 401 and not oauth and "WWW-Authenticate" not in response.headers:
        return "401 without WWW-Authenticate"
    if response.status_code == 405 and "Allow" not in response.headers:
        return "405 without Allow"
    return None


def run_corpus(world: World, cases, oauth: bool = False, counted=ROWS) -> list[str]:
    """Send each (label, method, path, kwargs); return the problems, each naming its request."""
    problems = []
    before = row_counts(*counted)
    for label, method, path, kwargs in cases:
        response = world.client.open(path, method=method, **kwargs)
        problem = json_error_problem(response, oauth=oauth)
        if problem:
            problems.append(f"{label}: {method} {path[:80]!r} -> {problem}: {response.get_data()[:160]!r}")
        response.close()
    after = row_counts(*counted)
    if before != after:
        problems.append(f"rows written: {before} -> {after}")
    return problems


# --- The JSON API ------------------------------------------------------------------------------


def _device_bodies() -> Iterator[tuple[str, Any]]:
    good = {"manufacturer": "Apple", "device_code": "iPhone1,1"}
    for field in ("manufacturer", "device_code"):
        for value in NASTY:
            yield f"{field}={value[:20]!r}", {**good, field: value}
        for value in WRONG_TYPES:
            yield f"{field}={value!r}", {**good, field: value}
    for value in [*WRONG_TYPES[1:], "true", "yes", NUL]:
        if value in (True, 0):
            continue
        yield f"is_test_mode={value!r}", {**good, "is_test_mode": value}
    yield "unknown field", {**good, "id": 5}
    yield "unknown NUL field", {**good, f"x{NUL}": 1}
    yield "many unknown fields", {**good, **{f"f{i}": i for i in range(2000)}}
    yield "missing everything", {}
    for body in ([], [good], "Apple", 1, None, True):
        yield f"not an object {body!r}", body


def _raw_bodies() -> Iterator[tuple[str, bytes]]:
    yield "empty", b""
    yield "truncated", b'{"manufacturer": "Apple", "device_code": "iPh'
    yield "unclosed", b"{"
    yield "garbage", b"\xff\xfe\x00garbage"
    yield "nul byte", b'{"manufacturer": "Apple\x00", "device_code": "iPhone1,1"}'
    yield "lone surrogate", b'{"manufacturer": "\\ud800", "device_code": "iPhone1,1"}'
    yield "NaN", b'{"manufacturer": NaN, "device_code": "iPhone1,1"}'
    yield "Infinity device_id", b'{"device_id": Infinity}'
    yield "1e400", b'{"device_id": 1e400}'
    yield "huge int literal", b'{"device_id": ' + b"9" * 4000 + b"}"
    yield "deep arrays", b"[" * 20000 + b"]" * 20000
    yield "deep objects", b'{"a":' * 6000 + b"1" + b"}" * 6000
    yield "duplicate keys", b'{"device_code": "iPhone1,1", "device_code": 5, "manufacturer": "Apple"}'
    yield "huge body", b'{"manufacturer": "' + b"A" * 70000 + b'"}'
    yield "utf-16", '{"manufacturer": "Apple", "device_code": "x"}'.encode("utf-16")
    yield "trailing data", b'{"manufacturer": "Apple", "device_code": "nope"} {}'


def _api_cases(world: World):
    auth = bearer(world.pat)
    create, authorize = "/api/v1/devices", "/api/v1/data-submission/device-authorize"
    for label, body in _device_bodies():
        yield f"create {label}", "POST", create, {"json": body, "headers": auth}
    for value in [*WRONG_TYPES, *NASTY[:6], 0, world.other_device_id, 10**9]:
        yield (
            f"authorize device_id={value!r}",
            "POST",
            authorize,
            {"json": {"device_id": value}, "headers": auth},
        )
    for label, raw in _raw_bodies():
        for path in (create, authorize):
            yield (
                f"raw {label}",
                "POST",
                path,
                {"data": raw, "content_type": "application/json", "headers": auth},
            )
    for content_type in (
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/xml",
        f"application/json{NUL}",
    ):
        body = b'{"manufacturer": "Apple", "device_code": "nope"}'
        kwargs: dict[str, Any] = {"data": body, "headers": auth}
        if content_type:
            kwargs["content_type"] = content_type
        yield f"content type {content_type!r}", "POST", create, kwargs
    yield "form fields", "POST", create, {"data": {"manufacturer": "Apple"}, "headers": auth}


def _query_cases(world: World):
    auth = bearer(world.pat)
    bad_ints = ["-1", "1.5", "1e3", "0x10", "abc", " ", "", NUL, "1" + NUL, "9" * 400]
    bad_ints += [str(n) for n in HUGE_INTS]
    for name in ("offset", "limit"):
        for value in bad_ints + (["0", "1001"] if name == "limit" else []):
            for path in ("/api/v1/devices", f"/api/v1/device/{world.device_id}/events"):
                if value == "" and name == "offset":
                    continue  # an empty offset is the default, 0
                yield f"{name}={value[:20]!r}", "GET", path, {"query_string": {name: value}, "headers": auth}
    for value in ["ASC", "up", NUL, "asc" + NUL, "🍎", "x" * 5000]:
        yield (
            f"sort_order={value[:10]!r}",
            "GET",
            "/api/v1/devices",
            {
                "query_string": {"sort_order": value},
                "headers": auth,
            },
        )
    for value in ["password_hash", "client_secret_digest", "user_id", "id desc", "id;--", NUL, "ID"]:
        yield (
            f"sort_field={value!r}",
            "GET",
            "/api/v1/devices",
            {
                "query_string": {"sort_field": value},
                "headers": auth,
            },
        )
    yield (
        "offset names another user's device",
        "GET",
        "/api/v1/devices",
        {
            "query_string": {"offset": world.other_device_id, "sort_field": "code"},
            "headers": auth,
        },
    )
    yield "repeated limit, first bad", "GET", "/api/v1/devices?limit=x&limit=5", {"headers": auth}
    delete = "/api/v1/data-submission/device-authorize"
    for value in [*bad_ints, "0", str(world.other_device_id)]:
        yield (
            f"delete device_id={value[:20]!r}",
            "DELETE",
            delete,
            {
                "query_string": {"device_id": value},
                "headers": auth,
            },
        )
    yield "delete without device_id", "DELETE", delete, {"headers": auth}
    yield (
        "delete repeated device_id, first bad",
        "DELETE",
        f"{delete}?device_id=x&device_id=1",
        {"headers": auth},
    )


def _path_cases(world: World):
    auth = bearer(world.pat)
    paths = [
        "/api/v1/device/1%2F..%2F2",
        "/api/v1/device/1/../../v1/devices/x",
        "/api/v1//devices",
        "/api/v1/device//1",
        "/api/v1/device/99999999999999999999999",
        "/api/v1/device/2147483648",
        "/api/v1/device/9223372036854775808",
        "/api/v1/devices/99999999999999999999999",
        "/api/v1/device/99999999999999999999999/events",
        "/api/v1/device/0",
        "/api/v1/device/-1",
        "/api/v1/device/1.0",
        "/api/v1/device/0x1",
        "/api/v1/device/%00",
        "/api/v1/device/1%00",
        "/api/v1/device/%F0%9F%8D%8E",
        "/api/v1/device/%ff",
        f"/api/v1/device/{world.other_device_id}",
        "/api/v1/device/" + "9" * 5000,
        "/api/v1/nothing",
        "/api/v1/devices/",
        "/api/v1/",
        "/api/v2/devices",
        "/api/v1/DEVICES",
    ]
    for path in paths:
        for method in ("GET", "DELETE"):
            yield "path", method, path, {"headers": auth}


def _auth_cases(world: World):
    device_path = f"/api/v1/device/{world.device_id}"
    headers: list[Any] = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer  "},
        {"Authorization": f"Bearer {world.pat} extra"},
        {"Authorization": f"Bearer {world.pat}{NUL}"},
        {"Authorization": f"Bearer {NUL}"},
        {"Authorization": "Bearer " + "A" * 60000},
        {"Authorization": "B" * 60000},
        {"Authorization": "Bearer bcp_" + "é" * 100},
        {"Authorization": "Bearer \u202e🍎"},
        {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()},
        {"Authorization": "Basic !!!"},
        {"Authorization": f"Token {world.pat}"},
        {"Authorization": f"Bearer {world.secret}"},  # a client secret is not a bearer token
        {"Authorization": "Bearer bcp_" + "x" * 43},
        [("Authorization", "Bearer nope"), ("Authorization", f"Bearer {world.pat}")],
    ]
    for header in headers:
        for method, path in (("GET", "/api/v1/devices"), ("GET", device_path), ("DELETE", device_path)):
            yield f"auth {str(header)[:40]!r}", method, path, {"headers": header}
        yield (
            f"auth {str(header)[:40]!r}",
            "POST",
            "/api/v1/devices",
            {
                "headers": header,
                "json": {"manufacturer": "Apple", "device_code": "iPhone1,1"},
            },
        )


def _method_cases(world: World):
    auth = bearer(world.pat)
    routes = {
        "/api/v1/devices": ("PUT", "PATCH", "DELETE"),
        f"/api/v1/device/{world.device_id}": ("POST", "PUT", "PATCH"),
        f"/api/v1/devices/{world.device_id}": ("POST", "PUT", "PATCH"),
        f"/api/v1/device/{world.device_id}/events": ("POST", "DELETE"),
        "/api/v1/data-submission/device-authorize": ("GET", "PUT", "PATCH"),
        "/api/v1/openapi.json": ("POST", "DELETE"),
        "/token": ("GET", "PUT", "DELETE"),
        "/token/revoke": ("GET", "DELETE"),
        "/token/introspect": ("GET", "PATCH"),
        "/.well-known/oauth-authorization-server": ("POST", "DELETE"),
        "/healthz": ("POST", "DELETE"),
    }
    for path, methods in routes.items():
        for method in methods:
            yield "wrong method", method, path, {"headers": auth, "json": {"device_id": world.device_id}}


@pytest.mark.parametrize(
    "corpus",
    [_api_cases, _query_cases, _path_cases, _auth_cases, _method_cases],
    ids=lambda f: f.__name__[1:],
)
def test_api_refuses_hostile_requests(world, corpus):
    problems = run_corpus(world, list(corpus(world)))
    assert not problems, f"{len(problems)} bad answers:\n" + "\n".join(problems[:60])
    # And the API still works for a well-behaved client afterwards.
    response = world.client.get(f"/api/v1/device/{world.device_id}", headers=bearer(world.pat))
    assert response.status_code == 200 and response.get_json()["state"] == 1


# --- Metrics and quantity samples ---------------------------------------------------------------

SAMPLE_ROWS = (Tenant, User, Device, Token, Metric, Sample)  # events count rejected submissions
GOOD_DATES = {"start_date": "2022-01-12T06:33:26Z", "end_date": "2022-01-12T06:34:26Z"}
BAD_DATES: list[Any] = [
    "yesterday",
    "2022-13-45T00:00:00Z",
    "2022-01-12T06:33:26",  # no offset
    "2022-01-12",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2022-01-12T06:33:26Z" + NUL,
    1641969206696,
    *NASTY[:3],
    *WRONG_TYPES,
]


class SampleWorld:
    """World, plus a metric of its device, a % metric, and a metric of another user's."""

    def __init__(self, world: World):
        self.world = world
        client, auth = world.client, bearer(world.pat)

        def metric(token: str, device_id: int, sample_type: str, unit: str) -> int:
            body = {"device_id": device_id, "sample_type": sample_type, "quantity_type": unit}
            response = client.post("/api/v1/metrics", json=body, headers=bearer(token))
            assert response.status_code == 201, response.text
            return response.get_json()["id"]

        self.metric_id = metric(world.pat, world.device_id, "heartRate", "count/min")
        self.fraction_id = metric(world.pat, world.device_id, "oxygenSaturation", "%")
        eve = make_user("eve@example.com")
        eve_device, _ = make_device(eve)
        self.other_metric_id = metric(make_pat(eve), eve_device.id, "stepCount", "count")
        self.auth = auth

    def sample(self, **fields: Any) -> dict[str, Any]:
        return {"metric_id": self.metric_id, **GOOD_DATES, "quantity": 61, **fields}


def _bad_samples(sw: SampleWorld) -> Iterator[tuple[str, Any]]:
    """Sample objects that must be refused (each alone: a 4xx; in a batch: a rejected item)."""
    for name in ("start_date", "end_date"):
        for value in BAD_DATES:
            yield f"{name}={str(value)[:20]!r}", sw.sample(**{name: value})
    yield "end before start", sw.sample(start_date=GOOD_DATES["end_date"], end_date=GOOD_DATES["start_date"])
    yield "start in 2100", sw.sample(start_date="2100-01-01T00:00:00Z", end_date="2100-01-01T00:00:00Z")
    for value in [*NASTY[:4], None, True, [], {}, {"$gt": 0}, [61]]:
        yield f"quantity={str(value)[:20]!r}", sw.sample(quantity=value)
    yield "no quantity", {k: v for k, v in sw.sample().items() if k != "quantity"}
    yield "% above 1", sw.sample(metric_id=sw.fraction_id, quantity=1.5)
    yield "% below 0", sw.sample(metric_id=sw.fraction_id, quantity=-0.1)
    for value in [
        0,
        -1,
        2**31,
        2**63,
        10**30,
        "1",
        str(sw.metric_id),
        None,
        1.5,
        True,
        [sw.metric_id],
        424242,
    ]:
        yield f"metric_id={value!r}", sw.sample(metric_id=value)
    yield "another user's metric", sw.sample(metric_id=sw.other_metric_id)
    for value in [7, -1, "wrist", 2.0, True, 2**63]:
        yield f"sample_sensor_location={value!r}", sw.sample(sample_sensor_location=value)
    for value in ["Running", "active", "", NUL, 1, None]:
        yield f"sample_motion_context={value!r}", sw.sample(sample_motion_context=value)
    for value in ["", "x" * 201, 5, [], {"id": 1}, NUL, f"id{NUL}"]:
        yield f"client_sample_id={str(value)[:20]!r}", sw.sample(client_sample_id=value)
    for value in [0, -1, 2**63, "2", 1.5, None, True]:
        yield f"client_sample_version={value!r}", sw.sample(client_sample_version=value)
    for value in ["yes", 1, None, [], "true"]:
        yield f"is_null={value!r}", sw.sample(is_null=value)
    yield "sample_sensor_location_other too long", sw.sample(sample_sensor_location_other="x" * 101)
    yield "sample_sensor_location_other with NUL", sw.sample(sample_sensor_location_other=f"strap{NUL}")
    yield "unknown field", sw.sample(colour="red")
    yield "unknown NUL field", sw.sample(**{f"x{NUL}": 1})
    yield "nested junk", sw.sample(metric_id={"a": {"b": {"c": [[[]]]}}})
    yield "samples inside a sample", sw.sample(samples=[sw.sample()])
    yield "empty object", {}
    for body in ([], [1], "sample", 1, None, True, [[[[]]]]):
        yield f"not an object {str(body)[:20]!r}", body


def _samples_cases(sw: SampleWorld):
    world, auth = sw.world, sw.auth
    for path in ("/api/v1/quantity-samples", "/api/v1/samples"):
        for label, body in _bad_samples(sw):
            if isinstance(body, dict) or path == "/api/v1/quantity-samples":
                yield f"one sample {label}", "POST", path, {"json": body, "headers": auth}
    post = "/api/v1/quantity-samples"
    batch_limit = [sw.sample(client_sample_id=str(n)) for n in range(1001)]
    for label, body in [
        ("1,001 items", {"samples": batch_limit}),
        ("empty batch", {"samples": []}),
        ("samples not a list", {"samples": sw.sample()}),
        ("samples null", {"samples": None}),
        ("samples a string", {"samples": "x" * 1000}),
        ("batch with an extra field", {"samples": [sw.sample()], "metric_id": sw.metric_id}),
        ("batch with many extra fields", {"samples": [sw.sample()], **{f"f{i}": i for i in range(2000)}}),
    ]:
        yield label, "POST", post, {"json": body, "headers": auth}
    for label, raw in [
        *_raw_bodies(),
        ("NaN quantity", b'{"metric_id": 1, "quantity": NaN}'),
        ("Infinity quantity", b'{"metric_id": 1, "quantity": Infinity}'),
        ("-Infinity in a batch", b'{"samples": [{"metric_id": 1, "quantity": -Infinity}]}'),
        (
            "1e400 quantity",
            b'{"metric_id": %d, "start_date": "2022-01-12T06:33:26Z", '
            b'"end_date": "2022-01-12T06:33:26Z", "quantity": 1e400}' % sw.metric_id,
        ),
        ("huge int quantity", b'{"metric_id": %d, "quantity": %s}' % (sw.metric_id, b"9" * 4000)),
        ("over 1 MiB", json.dumps({"samples": [sw.sample()]}).encode() + b" " * (1 << 20)),
        (
            "over 1 MiB of items",
            json.dumps({"samples": [sw.sample(sample_sensor_location_other="x" * 100)] * 5000}).encode(),
        ),
    ]:
        yield f"raw {label}", "POST", post, {"data": raw, "content_type": "application/json", "headers": auth}
    for content_type in (
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        f"application/json{NUL}",
    ):
        kwargs: dict[str, Any] = {"data": json.dumps(sw.sample()), "headers": auth}
        if content_type:
            kwargs["content_type"] = content_type
        yield f"content type {content_type!r}", "POST", post, kwargs
    # Reading.
    get = "/api/v1/quantity-samples"
    bad_ints = ["-1", "1.5", "abc", " ", "", NUL, "9" * 400, str(2**31), str(2**63)]
    for value in [*bad_ints, "0", str(sw.other_metric_id), "424242"]:
        yield (
            f"read metric_id={value[:20]!r}",
            "GET",
            get,
            {"query_string": {"metric_id": value}, "headers": auth},
        )
    base = {"metric_id": sw.metric_id}
    for name in ("start_date_gt", "start_date_gte", "end_date_lt", "end_date_lte"):
        for value in ["yesterday", "2022-01-12", "2022-01-12T06:33:26", "0001-01-01T00:00:00+01:00",
                      "9" * 30, "-" + "9" * 30, "1e3", NUL, "🍎"]:  # fmt: skip
            yield (
                f"{name}={value[:20]!r}",
                "GET",
                get,
                {"query_string": {**base, name: value}, "headers": auth},
            )
    for name, values in (("limit", [*bad_ints, "0", "1001"]), ("sort_order", ["up", "ASC", NUL])):
        for value in values:
            yield (
                f"{name}={value[:20]!r}",
                "GET",
                get,
                {"query_string": {**base, name: value}, "headers": auth},
            )
    for value in ["x", "=", "e30", "W10", "WyJ4IiwgMV0", "A" * 5000, NUL, "🍎",
                  base64.urlsafe_b64encode(b'["2022-01-12T06:00:00+00:00", 1e400]').decode()]:  # fmt: skip
        yield (
            f"cursor={value[:20]!r}",
            "GET",
            get,
            {"query_string": {**base, "cursor": value}, "headers": auth},
        )
    yield "unknown parameter", "GET", get, {"query_string": {**base, "offset": "5"}, "headers": auth}
    # Metrics.
    good_metric = {"device_id": world.device_id, "sample_type": "heartRate", "quantity_type": "count/min"}
    for field in ("sample_type", "quantity_type", "name", "sample_type_other", "device_id"):
        for value in [*NASTY, *WRONG_TYPES]:
            if field in ("name", "sample_type_other") and (
                value in ("", " ", None) or (isinstance(value, str) and len(value) <= 100)
            ):
                continue  # a valid name
            yield (
                f"metric {field}={str(value)[:20]!r}",
                "POST",
                "/api/v1/metrics",
                {"json": {**good_metric, field: value}, "headers": auth},
            )
    yield (
        "metric on another user's device",
        "POST",
        "/api/v1/metrics",
        {"json": {**good_metric, "device_id": world.other_device_id}, "headers": auth},
    )
    yield (
        "metric, kg heart rate",
        "POST",
        "/api/v1/metrics",
        {"json": {**good_metric, "quantity_type": "kg"}, "headers": auth},
    )
    for value in [*bad_ints, "0"]:
        yield (
            f"metrics limit={value[:20]!r}",
            "GET",
            "/api/v1/metrics",
            {"query_string": {"limit": value}, "headers": auth},
        )
    for path in ["/api/v1/metric/0", "/api/v1/metric/-1", "/api/v1/metric/99999999999999999999", "/api/v1/metric/2147483648",
                 f"/api/v1/metric/{sw.other_metric_id}", f"/api/v1/metrics/{sw.other_metric_id}", "/api/v1/metric/%00",
                 "/api/v1/quantity-sample/" + "9" * 5000, "/api/v1/quantity-sample/%00", "/api/v1/quantity-samples/x",
                 "/api/v1/quantity-sample/00000000-0000-0000-0000-000000000000"]:  # fmt: skip
        for method in ("GET", "DELETE") if "metric" in path else ("DELETE",):
            yield "path", method, path, {"headers": auth}
    for method, path in (("PUT", post), ("PATCH", post), ("DELETE", post), ("POST", f"/api/v1/metric/{sw.metric_id}"),
                         ("GET", "/api/v1/quantity-sample/x"), ("PUT", "/api/v1/metrics")):  # fmt: skip
        yield "wrong method", method, path, {"headers": auth, "json": sw.sample()}


def test_samples_endpoints_refuse_hostile_requests(world):
    sw = SampleWorld(world)
    problems = run_corpus(world, list(_samples_cases(sw)), counted=SAMPLE_ROWS)
    assert not problems, f"{len(problems)} bad answers:\n" + "\n".join(problems[:60])
    response = world.client.post("/api/v1/quantity-samples", json=sw.sample(), headers=sw.auth)
    assert response.status_code == 201, response.text


def test_bad_items_in_well_formed_batches_are_rejected_and_store_nothing(world):
    sw = SampleWorld(world)
    items = [body for _, body in _bad_samples(sw)]
    before = row_counts(*SAMPLE_ROWS)
    problems = []
    for start in range(0, len(items), 100):
        chunk = items[start : start + 100]
        response = world.client.post("/api/v1/quantity-samples", json={"samples": chunk}, headers=sw.auth)
        if response.status_code != 200:
            problems.append(f"batch {start}: {response.status_code} {response.get_data()[:200]!r}")
            continue
        body = response.get_json()
        if (body["accepted"], body["duplicates"], body["replaced"]) != (0, 0, 0):
            problems.append(f"batch {start}: {body['accepted']} accepted")
        indexes = [r["index"] for r in body["rejected"]]
        if indexes != list(range(len(chunk))):
            missing = sorted(set(range(len(chunk))) - set(indexes))
            problems.append(f"batch {start}: not rejected: {[chunk[i] for i in missing][:5]}")
        for rejected in body["rejected"]:
            fields = rejected["fields"]
            if not fields or not all(isinstance(m, str) and m for v in fields.values() for m in v):
                problems.append(f"batch {start}: item {rejected['index']} without field messages: {fields}")
    # A raw batch with literals the JSON module above cannot write.
    raw = b'{"samples": [{"metric_id": %d, "start_date": "2022-01-12T06:33:26Z", "end_date": "2022-01-12T06:33:26Z", "quantity": 1e400}, {"metric_id": %d, "quantity": %s}]}' % (
        sw.metric_id, sw.metric_id, b"9" * 400)  # fmt: skip
    response = world.client.post(
        "/api/v1/quantity-samples", data=raw, content_type="application/json", headers=sw.auth
    )
    if response.status_code == 200:
        if [r["index"] for r in response.get_json()["rejected"]] != [0, 1]:
            problems.append(f"raw batch: {response.get_json()}")
    elif json_error_problem(response):
        problems.append(f"raw batch: {json_error_problem(response)}")
    assert not problems, "\n".join(problems[:40])
    assert row_counts(*SAMPLE_ROWS) == before


# --- OAuth endpoints -----------------------------------------------------------------------------


def _oauth_cases(world: World):
    good = {"grant_type": "client_credentials", "client_id": world.client_id, "client_secret": world.secret}
    token_nasty = [*NASTY, "bcr_" + "x" * 43, world.pat]
    # /token: every field hostile in turn (the client credentials, where hostile, fail authentication).
    for value in token_nasty:
        yield "grant_type", "POST", "/token", {"data": {**good, "grant_type": value}}
        yield "client_id", "POST", "/token", {"data": {**good, "client_id": value}}
        yield "client_secret", "POST", "/token", {"data": {**good, "client_secret": value}}
        yield (
            "refresh_token",
            "POST",
            "/token",
            {"data": {**good, "grant_type": "refresh_token", "refresh_token": value}},
        )
        yield (
            "basic user",
            "POST",
            "/token",
            {
                "data": {"grant_type": "client_credentials"},
                "headers": basic(value, world.secret),
            },
        )
        yield (
            "basic password",
            "POST",
            "/token",
            {
                "data": {"grant_type": "client_credentials"},
                "headers": basic(world.client_id, value),
            },
        )
    for header in [
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),
        "Basic " + "QUFB" * 15000,
        "Bearer " + world.pat,
        "Digest username=x",
    ]:
        yield (
            f"authorization {header[:20]!r}",
            "POST",
            "/token",
            {
                "data": {"grant_type": "client_credentials"},
                "headers": {"Authorization": header},
            },
        )
    yield "no body", "POST", "/token", {}
    yield "json body", "POST", "/token", {"json": good}
    yield (
        "text body",
        "POST",
        "/token",
        {"data": "grant_type=client_credentials", "content_type": "text/plain"},
    )
    yield (
        "truncated form",
        "POST",
        "/token",
        {"data": b"grant_type=client_cre%", "content_type": "application/x-www-form-urlencoded"},
    )
    yield (
        "invalid utf-8 form",
        "POST",
        "/token",
        {"data": b"grant_type=\xff\xfe&client_id=\xc3", "content_type": "application/x-www-form-urlencoded"},
    )
    yield "huge form", "POST", "/token", {"data": {**good, "scope": "x" * 70000}}
    yield (
        "repeated grant_type",
        "POST",
        "/token?grant_type=refresh_token",
        {
            "data": f"grant_type=password&grant_type=client_credentials&client_id={world.client_id}"
            f"&client_secret={world.secret}x",
            "content_type": "application/x-www-form-urlencoded",
        },
    )
    yield (
        "multipart",
        "POST",
        "/token",
        {
            "data": {**good, "client_secret": "bcs_wrong"},
            "content_type": "multipart/form-data",
        },
    )
    # Revocation and introspection by a client that cannot authenticate.
    for path in ("/token/revoke", "/token/introspect"):
        for value in token_nasty:
            yield (
                "client_id",
                "POST",
                path,
                {"data": {"token": "x", "client_id": value, "client_secret": "x"}},
            )
            yield "basic", "POST", path, {"data": {"token": value}, "headers": basic(value, value)}
        yield (
            "no token",
            "POST",
            path,
            {"data": {"client_id": world.client_id, "client_secret": world.secret}},
        )
        yield "json", "POST", path, {"json": {"token": "x", "client_id": world.client_id}}
        yield "huge", "POST", path, {"data": {"token": "x" * 70000}}


def test_oauth_refuses_hostile_requests(world):
    # A wrong secret for a real client id is recorded in the audit trail by design, so only the
    # tables of accounts, devices and tokens must stay as they were.
    problems = run_corpus(world, list(_oauth_cases(world)), oauth=True, counted=(Tenant, User, Device, Token))
    assert not problems, f"{len(problems)} bad answers:\n" + "\n".join(problems[:60])
    response = world.client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(world.client_id, world.secret)
    )
    assert response.status_code == 200


def test_revoke_and_introspect_shrug_off_hostile_tokens(world):
    """An authenticated client naming a junk token: RFC 7009 says 200, RFC 7662 says inactive."""
    form = {"client_id": world.client_id, "client_secret": world.secret}
    before = row_counts()
    for value in [*NASTY, "bcd_" + "x" * 43, world.pat]:
        for hint in (None, "access_token", "refresh_token", NUL, "🍎"):
            data = {**form, "token": value, **({"token_type_hint": hint} if hint else {})}
            revoked = world.client.post("/token/revoke", data=data)
            introspected = world.client.post("/token/introspect", data=data)
            for response in (revoked, introspected):
                assert response.status_code < 500, (value, hint, response.text)
                assert response.mimetype == "application/json", (value, hint)
            if revoked.status_code == 200:
                assert introspected.get_json() == {"active": False}, (value, hint)
            else:  # an unsupported hint is refused in the RFC 6749 shape
                assert json_error_problem(revoked, oauth=True) is None, (value, hint, revoked.text)
    assert row_counts() == before


# --- The dashboard forms ----------------------------------------------------------------------------


def html_problem(response) -> str | None:
    if response.status_code >= 500:
        return f"status {response.status_code}"
    if response.status_code in (302, 303):
        return None  # odd but valid input (a token named "../x", a spent nonce) is accepted
    if response.status_code not in (200, 400, 403, 404, 405, 413, 429):
        return f"status {response.status_code} (not an error, not a re-rendered form)"
    if response.mimetype != "text/html":
        return f"{response.status_code} with {response.mimetype}"
    return None


def _form_values() -> Iterator[str]:
    yield from NASTY
    yield "a" * 70000  # over MAX_CONTENT_LENGTH once encoded


def test_dashboard_forms_refuse_hostile_input(world):
    client = world.client
    problems: list[str] = []
    # Odd but valid names and checkbox values legitimately register devices and tokens, so only
    # the accounts are counted here; the API corpus above checks for partial writes strictly.
    before = row_counts(Tenant, User)

    def post(label: str, path: str, data: Any, **kwargs: Any) -> None:
        response = client.post(path, data=data, **kwargs)
        problem = html_problem(response)
        if problem:
            problems.append(f"{label}: POST {path} -> {problem}: {response.get_data()[:160]!r}")
        response.close()

    # The email is taken, so no variant may create an account, whatever else it holds (odd but
    # valid names would otherwise sign up and log the client in).
    signup = {"email": "ada@example.com", "password": PASSWORD, "first_name": "Eve", "last_name": "X"}
    for field in signup:
        for value in _form_values():
            post(f"signup {field}={value[:20]!r}", "/signup", {**signup, field: value})
    for value in _form_values():
        post(f"login email={value[:20]!r}", "/login", {"email": value, "password": PASSWORD})
        post(f"login password={value[:20]!r}", "/login", {"email": "ada@example.com", "password": value})
    post(
        "signup repeated fields",
        "/signup",
        MultiDict([("email", "x"), ("email", "ada@example.com"), ("password", ""), ("password", PASSWORD)]),
    )
    post("signup as json", "/signup", json.dumps(signup), content_type="application/json")
    post("signup garbage", "/signup", b"\xff\xfe%%%", content_type="application/x-www-form-urlencoded")

    log_in(client)
    for value in _form_values():
        for field in ("manufacturer", "device_code", "is_test_mode"):
            nonce = input_value(client.get("/devices/new").get_data(as_text=True), "nonce")
            data = {"manufacturer": "Apple", "device_code": "iPhone1,1", "nonce": nonce, field: value}
            post(f"new device {field}={value[:20]!r}", "/devices/new", data)
        post(f"new device nonce={value[:20]!r}", "/devices/new", {"manufacturer": "Apple", "nonce": value})
        nonce = input_value(client.get("/api-tokens").get_data(as_text=True), "nonce")
        for data in (
            {"name": value, "scopes": "devices:read", "expires_in_days": "30"},
            {"name": "t", "scopes": value, "expires_in_days": "30"},
            {"name": "t", "scopes": "devices:read", "expires_in_days": value},
        ):
            post(f"token {value[:20]!r}", "/api-tokens", {**data, "nonce": nonce})
        post(
            f"password {value[:20]!r}",
            "/account/password",
            {"current_password": value, "new_password": "another long passphrase"},
        )
        post(
            f"password new {value[:20]!r}",
            "/account/password",
            {"current_password": PASSWORD, "new_password": value},
        )
    for path in (
        f"/devices/{world.other_device_id}/disable",
        f"/devices/{world.other_device_id}/authorize",
        "/devices/99999999999999999999999/disable",
        "/api-tokens/99999999999999999999999/revoke",
        "/devices/1%00/disable",
    ):
        post(f"path {path}", path, {"nonce": "x"})
    assert row_counts(Tenant, User) == before, "a hostile form created an account"
    assert not problems, f"{len(problems)} bad answers:\n" + "\n".join(problems[:60])
