"""Webhook notification of alarm events: signed JSON, retries with backoff, a bounded outbox.

Signature scheme (like Stripe's): every POST carries

    X-Indunet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

The receiver recomputes the HMAC over the timestamp, a dot and the exact bytes of the body,
compares in constant time (`verify_signature`) and rejects timestamps older than its tolerance
(replay protection). Each delivery has a stable ``X-Indunet-Delivery`` id, the same on every
retry, so receivers can drop duplicates (delivery is at-least-once).

`Outbox` is the pure part (queue, schedule, bounds); `WebhookSender` is the I/O edge: one
background thread that POSTs due deliveries. `WebhookSender.submit` never blocks on the network.
Deliveries that fail after the last attempt, or that find the outbox full, are kept in
``Outbox.failed`` with the reason, counted, and can be re-queued with `Outbox.retry_failed`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from indunet.errors import DataError
from indunet.plant.alarms import AlarmEvent, EventKind, Priority

__all__ = [
    "SIGNATURE_HEADER",
    "Delivery",
    "Outbox",
    "WebhookSender",
    "WebhookTarget",
    "backoff_s",
    "sign",
    "verify_signature",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Indunet-Signature"
DELIVERY_HEADER = "X-Indunet-Delivery"
EVENT_HEADER = "X-Indunet-Event"
ATTEMPT_HEADER = "X-Indunet-Attempt"
#: HTTP answers worth retrying; any other 4xx (and 3xx) is a permanent failure
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookTarget(BaseModel):
    """Where to send alarm events, how to sign them and how hard to try."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: str
    secret: str = Field(min_length=16, description="Shared HMAC key, at least 16 characters.")
    timeout_s: float = Field(5.0, gt=0, le=120)
    max_attempts: int = Field(6, ge=1, le=50)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_cap_s: float = Field(300.0, gt=0)
    min_priority: Priority = Field(Priority.LOW, description="Send only this priority or higher.")
    kinds: frozenset[EventKind] | None = Field(
        None, description="Event kinds to send; all if unset"
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: str) -> str:
        if value.lower() in {"changeme" * 2, "secretsecretsecret", "x" * 16} or len(set(value)) < 4:
            raise ValueError("is a placeholder; use a random secret (e.g. `openssl rand -hex 32`)")
        return value

    def wants(self, event: AlarmEvent) -> bool:
        """Tell whether this target subscribes to ``event``."""
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        return event.priority.rank <= self.min_priority.rank


def sign(secret: str | bytes, body: bytes, timestamp_s: int) -> str:
    """Return the signature header ``t=<ts>,v1=<hex>`` for ``body`` sent at ``timestamp_s``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{int(timestamp_s)}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={int(timestamp_s)},v1={mac}"


def verify_signature(
    secret: str | bytes, body: bytes, header: str | None, *, now_s: float, tolerance_s: float = 300
) -> None:
    """Check a received signature header; raise `DataError` saying what is wrong."""
    if not header:
        raise DataError(f"webhook has no {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        ts = int(parts["t"][0])
    except (KeyError, ValueError):
        raise DataError(f"{SIGNATURE_HEADER} has no valid t=<unix seconds>") from None
    if abs(now_s - ts) > tolerance_s:
        raise DataError(f"webhook timestamp {ts} is more than {tolerance_s:g} s from now")
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise DataError("webhook signature does not match the body (wrong secret or altered body)")


def backoff_s(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Return the wait after failed attempt ``attempt`` (1-based): exponential, equal jitter."""
    ceiling = min(cap_s, base_s * 2 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(slots=True)
class Delivery:
    """One event on its way to one target."""

    id: str
    target: str
    event: str
    body: bytes
    created_s: float
    attempts: int = 0
    next_at_s: float = 0.0
    last_error: str | None = None
    status: str = "pending"  # pending | delivered | failed

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the body as text)."""
        out = asdict(self)
        out["body"] = self.body.decode()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        """Build a delivery from `to_dict` output."""
        return cls(**{**data, "body": str(data["body"]).encode()})


@dataclass
class Outbox:
    """Pending deliveries in due order, bounded; failures are kept and counted, never dropped."""

    max_pending: int = 10_000
    max_failed: int = 10_000
    pending: deque[Delivery] = field(default_factory=deque)
    failed: deque[Delivery] = field(default_factory=deque)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("queued", "delivered", "retried", "failed_total", "overflow", "failed_discarded"), 0
        )
    )

    def put(self, delivery: Delivery) -> bool:
        """Queue a delivery; when full, keep it in ``failed`` as "outbox full" and return False."""
        if len(self.pending) >= self.max_pending:
            self.counts["overflow"] += 1
            self._fail(delivery, "outbox full: the webhook endpoint is not keeping up")
            return False
        self.pending.append(delivery)
        self.counts["queued"] += 1
        return True

    def due(self, now_s: float) -> Delivery | None:
        """Take the delivery that is due first, if any is due at ``now_s``."""
        best = self._earliest()
        if best is None or best.next_at_s > now_s:
            return None
        self.pending.remove(best)
        return best

    def next_due_s(self) -> float | None:
        """Return when the next delivery is due (None if nothing is pending)."""
        best = self._earliest()
        return None if best is None else best.next_at_s

    def _earliest(self) -> Delivery | None:
        return min(self.pending, key=lambda d: d.next_at_s, default=None)

    def delivered(self, delivery: Delivery) -> None:
        """Record a successful delivery."""
        delivery.status, delivery.last_error = "delivered", None
        self.counts["delivered"] += 1

    def attempt_failed(
        self, delivery: Delivery, error: str, *, retry_at_s: float | None, max_attempts: int
    ) -> None:
        """Record a failed attempt: schedule a retry, or keep it as failed after the last one."""
        delivery.last_error = error
        if retry_at_s is None or delivery.attempts >= max_attempts:
            self._fail(delivery, error)
            return
        delivery.next_at_s = retry_at_s
        self.pending.appendleft(delivery)
        self.counts["retried"] += 1

    def _fail(self, delivery: Delivery, error: str) -> None:
        delivery.status, delivery.last_error = "failed", error
        self.counts["failed_total"] += 1
        if len(self.failed) >= self.max_failed:
            self.failed.popleft()
            self.counts["failed_discarded"] += 1
            log.error("webhook failed-list full: oldest failed delivery discarded (counted)")
        self.failed.append(delivery)
        log.warning("webhook delivery %s to %s failed: %s", delivery.id, delivery.target, error)

    def retry_failed(self, now_s: float) -> int:
        """Re-queue every failed delivery (e.g. after the endpoint is fixed); return how many."""
        n = 0
        while self.failed and len(self.pending) < self.max_pending:
            d = self.failed.popleft()
            d.status, d.attempts, d.next_at_s = "pending", 0, now_s
            self.pending.append(d)
            n += 1
        return n

    def status(self) -> dict[str, Any]:
        """Return fill levels and counters, for ``/health``."""
        return {
            "pending": len(self.pending),
            "max_pending": self.max_pending,
            "failed": len(self.failed),
            **self.counts,
        }

    def snapshot(self) -> dict[str, Any]:
        """Return pending and failed deliveries as plain dicts, to persist across restarts."""
        return {
            "pending": [d.to_dict() for d in self.pending],
            "failed": [d.to_dict() for d in self.failed],
            "counts": dict(self.counts),
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Load a `snapshot` (pending ones are retried at once)."""
        for row in snapshot.get("pending", []):
            self.pending.append(Delivery.from_dict({**row, "next_at_s": 0.0}))
        for row in snapshot.get("failed", []):
            self.failed.append(Delivery.from_dict(row))
        self.counts.update(snapshot.get("counts", {}))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer (3xx), not something to follow with the payload


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """POST and return (status, short reason); network errors raise OSError."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(req, timeout=timeout_s) as resp:
            return resp.status, resp.reason or ""
    except urllib.error.HTTPError as exc:
        retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
        exc.close()
        return exc.code, f"{exc.reason}|{retry_after}"


class WebhookSender:
    """Send alarm events to webhook targets from one background thread."""

    def __init__(
        self,
        targets: Iterable[WebhookTarget],
        *,
        outbox: Outbox | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        post: Callable[[str, bytes, dict[str, str], float], tuple[int, str]] = _post,
    ) -> None:
        self.targets = {t.name: t for t in targets}
        self.outbox = outbox if outbox is not None else Outbox()
        self._clock = clock
        self._rng = rng or random.Random()
        self._post = post
        self._cv = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._in_flight = 0

    def submit(self, events: Iterable[AlarmEvent]) -> int:
        """Queue events for every target that wants them; never waits for the network.

        Return how many deliveries were queued; any that found the outbox full are kept in
        ``outbox.failed`` with the reason "outbox full".
        """
        now = self._clock()
        n = 0
        with self._cv:
            for event in events:
                payload = event.to_dict()
                for target in self.targets.values():
                    if not target.wants(event):
                        continue
                    did = uuid.uuid4().hex
                    body = orjson.dumps(
                        {"id": did, "type": f"alarm.{event.kind.value}", "event": payload}
                    )
                    d = Delivery(did, target.name, f"alarm.{event.kind.value}", body, now)
                    d.next_at_s = now
                    n += self.outbox.put(d)
            self._cv.notify()
        return n

    def put(self, delivery: Delivery) -> bool:
        """Queue one ready-made delivery (any signed JSON document, e.g. a shift report)."""
        with self._cv:
            ok = self.outbox.put(delivery)
            self._cv.notify()
        return ok

    def start(self) -> None:
        """Start the delivery thread."""
        if self._thread is not None:
            return
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="indunet-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread after the attempt in flight; pending deliveries stay in the outbox."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def status(self) -> dict[str, Any]:
        """Return the outbox's fill level and counters."""
        with self._cv:
            return {
                "running": self._thread is not None,
                "in_flight": self._in_flight,
                **self.outbox.status(),
            }

    def retry_failed(self) -> int:
        """Re-queue failed deliveries now."""
        with self._cv:
            n = self.outbox.retry_failed(self._clock())
            self._cv.notify()
            return n

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop:
                    d = self.outbox.due(self._clock())
                    if d is not None:
                        break
                    nxt = self.outbox.next_due_s()
                    self._cv.wait(None if nxt is None else max(0.0, nxt - self._clock()))
                if self._stop:
                    return
                self._in_flight += 1
            try:
                self.deliver(d)
            finally:
                with self._cv:
                    self._in_flight -= 1

    def deliver(self, d: Delivery) -> bool:
        """Make one attempt at ``d`` and record the result in the outbox; True when delivered."""
        target = self.targets.get(d.target)
        if target is None:
            with self._cv:
                self.outbox.attempt_failed(
                    d,
                    f"target {d.target!r} is no longer configured",
                    retry_at_s=None,
                    max_attempts=1,
                )
            return False
        d.attempts += 1
        now = self._clock()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "indunet-webhook/1",
            SIGNATURE_HEADER: sign(target.secret, d.body, int(now)),
            DELIVERY_HEADER: d.id,
            EVENT_HEADER: d.event,
            ATTEMPT_HEADER: str(d.attempts),
        }
        retry_after = None
        try:
            status, reason = self._post(target.url, d.body, headers, target.timeout_s)
        except (OSError, ValueError) as exc:  # refused, reset, DNS, timeout, bad URL
            status, reason = 0, f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            with self._cv:
                self.outbox.delivered(d)
            return True
        if status:
            reason, _, after = reason.partition("|")
            retry_after = float(after) if after.strip().isdigit() else None
            error = f"HTTP {status} {reason}".strip()
        else:
            error = reason
        retryable = status == 0 or status in RETRY_STATUS
        wait = None
        if retryable:
            wait = backoff_s(
                d.attempts, base_s=target.backoff_base_s, cap_s=target.backoff_cap_s, rng=self._rng
            )
            if retry_after is not None:
                wait = max(wait, min(retry_after, target.backoff_cap_s))
        with self._cv:
            self.outbox.attempt_failed(
                d,
                f"{error} (attempt {d.attempts} of {target.max_attempts})",
                retry_at_s=None if wait is None else self._clock() + wait,
                max_attempts=target.max_attempts,
            )
        return False
