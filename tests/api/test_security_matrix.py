"""Every route × every kind of caller, generated from ``app.routes`` so none can be forgotten.

Callers: anonymous, viewer / operator / admin API keys of the tenant ``acme`` (this server's
enterprise), a device key of ``acme``, a chain operator, and an admin of another tenant
(``globex``). Allowed means "got past authorisation" (any status but 401/403; fake ids may
well give 404 or 422) and never a 500. Also: sessions, CSRF, session fixation, brute force.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from indunet.api.app import create_app
from indunet.auth.model import Need, Role
from indunet.auth.policy import ROUTES, rule_for
from indunet.auth.store import AuthStore
from indunet.auth.web import CSRF_COOKIE, SESSION_COOKIE, is_page
from indunet.config import load_settings

SECRET_TAG = "s1/a/l/m/acme_secret_tag"
PATH_VALUES = {
    "kind": "inventory",
    "name": "net1",
    "path": "s1/a/l/m",
    "alarm_id": "hot@s1/a/l/m/x",
    "run_id": "r1",
    "entry_id": "e1",
    "order_id": "o1",
    "action": "confirm",
    "scenario": "sc1",
    "rule_id": "rule1",
    "monitor_id": "mon1",
    "key_id": "0123456789abcdef",
    "invitation_id": "0123456789abcdef01234567",
    "site": "s1",
    "area": "a",
    "line": "l",
    "machine": "m",
    "report_id": "0123456789abcdef0123",
    "call_id": "0123456789abcdef",
}
DOCK_KINDS = {"kind": "requests"}
PASSWORD = "a long enough password"


@dataclass(frozen=True)
class Endpoint:
    """One (method, path) of the app with a concrete URL to call."""

    method: str
    path: str
    url: str


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Return every routed (method, path) of the app, static mount aside."""
    out = []
    for rc in iter_route_contexts(app.routes):
        if rc.path is None or not rc.methods:
            continue
        values = {**PATH_VALUES, **(DOCK_KINDS if rc.path.startswith("/api/v1/dock/") else {})}
        url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m, v=values: v[m.group(1)], rc.path)
        for method in sorted(rc.methods - {"HEAD"}):
            out.append(Endpoint(method, rc.path, url))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One app (DuckDB) with two tenants' data and a key for each kind of caller."""
    tmp: Path = tmp_path_factory.mktemp("security")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.delenv("INDUNET_CONFIG", raising=False)
        settings = load_settings(data_dir=tmp / "data", enterprise="acme")
    app = create_app(settings)
    with TestClient(app) as client:
        store = AuthStore(app.state.historian)
        now = int(time.time() * 1000)
        keys = {role.name: store.create_key("acme", role.name, now_ms=now).secret for role in Role}
        keys["other_tenant"] = store.create_key("globex", "admin", now_ms=now).secret
        keys["chain"] = store.create_key("*", "chain", now_ms=now).secret
        headers = {k: {"Authorization": f"Bearer {v}"} for k, v in keys.items()}
        device = store.create_key("acme", "operator", device=True, now_ms=now).secret
        headers["device"] = {"X-Device-Key": device}
        headers["anonymous"] = {}
        point = {"tag": SECRET_TAG, "ts": now - 1000, "value": 42.5}
        assert client.post("/api/v1/ingest", json=point, headers=headers["device"]).is_success
        other = {"tag": "s9/x/y/z/globex_tag", "ts": now - 1000, "value": 1.0}
        r = client.post("/api/v1/ingest", json=other, headers=headers["other_tenant"])
        assert r.status_code == 200, r.text  # globex's own data, by its admin (≥ operator)
        yield {"app": app, "client": client, "headers": headers, "store": store}


def test_route_table_matches_app_routes_both_ways(world) -> None:
    app = world["app"]
    routed = {(e.method, e.path) for e in endpoints(app)}
    missing = {r for r in routed if rule_for(*r) is None}
    assert not missing, f"routes without a row in indunet.auth.policy.ROUTES: {sorted(missing)}"
    stale = {r for r in ROUTES if r not in routed and r != ("*", "/static")}
    assert not stale, f"rows for routes that do not exist: {sorted(stale)}"
    assert any(getattr(r, "path", None) == "/static" for r in app.routes)


def expected(need: Need, caller: str) -> bool:
    """Return whether ``caller`` may call a route needing ``need`` on acme."""
    if need is Need.public:
        return True
    if caller == "anonymous":
        return False
    if caller == "device":
        return need is Need.ingest
    if need is Need.signed_in:
        return True
    if need is Need.chain:
        return caller == "chain"
    if caller in ("chain", "other_tenant"):
        return False
    if need is Need.ingest:
        return Role[caller] >= Role.operator
    return Role[caller] >= Role[need.value]


def denied(r) -> bool:
    """Return whether a response refused the caller (pages send anonymous users to sign in)."""
    to_login = r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    return r.status_code in (401, 403) or to_login


def same_error(a, b) -> bool:
    """Return whether two error answers say the same (each has its own request id)."""
    x, y = a.json(), b.json()
    assert x.pop("request_id") != y.pop("request_id")
    return x == y


CALLERS = ["anonymous", "device", "chain", "other_tenant", "viewer", "operator", "admin"]


def call(client: TestClient, e: Endpoint, headers: dict, params: dict | None = None):
    """Call one endpoint with an empty body where it takes one."""
    body = {} if e.method in ("POST", "PUT") else None
    extra = {"Last-Event-ID": "garbage"} if e.path == "/api/v1/events" else {}  # no endless stream
    return client.request(
        e.method,
        e.url,
        headers={**headers, **extra},
        params=params,
        json=body,
        follow_redirects=False,
    )


@pytest.mark.parametrize("caller", CALLERS)
def test_every_route_as_every_caller(world, caller: str) -> None:
    client, headers = world["client"], world["headers"][caller]
    wrong = []
    for e in endpoints(world["app"]):
        rule = rule_for(e.method, e.path)
        assert rule is not None
        if e.path in ("/api/v1/auth/logout",):
            continue  # ends a session; covered in test_session_* below
        # other-tenant callers aim at acme explicitly; everyone else uses their default
        params = {"enterprise": "acme"} if rule.scope == "query" else None
        r = call(client, e, headers, params)
        allowed = expected(rule.need, caller)
        if r.status_code >= 500 or denied(r) == allowed:
            wrong.append((e.method, e.path, r.status_code, r.text[:120]))
        if not allowed and caller == "anonymous":
            page = is_page(e.path)
            if (r.status_code != 401 and not page) or (r.status_code != 303 and page):
                wrong.append((e.method, e.path, r.status_code, "anonymous: 401, pages: sign in"))
        if caller in ("other_tenant", "chain", "device") and not allowed:
            assert SECRET_TAG not in r.text and "acme" not in r.text, (e.path, r.text)
    assert not wrong, "\n".join(map(str, wrong))


def test_other_tenant_on_its_own_default_never_sees_acme(world) -> None:
    """Without ?enterprise= a globex admin lands on globex: never acme's tags, even by search."""
    client, headers = world["client"], world["headers"]["other_tenant"]
    for e in endpoints(world["app"]):
        if e.method != "GET" or e.path == "/api/v1/events":
            continue
        r = call(client, e, headers)
        assert r.status_code < 500, (e.path, r.text)
        assert SECRET_TAG not in r.text and "acme_secret" not in r.text, e.path
    r = client.get(
        "/api/v1/tags", params={"search": "acme_secret", "prefix": "s1"}, headers=headers
    )
    assert r.status_code == 200 and r.json()["tags"] == []
    r = client.get("/api/v1/series", params={"tag": SECRET_TAG}, headers=headers)
    assert SECRET_TAG not in r.text or r.json().get("points") in ([], None)
    # the acme viewer does see it: the probe above could have failed
    viewer = world["headers"]["viewer"]
    assert SECRET_TAG in client.get("/api/v1/latest", headers=viewer).text


def test_403_is_the_same_whether_or_not_the_tenant_or_tag_exists(world) -> None:
    client, headers = world["client"], world["headers"]["other_tenant"]
    a = client.get(
        "/api/v1/series", params={"enterprise": "acme", "tag": SECRET_TAG}, headers=headers
    )
    b = client.get(
        "/api/v1/series", params={"enterprise": "nope", "tag": "x/y/z/w/v"}, headers=headers
    )
    assert a.status_code == b.status_code == 403 and same_error(a, b)


def test_revoked_key_is_refused_at_once(world) -> None:
    store, client = world["store"], world["client"]
    key = store.create_key("acme", "viewer", now_ms=int(time.time() * 1000))
    auth = {"Authorization": f"Bearer {key.secret}"}
    assert client.get("/api/v1/latest", headers=auth).status_code == 200
    store.revoke_key(key.key_id, now_ms=int(time.time() * 1000))
    assert client.get("/api/v1/latest", headers=auth).status_code == 401
    assert client.get("/api/v1/latest", headers={"Authorization": "Basic abc"}).status_code == 401


@contextmanager
def browser(app: FastAPI, base_url: str = "http://testserver") -> Iterator[TestClient]:
    """A second client (own cookie jar) on the running app, without a second lifespan."""
    client = TestClient(app, base_url=base_url)
    try:
        yield client
    finally:
        client.cookies.clear()


def _user(store: AuthStore, name: str, role: str) -> None:
    if store.user(name) is None:
        store.add_user(name, PASSWORD, now_ms=0)
    store.grant(name, "acme", role)


def test_session_login_me_csrf_and_logout(world) -> None:
    app, store = world["app"], world["store"]
    _user(store, "olga", "operator")
    with browser(app, "http://testserver") as c:
        r = c.post("/api/v1/auth/login", json={"name": "olga", "password": PASSWORD})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        csrf = r.json()["csrf_token"]
        assert c.cookies[CSRF_COOKIE] == csrf
        me = c.get("/api/v1/auth/me").json()
        assert me["name"] == "olga" and me["enterprises"] == ["acme"]
        ack = "/api/v1/alarms/hot@s1/a/l/m/x/acknowledge"
        assert c.post(ack, json={}).status_code == 403  # cookie alone: no
        assert c.post(ack, json={}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
        cross = {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
        assert c.post(ack, json={}, headers=cross).status_code == 403
        ok = c.post(ack, json={}, headers={"X-CSRF-Token": csrf, "Origin": "http://testserver"})
        assert ok.status_code not in (401, 403), ok.text
        assert c.get("/api/v1/latest").status_code == 200  # safe methods need no token
        token = c.cookies[SESSION_COOKIE]
        assert c.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        c.cookies.set(SESSION_COOKIE, token)  # replaying the old cookie after logout
        assert c.get("/api/v1/auth/me").status_code == 401


def test_secure_cookie_over_https(world) -> None:
    store = world["store"]
    _user(store, "hana", "viewer")
    with browser(world["app"], "https://testserver") as c:
        r = c.post("/api/v1/auth/login", json={"name": "hana", "password": PASSWORD})
        assert "Secure" in r.headers["set-cookie"]


def test_login_rotates_the_session_id_against_fixation(world) -> None:
    store = world["store"]
    _user(store, "fred", "viewer")
    with browser(world["app"]) as c:
        c.cookies.set(SESSION_COOKIE, "planted-by-an-attacker")
        assert c.get("/api/v1/auth/me").status_code == 401
        r = c.post("/api/v1/auth/login", json={"name": "fred", "password": PASSWORD})
        first = r.cookies[SESSION_COOKIE]
        assert first != "planted-by-an-attacker"
        c.cookies.clear()
        c.cookies.set(SESSION_COOKIE, first)  # log in again presenting the current id
        r = c.post("/api/v1/auth/login", json={"name": "fred", "password": PASSWORD})
        assert r.status_code == 200, (r.status_code, r.text, r.headers)
        second = r.cookies[SESSION_COOKIE]
        assert second != first
    with browser(world["app"]) as c:
        c.cookies.set(SESSION_COOKIE, first)
        assert c.get("/api/v1/auth/me").status_code == 401  # the old id died with the new login
        c.cookies.set(SESSION_COOKIE, second)
        assert c.get("/api/v1/auth/me").status_code == 200


def test_brute_force_login_is_rate_limited(world) -> None:
    store = world["store"]
    _user(store, "gus", "viewer")
    with browser(world["app"]) as c:
        codes = [
            c.post("/api/v1/auth/login", json={"name": "gus", "password": f"guess-{i}"}).status_code
            for i in range(5)
        ]
        assert codes == [401] * 5
        r = c.post("/api/v1/auth/login", json={"name": "gus", "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1  # even the right one
        assert "gus" not in r.text
        # an unknown name fails the same way as a wrong password (no user enumeration)
        r = c.post("/api/v1/auth/login", json={"name": "no-such-user", "password": "x" * 12})
        assert r.status_code == 401
        wrong = c.post("/api/v1/auth/login", json={"name": "fred", "password": "x" * 12})
        assert same_error(r, wrong)


def test_login_form_double_submit_and_safe_redirect(world) -> None:
    store = world["store"]
    _user(store, "iris", "viewer")
    with browser(world["app"]) as c:
        form = {"name": "iris", "password": PASSWORD, "next": "//evil.example/x"}
        r = c.post("/api/v1/auth/login/form", data=form, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?error=csrf")
        c.cookies.set(CSRF_COOKIE, "tok123")
        r = c.post(
            "/api/v1/auth/login/form",
            data={**form, "csrf_token": "tok123"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert SESSION_COOKIE in r.cookies


def test_admin_routes_manage_only_their_tenant(world) -> None:
    client, h = world["client"], world["headers"]
    r = client.post(
        "/api/v1/keys", json={"name": "line-1 meter", "device": True}, headers=h["admin"]
    )
    assert r.status_code == 201 and r.json()["secret"].startswith("idk_")
    key_id = r.json()["key_id"]
    assert key_id in client.get("/api/v1/keys", headers=h["admin"]).text
    other = client.get("/api/v1/keys", headers=h["other_tenant"])
    assert other.status_code == 200 and key_id not in other.text
    # another tenant's admin cannot revoke it, and cannot tell it exists
    gone = client.delete(f"/api/v1/keys/{key_id}", headers=h["other_tenant"])
    missing = client.delete("/api/v1/keys/ffffffffffffffff", headers=h["other_tenant"])
    assert gone.status_code == missing.status_code == 404 and same_error(gone, missing)
    r = client.post(
        "/api/v1/users",
        json={"name": "newbie", "password": PASSWORD, "role": "operator"},
        headers=h["admin"],
    )
    assert r.status_code == 201
    assert "newbie" not in client.get("/api/v1/users", headers=h["other_tenant"]).text
    assert client.delete(f"/api/v1/keys/{key_id}", headers=h["admin"]).json()["revoked"]


# --------------------------------------------------------------------------------------------
# The marker matrix: plant unique markers in every tenant-owned table of one tenant, call every
# route as the other tenant's admin (with its default, its own ?enterprise= and the first
# tenant's ids and names in the path and query), and assert no answer holds them. Status codes
# alone let a leak through (issue 15, F2: 200 with another tenant's machines).
#
# Two markers per tenant: MARK names things a caller may guess and put in a URL (sites, machine
# paths, network and rule names), so an answer may echo it back when the URL holds it; BODY is
# only ever stored content (descriptions, items, messages, reasons, key names, user names) and
# no answer to another tenant may hold it, whatever the URL.

MARK = {"acme": "mkacme9q7z", "globex": "mkglobex4x2w"}  # acme is the server's enterprise
BODY = {"acme": "ctacme5v8p", "globex": "ctglobex3n6k"}


def _plant_markers(client: TestClient, app: FastAPI, enterprise: str, key: str) -> dict:
    """Write ``enterprise``'s markers into every table it owns; return its ids for probing."""
    from indunet.condition.monitors import load_monitors
    from indunet.condition.rul_service import RulStore
    from indunet.model import DeadLetter
    from indunet.plant.alarm_service import AlarmStore
    from indunet.plant.alarms import load_rules
    from indunet.plant.command_log import CommandLog, CommandResult
    from indunet.store.tables import SqlPort
    from tests.chain.networks import MIXED, doc

    m, c = MARK[enterprise], BODY[enterprise]
    h = {"Authorization": f"Bearer {key}"}
    q = {"enterprise": enterprise}
    now = int(time.time() * 1000)
    machine = f"{m}/a/l/m"
    ids: dict[str, str] = {"machine": machine, "site": m, "tag": f"{machine}/{m}_kw"}

    def ok(r) -> dict:
        assert r.status_code < 300, (r.request.url, r.text)
        return r.json()

    ok(
        client.post(
            "/api/v1/ingest",
            params=q,
            headers=h,
            json=[
                {"tag": ids["tag"], "ts": now - 5000, "value": 1.0},
                {"tag": f"{machine}/{c}_kw", "ts": now - 5000, "value": 2.0},
            ],
        )
    )
    ok(
        client.post(
            "/api/v1/tags",
            params=q,
            headers=h,
            json=[{"tag": ids["tag"], "unit": "kW", "description": c}],
        )
    )
    ok(
        client.put(
            f"/api/v1/machines/{machine}", params=q, headers=h, json={"power_tag": f"{c}_kw"}
        )
    )
    shifts = [{"name": c, "start": "06:00", "end": "14:00"}]  # a site calendar (plant_sites)
    ok(client.put(f"/api/v1/sites/{m}", params=q, headers=h, json={"calendar": {"shifts": shifts}}))
    row = {"item": c, "warehouse": c, "quantity": 5, "as_of": now}
    ok(client.post("/api/v1/business/inventory", params=q, headers=h, json=[row]))
    ok(
        client.post(
            "/api/v1/dock/requests",
            params=q,
            headers=h,
            json=[{"id": f"{c}r", "item": c, "quantity": 5, "unmet_penalty": 9}],
        )
    )
    ok(
        client.post(
            "/api/v1/dock/offers",
            params=q,
            headers=h,
            json=[{"id": f"{c}o", "item": c, "quantity": 9}],
        )
    )
    ids["run_id"] = ok(client.post("/api/v1/dock/runs", params=q, headers=h, json={}))["run_id"]
    ids["name"] = m
    network = doc(MIXED)
    for node in network["nodes"]:
        node["region"] = c
    ok(client.put(f"/api/v1/chain/networks/{m}", params=q, headers=h, json=network))
    ids["key_id"] = ok(client.post("/api/v1/keys", params=q, headers=h, json={"name": c}))["key_id"]
    ok(client.post("/api/v1/users", params=q, headers=h, json={"name": c, "password": PASSWORD}))
    inv = ok(client.post("/api/v1/invitations", params=q, headers=h, json={"user": f"{c}x"}))
    ids["invitation_id"] = inv["invitation_id"]
    rule = {"id": f"{m}rule", "kind": "high", "tag": ids["tag"], "limit": 3, "message": c}
    if enterprise == app.state.settings.enterprise:
        ok(client.post("/api/v1/alarm-rules", headers=h, json=rule))
    else:  # alarm rules are the server's plant's: another tenant's come from the store
        AlarmStore(app.state.historian).put_rules(enterprise, load_rules([rule]), now)
    ids["rule_id"] = rule["id"]
    historian = app.state.historian
    monitor = {"id": f"{m}mon", "tag": ids["tag"], "message": c}  # anomaly monitors
    AlarmStore(historian).put_monitors(enterprise, load_monitors([monitor]), now)
    ids["monitor_id"] = monitor["id"]
    RulStore(historian).put(  # remaining useful life estimates
        [
            {
                "enterprise": enterprise, "machine": machine, "asset_class": f"{m}class",
                "ts_ms": now, "status": "ok", "cycle": 9.0, "cycles_seen": 30, "rul": 50.0,
                "low": 40.0, "high": 60.0, "band_low": 0.05, "band_high": 0.95, "cap": 125,
                "horizon": 20.0, "message": c,
            }
        ]
    )  # fmt: skip
    historian.add_dead_letters([DeadLetter("mqtt", f"bad {c}", c, c)], enterprise=enterprise)
    result = CommandResult(
        enterprise, f"{c}c", f"{c}_kw", now, machine, c, c, "operator", "1", "2", "ok", c
    )
    CommandLog(historian).add([result])
    sql = SqlPort(historian)
    sql.execute(
        "INSERT INTO plant_states VALUES ($1, $2, $3, $4, 'idle', $5)",
        [enterprise, machine, now - 60_000, now - 30_000, c],
    )
    sql.execute(
        "INSERT INTO plant_reasons VALUES ($1, $2, $3, $4, $5, $6)",
        [enterprise, machine, now - 60_000, now - 30_000, c, now],
    )
    sql.execute(
        "INSERT INTO plant_alarm_events VALUES ($1, 1, $2, 'raise', $3, $4, $5, 'unack', "
        "'high', 4.0, $6, $6, $6, 0, $2)",
        [enterprise, now - 1000, f"{m}rule@{ids['tag']}", f"{m}rule", ids["tag"], c],
    )
    return ids


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two tenants, each with its markers in every table it owns; acme also has a file plant."""
    from indunet.plant.config import PlantConfig

    tmp: Path = tmp_path_factory.mktemp("markers")
    m, c = MARK["acme"], BODY["acme"]
    plant = PlantConfig.model_validate(
        {
            "machines": [{"id": f"{m}/f/l/m", "power_tag": f"{c}_file_kw", "rated_kw": 7.5}],
            "sites": {m: {"oee_target": 0.8}},
            "reasons": {"reasons": [{"code": f"{c}jam", "label": c}]},
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.delenv("INDUNET_CONFIG", raising=False)
        settings = load_settings(data_dir=tmp / "data", enterprise="acme", plant=plant)
    app = create_app(settings)
    with TestClient(app) as client:
        store = AuthStore(app.state.historian)
        keys = {e: store.create_key(e, "admin", now_ms=0).secret for e in MARK}
        ids = {e: _plant_markers(client, app, e, keys[e]) for e in MARK}
        yield {"app": app, "client": client, "keys": keys, "ids": ids}


SEEN_BY_OWNER = [
    "/api/v1/machines",
    "/api/v1/latest",
    "/api/v1/tags",
    "/api/v1/deadletters",
    "/api/v1/inventory",
    "/api/v1/dock/requests",
    "/api/v1/chain/networks",
    "/api/v1/keys",
    "/api/v1/users",
    "/api/v1/invitations",
    "/api/v1/commands",
    "/api/v1/condition/rul",
]


@pytest.mark.parametrize("owner", sorted(MARK))
def test_markers_are_seen_by_their_owner(planted, owner: str) -> None:
    """The probe can fail: each tenant's own listings do show its markers."""
    client, key = planted["client"], planted["keys"][owner]
    for url in SEEN_BY_OWNER:
        r = client.get(url, headers={"Authorization": f"Bearer {key}"})
        found = MARK[owner] in r.text or BODY[owner] in r.text
        assert r.status_code == 200 and found, (owner, url, r.text[:200])


def _leaks(r, owner: str) -> bool:
    """Return whether an answer holds the owner's data (its name marker only if not asked)."""
    text = r.text + str(r.headers)
    if BODY[owner] in text:
        return True
    return MARK[owner] in text and MARK[owner] not in str(r.request.url)


@pytest.mark.parametrize(("owner", "caller"), [("acme", "globex"), ("globex", "acme")])
def test_no_answer_to_another_tenant_holds_the_marker(planted, owner: str, caller: str) -> None:
    """Every route, as the other tenant's admin: no answer holds the owner's markers."""
    client, app = planted["client"], planted["app"]
    mark, ids = MARK[owner], planted["ids"][owner]
    headers = {"Authorization": f"Bearer {planted['keys'][caller]}"}
    probes = {k: ids[k] for k in ("tag", "machine", "site")}
    probes.update(prefix=mark, scope=mark, search=mark, name=mark)
    leaks = []
    calls = 0
    for rc in iter_route_contexts(app.routes):
        if rc.path is None or not rc.methods or rc.path == "/api/v1/auth/logout":
            continue
        values = {**PATH_VALUES, **ids, "path": ids["machine"], "area": "a", "line": "l"}
        values["machine"] = "m"
        if rc.path.startswith("/api/v1/dock/"):
            values["kind"] = "requests"
        url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda x, v=values: v[x.group(1)], rc.path)
        for method in sorted(rc.methods - {"HEAD"}):
            for params in (None, {"enterprise": caller}, {"enterprise": caller, **probes}):
                extra = {"Last-Event-ID": "garbage"} if rc.path == "/api/v1/events" else {}
                r = client.request(
                    method,
                    url,
                    params=params,
                    headers={**headers, **extra},
                    json={} if method in ("POST", "PUT") else None,
                    follow_redirects=False,
                )
                calls += 1
                if r.status_code >= 500 or _leaks(r, owner):
                    leaks.append((method, url, params, r.status_code, r.text[:160]))
    assert not leaks, "\n".join(map(str, leaks))
    assert calls > 300
