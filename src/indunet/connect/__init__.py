"""Connect machines: MQTT ingest (and, later, edge protocols)."""
