"""The pure authorisation decision: roles, tenants, devices, chain operators, site limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indunet.auth.model import CHAIN_SCOPE, Grant, Need, Principal, PrincipalKind, Role, decide


def user(*grants: Grant) -> Principal:
    return Principal(PrincipalKind.user, "u", grants)


ACME_OPERATOR = user(Grant("acme", Role.operator))
DEVICE = Principal(PrincipalKind.device, "d1", (Grant("acme", Role.viewer),))
CHAIN = user(Grant(CHAIN_SCOPE, None))


@pytest.mark.parametrize(
    ("need", "status"),
    [
        (Need.viewer, 200),
        (Need.operator, 200),
        (Need.admin, 403),
        (Need.ingest, 200),
        (Need.chain, 403),
        (Need.signed_in, 200),
        (Need.public, 200),
    ],
)
def test_operator_of_acme(need: Need, status: int) -> None:
    assert decide(need, ACME_OPERATOR, enterprise="acme").status == status
    assert decide(need, ACME_OPERATOR, enterprise=None).status == status  # default: acme


def test_anonymous_is_401_except_public() -> None:
    for need in Need:
        expected = 200 if need is Need.public else 401
        assert decide(need, None, enterprise="acme").status == expected


def test_other_tenant_is_403_with_a_reason_that_names_no_enterprise() -> None:
    d = decide(Need.viewer, ACME_OPERATOR, enterprise="globex")
    assert d.status == 403 and "globex" not in d.reason and "acme" not in d.reason
    # the same answer whether or not the enterprise exists anywhere
    assert decide(Need.viewer, ACME_OPERATOR, enterprise="no-such").reason == d.reason


def test_device_key_only_ingests_its_own_enterprise() -> None:
    assert decide(Need.ingest, DEVICE, enterprise=None).enterprise == "acme"
    assert decide(Need.ingest, DEVICE, enterprise="globex").status == 403
    for need in (Need.viewer, Need.operator, Need.admin, Need.chain, Need.signed_in):
        assert decide(need, DEVICE, enterprise="acme").status == 403


def test_viewer_cannot_ingest() -> None:
    assert decide(Need.ingest, user(Grant("acme", Role.viewer)), enterprise="acme").status == 403


def test_chain_operator_sees_aggregates_never_a_tenant() -> None:
    assert decide(Need.chain, CHAIN, enterprise=None).allowed
    for need in (Need.viewer, Need.ingest):
        assert decide(need, CHAIN, enterprise="acme").status == 403
        assert decide(need, CHAIN, enterprise=None).status == 403
    assert CHAIN.default_enterprise is None and CHAIN.enterprises == []


def test_site_limited_grant_needs_names_under_its_site() -> None:
    p = user(Grant("acme", Role.admin, site="s1"))
    assert decide(Need.viewer, p, enterprise="acme", asset_names={"tag": "s1/a/l/m/t"}).allowed
    assert decide(Need.viewer, p, enterprise="acme", asset_names={"prefix": "s1"}).allowed
    for names in ({}, {"tag": "s2/a/l/m/t"}, {"prefix": "s1x"}, {"tag": "s1/a", "prefix": "s2"}):
        assert decide(Need.viewer, p, enterprise="acme", asset_names=names).status == 403


def test_role_parse() -> None:
    assert Role.parse(" Admin ") is Role.admin
    with pytest.raises(ValueError, match="viewer, operator, admin"):
        Role.parse("root")


roles = st.sampled_from(list(Role))
needs = st.sampled_from([Need.viewer, Need.operator, Need.admin])


@given(roles, needs, st.sampled_from(["acme", "globex", None]))
def test_role_order_and_tenant(role: Role, need: Need, target: str | None) -> None:
    d = decide(need, user(Grant("acme", role)), enterprise=target)
    granted = target in ("acme", None)
    assert d.allowed == (granted and role >= Role[need.value])
    assert d.status in (200, 403)
