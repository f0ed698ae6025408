"""The API blueprint and its JSON in/out: binding bodies and query strings to forms
(bind_json, bind_args), answering with read models (answer), and the JSON Schema of what a
form accepts (form_schema, for the OpenAPI document).

The route modules (devices, openapi, ...) import from here, and the package imports them, so
the package and its route modules import in one direction only.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

import msgspec
from flask import Blueprint, Response, jsonify, request
from flask_wtf import FlaskForm
from werkzeug.exceptions import BadRequest
from wtforms import BooleanField, Field, IntegerField, StringField
from wtforms.fields.core import UnboundField
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NumberRange

from ..errors import InvalidInput, UnsupportedMediaType
from ..forms import IdRange, LinesField, Present
from ..models import MAX_ID
from ..readmodels import to_builtins

bp = Blueprint("api", __name__, url_prefix="/api/v1")

F = TypeVar("F", bound=FlaskForm)


class JSONType(NamedTuple):
    python: type
    schema: str  # the JSON Schema type name
    described: str  # for error messages


# The JSON type each kind of form field accepts (bool is not an int here): bind_json checks
# bodies with it, and form_schema documents them with it.
_JSON_TYPES: dict[type[Field], JSONType] = {
    BooleanField: JSONType(bool, "boolean", "a JSON boolean (true or false)"),
    IntegerField: JSONType(int, "integer", "a JSON integer"),
    StringField: JSONType(str, "string", "a JSON string"),
    LinesField: JSONType(list, "array", "a JSON array of strings"),
}


def _expected_type(field_class: type[Field]) -> JSONType:
    for kind, expected in _JSON_TYPES.items():
        if issubclass(field_class, kind):
            return expected
    raise TypeError(f"no JSON type for {field_class.__name__}")


def answer(model: msgspec.Struct) -> Response:
    """A read model (bioweb.readmodels) as the JSON answer, through the app's JSON provider."""
    return jsonify(to_builtins(model))


def no_content() -> Response:
    """204: no body, so no content type."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def _invalid(fields: dict[str, list[str]]) -> InvalidInput:
    names = ", ".join(sorted(fields))
    return InvalidInput(f"The request has invalid fields: {names}.", fields)


def bind_json(form_class: type[F]) -> F:
    """Parse the JSON object body and validate it with `form_class`.

    Raises UnsupportedMediaType without a JSON content type; InvalidInput for a body that is
    not a JSON object, unknown fields, wrong JSON types, or values the form rejects (each
    bad field named in `fields`).
    """
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Send the body as JSON, with the header Content-Type: application/json.")
    try:
        payload = request.get_json()
    except (BadRequest, RecursionError):
        raise InvalidInput("The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidInput('The body must be a JSON object, such as {"device_code": "iPhone1,1"}.')
    empty = form_class(formdata=None, data={}, meta={"csrf": False})
    known: dict[str, Field] = dict(empty._fields)
    problems: dict[str, list[str]] = {}
    for name, value in payload.items():
        field = known.get(name)
        if field is None:
            problems[str(name)[:100]] = [f"Unknown field; the fields are: {', '.join(known)}."]
            continue
        expected = _expected_type(type(field))
        wrong_bool = expected.python is int and isinstance(value, bool)
        wrong_items = isinstance(value, list) and not all(isinstance(item, str) for item in value)
        if value is not None and (wrong_bool or wrong_items or not isinstance(value, expected.python)):
            problems[name] = [f"Must be {expected.described}."]
    if problems:
        raise _invalid(problems)
    form: F = form_class(formdata=None, data=payload, meta={"csrf": False})
    if not form.validate():
        raise _invalid(form.errors)
    return form


def bind_args(form_class: type[F]) -> F:
    """Validate the query string with `form_class`. Raises InvalidInput naming each bad parameter,
    and each unknown one (with the known ones: a misspelt `sort_feild` is not silently ignored)."""
    form: F = form_class(formdata=request.args, meta={"csrf": False})
    unknown = sorted(set(request.args) - set(form._fields))
    if unknown:
        known = ", ".join(form._fields)
        message = f"Unknown parameter; the parameters are: {known}."
        raise InvalidInput(
            f"Unknown query parameters: {', '.join(u[:100] for u in unknown)}; the parameters are: {known}.",
            {u[:100]: [message] for u in unknown},
        )
    if not form.validate():
        raise InvalidInput(f"Invalid query parameters: {', '.join(sorted(form.errors))}.", form.errors)
    return form


def _unbound_fields(form_class: type[FlaskForm]) -> list[tuple[str, UnboundField]]:
    """A form class's fields in declaration order, without instantiating it (no app or request)."""
    fields = [
        (name, value)
        for name in dir(form_class)
        if not name.startswith("_") and isinstance(value := getattr(form_class, name), UnboundField)
    ]
    return sorted(fields, key=lambda item: item[1].creation_counter)


_REQUIRED = (DataRequired, InputRequired, Present)


def form_schema(form_class: type[FlaskForm], nullable: bool = True) -> dict[str, Any]:
    """The JSON Schema of what `form_class` accepts: an object of its fields, typed as bind_json
    checks them, with what its validators say (required, lengths, ranges, choices), its
    defaults and its fields' descriptions.

    `nullable`: optional fields also take null (JSON bodies: null means omitted); query
    strings have no null, so pass False for them.
    """
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, unbound in _unbound_fields(form_class):
        kind = _expected_type(unbound.field_class).schema
        prop: dict[str, Any] = {}
        validators = unbound.kwargs.get("validators") or []
        is_required = any(isinstance(v, _REQUIRED) for v in validators)
        low: int | None = None
        high: int | None = None
        for validator in validators:
            if isinstance(validator, Length):
                if validator.min > 0:
                    prop["minLength"] = validator.min
                if validator.max >= 0:
                    prop["maxLength"] = validator.max
            elif isinstance(validator, IdRange | NumberRange):
                floor, ceiling = (
                    (validator.minimum, MAX_ID)
                    if isinstance(validator, IdRange)
                    else (validator.min, validator.max)
                )
                if floor is not None:
                    low = int(floor) if low is None else max(low, int(floor))
                if ceiling is not None:
                    high = int(ceiling) if high is None else min(high, int(ceiling))
            elif isinstance(validator, AnyOf):
                prop["enum"] = list(validator.values)
        if low is not None:
            prop["minimum"] = low
        if high is not None:
            prop["maximum"] = high
        if kind == "array":
            prop = {"items": {"type": "string"}, **prop}
        prop = {"type": kind if is_required or not nullable else [kind, "null"], **prop}
        default = unbound.kwargs.get("default")
        if default is not None and not callable(default):
            prop["default"] = default
        description = unbound.kwargs.get("description")
        if description:
            prop["description"] = description
        properties[name] = prop
        if is_required:
            required.append(name)
    schema: dict[str, Any] = {"type": "object"}
    if required:
        schema["required"] = required
    return {**schema, "properties": properties, "additionalProperties": False}
