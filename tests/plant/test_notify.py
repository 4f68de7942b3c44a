"""Webhook notification against a real local HTTP server: signatures, retries, the outbox."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from indunet.errors import DataError
from indunet.plant.alarms import (
    AlarmEngine,
    AlarmEvent,
    AlarmState,
    EventKind,
    Priority,
    load_rules,
)
from indunet.plant.notify import (
    SIGNATURE_HEADER,
    Delivery,
    Outbox,
    WebhookSender,
    WebhookTarget,
    backoff_s,
    sign,
    verify_signature,
)

SECRET = "9f1c2b7e4d5a6c3b8e0f1a2d"
T = "s1/press/l1/m1/temp_c"


class Receiver:
    """A real HTTP endpoint that answers ``fail_with`` for the first ``fail_first`` requests."""

    def __init__(self, fail_first: int = 0, fail_with: int = 503, retry_after: str | None = None):
        self.fail_first = fail_first
        self.fail_with = fail_with
        self.retry_after = retry_after
        self.requests: list[tuple[dict[str, str], bytes, str | None]] = []
        self.arrived = 0
        self.gate: threading.Event | None = None
        self.done = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.done:
                    receiver.arrived += 1
                    receiver.done.notify_all()
                if receiver.gate is not None:
                    receiver.gate.wait(30)
                try:
                    verify_signature(
                        SECRET, body, self.headers.get(SIGNATURE_HEADER), now_s=time.time()
                    )
                    problem = None
                except DataError as exc:
                    problem = str(exc)
                with receiver.done:
                    receiver.requests.append((dict(self.headers), body, problem))
                    n = len(receiver.requests)
                    receiver.done.notify_all()
                code = receiver.fail_with if n <= receiver.fail_first else 204
                self.send_response(code)
                if code != 204 and receiver.retry_after:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, n: int, timeout: float = 20) -> None:
        with self.done:
            assert self.done.wait_for(lambda: len(self.requests) >= n, timeout), self.requests

    def wait_arrived(self, n: int, timeout: float = 20) -> None:
        with self.done:
            assert self.done.wait_for(lambda: self.arrived >= n, timeout)

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator:
    made: list[Receiver] = []

    def make(**kw: object) -> Receiver:
        r = Receiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def target(url: str, **kw: object) -> WebhookTarget:
    return WebhookTarget(
        name="ops",
        url=url,
        secret=SECRET,
        backoff_base_s=0.01,
        backoff_cap_s=0.05,
        timeout_s=5,
        **kw,
    )


def raised_event(priority: Priority = Priority.HIGH, kind: EventKind = EventKind.RAISED):
    return AlarmEvent(
        kind=kind,
        alarm_id=f"hi@{T}",
        rule_id="hi",
        source=T,
        ts_ms=1000,
        state=AlarmState.UNACK,
        priority=priority,
        value=float("nan"),
    )


def wait_until(check, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


# ----------------------------------------------------------------------------- signature


def test_signature_round_trip_and_rejections():
    body = b'{"a":1}'
    header = sign(SECRET, body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    verify_signature(SECRET, body, header, now_s=1_700_000_100)
    # secret rotation: several v1 values, one matches
    verify_signature(SECRET, body, f"{header},v1=deadbeef", now_s=1_700_000_000)
    cases = [
        (SECRET, b'{"a":2}', header, 1_700_000_000, "does not match"),
        ("another-secret-123456", body, header, 1_700_000_000, "does not match"),
        (SECRET, body, header, 1_700_000_301, "more than 300 s"),
        (SECRET, body, None, 1_700_000_000, "no X-Indunet-Signature"),
        (SECRET, body, "v1=abc", 1_700_000_000, "no valid t="),
        (SECRET, body, "t=x,v1=abc", 1_700_000_000, "no valid t="),
    ]
    for secret, b, h, now, words in cases:
        with pytest.raises(DataError, match=words):
            verify_signature(secret, b, h, now_s=now)


def test_backoff_is_exponential_capped_and_jittered():
    rng = random.Random(3)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 60), (30, 60)]:
        waits = [backoff_s(attempt, base_s=1, cap_s=60, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 100  # jittered, not all the same


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"url": "ftp://x/y"}, "url"),
        ({"secret": "short"}, "secret"),
        ({"secret": "aaaaaaaaaaaaaaaaaaaa"}, "secret"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"name": "bad name"}, "name"),
    ],
)
def test_target_validation_names_the_field(kw, field):
    args = {"name": "ops", "url": "http://127.0.0.1:1/x", "secret": SECRET, **kw}
    with pytest.raises(ValidationError) as exc:
        WebhookTarget(**args)
    assert exc.value.errors()[0]["loc"] == (field,)


def test_target_filters_priority_and_kind():
    t = target("http://127.0.0.1:1/x", min_priority="high", kinds=["raised"])
    assert t.wants(raised_event(Priority.URGENT))
    assert t.wants(raised_event(Priority.HIGH))
    assert not t.wants(raised_event(Priority.MEDIUM))
    assert not t.wants(raised_event(Priority.HIGH, EventKind.RETURNED))


# ----------------------------------------------------------------------------- real HTTP


def test_retries_until_the_endpoint_accepts(receiver_factory):
    rx = receiver_factory(fail_first=2, fail_with=503)
    sender = WebhookSender([target(rx.url)])
    sender.start()
    try:
        assert sender.submit([raised_event()]) == 1
        rx.wait_for(3)
        wait_until(lambda: sender.status()["delivered"] == 1)
    finally:
        sender.stop()
    ids = {h["X-Indunet-Delivery"] for h, _, _ in rx.requests}
    assert len(ids) == 1  # the same delivery id on every retry, for receiver dedupe
    assert [h["X-Indunet-Attempt"] for h, _, _ in rx.requests] == ["1", "2", "3"]
    assert [problem for _, _, problem in rx.requests] == [None, None, None]  # signatures valid
    body = json.loads(rx.requests[-1][1])
    assert body["type"] == "alarm.raised" and body["event"]["alarm_id"] == f"hi@{T}"
    assert body["event"]["value"] is None  # NaN is not valid JSON
    assert rx.requests[-1][0]["X-Indunet-Event"] == "alarm.raised"
    status = sender.status()
    assert (status["retried"], status["failed"], status["pending"]) == (2, 0, 0)


def test_permanent_http_error_is_kept_as_failed_without_retries(receiver_factory):
    rx = receiver_factory(fail_first=99, fail_with=400)
    sender = WebhookSender([target(rx.url)])
    sender.start()
    try:
        sender.submit([raised_event()])
        wait_until(lambda: sender.status()["failed"] == 1)
    finally:
        sender.stop()
    assert len(rx.requests) == 1
    failed = sender.outbox.failed[0]
    assert failed.status == "failed" and "HTTP 400" in (failed.last_error or "")


def test_endpoint_down_then_back_up(receiver_factory):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sender = WebhookSender([target(f"http://127.0.0.1:{port}/hook", max_attempts=3)])
    sender.start()
    try:
        sender.submit([raised_event()])
        wait_until(lambda: sender.status()["failed"] == 1)
        failed = sender.outbox.failed[0]
        assert failed.attempts == 3 and "attempt 3 of 3" in (failed.last_error or "")
        assert "refused" in (failed.last_error or "").lower()
        # the endpoint is fixed: the operator re-queues the failed deliveries
        rx = receiver_factory()
        sender.targets["ops"] = target(rx.url)
        assert sender.retry_failed() == 1
        rx.wait_for(1)
        wait_until(lambda: sender.status()["delivered"] == 1)
    finally:
        sender.stop()
    assert sender.status()["failed"] == 0


def test_submit_never_blocks_and_a_full_outbox_loses_nothing_silently(receiver_factory):
    rx = receiver_factory()
    rx.gate = threading.Event()  # the endpoint hangs until the gate opens
    sender = WebhookSender([target(rx.url)], outbox=Outbox(max_pending=3))
    sender.start()
    try:
        sender.submit([raised_event()])
        rx.wait_arrived(1)  # the sender thread is now stuck in the first POST
        # while it is stuck, submitting still returns at once (else this test would hang)
        assert sender.submit([raised_event() for _ in range(5)]) == 3
        status = sender.status()
        assert (status["pending"], status["overflow"], status["failed"]) == (3, 2, 2)
        assert status["in_flight"] == 1
        assert all("outbox full" in (d.last_error or "") for d in sender.outbox.failed)
        rx.gate.set()
        wait_until(lambda: sender.status()["delivered"] == 4)
    finally:
        sender.stop()


def test_engine_events_end_to_end(receiver_factory):
    rx = receiver_factory(fail_first=1, retry_after="0")
    engine = AlarmEngine(load_rules([{"id": "hi", "kind": "high", "tag": T, "limit": 100}]))
    sender = WebhookSender([target(rx.url, kinds=["raised", "returned"])])
    sender.start()
    try:
        events = engine.update([T, T], [0, 1000], [150.0, 50.0])
        events += engine.acknowledge(f"hi@{T}", by="li", now_ms=2000)
        assert sender.submit(events) == 2  # acknowledged is filtered out
        wait_until(lambda: sender.status()["delivered"] == 2)
    finally:
        sender.stop()
    kinds = sorted(json.loads(b)["event"]["kind"] for _, b, _ in rx.requests)
    assert kinds == ["raised", "raised", "returned"]  # the first raised was retried


# ----------------------------------------------------------------------------- outbox (pure)


def test_outbox_orders_by_due_time_and_round_trips():
    box = Outbox(max_pending=10, max_failed=2)
    for i, due in enumerate([5.0, 1.0, 3.0]):
        box.put(Delivery(f"d{i}", "ops", "alarm.raised", b"{}", 0.0, next_at_s=due))
    assert box.due(0.5) is None and box.next_due_s() == 1.0
    first = box.due(10)
    assert first is not None and first.id == "d1"
    first.attempts = 1
    box.attempt_failed(first, "HTTP 503", retry_at_s=20.0, max_attempts=2)
    assert [d.id for d in (box.due(10), box.due(10))] == ["d2", "d0"]
    assert box.due(19) is None
    again = box.due(20)
    assert again is not None and again.id == "d1"
    again.attempts = 2
    box.attempt_failed(again, "HTTP 503", retry_at_s=30.0, max_attempts=2)  # last attempt
    assert [d.id for d in box.failed] == ["d1"] and box.counts["failed_total"] == 1
    snap = json.loads(json.dumps(box.snapshot()))
    other = Outbox()
    other.restore(snap)
    assert other.snapshot()["failed"] == snap["failed"]
    # a bounded failed list discards the oldest, and counts it
    for i in range(3):
        box.attempt_failed(
            Delivery(f"x{i}", "ops", "e", b"{}", 0.0), "boom", retry_at_s=None, max_attempts=1
        )
    assert [d.id for d in box.failed] == ["x1", "x2"] and box.counts["failed_discarded"] == 2
