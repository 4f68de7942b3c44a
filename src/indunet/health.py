"""The state of a dependency (the historian's database, the MQTT broker) as operations see it.

One owner updates it (`failed` when a call to the dependency fails, `ok` when one succeeds);
`/health` shows it. A change of state is logged once — "unavailable, waiting" at WARNING,
"back after N s" at INFO — never once per retry.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

__all__ = ["DependencyState"]

log = logging.getLogger("indunet.health")


def _now_ms() -> int:
    return int(time.time() * 1000)


class DependencyState:
    """Up or down since when, and the last error with its time (cleared on recovery)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.since_ms = _now_ms()
        self.last_error: str | None = None
        self.last_error_ms: int | None = None
        self.last_outage_s: float | None = None  # length of the last outage, once it ended
        self._lock = threading.Lock()

    def failed(self, error: str) -> None:
        """Record a failure; the first one of an outage is logged."""
        now = _now_ms()
        with self._lock:
            was_up = self.up
            self.up = False
            self.last_error, self.last_error_ms = error, now
            if was_up:
                self.since_ms = now
        if was_up:
            log.warning("%s is unavailable, waiting for it: %s", self.name, error)

    def ok(self) -> None:
        """Record a success; the end of an outage is logged and its error cleared."""
        if self.up:  # the common case: no lock
            return
        now = _now_ms()
        with self._lock:
            if self.up:
                return
            self.last_outage_s = (now - self.since_ms) / 1000
            self.up, self.since_ms = True, now
            self.last_error = self.last_error_ms = None
        log.info("%s is back after %.1f s", self.name, self.last_outage_s)

    def as_dict(self) -> dict[str, Any]:
        """Return the state for /health."""
        with self._lock:
            return {
                "name": self.name,
                "state": "up" if self.up else "down",
                "since_ms": self.since_ms,
                "last_error": self.last_error,
                "last_error_ms": self.last_error_ms,
                "last_outage_s": self.last_outage_s,
            }
