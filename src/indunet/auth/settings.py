"""Settings of accounts and sessions (``[auth]`` in ``indunet.toml``, ``Settings.auth``)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AuthSettings"]


class AuthSettings(BaseModel):
    """Session lifetime, login rate limits and whether the API requires a principal."""

    model_config = ConfigDict(extra="forbid")

    required: bool = Field(
        True, description="Require a principal on /api/v1 (False only for a closed lab network)."
    )
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="Session lifetime.")
    login_failures_per_user: int = Field(
        5, ge=1, description="Failed logins for one user name before backoff starts."
    )
    login_failures_per_ip: int = Field(
        20, ge=1, description="Failed logins from one address before backoff starts."
    )
    login_window_s: int = Field(900, gt=0, description="Failures older than this are forgotten.")
    backoff_base_s: float = Field(1.0, gt=0, description="First lock-out; doubles per failure.")
    backoff_max_s: float = Field(900.0, gt=0, description="Longest lock-out.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is "
        "believed; from anyone else the header is ignored (login rate limits count the peer).",
    )
    secure_cookies: bool | None = Field(
        None, description="Force the Secure cookie flag; default: only when served over https."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {entry!r} is not an address or CIDR") from exc
        return value
