"""Plain helpers with explicit arguments: build an app, users, tokens, devices; run a server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from flask import Flask

from bioweb import create_app
from bioweb.models import Device, User
from bioweb.services import accounts, devices, tokens

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


def make_app(database_url: str, **overrides: Any) -> Flask:
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": False,
        "SECRET_KEY": "test-secret-key-not-for-production",
    }
    config.update(overrides)
    return create_app(config)


def make_user(email: str = "ada@example.com", password: str = PASSWORD, tenant: str | None = None) -> User:
    return accounts.create_user(email, password, "Ada", "Lovelace", tenant)


def make_pat(user: User, scope: str | None = None, expires_in_days: int | None = None) -> str:
    _, plaintext = tokens.create_personal_token(user, "test", scope, expires_in_days)
    return plaintext


def make_device(user: User, code: str = "iPhone1,1", is_test_mode: bool = False) -> tuple[Device, str]:
    """A registered device and its client secret."""
    creds = devices.create_device(user, "Apple", code, is_test_mode)
    return creds.device, creds.client_secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """gunicorn serving app:app in a child process, on a free loopback port."""

    def __init__(self, database_url: str, workers: int = 2, env: dict[str, str] | None = None):
        self.database_url = database_url
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "RATELIMIT_ENABLED": "false",
            "BIOWEB_BASE_URL": self.url,
            **self.extra_env,
        }
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers),
                "--log-level", "warning",
                "app:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited: " + self.process.stderr.read().decode())
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not become healthy in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
