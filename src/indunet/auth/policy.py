"""The one table of what every route requires: ``(method, path) → (need, tenant scope)``.

``tests/api/test_security_matrix.py`` checks this table against ``app.routes`` both ways, so a new
route without a row fails the tests (and is refused at runtime: unknown routes fail closed).

Tenant scope: ``query`` — the tenant is the ``enterprise`` query parameter, else the principal's
default enterprise; ``server`` — the route acts on this server's own plant (alarm service, event
stream), whose enterprise is ``settings.enterprise``; ``none`` — no tenant (public, chain
aggregates, the caller's own account).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from indunet.auth.model import Need

__all__ = ["ROUTES", "Rule", "rule_for"]

Scope = Literal["query", "server", "none"]


@dataclass(frozen=True)
class Rule:
    """What a route needs and where its tenant comes from."""

    need: Need
    scope: Scope = "query"


_PUBLIC = Rule(Need.public, "none")
_V, _O, _A = Rule(Need.viewer), Rule(Need.operator), Rule(Need.admin)
_SV, _SO, _SA = (Rule(n, "server") for n in (Need.viewer, Need.operator, Need.admin))
_CHAIN = Rule(Need.chain, "none")
_ME = Rule(Need.signed_in, "none")

ROUTES: dict[tuple[str, str], Rule] = {
    # public: liveness, login, API docs, static files
    ("GET", "/health"): _PUBLIC,
    ("GET", "/ready"): _PUBLIC,  # readiness for load balancers; reasons name no secret
    ("GET", "/metrics"): _SA,  # Prometheus: an admin key of this server's enterprise
    ("GET", "/openapi.json"): _PUBLIC,
    ("GET", "/docs"): _PUBLIC,
    ("GET", "/docs/oauth2-redirect"): _PUBLIC,
    ("GET", "/redoc"): _PUBLIC,
    ("*", "/static"): _PUBLIC,
    ("GET", "/login"): _PUBLIC,
    ("POST", "/api/v1/auth/login"): _PUBLIC,
    ("POST", "/api/v1/auth/login/form"): _PUBLIC,
    # the caller's own account
    ("POST", "/api/v1/auth/logout"): _ME,
    ("GET", "/api/v1/auth/me"): _ME,
    # users and keys of an enterprise
    ("GET", "/api/v1/users"): _A,
    ("POST", "/api/v1/users"): _A,
    ("PUT", "/api/v1/users/{name}/grant"): _A,
    ("DELETE", "/api/v1/users/{name}/grant"): _A,
    ("POST", "/api/v1/users/{name}/disable"): _A,
    ("POST", "/api/v1/invitations"): _A,  # a user of any enterprise joins only by accepting
    ("GET", "/api/v1/invitations"): _A,
    ("DELETE", "/api/v1/invitations/{invitation_id}"): _A,
    ("GET", "/api/v1/auth/invitations"): _ME,  # the signed-in user's own invitations
    ("POST", "/api/v1/auth/invitations/{invitation_id}/accept"): _ME,
    ("DELETE", "/api/v1/auth/invitations/{invitation_id}"): _ME,
    ("GET", "/api/v1/keys"): _A,
    ("POST", "/api/v1/keys"): _A,
    ("DELETE", "/api/v1/keys/{key_id}"): _A,
    # points: ingest by devices/operators, reads by viewers, declaring tags by admins
    ("POST", "/api/v1/ingest"): Rule(Need.ingest),
    ("GET", "/api/v1/series"): _V,
    ("GET", "/api/v1/latest"): _V,
    ("GET", "/api/v1/tags"): _V,
    ("POST", "/api/v1/tags"): _A,
    ("GET", "/api/v1/deadletters"): _V,
    # business records: uploads are configuration-like bulk loads
    ("POST", "/api/v1/business/{kind}"): _A,
    ("GET", "/api/v1/inventory"): _V,
    ("GET", "/api/v1/orders"): _V,
    ("GET", "/api/v1/shipments"): _V,
    ("GET", "/api/v1/business/overview"): _V,
    # supply-demand docking: solving a posted problem reads nothing stored
    ("POST", "/api/v1/dock/solve"): _V,
    ("POST", "/api/v1/dock/transfer/match"): _V,  # industrial transfer: scores a posted document
    ("POST", "/api/v1/dock/runs"): _O,
    ("GET", "/api/v1/dock/runs/{run_id}"): _V,
    ("GET", "/api/v1/dock/rank"): _V,
    ("POST", "/api/v1/dock/runs/{run_id}/dispatch"): _O,
    ("GET", "/api/v1/dock/dispatch"): _V,
    ("POST", "/api/v1/dock/dispatch"): _O,  # dock one request with one ranked offer
    ("POST", "/api/v1/dock/dispatch/{order_id}/{action}"): _O,
    ("GET", "/api/v1/dock/dispatch/{order_id}/audit"): _V,
    ("POST", "/api/v1/dock/{kind:dockkind}"): _O,
    ("GET", "/api/v1/dock/{kind:dockkind}"): _V,
    ("DELETE", "/api/v1/dock/{kind:dockkind}/{entry_id}"): _O,
    # an enterprise's supply network (the chain leader's own data)
    ("PUT", "/api/v1/chain/networks/{name}"): _A,
    ("GET", "/api/v1/chain/networks"): _V,
    ("GET", "/api/v1/chain/networks/{name}"): _V,
    ("GET", "/api/v1/chain/networks/{name}/stuck-points"): _V,
    ("GET", "/api/v1/chain/networks/{name}/items"): _V,
    ("GET", "/api/v1/chain/networks/{name}/resilience"): _V,
    ("GET", "/api/v1/chain/networks/{name}/carbon"): _V,
    ("POST", "/api/v1/chain/networks/{name}/scenarios"): _O,
    ("GET", "/api/v1/chain/networks/{name}/scenarios"): _V,
    ("GET", "/api/v1/chain/networks/{name}/scenarios/compare"): _V,
    ("GET", "/api/v1/chain/networks/{name}/scenarios/{scenario}"): _V,
    ("GET", "/chain"): _V,  # supply-chain pages (web/chain.py)
    ("GET", "/chain/{name}"): _V,
    ("GET", "/parts/chain/{name}/scenario"): _V,
    # resumption monitor: aggregates across enterprises, chain operators only
    ("GET", "/api/v1/region/rate"): _CHAIN,
    ("GET", "/api/v1/region/rate.csv"): _CHAIN,
    ("GET", "/api/v1/region/trend"): _CHAIN,
    ("GET", "/api/v1/region/rankings"): _CHAIN,
    ("GET", "/api/v1/region/enterprises"): _CHAIN,
    ("GET", "/api/v1/region/watchlist"): _CHAIN,
    ("GET", "/api/v1/region/headline"): _CHAIN,
    ("GET", "/api/v1/region/status"): _CHAIN,
    ("GET", "/api/v1/region/quarantine"): _CHAIN,
    ("GET", "/api/v1/federation/sites"): _CHAIN,  # plants' uplinked sites (docs/federation.md)
    ("GET", "/api/v1/federation/enterprises"): _CHAIN,  # uplinking enterprises, registered or not
    ("POST", "/api/v1/region/registry"): _CHAIN,  # register enterprises (uplinking plants')
    ("POST", "/region/uplinks/register"): _CHAIN,  # the same from the region page's form
    ("GET", "/region"): _CHAIN,  # regional monitor pages (web/region.py)
    ("GET", "/region/watchlist"): _CHAIN,
    ("GET", "/region/{name}"): _CHAIN,
    # machines, states, OEE, energy
    ("GET", "/api/v1/machines"): _V,
    ("PUT", "/api/v1/machines/{path:path}"): _A,
    ("GET", "/api/v1/sites"): _V,  # site calendars, grid factor, OEE target
    ("PUT", "/api/v1/sites/{site}"): _A,
    ("DELETE", "/api/v1/sites/{site}"): _A,
    ("POST", "/api/v1/commands"): _O,
    ("GET", "/api/v1/commands"): _V,
    ("GET", "/api/v1/states"): _V,
    ("POST", "/api/v1/states/reasons"): _O,
    ("GET", "/api/v1/stops"): _V,
    ("GET", "/api/v1/oee"): _V,
    ("GET", "/api/v1/losses"): _V,  # downtime Pareto, TEEP, short stops
    ("GET", "/api/v1/check"): _A,  # data-integrity check of the enterprise
    ("GET", "/api/v1/energy"): _V,
    ("GET", "/api/v1/condition/rul"): _V,  # remaining useful life (api/routes/condition.py)
    # alarms and the live event stream: this server's plant
    ("GET", "/api/v1/alarms"): _SV,
    ("GET", "/api/v1/alarms/status"): _SV,
    ("GET", "/api/v1/alarms/history"): _SV,
    ("POST", "/api/v1/alarms/{alarm_id:path}/acknowledge"): _SO,
    ("POST", "/api/v1/alarms/{alarm_id:path}/shelve"): _SO,
    ("POST", "/api/v1/alarms/{alarm_id:path}/unshelve"): _SO,
    ("GET", "/api/v1/alarm-rules"): _SV,
    ("POST", "/api/v1/alarm-rules"): _SA,
    ("DELETE", "/api/v1/alarm-rules/{rule_id}"): _SA,
    ("GET", "/api/v1/monitors"): _SV,  # anomaly monitors (condition/monitors.py)
    ("POST", "/api/v1/monitors"): _SA,
    ("DELETE", "/api/v1/monitors/{monitor_id}"): _SA,
    ("GET", "/api/v1/monitors/{monitor_id}/scan"): _SV,
    ("GET", "/api/v1/events"): _SV,
    # web pages (server-rendered; same rules as the data they show)
    ("GET", "/"): _V,
    ("GET", "/parts/overview"): _V,  # the overview's cards (web/overview.py)
    ("GET", "/attention"): _V,  # stopped now, rankings (web/attention.py)
    ("GET", "/parts/attention"): _V,
    ("GET", "/losses"): _V,  # downtime Pareto page
    ("GET", "/plant"): _V,
    ("GET", "/parts/plant"): _V,
    ("GET", "/machine/{site}/{area}/{line}/{machine}"): _V,
    ("GET", "/parts/machine/{site}/{area}/{line}/{machine}"): _V,
    ("GET", "/alarms"): _SV,  # alarms page and list fragment (web/alarms.py): this server's plant
    ("GET", "/parts/alarms"): _SV,
    ("POST", "/alarms/acknowledge"): _SO,  # the page's forms (CSRF token, ?site= of the alarm)
    ("POST", "/alarms/shelve"): _SO,
    ("POST", "/alarms/unshelve"): _SO,
    ("GET", "/energy"): _V,  # energy page (web/energy.py)
    ("GET", "/business"): _V,  # business page (web/business.py)
    ("GET", "/data"): _V,  # tags, dead letters, connectors' health (web/data.py)
    ("GET", "/docking"): _V,  # docking page (web/docking.py); runs go through /api/v1/dock/runs
    ("GET", "/parts/docking/run/{run_id}"): _V,
    ("GET", "/fleet"): _V,  # assets ranked by RUL and anomaly score (web/fleet.py)
    ("GET", "/site/{site}"): _V,  # drill-down pages (web/drill.py)
    ("GET", "/site/{site}/{area}"): _V,
    ("GET", "/site/{site}/{area}/{line}"): _V,
    # shift reports, Andon, handover notes, wall screens (api/routes/shift.py, web/wall.py)
    ("GET", "/api/v1/report"): _V,
    ("GET", "/api/v1/reports"): _V,
    ("GET", "/api/v1/reports/{report_id}"): _V,
    ("POST", "/api/v1/andon/calls"): _O,  # ?scope= names the line or machine
    ("GET", "/api/v1/andon/calls"): _V,
    ("GET", "/api/v1/andon/stats"): _V,
    ("POST", "/api/v1/andon/calls/{call_id}/take"): _O,
    ("POST", "/api/v1/andon/calls/{call_id}/resolve"): _O,
    ("POST", "/api/v1/andon/calls/{call_id}/cancel"): _O,
    ("GET", "/api/v1/andon/calls/{call_id}/audit"): _V,
    ("POST", "/api/v1/handover"): _O,
    ("GET", "/api/v1/handover"): _V,
    ("POST", "/api/v1/display-keys"): _A,
    ("GET", "/api/v1/display-keys"): _A,
    ("DELETE", "/api/v1/display-keys/{key_id}"): _A,
    ("GET", "/api/v1/wall/{path:path}"): _V,  # also a display key of the scope (auth/display.py)
    ("GET", "/api/v1/wall-events/{path:path}"): _SV,  # the wall's live events, as above
    ("GET", "/wall/{path:path}"): _V,
    ("GET", "/andon"): _V,  # the phone page; its actions need the operator role
    ("GET", "/reports"): _V,  # report archive
    ("GET", "/reports/{report_id}"): _V,
}


def rule_for(method: str, path: str) -> Rule | None:
    """Return the rule of a route (``HEAD`` follows ``GET``), or None when it has none."""
    if method == "HEAD":
        method = "GET"
    return ROUTES.get((method, path))
