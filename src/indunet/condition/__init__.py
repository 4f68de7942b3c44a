"""Condition monitoring: anomaly detection on tags and machines, remaining useful life of
assets, and the benchmark scoring of both."""
