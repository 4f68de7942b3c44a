"""An embedded MQTT broker (amqtt, MQTT 3.1.1) for the demo and for tests; not for production.

Given a broker tenant spec (`indunet.connect.broker_acl`), it enforces the same rule as the
Mosquitto files of `indunet broker acl`: only the listed users get in, each with its password,
and each may publish, subscribe to and receive only the topics `topic_rules` gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from indunet.connect.broker_acl import BrokerTenants, check_password, topic_rules
from indunet.errors import DataError, TemporaryError

__all__ = [
    "EmbeddedBroker",
    "LocalClientsAuth",
    "TenantAuth",
    "TenantTopics",
    "free_port",
    "tenant_plugins",
]


def _auth_base() -> type:
    from amqtt.plugins.base import BaseAuthPlugin

    return BaseAuthPlugin


class LocalClientsAuth(_auth_base()):  # type: ignore[misc]
    """Let every client of the loopback-only demo broker in, *without* marking it anonymous.

    amqtt neither keeps the session nor queues QoS 1 messages for an anonymous client, so with
    its stock anonymous plugin a demo ingest that reconnects loses what arrived meanwhile.
    """

    @dataclass
    class Config:
        """No options: the broker listens on 127.0.0.1 only."""

    async def authenticate(self, *, session: object) -> bool:
        """Accept the client; its session stays persistent if it asked for one."""
        return True


class TenantAuth(_auth_base()):  # type: ignore[misc]
    """Let in only the tenant spec's users, each with its own password; no anonymous client.

    A client id belongs to the first user that logs in with it (while the broker runs): amqtt
    hands a returning client id the session kept for it, with the messages queued while it was
    away, so another tenant's device using the ingest's client id would read them otherwise.
    """

    @dataclass
    class Config:
        """Each user's password hash (`broker_acl.hash_password`, Mosquitto ``$7$``)."""

        users: dict[str, str] = field(default_factory=dict)

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._owners: dict[str, str] = {}  # client id -> user

    async def authenticate(self, *, session: Any) -> bool:
        """Accept a listed user with its password, on a client id no other user holds."""
        user = session.username or ""
        owner = self._owners.get(session.client_id)
        hashed = self.config.users.get(user)
        if (owner is not None and owner != user) or not (
            hashed and check_password(session.password or "", hashed)
        ):
            if owner is not None:  # amqtt wrote the refused login into the owner's session
                session.username = owner
            return False
        self._owners[session.client_id] = user
        return True


def _topic_base() -> type:
    from amqtt.plugins.topic_checking import TopicAccessControlListPlugin

    return TopicAccessControlListPlugin


class TenantTopics(_topic_base()):  # type: ignore[misc]
    """amqtt's topic access control list with its three lists (publish, subscribe, receive).

    amqtt 0.12.1's own ``Config`` of the plugin lacks the subscribe and receive lists (it only
    takes the deprecated ``acl``), so they are declared here; the checking is amqtt's.
    """

    @dataclass
    class Config:
        """Topic filters each user may publish to, subscribe to and receive from."""

        publish_acl: dict[str, list[str]] = field(default_factory=dict)
        subscribe_acl: dict[str, list[str]] = field(default_factory=dict)
        receive_acl: dict[str, list[str]] = field(default_factory=dict)


def tenant_plugins(
    tenants: BrokerTenants, password_hashes: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Return amqtt's plugin configuration enforcing ``tenants`` (from `topic_rules`).

    ``password_hashes`` maps users of the spec to `hash_password` hashes; a user without one
    cannot log in, a user the spec does not list is an error.
    """
    rules = topic_rules(tenants)
    strangers = sorted(set(password_hashes) - set(rules))
    if strangers:
        raise DataError(f"broker users {strangers} are not in the tenant spec")

    def allowed(*access: str) -> dict[str, list[str]]:
        return {u: [t for a, t in r if a in access] for u, r in rules.items()}

    reads = allowed("read", "readwrite")
    return {
        f"{__name__}.TenantAuth": {"users": dict(password_hashes)},
        f"{__name__}.TenantTopics": {
            "publish_acl": allowed("write", "readwrite"),
            "subscribe_acl": reads,
            "receive_acl": reads,
        },
    }


class SubscriptionTable(dict):
    """amqtt's subscription table (topic filter → subscribers), safe to change mid-broadcast.

    amqtt 0.12.1 walks ``_subscriptions.items()`` to broadcast a message and awaits inside the
    loop (topic checks, retaining for an offline session); a client that subscribes or leaves
    meanwhile changes the dict, the walk dies with "dictionary changed size during iteration"
    and the message never reaches the subscribers not yet served — the ingest among them. Seen
    in `indunet demo` at start-up, when the simulator, the edge and the ingest connect at once.
    Here a walk runs over a snapshot taken when it starts: each message goes to everyone
    subscribed at that moment (amqtt still checks each one is connected before sending).
    """

    def items(self):  # type: ignore[override]
        """Return a snapshot: (filter, a copy of its subscriber list) pairs."""
        return [(k, list(v)) for k, v in super().items()]

    def __iter__(self):  # type: ignore[override]
        """Iterate over a snapshot of the filters (amqtt also awaits inside such a loop)."""
        return iter(list(super().keys()))


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """Run amqtt on 127.0.0.1 in a background thread with its own event loop.

    Without ``tenants`` every local client gets in and may use every topic; with them, only the
    users of ``password_hashes`` get in and each is confined to its tenant's topics.
    """

    def __init__(
        self,
        port: int | None = None,
        tenants: BrokerTenants | None = None,
        password_hashes: Mapping[str, str] | None = None,
    ) -> None:
        self.plugins: dict[str, dict[str, Any]] = (
            {f"{__name__}.LocalClientsAuth": {}}
            if tenants is None
            else tenant_plugins(tenants, password_hashes or {})
        )
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._broker = None

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and wait until it accepts connections."""
        from amqtt.broker import Broker

        logging.getLogger("amqtt").setLevel(logging.ERROR)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": self.plugins,
        }
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                # built in its own thread: amqtt creates futures on the *current* event loop,
                # which the calling thread may not have (after an asyncio.run there, say)
                self._broker = Broker(config, loop=self._loop)
                self._broker._subscriptions = SubscriptionTable(self._broker._subscriptions)
                self._loop.run_until_complete(self._broker.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                started.set()
                return
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="amqtt", daemon=True)
        self._thread.start()
        if not started.wait(timeout) or failure:
            raise TemporaryError(
                f"the embedded MQTT broker could not start on port {self.port}",
                detail=repr(failure[0]) if failure else "timeout",
            )

    def stop(self) -> None:
        """Shut the broker down."""
        if self._broker is None or not self._loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        with contextlib.suppress(Exception):  # best effort at exit
            fut.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=10)
