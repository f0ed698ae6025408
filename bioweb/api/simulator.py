"""POST /api/v1/metric-operations/simulators: fill a test-mode device's metric with generated
samples (docs/samples.md, Test mode; services/simulator.py)."""

from __future__ import annotations

from flask import Response

from ..bearer import bearer_origin, current_principal, require_token
from ..forms import SimulatorForm
from ..services import simulator
from ..services.tokens import DEVICE_SCOPE
from .core import answer, bind_json, bp


@bp.post("/metric-operations/simulators")
@require_token("samples:write", DEVICE_SCOPE)
def simulate() -> Response:
    form = bind_json(SimulatorForm)
    result = simulator.simulate(
        current_principal(), form.metric_id.data, form.days.data, origin=bearer_origin()
    )
    response = answer(result)
    response.status_code = 201
    return response
