"""Brute-force protection for password login: per-user and per-address failure counts, backoff.

After ``limit`` failures within ``window_s`` a key (user name or client address) is locked for
``base_s × 2^(extra failures)`` seconds, capped at ``max_s``. While locked, logins are refused
without checking the password, so a guesser gains nothing by hammering. Counts live in memory
(one process); time is passed in.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

__all__ = ["LoginThrottle"]


@dataclass
class _Track:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginThrottle:
    """Count failed logins per user name and per address; tell how long to wait."""

    def __init__(
        self,
        *,
        per_user: int,
        per_ip: int,
        window_s: float,
        base_s: float,
        max_s: float,
        max_tracked: int = 100_000,
    ) -> None:
        self.limits = {"user": per_user, "ip": per_ip}
        self.window_s = window_s
        self.base_s = base_s
        self.max_s = max_s
        self.max_tracked = max_tracked
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._lock = threading.Lock()

    def wait_s(self, user: str, ip: str, now: float) -> float:
        """Return how many seconds the caller must wait before trying again (0: go ahead)."""
        with self._lock:
            waits = [
                t.locked_until - now
                for key in (("user", user.lower()), ("ip", ip))
                if (t := self._tracks.get(key)) is not None
            ]
        return max([0.0, *waits])

    def failed(self, user: str, ip: str, now: float) -> float:
        """Record a failed login; return the lock-out it starts (0 while under the limit)."""
        out = 0.0
        with self._lock:
            if len(self._tracks) >= self.max_tracked:
                self._forget(now)
            for kind, key in (("user", user.lower()), ("ip", ip)):
                track = self._tracks.setdefault((kind, key), _Track())
                while track.failures and track.failures[0] <= now - self.window_s:
                    track.failures.popleft()
                track.failures.append(now)
                over = len(track.failures) - self.limits[kind]
                if over >= 0:
                    wait = min(self.max_s, self.base_s * (2**over))
                    track.locked_until = max(track.locked_until, now + wait)
                    out = max(out, wait)
        return out

    def succeeded(self, user: str, ip: str) -> None:
        """Forget a user's failures after a good login (the address keeps its count)."""
        with self._lock:
            self._tracks.pop(("user", user.lower()), None)

    def _forget(self, now: float) -> None:
        """Drop tracks with no recent failure and no lock (bounds memory under a flood)."""
        for key in [
            k
            for k, t in self._tracks.items()
            if t.locked_until <= now and (not t.failures or t.failures[-1] <= now - self.window_s)
        ]:
            del self._tracks[key]
