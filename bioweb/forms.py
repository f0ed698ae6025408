"""Input validation, one form per input, shared by the dashboard (form posts, CSRF) and the
JSON API (bound to the parsed body with CSRF off, see api.bind_json)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields import Field
from wtforms.validators import (
    AnyOf,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    StopValidation,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget, TextArea

from . import devicecodes
from .errors import InvalidInput
from .models import MAX_ID
from .services import accounts as _accounts
from .services.devices import SORT_FIELDS
from .services.tokens import PAT_SCOPES

MANUFACTURERS = ("Apple",)


class Present:
    """Like DataRequired, but 0 counts as given and a conversion error ("Must be a whole number
    in the digits 0-9.") is kept instead of being replaced by "required"."""

    def __init__(self, message: str = "This field is required."):
        self.message = message

    def __call__(self, form, field) -> None:
        if field.process_errors:
            raise StopValidation()
        if field.data is None or field.data == "":
            raise StopValidation(self.message)


# A lone surrogate ("\ud800" in a JSON string) is no character: UTF-8 cannot encode it, so
# PostgreSQL's driver would fail on it (a 500).
_SURROGATE = re.compile("[\ud800-\udfff]")


def _strip(value):
    """Trim surrounding space; refuse NUL characters and lone surrogates (no text column
    stores them)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("Must not contain NUL characters.")
        if not value.isascii() and _SURROGATE.search(value):
            raise ValueError("Must be valid Unicode text: it holds a lone surrogate (such as \\ud800).")
        return value.strip()
    return value


class Omitted:
    """Like Optional, but only a field that is not there at all skips the other checks: an
    empty value ("?device_id=") is not a number, so its conversion error stands (Optional
    takes it for omitted)."""

    def __call__(self, form, field) -> None:
        if not field.raw_data and field.data is None:
            field.errors[:] = []
            raise StopValidation()


class IdRange:
    """Refuse integers outside minimum..MAX_ID before any float-based check (NumberRange) sees them."""

    def __init__(self, minimum: int = 0, message: str | None = None):
        self.minimum = minimum
        self.message = message or f"must be from {minimum} to {MAX_ID}."

    def __call__(self, form, field) -> None:
        if isinstance(field.data, int) and not self.minimum <= field.data <= MAX_ID:
            raise StopValidation(self.message)


# --- Integers read from text: query strings, form posts, path segments, the CLI -------------------


def parse_int(text: str, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """The integer `text` spells when it is ASCII digits only (0-9: no sign, space, underscore,
    "0x", exponent or another script's digits) and lies in minimum..maximum; else None.

    Every integer the app reads from text goes through here. Python's int() - and so WTForms'
    IntegerField, Werkzeug's `type=int` and its `int` converter - also reads " 1", "1 ", "+1",
    "1_0" and "١" (an Arabic-Indic one) as numbers, and any length: a value past a column's
    range then fails in the database (500). The length check keeps int() from ever seeing
    thousands of digits (Python refuses more than 4,300).
    """
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(maximum)):
        return None
    value = int(digits)
    return value if minimum <= value <= maximum else None


def int_message(minimum: int = 0, maximum: int = MAX_ID) -> str:
    return f"Must be a whole number from {minimum} to {maximum}, in the digits 0-9."


def arg_int(args: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int = MAX_ID) -> int:
    """The integer query parameter `name` of `args` (request.args), `default` when it is absent.

    Raises InvalidInput naming it when it is given but is not ASCII digits in minimum..maximum
    (see parse_int; an empty value is not a number either): the API answers 400 in its JSON
    error shape, the dashboard its 400 page.
    """
    text = args.get(name)
    if text is None:
        return default
    value = parse_int(text, minimum, maximum)
    if value is None:
        message = int_message(minimum, maximum)
        raise InvalidInput(
            f"Invalid query parameter {name}: {message[0].lower()}{message[1:]}", {name: [message]}
        )
    return value


class DigitsField(IntegerField):
    """WTForms' IntegerField for form posts and query strings, reading ASCII digits only (see
    parse_int). The range is the validators' (IdRange, NumberRange): a value too long for any
    column is held as MAX_ID + 1, so they refuse it with their own message. JSON bodies bind
    through process_data, after bind_json has required a JSON integer."""

    data: Any  # as IntegerField's (WTForms is untyped): an int once the form has validated

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist:
            return
        text = valuelist[0]
        if not (isinstance(text, str) and text.isascii() and text.isdigit()):
            self.data = None
            raise ValueError(self.invalid_value_message or int_message(*self._bounds()))
        value = parse_int(text, 0, MAX_ID)
        self.data = MAX_ID + 1 if value is None else value

    def _bounds(self) -> tuple[int, int]:
        """The range its IdRange and NumberRange validators allow together (for the message)."""
        low, high = 0, MAX_ID
        for validator in self.validators:
            if isinstance(validator, IdRange):
                low = max(low, validator.minimum)
            elif isinstance(validator, NumberRange):
                low = max(low, int(validator.min)) if validator.min is not None else low
                high = min(high, int(validator.max)) if validator.max is not None else high
        return low, high

    def pre_validate(self, form: Any) -> None:
        # Not a number: that one message, not the range validators' about a missing value too.
        if self.process_errors:
            raise StopValidation()


S = TypeVar("S", bound=msgspec.Struct)


def form_struct(form: FlaskForm, struct_type: type[S]) -> S:
    """The validated data of `form` as `struct_type` (a bioweb.readmodels input such as
    NewDevice): each field of the Struct from the form field of the same name."""
    return struct_type(**{name: form[name].data for name in struct_type.__struct_fields__})


class DeviceForm(FlaskForm):
    manufacturer = StringField(
        "Manufacturer",
        filters=[_strip],
        validators=[DataRequired(), Length(max=40, message="Must be at most 40 characters.")],
        description="Apple is the available option (matched case-insensitively).",
    )
    device_code = StringField(
        "Device code",
        filters=[_strip],
        validators=[DataRequired(), Length(max=40, message="Must be at most 40 characters.")],
        description="An Apple model identifier; product_name comes from it.",
    )
    is_test_mode = BooleanField("Test mode", default=False, description="Omitted or null: false.")
    name = StringField(
        "Name (optional)",
        filters=[_strip, lambda value: value or None],
        validators=[Length(max=100, message="Must be at most 100 characters.")],
        description="Your own label for the device, such as “Anna’s watch”.",
    )

    def validate_manufacturer(self, field: StringField) -> None:
        if field.errors:
            return
        match = next((m for m in MANUFACTURERS if m.lower() == field.data.lower()), None)
        if match is None:
            raise ValidationError(
                f"Unknown manufacturer {field.data!r}; available options: {', '.join(MANUFACTURERS)}."
            )
        field.data = match

    def validate_device_code(self, field: StringField) -> None:
        if field.errors:
            return
        entry = devicecodes.lookup(field.data)
        if entry is None:
            close = devicecodes.search(field.data, limit=5)
            hint = f" Did you mean {devicecodes.described(close)}?" if close else ""
            raise ValidationError(
                f"{field.data!r} is not a known Apple model identifier (such as iPhone1,1 or Watch1,1).{hint}"
            )
        field.data = entry.code


class PageForm(FlaskForm):
    """Query parameters of a keyset-paged list: id cursor, page size, order."""

    offset = DigitsField(
        "offset",
        default=0,
        validators=[IdRange(), NumberRange(min=0, message="must be an id, 0 or more.")],
        description="An id cursor: the records after this id in the requested order (0: the start).",
    )
    limit = DigitsField(
        "limit",
        default=100,
        validators=[
            IdRange(message="must be from 1 to 1000."),
            NumberRange(min=1, max=1000, message="must be from 1 to 1000."),
        ],
        description="Page size.",
    )
    sort_order = StringField(
        "sort_order", default="asc", validators=[AnyOf(("asc", "desc"), message="must be asc or desc.")]
    )


class ListDevicesForm(PageForm):
    """Query parameters of the device list."""

    sort_field = StringField(
        "sort_field",
        default="id",
        validators=[AnyOf(SORT_FIELDS, message=f"must be one of {', '.join(SORT_FIELDS)}.")],
    )


class DeviceRefForm(FlaskForm):
    """Names one device: the body of POST device-authorize, the query of DELETE device-authorize."""

    device_id = DigitsField(
        "device_id",
        validators=[
            Present(message="is required: the id of one of your devices."),
            IdRange(1, message=f"must be a device id, from 1 to {MAX_ID}."),
        ],
    )


class MetricForm(FlaskForm):
    """A new metric (API body; the dashboard's metric form will bind the same)."""

    device_id = DigitsField(
        "device_id",
        validators=[
            Present(message="is required: the id of one of your devices."),
            IdRange(1, message=f"must be a device id, from 1 to {MAX_ID}."),
        ],
    )
    name = StringField(
        "name", filters=[_strip], validators=[Length(max=100, message="Must be at most 100 characters.")]
    )
    sample_type = StringField(
        "sample_type",
        filters=[_strip],
        validators=[DataRequired(), Length(max=64, message="Must be at most 64 characters.")],
        description="A HealthKit quantity type (heartRate, or HKQuantityTypeIdentifierHeartRate), or other.",
    )
    sample_type_other = StringField(
        "sample_type_other",
        filters=[_strip],
        validators=[Length(max=100, message="Must be at most 100 characters.")],
    )
    quantity_type = StringField(
        "quantity_type",
        filters=[_strip],
        validators=[DataRequired(), Length(max=32, message="Must be at most 32 characters.")],
        description="The unit in HealthKit's syntax (count/min, kg, ...) or an alias (bpm), or other.",
    )
    quantity_type_other = StringField(
        "quantity_type_other",
        filters=[_strip],
        validators=[Length(max=100, message="Must be at most 100 characters.")],
    )
    is_continuous_data = BooleanField(
        "is_continuous_data", default=False, description="Omitted or null: false."
    )


class ListMetricsForm(PageForm):
    """Query parameters of the metric list."""

    device_id = DigitsField(
        "device_id",
        validators=[Omitted(), IdRange(1, message=f"must be a device id, from 1 to {MAX_ID}.")],
        description="Only this device's metrics.",
    )


class TimeZoneForm(FlaskForm):
    """The person's time zone: PATCH /api/v1/account and the dashboard's account page."""

    time_zone = StringField(
        "Time zone",
        filters=[_strip],
        validators=[
            DataRequired(message="Choose a time zone."),
            Length(max=64, message="Must be at most 64 characters."),
        ],
        description="An IANA time zone name, such as Europe/Berlin (matched without regard to case).",
    )

    def validate_time_zone(self, field: StringField) -> None:
        if field.errors:
            return
        try:
            field.data = _accounts.valid_time_zone(field.data)
        except InvalidInput as error:
            raise ValidationError((error.fields or {}).get("time_zone", [error.description])[0]) from None


SIMULATION_DAYS = 7
# A request generates at most a month (about 9,000 heart-rate samples, a second or two); a year
# (over 100,000, 15-20 s on SQLite) would hold a worker that long: `flask samples simulate` does that.
API_SIMULATION_DAYS = 31


class SimulatorForm(FlaskForm):
    """POST /api/v1/metric-operations/simulators: fill a test-mode device's metric with generated samples."""

    metric_id = DigitsField(
        "metric_id",
        validators=[
            Present(message="is required: the id of one of your metrics."),
            IdRange(1, message=f"must be a metric id, from 1 to {MAX_ID}."),
        ],
    )
    days = DigitsField(
        "days",
        default=SIMULATION_DAYS,
        # null means omitted, as for every optional field of a JSON body
        filters=[lambda value: SIMULATION_DAYS if value is None else value],
        validators=[
            NumberRange(
                min=1,
                max=API_SIMULATION_DAYS,
                message=f"must be from 1 to {API_SIMULATION_DAYS} (flask samples simulate takes up to 366).",
            )
        ],
        description="How many days back from now to fill.",
    )


class OptionalRange(NumberRange):
    """NumberRange for an optional field: no value (omitted, null) passes; the form_schema walker
    documents its bounds like NumberRange's."""

    def __call__(self, form, field) -> None:
        if field.data is None:
            return
        super().__call__(form, field)


class DeviceNameForm(FlaskForm):
    """A device's new name: the body of PATCH /api/v1/device/<id> and the device page's form."""

    name = StringField(
        "Name",
        filters=[_strip, lambda value: value or None],
        validators=[Length(max=100, message="Must be at most 100 characters.")],
        description="Your own label for the device, such as “Anna’s watch”; null or empty removes it.",
    )


# How long a device's current secret may keep working once a new one is added: 30 days at most.
MAX_OLD_SECRET_SECONDS = 30 * 24 * 3600


class NewSecretForm(FlaskForm):
    """The body of POST /api/v1/device/<id>/secrets (optional: {} or no body at all)."""

    expires_in = DigitsField(
        "expires_in",
        validators=[
            IdRange(1, message=f"must be from 1 to {MAX_OLD_SECRET_SECONDS} seconds (30 days)."),
            OptionalRange(
                min=1,
                max=MAX_OLD_SECRET_SECONDS,
                message=f"must be from 1 to {MAX_OLD_SECRET_SECONDS} seconds (30 days).",
            ),
        ],
        description="Seconds until the device's current secret stops working by itself (at most "
        "2592000: 30 days). Omitted or null: it keeps working until you remove it.",
    )


# --- Dashboard forms (HTML pages only; the API does not bind these) ---------------------------------


def _password_rule(form: FlaskForm, field: PasswordField) -> None:
    """The account password rule, defined once in services.accounts.password_problem."""
    problem = _accounts.password_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


def _email_rule(form: FlaskForm, field: StringField) -> None:
    """The account email rule, defined once in services.accounts.email_problem (the CLI's too)."""
    problem = _accounts.email_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


def _email_field() -> StringField:
    return StringField(
        "Email address",
        filters=[_strip],
        validators=[DataRequired(message="Enter your email address."), _email_rule],
    )


class OnceForm(FlaskForm):
    """A form whose submission takes effect once: `nonce` is issued with the page and spent by the
    first successful post (see views.nonces), so a resubmission never repeats the action."""

    nonce = HiddenField()


class SignupForm(FlaskForm):
    """Fields in the order of the page (templates/auth/signup.html), so the error summary,
    which lists them in declaration order, reads as the form does."""

    email = _email_field()
    first_name = StringField(
        "First name",
        filters=[_strip],
        validators=[
            DataRequired(message="Enter your first name."),
            Length(max=100, message="Use at most 100 characters."),
        ],
    )
    last_name = StringField(
        "Last name",
        filters=[_strip],
        validators=[
            DataRequired(message="Enter your last name."),
            Length(max=100, message="Use at most 100 characters."),
        ],
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(message="Choose a password."), _password_rule],
        description="At least 12 characters. A few random words are easy to remember and hard to guess.",
    )


class LoginForm(FlaskForm):
    email = StringField(
        "Email address", filters=[_strip], validators=[DataRequired(message="Enter your email address.")]
    )
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password.")])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(message="Enter your current password.")]
    )
    new_password = PasswordField(
        "New password",
        validators=[DataRequired(message="Choose a new password."), _password_rule],
        description="At least 12 characters. Signing in elsewhere will need the new password.",
    )


class ForgotPasswordForm(FlaskForm):
    email = _email_field()


class ResetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[DataRequired(message="Choose a new password."), _password_rule],
        description="At least 12 characters. A few random words are easy to remember and hard to guess.",
    )


class RegisterDeviceForm(DeviceForm, OnceForm):
    """DeviceForm (as the API validates it) plus the one-time submission nonce."""


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


# A new personal access token's lifetime when nobody chooses one: the dashboard's and the CLI's.
DEFAULT_TOKEN_EXPIRY_DAYS = 30

EXPIRY_CHOICES = [
    SelectChoice("7", "7 days"),
    SelectChoice("30", "30 days"),
    SelectChoice("90", "90 days"),
    SelectChoice("365", "1 year"),
    SelectChoice("", "Never"),
]


class PersonalTokenForm(OnceForm):
    name = StringField(
        "Name",
        filters=[_strip],
        validators=[
            DataRequired(message="Give the token a name, such as the script that will use it."),
            Length(max=100, message="Use at most 100 characters."),
        ],
        description="What the token is for, so you know which one to revoke later.",
    )
    scopes = MultiCheckboxField(
        "Permissions",
        choices=[
            SelectChoice("devices:read", "devices:read — list and read your devices"),
            SelectChoice("devices:write", "devices:write — register, disable and re-authorize devices"),
            SelectChoice("samples:read", "samples:read — read your metrics and their samples"),
            SelectChoice("samples:write", "samples:write — register metrics, submit and delete samples"),
        ],
        default=list(PAT_SCOPES),
        validators=[InputRequired(message="Choose at least one permission.")],
    )
    expires_in_days = SelectField(
        "Expires after", choices=EXPIRY_CHOICES, default=str(DEFAULT_TOKEN_EXPIRY_DAYS)
    )

    def expiry_days(self) -> int | None:
        return parse_int(self.expires_in_days.data or "", 1) if self.expires_in_days.data else None


# The dashboard's device list: sort choices (value: label, sort field, order), filters, search.
DEVICE_LIST_SORTS: dict[str, tuple[str, str, str]] = {
    "newest": ("Newest first", "id", "desc"),
    "oldest": ("Oldest first", "id", "asc"),
    "name": ("Name A–Z", "name", "asc"),
    "name_desc": ("Name Z–A", "name", "desc"),
    "product": ("Product A–Z", "product_name", "asc"),
    "active": ("Recently active first", "last_active_time", "desc"),
}


class DeviceListQuery(FlaskForm):
    """The query string of the dashboard's device list (a GET form: no CSRF token)."""

    class Meta:
        csrf = False

    q = StringField(
        "Search",
        filters=[_strip],
        validators=[Length(max=100, message="Use at most 100 characters.")],
        description="The start of a name, model identifier or product, in any case.",
    )
    state = SelectField(
        "State",
        choices=[
            SelectChoice("", "Any state"),
            SelectChoice("active", "Active"),
            SelectChoice("disabled", "Disabled"),
        ],
        default="",
    )
    mode = SelectField(
        "Test mode",
        choices=[
            SelectChoice("", "Test and live"),
            SelectChoice("live", "Live only"),
            SelectChoice("test", "Test only"),
        ],
        default="",
    )
    sort = SelectField(
        "Sort",
        choices=[SelectChoice(value, label) for value, (label, _, _) in DEVICE_LIST_SORTS.items()],
        default="newest",
    )


OLD_SECRET_CHOICES = [
    SelectChoice("", "Until I remove it"),
    SelectChoice("3600", "1 hour"),
    SelectChoice("86400", "1 day"),
    SelectChoice("604800", "7 days"),
    SelectChoice("2592000", "30 days"),
]


class AddSecretForm(OnceForm):
    """The device page's "Add a new secret": how long the current secret keeps working."""

    old_expires_in = SelectField(
        "The current secret keeps working",
        choices=OLD_SECRET_CHOICES,
        default="",
        description="Until you remove it, or for a while: long enough to put the new secret on the device.",
    )

    def old_seconds(self) -> int | None:
        return parse_int(self.old_expires_in.data or "", 1) if self.old_expires_in.data else None


# --- Applications and redirect URIs (issue 13) ------------------------------------------------------


class LinesField(Field):
    """Items one a line: a textarea on a page; in a JSON body an array of strings (bind_json
    checks the array), joined into lines. Either way `data` is the text (None when omitted),
    as services.applications and services.devices.set_redirect_uris take it."""

    widget = TextArea()

    def process_data(self, value: Any) -> None:
        if isinstance(value, list | tuple):
            self.data = "\n".join(str(item) for item in value)
        else:
            self.data = value

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist:
            self.data = valuelist[0]

    def _value(self) -> str:
        return self.data if isinstance(self.data, str) else ""


CLIENT_TYPES = ("confidential", "public")
REDIRECT_RULES = (
    "Up to 10, each an https:// URL; a native app's loopback address, http://127.0.0.1 "
    "or http://[::1] (any port: the app picks one at each sign-in; not localhost); or a "
    "private-use scheme that is a reverse domain name your app owns, such as "
    "com.example.app:/callback. No fragments (#)."
)


def _application_name(required: bool) -> StringField:
    checks: list[Any] = [DataRequired(message="Give the application a name.")] if required else []
    return StringField(
        "Name",
        filters=[_strip],
        validators=[*checks, Length(max=100, message="Use at most 100 characters.")],
        description="What people see when they are asked to authorize it, such as “Step coach”.",
    )


def _homepage_url() -> StringField:
    return StringField(
        "Homepage URL (optional)",
        filters=[_strip],
        validators=[Length(max=500, message="Use at most 500 characters.")],
        description="An http(s) page about the application, linked where people authorize it and "
        "on their authorized apps. Empty: none.",
    )


def _redirect_uris(required: bool) -> LinesField:
    checks: list[Any] = [DataRequired(message="Register at least one redirect URI.")] if required else []
    return LinesField("Redirect URIs", validators=checks, description=REDIRECT_RULES)


class ApplicationForm(FlaskForm):
    """A new application: POST /api/v1/applications and the register form of /applications.
    The service (services.applications) checks each redirect URI and the homepage."""

    name = _application_name(required=True)
    homepage_url = _homepage_url()
    redirect_uris = _redirect_uris(required=True)
    client_type = StringField(
        "Type",
        filters=[_strip],
        validators=[
            DataRequired(message="Choose confidential or public."),
            AnyOf(
                CLIENT_TYPES,
                message="Must be confidential (a server that keeps a client secret) or public "
                "(a native or browser app: no secret, PKCE required).",
            ),
        ],
        description="confidential: a server that keeps a client secret (shown once); public: a "
        "native or browser app, which has no secret and must use PKCE.",
    )


class ApplicationChangeForm(FlaskForm):
    """An application's new name, homepage or redirect URIs: PATCH /api/v1/applications/<id>
    (what is omitted or null stays as it is) and the form on the application's page."""

    name = _application_name(required=False)
    homepage_url = _homepage_url()
    redirect_uris = _redirect_uris(required=False)


class RegisterApplicationForm(ApplicationForm, OnceForm):
    """ApplicationForm (as the API validates it) plus the one-time submission nonce."""


class RedirectUrisForm(FlaskForm):
    """The redirect URIs a device's owner adds on the device page (empty: none but the
    service's own landing page)."""

    redirect_uris = LinesField("Redirect URIs", description=REDIRECT_RULES)
