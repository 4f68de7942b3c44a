"""Error classes carry a plain message and a technical detail."""

from __future__ import annotations

import pytest

from indunet.errors import DataError, IndunetError, StorageLocked, TemporaryError


def test_message_and_detail():
    err = DataError("tag x is bad", detail="trace")
    assert str(err) == "tag x is bad" and err.detail == "trace"
    assert isinstance(err, IndunetError)


def test_locked_storage_is_temporary():
    with pytest.raises(TemporaryError):
        raise StorageLocked("locked by process 1")
