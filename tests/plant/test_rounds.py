"""The rounds loop shared by the alarm service and the chain's live link."""

from __future__ import annotations

import logging
import threading
import time

from indunet.plant.rounds import Rounds


class Counter(Rounds):
    work = "counting"

    def __init__(self, fail_first: int = 0) -> None:
        self.interval_s = 0.01
        self._init_rounds()
        self.fail_first = fail_first
        self.calls = 0
        self.done = threading.Event()

    def run_once(self) -> None:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise RuntimeError(f"database away ({self.calls})")
        self.rounds += 1
        if self.rounds >= 3:
            self.done.set()


def test_rounds_repeat_until_stopped_and_can_start_again() -> None:
    c = Counter()
    assert not c.running
    c.start()
    c.start()  # a second start is a no-op, not a second thread
    assert c.done.wait(5) and c.running
    c.stop()
    assert not c.running
    after = c.calls
    time.sleep(0.05)
    assert c.calls == after  # stopped means no more rounds
    c.done.clear()
    c.rounds = 0
    c.start()
    assert c.done.wait(5)
    c.stop()


def test_failures_are_counted_logged_once_per_outage_and_recovery_noted(caplog) -> None:
    c = Counter(fail_first=4)
    with caplog.at_level(logging.INFO, logger="indunet.plant.rounds"):
        c.start()
        assert c.done.wait(5)
        c.stop()
    assert c.errors == 4 and c.last_error == "RuntimeError: database away (4)"
    failed = [r for r in caplog.records if "counting failed" in r.getMessage()]
    recovered = [r for r in caplog.records if "counting recovered" in r.getMessage()]
    assert len(failed) == 1 and len(recovered) == 1
