"""The OpenAPI document (/api/v1/openapi.json) stays true: it validates as OpenAPI 3.1, it names
every route of the API and OAuth URL spaces (and nothing else), and real responses of every
operation, successes and errors, match the schemas it gives for their status codes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask_wtf import FlaskForm
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_openapi
from wtforms import BooleanField, DateField, IntegerField, StringField
from wtforms.validators import AnyOf, InputRequired, Length, NumberRange, Optional

from bioweb import readmodels
from bioweb.api.core import form_schema
from bioweb.api.openapi import document
from bioweb.forms import DeviceRefForm, IdRange, ListDevicesForm, Present
from bioweb.headers import CONTENT_SECURITY_POLICY
from bioweb.models import MAX_ID
from tests.helpers import ROOT, basic, bearer, isolate_requests, make_app, make_device, make_pat, make_user

DOCUMENTED_PREFIXES = ("/api/v1", "/token", "/.well-known", "/healthz")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The document as the app serves it (no database needed to build it)."""
    app = make_app("sqlite://")
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1")
    validate_openapi(spec)  # raises OpenAPIValidationError with the offending place


def test_document_names_the_configured_base_url():
    app = make_app("sqlite://", BIOWEB_BASE_URL="https://bio.example.org")
    assert app.test_client().get("/api/v1/openapi.json").get_json()["servers"] == [
        {"url": "https://bio.example.org"}
    ]


def _routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(DOCUMENTED_PREFIXES):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        routes |= {(path, method) for method in rule.methods & METHODS}
    return routes


def test_every_route_is_documented_and_nothing_else(spec):
    app = make_app("sqlite://")
    documented = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method.upper() in METHODS
    }
    served = _routes(app)
    assert served - documented == set(), "routes missing from the OpenAPI document"
    assert documented - served == set(), "documented operations that the app does not serve"
    assert len(served) >= 16


def test_every_operation_documents_its_errors(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            statuses = set(operation["responses"])
            assert any(s.startswith("2") for s in statuses), (method, path)
            assert "405" in statuses, (method, path)
            if operation.get("security") == [{"bearer": []}]:
                assert {"401", "403", "503"} <= statuses, (method, path)


# --- What the document derives from the code -------------------------------------------------


def _properties(spec: dict[str, Any], name: str) -> list[str]:
    return list(spec["components"]["schemas"][name]["properties"])


def test_response_schemas_are_the_read_models(spec):
    """A field added to a read model appears in the document, in the model's order."""
    for model in (
        readmodels.DeviceSummary,
        readmodels.DeviceDetail,
        readmodels.EventView,
        readmodels.Credentials,
    ):
        schema = spec["components"]["schemas"][model.__name__]
        assert list(schema["properties"]) == list(model.__struct_fields__)
        assert schema["additionalProperties"] is False
    assert _properties(spec, "DeviceList") == ["next_id", "count", "results"]


def test_request_schemas_and_parameters_are_the_forms(spec):
    assert _properties(spec, "DeviceCreate")[:3] == ["manufacturer", "device_code", "is_test_mode"]
    assert spec["components"]["schemas"]["DeviceCreate"]["required"] == ["manufacturer", "device_code"]
    listing = spec["paths"]["/api/v1/devices"]["get"]["parameters"]
    assert [p["name"] for p in listing] == ["offset", "limit", "sort_order", "sort_field"]
    assert {p["name"]: p["schema"] for p in listing}["limit"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 100,
    }


def test_ids_agree_with_the_code(spec, app):
    """Path ids run from 1 to MAX_ID, as read_device answers them (0 is no device: 404)."""
    for path in ("/api/v1/device/{device_id}", "/api/v1/devices/{device_id}/events"):
        assert spec["paths"][path]["parameters"][0]["schema"] == {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_ID,
        }
    assert spec["components"]["schemas"]["DeviceRef"]["properties"]["device_id"]["minimum"] == 1
    isolate_requests(app)
    user = make_user()
    response = app.test_client().get("/api/v1/device/0", headers=bearer(make_pat(user)))
    assert response.status_code == 404


class _Everything(FlaskForm):
    name = StringField("name", validators=[InputRequired(), Length(min=2, max=9)], description="A name.")
    size = IntegerField("size", default=3, validators=[NumberRange(min=1, max=50), IdRange(0)])
    colour = StringField("colour", validators=[Optional(), AnyOf(("red", "blue"))])
    ref = IntegerField("ref", validators=[Present(), IdRange(1)])
    flag = BooleanField("flag", default=lambda: True)


def test_form_schema_walks_fields_validators_and_defaults():
    assert form_schema(_Everything) == {
        "type": "object",
        "required": ["name", "ref"],
        "properties": {
            "name": {"type": "string", "minLength": 2, "maxLength": 9, "description": "A name."},
            "size": {"type": ["integer", "null"], "minimum": 1, "maximum": 50, "default": 3},
            "colour": {"type": ["string", "null"], "enum": ["red", "blue"]},
            "ref": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            "flag": {"type": ["boolean", "null"]},  # a callable default is not documented
        },
        "additionalProperties": False,
    }
    # Query strings have no null; the list form inherits the page form's fields first.
    listing = form_schema(ListDevicesForm, nullable=False)
    assert listing["properties"]["sort_order"] == {
        "type": "string",
        "enum": ["asc", "desc"],
        "default": "asc",
    }
    assert list(listing["properties"])[-1] == "sort_field"
    assert "required" not in listing
    assert form_schema(DeviceRefForm)["required"] == ["device_id"]


def test_form_schema_refuses_a_field_bind_json_cannot_check():
    class Dated(FlaskForm):
        day = DateField("day")

    with pytest.raises(TypeError, match="DateField"):
        form_schema(Dated)


# --- Real responses against the document ---------------------------------------------------------


class Checker:
    """Validates responses against the document's schema for their path, method and status."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.seen: set[tuple[str, str, str]] = set()

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def __call__(self, response, template: str, method: str) -> Any:
        responses = self.spec["paths"][template][method]["responses"]
        status = str(response.status_code)
        assert status in responses, (
            f"{method.upper()} {template} answered undocumented {status}: {response.text}"
        )
        self.seen.add((template, method, status))
        documented = self._resolve(responses[status])
        content = documented.get("content")
        if not content:
            assert response.data == b"", f"{status} should have no body"
            return None
        assert response.mimetype in content, f"{response.mimetype} not in {list(content)}"
        body = response.get_json()
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [content[response.mimetype]["schema"]],
            "components": self.spec["components"],
        }
        errors = sorted(
            Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(body), key=str
        )
        assert not errors, f"{method.upper()} {template} {status}: {[e.message for e in errors]} in {body}"
        return body


def _refresh_token(client, client_id: str, secret: str) -> str:
    """A refresh token of the device's companion-app grant: its owner approves it (through the
    service), and the code is traded at /token."""
    import sqlalchemy as sa

    from bioweb.extensions import db
    from bioweb.models import Device
    from tests.helpers import grant_code

    device = db.session.scalar(sa.select(Device).where(Device.client_id == client_id))
    code = grant_code(device.user, client_id)
    form = {"grant_type": "authorization_code", "code": code, "client_id": client_id, "client_secret": secret}
    return client.post("/token", data=form).get_json()["refresh_token"]


def test_real_responses_match_the_document(app, spec):
    isolate_requests(app)
    client = app.test_client()
    check = Checker(spec)
    user = make_user()
    pat = make_pat(user)
    read_only = make_pat(user, scope="devices:read")
    device, secret = make_device(user, "Watch1,1")
    device_id, client_id = device.id, device.client_id
    auth = bearer(pat)

    # The device endpoints: successes.
    created = check(
        client.post(
            "/api/v1/devices", json={"manufacturer": "apple", "device_code": "iPhone1,1"}, headers=auth
        ),
        "/api/v1/devices",
        "post",
    )
    new_id = created["id"]
    body = check(
        client.get("/api/v1/devices?limit=1&sort_field=code", headers=auth), "/api/v1/devices", "get"
    )
    assert body["count"] == 2 and len(body["results"]) == 1
    for template in ("/api/v1/device/{device_id}", "/api/v1/devices/{device_id}"):
        check(client.get(template.format(device_id=device_id), headers=auth), template, "get")
        events_template = template + "/events"
        check(client.get(events_template.format(device_id=new_id), headers=auth), events_template, "get")
        check(client.get(events_template.format(device_id=10**6), headers=auth), events_template, "get")
        check(
            client.get(events_template.format(device_id=new_id) + "?limit=0", headers=auth),
            events_template,
            "get",
        )
    authorize = "/api/v1/data-submission/device-authorize"
    check(client.delete(f"{authorize}?device_id={new_id}", headers=auth), authorize, "delete")
    check(client.post(authorize, json={"device_id": new_id}, headers=auth), authorize, "post")
    check(client.delete(f"/api/v1/devices/{new_id}", headers=auth), "/api/v1/devices/{device_id}", "delete")
    check(client.delete(f"/api/v1/device/{new_id}", headers=auth), "/api/v1/device/{device_id}", "delete")
    # Export and purge (issue 16).
    exported = client.get("/api/v1/account/export", headers=auth)
    check(exported, "/api/v1/account/export", "get")
    assert exported.data.startswith(b"PK")
    check(client.get("/api/v1/account/export", headers=bearer(read_only)), "/api/v1/account/export", "get")
    purge = "/api/v1/device/{device_id}"
    check(client.delete(f"/api/v1/device/{device_id}?purge=true", headers=auth), purge, "delete")  # 409
    check(client.delete(f"/api/v1/device/{new_id}?purge=yes", headers=auth), purge, "delete")  # 400
    doomed = check(
        client.post(
            "/api/v1/devices", json={"manufacturer": "Apple", "device_code": "iPhone1,1"}, headers=auth
        ),
        "/api/v1/devices",
        "post",
    )
    metric = {"device_id": doomed["id"], "sample_type": "heartRate", "quantity_type": "count/min"}
    assert client.post("/api/v1/metrics", json=metric, headers=auth).status_code == 201
    client.delete(f"/api/v1/device/{doomed['id']}", headers=auth)
    from bioweb.services import deletion

    budget = deletion.DELETE_BUDGET_SECONDS
    deletion.DELETE_BUDGET_SECONDS = -1.0
    try:
        check(
            client.delete(f"/api/v1/device/{doomed['id']}?purge=true", headers=auth), purge, "delete"
        )  # 202
    finally:
        deletion.DELETE_BUDGET_SECONDS = budget

    # Names, and two client secrets (rotation without downtime): successes and errors.
    for template in ("/api/v1/device/{device_id}", "/api/v1/devices/{device_id}"):
        url = template.format(device_id=device_id)
        renamed = check(client.patch(url, json={"name": "Ada's watch"}, headers=auth), template, "patch")
        assert renamed["name"] == "Ada's watch"
        check(client.patch(url, json={"name": "x" * 101}, headers=auth), template, "patch")  # 400
        check(client.patch(url, data="x", headers=auth), template, "patch")  # 415
        check(
            client.patch(template.format(device_id=424242), json={"name": "x"}, headers=auth),
            template,
            "patch",
        )
        check(client.patch(url, json={"name": "x"}, headers=bearer(read_only)), template, "patch")  # 403
    for template in ("/api/v1/device/{device_id}/secrets", "/api/v1/devices/{device_id}/secrets"):
        url = template.format(device_id=device_id)
        added = check(client.post(url, json={"expires_in": 3600}, headers=auth), template, "post")  # 201
        check(client.post(url, headers=auth), template, "post")  # 409: a third
        check(client.post(url, json={"expires_in": 0}, headers=auth), template, "post")  # 400
        check(client.post(url, data="x", headers=auth), template, "post")  # 415
        check(client.post(template.format(device_id=424242), headers=auth), template, "post")  # 404
        slot_template = template + "/{slot}"
        remove = slot_template.format(device_id=device_id, slot=added["slot"])
        check(client.delete(remove, headers=auth), slot_template, "delete")  # 204
        check(client.delete(remove, headers=auth), slot_template, "delete")  # 404: empty now
        check(
            client.delete(slot_template.format(device_id=device_id, slot=1), headers=auth),
            slot_template,
            "delete",
        )  # 409
        check(client.delete(remove, headers=bearer(read_only)), slot_template, "delete")  # 403

    # The device endpoints: errors.
    check(client.post("/api/v1/devices", data="x", headers=auth), "/api/v1/devices", "post")  # 415
    check(client.post("/api/v1/devices", json={"device_code": 1}, headers=auth), "/api/v1/devices", "post")
    check(
        client.post("/api/v1/devices", data="{" * 70000, content_type="application/json", headers=auth),
        "/api/v1/devices",
        "post",
    )  # 413
    check(
        client.post("/api/v1/devices", json={}, headers=bearer(read_only)), "/api/v1/devices", "post"
    )  # 403
    check(client.get("/api/v1/devices"), "/api/v1/devices", "get")  # 401
    check(client.get("/api/v1/devices?sort_order=up", headers=auth), "/api/v1/devices", "get")  # 400
    check(client.put("/api/v1/devices", headers=auth), "/api/v1/devices", "post")  # 405 (any method's entry)
    check(client.get("/api/v1/device/424242", headers=auth), "/api/v1/device/{device_id}", "get")  # 404
    check(client.delete(f"{authorize}?device_id=x", headers=auth), authorize, "delete")  # 400
    check(client.post(authorize, json={"device_id": 424242}, headers=auth), authorize, "post")  # 404
    check(client.post(authorize, json=[1], headers=auth), authorize, "post")  # 400

    # OAuth, with the device's credentials.
    token_body = check(
        client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)),
        "/token",
        "post",
    )
    check(
        client.get(f"/api/v1/device/{device_id}", headers=bearer(token_body["access_token"])),
        "/api/v1/device/{device_id}",
        "get",
    )
    check(
        client.get("/api/v1/devices", headers=bearer(token_body["access_token"])), "/api/v1/devices", "get"
    )  # 403
    form = {"client_id": client_id, "client_secret": secret}
    refreshed = check(
        client.post(
            "/token",
            data={
                **form,
                "grant_type": "refresh_token",
                "refresh_token": _refresh_token(client, client_id, secret),
            },
        ),
        "/token",
        "post",
    )
    check(
        client.post("/token", data={**form, "grant_type": "refresh_token", "refresh_token": "bcr_nope"}),
        "/token",
        "post",
    )  # 400 invalid_grant
    check(client.post("/token", data={**form, "grant_type": "password"}), "/token", "post")  # 400
    check(
        client.post(
            "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, "bcs_wrong")
        ),
        "/token",
        "post",
    )  # 401
    active = check(
        client.post("/token/introspect", data={**form, "token": refreshed["access_token"]}),
        "/token/introspect",
        "post",
    )
    assert active["active"] is True
    check(
        client.post("/token/introspect", data={**form, "token": refreshed["refresh_token"]}),
        "/token/introspect",
        "post",
    )
    assert check(
        client.post("/token/introspect", data={**form, "token": "bcd_unknown"}), "/token/introspect", "post"
    ) == {"active": False}
    check(client.post("/token/introspect", data={"token": "x"}), "/token/introspect", "post")  # 401
    check(
        client.post("/token/revoke", data={**form, "token": refreshed["refresh_token"]}),
        "/token/revoke",
        "post",
    )
    check(client.post("/token/revoke", data=form), "/token/revoke", "post")  # 400: no token
    check(client.get("/token"), "/token", "post")  # 405

    # Metadata, health, this document.
    check(
        client.get("/.well-known/oauth-authorization-server"),
        "/.well-known/oauth-authorization-server",
        "get",
    )
    check(client.get("/healthz"), "/healthz", "get")
    check(client.post("/healthz"), "/healthz", "get")  # 405
    check(client.get("/api/v1/openapi.json"), "/api/v1/openapi.json", "get")

    # Metrics and quantity samples (the PAT has samples:*; the device token works for its own).
    metric = check(
        client.post(
            "/api/v1/metrics",
            json={
                "device_id": device_id,
                "sample_type": "HKQuantityTypeIdentifierHeartRate",
                "quantity_type": "bpm",
            },
            headers=auth,
        ),
        "/api/v1/metrics",
        "post",
    )
    metric_id = metric["id"]
    check(
        client.post("/api/v1/metrics", json={"device_id": device_id}, headers=auth), "/api/v1/metrics", "post"
    )
    check(
        client.post(
            "/api/v1/metrics",
            json={"device_id": 424242, "sample_type": "heartRate", "quantity_type": "bpm"},
            headers=auth,
        ),
        "/api/v1/metrics",
        "post",
    )  # 404
    check(client.post("/api/v1/metrics", data="x", headers=auth), "/api/v1/metrics", "post")  # 415
    check(client.get("/api/v1/metrics?limit=1", headers=auth), "/api/v1/metrics", "get")
    check(client.get("/api/v1/metrics?limit=0", headers=auth), "/api/v1/metrics", "get")  # 400
    check(client.get("/api/v1/metrics", headers=bearer(read_only)), "/api/v1/metrics", "get")  # 403
    for template in ("/api/v1/metric/{metric_id}", "/api/v1/metrics/{metric_id}"):
        check(client.get(template.format(metric_id=metric_id), headers=auth), template, "get")
        check(client.get(template.format(metric_id=424242), headers=auth), template, "get")  # 404
        check(client.delete(template.format(metric_id=424242), headers=auth), template, "delete")  # 404
    sample = {
        "metric_id": metric_id,
        "start_date": "2022-01-12T06:33:26.696888Z",
        "end_date": "2022-01-12T06:33:26.696888Z",
        "quantity": 61,
        "sample_motion_context": "Active",
        "sample_sensor_location": 2,
        "client_sample_id": "hk-1",
    }
    fresh = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret))
    device_auth = bearer(fresh.get_json()["access_token"])
    uuids = []
    for template in ("/api/v1/quantity-samples", "/api/v1/samples"):
        one = check(client.post(template, json=sample, headers=device_auth), template, "post")  # 201
        uuids.append(one["uuid"])
        sample = {**sample, "client_sample_id": "hk-2"}
        later = {**sample, "start_date": "2022-01-12T06:34:00Z", "end_date": "2022-01-12T06:35:00Z"}
        del later["client_sample_id"]
        result = check(
            client.post(template, json={"samples": [sample, later, {"metric_id": metric_id}]}, headers=auth),
            template,
            "post",
        )  # 200 with a rejected item
        assert result["rejected"][0]["index"] == 2
        check(client.post(template, json={**sample, "quantity": "x"}, headers=auth), template, "post")  # 400
        check(
            client.post(template, json={**sample, "metric_id": 424242}, headers=auth), template, "post"
        )  # 404
        check(client.post(template, data="x", headers=auth), template, "post")  # 415
        check(
            client.post(
                template, data="[" + " " * (1 << 20) + "]", content_type="application/json", headers=auth
            ),
            template,
            "post",
        )  # 413
        check(client.post(template, json=sample, headers=bearer(read_only)), template, "post")  # 403
        page = check(client.get(f"{template}?metric_id={metric_id}&limit=1", headers=auth), template, "get")
        assert page["next_cursor"]
        check(
            client.get(f"{template}?metric_id={metric_id}&cursor={page['next_cursor']}", headers=device_auth),
            template,
            "get",
        )
        check(client.get(f"{template}?metric_id={metric_id}&cursor=x", headers=auth), template, "get")  # 400
        check(client.get(f"{template}?metric_id=424242", headers=auth), template, "get")  # 404
        check(client.get(f"{template}?metric_id={metric_id}"), template, "get")  # 401
    calculations = "/api/v1/quantity-sample-calculations"
    span = "start_gte=2022-01-12T00:00:00Z&finish_lte=2022-01-13T12:00:00Z"
    found = check(
        client.get(f"{calculations}?metric_id={metric_id}&function=1&frequency=day&{span}", headers=auth),
        calculations,
        "get",
    )
    assert [bucket["count"] for bucket in found["results"]] == [3, 0]
    check(
        client.get(
            f"{calculations}?sample_type=heartRate&function=latest&frequency=5&{span}&time_zone=Asia/Kathmandu",
            headers=device_auth,
        ),
        calculations,
        "get",
    )
    check(
        client.get(f"{calculations}?metric_id={metric_id}&function=9&{span}", headers=auth),
        calculations,
        "get",
    )
    check(
        client.get(f"{calculations}?metric_id=424242&function=1&frequency=1&{span}", headers=auth),
        calculations,
        "get",
    )  # 404
    for template, sample_uuid in zip(
        ("/api/v1/quantity-sample/{sample_uuid}", "/api/v1/quantity-samples/{sample_uuid}"),
        uuids,
        strict=True,
    ):
        check(
            client.delete(template.format(sample_uuid=sample_uuid), headers=auth), template, "delete"
        )  # 204
        check(
            client.delete(template.format(sample_uuid=sample_uuid), headers=auth), template, "delete"
        )  # 404
    check(client.delete(f"/api/v1/metric/{metric_id}", headers=auth), "/api/v1/metric/{metric_id}", "delete")
    second = check(
        client.post(
            "/api/v1/metrics",
            json={"device_id": device_id, "sample_type": "stepCount", "quantity_type": "count"},
            headers=auth,
        ),
        "/api/v1/metrics",
        "post",
    )
    check(
        client.delete(f"/api/v1/metrics/{second['id']}", headers=auth),
        "/api/v1/metrics/{metric_id}",
        "delete",
    )
    check(client.delete(f"/api/v1/device/{device_id}", headers=auth), "/api/v1/device/{device_id}", "delete")
    disabled_metric = {"device_id": device_id, "sample_type": "stepCount", "quantity_type": "count"}
    check(
        client.post("/api/v1/metrics", json=disabled_metric, headers=auth), "/api/v1/metrics", "post"
    )  # 409

    # The account, and generated samples for a test-mode device's metric.
    check(client.get("/api/v1/account", headers=bearer(read_only)), "/api/v1/account", "get")
    check(client.get("/api/v1/account"), "/api/v1/account", "get")  # 401
    check(
        client.patch("/api/v1/account", json={"time_zone": "europe/berlin"}, headers=auth),
        "/api/v1/account",
        "patch",
    )
    check(
        client.patch("/api/v1/account", json={"time_zone": "Berlin"}, headers=auth),
        "/api/v1/account",
        "patch",
    )  # 400
    check(client.patch("/api/v1/account", data="x", headers=auth), "/api/v1/account", "patch")  # 415
    check(
        client.patch("/api/v1/account", json={"time_zone": "UTC"}, headers=bearer(read_only)),
        "/api/v1/account",
        "patch",
    )  # 403
    simulators = "/api/v1/metric-operations/simulators"
    test_device, _ = make_device(user, "Watch6,1", is_test_mode=True)
    live_device, _ = make_device(user, "Watch6,1")
    ids = [
        check(
            client.post(
                "/api/v1/metrics",
                json={"device_id": d.id, "sample_type": "bodyMass", "quantity_type": "kg"},
                headers=auth,
            ),
            "/api/v1/metrics",
            "post",
        )["id"]
        for d in (test_device, live_device)
    ]
    check(client.post(simulators, json={"metric_id": ids[0], "days": 3}, headers=auth), simulators, "post")
    check(client.post(simulators, json={"metric_id": ids[1]}, headers=auth), simulators, "post")  # 409
    check(client.post(simulators, json={"metric_id": 424242}, headers=auth), simulators, "post")  # 404
    check(client.post(simulators, json={"metric_id": ids[0], "days": 0}, headers=auth), simulators, "post")

    # Applications and the apps a person authorized (a PAT's business only).
    from bioweb.services import grants

    apps = "/api/v1/applications"
    app_body = {
        "name": "Step coach",
        "redirect_uris": ["https://coach.example.com/cb"],
        "client_type": "confidential",
    }
    registered = check(client.post(apps, json=app_body, headers=auth), apps, "post")  # 201
    check(
        client.post(apps, json={**app_body, "redirect_uris": ["http://localhost/cb"]}, headers=auth),
        apps,
        "post",
    )
    check(client.post(apps, json=app_body, headers=bearer(read_only)), apps, "post")  # 403
    check(client.post(apps, data="x", headers=auth), apps, "post")  # 415
    check(client.get(apps, headers=bearer(read_only)), apps, "get")
    one = apps + "/{application_id}"
    url = one.format(application_id=registered["id"])
    check(client.get(url, headers=auth), one, "get")
    check(client.get(one.format(application_id=424242), headers=auth), one, "get")  # 404
    check(
        client.patch(url, json={"name": "Coach", "redirect_uris": ["com.example.coach:/cb"]}, headers=auth),
        one,
        "patch",
    )
    check(client.patch(url, json={}, headers=auth), one, "patch")  # 400
    check(
        client.patch(one.format(application_id=424242), json={"name": "x"}, headers=auth), one, "patch"
    )  # 404
    secret_url = one + "/secret"
    check(client.post(secret_url.format(application_id=registered["id"]), headers=auth), secret_url, "post")
    public = check(client.post(apps, json={**app_body, "client_type": "public"}, headers=auth), apps, "post")
    check(
        client.post(secret_url.format(application_id=public["id"]), headers=auth), secret_url, "post"
    )  # 400
    check(client.post(secret_url.format(application_id=424242), headers=auth), secret_url, "post")  # 404
    grants.approve(
        user,
        grants.find_client(public["client_id"]),
        "devices:read",
        "https://coach.example.com/cb",
        True,
        None,
    )
    listed = check(client.get("/api/v1/account/grants", headers=auth), "/api/v1/account/grants", "get")
    revoke = "/api/v1/account/grants/{grant_id}"
    grant_url = revoke.format(grant_id=listed["results"][0]["id"])
    check(client.delete(grant_url, headers=auth), revoke, "delete")  # 204
    check(client.delete(grant_url, headers=auth), revoke, "delete")  # 404
    check(client.delete(url, headers=auth), one, "delete")  # 204
    check(client.delete(url, headers=auth), one, "delete")  # 404

    statuses = {status for _, _, status in check.seen}
    assert {"200", "201", "202", "204", "400", "401", "403", "404", "405", "409", "413", "415"} <= statuses
    operations = {(t, m) for t, m, _ in check.seen}
    documented = {(p, m) for p, item in spec["paths"].items() for m in item if m != "parameters"}
    assert documented <= operations, f"operations never exercised: {documented - operations}"


def _examples(holder: dict[str, Any]) -> list[Any]:
    """The examples of a media type object or a parameter (its own, or its schema's)."""
    if "example" in holder:
        return [holder["example"]]
    if "examples" in holder:
        return [example["value"] for example in holder["examples"].values()]
    return list(holder.get("schema", {}).get("examples", []))


def test_every_operation_has_examples_that_match_the_document(spec):
    """Each request body, response body, path parameter and required query parameter carries an
    example (the reference page shows it; "Try it out" starts from it), and each is valid
    against its schema. An operation with neither (none today) still has to show one."""
    check = Checker(spec)
    missing, invalid = [], []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method.upper() not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            body = operation.get("requestBody", {}).get("content", {})
            places = [(f"{where} request {mime}", media, media["schema"]) for mime, media in body.items()]
            for status, response in operation["responses"].items():
                for mime, media in check._resolve(response).get("content", {}).items():
                    places.append((f"{where} {status} {mime}", media, media["schema"]))
            for parameter in item.get("parameters", []) + operation.get("parameters", []):
                if parameter["in"] == "path" or parameter.get("required"):
                    places.append((f"{where} parameter {parameter['name']}", parameter, parameter["schema"]))
            assert places, f"{where} shows no example"
            for label, holder, schema in places:
                examples = _examples(holder)
                if not examples:
                    missing.append(label)
                validator = Draft202012Validator(
                    {
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "allOf": [schema],
                        "components": spec["components"],
                    },
                    format_checker=FormatChecker(),
                )
                invalid += [f"{label}: {e.message}" for ex in examples for e in validator.iter_errors(ex)]
    assert missing == [], "no example (add values to bioweb/api/examples.py)"
    assert invalid == [], "examples that do not match their schema"


def test_health_503_matches_the_document(spec, tmp_path):
    """With the database gone, /healthz and the API answer the documented 503 shape."""
    missing = tmp_path / "no-such-dir" / "bioweb.db"
    app = make_app(f"sqlite:///{missing}")
    client = app.test_client()
    check = Checker(spec)
    response = client.get("/healthz")
    assert response.status_code == 503
    check(response, "/healthz", "get")
    response = client.get("/api/v1/devices", headers=bearer("bcp_whatever"))
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    check(response, "/api/v1/devices", "get")


def test_document_itself_matches(spec):
    # A trivially true check would be useless; this one fails if the builder drifts from what is served.
    assert document("http://127.0.0.1:8000")["paths"].keys() == spec["paths"].keys()


def test_reference_page_is_static_and_script_safe():
    app = make_app("sqlite://")
    client = app.test_client()
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    # The site's policy, nothing added for the renderer (bioweb/headers.py says what it needs).
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    html = page.get_data(as_text=True)
    page.close()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert [re.search(r'src="([^"]+)"', attrs)[1] for attrs, _ in scripts] == [
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/docs/docs.js",
    ]
    assert all(inline.strip() == "" for _, inline in scripts), "no inline script"
    assert "style=" not in html and "<style" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "nothing from another origin"
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        response = client.get(asset)
        assert response.status_code == 200, asset
        response.close()
    script = client.get("/static/docs/docs.js")
    assert b"/api/v1/openapi.json" in script.data
    assert b"innerHTML" not in script.data
    script.close()


def test_renderer_is_the_pinned_swagger_ui_with_its_licence():
    """static/vendor/swagger-ui is what `make vendor` copies from the version vendor/package.json
    pins (and its lockfile hashes), with the Apache-2.0 licence and notice beside it."""
    pinned = json.loads((ROOT / "vendor" / "package.json").read_text())["dependencies"]["swagger-ui-dist"]
    locked = json.loads((ROOT / "vendor" / "package-lock.json").read_text())["packages"]
    assert locked["node_modules/swagger-ui-dist"]["version"] == pinned
    assert locked["node_modules/swagger-ui-dist"]["integrity"].startswith("sha512-")
    folder = ROOT / "static" / "vendor" / "swagger-ui"
    assert (folder / "VERSION").read_text().strip() == pinned
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert "SmartBear" in (folder / "NOTICE").read_text()
    assert f"swagger-ui-dist@{pinned}" in (folder / "SOURCE.txt").read_text()
    assert f'PACKAGE_VERSION:"{pinned}"' in (folder / "swagger-ui-bundle.js").read_text()
