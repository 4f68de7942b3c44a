"""Typed errors, sorted by what the caller should do about them.

``str(e)`` is one plain sentence naming the thing and the next step; ``e.detail``
holds the technical cause.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "IndunetError",
    "StorageLocked",
    "StorageUnavailable",
    "TemporaryError",
]


class IndunetError(Exception):
    """Base class of every error indunet raises on purpose."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class TemporaryError(IndunetError):
    """Something outside indunet is unavailable; retrying later may work."""


class StorageUnavailable(TemporaryError):
    """The historian's database cannot be reached."""


class StorageLocked(TemporaryError):
    """The data directory is locked by another process."""


class ConfigError(IndunetError):
    """The settings or the command line are wrong; fix them and retry."""


class DataError(IndunetError):
    """Input data is malformed; it is quarantined, never silently dropped."""
