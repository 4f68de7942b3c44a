"""Unified namespace (ISA-95): enterprise / site / area / line / machine / tag.

Every tag path is parsed and built here, never by string concatenation elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from indunet.errors import DataError

__all__ = ["LEVELS", "MachinePath", "TagPath", "check_segment", "parse_prefix"]

LEVELS = ("site", "area", "line", "machine", "tag")
MAX_SEGMENT = 128
#: separators, MQTT wildcards, control characters and lone surrogates (not encodable as UTF-8)
_FORBIDDEN = re.compile(r"[/#+\x00-\x1f\x7f\ud800-\udfff]")


def check_segment(value: str, level: str) -> str:
    """Return a namespace segment after checking it, or raise `DataError` naming the level."""
    if not isinstance(value, str):
        raise DataError(f"{level} name must be text, got {type(value).__name__}")
    seg = value.strip()
    if not seg:
        raise DataError(f"{level} name is empty")
    if len(seg) > MAX_SEGMENT:
        raise DataError(f"{level} name is longer than {MAX_SEGMENT} characters")
    if seg in (".", ".."):
        raise DataError(f"{level} name {seg!r} is not allowed")
    bad = _FORBIDDEN.search(seg)
    if bad:
        raise DataError(f"{level} name {seg!r} contains the forbidden character {bad.group()!r}")
    return seg


@dataclass(frozen=True, slots=True)
class MachinePath:
    """A machine's place in the plant: site/area/line/machine."""

    site: str
    area: str
    line: str
    machine: str

    def __post_init__(self) -> None:
        for level in LEVELS[:4]:
            object.__setattr__(self, level, check_segment(getattr(self, level), level))

    @classmethod
    def parse(cls, text: str) -> MachinePath:
        """Parse ``site/area/line/machine``."""
        parts = str(text).split("/")
        if len(parts) != 4:
            raise DataError(
                f"machine path {text!r} must have 4 parts site/area/line/machine, got {len(parts)}"
            )
        return cls(*parts)

    def tag(self, name: str) -> TagPath:
        """Return the path of tag ``name`` on this machine."""
        return TagPath(self.site, self.area, self.line, self.machine, name)

    def __str__(self) -> str:
        return "/".join((self.site, self.area, self.line, self.machine))


@dataclass(frozen=True, slots=True)
class TagPath:
    """A tag's full id within its enterprise: site/area/line/machine/tag."""

    site: str
    area: str
    line: str
    machine: str
    tag: str

    def __post_init__(self) -> None:
        for level in LEVELS:
            object.__setattr__(self, level, check_segment(getattr(self, level), level))

    @classmethod
    def parse(cls, text: str) -> TagPath:
        """Parse ``site/area/line/machine/tag``."""
        if not isinstance(text, str):
            raise DataError(f"tag must be text like site/area/line/machine/tag, got {text!r}")
        parts = text.split("/")
        if len(parts) != 5:
            raise DataError(
                f"tag {text[:200]!r} must have 5 parts site/area/line/machine/tag, got {len(parts)}"
            )
        return cls(*parts)

    @property
    def machine_path(self) -> MachinePath:
        """Return the machine this tag belongs to."""
        return MachinePath(self.site, self.area, self.line, self.machine)

    def __str__(self) -> str:
        return "/".join((self.site, self.area, self.line, self.machine, self.tag))


def parse_prefix(text: str | None) -> str:
    """Normalise a namespace prefix (``site/area`` …) for prefix searches; ``''`` means all."""
    if text is None:
        return ""
    text = text.strip().strip("/")
    if not text:
        return ""
    parts = text.split("/")
    if len(parts) > 5:
        raise DataError(f"prefix {text[:200]!r} has more than 5 levels site/area/line/machine/tag")
    for level, part in zip(LEVELS, parts, strict=False):
        check_segment(part, level)
    return "/".join(p.strip() for p in parts)
