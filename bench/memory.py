"""What a bioweb worker's resident memory is made of: VmRSS after each import, in a fresh process.

    .venv/bin/python bench/memory.py [--database-url URL]

Each line imports one more module (cumulatively, in the order a worker meets them) and
reports the process's VmRSS and the growth. Then it builds the app and serves one request
through the test client. The biggest steps are the candidates for lazy imports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from bench import seed

STEPS = [
    "flask",
    "sqlalchemy",
    "sqlalchemy.orm",
    "flask_sqlalchemy",
    "psycopg",
    "wtforms",
    "flask_wtf",
    "email_validator",
    "flask_login",
    "flask_limiter",
    "alembic",
    "flask_migrate",
    "authlib.integrations.flask_oauth2",
    "bioweb",
]

CHILD = r"""
import importlib, json, os, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
out = [("python", rss(), len(sys.modules))]
for name in {steps!r}:
    importlib.import_module(name)
    out.append((name, rss(), len(sys.modules)))
from bioweb import create_app
app = create_app({{"SQLALCHEMY_DATABASE_URI": {url!r}}})
out.append(("create_app()", rss(), len(sys.modules)))
with app.app_context():
    from bioweb.extensions import db
    db.create_all()
client = app.test_client()
client.get("/healthz")
out.append(("first request (/healthz)", rss(), len(sys.modules)))
optional = ("alembic", "dns", "redis", "email_validator", "mako")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in optional)
label = "modules of " + "/".join(optional) + " loaded: " + str(len(heavy))
out.append((label, rss(), len(sys.modules)))
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="sqlite:///:memory:")
    args = parser.parse_args(argv)
    env = {**os.environ, **seed.server_env(args.database_url)}
    code = CHILD.format(steps=STEPS, url=args.database_url)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    previous = None
    print(f"{'step':60} {'VmRSS MiB':>10} {'+MiB':>7} {'modules':>8}")
    for name, rss, modules in json.loads(done.stdout.splitlines()[-1]):
        delta = "" if previous is None else f"{rss - previous:+7.1f}"
        print(f"{name:60} {rss:10.1f} {delta:>7} {modules:8d}")
        previous = rss
    return 0


if __name__ == "__main__":
    sys.exit(main())
