"""gunicorn settings for the service, and for the bench floor so both run alike."""

import multiprocessing
import os
import sys

bind = os.environ.get("BIND", "127.0.0.1:8000")
# gthread keeps client connections alive; sync workers would pay a TCP handshake per request.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A request that runs longer than this is killed rather than left to hold a worker.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Limits on the request line and headers; bodies are capped by MAX_CONTENT_LENGTH in the app.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# How long a thread may hold the GIL while another waits for it. A request's thread gives the
# GIL up at each database round trip and must get it back to go on; with Python's 5 ms default
# it may wait that long behind a thread that is rendering, so requests of several round trips
# (a referral's read or move) queue for the GIL more than for the database. 1 ms measured
# 20-60% more throughput for those at the same floor (bench/, paired runs, 2026-12-04).
_switch_interval = float(os.environ.get("GIL_SWITCH_INTERVAL", "0.001"))


def post_fork(server, worker):
    sys.setswitchinterval(_switch_interval)
