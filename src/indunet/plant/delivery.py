"""Getting reports and Andon calls to people: e-mail over SMTP and the signed alarm webhooks.

Configuration (``indunet.toml``)::

    [plant.smtp]                 # the mail relay
    host = "mail.example.com"
    port = 587
    starttls = true              # STARTTLS before login (default); false only for a local relay
    username = "indunet"
    password_env = "INDUNET_SMTP_PASSWORD"   # or password = "…"
    sender = "indunet@example.com"

    [plant.reports]              # shift reports, sent at each shift's end
    scopes = ["s1", "s1/press/l1"]           # sites or lines; one report each per shift
    formats = ["html", "xlsx"]               # attached to the e-mail
    emails = ["plant-manager@example.com"]
    webhooks = ["ops"]                       # names of [[plant.webhooks]] targets

    [[plant.andon.groups]]       # who is called for which Andon reason on which lines
    name = "maintenance"
    reasons = ["maintenance"]
    lines = ["s1/press"]                     # line path prefixes; empty = every line
    emails = ["maint@example.com"]
    webhooks = ["ops"]

`Mailer.send` speaks SMTP with `smtplib`: STARTTLS (certificate checked against the system's CAs
or ``cafile``), then AUTH, then the message. Webhook documents reuse `WebhookSender` of
`indunet.plant.notify` (same targets, same ``X-Indunet-Signature``).
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import time
import uuid
from collections.abc import Iterable, Sequence
from email.message import EmailMessage
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from indunet.errors import DataError

__all__ = [
    "AndonConfig",
    "AndonGroup",
    "Attachment",
    "Mailer",
    "ReportsConfig",
    "SmtpConfig",
    "submit_document",
]

log = logging.getLogger(__name__)

ANDON_REASONS = ("material", "maintenance", "quality", "help")
_ADDRESS = r"^[^@\s<>,;]+@[^@\s<>,;]+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpConfig(_Model):
    """The mail relay reports and Andon calls are sent through."""

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = Field(True, description="Upgrade with STARTTLS before logging in.")
    username: str | None = None
    password: str | None = Field(None, repr=False)
    password_env: str | None = Field(None, description="Read the password from this variable.")
    sender: str = Field(pattern=_ADDRESS)
    cafile: str | None = Field(None, description="CA bundle to check the relay's certificate.")
    timeout_s: float = Field(20.0, gt=0, le=300)

    def secret(self) -> str | None:
        """Return the password (from ``password_env`` when set)."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise DataError(f"[plant.smtp] password_env: {self.password_env} is not set")
            return value
        return self.password


class ReportsConfig(_Model):
    """Which shift reports are made at each shift's end and where they go."""

    scopes: list[str] = Field(default_factory=list, description="Sites or lines to report.")
    formats: list[Literal["html", "xlsx", "csv"]] = Field(default_factory=lambda: ["html"])
    emails: list[str] = Field(default_factory=list)
    webhooks: list[str] = Field(default_factory=list, description="[[plant.webhooks]] names.")
    check_every_s: float = Field(30.0, gt=0, le=3600)

    @field_validator("emails")
    @classmethod
    def _check_emails(cls, value: list[str]) -> list[str]:
        return _emails(value)


class AndonGroup(_Model):
    """A responsible group: the reasons and lines it answers, and how it is called."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    reasons: list[Literal["material", "maintenance", "quality", "help"]] = Field(
        default_factory=lambda: list(ANDON_REASONS)
    )
    lines: list[str] = Field(default_factory=list, description="Line prefixes; empty = all.")
    emails: list[str] = Field(default_factory=list)
    webhooks: list[str] = Field(default_factory=list)

    @field_validator("emails")
    @classmethod
    def _check_emails(cls, value: list[str]) -> list[str]:
        return _emails(value)

    def answers(self, line: str, reason: str) -> bool:
        """Tell whether this group is called for ``reason`` on ``line``."""
        if reason not in self.reasons:
            return False
        return not self.lines or any(
            line == p.strip("/") or line.startswith(p.strip("/") + "/") for p in self.lines
        )


class AndonConfig(_Model):
    """Andon: the responsible groups."""

    groups: list[AndonGroup] = Field(default_factory=list)


def _emails(value: list[str]) -> list[str]:
    import re

    for v in value:
        if not re.match(_ADDRESS, v):
            raise ValueError(f"{v!r} is not an e-mail address")
    return value


class Attachment(_Model):
    """A file attached to an e-mail."""

    name: str
    media_type: str
    data: bytes


class Mailer:
    """Send e-mail through the configured relay (one connection per message)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.sent = 0
        self.failed = 0
        self.last_error: str | None = None

    def send(
        self,
        to: Sequence[str],
        subject: str,
        text: str,
        *,
        html: str | None = None,
        attachments: Iterable[Attachment] = (),
    ) -> None:
        """Send one message; raise `DataError` saying what failed (connect, TLS, login, send)."""
        if not to:
            return
        c = self.config
        msg = EmailMessage()
        msg["From"] = c.sender
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject.replace("\n", " ")[:200]
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@indunet>"
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        for a in attachments:
            main, _, sub = a.media_type.split(";")[0].partition("/")
            msg.add_attachment(a.data, maintype=main, subtype=sub, filename=a.name)
        step = "connect"
        smtp: smtplib.SMTP | None = None
        try:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
            smtp.ehlo()
            if c.starttls:
                step = "STARTTLS"
                smtp.starttls(context=ssl.create_default_context(cafile=c.cafile))
                smtp.ehlo()
            if c.username:
                step = "login"
                _login(smtp, c.username, c.secret() or "")
            step = "send"
            smtp.send_message(msg)
            step = "quit"
            smtp.quit()
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            if smtp is not None:
                smtp.close()  # no QUIT on a broken session: it would wait for the timeout
            if step == "quit":  # the message was accepted; only the goodbye failed
                self.sent += 1
                return
            self.failed += 1
            self.last_error = f"{step}: {type(exc).__name__}: {exc}"
            raise DataError(
                f"e-mail to {len(to)} recipient(s) via {c.host}:{c.port} failed at {step}: {exc}"
            ) from exc
        self.sent += 1


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """Sign in with AUTH PLAIN when offered (one try), else let smtplib pick a mechanism.

    smtplib's ``login`` tries every mechanism in turn after a refusal; some servers then wait
    for the rest of a LOGIN exchange, and a wrong password costs the whole timeout.
    """
    if "PLAIN" in smtp.esmtp_features.get("auth", "").upper().split():
        smtp.user, smtp.password = user, password
        smtp.auth("PLAIN", smtp.auth_plain)
    else:
        smtp.login(user, password)


def submit_document(
    sender: Any, targets: Iterable[str], event: str, payload: dict[str, Any]
) -> int:
    """Queue a signed JSON document (``{"id", "type", event: payload}``) for webhook targets.

    ``sender`` is a `WebhookSender`; ``targets`` are names of its targets (unknown names are
    skipped with a warning). Return how many deliveries were queued.
    """
    from indunet.plant.notify import Delivery

    n = 0
    now = time.time()
    for name in targets:
        if name not in sender.targets:
            log.warning("webhook target %r is not configured; %s not sent to it", name, event)
            continue
        did = uuid.uuid4().hex
        body = orjson.dumps({"id": did, "type": event, "data": payload})
        d = Delivery(did, name, event, body, now)
        d.next_at_s = now
        n += sender.put(d)
    return n
