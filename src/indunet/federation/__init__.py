"""Federation: plants uplink aggregates to a regional instance (docs/federation.md)."""
