"""Fuzzing: schemathesis generates requests from /api/v1/openapi.json (valid and invalid ones) and
sends them to a live gunicorn server with a PAT holding both scopes. No answer may be a 5xx, use an
undocumented status or content type, or break the document's response schema; invalid input
must be refused with a 4xx.

Bounded: a few dozen examples per operation, no shrinking, no example database, a fixed seed
(so a failure reproduces). On PostgreSQL, the production database and the stricter of the two
(NUL characters, 32-bit integer columns, encodings); what only SQLite refuses (integers past
64 bits) the hostile-routes walk sends through every route on both. About 30 s of fixed cost.
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from tests.helpers import make_device, make_pat, make_user

MAX_EXAMPLES = 25

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "unsupported_method",
]


@pytest.fixture
def api_schema(app, live_server):
    user = make_user()
    pat = make_pat(user)  # devices:read and devices:write
    for code in ("iPhone1,1", "Watch1,1", "iPad1,1"):
        make_device(user, code)  # small ids exist, so some generated ids hit real devices
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20260701,
            "headers": {"Authorization": f"Bearer {pat}"},
            "request-timeout": 10,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "no-shrink": True,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
            },
            # A well-formed batch whose items break the item schema is a 200 by contract: the bad
            # items are listed in `rejected` and change nothing (test_samples.py proves that).
            "operations": [
                {
                    "include-path-regex": "^/api/v1/(quantity-samples|samples)$",
                    "include-method": "POST",
                    "checks": {"negative_data_rejection": {"enabled": False}},
                }
            ],
        }
    )
    return schemathesis.openapi.from_url(f"{live_server}/api/v1/openapi.json", config=config)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_api_survives_generated_requests(api_schema):
    failures: list[str] = []
    scenarios = 0
    requests_sent = 0
    for event in schemathesis.engine.from_schema(api_schema).execute():
        if isinstance(event, events.ScenarioFinished):
            scenarios += 1
            requests_sent += len(event.recorder.interactions)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE:
                        interaction = event.recorder.interactions.get(case_id)
                        request = interaction.request if interaction else None
                        response = interaction.response if interaction else None
                        failures.append(
                            f"{event.recorder.label}: {check.name}: "
                            f"{check.failure_info.failure.title if check.failure_info else ''} -- "
                            f"{request.method if request else ''} {request.uri if request else ''} "
                            f"{(request.body or b'')[:200] if request else ''!r} -> "
                            f"{response.status_code if response else ''} "
                            f"{(response.content or b'')[:200] if response else ''!r}"
                        )
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: error {event.value!r}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    unique = sorted(set(failures))
    assert not unique, f"{len(unique)} distinct failures:\n" + "\n".join(unique[:40])
    assert scenarios >= 16 and requests_sent >= 16 * 10, (scenarios, requests_sent)
