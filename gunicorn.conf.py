"""gunicorn settings for the service, and for the bench floor so both run alike."""

import math
import multiprocessing
import os
import subprocess
import sys


def _setting(name, default, kind, minimum, maximum):
    """A number from the environment within its bounds, or the default when unset or empty.
    Otherwise the master stops here, before it binds or boots anything, with one line on
    standard error (a bad value would otherwise surface as a traceback in every worker)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not minimum <= value <= maximum:
        what = "an integer" if kind is int else "a number"
        sys.exit(f"configuration error: {name} must be {what} from {minimum} to {maximum}, "
                 f"got {raw!r}")
    return value


# Never an address the network reaches: gunicorn must face only a reverse proxy that reads
# each request whole before passing it on (nginx does by default: proxy_request_buffering on,
# with its client_header_timeout and client_body_timeout). A gthread thread that has begun to
# read a request waits as long as the client takes to send the rest of its head or body, so
# WEB_CONCURRENCY x GUNICORN_THREADS clients sending slowly hold every thread and nobody else
# is answered. gunicorn (27) has no setting that bounds that read: `timeout` watches the
# worker's main loop, `keepalive` the wait between requests, and its 5 s wait for a new
# connection's first byte is a constant, not a setting.
bind = os.environ.get("BIND", "127.0.0.1:8000")
# gthread keeps client connections alive; sync workers would pay a TCP handshake per request.
worker_class = "gthread"
# (gunicorn itself reads WEB_CONCURRENCY as an integer before this file: a value that is not
# one stops it there, with its own message.)
workers = _setting("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2, int, 1, 512)
threads = _setting("GUNICORN_THREADS", 4, int, 1, 256)
# A worker whose main loop is silent this long is killed and replaced. With gthread, a slow
# request in one of its threads does not silence the loop: once the request has reached the
# service, it is bounded by the service (DATABASE_STATEMENT_TIMEOUT_MS, the connection
# timeouts, and the audit recorder's 30 s window between recording an event and committing
# it); until then, by the buffering proxy in front (see `bind`).
timeout = _setting("GUNICORN_TIMEOUT", 30, int, 1, 3600)
graceful_timeout = 30
keepalive = 5
# Limits on the request line and headers; bodies are capped by MAX_CONTENT_LENGTH in the app.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Forwarded headers are the service's to believe (TRUSTED_PROXIES, through werkzeug's
# ProxyFix), never gunicorn's: by default gunicorn takes the scheme from X-Forwarded-Proto,
# -Ssl and -Protocol, and SCRIPT_NAME and PATH_INFO from headers, of any peer on the loopback,
# which is where a reverse proxy on the same host connects from. A client's `X-Forwarded-Ssl:
# on` that such a proxy passed on made plain http https, with TRUSTED_PROXIES at 0.
forwarded_allow_ips = ""
# ... and on a UNIX socket gunicorn trusts every peer whatever forwarded_allow_ips says: it
# must find no header to believe at all.
secure_scheme_headers = {}
forwarder_headers = ""
# gunicorn 27 opens a control socket at one path per user (~/.gunicorn/gunicorn.ctl): a second
# instance on the host (the bench's floor, another deploy) took it from the first. The service
# is run by its process manager and signals, not through it. Older gunicorns ignore the name.
control_socket_disable = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# gunicorn's default line holds the Basic user (a client id, or a secret sent in its place)
# and the query string (a secret or a token a client put there, though the service refuses
# it): the path alone, and the request id to find the request's events by. ServiceLogger makes
# `%(U)s` the path as sent, still percent-encoded (gunicorn's is decoded: a `%0a` in it began a
# line of the client's choosing), and escapes what any atom holds onto the one line.
access_log_format = ('%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms '
                     '%({x-request-id}o)s')
errorlog = "-"
# ... and gunicorn's warning about a request it refuses itself (a malformed request line or
# header line) quotes the line, query string or header value included: ServiceLogger keeps
# the peer and the kind of error. Named, not imported: gunicorn imports it from the checkout,
# as it does app:app, and whatever reads these settings alone (the bench) needs no path to it.
logger_class = "gunicorn_logging.ServiceLogger"
# How long a thread may hold the GIL while another waits for it. A request's thread gives the
# GIL up at each database round trip and must get it back to go on; with Python's 5 ms default
# it may wait that long behind a thread that is rendering, so requests of several round trips
# (a referral's read or move) queue for the GIL more than for the database. 1 ms measured
# 20-60% more throughput for those at the same floor (bench/, paired runs, 2026-12-04).
# Strictly positive (sys.setswitchinterval refuses 0); a second is already far too long.
_switch_interval = _setting("GIL_SWITCH_INTERVAL", 0.001, float, 0.0001, 1.0)


def post_fork(server, worker):
    sys.setswitchinterval(_switch_interval)


def on_starting(server):
    """Build the service once, in the master, before it forks a worker: a configuration error
    stops gunicorn here with its one line, rather than in each worker at once (the master,
    halting on the first, would trip over the next). In a process of its own, so that the
    master imports none of the service's code (a reload would go on serving it)."""
    if getattr(server.app, "app_uri", None) != "app:app":
        return  # the bench's floor, which shares these settings
    checked = subprocess.run([sys.executable, "-c", "import app; app.app"],
                             capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        sys.stderr.write(checked.stderr[-4000:])
        sys.exit(4)  # gunicorn's "App failed to load"

