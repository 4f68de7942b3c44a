"""Condition monitoring: how healthy machines are and how long they will last."""
