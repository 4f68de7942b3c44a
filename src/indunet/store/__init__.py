"""The historian: machine time series in DuckDB (embedded) or PostgreSQL (server)."""

from indunet.store.base import Historian, TagInfo, TagSpec, open_historian

__all__ = ["Historian", "TagInfo", "TagSpec", "open_historian"]
