"""What a device read produces: one value of one tag at one instant, with its quality."""

from __future__ import annotations

from dataclasses import dataclass

from indunet.model import Quality

__all__ = ["HEALTH_TAGS", "Reading", "TagValue"]

TagValue = float | int | bool | str

#: the agent's own tags per device (name -> kind: number, boolean or string)
HEALTH_TAGS = {
    "edge_connected": "boolean",
    "edge_errors": "number",
    "edge_last_good_ms": "number",
    "edge_latency_ms": "number",
    "edge_last_error": "string",
}


@dataclass(frozen=True, slots=True)
class Reading:
    """A tag's value read from a device; ``value`` is ``None`` and ``error`` says why when bad."""

    tag: str
    ts_ms: int
    value: TagValue | None
    quality: Quality = Quality.GOOD
    error: str | None = None
    latency_ms: float = 0.0
    server_ts_ms: int | None = None  # OPC UA ServerTimestamp, when the source gave one

    @property
    def good(self) -> bool:
        """Return whether the reading holds a usable value."""
        return self.quality == Quality.GOOD and self.value is not None
