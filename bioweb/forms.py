"""Input validation, one form per input, shared by the dashboard (form posts, CSRF) and the
JSON API (bound to the parsed body with CSRF off, see api.bind_json)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, NumberRange, ValidationError

from . import devicecodes
from .services.devices import SORT_FIELDS

MANUFACTURERS = ("Apple",)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class DeviceForm(FlaskForm):
    manufacturer = StringField(
        "Manufacturer", filters=[_strip], validators=[DataRequired(), Length(max=40)], default="Apple"
    )
    device_code = StringField(
        "Device code", filters=[_strip], validators=[DataRequired(), Length(max=40)]
    )
    is_test_mode = BooleanField("Test mode", default=False)

    def validate_manufacturer(self, field: StringField) -> None:
        match = next((m for m in MANUFACTURERS if m.lower() == field.data.lower()), None)
        if match is None:
            raise ValidationError(
                f"Unknown manufacturer {field.data!r}; available options: {', '.join(MANUFACTURERS)}."
            )
        field.data = match

    def validate_device_code(self, field: StringField) -> None:
        entry = devicecodes.lookup(field.data)
        if entry is None:
            close = devicecodes.suggest(field.data)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValidationError(
                f"{field.data!r} is not a known Apple model identifier (such as iPhone1,1 or Watch1,1).{hint}"
            )
        field.data = entry.code


class ListDevicesForm(FlaskForm):
    """Query parameters of the device list."""

    offset = IntegerField(
        "offset", default=0, validators=[NumberRange(min=0, message="must be a device id, 0 or more.")]
    )
    limit = IntegerField(
        "limit", default=100, validators=[NumberRange(min=1, max=1000, message="must be from 1 to 1000.")]
    )
    sort_order = StringField(
        "sort_order", default="asc", validators=[AnyOf(("asc", "desc"), message="must be asc or desc.")]
    )
    sort_field = StringField(
        "sort_field",
        default="id",
        validators=[AnyOf(SORT_FIELDS, message=f"must be one of {', '.join(SORT_FIELDS)}.")],
    )


class DeviceRefForm(FlaskForm):
    """Names one device: the body of POST device-authorize, the query of DELETE device-authorize."""

    device_id = IntegerField(
        "device_id",
        validators=[
            DataRequired(message="is required: the id of one of your devices."),
            NumberRange(min=1, message="must be a device id (1 or more)."),
        ],
    )
