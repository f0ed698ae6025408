"""The JSON API under /api/v1: bearer-authenticated, JSON in and out, errors in one shape.

The blueprint and its helpers live in api/core.py; each route module registers on it.
"""

from __future__ import annotations

# Route modules register on bp (devices; samples: metrics and quantity samples; account: the
# person's own record; applications: the OAuth clients a person registered and the apps they
# authorized; simulator: generated samples for test-mode devices; openapi:
# /api/v1/openapi.json and /api/docs).
from . import account, applications, devices, openapi, samples, simulator  # noqa: F401
from .core import answer, bind_args, bind_json, bp, form_schema

__all__ = ["answer", "bind_args", "bind_json", "bp", "form_schema"]
