"""WSGI entry point: `gunicorn app:app`, `flask --app app ...`."""

from bioweb import create_app

app = create_app()
