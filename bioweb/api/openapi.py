"""The OpenAPI 3.1 description of /api/v1 and the OAuth endpoints, served at /api/v1/openapi.json,
and the reference page that renders it at /api/docs (static/docs/: Swagger UI from
static/vendor/swagger-ui, started by docs.js; no CDN, no inline script).

Most of the document is derived from the code, so a field is written once:
- response bodies of /api/v1 from the read models (bioweb.readmodels, msgspec Structs, through
  `msgspec.json.schema_components`), including their descriptions, ranges and formats;
- request bodies and query parameters from the forms that validate them (`form_schema`, the
  walker beside bind_json), including the fields' descriptions and defaults;
- the path id from the read models' `Id`, sort fields from the form.
- an example of every body and path parameter (api/examples.py, from these schemas and a table
  of values as the API answers them).
What is written here by hand is what no code knows: operation summaries and descriptions,
the error answers, and the OAuth endpoints (whose answers Authlib and bioweb.oauth
shape). tests/test_openapi.py keeps it true (it validates as OpenAPI, names every route, and
real responses match its schemas), and so does tests/test_fuzz.py (schemathesis against a
live server).
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from flask import current_app, jsonify, send_from_directory
from flask.blueprints import BlueprintSetupState
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from ..forms import (
    ApplicationChangeForm,
    ApplicationForm,
    DeviceForm,
    DeviceNameForm,
    DeviceRefForm,
    ListDevicesForm,
    ListMetricsForm,
    MetricForm,
    NewSecretForm,
    PageForm,
    SimulatorForm,
    TimeZoneForm,
)
from ..readmodels import API_MODELS, APPLICATION_MODELS, AccountView, Id, SimulationResult
from ..services import calculations, grants
from ..services.samples import SampleBatch, SampleIn
from .core import bp, form_schema
from .examples import add_examples

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
REF_TEMPLATE = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(name=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _api_error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _oauth_error(description: str) -> dict[str, Any]:
    return _json(_ref("OAuthError"), description)


def query_parameters(form_class: type[FlaskForm]) -> list[dict[str, Any]]:
    """The query parameters a form validates (bind_args), one OpenAPI parameter per field."""
    schema = form_schema(form_class, nullable=False)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        parameter: dict[str, Any] = {"name": name, "in": "query"}
        if name in required:
            parameter["required"] = True
        if "description" in prop:
            parameter["description"] = prop.pop("description")
        parameters.append({**parameter, "schema": prop})
    return parameters


# Errors every bearer-protected operation can answer.
BEARER_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "405": {"$ref": "#/components/responses/MethodNotAllowed"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}
# Errors of an operation that reads a JSON body.
BODY_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "413": {"$ref": "#/components/responses/TooLarge"},
    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
}
# Errors of an OAuth endpoint (RFC 6749 section 5.2 and the app's own).
OAUTH_ERRORS = {
    "400": _oauth_error("Bad request (RFC 6749 section 5.2: invalid_request, invalid_grant, ...)."),
    "401": _oauth_error("Client authentication failed (invalid_client), with WWW-Authenticate."),
    "405": {"$ref": "#/components/responses/MethodNotAllowed"},
    "413": {"$ref": "#/components/responses/TooLarge"},
    "429": {"$ref": "#/components/responses/TooManyRequests"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}

ID: dict[str, Any] = msgspec.json.schema(Id)

DEVICE_ID_PATH = {
    "name": "device_id",
    "in": "path",
    "required": True,
    "description": "The id of one of your devices.",
    "schema": ID,
}

# Examples of request fields, merged into the schemas derived from the forms.
EXAMPLES: dict[str, dict[str, list[Any]]] = {
    "DeviceCreate": {"manufacturer": ["Apple"], "device_code": ["iPhone1,1", "Watch1,1"]},
    "DeviceRef": {"device_id": [1]},
    "AccountUpdate": {"time_zone": ["Europe/Berlin", "America/New_York"]},
    "SimulatorRequest": {"metric_id": [1], "days": [7, 30]},
    "DeviceUpdate": {"name": ["Anna's watch"]},
    "SecretCreate": {"expires_in": [604800]},
}
# Request bodies: the form that validates each (api.bind_json).
REQUEST_FORMS: dict[str, type[FlaskForm]] = {
    "DeviceCreate": DeviceForm,
    "DeviceRef": DeviceRefForm,
    "MetricCreate": MetricForm,
    "AccountUpdate": TimeZoneForm,
    "SimulatorRequest": SimulatorForm,
    "DeviceUpdate": DeviceNameForm,
    "SecretCreate": NewSecretForm,
    "ApplicationCreate": ApplicationForm,
    "ApplicationUpdate": ApplicationChangeForm,
}


# Fields a body must name although their form takes null (PATCH names what it changes).
REQUIRED_KEYS: dict[str, list[str]] = {"DeviceUpdate": ["name"]}


def _request_schema(name: str) -> dict[str, Any]:
    schema = form_schema(REQUEST_FORMS[name])
    if name in REQUIRED_KEYS:
        schema = {"type": "object", "required": REQUIRED_KEYS[name], **schema}
    for field, examples in EXAMPLES.get(name, {}).items():
        schema["properties"][field] = {**schema["properties"][field], "examples": examples}
    return schema


@functools.cache
def derived_schemas() -> dict[str, Any]:
    """The components derived from code: the read models' and the request forms' schemas."""
    _, components = msgspec.json.schema_components(
        (*API_MODELS, AccountView, SimulationResult, SampleIn, SampleBatch, *APPLICATION_MODELS),
        ref_template=REF_TEMPLATE,
    )
    return {**components, **{name: _request_schema(name) for name in REQUEST_FORMS}}


# Written by hand: the error shapes and the OAuth endpoints' bodies.
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "The one error shape of /api/v1 (RFC 6749/6750 vocabulary).",
        "required": ["error", "error_description"],
        "properties": {
            "error": {"type": "string", "pattern": "^[a-z_]+$"},
            "error_description": {"type": "string"},
            "fields": {
                "type": "object",
                "description": "Validation errors: the messages of each bad field or parameter.",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
        "additionalProperties": False,
    },
    "OAuthError": {
        "type": "object",
        "description": "An RFC 6749 section 5.2 error.",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "pattern": "^[a-z_]+$"},
            "error_description": {"type": "string"},
            "error_uri": {"type": "string"},
            "fields": {"type": "object"},
        },
        "additionalProperties": False,
    },
    "TokenRequest": {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {
                "type": "string",
                "enum": ["client_credentials", "authorization_code", "refresh_token"],
                "description": "Devices: client_credentials. Apps (and a device's companion app): "
                "authorization_code after /authorize, then refresh_token.",
            },
            "code": {
                "type": "string",
                "description": "For authorization_code: the code the redirect received (bcc_...).",
            },
            "redirect_uri": {
                "type": "string",
                "description": "For authorization_code: the redirect_uri of the authorization request, if it named one.",
            },
            "code_verifier": {
                "type": "string",
                "description": "For authorization_code: the PKCE verifier (RFC 7636), required when the request sent "
                "a code_challenge (public clients always do), refused when it did not.",
            },
            "refresh_token": {"type": "string", "description": "For grant_type=refresh_token."},
            "scope": {
                "type": "string",
                "description": "client_credentials: device (the default), or all, its alias from the published "
                "system. refresh_token: the same scopes or fewer.",
            },
            "client_id": {
                "type": "string",
                "description": "client_secret_post (or use HTTP Basic); a public application sends only this.",
            },
            "client_secret": {"type": "string"},
        },
    },
    "TokenResponse": {
        "type": "object",
        "required": [
            "access_token",
            "token_type",
            "expires_in",
            "scope",
            "user_id",
            "tenant_id",
        ],
        "properties": {
            "access_token": {
                "type": "string",
                "pattern": "^bcd_",
                "description": "bcd_ + an RFC 9068 JWT (HS256). Opaque to clients: use it as a bearer token. "
                "A device's own token dies when the device is disabled or re-authorized, or when one of its "
                "access tokens is revoked; a grant's, when the person revokes the app, or one of the grant's "
                "tokens is revoked.",
            },
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer", "minimum": 1},
            "refresh_token": {
                "type": "string",
                "pattern": "^bcr_",
                "description": "From authorization_code and refresh_token (grants for a person), rotating at "
                "each use; client credentials get none.",
            },
            "scope": {
                "type": "string",
                "description": "device (client credentials), or the scopes the person approved: devices:read, "
                "devices:write, samples:read, samples:write.",
            },
            "device_id": {
                **ID,
                "description": "The device, for a device client (absent for an application).",
            },
            "user_id": ID,
            "tenant_id": ID,
        },
        "additionalProperties": False,
    },
    "TokenActionRequest": {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {"type": "string"},
            "token_type_hint": {"type": "string", "enum": ["access_token", "refresh_token"]},
            "client_id": {"type": "string"},
            "client_secret": {"type": "string"},
        },
    },
    "Introspection": {
        "type": "object",
        "required": ["active"],
        "properties": {
            "active": {"type": "boolean"},
            "scope": {"type": "string"},
            "client_id": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer", "refresh_token"]},
            "exp": {"type": ["integer", "null"]},
            "iat": {"type": "integer"},
            "sub": {"type": "string"},
            "iss": {"type": "string"},
            "aud": {"type": "string"},
            "jti": {"type": "string"},
            "device_id": ID,
            "user_id": ID,
            "tenant_id": ID,
        },
        "additionalProperties": False,
    },
    "Metadata": {
        "type": "object",
        "description": "RFC 8414 authorization server metadata.",
        "required": [
            "issuer",
            "token_endpoint",
            "grant_types_supported",
            "token_endpoint_auth_methods_supported",
        ],
        "properties": {
            "issuer": {"type": "string", "format": "uri"},
            "authorization_endpoint": {"type": "string", "format": "uri"},
            "token_endpoint": {"type": "string", "format": "uri"},
            "revocation_endpoint": {"type": "string", "format": "uri"},
            "introspection_endpoint": {"type": "string", "format": "uri"},
            "grant_types_supported": {"type": "array", "items": {"type": "string"}},
            "response_types_supported": {"type": "array", "items": {"type": "string"}},
            "response_modes_supported": {"type": "array", "items": {"type": "string"}},
            "code_challenge_methods_supported": {"type": "array", "items": {"type": "string"}},
            "authorization_response_iss_parameter_supported": {"type": "boolean"},
            "scopes_supported": {"type": "array", "items": {"type": "string"}},
            "token_endpoint_auth_methods_supported": {"type": "array", "items": {"type": "string"}},
            "revocation_endpoint_auth_methods_supported": {"type": "array", "items": {"type": "string"}},
            "introspection_endpoint_auth_methods_supported": {"type": "array", "items": {"type": "string"}},
            "service_documentation": {"type": "string", "format": "uri"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "ok"}},
        "additionalProperties": False,
    },
}

RESPONSES: dict[str, Any] = {
    "BadRequest": _api_error("Invalid input; `fields` names each bad field or parameter."),
    "Unauthorized": _api_error(
        'Missing, unknown, expired or revoked token; WWW-Authenticate: Bearer error="invalid_token".'
    ),
    "Forbidden": _api_error(
        'The token lacks the scope; WWW-Authenticate: Bearer error="insufficient_scope".'
    ),
    "NotFound": _api_error("No such device, metric or sample of yours (another user's looks the same)."),
    "Conflict": _api_error("The device is disabled; nothing is stored for it."),
    "MethodNotAllowed": _api_error("Wrong method; the Allow header lists the right ones."),
    "TooLarge": _api_error("The request body is too large."),
    "UnsupportedMediaType": _api_error("Send the body as JSON (Content-Type: application/json)."),
    "TooManyRequests": _api_error("Rate limited; Retry-After says when to try again."),
    "Unavailable": _api_error("The database is not answering; Retry-After says when to try again."),
}

# A PAT or a device's token (bearer), or an app's token from the authorization-code flow (oauth2).
BEARER: list[dict[str, list[str]]] = [{"bearer": []}, {"oauth2": []}]
# HTTP Basic, or client_id/client_secret in the form (no scheme).
CLIENT: list[dict[str, list[str]]] = [{"clientBasic": []}, {}]


def _device_by_id(alias: bool) -> dict[str, Any]:
    suffix = " (alias of /api/v1/device/{device_id})" if alias else ""
    return {
        "parameters": [DEVICE_ID_PATH],
        "get": {
            "operationId": "get_device_alias" if alias else "get_device",
            "tags": ["devices"],
            "summary": "Retrieve a device" + suffix,
            "description": "PAT with devices:read, or the device's own token (scope `device`).",
            "security": BEARER,
            "responses": {
                "200": _json(_ref("DeviceDetail"), "The device."),
                "404": {"$ref": "#/components/responses/NotFound"},
                **BEARER_ERRORS,
            },
        },
        "patch": {
            "operationId": "update_device_alias" if alias else "update_device",
            "tags": ["devices"],
            "summary": "Name a device" + suffix,
            "description": "PAT with devices:write. The body names what changes: "
            '`{"name": ...}` (at most 100 characters; null or "" removes the name). '
            "Anything else is refused (400).",
            "security": BEARER,
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("DeviceUpdate")}}},
            "responses": {
                "200": _json(_ref("DeviceDetail"), "The device, renamed."),
                "404": {"$ref": "#/components/responses/NotFound"},
                **BODY_ERRORS,
                **BEARER_ERRORS,
            },
        },
        "delete": {
            "operationId": "disable_device_alias" if alias else "disable_device",
            "tags": ["devices"],
            "summary": "Disable a device, or delete a disabled one with its data" + suffix,
            "description": "PAT with devices:write. Without `purge` (or `purge=false`): the published "
            "disable, idempotent: its credentials and every token it holds stop working at once. "
            "`purge=true`, an extension: a disabled device is deleted with its metrics, samples and "
            "events, and every token, grant and authorization code of it ends at once; it is gone "
            "for every reader from then on (404). 204 when every row went within the request, 202 "
            "when `flask maintenance` removes the rest; 409 while the device is active (disable it "
            "first).",
            "security": BEARER,
            "parameters": [PURGE_QUERY],
            "responses": {
                "204": {"description": "Disabled (or, with purge=true, deleted with all its data)."},
                "202": PURGE_PENDING,
                "400": {"$ref": "#/components/responses/BadRequest"},
                "404": {"$ref": "#/components/responses/NotFound"},
                "409": _api_error("purge=true on an active device: disable it first."),
                **BEARER_ERRORS,
            },
        },
    }


PURGE_QUERY = {
    "name": "purge",
    "in": "query",
    "required": False,
    "description": "true: delete the (disabled) device with its data; false (the default): disable it.",
    "schema": {"type": "string", "enum": ["true", "false"], "default": "false"},
}
PURGE_PENDING = {
    "description": "Deleted and cut off; the last of its data is removed in the background.",
    "content": {
        JSON: {
            "schema": {
                "type": "object",
                "required": ["status", "description"],
                "properties": {"status": {"const": "deleting"}, "description": {"type": "string"}},
                "additionalProperties": False,
            },
            "example": {
                "status": "deleting",
                "description": "The device is deleted and its credentials are dead; the last of its "
                "data is being removed in the background.",
            },
        }
    },
}
ZIP = "application/zip"


SLOT_PATH = {
    "name": "slot",
    "in": "path",
    "required": True,
    "description": "The secret's slot: 1 or 2 (the detail's `secrets` lists them).",
    "schema": {"type": "integer", "minimum": 1, "maximum": 2},
}


def _device_secrets(alias: bool) -> dict[str, Any]:
    return {
        "parameters": [DEVICE_ID_PATH],
        "post": {
            "operationId": "add_device_secret_alias" if alias else "add_device_secret",
            "tags": ["devices"],
            "summary": "Add a second client secret (rotation without downtime)",
            "description": "PAT with devices:write. The new secret is in this answer only "
            "(Cache-Control: no-store), in the free slot; the current secret keeps working until it "
            "is removed or, with `expires_in` (seconds, at most 30 days), until then. Both get "
            "tokens at /token. A body is optional. 409: the device already holds two secrets "
            "(remove one first), or it is disabled (re-authorize it).",
            "security": BEARER,
            "requestBody": {"required": False, "content": {JSON: {"schema": _ref("SecretCreate")}}},
            "responses": {
                "201": _json(
                    _ref("NewSecret"), "The new secret (shown once), its slot and the device's secrets."
                ),
                "404": {"$ref": "#/components/responses/NotFound"},
                "409": _api_error("The device holds two secrets already, or is disabled."),
                **BODY_ERRORS,
                **BEARER_ERRORS,
            },
        },
    }


def _device_secret(alias: bool) -> dict[str, Any]:
    return {
        "parameters": [DEVICE_ID_PATH, SLOT_PATH],
        "delete": {
            "operationId": "remove_device_secret_alias" if alias else "remove_device_secret",
            "tags": ["devices"],
            "summary": "Remove a client secret",
            "description": "PAT with devices:write. The secret stops working at /token, and the access "
            "tokens obtained with it are refused from their next request; the other secret and its "
            "tokens are untouched (and it no longer expires). 409: it is the device's only secret "
            "(re-authorize replaces it). 404: the slot holds none.",
            "security": BEARER,
            "responses": {
                "204": {"description": "Removed."},
                "404": {"$ref": "#/components/responses/NotFound"},
                "409": _api_error("The device's only secret: a device keeps one."),
                **BEARER_ERRORS,
            },
        },
    }


def _device_events(alias: bool) -> dict[str, Any]:
    return {
        "parameters": [DEVICE_ID_PATH],
        "get": {
            "operationId": "list_device_events_alias" if alias else "list_device_events",
            "tags": ["devices"],
            "summary": "The audit trail of a device",
            "security": BEARER,
            "parameters": query_parameters(PageForm),
            "responses": {
                "200": _json(_ref("EventList"), "One keyset page of events, by id."),
                "400": {"$ref": "#/components/responses/BadRequest"},
                "404": {"$ref": "#/components/responses/NotFound"},
                **BEARER_ERRORS,
            },
        },
    }


def _time_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description + " Epoch milliseconds or RFC 3339 with an offset.",
        "schema": {"type": "string", "examples": ["1641969206696", "2022-01-12T06:33:26Z"]},
    }


SAMPLE_QUERY = [
    {"name": "metric_id", "in": "query", "required": True, "schema": ID},
    _time_parameter("start_date_gt", "Only samples that start after this time."),
    _time_parameter("start_date_gte", "Only samples that start at or after this time."),
    _time_parameter("end_date_lt", "Only samples that end before this time."),
    _time_parameter("end_date_lte", "Only samples that end at or before this time."),
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
    {"name": "sort_order", "in": "query", "schema": {"enum": ["asc", "desc"], "default": "asc"}},
    {
        "name": "cursor",
        "in": "query",
        "description": "next_cursor of the previous page (opaque, exact).",
        "schema": {"type": "string"},
    },
]
SAMPLES_SCOPE = "PAT with samples:{0}, or the device's own token (scope `device`) for its own metrics."


def _metric_by_id(alias: bool) -> dict[str, Any]:
    suffix = " (alias of /api/v1/metric/{metric_id})" if alias else ""
    path = {"name": "metric_id", "in": "path", "required": True, "schema": ID}
    return {
        "parameters": [path],
        "get": {
            "operationId": "get_metric_alias" if alias else "get_metric",
            "tags": ["samples"],
            "summary": "Retrieve a metric, with its latest sample and figures" + suffix,
            "description": SAMPLES_SCOPE.format("read")
            + " avg_today ... avg_last_year follow the owner's time zone (GET /api/v1/account): sums"
            " for a cumulative type (steps), averages for a discrete one (heart rate).",
            "security": BEARER,
            "responses": {
                "200": _json(_ref("MetricDetail"), "The metric."),
                "404": {"$ref": "#/components/responses/NotFound"},
                **BEARER_ERRORS,
            },
        },
        "delete": {
            "operationId": "delete_metric_alias" if alias else "delete_metric",
            "tags": ["samples"],
            "summary": "Delete a metric and its samples" + suffix,
            "description": SAMPLES_SCOPE.format("write")
            + " Gone at once; its samples are removed in batches (flask maintenance finishes).",
            "security": BEARER,
            "responses": {
                "204": {"description": "Deleted."},
                "404": {"$ref": "#/components/responses/NotFound"},
                **BEARER_ERRORS,
            },
        },
    }


def _samples_collection(alias: bool) -> dict[str, Any]:
    suffix = " (alias of /api/v1/quantity-samples)" if alias else ""
    return {
        "post": {
            "operationId": "submit_samples_alias" if alias else "submit_samples",
            "tags": ["samples"],
            "summary": "Submit one sample, or a batch of up to 1,000" + suffix,
            "description": SAMPLES_SCOPE.format("write")
            + " Idempotent by (metric_id, client_sample_id), else (metric_id, start_date, end_date);"
            " a higher client_sample_version replaces. One object: 201 with the stored sample"
            " (duplicate: true when it was there already). A batch: 200 with counts; bad items are"
            " listed in rejected and change nothing. Body up to 1 MiB.",
            "security": BEARER,
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"oneOf": [_ref("SampleIn"), _ref("SampleBatch")]}}},
            },
            "responses": {
                "200": _json(_ref("SampleBatchResult"), "What the batch did."),
                "201": _json(_ref("SampleView"), "The stored sample."),
                "404": {"$ref": "#/components/responses/NotFound"},
                "409": {"$ref": "#/components/responses/Conflict"},
                "429": {"$ref": "#/components/responses/TooManyRequests"},
                **BODY_ERRORS,
                **BEARER_ERRORS,
            },
        },
        "get": {
            "operationId": "list_samples_alias" if alias else "list_samples",
            "tags": ["samples"],
            "summary": "A metric's samples in (start_date, id) order" + suffix,
            "description": SAMPLES_SCOPE.format("read"),
            "security": BEARER,
            "parameters": SAMPLE_QUERY,
            "responses": {
                "200": _json(_ref("SampleList"), "One page of samples."),
                "400": {"$ref": "#/components/responses/BadRequest"},
                "404": {"$ref": "#/components/responses/NotFound"},
                **BEARER_ERRORS,
            },
        },
    }


def _sample_by_uuid(alias: bool) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": "sample_uuid",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "maxLength": 36},
            }
        ],
        "delete": {
            "operationId": "delete_sample_alias" if alias else "delete_sample",
            "tags": ["samples"],
            "summary": "Delete one sample",
            "description": SAMPLES_SCOPE.format("write"),
            "security": BEARER,
            "responses": {
                "204": {"description": "Deleted."},
                "404": {"$ref": "#/components/responses/NotFound"},
                **BEARER_ERRORS,
            },
        },
    }


def samples_paths() -> dict[str, Any]:
    """Metrics and quantity samples (docs/samples.md)."""
    return {
        "/api/v1/metrics": {
            "post": {
                "operationId": "create_metric",
                "tags": ["samples"],
                "summary": "Register a metric on one of your devices",
                "description": SAMPLES_SCOPE.format("write")
                + " sample_type: a HealthKit quantity type (short or HKQuantityTypeIdentifier... form);"
                " quantity_type: a unit that fits it (the error names the ones that do).",
                "security": BEARER,
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("MetricCreate")}}},
                "responses": {
                    "201": _json(_ref("MetricView"), "The metric."),
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": {"$ref": "#/components/responses/Conflict"},
                    **BODY_ERRORS,
                    **BEARER_ERRORS,
                },
            },
            "get": {
                "operationId": "list_metrics",
                "tags": ["samples"],
                "summary": "List your metrics",
                "description": SAMPLES_SCOPE.format("read")
                + " Keyset pages by id: pass next_id back as offset.",
                "security": BEARER,
                "parameters": query_parameters(ListMetricsForm),
                "responses": {
                    "200": _json(_ref("MetricList"), "One page of metrics."),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    **BEARER_ERRORS,
                },
            },
        },
        "/api/v1/metric/{metric_id}": _metric_by_id(alias=False),
        "/api/v1/metrics/{metric_id}": _metric_by_id(alias=True),
        "/api/v1/quantity-samples": _samples_collection(alias=False),
        "/api/v1/samples": _samples_collection(alias=True),
        "/api/v1/quantity-sample/{sample_uuid}": _sample_by_uuid(alias=False),
        "/api/v1/quantity-samples/{sample_uuid}": _sample_by_uuid(alias=True),
        "/api/v1/quantity-sample-calculations": {
            "get": {
                "operationId": "calculate",
                "tags": ["samples"],
                "summary": "A function of samples per local hour, day, week, month or year",
                "description": SAMPLES_SCOPE.format("read")
                + " Every local bucket overlapping [start_gte, finish_lte] is answered whole (partial:"
                " true when the range cuts it; only its samples in the range count), empty ones with"
                " value null and count 0; is_null samples never count. latest: the value of the sample"
                " with the greatest start_date (ties: the latest received_time). With sample_type"
                " instead of metric_id: all your metrics of that type on devices not in test mode; a"
                " cumulative type counts one device per 15 minutes (your order of data sources, else"
                " the device with most samples there), a discrete one pools them."
                f" At most {calculations.MAX_BUCKETS:,} buckets.",
                "security": BEARER,
                "parameters": CALCULATION_QUERY,
                "responses": {
                    "200": _json(_ref("CalculationResult"), "The buckets."),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    **BEARER_ERRORS,
                },
            }
        },
    }


def _choice_schema(choices: dict[int, str]) -> dict[str, Any]:
    return {
        "oneOf": [
            {"type": "integer", "enum": list(choices)},
            {"type": "string", "enum": list(choices.values())},
        ]
    }


TIME_PARAMETER = {"type": "string", "examples": ["2024-05-01T00:00:00+02:00", "1714514400000"]}
CALCULATION_QUERY: list[dict[str, Any]] = [
    {
        "name": "metric_id",
        "in": "query",
        "description": "One of your metrics (or give sample_type).",
        "schema": ID,
    },
    {
        "name": "sample_type",
        "in": "query",
        "description": "A HealthKit quantity type: all your metrics of it, across devices (or give metric_id).",
        "schema": {"type": "string", "examples": ["stepCount", "heartRate"]},
    },
    {
        "name": "quantity_type",
        "in": "query",
        "description": "With sample_type: the unit of the metrics to count (default: the one most use).",
        "schema": {"type": "string"},
    },
    {
        "name": "function",
        "in": "query",
        "required": True,
        "description": "1 average, 2 sum, 3 minimum, 4 maximum, 5 count, 6 latest (or the name).",
        "schema": _choice_schema(calculations.FUNCTIONS),
    },
    {
        "name": "frequency",
        "in": "query",
        "required": True,
        "description": "1 day, 2 week (ISO, Monday first), 3 month, 4 year, 5 hour (or the name).",
        "schema": _choice_schema(calculations.FREQUENCIES),
    },
    {
        "name": "start_gte",
        "in": "query",
        "required": True,
        "description": "Samples whose start_date is at or after: RFC 3339 with an offset, or epoch ms.",
        "schema": TIME_PARAMETER,
    },
    {
        "name": "finish_lte",
        "in": "query",
        "required": True,
        "description": "... and at or before (inclusive).",
        "schema": TIME_PARAMETER,
    },
    {
        "name": "time_zone",
        "in": "query",
        "description": "An IANA time zone for the buckets; default yours (GET /api/v1/account).",
        "schema": {"type": "string", "examples": ["Europe/Berlin", "Asia/Kathmandu"]},
    },
]


def account_paths() -> dict[str, Any]:
    """The person's own record, and generated samples for test-mode devices."""
    return {
        "/api/v1/account": {
            "get": {
                "operationId": "get_account",
                "tags": ["account"],
                "summary": "The person your token acts for, with their time zone",
                "description": "Any token of the person (a PAT of any scope). A device's token: 403.",
                "security": BEARER,
                "responses": {"200": _json(_ref("AccountView"), "The account."), **BEARER_ERRORS},
            },
            "patch": {
                "operationId": "update_account",
                "tags": ["account"],
                "summary": "Set your time zone",
                "description": "PAT with devices:write. time_zone: an IANA name (matched without regard "
                "to case, stored as IANA spells it); the days, weeks, months and years of figures and "
                "calculations follow it. A name that is none: 400 with the closest ones.",
                "security": BEARER,
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("AccountUpdate")}}},
                "responses": {
                    "200": _json(_ref("AccountView"), "The account."),
                    **BODY_ERRORS,
                    **BEARER_ERRORS,
                },
            },
        },
        "/api/v1/account/export": {
            "get": {
                "operationId": "export_account",
                "tags": ["account"],
                "summary": "Everything of your account, as one ZIP",
                "description": "A personal access token with both devices:read and samples:read "
                "(either alone, or an app's token: 403). "
                "A ZIP streamed as it is made: README.txt, account.json, devices.json, metrics.json, "
                "samples/<metric id>.csv (the fields of GET /api/v1/quantity-samples as columns, "
                "values as it writes them) and .ndjson, events.ndjson, account_events.ndjson, "
                "grants.json, applications.json, source_priorities.json, "
                "personal_access_tokens.json, sessions.json, manifest.json. No secret, token digest "
                "or session key. Content-Disposition: attachment; filename=bioweb-export-<date>.zip; "
                "Cache-Control: no-store. 10 an hour per person (429).",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {
                        "description": "The ZIP archive.",
                        "content": {
                            ZIP: {
                                "schema": {"description": "A ZIP archive (binary)."},
                                "example": "(binary ZIP)",
                            }
                        },
                    },
                    "429": {"$ref": "#/components/responses/TooManyRequests"},
                    **BEARER_ERRORS,
                },
            },
        },
        "/api/v1/metric-operations/simulators": {
            "post": {
                "operationId": "simulate_samples",
                "tags": ["samples"],
                "summary": "Fill a test-mode device's metric with generated samples",
                "description": SAMPLES_SCOPE.format("write")
                + " Plausible data for the metric's type (heart rate with a day/night rhythm every 5"
                " minutes, steps in walks, body mass drifting, ...) over the last `days` days, in the"
                " owner's time zone. Deterministic, with client_sample_ids sim-<metric>-<epoch ms>:"
                " a second run stores nothing twice. Only for test-mode devices.",
                "security": BEARER,
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("SimulatorRequest")}}},
                "responses": {
                    "201": _json(_ref("SimulationResult"), "What was generated and stored."),
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": _api_error("The metric's device is live (not test mode) or disabled."),
                    **BODY_ERRORS,
                    **BEARER_ERRORS,
                },
            },
        },
    }


PAT_ONLY = (
    " A personal access token only: an app's access token (from the authorization-code flow) gets "
    "403 insufficient_scope, whatever its scopes."
)
APPLICATION_ID_PATH = {
    "name": "application_id",
    "in": "path",
    "required": True,
    "description": "The id of one of your applications.",
    "schema": ID,
}
GRANT_ID_PATH = {
    "name": "grant_id",
    "in": "path",
    "required": True,
    "description": "The id of one of your grants (an authorized app), from GET /api/v1/account/grants.",
    "schema": ID,
}
NOT_FOUND = {"$ref": "#/components/responses/NotFound"}


def applications_paths() -> dict[str, Any]:
    """Applications a person registered (OAuth clients of the authorization-code flow) and the
    apps they authorized (grants)."""
    shown_once = "Cache-Control: no-store. The client secret shows in this answer only."
    return {
        "/api/v1/applications": {
            "get": {
                "operationId": "list_applications",
                "tags": ["applications"],
                "summary": "List your applications",
                "description": "PAT with devices:read." + PAT_ONLY,
                "security": BEARER,
                "responses": {
                    "200": _json(_ref("ApplicationList"), "Every application you registered."),
                    **BEARER_ERRORS,
                },
            },
            "post": {
                "operationId": "create_application",
                "tags": ["applications"],
                "summary": "Register an application",
                "description": "PAT with devices:write." + PAT_ONLY + " A confidential application gets a "
                "client secret (bcs_...), a public one (a native or browser app) none: it must use "
                "PKCE. Redirect URIs: https URLs, loopback http://127.0.0.1 or http://[::1] (any port "
                "at sign-in, RFC 8252 7.3), or a private-use scheme that is a reverse domain name "
                "(com.example.app:/callback); no fragments, not localhost, at most 10. " + shown_once,
                "security": BEARER,
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("ApplicationCreate")}}},
                "responses": {
                    "201": _json(_ref("ApplicationCredentials"), "Registered; its secret, shown once."),
                    **BODY_ERRORS,
                    **BEARER_ERRORS,
                },
            },
        },
        "/api/v1/applications/{application_id}": {
            "parameters": [APPLICATION_ID_PATH],
            "get": {
                "operationId": "get_application",
                "tags": ["applications"],
                "summary": "Retrieve one of your applications",
                "description": "PAT with devices:read." + PAT_ONLY + " Another person's: 404.",
                "security": BEARER,
                "responses": {
                    "200": _json(_ref("ApplicationView"), "The application (never its secret)."),
                    "404": NOT_FOUND,
                    **BEARER_ERRORS,
                },
            },
            "patch": {
                "operationId": "update_application",
                "tags": ["applications"],
                "summary": "Change an application's name, homepage or redirect URIs",
                "description": "PAT with devices:write." + PAT_ONLY + " What the body names changes; "
                'omitted or null stays; "homepage_url": "" removes the homepage. An empty body: 400.',
                "security": BEARER,
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("ApplicationUpdate")}}},
                "responses": {
                    "200": _json(_ref("ApplicationView"), "The application, changed."),
                    "404": NOT_FOUND,
                    **BODY_ERRORS,
                    **BEARER_ERRORS,
                },
            },
            "delete": {
                "operationId": "delete_application",
                "tags": ["applications"],
                "summary": "Delete an application",
                "description": "PAT with devices:write." + PAT_ONLY + " Every grant on it ends: the "
                "people who authorized it are signed out of it, its tokens refused from their next request.",
                "security": BEARER,
                "responses": {"204": {"description": "Deleted."}, "404": NOT_FOUND, **BEARER_ERRORS},
            },
        },
        "/api/v1/applications/{application_id}/secret": {
            "parameters": [APPLICATION_ID_PATH],
            "post": {
                "operationId": "rotate_application_secret",
                "tags": ["applications"],
                "summary": "Rotate an application's client secret",
                "description": "PAT with devices:write." + PAT_ONLY + " No body. The old secret stops "
                "working and every grant on the application ends (people authorize it again). A "
                "public application has no secret: 400. " + shown_once,
                "security": BEARER,
                "responses": {
                    "200": _json(
                        _ref("ApplicationCredentials"), "The application with its new secret, shown once."
                    ),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "404": NOT_FOUND,
                    **BEARER_ERRORS,
                },
            },
        },
        "/api/v1/account/grants": {
            "get": {
                "operationId": "list_grants",
                "tags": ["applications"],
                "summary": "The apps you authorized to act for you",
                "description": "PAT with devices:read." + PAT_ONLY + " Applications and your devices "
                "you authorized, with the scopes granted and when each last used them; the most "
                "recently authorized first.",
                "security": BEARER,
                "responses": {"200": _json(_ref("AuthorizedAppList"), "Your grants."), **BEARER_ERRORS},
            },
        },
        "/api/v1/account/grants/{grant_id}": {
            "parameters": [GRANT_ID_PATH],
            "delete": {
                "operationId": "revoke_grant",
                "tags": ["applications"],
                "summary": "Revoke an authorized app",
                "description": "PAT with devices:write." + PAT_ONLY + " The app's tokens for you are "
                "refused from their next request; it has to ask you again. Another person's grant: 404.",
                "security": BEARER,
                "responses": {"204": {"description": "Revoked."}, "404": NOT_FOUND, **BEARER_ERRORS},
            },
        },
    }


def document(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document, with `base_url` as its server and an example for every body
    and path parameter (api/examples.py: built from the schemas, and tested against them)."""
    return add_examples(_document_without_examples(base_url))


def _document_without_examples(base_url: str) -> dict[str, Any]:
    credentials_response = _json(_ref("Credentials"), "The device's client credentials (shown once).")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bioweb",
            "version": "1",
            "summary": "Device registry and OAuth 2.0 authorization server of a biometrics cloud.",
            "description": (
                "Every error under /api/v1 is JSON: "
                '{"error": code, "error_description": sentence, "fields": {...}} '
                f"(fields for validation errors only). Ids are integers from {ID['minimum']} to {ID['maximum']}."
                "\n\nTo try a call on the reference page (/api/docs): **Authorize** with a personal access "
                "token (bcp_..., from API tokens in the dashboard or `flask tokens create`) or a device's "
                "access token (bcd_..., from POST /token), then **Try it out** on an operation. The "
                "requests go to this server, as you."
            ),
        },
        "servers": [{"url": base_url}],
        "tags": [
            {"name": "devices", "description": "The published device endpoints (bearer token)."},
            {"name": "samples", "description": "Metrics and their quantity samples (bearer token)."},
            {"name": "account", "description": "The person a token acts for (bearer token)."},
            {
                "name": "applications",
                "description": "OAuth clients you registered, and the apps you authorized (personal access token).",
            },
            {"name": "oauth", "description": "OAuth 2.0 for devices: RFC 6749, 7009, 7662, 8414."},
            {"name": "service", "description": "Health and this document."},
        ],
        "paths": {
            "/api/v1/devices": {
                "post": {
                    "operationId": "create_device",
                    "tags": ["devices"],
                    "summary": "Register a device",
                    "description": "PAT with devices:write. The response is the one time the secret shows. "
                    "The account's email address must be confirmed (the link mailed at sign-up).",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": _ref("DeviceCreate")}},
                    },
                    "responses": {
                        "200": credentials_response,
                        **BODY_ERRORS,
                        **BEARER_ERRORS,
                        "403": _api_error(
                            'The token lacks the scope (WWW-Authenticate: Bearer error="insufficient_scope"), '
                            "or the account's email address is not confirmed yet (error forbidden)."
                        ),
                    },
                },
                "get": {
                    "operationId": "list_devices",
                    "tags": ["devices"],
                    "summary": "List your devices",
                    "description": "PAT with devices:read. Keyset pages: pass next_id back as offset. "
                    "Names, codes and products sort without regard to case (devices without a name "
                    "first). Any other query parameter: 400 naming the known ones.",
                    "security": BEARER,
                    "parameters": query_parameters(ListDevicesForm),
                    "responses": {
                        "200": _json(_ref("DeviceList"), "One page of devices."),
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        **BEARER_ERRORS,
                    },
                },
            },
            "/api/v1/device/{device_id}": _device_by_id(alias=False),
            "/api/v1/devices/{device_id}": _device_by_id(alias=True),
            "/api/v1/device/{device_id}/events": _device_events(alias=False),
            "/api/v1/devices/{device_id}/events": _device_events(alias=True),
            "/api/v1/device/{device_id}/secrets": _device_secrets(alias=False),
            "/api/v1/devices/{device_id}/secrets": _device_secrets(alias=True),
            "/api/v1/device/{device_id}/secrets/{slot}": _device_secret(alias=False),
            "/api/v1/devices/{device_id}/secrets/{slot}": _device_secret(alias=True),
            "/api/v1/data-submission/device-authorize": {
                "post": {
                    "operationId": "authorize_device",
                    "tags": ["devices"],
                    "summary": "Re-authorize a device",
                    "description": (
                        "PAT with devices:write. The device is active again with a new secret and the "
                        "same client id; the old secret and every older token stay dead."
                    ),
                    "security": BEARER,
                    "requestBody": {"required": True, "content": {JSON: {"schema": _ref("DeviceRef")}}},
                    "responses": {
                        "200": credentials_response,
                        "404": {"$ref": "#/components/responses/NotFound"},
                        **BODY_ERRORS,
                        **BEARER_ERRORS,
                    },
                },
                "delete": {
                    "operationId": "disable_device_by_query",
                    "tags": ["devices"],
                    "summary": "Disable a device (by query parameter)",
                    "security": BEARER,
                    "parameters": query_parameters(DeviceRefForm),
                    "responses": {
                        "204": {"description": "Disabled."},
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "404": {"$ref": "#/components/responses/NotFound"},
                        **BEARER_ERRORS,
                    },
                },
            },
            **samples_paths(),
            **account_paths(),
            **applications_paths(),
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi_document",
                    "tags": ["service"],
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": _json({"type": "object"}, "The OpenAPI 3.1 document."),
                        "405": {"$ref": "#/components/responses/MethodNotAllowed"},
                    },
                },
            },
            "/token": {
                "post": {
                    "operationId": "issue_token",
                    "tags": ["oauth"],
                    "summary": "Token endpoint (RFC 6749): client credentials (no refresh token), authorization "
                    "code with PKCE, and refresh (rotating)",
                    "description": "Devices: client_credentials. Apps: send the person to GET /authorize (a "
                    "dashboard page: response_type=code, client_id, redirect_uri, scope, state, "
                    "code_challenge with code_challenge_method=S256); the answer arrives at the redirect URI "
                    "(or is shown on /appauth/code); trade the code here within 10 minutes, once. "
                    "Parameters in the URL are refused: send them as form fields.",
                    "security": CLIENT,
                    "requestBody": {"required": True, "content": {FORM: {"schema": _ref("TokenRequest")}}},
                    "responses": {
                        "200": _json(
                            _ref("TokenResponse"),
                            "A signed access token (and, for the refresh grant, a new refresh token).",
                        ),
                        **OAUTH_ERRORS,
                    },
                },
            },
            "/token/revoke": {
                "post": {
                    "operationId": "revoke_token",
                    "tags": ["oauth"],
                    "summary": "Revocation (RFC 7009): an access token ends every access token of the device; "
                    "a refresh token ends its family",
                    "security": CLIENT,
                    "requestBody": {
                        "required": True,
                        "content": {FORM: {"schema": _ref("TokenActionRequest")}},
                    },
                    "responses": {
                        "200": _json(
                            {"type": "object"},
                            "Revoked; or the token was unknown or another client's, and nothing changed (RFC 7009).",
                        ),
                        **OAUTH_ERRORS,
                    },
                },
            },
            "/token/introspect": {
                "post": {
                    "operationId": "introspect_token",
                    "tags": ["oauth"],
                    "summary": "Introspection (RFC 7662) of the device's own tokens",
                    "security": CLIENT,
                    "requestBody": {
                        "required": True,
                        "content": {FORM: {"schema": _ref("TokenActionRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("Introspection"), "Whether the token is active, and about it."),
                        **OAUTH_ERRORS,
                    },
                },
            },
            "/.well-known/oauth-authorization-server": {
                "get": {
                    "operationId": "oauth_metadata",
                    "tags": ["oauth"],
                    "summary": "Authorization server metadata (RFC 8414)",
                    "security": [],
                    "responses": {
                        "200": _json(_ref("Metadata"), "The metadata."),
                        "405": {"$ref": "#/components/responses/MethodNotAllowed"},
                    },
                },
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "tags": ["service"],
                    "summary": "Health: does the database answer?",
                    "security": [],
                    "responses": {
                        "200": _json(_ref("Health"), "Healthy."),
                        "405": {"$ref": "#/components/responses/MethodNotAllowed"},
                        "503": {"$ref": "#/components/responses/Unavailable"},
                    },
                },
            },
        },
        "components": {
            "schemas": {**derived_schemas(), **SCHEMAS},
            "responses": RESPONSES,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal access token (bcp_...) or a device access token (bcd_...).",
                },
                "clientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The client_id and client_secret of a device or a confidential "
                    "application (client_secret_basic).",
                },
                "oauth2": {
                    "type": "oauth2",
                    "description": "Apps acting for a person: the authorization-code flow with PKCE "
                    "(S256 only; public clients must use it). /authorize is a dashboard page: the person "
                    "signs in and allows the app; the code goes to a registered redirect URI (a device's "
                    "is /appauth/code, a page showing it). Codes work once, for 10 minutes; refresh "
                    "tokens rotate. The scopes are a personal access token's; 'all' asks for all four.",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": f"{base_url}/authorize",
                            "tokenUrl": f"{base_url}/token",
                            "refreshUrl": f"{base_url}/token",
                            "scopes": dict(grants.SCOPE_WORDS),
                        }
                    },
                },
            },
        },
    }


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(document(current_app.config["BIOWEB_BASE_URL"]))


def api_docs() -> Response:
    """The reference page: static HTML whose script fetches /api/v1/openapi.json and renders it."""
    return send_from_directory(str(current_app.static_folder), "docs/index.html", max_age=0)


def _register_docs_page(state: BlueprintSetupState) -> None:
    # /api/docs lies outside the blueprint's /api/v1 prefix, so it is an app rule, added when
    # the API blueprint is registered (Blueprint.record_once), wherever that is.
    state.app.add_url_rule("/api/docs", endpoint="api_docs", view_func=api_docs, methods=["GET"])


bp.record_once(_register_docs_page)
