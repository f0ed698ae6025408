"""Metrics and quantity samples (docs/samples.md): what devices are registered for.

Metric bodies are bound with the shared WTForms form (the dashboard will register metrics
too); sample bodies, API-only and up to 1,000 items, are decoded and validated by msgspec
(services/samples.SampleIn) so a batch costs one decode, not 1,000 form runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from flask import Response, current_app, request

from .. import reads
from ..bearer import bearer_origin, current_principal, require_token
from ..errors import InvalidInput, UnsupportedMediaType
from ..extensions import limiter
from ..forms import ListMetricsForm, MetricForm, parse_int
from ..services import calculations, metrics, samples
from ..services.tokens import DEVICE_SCOPE
from .core import answer, bind_args, bind_json, bp, no_content

# A batch of 1,000 samples is about 300 KiB; leave room, but state the limit.
MAX_SAMPLE_BODY = 1024 * 1024


# --- metrics -------------------------------------------------------------------------------------


@bp.post("/metrics")
@require_token("samples:write", DEVICE_SCOPE)
def create_metric() -> Response:
    form = bind_json(MetricForm)
    metric = metrics.create_metric(
        current_principal(),
        form.device_id.data,
        form.sample_type.data,
        form.quantity_type.data,
        name=form.name.data or "",
        sample_type_other=form.sample_type_other.data or "",
        quantity_type_other=form.quantity_type_other.data or "",
        is_continuous_data=bool(form.is_continuous_data.data),
    )
    response = answer(metric)
    response.status_code = 201
    return response


@bp.get("/metrics")
@require_token("samples:read", DEVICE_SCOPE)
def list_metrics() -> Response:
    args = bind_args(ListMetricsForm)
    page = metrics.list_metrics(
        current_principal(),
        device_id=args.device_id.data,
        offset=args.offset.data,
        limit=args.limit.data,
        sort_order=args.sort_order.data,
    )
    return answer(page)


@bp.get("/metric/<int:metric_id>")
@bp.get("/metrics/<int:metric_id>")
@require_token("samples:read", DEVICE_SCOPE)
def get_metric(metric_id: int) -> Response:
    return answer(calculations.metric_detail(current_principal(), metric_id))


@bp.delete("/metric/<int:metric_id>")
@bp.delete("/metrics/<int:metric_id>")
@require_token("samples:write", DEVICE_SCOPE)
def delete_metric(metric_id: int) -> Response:
    metrics.delete_metric(current_principal(), metric_id)
    return no_content()


# --- samples -------------------------------------------------------------------------------------


def _writer_key() -> str:
    """Sample writes are limited per device (its own token) or per person (a PAT)."""
    principal = current_principal()
    return (
        f"samples:device:{principal.device.id}"
        if principal.device is not None
        else f"samples:user:{principal.id}"
    )


def _decode_body() -> Any:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Send the body as JSON, with the header Content-Type: application/json.")
    request.max_content_length = MAX_SAMPLE_BODY
    try:
        return msgspec.json.decode(request.get_data(cache=False))
    except msgspec.DecodeError as error:
        raise InvalidInput(f"The body is not valid JSON ({error}).") from None
    except RecursionError:
        raise InvalidInput("The body is not valid JSON (nested too deeply).") from None


@bp.post("/quantity-samples")
@bp.post("/samples")
@require_token("samples:write", DEVICE_SCOPE)
@limiter.limit(lambda: current_app.config["BIOWEB_SAMPLE_RATELIMIT"], key_func=_writer_key)
def submit_samples() -> Response:
    body = _decode_body()
    if isinstance(body, dict) and "samples" in body:
        items = body["samples"]
        extra = sorted(str(k)[:100] for k in body if k != "samples")
        if extra:
            message = 'A batch is {"samples": [...]} and nothing else.'
            raise InvalidInput(message, {name: ["Unknown field in a batch."] for name in extra})
        if not isinstance(items, list):
            raise InvalidInput(
                "samples: must be a JSON array of samples.", {"samples": ["Must be a JSON array."]}
            )
        if not 1 <= len(items) <= samples.MAX_BATCH:
            message = f"A batch holds 1 to {samples.MAX_BATCH} samples; this one has {len(items)}."
            raise InvalidInput(message, {"samples": [message]})
        return answer(samples.submit_batch(current_principal(), items, bearer_origin()))
    if not isinstance(body, dict):
        raise InvalidInput('The body must be a JSON object: one sample, or a batch {"samples": [...]}.')
    response = answer(samples.submit_one(current_principal(), body, bearer_origin()))
    response.status_code = 201
    return response


def _time_arg(name: str) -> datetime | None:
    """A time filter: epoch milliseconds (the published API) or RFC 3339 with an offset."""
    value = request.args.get(name)
    if value is None or value == "":
        return None
    return samples.parse_time(name, value)


_FILTERS = {"start_date_gt", "start_date_gte", "end_date_lt", "end_date_lte"}
_QUERY = _FILTERS | {"metric_id", "limit", "sort_order", "cursor"}


def _sample_filter() -> samples.SampleFilter:
    unknown = sorted(set(request.args) - _QUERY)
    if unknown:
        message = f"Unknown parameter; the parameters are: {', '.join(sorted(_QUERY))}."
        raise InvalidInput(
            f"Invalid query parameters: {', '.join(unknown)}.", {u[:100]: [message] for u in unknown}
        )
    problems: dict[str, list[str]] = {}
    metric_id = parse_int(request.args.get("metric_id", ""), 1)
    if metric_id is None:
        problems["metric_id"] = ["Is required: the id of one of your metrics."]
    limit = parse_int(request.args.get("limit", "100"), 1, 1000)
    if limit is None:
        problems["limit"] = ["Must be from 1 to 1000."]
    sort_order = request.args.get("sort_order", "asc")
    if sort_order not in ("asc", "desc"):
        problems["sort_order"] = ["Must be asc or desc."]
    if problems or metric_id is None or limit is None:
        raise InvalidInput(f"Invalid query parameters: {', '.join(sorted(problems))}.", problems)
    return samples.SampleFilter(
        metric_id=metric_id,
        start_gt=_time_arg("start_date_gt"),
        start_gte=_time_arg("start_date_gte"),
        end_lt=_time_arg("end_date_lt"),
        end_lte=_time_arg("end_date_lte"),
        limit=limit,
        sort_order="desc" if sort_order == "desc" else "asc",
        cursor=request.args.get("cursor") or None,
    )


@bp.get("/quantity-samples")
@bp.get("/samples")
@require_token("samples:read", DEVICE_SCOPE)
def list_samples() -> Response:
    return answer(samples.list_samples(current_principal(), _sample_filter()))


@bp.get("/quantity-sample-calculations")
@require_token("samples:read", DEVICE_SCOPE)
def calculate() -> Response:
    principal = current_principal()
    with reads.connection() as conn:
        default_zone = calculations.user_time_zone(conn, principal)
    query = calculations.parse_query(request.args, default_zone)
    return answer(calculations.calculate(principal, query))


@bp.delete("/quantity-sample/<sample_uuid>")
@bp.delete("/quantity-samples/<sample_uuid>")
@require_token("samples:write", DEVICE_SCOPE)
def delete_sample(sample_uuid: str) -> Response:
    samples.delete_sample(current_principal(), sample_uuid)
    return no_content()
