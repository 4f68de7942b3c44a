"""Tenants on the broker: a Mosquitto password file and ACL file from a short tenant list.

Each enterprise's devices and edge agents may write only under ``indunet/v1/{enterprise}/#``
(and its audit records), read only its own command topics, and use only its own Sparkplug
groups; the ingest user reads everything and writes commands, rebirth requests and its STATE.
Federation (docs/federation.md): an enterprise's ``uplink_users`` (its plants' `indunet serve
--uplink`) may publish only ``indunet/uplink/v1/{enterprise}/#``, and the regional consumer's
user (``[region] user``) may only read ``indunet/uplink/v1/#``.
Passwords are hashed as Mosquitto 2 does (``$7$``: PBKDF2-SHA512, 101 iterations).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from indunet.errors import DataError

__all__ = [
    "BrokerTenants",
    "acl_text",
    "check_password",
    "hash_password",
    "parse_tenants",
    "topic_rules",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")  # no MQTT wildcards, no '/'
_ITERATIONS = 101
#: the federation's uplink topics (`indunet.federation.contract.ROOT`; kept here as text so the
#: broker files do not import the federation package)
UPLINK_ROOT = "indunet/uplink/v1"


@dataclass(frozen=True)
class BrokerTenants:
    """The ingest user and, per enterprise, its Sparkplug groups and device/edge users."""

    ingest_user: str
    enterprises: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    #: per enterprise, the users its plants' uplinks log in as (publish its uplink topics only)
    uplink_users: dict[str, list[str]] = field(default_factory=dict)
    #: the regional instance's consumer (reads every uplink), if the broker carries uplinks
    region_user: str | None = None

    def users(self) -> list[str]:
        """Return every broker user, the ingest user first."""
        return [
            self.ingest_user,
            *(u for _, users in self.enterprises.values() for u in users),
            *(u for users in self.uplink_users.values() for u in users),
            *([self.region_user] if self.region_user else []),
        ]


def _name(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise DataError(f"{kind} {value!r} is not valid: 1-64 letters, digits, '_', '.', '@', '-'")
    return value


def parse_tenants(doc: dict[str, Any]) -> BrokerTenants:
    """Validate the tenant document (``[ingest] user``, ``[region] user``, ``[enterprises.NAME]``).

    An enterprise table lists ``sparkplug_groups``, ``users`` (devices, edge agents) and
    ``uplink_users`` (its plants' uplinks to a regional instance).
    """
    ingest = _name("ingest.user", (doc.get("ingest") or {}).get("user", "indunet-ingest"))
    seen = {ingest: "ingest"}
    region_table = doc.get("region") or {}
    if not isinstance(region_table, dict):
        raise DataError("region must be a table with a user")
    region = region_table.get("user")
    if region is not None:
        _name("region.user", region)
        if region in seen:
            raise DataError(f"user {region!r} is listed twice (ingest and region)")
        seen[region] = "region"
    out: dict[str, tuple[list[str], list[str]]] = {}
    uplinks: dict[str, list[str]] = {}
    for ent, table in (doc.get("enterprises") or {}).items():
        _name("enterprise", ent)
        if not isinstance(table, dict):
            raise DataError(f"enterprises.{ent} must be a table")
        groups = [
            _name(f"enterprises.{ent}.sparkplug_groups", g)
            for g in table.get("sparkplug_groups", [])
        ]
        users = [_name(f"enterprises.{ent}.users", u) for u in table.get("users", [])]
        uplink = [
            _name(f"enterprises.{ent}.uplink_users", u) for u in table.get("uplink_users", [])
        ]
        for u in users + uplink:
            if u in seen:
                raise DataError(f"user {u!r} is listed twice ({seen[u]} and {ent})")
            seen[u] = ent
        out[ent] = (groups, users)
        if uplink:
            uplinks[ent] = uplink
    owners: dict[str, str] = {}
    for ent, (groups, _) in out.items():
        for g in groups:
            if g in owners:
                raise DataError(f"sparkplug group {g!r} belongs to {owners[g]} and {ent}")
            owners[g] = ent
    return BrokerTenants(ingest, out, uplinks, region)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Return a Mosquitto 2 password-file hash (``$7$101$salt$hash``) of ``password``."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS)
    return f"$7${_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def topic_rules(tenants: BrokerTenants) -> dict[str, list[tuple[str, str]]]:
    """Return each user's ``(access, topic filter)`` rules; access is read, write or readwrite.

    The one statement of the broker's tenant rule: the Mosquitto ACL file (`acl_text`) and the
    embedded broker's topic check (`indunet.connect.broker`) are both made from it.
    """
    rules = {
        tenants.ingest_user: [
            ("read", "indunet/v1/#"),
            ("read", "indunet/audit/v1/#"),
            ("write", "indunet/cmd/v1/#"),
            ("readwrite", "spBv1.0/#"),  # data in; rebirth requests (NCMD) and its STATE out
        ]
    }
    for ent, (groups, users) in sorted(tenants.enterprises.items()):
        for user in users:
            rules[user] = [
                ("write", f"indunet/v1/{ent}/#"),
                ("write", f"indunet/audit/v1/{ent}/#"),
                ("read", f"indunet/cmd/v1/{ent}/#"),
                *(("readwrite", f"spBv1.0/{g}/#") for g in groups),
                ("read", "spBv1.0/STATE/#"),
            ]
    for ent, users in sorted(tenants.uplink_users.items()):
        for user in users:  # a plant's uplink: its own enterprise's uplink topics, nothing else
            rules[user] = [("write", f"{UPLINK_ROOT}/{ent}/#")]
    if tenants.region_user:
        rules[tenants.region_user] = [("read", f"{UPLINK_ROOT}/#")]
    return rules


def acl_text(tenants: BrokerTenants) -> str:
    """Return the Mosquitto ACL file: each tenant's users confined to its own topics."""
    lines = ["# written by `indunet broker acl`: every user may use only the topics listed for it"]
    for user, rules in topic_rules(tenants).items():
        lines += [f"user {user}", *(f"topic {access} {topic}" for access, topic in rules), ""]
    return "\n".join(lines)


def check_password(password: str, hashed: str) -> bool:
    """Return whether ``password`` matches a `hash_password` (Mosquitto ``$7$``) hash."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit() or len(parts[2]) > 7:
        return False
    try:
        salt, want = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4])
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(got, want)
