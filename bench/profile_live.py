"""Sample the gunicorn workers of bioweb with py-spy while wrk drives one benchmarked request.

    .venv/bin/pip install py-spy        # a profiling tool, deliberately not in requirements
    .venv/bin/python bench/profile_live.py [--backend sqlite|postgresql] [--seconds 10] [--only token,...]

Same server setup as bench/run.py (fresh seeded database, gunicorn.conf.py, 4 workers).
Prints, per request kind: where the workers spend their samples, by library of the
innermost frame and by function (inclusive: share of samples with the function anywhere on
the stack). This is the production path, gunicorn and its access log included, which the
in-process profile of bench/hotpaths.py leaves out.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench import loadgen, seed, servers
from bench.run import ROOT, BenchDatabase, load_specs, options
from bioweb.config import normalize_database_url

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"


def library(frame: str) -> str:
    """'func (path:line)' -> the package the frame belongs to."""
    path = frame.rsplit("(", 1)[-1]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/bioweb/" in path:
        return "bioweb"
    return "stdlib/other"


def _function(frame: str) -> str:
    """'func (/path/to/pkg/mod.py:123)' -> 'func (pkg/mod.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


def analyse(raw: Path, top: int) -> None:
    """Print shares from py-spy's raw (collapsed stack) output."""
    inclusive: Counter[str] = Counter()
    leaf_library: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        total += count
        leaf_library[library(frames[-1])] += count
        # One count per function and stack, whatever its line (recursion and loops repeat it).
        for name in {_function(f) for f in frames}:
            inclusive[name] += count
    if not total:
        print("no samples")
        return
    print(f"{total} samples")
    print("innermost frame by library:")
    for name, count in leaf_library.most_common(10):
        print(f"    {name:24} {count / total:6.1%}")
    print(f"top {top} functions, inclusive:")
    for name, count in inclusive.most_common(top):
        print(f"    {count / total:6.1%}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", default=None, help="comma-separated spec names")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--baseline", action="store_true", help="sample the bare baseline app instead")
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        raise SystemExit("install py-spy first: .venv/bin/pip install py-spy")
    opts = options([])
    import sqlalchemy as sa

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = BenchDatabase(args.backend, opts, work)
        db.create()
        engine = sa.create_engine(normalize_database_url(db.url))
        server = None
        try:
            data = seed.seed_load_data(engine)
            env = seed.server_env(db.url)  # the key the seeded device tokens are signed with
            logs = ROOT / "bench" / "out" / "profile-live"  # kept: a crashed worker explains itself there
            logs.mkdir(parents=True, exist_ok=True)
            if args.baseline:
                server = servers.start(
                    "baseline",
                    "baseline:app",
                    cwd=servers.BENCH,
                    env=env,
                    log_dir=work,
                    health_path="/",
                    workers=opts.workers,
                )
            else:
                server = servers.start("bioweb", env=env, log_dir=logs, workers=opts.workers)
            for spec in load_specs(data):
                if args.only and spec.name not in args.only.split(","):
                    continue
                loadgen.run_wrk(server.url, spec, opts.threads, opts.connections, 2)  # warm-up
                raw = work / f"{spec.name}.txt"
                spy = subprocess.Popen(
                    [str(PY_SPY), "record", "--pid", str(server.process.pid), "--subprocesses",
                     "--rate", "200", "--duration", str(args.seconds), "--format", "raw", "--full-filenames",
                     "--output", str(raw), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                # py-spy samples in the background for as long as wrk drives the server.
                result = loadgen.run_wrk(server.url, spec, opts.threads, opts.connections, args.seconds)
                spy.wait(timeout=60)
                print(
                    f"\n## {spec.label}: {result.rps:.0f} req/s while sampled ({server.name}, {args.backend})"
                )
                analyse(raw, args.top)
                if (keep := ROOT / "bench" / "out").exists():
                    shutil.copy(raw, keep / f"py-spy-{args.backend}-{spec.name}.txt")
        finally:
            if server is not None:
                server.stop()
            engine.dispose()
            db.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
