"""Every route of the app, walked with hostile numbers (issue 14, point 3).

One test per rule and method of `app.url_map` (so a route added later is walked too), on SQLite
and PostgreSQL, each on a fresh database with a person, their full-scope personal access
token, a live device with a metric and a sample, a test-mode device with a metric (for the
simulator) and a spare token. Each hostile value goes, one place at a time:

- into every path segment (an `<int:...>` segment must answer 404);
- into every query parameter the route knows: those its code reads (recorded through the
  request's parameter class on a probe request), those of the links and chart URLs to it on
  the dashboard's pages, and for /api/v1 those of the OpenAPI document;
- into every field of the route's form (found on the dashboard's pages, sent with a fresh
  nonce and CSRF token) or of its JSON or form body (from the OpenAPI document), the other
  fields valid, as strings and, in JSON, as numbers;
- and all at once, into every name this walk knows, for each value.

Dashboard routes are walked signed in (session), and again signed out where a signed-out
person may use them (sign-up, log-in, ...); API routes with the token in a bearer header;
the OAuth endpoints with the device's client credentials in the body. No answer may be a
5xx; a 4xx is in the JSON error shape under the JSON URL space (and from the pages' JSON
routes), an HTML page elsewhere; an integer of the API (by the OpenAPI document) is accepted
only in ASCII digits (a JSON number in a JSON body) and in its range; a signed-in walk never
lands on the login page.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from flask import Flask, Request
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule
from wtforms import IntegerField
from wtforms.fields.core import UnboundField

from bioweb import digits_up_to
from bioweb import forms as bioweb_forms
from bioweb.errors import JSON_PATHS, JSON_PREFIXES
from bioweb.extensions import db
from bioweb.forms import parse_int
from bioweb.models import MAX_ID, Device
from bioweb.services import tokens
from bioweb.views.helpers import MAX_NONCES
from tests.helpers import PASSWORD, bearer, log_in, make_app, make_device, make_pat, make_user
from tests.test_hostile import json_error_problem

HOSTILE = [
    "999999999999999999999999999999",
    "-1",
    "0",
    str(2**31),
    str(2**63),
    "١",  # ARABIC-INDIC DIGIT ONE: int("١") == 1
    "1_0",
    " 1",
    "1 ",
    "+1",
    "0x10",
    "1e3",
    "",
    "Grüße ☃",
]
# In JSON bodies the numeric ones go as JSON numbers too.
JSON_NUMBERS = [10**30, -1, 0, 2**31, 2**63]
OAUTH_PATHS = ("/token", "/token/revoke", "/token/introspect")
METHODS_SKIPPED = {"HEAD", "OPTIONS"}


def _all_routes() -> list[tuple[str, str]]:
    app = make_app("sqlite://")
    return sorted(
        (rule.rule, method) for rule in app.url_map.iter_rules() for method in rule.methods - METHODS_SKIPPED
    )


ROUTES = _all_routes()


# --- Recording which parameters a route's code reads -------------------------------------------------

PROBE_QUERY, PROBE_FORM = "_probe_query", "_probe_form"


class Reads:
    on = False
    args: set[str] = set()
    form: set[str] = set()

    @classmethod
    def start(cls) -> None:
        cls.on, cls.args, cls.form = True, set(), set()

    @classmethod
    def stop(cls) -> tuple[set[str], set[str]]:
        cls.on = False
        return cls.args - {PROBE_QUERY}, cls.form - {PROBE_FORM}


class RecordingMultiDict(ImmutableMultiDict):
    """request.args and request.form during a probe: note each name looked up. The probe
    request marks its query and its form with a name of their own, so the two are told apart."""

    def _note(self, key: Any) -> None:
        if Reads.on and isinstance(key, str):
            if dict.__contains__(self, PROBE_QUERY):
                Reads.args.add(key)
            elif dict.__contains__(self, PROBE_FORM):
                Reads.form.add(key)

    def __getitem__(self, key: Any) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return super().__contains__(key)

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:  # noqa: A002 (MultiDict's name)
        self._note(key)
        return super().get(key, default=default, type=type)

    def getlist(self, key: Any, type: Any = None) -> list[Any]:  # noqa: A002
        self._note(key)
        return super().getlist(key, type=type)


class RecordingRequest(Request):
    parameter_storage_class = RecordingMultiDict


# --- What the dashboard's pages link to and post -------------------------------------------------------


@dataclass
class Form:
    page: str  # the page it is on (fetched again for a fresh nonce before each post)
    action: str
    method: str
    values: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)


class PageParser(HTMLParser):
    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.urls: list[str] = []
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("href", "data-url", "src"):
            if a.get(key, "").startswith("/"):
                self.urls.append(a[key])
        if tag == "form":
            self._form = Form(self.page, a.get("action") or self.page, (a.get("method") or "get").upper())
            return
        form, name = self._form, a.get("name")
        if form is None:
            return
        if tag == "option" and self._select is not None:
            if "selected" in a or self._select not in form.values:
                form.values[self._select] = a.get("value", "")
            return
        if not name or tag not in ("input", "select", "textarea"):
            return
        if name not in form.names:
            form.names.append(name)
        kind = a.get("type", "text").lower()
        if tag == "select":
            self._select = name
        elif kind in ("checkbox", "radio"):
            if "checked" in a:
                form.values.setdefault(name, a.get("value", "on"))
        elif kind not in ("submit", "button", "reset", "image", "file"):
            form.values[name] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "form" and self._form is not None:
            self.forms.append(self._form)
            self._form = None


# --- The world each route is walked in -------------------------------------------------------------------


def _moment(minutes_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


class World:
    """A person with a full-scope token; a live device with a heart-rate metric and a sample (its
    pages have figures and charts); a test-mode device with a metric (for the simulator); a
    spare token (to revoke)."""

    def __init__(self, app: Flask):
        app.request_class = RecordingRequest
        self.app = app
        self.adapter = app.url_map.bind("localhost")
        user = make_user()
        self.pat = make_pat(user)
        self.auth = bearer(self.pat)
        device, self.secret = make_device(user, "Watch6,1")
        self.device_id, self.client_id = device.id, device.client_id
        test_device_id = make_device(user, "iPhone14,5", is_test_mode=True)[0].id
        spare, _ = tokens.create_personal_token(user, "spare")
        api = app.test_client()
        self.metric_id, test_metric_id = (
            self._metric(api, device_id) for device_id in (self.device_id, test_device_id)
        )
        self.sample = {"metric_id": test_metric_id, "start_date": _moment(10), "end_date": _moment(9)}
        sample = api.post(
            "/api/v1/quantity-samples",
            json={**self.sample, "metric_id": self.metric_id, "quantity": 61},
            headers=self.auth,
        )
        assert sample.status_code == 201, sample.text
        self.path_values = {
            "device_id": str(self.device_id),
            "metric_id": str(self.metric_id),
            "token_id": str(spare.id),
            "sample_uuid": sample.get_json()["uuid"],
            "sample_type": "heartRate",
            "direction": "down",
            "filename": "css/bioweb.css",
        }
        # Valid values by name, for the fields beside the hostile one: bodies and empty form inputs.
        # The sign-up email is taken and the current password wrong, so neither form ever succeeds.
        self.valid: dict[str, Any] = {
            "manufacturer": "Apple",
            "device_code": "iPhone1,1",
            "name": "walk",
            "device_id": self.device_id,
            "sample_type": "heartRate",
            "quantity_type": "count/min",
            "time_zone": "UTC",
            "days": 1,
            "email": "ada@example.com",
            "password": PASSWORD,
            "current_password": "not the password at all",
            "new_password": "another long passphrase",
            "first_name": "Eve",
            "last_name": "Example",
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.secret,
            "token": "bca_unknown",
            **self.sample,
        }

    def _metric(self, api: FlaskClient, device_id: int) -> int:
        body = {"device_id": device_id, "sample_type": "heartRate", "quantity_type": "count/min"}
        response = api.post("/api/v1/metrics", json=body, headers=self.auth)
        assert response.status_code == 201, response.text
        return response.get_json()["id"]

    @functools.cached_property
    def openapi(self) -> dict[str, Any]:
        response = self.app.test_client().get("/api/v1/openapi.json")
        assert response.status_code == 200, response.text
        return response.get_json()

    def signed_in(self) -> FlaskClient:
        client = self.app.test_client()
        log_in(client)
        return client

    def signed_out(self) -> FlaskClient:
        return self.app.test_client()


_VARIABLE = re.compile(r"<(?:(?P<conv>[a-z]+)(?:\([^)]*\))?:)?(?P<name>[a-z_]+)>")


def _parse(rule: str) -> Iterator[tuple[str, str]]:
    for match in _VARIABLE.finditer(rule):
        yield match["conv"] or "default", match["name"]


def _build(rule: str, values: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: quote(values[m["name"]], safe="/" if m["conv"] == "path" else ""), rule)


def _answers_json(app: Flask, method: str, path: str) -> bool:
    """Whether a 4xx of `path` is JSON: the JSON URL space, or a page's own JSON route (a path
    that matches no route is the site's HTML 404)."""
    if path in JSON_PATHS or path.startswith(JSON_PREFIXES):
        return True
    try:
        endpoint, _ = app.url_map.bind("localhost").match(path, method=method)
    except HTTPException:
        return False
    return bool(getattr(app.view_functions.get(endpoint), "answers_json", False))


# --- The OpenAPI document: parameters and bodies of /api/v1 and the OAuth endpoints ---------------------


def _deref(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _operation(doc: dict[str, Any], rule: str, method: str) -> dict[str, Any] | None:
    template = _VARIABLE.sub(lambda m: "{" + m["name"] + "}", rule)
    return doc["paths"].get(template, {}).get(method.lower())


def _bodies(doc: dict[str, Any], operation: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(content type, object schema) of each body the operation takes (each of a oneOf)."""
    found = []
    for content_type, media in operation.get("requestBody", {}).get("content", {}).items():
        schema = _deref(doc, media.get("schema", {}))
        for alternative in schema.get("oneOf", [schema]):
            found.append((content_type, _deref(doc, alternative)))
    return found


# --- The walk -----------------------------------------------------------------------------------------------


@dataclass
class Walk:
    world: World
    rule: Rule
    method: str
    problems: list[str] = field(default_factory=list)
    sent: int = 0

    @property
    def app(self) -> Flask:
        return self.world.app

    def path(self, **override: str) -> str:
        values = {
            name: self.world.path_values.get(name, "1" if conv == "int" else "x")
            for conv, name in _parse(self.rule.rule)
        }
        return _build(self.rule.rule, {**values, **override})

    def check(self, label: str, response: Any, path: str, expect: int | None = None) -> None:
        self.sent += 1
        status = response.status_code
        where = f"{self.method} {path[:90]} [{label}]"
        body = response.get_data()[:200]
        if status >= 500:
            self.problems.append(f"{where}: {status} {body!r}")
        elif expect is not None and status != expect:
            self.problems.append(f"{where}: {status}, expected {expect}: {body!r}")
        elif 400 <= status < 500:
            plain = urlsplit(path).path
            if plain.startswith("/api/v1/") or plain in OAUTH_PATHS:
                problem = json_error_problem(response, oauth=plain in OAUTH_PATHS)
                if problem:
                    self.problems.append(f"{where}: {problem}: {body!r}")
            elif _answers_json(self.app, self.method, plain):
                if response.mimetype != "application/json" or b'"error"' not in response.get_data():
                    self.problems.append(f"{where}: {status} not a JSON error: {body!r}")
            elif response.mimetype != "text/html":
                self.problems.append(f"{where}: {status} with {response.mimetype}: {body!r}")
        response.close()


def _login_redirect(response: Any) -> bool:
    return response.status_code in (301, 302, 303) and urlsplit(response.location or "").path == "/login"


class Session:
    """A client for one walk: signed in (re-signed in when something ended the session, such as
    POST /logout, and the request sent again), or signed out (a fresh client per request)."""

    def __init__(self, world: World, signed_in: bool):
        self.world, self.is_signed_in = world, signed_in
        self.client = world.signed_in() if signed_in else world.signed_out()
        self.bounced: list[str] = []  # signed-in requests sent to the login page even when sent again
        self.last_status: int | None = None  # of the last answer sent back

    def send(
        self,
        method: str,
        path: str,
        prepare: Callable[[FlaskClient], dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        for attempt in range(2):
            client = self.client if self.is_signed_in else self.world.signed_out()
            extra = prepare(client) if prepare else {}
            response = client.open(path, method=method, **kwargs, **extra)
            self.last_status = response.status_code
            if not (self.is_signed_in and _login_redirect(response)):
                return response
            if attempt:
                self.bounced.append(f"{method} {path}")
                return response
            response.close()
            self.client = self.world.signed_in()
        raise AssertionError("unreachable")


Crawled = tuple[dict[str, list[Form]], dict[str, dict[str, str]]]
# A crawl per database kind and signed-in state, per process. Every world is built the same way
# on an empty database (ids from 1 on both), so its pages link and post the same things; only
# its random values (a sample's uuid, the client id and secret) differ, and they are swapped
# for the new world's. The crawl renders every page of the dashboard: once per route and
# database, it was most of this file's time.
_CRAWLS: dict[tuple[str, bool], tuple[Crawled, dict[str, str]]] = {}


def _identity(world: World) -> dict[str, str]:
    """The world's random values, which pages may carry (links, form actions, fields)."""
    return {"uuid": world.path_values["sample_uuid"], "client_id": world.client_id, "secret": world.secret}


def _crawl(world: World, session: Session) -> Crawled:
    """_crawl_pages, once per database kind and signed-in state, with this world's random values."""
    key = (world.app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0], session.is_signed_in)
    if key not in _CRAWLS:
        _CRAWLS[key] = (_crawl_pages(world, session), _identity(world))
        return _CRAWLS[key][0]
    (forms, queries), then = _CRAWLS[key]
    now = _identity(world)

    def swap(text: str) -> str:
        for name, old in then.items():
            text = text.replace(old, now[name])
        return text

    swapped_forms = {
        endpoint: [
            Form(
                swap(f.page),
                swap(f.action),
                f.method,
                {k: swap(v) for k, v in f.values.items()},
                list(f.names),
            )
            for f in found
        ]
        for endpoint, found in forms.items()
    }
    swapped_queries = {e: {k: swap(v) for k, v in q.items()} for e, q in queries.items()}
    return swapped_forms, swapped_queries


def _crawl_pages(world: World, session: Session) -> Crawled:
    """The forms posting to each endpoint and, for each endpoint, the query of the links to it,
    from every page a GET route of the dashboard answers (valid path values)."""
    found: dict[str, list[Form]] = {}
    queries: dict[str, dict[str, str]] = {}
    for rule in world.app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.rule.startswith(("/api/", "/static/")):
            continue
        page = Walk(world, rule, "GET").path()
        response = session.send("GET", page)
        if response.status_code != 200 or response.mimetype != "text/html":
            response.close()
            continue
        parser = PageParser(page)
        parser.feed(response.get_data(as_text=True))
        response.close()
        for url in parser.urls:
            parts = urlsplit(url)
            try:
                endpoint, _ = world.adapter.match(parts.path, method="GET")
            except HTTPException:
                continue
            for name, value in parse_qsl(parts.query, keep_blank_values=True):
                queries.setdefault(endpoint, {}).setdefault(name, value)
        for form in parser.forms:
            try:
                endpoint, _ = world.adapter.match(urlsplit(form.action).path, method=form.method)
            except HTTPException:
                continue
            found.setdefault(endpoint, []).append(form)
    return found, queries


def _probe(walk: Walk, session: Session) -> tuple[set[str], set[str]]:
    """The query parameters and form fields the route's code looks up (one request, valid path)."""
    Reads.start()
    try:
        data = {PROBE_FORM: "1"} if walk.method in ("POST", "PUT", "PATCH", "DELETE") else None
        response = session.send(walk.method, walk.path(), query_string={PROBE_QUERY: "1"}, data=data)
        response.close()
    finally:
        args, form = Reads.stop()
    return args, form


def _fresh_form(form: Form) -> Callable[[FlaskClient], dict[str, Any]]:
    """Fetch the form's page again (a fresh nonce and CSRF token, on the client about to post)."""

    def values(client: FlaskClient) -> dict[str, str]:
        response = client.get(form.page)
        parser = PageParser(form.page)
        parser.feed(response.get_data(as_text=True))
        response.close()
        same = [f for f in parser.forms if f.action == form.action and f.method == form.method]
        return dict(same[0].values) if same else dict(form.values)

    return values


def _walk_dashboard(walk: Walk, signed_in: bool) -> None:
    world, method = walk.world, walk.method
    session = Session(world, signed_in)
    endpoint = walk.rule.endpoint
    probe = session.send(method, walk.path())
    usable = not _login_redirect(probe) and probe.status_code != 401
    probe.close()
    if not signed_in and not usable:
        return  # a signed-in person's route: walked signed in
    pages_forms, queries = _crawl(world, session)
    args, fields = _probe(walk, session)
    query_names = sorted(args | set(queries.get(endpoint, {})))
    base_query = dict(queries.get(endpoint, {}))
    own_forms = [f for f in pages_forms.get(endpoint, []) if f.method == method]
    form = own_forms[0] if own_forms else None
    field_names = sorted(fields | set(form.names if form else ()))
    mode = "signed in" if signed_in else "signed out"

    # The form as last fetched, reused by the same client while the posts are refused: a refused
    # post spends nothing, and its values stay good for fewer posts than the MAX_NONCES that
    # re-rendered forms take to push its nonce out of the session. Fetched again after a post
    # is accepted, and on another client. (Fetching it before every post doubled the walk.)
    kept: dict[str, Any] = {"client": None, "values": {}, "uses": 0}

    def fresh_values(client: FlaskClient) -> dict[str, str]:
        assert form is not None
        stale = session.last_status is None or session.last_status < 400 or kept["uses"] >= MAX_NONCES // 2
        if kept["client"] is not client or stale:
            kept.update(client=client, values=_fresh_form(form)(client), uses=0)
        kept["uses"] += 1
        return dict(kept["values"])

    def body_for(client: FlaskClient, name: str | None, value: str | None) -> dict[str, Any]:
        if method == "GET":
            return {}
        data = fresh_values(client) if form else {}
        for key in list(data):
            if data[key] == "" and key in world.valid:
                data[key] = str(world.valid[key])
        if name is not None:
            data[name] = value
        return {"data": data}

    # Path segments.
    for conv, name in _parse(walk.rule.rule):
        for value in HOSTILE:
            path = walk.path(**{name: value})
            response = session.send(method, path, prepare=lambda c: body_for(c, None, None))
            walk.check(
                f"{mode}, path {name}={value!r}", response, path, expect=404 if conv == "int" else None
            )
    path = walk.path()
    # Query parameters, one at a time, the others as the pages' links have them.
    for name in query_names:
        for value in HOSTILE:
            response = session.send(
                method,
                path,
                prepare=lambda c: body_for(c, None, None),
                query_string={**base_query, name: value},
            )
            walk.check(f"{mode}, query {name}={value!r}", response, path)
    # Form fields, one at a time, the others as the page fills them in (or valid).
    if method != "GET":
        for name in field_names:
            for value in HOSTILE:
                response = session.send(
                    method,
                    path,
                    prepare=lambda c, n=name, v=value: body_for(c, n, v),
                    query_string=base_query,
                )
                walk.check(f"{mode}, field {name}={value!r}", response, path)
    # Every name this walk knows, all at once.
    every = set(query_names) | set(field_names) | {n for q in queries.values() for n in q}
    every |= {n for fs in pages_forms.values() for f in fs for n in f.names}
    for value in HOSTILE:
        query = {name: value for name in every}
        response = session.send(
            method,
            path,
            prepare=lambda c, v=value: {"data": {n: v for n in every}} if method != "GET" else {},
            query_string=query,
        )
        walk.check(f"{mode}, every name={value!r}", response, path)
    walk.problems.extend(f"{mode}: sent to the login page: {request}" for request in session.bounced)


def _integer(schema: dict[str, Any]) -> dict[str, Any] | None:
    """`schema` when it is an integer's (or an integer's or null), else None."""
    kind = schema.get("type")
    return schema if kind == "integer" or (isinstance(kind, list) and "integer" in kind) else None


def _valid_integer(value: Any, schema: dict[str, Any]) -> bool:
    """Whether `value` may be accepted for an integer of `schema`: in its range, and in a query
    string or form ASCII digits only (in JSON a number, not a string)."""
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]+", value):
            return False
        value = int(value)
    elif not isinstance(value, int) or isinstance(value, bool):
        return False
    return schema.get("minimum", -(2**63)) <= value <= schema.get("maximum", 2**63 - 1)


def _json_values() -> list[Any]:
    return [*HOSTILE, *JSON_NUMBERS]


def _walk_api(walk: Walk) -> None:
    world, method = walk.world, walk.method
    oauth = walk.rule.rule in OAUTH_PATHS
    client = world.app.test_client()
    headers = {} if oauth else world.auth
    operation = _operation(world.openapi, walk.rule.rule, method)
    if operation is None and walk.rule.rule.startswith("/api/v1/"):
        walk.problems.append(
            f"{method} {walk.rule.rule}: not in the OpenAPI document, so its parameters are unknown here"
        )
        operation = {}
    operation = operation or {}
    bodies = _bodies(world.openapi, operation)

    def baseline(schema: dict[str, Any]) -> dict[str, Any]:
        body = {}
        for name in schema.get("required", []):
            prop = _deref(world.openapi, schema["properties"].get(name, {}))
            if name in world.valid:
                body[name] = world.valid[name]
            elif prop.get("type") == "array":
                body[name] = [dict(world.sample)]
            else:
                body[name] = {"integer": 1, "number": 1, "boolean": False}.get(prop.get("type"), "x")
        return body

    def send(
        label: str,
        path: str,
        expect: int | None = None,
        schema: dict[str, Any] | None = None,
        value: Any = None,
        **kwargs: Any,
    ) -> None:
        response = client.open(path, method=method, headers=headers, **kwargs)
        if schema is not None and response.status_code < 400 and not _valid_integer(value, schema):
            walk.problems.append(
                f"{method} {path} [{label}]: {response.status_code}, a hostile integer accepted"
            )
        walk.check(label, response, path, expect)

    first_body: dict[str, Any] = {}
    if bodies:
        content_type, schema = bodies[0]
        first_body = (
            {"json": baseline(schema)} if content_type == "application/json" else {"data": baseline(schema)}
        )
    # Path segments.
    for conv, name in _parse(walk.rule.rule):
        for value in HOSTILE:
            send(
                f"path {name}={value!r}",
                walk.path(**{name: value}),
                404 if conv == "int" else None,
                **first_body,
            )
    path = walk.path()
    # Query parameters.
    query_params = {
        p["name"]: _deref(world.openapi, p.get("schema", {}))
        for p in (_deref(world.openapi, p) for p in operation.get("parameters", []))
        if p.get("in") == "query"
    }
    query_names = list(query_params)
    for name, param in query_params.items():
        for value in HOSTILE:
            send(
                f"query {name}={value!r}",
                path,
                None,
                _integer(param),
                value,
                query_string={name: value},
                **first_body,
            )
    # Bodies: each property hostile (and each property of an array's items).
    for content_type, schema in bodies:
        base = baseline(schema)
        is_json = content_type == "application/json"
        for name, prop in schema.get("properties", {}).items():
            for value in _json_values() if is_json else HOSTILE:
                body = {**base, name: value}
                kind = _integer(_deref(world.openapi, prop))
                send(
                    f"body {name}={value!r}",
                    path,
                    None,
                    kind,
                    value,
                    **({"json": body} if is_json else {"data": body}),
                )
            items = _deref(world.openapi, _deref(world.openapi, prop).get("items", {}))
            for inner in items.get("properties", {}) if is_json else ():
                for value in _json_values():
                    item = {**world.sample, inner: value}
                    send(f"body {name}[0].{inner}={value!r}", path, json={**base, name: [item]})
    # Every name at once.
    every = set(query_names) | {n for _, s in bodies for n in s.get("properties", {})}
    for value in HOSTILE:
        kwargs: dict[str, Any] = {"query_string": {n: value for n in every}}
        if bodies:
            if bodies[0][0] == "application/json":
                kwargs["json"] = {n: value for n in bodies[0][1].get("properties", {})}
            else:
                kwargs["data"] = {n: value for n in bodies[0][1].get("properties", {})}
        send(f"every name={value!r}", path, **kwargs)


@pytest.mark.parametrize(("rule", "method"), ROUTES, ids=[f"{m} {r}" for r, m in ROUTES])
def test_route_survives_hostile_numbers(app, rule, method):
    world = World(app)
    matches = [r for r in app.url_map.iter_rules() if r.rule == rule and method in r.methods]
    assert matches, f"{method} {rule} is no longer a route"
    walk = Walk(world, matches[0], method)
    if rule.startswith("/api/v1/") or rule in OAUTH_PATHS:
        _walk_api(walk)
    else:
        _walk_dashboard(walk, signed_in=True)
        _walk_dashboard(walk, signed_in=False)
    assert walk.sent, "nothing was sent"
    assert not walk.problems, f"{len(walk.problems)} of {walk.sent} answers wrong:\n" + "\n".join(
        walk.problems[:40]
    )


def test_every_rule_is_walked(app):
    """The walk's routes are the app's (one test each, above): a route added since is walked too."""
    rules = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods - METHODS_SKIPPED}
    assert rules == set(ROUTES)


# --- The reproductions of issue 14, and the pieces -----------------------------------------------------------

BIG = "999999999999999999999999999999"


@pytest.mark.parametrize(
    ("path", "name"),
    [(f"/devices?after={BIG}", "after"), (f"/devices?before={BIG}", "before"), ("/devices?after=١", "after"),
     ("/devices?before=1_0", "before"), ("/devices?after=-1", "after"), ("/devices?after=", "after"),
     (f"/devices/1?events_before={BIG}", "events_before"), ("/devices/1?events_before=%201", "events_before")],
)  # fmt: skip
def test_dashboard_cursors_out_of_range_are_a_400_page_naming_them(web, user, path, name):
    make_device(user)
    response = web.get(path)
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert f"Invalid query parameter {name}: must be a whole number from 0 to 2147483647" in response.text


def test_dashboard_cursors_in_range_still_page(web, user):
    make_device(user)
    assert web.get("/devices?after=0").status_code == 200
    assert web.get("/devices?before=2147483647").status_code == 200
    assert web.get("/devices/1?events_before=0").status_code == 200


@pytest.mark.parametrize("value", ["١", "1_0", " 1", "1 ", "+1", "0x1", "1e0", "", BIG, "2147483648"])
def test_an_integer_parameter_takes_ascii_digits_in_range_only(client, user, pat, value):
    device, _ = make_device(user)
    assert device.id == 1
    response = client.delete(
        "/api/v1/data-submission/device-authorize", query_string={"device_id": value}, headers=bearer(pat)
    )
    assert response.status_code == 400, response.text
    assert list(response.get_json()["fields"]) == ["device_id"]
    db.session.expire_all()
    assert db.session.get(Device, 1).state == 1  # "١" disabled device 1
    listed = client.get("/api/v1/devices", query_string={"offset": value}, headers=bearer(pat))
    assert listed.status_code == 400 and "offset" in listed.get_json()["fields"]
    metrics = client.get("/api/v1/metrics", query_string={"device_id": value}, headers=bearer(pat))
    assert metrics.status_code == 400 and "device_id" in metrics.get_json()["fields"]


@pytest.mark.parametrize("value", ["١", "%D9%A1", "0", "-1", "2147483648", BIG, "1.0", "0x1", "%201", "1%20"])
def test_path_ids_take_ascii_digits_in_range_only(web, client, user, pat, value):
    make_device(user)
    for path in (f"/devices/{value}", f"/devices/{value}/authorize", f"/devices/{value}/disable"):
        assert web.get(path).status_code == 404, path
        assert web.post(path).status_code in (404, 405), path
    # Where two methods share the path, an id out of range is a 404 for both, not "405 Allow: GET".
    assert web.post(f"/devices/{value}/authorize").status_code == 404
    assert client.get(f"/api/v1/device/{value}", headers=bearer(pat)).status_code == 404
    assert client.delete(f"/api/v1/device/{value}", headers=bearer(pat)).status_code == 404
    assert web.get("/devices/0001").status_code == 200  # ASCII digits with leading zeros are still 1


@pytest.mark.parametrize(
    ("text", "minimum", "maximum", "expected"),
    [("1", 1, 10, 1), ("10", 1, 10, 10), ("0010", 1, 10, 10), ("0", 0, 10, 0), ("0", 1, 10, None),
     ("11", 1, 10, None), ("١", 0, 10, None), ("²", 0, 10, None), ("1_0", 0, 100, None), (" 1", 0, 10, None),
     ("1 ", 0, 10, None), ("+1", 0, 10, None), ("-1", -5, 10, None), ("", 0, 10, None), ("1e3", 0, 10**4, None),
     ("9" * 5000, 0, MAX_ID, None), ("0" * 5000 + "7", 0, 10, 7), ("2147483647", 1, MAX_ID, MAX_ID)],
)  # fmt: skip
def test_parse_int(text, minimum, maximum, expected):
    assert parse_int(text, minimum, maximum) == expected


@pytest.mark.parametrize("limit", [1, 7, 9, 10, 11, 99, 100, 101, 305, 1000, 7001, MAX_ID])
def test_the_id_pattern_matches_exactly_what_parse_int_takes(limit):
    pattern = re.compile(digits_up_to(limit))
    numbers = {*range(0, 1200), *range(max(0, limit - 50), limit + 50), 10**10, 10**12 + 5}
    for number in numbers:
        for text in (str(number), f"00{number}"):
            assert bool(pattern.fullmatch(text)) == (parse_int(text, 1, limit) is not None), text


def test_every_integer_field_reads_ascii_digits():
    """WTForms' IntegerField reads with int() (" 1", "1_0", "١"); every form's integer is a DigitsField."""
    loose = [
        f"{form.__name__}.{name}"
        for form in vars(bioweb_forms).values()
        if isinstance(form, type) and issubclass(form, FlaskForm)
        for name, field in vars(form).items()
        if isinstance(field, UnboundField)
        and issubclass(field.field_class, IntegerField)
        and not issubclass(field.field_class, bioweb_forms.DigitsField)
    ]
    assert not loose, f"plain IntegerField (use forms.DigitsField): {loose}"
