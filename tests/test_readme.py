"""The README's walkthrough runs top to bottom as written (issue 14): its ```shell blocks, in
order, as one bash script with `set -euo pipefail`, against a live gunicorn on a fresh
database, the way a reader pastes them into a terminal beside `make run`.

Two changes to the text, both mechanical: the README's server address
(http://127.0.0.1:8000, and the published sample's http://localhost:8000) becomes the test
server's free port, so the test runs beside other servers and under pytest-xdist; and
`.venv/bin/` becomes the directory of this interpreter (the same .venv in a checkout).
One addition: `curl` runs with --fail-with-body, so any answer of 400 or more stops the
script, where plain curl would print the error and carry on with exit status 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import CLI_ENV, ROOT

pytestmark = pytest.mark.server

README = ROOT / "README.md"
README_BASE_URLS = ("http://127.0.0.1:8000", "http://localhost:8000")
# Shell blocks that are not walkthrough steps, by their first line: `make run` is the server the
# test starts itself (it would serve forever); the command-line synopsis has placeholders.
NOT_RUN = {
    "make run": "the test's own live server plays make run's part",
    "flask --app app users create EMAIL": "a synopsis of the CLI, with placeholders",
}
BLOCK_MARK = "::readme-block {}::"


def shell_blocks(text: str) -> list[str]:
    """The bodies of the ```shell fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```shell[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M)


def walkthrough(text: str) -> list[str]:
    """The blocks a reader runs, in order: every ```shell block but the NOT_RUN ones."""
    blocks = shell_blocks(text)
    skipped = [b for b in blocks if b.lstrip().startswith(tuple(NOT_RUN))]
    assert len(skipped) == len(NOT_RUN), "a NOT_RUN block is gone from the README: update NOT_RUN"
    return [b for b in blocks if b not in skipped]


def script(blocks: list[str], base_url: str) -> str:
    parts = [
        "set -euo pipefail",
        'curl() { command curl --fail-with-body --silent --show-error "$@"; }',
    ]
    for number, block in enumerate(blocks):
        # On a line of its own: curl's answers end without a newline.
        parts += [f"printf '\\n{BLOCK_MARK.format(number)}\\n'", block]
    text = "\n".join(parts)
    for url in README_BASE_URLS:
        text = text.replace(url, base_url)
    assert ":8000" not in text, "a README address the test does not rewrite"
    return text.replace(".venv/bin/", f"{Path(sys.executable).parent}/")


def test_shell_blocks_are_found():
    blocks = walkthrough(README.read_text())
    assert len(blocks) >= 4
    assert "users create me@example.com --password-stdin" in blocks[0]


def test_readme_walkthrough_runs_top_to_bottom(live_server: str, database_url: str, tmp_path: Path) -> None:
    if shutil.which("jq") is None:
        message = "jq is not installed (.ci/run installs it with apt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    blocks = walkthrough(README.read_text())
    path = tmp_path / "walkthrough.sh"
    path.write_text(script(blocks, live_server))
    env = {**os.environ, **CLI_ENV, "DATABASE_URL": database_url}
    run = subprocess.run(["bash", str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    outputs = re.split(r"^::readme-block (\d+)::$\n?", run.stdout, flags=re.M)
    by_block = dict(zip(map(int, outputs[1::2]), outputs[2::2], strict=True))
    last = max(by_block, default=-1)
    assert run.returncode == 0, (
        f"block {last} failed (exit {run.returncode}):\n{blocks[last] if last >= 0 else ''}\n"
        f"--- stdout of that block:\n{by_block.get(last, '')[-3000:]}\n--- stderr:\n{run.stderr[-3000:]}"
    )
    assert len(by_block) == len(blocks)
    assert '"error"' not in run.stdout

    every = "\n".join(by_block.values())
    # The account and its token; the published sample calls: create answers the credentials once.
    assert "Created user 1 <me@example.com>" in every
    assert re.search(r'"oauth2_client_secret":\s*"bcs_', every)
    # The device's side: its own token, introspected as active, then revoked.
    assert re.search(r'"access_token":\s*"bcd_', every) and re.search(r'"device_id":\s*2,', every)
    assert re.search(r'"active":\s*true', every)
    # Samples: a batch stored once, then recognised as duplicates.
    assert re.search(r'"accepted":\s*2,', every) and re.search(r'"duplicates":\s*2,', every)
    # A week of generated heart rate, and figures of it.
    assert re.search(r'"accepted":\s*2016', every)
    assert re.search(r'"avg_today":', every)
