"""Email through the hub's SMTP server (``FUSION_SMTP_*``).

The server's host is held to the egress policy like every destination (a private address
only with ``FUSION_ALLOW_PRIVATE_EGRESS``), resolved once, and the connection made to the
vetted address; with ``FUSION_SMTP_STARTTLS`` the session is upgraded and the certificate
checked against the configured host name. A reply in the 5xx range (a refused recipient) is
final; 4xx replies, timeouts and refused connections are tried again.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from fusion.config import Settings
from fusion.notifications import events
from fusion.notifications.channels.base import Outgoing, Rejected, TryLater
from fusion.security.egress import EgressPolicy

TIMEOUT_S = 15.0
ACCEPTED = 250  # the server's reply to the message: queued for delivery


def message(outgoing: Outgoing, *, sender: str) -> EmailMessage:
    """The email: the summary as subject, the figures and the link in a plain-text body."""
    mail = EmailMessage()
    mail["Subject"] = f"[Fusion Stage Hub] {outgoing.summary}"
    mail["From"] = sender
    mail["To"] = outgoing.target
    mail["Message-ID"] = f"<{outgoing.message_id}@fusion-stage-hub>"
    body = [outgoing.summary, "", events.details(outgoing.data)]
    if outgoing.link:
        body += ["", f"Open in the hub: {outgoing.link}"]
    mail.set_content("\n".join(body) + "\n")
    return mail


def _code(exc: smtplib.SMTPException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return int(codes[0]) if codes else None
    return int(getattr(exc, "smtp_code", 0)) or None


def send(outgoing: Outgoing, *, settings: Settings, egress: EgressPolicy) -> int:
    """Hand the email to the SMTP server; returns its reply code to the message (250).
    Raises Rejected (no server configured, a refused host, a 5xx) or TryLater."""
    host = settings.smtp_host
    if not host:
        raise Rejected("no SMTP server is configured (FUSION_SMTP_HOST)")
    address = egress.vet_host(host, settings.smtp_port)
    mail = message(outgoing, sender=settings.smtp_from)
    try:
        with smtplib.SMTP(timeout=TIMEOUT_S) as client:
            client.connect(address, settings.smtp_port)
            # connect() took the address as the server's name; STARTTLS must check the
            # certificate against the configured host name instead.
            client._host = host  # type: ignore[attr-defined]
            client.ehlo()
            if settings.smtp_starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if settings.smtp_user:
                client.login(settings.smtp_user, settings.smtp_password or "")
            # Raises when the server refuses the sender, every recipient or the data.
            client.send_message(mail)
    except smtplib.SMTPException as exc:
        code = _code(exc)
        if code is not None and 400 <= code < 500:
            raise TryLater(f"the mail server answered {code}", code=code) from None
        if code is not None:
            raise Rejected(f"the mail server answered {code}", code=code) from None
        raise TryLater(f"the mail server failed: {type(exc).__name__}") from None
    except (OSError, ssl.SSLError) as exc:
        raise TryLater(f"the mail server could not be reached: {type(exc).__name__}") from None
    return ACCEPTED
