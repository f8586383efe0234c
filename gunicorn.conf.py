"""gunicorn settings for the service, and for the bench floor so both run alike."""

import multiprocessing
import os

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
