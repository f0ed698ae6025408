"""gunicorn settings for `make run` and production. Every knob comes from the environment.

gunicorn reads ./gunicorn.conf.py by default, so the test suite's live servers
(tests/helpers.LiveServer) run with these settings too; command-line flags override them.

    BIOWEB_BIND                  address to listen on (default 127.0.0.1:8000)
    WEB_CONCURRENCY              worker processes (default 2 x CPUs, at most 4)
    BIOWEB_THREADS               threads per worker (default 1: sync workers; >1: gthread)
    BIOWEB_TIMEOUT               seconds a silent worker lives before it is killed (default 30)
    BIOWEB_GRACEFUL_TIMEOUT      seconds in-flight requests get after SIGTERM (default 20)
    BIOWEB_KEEPALIVE             seconds an idle keep-alive connection is kept (gthread only; default 5)
    BIOWEB_MAX_REQUESTS          recycle a worker after this many requests (default 0: never)
    BIOWEB_ACCESS_LOG            access log file, "-" for stdout (default), "" to turn it off
    BIOWEB_FORWARDED_ALLOW_IPS   proxies trusted for X-Forwarded-Proto (default 127.0.0.1,::1)
    BIOWEB_CONTROL_SOCKET        path of gunicorn's control socket (default: none)
"""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = os.environ.get("BIOWEB_BIND", "127.0.0.1:8000")
workers = _int("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2))
threads = _int("BIOWEB_THREADS", 1)
# Stated rather than inferred, so the log says which worker type is running.
worker_class = "gthread" if threads > 1 else "sync"
timeout = _int("BIOWEB_TIMEOUT", 30)
# On SIGTERM (a deploy, a scale-down) workers stop accepting and get this long to finish.
graceful_timeout = _int("BIOWEB_GRACEFUL_TIMEOUT", 20)
keepalive = _int("BIOWEB_KEEPALIVE", 5)
max_requests = _int("BIOWEB_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
# No preloading: each worker builds its own app, so no database connection or pool is ever
# shared across a fork.
preload_app = False
# The worker heartbeat file lives on tmpfs where there is one (a disk-backed /tmp in a
# container can stall heartbeats and get healthy workers killed).
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
forwarded_allow_ips = os.environ.get("BIOWEB_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# gunicorn >= 25.1 opens a control socket at one fixed per-user path by default; several
# instances on one host (N app processes, the test suite's servers) would steal it from each
# other. Off unless a path is given.
_control_socket = os.environ.get("BIOWEB_CONTROL_SOCKET", "").strip()
if _control_socket:
    control_socket = _control_socket
else:
    control_socket_disable = True

accesslog = os.environ.get("BIOWEB_ACCESS_LOG", "-") or None
errorlog = "-"
# Nothing secret in the access log: the path without its query string (%(U)s), never the
# request line, headers (Authorization), referer or bodies. Timing in milliseconds.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
proc_name = "bioweb"


def _rate_limits_counted_in_memory() -> bool:
    """Whether the app counts rate limits in each process's memory (bioweb/config.py's defaults:
    limits on, RATELIMIT_STORAGE_URI memory://). Read from the environment here, so the master
    process never imports the app."""
    enabled = os.environ.get("RATELIMIT_ENABLED", "").strip().lower()
    if enabled and enabled not in {"1", "true", "yes", "on"}:
        return False
    return (os.environ.get("RATELIMIT_STORAGE_URI", "") or "memory://").startswith("memory://")


def when_ready(server):
    """At start: with several workers and in-memory rate-limit storage, each worker counts alone,
    so every limit (failed passwords, /token) lets through about `workers` times its number."""
    workers = server.cfg.workers
    if workers > 1 and _rate_limits_counted_in_memory():
        server.log.warning(
            "bioweb: %d workers count rate limits in memory, each alone: every limit (failed "
            "password checks, /token) is in effect %d times as high. Set RATELIMIT_STORAGE_URI "
            "to redis://host:6379/0 to share one count.",
            workers,
            workers,
        )
