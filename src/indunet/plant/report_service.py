"""Shift reports made by themselves: at each shift's end, report, archive and deliver.

`make_report` is the one way a report is made (CLI, API, web page and the schedule): the
document of `indunet.plant.shift_report.build_report` plus the shift's handover notes and Andon
figures. `ReportScheduler` runs in the server: every ``[plant.reports] check_every_s`` it looks
for shifts of the configured scopes that ended since its last look (remembered in the archive, so
a restart neither skips nor repeats a shift), makes their reports, archives them and sends them by
e-mail (attachments in the configured formats) and to the signed webhooks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from indunet.errors import DataError
from indunet.plant.andon import AndonStore, andon_stats
from indunet.plant.delivery import AndonConfig, Attachment, Mailer, ReportsConfig, submit_document
from indunet.plant.report import OpenPart, scope_machines
from indunet.plant.rounds import Rounds
from indunet.plant.shift_log import HandoverNotes, ReportArchive
from indunet.plant.shift_report import (
    MEDIA,
    ReportWindow,
    build_report,
    ended_windows,
    file_name,
    find_window,
    render,
    render_html,
)
from indunet.plant.store import PlantStore
from indunet.store.base import Historian

__all__ = ["ReportScheduler", "andon_notifier", "deliver", "make_report"]

log = logging.getLogger(__name__)
#: a shift that ended longer ago than this when the server starts is not reported by the schedule
CATCH_UP_MS = 2 * 86_400_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def make_report(
    historian: Historian,
    store: PlantStore,
    enterprise: str,
    scope: str,
    window: ReportWindow | str,
    *,
    now_ms: int,
    open_part: OpenPart = None,
) -> dict[str, Any]:
    """Return the report of ``scope`` for a shift (a `ReportWindow` or a spec like ``last``)."""
    plant = store.effective(enterprise)
    if isinstance(window, str):
        window = find_window(plant, scope, window, now_ms=now_ms)
    notes = HandoverNotes(historian)
    andon = AndonStore(historian)

    def handover(ent: str, sc: str, lo: int, hi: int) -> list[dict[str, Any]]:
        by_label = notes.notes(ent, "" if sc == "*" else sc, shift=window.label)
        if by_label:
            return by_label
        return notes.notes(ent, "" if sc == "*" else sc, start_ms=lo, end_ms=hi)

    def andon_figures(ent: str, sc: str, lo: int, hi: int) -> dict[str, Any]:
        calls = andon.calls(ent, scope="" if sc == "*" else sc, start_ms=lo, end_ms=hi)
        return andon_stats(calls)

    return build_report(
        store,
        historian,
        plant,
        enterprise,
        scope,
        window,
        now_ms=now_ms,
        open_part=open_part,
        extras={"handover": handover, "andon": andon_figures},
    )


def _summary(doc: dict[str, Any]) -> str:
    o = doc["oee"]

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * v:.1f} %"

    losses = ", ".join(f"{r['reason']} {r['ms'] / 60000:.0f} min" for r in doc["top_losses"][:3])
    return (
        f"{doc['kind'].capitalize()} report {doc['scope']} {doc['label']} ({doc['enterprise']})\n"
        f"OEE {pct(o['oee'])} (A {pct(o['availability'])}, P {pct(o['performance'])}, "
        f"Q {pct(o['quality'])}); target {pct(doc['oee_target'])}\n"
        f"Good {o['good']:g}, scrap {o['scrap']:g}; plan {doc['output']['plan']:.0f}\n"
        f"Top losses: {losses or 'none'}\n"
        f"Unexplained stops: {doc['unexplained_stops']['count']}\n"
        f"Energy: {doc['energy']['kwh']:.1f} kWh, CO2 {doc['energy']['co2_kg']:.1f} kg\n"
    )


def deliver(
    doc: dict[str, Any],
    config: ReportsConfig,
    *,
    mailer: Mailer | None,
    webhooks: Any | None,
) -> dict[str, Any]:
    """Send a report by e-mail and to webhooks; return what went where and what failed."""
    out: dict[str, Any] = {"email": None, "webhooks": [], "errors": []}
    if config.emails:
        if mailer is None:
            out["errors"].append("e-mail: no [plant.smtp] relay is configured")
        else:
            files = [
                Attachment(name=file_name(doc, f), media_type=MEDIA[f], data=render(doc, f))
                for f in config.formats
            ]
            try:
                mailer.send(
                    config.emails,
                    f"{doc['kind'].capitalize()} report {doc['scope']} {doc['label']}",
                    _summary(doc),
                    html=render_html(doc),
                    attachments=files,
                )
                out["email"] = list(config.emails)
            except DataError as exc:
                out["errors"].append(str(exc))
    if config.webhooks:
        if webhooks is None:
            out["errors"].append("webhooks: no [[plant.webhooks]] targets are configured")
        else:
            n = submit_document(webhooks, config.webhooks, "report.shift", doc)
            out["webhooks"] = list(config.webhooks)[:n] if n else []
    return out


class ReportScheduler(Rounds):
    """Make, archive and send the reports of shifts that have ended."""

    thread_name = "indunet-reports"
    work = "shift reports"

    def __init__(
        self,
        historian: Historian,
        store: PlantStore,
        enterprise: str,
        config: ReportsConfig,
        *,
        mailer: Mailer | None = None,
        webhooks: Any | None = None,
        open_part: OpenPart = None,
        started_ms: int | None = None,
    ) -> None:
        self.historian = historian
        self.store = store
        self.enterprise = enterprise
        self.config = config
        self.mailer = mailer
        self.webhooks = webhooks
        self.open_part = open_part
        self.archive = ReportArchive(historian)
        self.interval_s = config.check_every_s
        self.started_ms = _now_ms() if started_ms is None else started_ms
        self.made = 0
        self._init_rounds()

    def _last_reported(self, scope: str) -> int:
        """Return the end of the last archived report of a scope (at most `CATCH_UP_MS` back).

        A scope never reported starts with the first shift ending after the schedule started;
        after a restart the shifts ended while the server was down are caught up.
        """
        rows = self.archive.list(self.enterprise, scope=scope.strip("/"), limit=1)
        if not rows:
            return self.started_ms
        return max(int(rows[0]["end_ms"]), self.started_ms - CATCH_UP_MS)

    def run_once(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Report every shift that ended since the last report of each scope; return them."""
        now = _now_ms() if now_ms is None else now_ms
        plant = self.store.effective(self.enterprise)
        made = []
        for scope in self.config.scopes:
            site = scope_machines(plant, scope)[0].site
            for window in ended_windows(plant, site, self._last_reported(scope), now):
                if self.archive.has(self.enterprise, scope.strip("/"), window.label):
                    continue
                doc = make_report(
                    self.historian,
                    self.store,
                    self.enterprise,
                    scope,
                    window,
                    now_ms=now,
                    open_part=self.open_part,
                )
                rid = self.archive.put(doc, render_html(doc), now_ms=now)
                sent = deliver(doc, self.config, mailer=self.mailer, webhooks=self.webhooks)
                self.archive.mark_delivered(self.enterprise, rid, sent)
                for err in sent["errors"]:
                    log.warning("report %s %s: %s", scope, window.label, err)
                self.made += 1
                made.append({"report_id": rid, **sent})
        return made

    def status(self) -> dict[str, Any]:
        """Return rounds, reports made and the last error."""
        return {
            "running": self.running,
            "rounds": self.rounds,
            "made": self.made,
            "errors": self.errors,
            "last_error": self.last_error,
        }


def andon_notifier(
    config: AndonConfig, *, mailer: Mailer | None, webhooks: Any | None
) -> Callable[[dict[str, Any]], None]:
    """Return what calls the responsible groups when an Andon call is raised."""

    def notify(call: dict[str, Any]) -> None:
        where = call["machine"] or call["line"]
        for group in config.groups:
            if not group.answers(call["line"], call["reason"]):
                continue
            if webhooks is not None and group.webhooks:
                submit_document(
                    webhooks, group.webhooks, "andon.raised", {**call, "group": group.name}
                )
            if mailer is not None and group.emails:
                try:
                    mailer.send(
                        group.emails,
                        f"Andon: {call['reason']} at {where}",
                        f"{call['reason']} called at {where} by {call['raised_by']}.\n"
                        f"Note: {call['note'] or '-'}\nCall id: {call['call_id']}\n",
                    )
                except DataError as exc:  # the call stands; the failure is logged and counted
                    log.warning("Andon e-mail to group %s failed: %s", group.name, exc)

    return notify
