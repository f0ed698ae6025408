"""Examples in the OpenAPI document: every request body, every response body and every path
parameter gets one, so the reference page (/api/docs) shows a real-looking answer for each
operation and "Try it out" starts from a body that works.

The examples are built from the document's own schemas, so a field added to a read model or a
form gets a value without an edit here. Each value comes from the first of:
- WHOLE[name]: a whole body, for the requests people copy (and "<schema>@<status>" for errors);
- FIELDS["<schema>.<field>"], then FIELDS["<field>"]: values as the API really answers them;
- the schema's own `examples`, `const`, first `enum` member or `default`;
- a plain value of its type and format (a uuid, an RFC 3339 time, the minimum of an integer).
Response bodies show every field; request bodies their required fields and those the schema
gives examples for. tests/test_openapi.py validates every example against its schema.
"""

from __future__ import annotations

from typing import Any

import msgspec

METHODS = ("get", "put", "post", "patch", "delete")
TIME = "2026-01-12T06:33:26.696888+00:00"
UUID = "5db12b53-9ef0-4d96-a334-dcdc2d4050d2"
CLIENT_ID = "67e0455e7dff7b13"
ACCESS_TOKEN = (
    "bcd_eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0"
    ".eyJzdWIiOiI2N2UwNDU1ZTdkZmY3YjEzIiwic2NvcGUiOiJkZXZpY2UifQ.BC3Y-IvVA-VaFm4One8-V9aees6H8"
)
BASE = "http://127.0.0.1:8000"
APP_CLIENT_ID = "app_3f2a9c41d07be85e62a1c9d4"

# Field values by name, as the API answers them (schema-qualified where one name means two things).
FIELDS: dict[str, Any] = {
    "id": 1,
    "uuid": UUID,
    "tenant_id": 1,
    "user_id": 1,
    "device_id": 1,
    "metric_id": 1,
    "next_id": 1,
    "count": 1,
    "manufacturer": "Apple",
    "code": "Watch6,1",
    "device_code": "Watch6,1",
    "product_name": "Apple Watch Series 6",
    "is_test_mode": False,
    "state": 1,
    "name": "Ada's watch",
    "created_time": TIME,
    "modified_time": TIME,
    "last_active_time": TIME,
    "last_token_time": TIME,
    "client_id": CLIENT_ID,
    "oauth2_client_id": CLIENT_ID,
    "oauth2_client_secret": "bcs_dL7Kf_xwsbDEMn5WoMXC1ExSCgvMckGssM__vXSuLYo",
    "oauth2_redirect_url": f"{BASE}/appauth/code",
    # Audit events.
    "kind": "token.issued",
    "time": TIME,
    "last_time": TIME,
    "EventView.count": 3,
    "actor": "device:1",
    "ip": "203.0.113.7",
    "request_id": "6175e885e8c74ebab84afb9f015915ca",
    # Metrics and their figures (heart rate, in the owner's zone).
    "MetricView.name": "Resting heart",
    "MetricDetail.name": "Resting heart",
    "sample_type": "heartRate",
    "sample_type_other": "",
    "quantity_type": "count/min",
    "quantity_type_other": "",
    "is_continuous_data": False,
    "aggregation": "discrete",
    "latest_value": 62.0,
    "latest_timestamp": "2026-01-12T06:35:00+00:00",
    "time_zone": "Europe/Berlin",
    "avg_today": 64.2,
    "avg_yesterday": 66.8,
    "avg_this_week": 65.1,
    "avg_last_week": 67.4,
    "avg_this_month": 66.0,
    "avg_last_month": 68.3,
    "avg_this_year": 66.0,
    "avg_last_year": None,
    # Samples.
    "quantity": 61.0,
    "start_date": "2026-01-12T06:33:26.696888+00:00",
    "end_date": "2026-01-12T06:33:26.696888+00:00",
    "sample_motion_context": "Sedentary",
    "sample_sensor_location": 2,
    "sample_sensor_location_other": "",
    "is_null": False,
    "client_sample_id": "hk-1",
    "client_sample_version": 1,
    "received_time": TIME,
    "duplicate": False,
    "next_timestamp": 1768199606696,
    "next_cursor": "WyIyMDI2LTAxLTEyVDA2OjMzOjI2LjY5Njg4OCswMDowMCIsMV0",
    "SampleList.count": 3,
    "accepted": 2,
    "duplicates": 0,
    "replaced": 0,
    "rejected": [{"index": 2, "fields": {"start_date": ["Is more than 10 minutes in the future."]}}],
    # Calculations: the daily average of two days in Berlin.
    "unit": "count/min",
    "metric_ids": [1],
    "function": 1,
    "frequency": 1,
    "start_gte": "2026-01-12T00:00:00+01:00",
    "finish_lte": "2026-01-13T23:59:59+01:00",
    "start": "2026-01-12T00:00:00+01:00",
    "finish": "2026-01-13T00:00:00+01:00",
    "value": 61.5,
    "CalculationBucket.count": 288,
    "partial": False,
    # The account; generated samples.
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "days": 7,
    "SimulationResult.accepted": 2016,
    "SimulationResult.start": "2026-01-05T06:35:00+01:00",
    "SimulationResult.finish": "2026-01-12T06:35:00+01:00",
    # OAuth.
    "access_token": ACCESS_TOKEN,
    "token_type": "Bearer",
    "expires_in": 3600,
    "scope": "device",
    "active": True,
    "exp": 1768203206,
    "iat": 1768199606,
    "sub": CLIENT_ID,
    "iss": BASE,
    "aud": f"{BASE}/api/v1",
    "jti": "cUJ0pYJj3JiWrm-ib79DDg",
    "status": "ok",
    # Applications and the apps a person authorized.
    "ApplicationView.client_id": APP_CLIENT_ID,
    "ApplicationCredentials.client_id": APP_CLIENT_ID,
    "ApplicationView.name": "Step coach",
    "ApplicationCredentials.name": "Step coach",
    "homepage_url": "https://coach.example.com",
    "client_type": "confidential",
    "redirect_uris": ["https://coach.example.com/oauth/callback"],
    "client_secret": "bcs_Qm9sZF9yaXZlcl9zdG9uZV9sYW1wX3NoZWxmX3Rva2Vu",
    "client_secret_created_time": TIME,
    "client_name": "Step coach",
    "AuthorizedApp.client_id": APP_CLIENT_ID,
    "AuthorizedApp.kind": "application",
    "owner_name": "Grace Hopper (grace@example.com)",
    "AuthorizedApp.scope": "devices:read samples:read",
    "scope_words": ["Read your devices and their data"],
}

SAMPLE_IN = {
    "metric_id": 1,
    "start_date": "2026-01-12T06:33:26.696888Z",
    "end_date": "2026-01-12T06:33:26.696888Z",
    "quantity": 61,
    "client_sample_id": "hk-1",
}

# Whole bodies: the requests people copy, and error answers by "<schema>@<status>".
WHOLE: dict[str, Any] = {
    "DeviceCreate": {"manufacturer": "Apple", "device_code": "Watch6,1", "name": "Ada's watch"},
    "DeviceRef": {"device_id": 1},
    "MetricCreate": {
        "device_id": 1,
        "name": "Resting heart",
        "sample_type": "heartRate",
        "quantity_type": "bpm",
    },
    "AccountUpdate": {"time_zone": "Europe/Berlin"},
    "SimulatorRequest": {"metric_id": 1, "days": 7},
    "SampleIn": SAMPLE_IN,
    "SampleBatch": {
        "samples": [
            SAMPLE_IN,
            {
                "metric_id": 1,
                "start_date": "2026-01-12T06:34:00Z",
                "end_date": "2026-01-12T06:34:00Z",
                "quantity": 62,
                "client_sample_id": "hk-2",
            },
        ]
    },
    "ApplicationCreate": {
        "name": "Step coach",
        "homepage_url": "https://coach.example.com",
        "redirect_uris": ["https://coach.example.com/oauth/callback"],
        "client_type": "confidential",
    },
    "ApplicationUpdate": {"redirect_uris": ["com.example.stepcoach:/callback", "http://127.0.0.1/callback"]},
    "TokenRequest": {"grant_type": "client_credentials", "scope": "device"},
    # Client credentials: no refresh token (that comes with grants for a person).
    "TokenResponse": {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "device",
        "device_id": 1,
        "user_id": 1,
        "tenant_id": 1,
    },
    "TokenActionRequest": {"token": ACCESS_TOKEN, "token_type_hint": "access_token"},
    "Metadata": {
        "issuer": BASE,
        "token_endpoint": f"{BASE}/token",
        "revocation_endpoint": f"{BASE}/token/revoke",
        "introspection_endpoint": f"{BASE}/token/introspect",
        "grant_types_supported": ["client_credentials", "refresh_token"],
        "response_types_supported": [],
        "scopes_supported": ["device"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "service_documentation": f"{BASE}/api/docs",
    },
    "Error": {"error": "invalid_request", "error_description": "The request is not valid."},
    "Error@409": {
        "error": "conflict",
        "error_description": "Only test-mode devices can be simulated: device 1 is a live device, and "
        "generated data must never mix with real readings.",
    },
    "OAuthError": {"error": "invalid_request", "error_description": "The request is not valid."},
    "OAuthError@400": {
        "error": "unsupported_grant_type",
        "error_description": "The grant type 'password' is not supported here. Use "
        "grant_type=client_credentials (or refresh_token with a refresh token).",
    },
    "OAuthError@401": {
        "error": "invalid_client",
        "error_description": "The client id or client secret is wrong.",
    },
}

# The names of a body's alternatives (a oneOf of components) in the examples' menu.
SUMMARIES = {
    "SampleIn": "One sample (answered 201 with the stored sample)",
    "SampleBatch": "A batch of up to 1,000 (answered 200 with counts)",
}

# The shared error answers (components/responses), as the API words them.
ERRORS: dict[str, dict[str, Any]] = {
    "BadRequest": {
        "error": "invalid_request",
        "error_description": "The request has invalid fields: device_code, manufacturer.",
        "fields": {
            "manufacturer": ["Unknown manufacturer 'Nokia'; available options: Apple."],
            "device_code": ["This field is required."],
        },
    },
    "Unauthorized": {
        "error": "invalid_token",
        "error_description": "The access token is unknown, expired or revoked.",
    },
    "Forbidden": {"error": "insufficient_scope", "error_description": "This needs the scope devices:write."},
    "NotFound": {"error": "not_found", "error_description": "You have no device with id 99."},
    "Conflict": {
        "error": "conflict",
        "error_description": "Device 1 is disabled: nothing is stored for it until it is re-authorized.",
    },
    "MethodNotAllowed": {
        "error": "method_not_allowed",
        "error_description": "Method PUT is not allowed here; allowed: POST, OPTIONS, GET, HEAD.",
    },
    "TooLarge": {
        "error": "request_too_large",
        "error_description": "The request body is too large; the limit here is 65,536 bytes.",
    },
    "UnsupportedMediaType": {
        "error": "unsupported_media_type",
        "error_description": "Send the body as JSON, with the header Content-Type: application/json.",
    },
    "TooManyRequests": {
        "error": "rate_limited",
        "error_description": "Too many requests; try again in 42 seconds.",
    },
    "Unavailable": {
        "error": "temporarily_unavailable",
        "error_description": "The database is not answering; try again shortly.",
    },
}

# Bodies no schema describes well enough (by operationId and status).
OPERATIONS: dict[tuple[str, str], Any] = {
    ("openapi_document", "200"): {
        "openapi": "3.1.0",
        "info": {"title": "bioweb", "version": "1"},
        "paths": {"/api/v1/devices": {"get": {"operationId": "list_devices"}}},
    },
    ("revoke_token", "200"): {},
}


class _Walker:
    """Builds examples from the document's component schemas."""

    def __init__(self, schemas: dict[str, Any]):
        self.schemas = schemas

    def value(
        self, schema: dict[str, Any], owner: str | None, field: str | None, request: bool, depth: int = 0
    ) -> Any:
        """An example of `schema`: the property `field` of the component `owner`, when given."""
        if field is not None:
            for key in (f"{owner}.{field}", field):
                if key in FIELDS:
                    return FIELDS[key]
        if depth > 8:
            return None
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            if name in WHOLE:
                return WHOLE[name]
            return self.value(self.schemas[name], name, None, request, depth + 1)
        for keyword in ("examples", "enum"):
            if schema.get(keyword):
                return schema[keyword][0]
        if "const" in schema:
            return schema["const"]
        if schema.get("default") is not None:
            return schema["default"]
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                options = [s for s in schema[keyword] if s.get("type") != "null"] or schema[keyword]
                return self.value(options[0], owner, None, request, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object" or "properties" in schema:
            required = set(schema.get("required", ()))
            return {
                name: self.value(prop, owner, name, request, depth + 1)
                for name, prop in schema.get("properties", {}).items()
                if not request or name in required or "examples" in prop
            }
        if kind == "array":
            return [self.value(schema.get("items", {}), owner, None, request, depth + 1)]
        if kind in ("integer", "number"):
            return schema.get("minimum", 1)
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        formats = {"date-time": TIME, "uuid": UUID, "uri": BASE, "email": "ada@example.com"}
        return formats.get(schema.get("format", ""), "text")

    def body(self, media: dict[str, Any], request: bool) -> None:
        """Give a media type object (a request or response body) an example, unless it has one:
        one per alternative of a oneOf of components (one sample, or a batch)."""
        if "example" in media or "examples" in media:
            return
        schema = media.get("schema", {})
        alternatives = schema.get("oneOf", [])
        if alternatives and all("$ref" in s for s in alternatives):
            names = [s["$ref"].rsplit("/", 1)[1] for s in alternatives]
            media["examples"] = {
                name: {
                    "summary": SUMMARIES.get(name, name),
                    "value": self.value(ref, None, None, request),
                }
                for name, ref in zip(names, alternatives, strict=True)
            }
        else:
            media["example"] = self.value(schema, None, None, request)


def add_examples(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of `document` (an OpenAPI 3.1 dict) in which every body, path parameter and
    required query parameter has an example (the builder's constants stay untouched)."""
    document = msgspec.json.decode(msgspec.json.encode(document))
    walker = _Walker(document["components"]["schemas"])
    for name, response in document["components"].get("responses", {}).items():
        for media in response.get("content", {}).values():
            if name in ERRORS:
                media.setdefault("example", ERRORS[name])
            walker.body(media, request=False)
    for item in document["paths"].values():
        operations = [operation for method, operation in item.items() if method in METHODS]
        parameters = item.get("parameters", []) + [p for op in operations for p in op.get("parameters", [])]
        for parameter in parameters:
            # Optional query parameters stay without one: "Try it out" would send it.
            if (parameter["in"] == "path" or parameter.get("required")) and not (
                {"example", "examples"} & (parameter.keys() | parameter.get("schema", {}).keys())
            ):
                parameter["example"] = walker.value(
                    parameter.get("schema", {}), None, parameter["name"], True
                )
        for operation in operations:
            for media in operation.get("requestBody", {}).get("content", {}).values():
                walker.body(media, request=True)
            for status, response in operation["responses"].items():
                for media in response.get("content", {}).values():
                    ref = media.get("schema", {}).get("$ref", "")
                    special = OPERATIONS.get(
                        (operation["operationId"], status), WHOLE.get(f"{ref.rsplit('/', 1)[-1]}@{status}")
                    )
                    if special is not None:
                        media.setdefault("example", special)
                    walker.body(media, request=False)
    return document
