"""Off-the-shelf OAuth 2.0 client libraries of other languages against a live server (issue 10):
Go's golang.org/x/oauth2/clientcredentials configured as the published system's device client
is (`Scopes: ["all"]`), and Node's openid-client discovering bioweb through its RFC 8414
metadata. Each program (tests/clients/) gets a token, reads the device's own record with it and
prints one JSON line; once the owner has disabled the device, the same program must be refused
a token (`invalid_client`). The Python libraries (requests-oauthlib, Authlib) are driven in
tests/test_oauth.py.

The toolchains are not optional: a machine without them fails here, naming what .ci/run installs."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.helpers import bearer

pytestmark = [pytest.mark.server, pytest.mark.slow]

CLIENTS = Path(__file__).resolve().parent / "clients"
GO_SOURCE = CLIENTS / "go" / "clientcredentials.go"
GOPATH = Path("/usr/share/gocode")  # where Debian's golang-*-dev packages put Go sources
GO_LIBRARY = GOPATH / "src" / "golang.org" / "x" / "oauth2" / "clientcredentials"
NODE_DIR = CLIENTS / "node"
NODE_SCRIPT = NODE_DIR / "client-credentials.mjs"
TIMEOUT = 60


def _missing(what: str, packages: str) -> None:
    pytest.fail(f"{what}: .ci/run should have installed Debian's {packages} (apt-get install -y {packages})")


@pytest.fixture(scope="session")
def go_client(tmp_path_factory) -> list[str]:
    """The Go program, built once per session (per xdist worker) in GOPATH mode against
    Debian's golang-golang-x-oauth2-dev: no module proxy is involved."""
    go = shutil.which("go")
    if go is None:
        _missing("`go` is not on PATH", "golang-go")
    if not GO_LIBRARY.is_dir():
        _missing(f"{GO_LIBRARY} is missing", "golang-golang-x-oauth2-dev")
    out = tmp_path_factory.mktemp("go-client")
    binary = out / "clientcredentials"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(out),
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(out / "cache"),
        "GOFLAGS": "",
    }
    build = subprocess.run(
        [go, "build", "-o", str(binary), str(GO_SOURCE)],
        env=env,
        cwd=out,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, f"go build failed:\n{build.stdout}{build.stderr}"
    return [str(binary)]


def _locked_version(package: str) -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{package}"]["version"]


def _installed_version(package: str) -> str | None:
    manifest = NODE_DIR / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else None


@pytest.fixture(scope="session")
def node_client() -> list[str]:
    """The Node program; `npm ci` from the committed lock file when node_modules is missing or
    does not match it (under a lock: xdist workers may get here at the same time)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing("`node` or `npm` is not on PATH", "nodejs npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert int(version.lstrip("v").split(".")[0]) >= 20, (
        f"openid-client 6 needs Node.js 20 or newer: {version}"
    )
    with open(NODE_DIR / "package-lock.json") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version("openid-client") != _locked_version("openid-client"):
            install = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert install.returncode == 0, f"npm ci failed:\n{install.stdout}{install.stderr}"
    return [node, str(NODE_SCRIPT)]


def _run(command: list[str], base_url: str, created: dict) -> tuple[int, dict]:
    """Run a client program with the device's credentials in its environment (never on the
    command line, where ps shows them); return its exit status and its JSON line."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "BIOWEB_URL": base_url,
        "BIOWEB_CLIENT_ID": created["oauth2_client_id"],
        "BIOWEB_CLIENT_SECRET": created["oauth2_client_secret"],
        "BIOWEB_DEVICE_ID": str(created["id"]),
    }
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"expected one JSON line; stdout={result.stdout!r} stderr={result.stderr!r}"
    return result.returncode, json.loads(lines[0])


@pytest.mark.parametrize("client", ["go", "node"])
def test_client_library_gets_and_uses_a_token_until_the_device_is_disabled(
    client, request, live_server, user, pat
):
    command = request.getfixturevalue(f"{client}_client")
    created = requests.post(
        f"{live_server}/api/v1/devices",
        json={"manufacturer": "Apple", "device_code": "Watch6,1"},
        headers=bearer(pat),
        timeout=10,
    ).json()

    status, report = _run(command, live_server, created)
    assert status == 0 and report["ok"], report
    # openid-client lower-cases token_type as it parses the answer; the server sends "Bearer"
    assert report["token_type"].lower() == "bearer" and (client == "node" or report["token_type"] == "Bearer")
    assert report["refresh_token"] is False  # RFC 6749 section 4.4.3
    assert report["scope"] == "device"  # "all" asked for, answered as its alias
    assert (report["status"], report["device_id"]) == (200, created["id"])

    own_url = f"{live_server}/api/v1/device/{created['id']}"
    assert requests.delete(own_url, headers=bearer(pat), timeout=10).status_code == 204

    status, report = _run(command, live_server, created)
    assert status != 0 and not report["ok"], report
    assert (report["stage"], report["error"], report["status"]) == ("token", "invalid_client", 401), report
    assert "disabled" in report["detail"], report
