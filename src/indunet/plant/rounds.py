"""A background service that works in rounds: one round every interval, in a daemon thread.

A round that fails is retried at the next interval; the failure is counted, kept as
``last_error`` and logged once per outage (and the recovery once), so a database that is away
for an hour does not write a traceback a minute.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["Rounds"]

log = logging.getLogger(__name__)


class Rounds:
    """Mixin: ``start()`` runs ``run_once()`` every ``interval_s`` until ``stop()``.

    The class sets ``thread_name`` and ``work`` (what a round does, for the log); instances set
    ``interval_s`` and call ``_init_rounds()`` in their constructor.
    """

    thread_name = "indunet-rounds"
    work = "round"
    interval_s: float

    def _init_rounds(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.errors = 0
        self.last_error: str | None = None

    def run_once(self) -> Any:
        """Do one round (subclasses)."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """Whether the background thread runs."""
        return self._thread is not None

    def start(self) -> None:
        """Run rounds in a background thread (again after a stop)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.run_once()
                if failing:
                    log.info("%s recovered", self.work)
                failing = False
            except Exception as exc:  # retried next round; logged once per outage
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if not failing:
                    log.exception("%s failed; retrying every %s s", self.work, self.interval_s)
                failing = True
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def wake(self) -> None:
        """Run the next round now instead of at the end of the interval."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread (waits for the round in progress, at most 30 s)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
