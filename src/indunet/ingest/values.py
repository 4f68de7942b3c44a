"""Parse timestamps and values from text or JSON; pure functions that raise `DataError`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from indunet.errors import ConfigError, DataError
from indunet.model import DataType, Quality

__all__ = [
    "MAX_TEXT",
    "SECONDS_LOOKALIKE",
    "TimeParser",
    "Value",
    "parse_cell",
    "parse_json_value",
    "parse_quality",
    "zone",
]

MAX_TEXT = 256
#: below this an epoch-millisecond timestamp is before 1973: almost surely epoch seconds
SECONDS_LOOKALIKE = 100_000_000_000
_TRUE = {"true", "on", "yes"}
_FALSE = {"false", "off", "no"}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab is allowed
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Value:
    """One parsed value: a number (also booleans as 0/1) or a short text."""

    value: float | None
    text: str | None
    dtype: DataType


def zone(name: str | None) -> tzinfo:
    """Return the time zone called ``name`` (IANA), UTC when empty."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {name!r}; use an IANA name like Asia/Shanghai"
        ) from exc


@dataclass(frozen=True, slots=True)
class TimeParser:
    """Turn epoch milliseconds, RFC 3339 text or a strptime pattern into epoch ms (UTC).

    ``now_ms`` and ``max_future_ms`` bound accepted times: nothing before 1970, nothing further
    ahead than ``max_future_ms``. With ``midnight_ends_day`` a time of exactly 00:00 means 24:00
    of the date it carries (the interval-end convention of many meter exports).
    """

    now_ms: int
    max_future_ms: int = 86_400_000
    fmt: str | None = None
    tz: tzinfo = UTC
    midnight_ends_day: bool = False

    def parse(self, raw: object) -> int:
        """Return ``raw`` as epoch milliseconds or raise `DataError` saying why not."""
        if isinstance(raw, bool) or raw is None:
            raise DataError(f"timestamp {raw!r} is not a time")
        if isinstance(raw, int | float):
            return self._check(self._from_number(raw), raw)
        if isinstance(raw, datetime):
            return self._check(self._from_datetime(raw), raw)
        if not isinstance(raw, str):
            raise DataError(f"timestamp {raw!r} is not a time")
        text = raw.strip()
        if not text:
            raise DataError("timestamp is empty")
        if self.fmt:
            try:
                dt = datetime.strptime(text, self.fmt)
            except ValueError as exc:
                raise DataError(
                    f"timestamp {text[:64]!r} does not match the time format {self.fmt!r}"
                ) from exc
            return self._check(self._from_datetime(dt), text)
        number = _as_number(text)
        if number is not None:
            return self._check(self._from_number(number), text)
        try:
            dt = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError as exc:
            raise DataError(
                f"timestamp {text[:64]!r} is in an unknown format; send epoch milliseconds or "
                "RFC 3339 (2024-03-05T08:00:00Z), or give a time format"
            ) from exc
        return self._check(self._from_datetime(dt), text)

    def _from_number(self, number: float) -> int:
        if isinstance(number, float) and not math.isfinite(number):
            raise DataError(f"timestamp {number!r} is not finite")
        ms = int(number)
        if 0 < ms < SECONDS_LOOKALIKE:
            raise DataError(
                f"timestamp {number!r} looks like epoch seconds; send epoch milliseconds"
            )
        return ms

    def _from_datetime(self, dt: datetime) -> int:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self.tz)
        if self.midnight_ends_day and (dt.hour, dt.minute, dt.second, dt.microsecond) == (
            0,
            0,
            0,
            0,
        ):
            # wall-clock arithmetic: 24:00 of the given local date
            try:
                dt = (dt.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=dt.tzinfo)
            except OverflowError:
                raise DataError(f"timestamp {dt.isoformat()!r} is too far in the future") from None
        # integer arithmetic: dt.timestamp() * 1000 is a float and can be off by a millisecond
        return (dt - _EPOCH) // _MS

    def _check(self, ms: int, raw: object) -> int:
        if ms < 0:
            raise DataError(f"timestamp {str(raw)[:64]!r} is before 1970")
        if ms > self.now_ms + self.max_future_ms:
            raise DataError(f"timestamp {str(raw)[:64]!r} is too far in the future")
        return ms


def _as_number(text: str) -> int | float | None:
    """Return ``text`` as a number when it is one (no underscores), else ``None``."""
    if "_" in text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _number(number: float) -> Value:
    try:
        number = float(number)
    except OverflowError:
        raise DataError(f"value {str(number)[:40]}… is out of range") from None
    if not math.isfinite(number):
        raise DataError(f"value {number!r} is not a finite number")
    return Value(number, None, DataType.NUMBER)


def _text(text: str) -> Value:
    if len(text) > MAX_TEXT:
        raise DataError(f"text value is longer than {MAX_TEXT} characters")
    if _CONTROL.search(text):
        raise DataError("text value contains control characters")
    if _SURROGATE.search(text):
        raise DataError("text value is not valid UTF-8")
    return Value(None, text, DataType.STRING)


def parse_json_value(raw: object) -> Value:
    """Parse a JSON value: number, boolean or short string; anything else is a `DataError`."""
    if isinstance(raw, bool):
        return Value(1.0 if raw else 0.0, None, DataType.BOOLEAN)
    if isinstance(raw, int):
        if abs(raw) > 2**63:
            raise DataError(f"value of {raw.bit_length()} bits is out of range (over 2**63)")
        return _number(raw)
    if isinstance(raw, float):
        return _number(raw)
    if isinstance(raw, str):
        return _text(raw)
    if raw is None:
        raise DataError("value is missing (null)")
    raise DataError(f"value must be a number, boolean or short string, got {type(raw).__name__}")


def parse_cell(cell: str) -> Value | None:
    """Parse a CSV cell: ``None`` for an empty cell, else a number, boolean or text."""
    text = cell.strip()
    if not text:
        return None
    low = text.lower()
    if low in _TRUE:
        return Value(1.0, None, DataType.BOOLEAN)
    if low in _FALSE:
        return Value(0.0, None, DataType.BOOLEAN)
    if low in {"nan", "-nan", "+nan", "inf", "+inf", "-inf", "infinity", "-infinity", "+infinity"}:
        raise DataError(f"value {text!r} is not a finite number")
    number = _as_number(text)
    if number is not None:
        return _number(number)
    return _text(text)


_QUALITY_NAMES = {q.name.lower(): q for q in Quality}


def parse_quality(raw: object) -> Quality:
    """Parse a quality given by name (good, uncertain, bad, stale) or code; missing is good."""
    if raw is None:
        return Quality.GOOD
    if isinstance(raw, str) and raw.lower() in _QUALITY_NAMES:
        return _QUALITY_NAMES[raw.lower()]
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in Quality._value2member_map_:
        return Quality(raw)
    raise DataError(f"quality {raw!r} is not one of good, uncertain, bad, stale")
