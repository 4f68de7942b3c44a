"""An embedded MQTT broker (amqtt, MQTT 3.1.1) for the demo and for tests; not for production."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from dataclasses import dataclass

from indunet.errors import TemporaryError

__all__ = ["EmbeddedBroker", "LocalClientsAuth", "free_port"]


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


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """Run amqtt on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, port: int | None = None) -> None:
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
            "plugins": {f"{__name__}.LocalClientsAuth": {}},
        }
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                # built in its own thread: amqtt creates futures on the *current* event loop,
                # which the calling thread may not have (after an asyncio.run there, say)
                self._broker = Broker(config, loop=self._loop)
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
