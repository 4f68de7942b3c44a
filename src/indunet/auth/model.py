"""Principals, roles and grants, and the pure authorisation decision every route goes through."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

__all__ = [
    "CHAIN_SCOPE",
    "Decision",
    "Grant",
    "Need",
    "Principal",
    "PrincipalKind",
    "Role",
    "decide",
]

CHAIN_SCOPE = "*"
"""The ``enterprise`` of a chain-operator grant: aggregates across enterprises, no raw data."""


class Role(IntEnum):
    """Roles within one enterprise, ordered: each one can do what the lower ones can."""

    viewer = 1
    operator = 2
    admin = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        """Return the role named ``text`` or raise ValueError naming the allowed ones."""
        try:
            return cls[text.strip().lower()]
        except KeyError:
            raise ValueError(f"role {text!r} is not one of viewer, operator, admin") from None


class Need(StrEnum):
    """What a route requires of its caller (the values of the route table)."""

    public = "public"  # no principal (health, login, docs, static files)
    signed_in = "signed_in"  # any principal (who am I, log out)
    viewer = "viewer"  # read one enterprise's data
    operator = "operator"  # act on the plant: acknowledge alarms, assign stop reasons
    admin = "admin"  # configure: tags, machines, rules, uploads, users, keys
    ingest = "ingest"  # write points: a device key of the enterprise, or an operator
    chain = "chain"  # cross-enterprise aggregates: chain operators only


class PrincipalKind(StrEnum):
    """How the caller proved who they are."""

    user = "user"  # password login, session cookie
    api_key = "api_key"  # Authorization: Bearer, for programs
    device = "device"  # X-Device-Key, ingest only
    display = "display"  # a wall screen's display key: view-only, one scope, wall routes only


@dataclass(frozen=True)
class Grant:
    """A role in one enterprise, optionally limited to one site; or the chain-operator grant."""

    enterprise: str
    role: Role | None  # None for the chain-operator grant
    site: str | None = None

    @property
    def chain(self) -> bool:
        """Return whether this is the chain-operator grant."""
        return self.enterprise == CHAIN_SCOPE


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, an API key or a device, with their grants."""

    kind: PrincipalKind
    name: str
    grants: tuple[Grant, ...]
    session_id: str | None = None
    csrf_token: str | None = field(default=None, repr=False)
    home: str | None = None  # the default enterprise stored with a user or key

    @property
    def chain_operator(self) -> bool:
        """Return whether the principal may see cross-enterprise aggregates."""
        return any(g.chain for g in self.grants)

    @property
    def enterprises(self) -> list[str]:
        """Return the enterprises granted, sorted."""
        return sorted({g.enterprise for g in self.grants if not g.chain})

    @property
    def default_enterprise(self) -> str | None:
        """Return the enterprise used when a request names none.

        That is the principal's stored default (``home``, set when the user or key was made)
        while it is granted; nobody else's grant can change it. Without a stored default
        (principals built by hand), the first granted enterprise.
        """
        if self.home is not None:
            return self.home if self.grant_for(self.home) is not None else None
        names = self.enterprises
        return names[0] if names else None

    def grant_for(self, enterprise: str) -> Grant | None:
        """Return the grant for ``enterprise`` (never the chain grant), or None."""
        for g in self.grants:
            if g.enterprise == enterprise and not g.chain:
                return g
        return None


@dataclass(frozen=True)
class Decision:
    """The outcome of an authorisation check: ``status`` 200 means allowed."""

    status: int
    reason: str = ""
    enterprise: str | None = None

    @property
    def allowed(self) -> bool:
        """Return whether the request may proceed."""
        return self.status == 200


def _site_ok(site: str, names: Iterable[str]) -> bool:
    """Return whether every asset name the request targets lies under ``site`` (and one does)."""
    named = [n.strip("/") for n in names if n]
    return bool(named) and all(n == site or n.startswith(f"{site}/") for n in named)


def decide(
    need: Need,
    principal: Principal | None,
    *,
    enterprise: str | None,
    asset_names: Mapping[str, str] | None = None,
) -> Decision:
    """Decide whether ``principal`` may call a route needing ``need`` on ``enterprise``.

    ``enterprise`` is the tenant the request targets (None: the principal's default).
    ``asset_names`` are the request's tag/prefix/site/machine values, checked against a
    site-limited grant. Reasons never name an enterprise the caller was not granted.
    """
    if need is Need.public:
        return Decision(200)
    if principal is None:
        return Decision(401, "sign in or send an API key (Authorization: Bearer …)")
    if principal.kind is PrincipalKind.device and need is not Need.ingest:
        return Decision(403, "a device key may only send data to /api/v1/ingest")
    if principal.kind is PrincipalKind.display and need is not Need.viewer:
        return Decision(403, "a display key only shows wall screens (view-only)")
    if need is Need.signed_in:
        return Decision(200)
    if need is Need.chain:
        if principal.chain_operator:
            return Decision(200)
        return Decision(403, "this route shows cross-enterprise aggregates: chain operators only")
    target = enterprise or principal.default_enterprise
    if target is None:
        return Decision(403, "no enterprise is granted to this principal; name one you may see")
    grant = principal.grant_for(target)
    if grant is None:
        return Decision(403, "the requested enterprise is not granted to this principal")
    if grant.site is not None and not _site_ok(grant.site, (asset_names or {}).values()):
        return Decision(
            403,
            f"this grant is limited to site {grant.site!r}: name a tag, prefix or machine under it",
        )
    assert grant.role is not None
    if need is Need.ingest:
        if principal.kind is PrincipalKind.device or grant.role >= Role.operator:
            return Decision(200, enterprise=target)
        return Decision(403, "sending data needs a device key or the operator role")
    if principal.kind is PrincipalKind.device:
        return Decision(403, "a device key may only send data to /api/v1/ingest")
    required = Role[need.value]
    if grant.role < required:
        return Decision(403, f"this needs the {required.name} role (you have {grant.role.name})")
    return Decision(200, enterprise=target)
