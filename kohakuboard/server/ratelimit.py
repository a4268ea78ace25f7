"""The API rate limit: one token bucket per caller, shared by every worker through the database.

A caller (its token or session, else its address) may make ``rate`` requests a second on
average, in bursts of ``burst``, in total over all workers and hosts. Each request must not pay
a database round trip, so a worker keeps a local view of each caller's bucket and settles it
with the database at most once per :data:`SYNC_EVERY` seconds per caller:

* between two settlements the worker admits a request while its view has a token, refilling
  it at ``rate`` and spending it locally;
* a settlement, in one statement, refills the shared bucket for the time since its last
  change, takes off what this worker spent since its last settlement (capped at ``burst``),
  and replaces the view with the result.

The shared bucket may go below zero (what the workers spent before they saw each other's
requests); a caller in debt is refused everywhere until the refill has paid it back. So over
any period the caller gets at most ``rate`` x seconds + ``burst`` requests, plus what the other
workers admitted before their next settlement: at most (workers - 1) x (burst + rate), once,
not per second. A database that cannot be reached leaves each worker to its local view (the
limit is then per worker, as it would be without the database), and says so in the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .db import Database

logger = logging.getLogger(__name__)

SYNC_EVERY = 1.0  # seconds between two settlements of one caller's bucket by one worker
FORGET_AFTER = 600.0  # a bucket untouched this long is full again: its row can go
MAX_CALLERS = 10_000  # local views kept per worker (the longest idle one goes)


@dataclass
class _View:
    level: float  # tokens this worker believes the caller has
    at: float  # when ``level`` was last refilled
    spent: int = 0  # requests admitted since the last settlement
    settled: float = -1e18  # when the last settlement happened


class SharedRateLimiter:
    """``allow(caller)``: whether one more request of ``caller`` is within the limit."""

    def __init__(
        self,
        db: Database | None,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.time,
        sync_every: float = SYNC_EVERY,
    ) -> None:
        self.db = db
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self.sync_every = sync_every
        self._views: OrderedDict[bytes, _View] = OrderedDict()
        self._lock = threading.Lock()
        self._swept = clock()
        self._warned = False

    def needs_settling(self, caller: bytes) -> bool:
        """Whether :meth:`allow` will talk to the database (callers run it off the event loop
        then)."""
        if self.db is None:
            return False
        with self._lock:
            view = self._views.get(caller)
        return view is None or self.clock() - view.settled >= self.sync_every

    def allow(self, caller: bytes) -> bool:
        now = self.clock()
        with self._lock:
            view = self._views.pop(caller, None)
            if view is None:
                view = _View(level=self.burst, at=now)
            self._views[caller] = view
            while len(self._views) > MAX_CALLERS:
                self._views.popitem(last=False)
            view.level = min(self.burst, view.level + max(0.0, now - view.at) * self.rate)
            view.at = now
            settle = self.db is not None and now - view.settled >= self.sync_every
            spent = view.spent
            if settle:
                view.spent = 0
                view.settled = now
        if settle:
            level = self._settle(caller, spent, now)
            with self._lock:
                if level is not None:
                    # what was spent here since the settlement began is still to be taken off
                    view.level = level - view.spent
                    view.at = now
        with self._lock:
            if view.level >= 1.0:
                view.level -= 1.0
                view.spent += 1
                return True
            return False

    def _settle(self, caller: bytes, spent: int, now: float) -> float | None:
        """Refill the shared bucket, take off ``spent``; its new level (None: no database)."""
        if self.db is None:
            return None
        key = caller.hex()
        try:
            with self.db.transaction() as tx:
                elapsed = (
                    "(CASE WHEN excluded.at > rate_buckets.at THEN excluded.at - rate_buckets.at "
                    "ELSE 0 END)"
                )
                level = tx.value(
                    "INSERT INTO rate_buckets (caller, tokens, at) VALUES (?, ?, ?) "
                    "ON CONFLICT (caller) DO UPDATE SET tokens = CASE WHEN "
                    f"rate_buckets.tokens + {elapsed} * ? - ? > ? THEN ? "
                    f"ELSE rate_buckets.tokens + {elapsed} * ? - ? END, "
                    "at = CASE WHEN excluded.at > rate_buckets.at THEN excluded.at "
                    "ELSE rate_buckets.at END RETURNING tokens",
                    (key, self.burst - spent, now)
                    + (self.rate, spent, self.burst, self.burst, self.rate, spent),
                )
                if now - self._swept > FORGET_AFTER / 10:
                    self._swept = now
                    tx.execute("DELETE FROM rate_buckets WHERE at < ?", (now - FORGET_AFTER,))
        except Exception as exc:  # noqa: BLE001 - the limit must never fail a request
            if not self._warned:
                self._warned = True
                logger.warning("the shared rate limit is kept per worker for now: %s", exc)
            return None
        return None if level is None else float(level)
