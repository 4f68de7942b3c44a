"""Condition monitoring: anomaly detection on tags and machines, and its benchmark scoring."""
