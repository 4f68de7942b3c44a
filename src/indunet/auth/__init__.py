"""Accounts, tenants and roles: who may call which route on which enterprise's data."""
