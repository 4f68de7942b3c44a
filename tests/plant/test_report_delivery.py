"""A simulated shift runs to its end; its report arrives by SMTP and by webhook, equal to the API.

Real servers: an aiosmtpd SMTP server that requires STARTTLS (self-signed certificate made with
``cryptography``) and AUTH LOGIN/PLAIN, and an HTTP webhook receiver that checks the signature.
Shifts are 20 minutes long in the test config; the schedule's round at the shift's end makes,
archives and sends the report. Its OEE numbers must equal ``GET /api/v1/oee`` for that shift.
"""

from __future__ import annotations

import email
import http.server
import ipaddress
import json
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from indunet.api.app import create_app
from indunet.auth.store import AuthStore
from indunet.connect.broker import free_port
from indunet.errors import DataError
from indunet.plant.delivery import Mailer, ReportsConfig, SmtpConfig
from indunet.plant.notify import SIGNATURE_HEADER, WebhookSender, WebhookTarget, verify_signature
from indunet.plant.report_service import ReportScheduler
from indunet.plant.shift_log import HandoverNotes, ReportArchive
from indunet.plant.store import PlantStore
from indunet.plant.watch import recompute_range
from indunet.sim.plant import SimMachine, simulate
from indunet.store import open_historian
from indunet.uns import MachinePath

USER, PASSWORD = "reports", "a-long-smtp-password"
SECRET = "f3a9c1d27be84e06a5d1c0ffee4b9a17"
MACHINES = (
    SimMachine(MachinePath("s1", "press", "l1", "m1"), 2.0, 30.0, 10.0),
    SimMachine(MachinePath("s1", "press", "l1", "m2"), 1.5, 25.0, 12.0),
)
DAY = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
SHIFT_START = int((DAY + timedelta(hours=6)).timestamp() * 1000)
SHIFT_END = SHIFT_START + 20 * 60_000


def _toml() -> str:
    machines = "\n".join(
        f"""[[plant.machines]]
id = "{m.path}"
power_tag = "power_kw"
thresholds = {{ off_below = 1.0, running_above = 5.0, hysteresis = 0.2 }}
expected_interval_s = 5.0
total_counter = {{ tag = "parts_total" }}
scrap_counter = {{ tag = "scrap_total" }}
ideal_cycle_s = {{ p = {m.cycle_s} }}
default_product = "p"
"""
        for m in MACHINES
    )
    return (
        machines
        + """
[plant.sites.s1]
grid_kg_co2_per_kwh = 0.5
oee_target = 0.6
[plant.sites.s1.calendar]
timezone = "UTC"
shifts = [
  { name = "a", start = "06:00", end = "06:20" },
  { name = "b", start = "06:20", end = "06:40" },
]
"""
    )


def _cert(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Inbox:
    """aiosmtpd handler: keeps each message with whether its session was TLS and signed in."""

    def __init__(self) -> None:
        self.messages: list[tuple[email.message.EmailMessage, bool, bool]] = []
        self.event = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((msg, session.ssl is not None, bool(session.authenticated)))
        self.event.set()
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(),
        auth_data.password.decode(),
    ) == (USER, PASSWORD)
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture
def smtp(tmp_path):
    cert_path, key_path = _cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield inbox, port, str(cert_path)
    controller.stop()


class Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[bytes, dict[str, str]]]
    event: threading.Event

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((body, dict(self.headers)))
        type(self).event.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hook():
    handler = type("H", (Hook,), {"received": [], "event": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture
def shift_plant(settings_factory, tmp_path):
    (tmp_path / "indunet.toml").write_text(_toml())
    settings = settings_factory()
    historian = open_historian(settings)
    yield settings, historian
    historian.close()


def test_shift_report_arrives_by_smtp_and_webhook_with_the_api_numbers(
    shift_plant, smtp, hook, monkeypatch
):
    settings, historian = shift_plant
    inbox, port, cafile = smtp
    handler, url = hook
    ent = settings.enterprise
    # the simulated shift, from before it starts to its end (5 s steps)
    batch = simulate(MACHINES, SHIFT_START - 600_000, SHIFT_END, 5000, enterprise=ent, seed=11)
    historian.write(batch, source="test")
    store = PlantStore(historian, settings.plant)
    for m in settings.plant.machines:
        recompute_range(store, historian, ent, m, SHIFT_START - 600_000, SHIFT_END)
    HandoverNotes(historian).add(
        ent, "s1/press/l1", "2026-06-01 a", "ann", "die 4 changed; watch m2", now_ms=SHIFT_START
    )
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    mailer = Mailer(
        SmtpConfig(
            host="127.0.0.1", port=port, username=USER, password_env="TEST_SMTP_PASSWORD",
            sender="indunet@example.com", cafile=cafile, timeout_s=10,
        )
    )  # fmt: skip
    sender = WebhookSender([WebhookTarget(name="ops", url=url, secret=SECRET)])
    sender.start()
    config = ReportsConfig(
        scopes=["s1/press/l1"], formats=["html", "xlsx", "csv"],
        emails=["manager@example.com"], webhooks=["ops"],
    )  # fmt: skip
    scheduler = ReportScheduler(
        historian, store, ent, config, mailer=mailer, webhooks=sender, started_ms=SHIFT_START
    )
    try:
        assert scheduler.run_once(now_ms=SHIFT_END - 1) == []  # the shift is not over yet
        made = scheduler.run_once(now_ms=SHIFT_END + 2000)  # its end: report, archive, send
        assert len(made) == 1 and made[0]["errors"] == [], made
        assert scheduler.run_once(now_ms=SHIFT_END + 30_000) == []  # never twice
        assert inbox.event.wait(10) and handler.event.wait(10)
    finally:
        sender.stop()

    # the e-mail: over STARTTLS, signed in, the summary, HTML body and three attachments
    msg, tls, authed = inbox.messages[0]
    assert tls and authed and len(inbox.messages) == 1
    assert msg["Subject"] == "Shift report s1/press/l1 2026-06-01 a"
    files = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
    assert set(files) == {f"report_s1-press-l1_2026-06-01_a.{f}" for f in ("html", "xlsx", "csv")}
    assert "die 4 changed" in files["report_s1-press-l1_2026-06-01_a.html"]

    # the webhook: signed like alarm events, carrying the whole report
    body, headers = handler.received[0]
    verify_signature(SECRET, body, headers[SIGNATURE_HEADER], now_s=time.time())
    sent = json.loads(body)
    assert sent["type"] == "report.shift"
    doc = sent["data"]
    assert (doc["label"], doc["start_ms"], doc["end_ms"]) == (
        "2026-06-01 a",
        SHIFT_START,
        SHIFT_END,
    )

    # the numbers equal the OEE API's for that shift
    app = create_app(settings, historian)
    with TestClient(app) as client:
        key = AuthStore(historian).create_key(ent, "viewer", now_ms=int(time.time() * 1000))
        auth = {"Authorization": f"Bearer {key.secret}"}
        r = client.get(
            "/api/v1/oee",
            params={"scope": "s1/press/l1", "start": SHIFT_START, "end": SHIFT_END, "by": "shift"},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        (api,) = r.json()["groups"]
        assert api["pbt_ms"] == 2 * 20 * 60_000
        for k in ("availability", "performance", "quality", "oee", "pbt_ms", "apt_ms", "good",
                  "scrap", "produced", "reason_ms", "stop_ms"):  # fmt: skip
            assert doc["oee"][k] == api[k], k
        assert api["produced"] > 0  # a shift with output: the comparison means something
        # the archive: listed by the API, with where it went; rendered formats downloadable
        listed = client.get("/api/v1/reports", headers=auth).json()["reports"]
        assert [(x["label"], x["delivered"]["email"]) for x in listed] == [
            ("2026-06-01 a", ["manager@example.com"])
        ]
        rid = listed[0]["report_id"]
        x = client.get(f"/api/v1/reports/{rid}", params={"format": "xlsx"}, headers=auth)
        import io

        wb = load_workbook(io.BytesIO(x.content))
        summary = {(r[0], r[1]): r[2] for r in wb["Summary"].iter_rows(min_row=2, values_only=True)}
        assert summary[("oee", "oee")] == pytest.approx(api["oee"])
        assert client.get(f"/api/v1/reports/{rid}", headers=auth).json()["oee"] == doc["oee"]
        other = AuthStore(historian).create_key("globex", "admin", now_ms=int(time.time() * 1000))
        r = client.get(
            f"/api/v1/reports/{rid}", headers={"Authorization": f"Bearer {other.secret}"}
        )
        assert r.status_code == 404  # another tenant's archive does not hold it
    assert ReportArchive(historian).has(ent, "s1/press/l1", "2026-06-01 a")


def test_smtp_refuses_wrong_password_and_untrusted_certificate(smtp):
    inbox, port, cafile = smtp
    base = dict(host="127.0.0.1", port=port, username=USER, sender="i@example.com", timeout_s=10)
    with pytest.raises(DataError, match="login"):
        Mailer(SmtpConfig(**base, password="wrong-password", cafile=cafile)).send(
            ["a@example.com"], "s", "t"
        )
    with pytest.raises(DataError, match="STARTTLS"):  # the self-signed cert is not trusted
        Mailer(SmtpConfig(**base, password=PASSWORD)).send(["a@example.com"], "s", "t")
    assert inbox.messages == []


def test_a_restarted_schedule_catches_up_missed_shifts_once(shift_plant):
    settings, historian = shift_plant
    store = PlantStore(historian, settings.plant)
    config = ReportsConfig(scopes=["s1/press/l1"])
    first = ReportScheduler(historian, store, settings.enterprise, config, started_ms=SHIFT_START)
    assert len(first.run_once(now_ms=SHIFT_END + 1000)) == 1  # shift a
    # the server is down from 06:21 to 07:30; shift b (06:20-06:40) ended meanwhile
    later = SHIFT_END + 70 * 60_000
    again = ReportScheduler(historian, store, settings.enterprise, config, started_ms=later)
    made = again.run_once(now_ms=later)
    assert len(made) == 1
    labels = [r["label"] for r in ReportArchive(historian).list(settings.enterprise)]
    assert labels == ["2026-06-01 b", "2026-06-01 a"]
    assert again.run_once(now_ms=later + 60_000) == []


def test_andon_call_notifies_its_group_by_webhook_and_email(smtp, hook, monkeypatch):
    from indunet.plant.delivery import AndonConfig
    from indunet.plant.report_service import andon_notifier

    inbox, port, cafile = smtp
    handler, url = hook
    mailer = Mailer(
        SmtpConfig(host="127.0.0.1", port=port, username=USER, password=PASSWORD,
                   sender="indunet@example.com", cafile=cafile, timeout_s=10)
    )  # fmt: skip
    sender = WebhookSender([WebhookTarget(name="ops", url=url, secret=SECRET)])
    sender.start()
    groups = AndonConfig.model_validate(
        {
            "groups": [
                {"name": "maint", "reasons": ["maintenance"], "lines": ["s1/press"],
                 "emails": ["maint@example.com"], "webhooks": ["ops"]},
                {"name": "logistics", "reasons": ["material"], "emails": ["log@example.com"]},
            ]
        }
    )  # fmt: skip
    call = {"call_id": "c1", "line": "s1/press/l1", "machine": "s1/press/l1/m1",
            "reason": "maintenance", "note": "noise", "raised_by": "otto"}  # fmt: skip
    try:
        andon_notifier(groups, mailer=mailer, webhooks=sender)(call)
        assert inbox.event.wait(10) and handler.event.wait(10)
    finally:
        sender.stop()
    (msg, tls, authed), *rest = inbox.messages
    assert not rest and tls and authed  # only the maintenance group is called
    assert msg["To"] == "maint@example.com" and "maintenance" in msg["Subject"]
    body, headers = handler.received[0]
    verify_signature(SECRET, body, headers[SIGNATURE_HEADER], now_s=time.time())
    sent = json.loads(body)
    assert sent["type"] == "andon.raised" and sent["data"]["group"] == "maint"
