"""Simulated plants for the demo and tests."""
