"""An outage of something the service depends on, for the log: a WARNING when it begins, once
a minute while it lasts, and one when it ends, rather than nothing or a line for each of
thousands of failed attempts."""

import logging
import threading
import time


class Outage:
    """One dependency's outage state, shared by every thread of a process."""

    REMIND_SECONDS = 60

    def __init__(self, log: logging.Logger, *, failing: str, recovered: str):
        """`failing` is formatted with the error's type and the seconds the outage has
        lasted; `recovered` with the seconds it lasted."""
        self.log, self.failing, self.recovered = log, failing, recovered
        self.since = self.said = None
        self.lock = threading.Lock()

    def failed(self, error: Exception) -> None:
        moment = time.monotonic()
        with self.lock:
            if self.since is None:
                self.since = moment
            since, due = self.since, self.said is None or moment - self.said >= self.REMIND_SECONDS
            if due:
                self.said = moment
        if due:
            self.log.warning(self.failing, type(error).__name__, moment - since)

    def answered(self) -> None:
        """It worked: the outage, if one was under way, is over."""
        if self.since is None:  # the common case: no outage, no lock taken
            return
        with self.lock:
            since, self.since, self.said = self.since, None, None
        if since is not None:  # another thread may have ended it first
            self.log.warning(self.recovered, time.monotonic() - since)
