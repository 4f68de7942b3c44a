"""MQTT ingest: subscribe to the unified namespace and store messages at least once.

The network loop only moves bytes: `codec.uns_json.decode` turns them into points. Messages
are collected into a batch and written to the historian when the batch is big enough, old
enough, or when as many messages wait for acknowledgement as the broker lets through at once.
Each QoS 1 message is acknowledged to the broker only after its batch (and its dead letters)
is committed, so a crash or a database outage loses nothing the broker handed over: the
broker redelivers, and the historian's idempotent writes make redelivery harmless.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from indunet.connect.codec.sparkplug import (
    NAMESPACE,
    SparkplugHost,
    SparkplugMapping,
    encode_rebirth,
)
from indunet.connect.codec.uns_json import ROOT, decode
from indunet.errors import ConfigError, DataError, TemporaryError
from indunet.ingest.batch import BatchBuilder
from indunet.ingest.values import TimeParser
from indunet.model import DeadLetter
from indunet.store import Historian
from indunet.uns import check_segment

__all__ = ["MqttIngest", "MqttIngestStats", "parse_mqtt_url"]

log = logging.getLogger(__name__)


def parse_mqtt_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """Return host, port, tls, username, password from ``mqtt[s]://user:pass@host:port``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(f"MQTT URL {url!r} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"MQTT URL {url!r} has no host")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ConfigError(f"MQTT URL {url!r} has a bad port") from exc
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, tls, user, password


@dataclass(slots=True)
class MqttIngestStats:
    """Counters for /health and tests."""

    received: int = 0
    received_sparkplug: int = 0
    stored_points: int = 0
    dead_letters: int = 0
    batches: int = 0
    acked: int = 0
    rebirths_requested: int = 0
    write_failures: int = 0
    connected: bool = False
    subscribed: bool = False
    last_error: str | None = None


@dataclass(slots=True)
class _Pending:
    builders: dict[str, BatchBuilder] = field(default_factory=dict)
    letters: list[tuple[str, DeadLetter]] = field(default_factory=list)
    mids: list[tuple[int, int]] = field(default_factory=list)
    stale: list[tuple[str, str]] = field(default_factory=list)
    since: float = 0.0

    def __len__(self) -> int:
        return len(self.mids)


class MqttIngest:
    """Subscribe to ``indunet/v1/#`` and write what arrives into the historian."""

    def __init__(
        self,
        historian: Historian,
        url: str,
        *,
        client_id: str = "indunet-ingest",
        max_future_s: int = 86_400,
        flush_s: float = 0.2,
        max_points: int = 20_000,
        max_unacked: int = 20,
        shared_group: str | None = None,
        sparkplug_groups: list[str] | None = None,
        payload_limit: int = 4096,
        sparkplug: SparkplugMapping | None = None,
        host_id: str = "indunet",
        rebirth_interval_s: float = 5.0,
        mqtt_version: int = 5,
        session_expiry_s: int = 7 * 24 * 3600,
    ) -> None:
        self.historian = historian
        self.host, self.port, tls, user, password = parse_mqtt_url(url)
        self.flush_s = flush_s
        self.max_points = max_points
        self.max_unacked = max_unacked
        self.max_future_ms = max_future_s * 1000
        self.payload_limit = payload_limit
        json_topic = f"{ROOT}/#"
        self.topics = [f"$share/{shared_group}/{json_topic}" if shared_group else json_topic]
        # Sparkplug state is per edge node: never share it; shard hosts by group id instead
        if sparkplug_groups is None:
            self.topics.append(f"{NAMESPACE}/#")
        else:
            for group in sparkplug_groups:
                check_segment(group, "Sparkplug group")
                self.topics.append(f"{NAMESPACE}/{group}/#")
        self.topic = ", ".join(self.topics)
        self.sparkplug = SparkplugHost(sparkplug or SparkplugMapping())
        self.state_topic = f"{NAMESPACE}/STATE/{host_id}"
        self.rebirth_interval_s = rebirth_interval_s
        self._last_rebirth: dict[tuple[str, str], float] = {}
        self.stats = MqttIngestStats()
        self._pending = _Pending()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if mqtt_version not in (5, 4):
            raise ConfigError(f"MQTT version must be 5 or 4 (3.1.1), got {mqtt_version}")
        self.mqtt_version = mqtt_version
        self.session_expiry_s = session_expiry_s
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if mqtt_version == 5 else paho.MQTTv311,
            clean_session=None if mqtt_version == 5 else False,  # 3.1.1: persistent session
            manual_ack=True,
        )
        if user:
            self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.will_set(self.state_topic, _state(False), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Connect (persistent session) and start the network loop and the batch writer."""
        try:
            if self.mqtt_version == 5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.session_expiry_s  # default: a week
                props.ReceiveMaximum = 65535
                self.client.connect(
                    self.host, self.port, keepalive=30, clean_start=False, properties=props
                )
            else:
                self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise TemporaryError(
                f"MQTT broker {self.host}:{self.port} is not reachable; check it runs",
                detail=str(exc),
            ) from exc
        self._flusher = threading.Thread(target=self._flush_loop, name="mqtt-flush", daemon=True)
        self._flusher.start()
        self.client.loop_start()

    def stop(self) -> None:
        """Write what is pending, acknowledge it, and disconnect."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._flusher:
            self._flusher.join(timeout=30)
        if self.stats.connected:
            self.client.publish(
                self.state_topic, _state(False), qos=1, retain=True
            ).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------------ callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.stats.last_error = f"broker refused the connection: {reason_code}"
            log.warning("MQTT broker %s:%s refused: %s", self.host, self.port, reason_code)
            return
        self.stats.connected = True
        log.info("connected to MQTT broker %s:%s", self.host, self.port)
        client.subscribe([(t, 1) for t in self.topics])
        client.publish(self.state_topic, _state(True), qos=1, retain=True)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        self.stats.subscribed = not failed
        if failed:
            self.stats.last_error = f"broker refused the subscription to {self.topic}: {failed[0]}"
            log.warning("%s", self.stats.last_error)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.stats.connected:
            log.warning("MQTT broker %s:%s disconnected: %s", self.host, self.port, reason_code)
        self.stats.connected = False
        self.stats.subscribed = False

    def _on_message(self, client, userdata, msg: paho.MQTTMessage) -> None:
        times = TimeParser(now_ms=int(time.time() * 1000), max_future_ms=self.max_future_ms)
        source = "mqtt"
        ref = msg.topic[:300]
        with self._cond:
            self.stats.received += 1
            p = self._pending
            if not p.mids:
                p.since = time.monotonic()
            if msg.topic.startswith(NAMESPACE + "/"):
                self.stats.received_sparkplug += 1
                self._sparkplug(msg, p, ref)
                p.mids.append((msg.mid, msg.qos))
                self._notify_if_full(p)
                return
            try:
                decoded = decode(msg.topic, msg.payload, times)
            except DataError as exc:
                p.letters.append(
                    (
                        self._topic_enterprise(msg.topic),
                        DeadLetter(
                            source,
                            f"{ref}: {exc}",
                            ref,
                            _payload_text(msg.payload, self.payload_limit),
                        ),
                    )
                )
            else:
                enterprise = decoded.enterprise
                builder = p.builders.setdefault(enterprise, BatchBuilder(enterprise))
                for tag, ts, value in decoded.points:
                    builder.add(tag, ts, value, ref)
                for reason in decoded.errors:
                    p.letters.append(
                        (
                            decoded.enterprise,
                            DeadLetter(
                                source,
                                f"{ref}: {reason}",
                                ref,
                                _payload_text(msg.payload, self.payload_limit),
                            ),
                        )
                    )
            p.mids.append((msg.mid, msg.qos))
            self._notify_if_full(p)

    def _notify_if_full(self, p: _Pending) -> None:
        if len(p) >= self.max_unacked or sum(map(len, p.builders.values())) >= self.max_points:
            self._cond.notify_all()

    def _sparkplug(self, msg: paho.MQTTMessage, p: _Pending, ref: str) -> None:
        """Decode a Sparkplug message into the pending batch; answer gaps with a rebirth."""
        enterprise = self.sparkplug.mapping.enterprise
        payload = _payload_text(msg.payload, self.payload_limit)
        try:
            outcome = self.sparkplug.handle(msg.topic, msg.payload)
        except DataError as exc:
            p.letters.append((enterprise, DeadLetter("sparkplug", f"{ref}: {exc}", ref, payload)))
            return
        if outcome.points:
            builder = p.builders.setdefault(enterprise, BatchBuilder(enterprise))
            for tag, ts, value in outcome.points:
                builder.add(tag, ts, value, ref)
        for reason in outcome.errors:
            p.letters.append(
                (enterprise, DeadLetter("sparkplug", f"{ref}: {reason}", ref, payload))
            )
        p.stale.extend((enterprise, machine) for machine in outcome.stale)
        if outcome.rebirth:
            now = time.monotonic()
            if now - self._last_rebirth.get(outcome.rebirth, -1e9) >= self.rebirth_interval_s:
                self._last_rebirth[outcome.rebirth] = now
                group, node = outcome.rebirth
                self.client.publish(
                    f"{NAMESPACE}/{group}/NCMD/{node}", encode_rebirth(int(time.time() * 1000))
                )
                self.stats.rebirths_requested += 1

    @staticmethod
    def _topic_enterprise(topic: str) -> str | None:
        parts = topic.split("/")
        return parts[2] if len(parts) > 2 and parts[:2] == ROOT.split("/") and parts[2] else None

    # ------------------------------------------------------------------ batch writer
    def _due(self) -> bool:
        p = self._pending
        if not p.mids:
            return False
        return (
            len(p) >= self.max_unacked
            or sum(map(len, p.builders.values())) >= self.max_points
            or time.monotonic() - p.since >= self.flush_s
        )

    def _flush_loop(self) -> None:
        backoff = 0.5
        taken: _Taken | None = None
        while True:
            if taken is None:
                with self._cond:
                    while not self._stop.is_set() and not self._due():
                        self._cond.wait(timeout=self.flush_s / 2)
                    if self._stop.is_set() and not self._pending.mids:
                        return
                    taken, self._pending = _Taken.of(self._pending), _Pending()
            try:
                self._write(taken)
            except TemporaryError as exc:
                # not acknowledged: keep the batch and retry it; new messages wait behind it
                # (the broker stops sending once its in-flight window is full: backpressure)
                self.stats.write_failures += 1
                self.stats.last_error = str(exc)
                log.warning("historian write failed, retrying in %.1f s: %s", backoff, exc)
                if self._stop.wait(backoff):
                    return  # stopping: unacknowledged messages stay with the broker
                backoff = min(backoff * 2, 30)
                continue
            backoff = 0.5
            for mid, qos in taken.mids:
                if qos > 0:
                    self.client.ack(mid, qos)
            self.stats.acked += len(taken.mids)
            self.stats.batches += 1
            taken = None

    def _write(self, taken: _Taken) -> None:
        """Write what is left of ``taken``; each part is dropped from it once committed."""
        while taken.batches:
            result = self.historian.write(taken.batches[0], source="mqtt")
            taken.batches.pop(0)
            self.stats.stored_points += result.stored
            self.stats.dead_letters += len(result.rejected)
        while taken.letters:
            enterprise, letters = taken.letters[0]
            self.historian.add_dead_letters(letters, enterprise)
            taken.letters.pop(0)
            self.stats.dead_letters += len(letters)
        while taken.stale:  # after the batch: data that arrived before the death is older
            enterprise, machine = taken.stale[0]
            self.historian.mark_stale(enterprise, machine)
            taken.stale.pop(0)


@dataclass(slots=True)
class _Taken:
    """A frozen batch on its way to the historian, and the messages it acknowledges."""

    batches: list
    letters: list[tuple[str | None, list[DeadLetter]]]
    mids: list[tuple[int, int]]
    stale: list[tuple[str, str]]

    @classmethod
    def of(cls, pending: _Pending) -> _Taken:
        grouped: dict[str | None, list[DeadLetter]] = {}
        for enterprise, letter in pending.letters:
            grouped.setdefault(enterprise, []).append(letter)
        return cls(
            [b.take() for b in pending.builders.values() if len(b)],
            list(grouped.items()),
            pending.mids,
            pending.stale,
        )


def _state(online: bool) -> str:
    """Return a Sparkplug 3.0 host STATE payload."""
    return json.dumps({"online": online, "timestamp": int(time.time() * 1000)})


def _payload_text(payload: bytes, limit: int) -> str:
    return payload[:limit].decode("utf-8", "replace")
