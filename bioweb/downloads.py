"""The export download (issue 16), one response for the API and the dashboard: a ZIP streamed
as services.export writes it, never cached, named bioweb-export-<date>.zip."""

from __future__ import annotations

from flask import Response, stream_with_context

from .services import export

# Exports are heavy (every sample, compressed on the worker): a person gets this many an hour
# from the API, and as many from the dashboard (each route counts its own, per account).
EXPORT_RATELIMIT = "10 per hour"


def export_response(user_id: int) -> Response:
    """200 with the person's export as an attachment, produced while it is sent. The request
    context stays until the last piece (stream_with_context); each read inside takes a pooled
    connection for a moment only. A worker serving it for longer than gunicorn's timeout needs
    the gthread worker class (BIOWEB_THREADS > 1) or a longer BIOWEB_TIMEOUT (README)."""
    response = Response(stream_with_context(export.stream(user_id)), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename()}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
