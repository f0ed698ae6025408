"""gunicorn settings for `make run` and production. Every knob comes from the environment."""

import multiprocessing
import os

bind = os.environ.get("BIOWEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("BIOWEB_THREADS", "1"))
timeout = int(os.environ.get("BIOWEB_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("BIOWEB_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
accesslog = os.environ.get("BIOWEB_ACCESS_LOG", "-")
errorlog = "-"
# No query strings, headers or bodies in the access log: request line path only.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
