"""A Mosquitto configuration for at-least-once delivery to the indunet ingest.

What a broker crash (kill -9, power loss) can lose is what the broker acknowledged to a
publisher but had not yet written to its persistence file. Mosquitto (2.0) writes that file
whole, every `autosave_interval` seconds by default; with `autosave_on_changes true` and
`autosave_interval 1` it writes it after every pass of its event loop that changed a session,
a subscription, a retained or a queued message — before it waits for more traffic. The cost is
one rewrite of the file per pass, proportional to what is queued (see docs/mqtt.md for sizing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indunet.errors import ConfigError

__all__ = ["MosquittoSettings", "render_mosquitto_conf"]


@dataclass(frozen=True)
class MosquittoSettings:
    """What a plant chooses for its broker; the rest is fixed for at-least-once."""

    persistence_dir: Path
    port: int = 1883
    bind: str = "0.0.0.0"
    # messages kept per offline or slow subscriber (the ingest during an outage); 0 = no limit.
    # Mosquitto's default (1000) drops QoS 1 messages it has already acknowledged.
    max_queued_messages: int = 1_000_000
    # bytes kept per subscriber beyond which it drops, as above; 0 = no limit
    max_queued_bytes: int = 0
    # QoS 1 messages sent to a subscriber before its acknowledgements; the ingest acknowledges a
    # whole committed batch (max_unacked 20,000), so a small window throttles it
    max_inflight_messages: int = 20_000
    # how long the broker keeps the session (and the queue) of a subscriber that went away;
    # at least the ingest's own session expiry (one week)
    persistent_client_expiration: str = "14d"
    allow_anonymous: bool = False
    password_file: Path | None = None
    acl_file: Path | None = None
    run_as_user: str | None = None

    def check(self) -> None:
        """Refuse settings that cannot work, naming the field."""
        if not 0 < self.port < 65536:
            raise ConfigError(f"port: {self.port} is not a TCP port")
        for name in ("max_queued_messages", "max_queued_bytes", "max_inflight_messages"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be 0 (no limit) or more")
        unit = self.persistent_client_expiration[-1:]
        amount = self.persistent_client_expiration[:-1]
        if unit not in ("h", "d", "w", "m", "y") or not amount.isdigit() or int(amount) == 0:
            raise ConfigError(
                "persistent_client_expiration: expected a count and a unit h, d, w, m or y "
                f"(like 14d), got {self.persistent_client_expiration!r}"
            )
        if not self.allow_anonymous and self.password_file is None:
            raise ConfigError(
                "no way in: give a password file (mosquitto_passwd) or allow anonymous clients "
                "(only on a closed plant network)"
            )


def render_mosquitto_conf(s: MosquittoSettings) -> str:
    """Return the text of a mosquitto.conf for at-least-once delivery to the ingest."""
    s.check()
    lines = [
        "# Written by `indunet broker config`: at-least-once delivery to the indunet ingest.",
        "# See docs/mqtt.md, 'A broker crash'.",
        "",
        f"listener {s.port} {s.bind}",
        f"allow_anonymous {'true' if s.allow_anonymous else 'false'}",
    ]
    if s.password_file is not None:
        lines.append(f"password_file {s.password_file}")
    if s.acl_file is not None:
        lines.append(f"acl_file {s.acl_file}")
    if s.run_as_user:
        lines.append(f"user {s.run_as_user}")
    lines += [
        "",
        "# Persistence: write the in-memory database after every change, so a kill -9 or a",
        "# power loss cannot outrun it (the default saves every 30 minutes).",
        "persistence true",
        f"persistence_location {str(s.persistence_dir).rstrip('/')}/",
        "autosave_on_changes true",
        "autosave_interval 1",
        "",
        "# Sessions: keep the ingest's session and its queue while it is away.",
        f"persistent_client_expiration {s.persistent_client_expiration}",
        f"max_queued_messages {s.max_queued_messages}",
        f"max_queued_bytes {s.max_queued_bytes}",
        "queue_qos0_messages false",
        "",
        "# In-flight window towards each subscriber (the ingest acknowledges per committed batch).",
        f"max_inflight_messages {s.max_inflight_messages}",
        "",
    ]
    return "\n".join(lines)
