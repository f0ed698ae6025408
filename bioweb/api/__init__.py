"""The JSON API under /api/v1: bearer-authenticated, JSON in and out, errors in one shape."""

from __future__ import annotations

from typing import TypeVar

from flask import Blueprint, request
from flask_wtf import FlaskForm
from werkzeug.exceptions import BadRequest
from wtforms import BooleanField, IntegerField, StringField

from ..errors import InvalidInput, UnsupportedMediaType

bp = Blueprint("api", __name__, url_prefix="/api/v1")

F = TypeVar("F", bound=FlaskForm)

# The JSON type each kind of form field accepts (bool is not an int here).
_JSON_TYPES: dict[type, tuple[type, str]] = {
    BooleanField: (bool, "a JSON boolean (true or false)"),
    IntegerField: (int, "a JSON integer"),
    StringField: (str, "a JSON string"),
}


def _expected_type(field) -> tuple[type, str]:
    for field_class, expected in _JSON_TYPES.items():
        if isinstance(field, field_class):
            return expected
    raise TypeError(f"no JSON type for {type(field).__name__}")


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
    form = form_class(formdata=None, data={}, meta={"csrf": False})
    known = {name: field for name, field in form._fields.items()}
    problems: dict[str, list[str]] = {}
    for name, value in payload.items():
        field = known.get(name)
        if field is None:
            problems[str(name)[:100]] = [f"Unknown field; the fields are: {', '.join(known)}."]
            continue
        json_type, described = _expected_type(field)
        wrong_bool = json_type is int and isinstance(value, bool)
        if value is not None and (wrong_bool or not isinstance(value, json_type)):
            problems[name] = [f"Must be {described}."]
    if problems:
        raise _invalid(problems)
    form = form_class(formdata=None, data=payload, meta={"csrf": False})
    if not form.validate():
        raise _invalid(form.errors)
    return form


def bind_args(form_class: type[F]) -> F:
    """Validate the query string with `form_class`. Raises InvalidInput naming each bad parameter."""
    form = form_class(formdata=request.args, meta={"csrf": False})
    if not form.validate():
        raise InvalidInput(f"Invalid query parameters: {', '.join(sorted(form.errors))}.", form.errors)
    return form


# Route modules register on bp (devices; openapi: /api/v1/openapi.json and /api/docs).
from . import devices, openapi  # noqa: E402,F401
