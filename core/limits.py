"""Rate limits per client, counted in Redis with the `limits` library when `REDIS_URL` is
set, so every worker and host counts one budget; in the process otherwise (the embedded
default: each worker counts its own).

One fixed window per client and budget. A counted request costs one increment (one Redis
round trip): its answer says the limit and what is left of it; a refused one is 429
`rate-limited` with Retry-After and X-RateLimit-Reset.

The token endpoints' two budgets are auth's (auth/limits.py), counted here.
"""

import contextlib
import functools
import logging
import math
import re
import threading
import time

from flask import Flask, current_app, g
from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.errors import StorageError
from limits.storage import storage_from_string

from core.config import ConfigError
from core.errors import Problem, unavailable
from core.outage import Outage

log = logging.getLogger(__name__)
_STORAGE = "rate_limit_storage"


@functools.cache
def _limit(text: str) -> RateLimitItem:
    """One limit ("1200 per minute") of at least one request. Raises ValueError for anything
    else, a list included: one counter is kept per budget."""
    items = parse_many(text)
    if len(items) != 1:
        raise ValueError(f"one limit, such as '1200 per minute', not {text!r}")
    if items[0].amount < 1:
        # `0 per minute` would refuse every counted call: a closed service, not a budget.
        raise ValueError(f"a limit of at least one request, such as '1200 per minute', "
                         f"not {text!r}")
    return items[0]


def count(budget: str, *who: str) -> None:
    """Count one request of `who` against the budget named by the setting `budget`
    (`RATE_LIMIT_API`, `RATE_LIMIT_TOKEN`). Raises Problem 429 when it is used up."""
    limit = _limit(current_app.config[budget])
    key = limit.key_for(budget, *who)
    storage = current_app.extensions[_STORAGE]
    with _reachable():
        used = storage.incr(key, limit.get_expiry())
        resets_at = storage.get_expiry(key) if used > limit.amount else None
    g.rate_limit = (limit.amount, max(0, limit.amount - used))
    if resets_at is not None:
        raise _rate_limited(limit, resets_at, "This client is over its rate limit")


def reserve(budget: str, *who: str):
    """Count one request of `who` against the budget before it is served, and refuse it
    (Problem 429) when that goes past the budget; returns what gives the place back (once the
    request turns out not to be one this budget counts). Requests in flight at once each take
    a place: a look before and a count after let every one of them through (40 wrong secrets
    at once had 8 to 11 checked against a budget of 5)."""
    limit = _limit(current_app.config[budget])
    key = limit.key_for(budget, *who)
    storage = current_app.extensions[_STORAGE]
    with _reachable():
        used = storage.incr(key, limit.get_expiry())
        resets_at = storage.get_expiry(key) if used > limit.amount else None
    g.rate_limit = (limit.amount, max(0, limit.amount - used))
    if resets_at is not None:
        raise _rate_limited(limit, resets_at, "Too many requests that authenticated no "
                            "client, for this client id from this address")

    def give_back() -> None:
        with _reachable():
            storage.incr(key, limit.get_expiry(), amount=-1)

    return give_back


_outage = Outage(log, failing="rate-limit counters unreachable (%s) for %.0f s: counted "
                                 "requests are refused 503",
                 recovered="rate-limit counters reachable again after %.0f s")


@contextlib.contextmanager
def _reachable():
    try:
        yield
    except StorageError as error:
        # The counters are unreachable (Redis down): refuse rather than serve unmetered.
        _outage.failed(error)
        raise unavailable("The request could not be completed; retry shortly") from None
    _outage.answered()


def _rate_limited(limit: RateLimitItem, resets_at: float, what: str) -> Problem:
    return Problem(
        "rate-limited", f"{what} ({limit}); retry after the seconds Retry-After gives",
        headers={"Retry-After": str(max(1, math.ceil(resets_at - time.time()))),
                 "X-RateLimit-Reset": str(math.ceil(resets_at))},
    )


class ProcessCounters:
    """The fixed-window counters of one process, for the embedded default (no `REDIS_URL`).

    The calls `count` and `reserve` make, with the meaning of the `limits`
    storages. Not the `limits` library's MemoryStorage: its expiry timer is started without a
    lock, and threads of one gthread worker counting at once meet "threads can only be started
    once" (a 500; alisaifee/limits#26); it also starts a thread every 10 ms to expire keys.
    """

    def __init__(self, clock=time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, list] = {}  # key -> [window end (epoch s), requests]
        self._next_sweep = 0.0

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add `amount` to the key's window, opening a new window of `expiry` seconds when
        the last one has ended; the window's count."""
        at = self._clock()
        with self._lock:
            if at >= self._next_sweep:  # forget ended windows, at most once a second
                self._windows = {k: w for k, w in self._windows.items() if w[0] > at}
                self._next_sweep = at + 1
            window = self._windows.get(key)
            if window is None or window[0] <= at:
                window = self._windows[key] = [at + expiry, 0]
            window[1] += amount
            return window[1]

    def get_expiry(self, key: str) -> float:
        """When the key's window ends (epoch seconds); now when it has none."""
        with self._lock:
            window = self._windows.get(key)
        return window[0] if window is not None else self._clock()


def _say_budget(response):
    counted = g.get("rate_limit")
    if counted is not None:
        response.headers["X-RateLimit-Limit"] = str(counted[0])
        response.headers["X-RateLimit-Remaining"] = str(counted[1])
    return response


def init_app(app: Flask) -> None:
    """The counters' storage, and the budget headers on every counted answer. Raises
    ConfigError for a budget that is not one limit ("1200 per minute"), or a REDIS_URL the
    `limits` library cannot use."""
    for budget in ("RATE_LIMIT_API", "RATE_LIMIT_TOKEN"):
        try:
            _limit(app.config[budget])
        except ValueError as error:
            raise ConfigError(f"{budget}: {error}") from None
    redis_url = app.config.get("REDIS_URL")
    app.extensions[_STORAGE] = _redis(redis_url) if redis_url else ProcessCounters()
    app.after_request(_say_budget)


def _redis(url: str):
    """The `limits` storage of a Redis URL (connected at its first use). Raises ConfigError,
    without the URL (it may hold a password), when the library refuses it."""
    try:
        storage = storage_from_string(url, wrap_exceptions=True)
        pool = getattr(getattr(storage, "storage", None), "connection_pool", None)
        # redis-py hands the URL's options to each connection it makes, at a request's first
        # count: one it does not take (`timeout` for `socket_timeout`) is a TypeError then,
        # and every counted request a 500. Made once here (no connection is opened), it stops
        # the start instead.
        if pool is not None:
            pool.connection_class(**pool.connection_kwargs)
    except TypeError as error:
        option = re.search(r"argument '(\w+)'", str(error))
        raise ConfigError(
            "REDIS_URL holds an option the Redis client does not take"
            + (f" ({option.group(1)})" if option else "")) from None
    except (LimitsConfigurationError, ValueError) as error:
        raise ConfigError(
            f"REDIS_URL cannot be used for the rate limits ({type(error).__name__})") from None
    return storage
