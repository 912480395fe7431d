"""Compose one campaign message: variant, rendered templates, MIME and headers.

- MIME: ``text/plain`` (quoted-printable, so no line exceeds 998 octets), or
  ``multipart/alternative`` with an ``text/html`` part when the step has ``html``.
- ``Message-ID`` is derived from (campaign, lead, step) at the sender's domain
  (:func:`message_id_for`); a follow-up carries ``In-Reply-To`` (the previous step's id) and
  ``References`` (every earlier step's id), and, without its own subject, ``Re: <first subject>``.
- ``List-Unsubscribe: <https://...token>`` and ``List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`` (RFC 8058). The token is ``1.<campaign id>.<lead id>.<mac>``,
  an HMAC-SHA256 under the unsubscribe secret (secrets backend
  ``platform/campaigns/unsubscribe``, field ``key``): it carries no address and cannot be
  forged or enumerated.
- The variant is chosen by weight from a hash of (campaign, lead, step); re-composing gives the
  same variant, subject and body.
- No tracking: no pixels, no rewritten links.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import policy, quoprimime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from penguinctl import clock, secret_paths
from penguinctl.campaigns.templates import TemplateError, render
from penguinctl.errors import PenguinError, SecretError, UsageError

if TYPE_CHECKING:
    from penguinctl.campaigns.models import Campaign, CampaignRef, Lead, LeadRef
    from penguinctl.campaigns.spec import CampaignSpec, Step
    from penguinctl.providers.secrets.base import SecretsBackend

UNSUBSCRIBE_SECRET_PATH = secret_paths.UNSUBSCRIBE_KEY
_TOKEN = re.compile(r"1\.([0-9]{1,18})\.([0-9]{1,18})\.([A-Za-z0-9_-]{22})")


@dataclass(frozen=True)
class Composed:
    payload: bytes  # the message as sent (CRLF line ends)
    message_id: str  # with angle brackets, as in the header
    variant: str  # "A" (the step as written) or a variant name
    subject: str

    @property
    def message(self) -> EmailMessage:
        """The payload parsed back (for inspection; sending uses ``payload``)."""
        import email

        parsed = email.message_from_bytes(self.payload, policy=policy.SMTP)
        assert isinstance(parsed, EmailMessage)
        return parsed


def seed_for(campaign: Campaign | CampaignRef, lead: Lead | LeadRef, step: int) -> str:
    """The seed of spintax and variant choice for (campaign, lead, step)."""
    return f"{campaign.tenant}/{campaign.name}/{lead.id}/{step}"


def choose_variant(
    campaign: Campaign | CampaignRef, lead: Lead | LeadRef, step: int, spec_step: Step
) -> str:
    """The variant of ``spec_step`` this lead gets, deterministic and proportional to weight."""
    weighted = [(name, weight) for name, weight in spec_step.weighted() if weight > 0]
    if len(weighted) == 1:
        return weighted[0][0]
    digest = hashlib.sha256(f"variant/{seed_for(campaign, lead, step)}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(w for _, w in weighted)
    for name, weight in weighted:
        if point < weight:
            return name
        point -= weight
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=1024)
def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return domain.lower()


def message_id_for(
    campaign: Campaign | CampaignRef, lead: Lead | LeadRef, step: int, sender_domain: str
) -> str:
    """``<pc.<hash>@<sender domain>>``, the same for the same (campaign, lead, step)."""
    basis = f"msgid/{campaign.tenant}/{campaign.name}/{campaign.id}/{lead.id}/{step}"
    digest = hashlib.sha256(basis.encode()).hexdigest()[:32]
    return f"<pc.{digest}@{_ascii_domain(sender_domain)}>"


# -- unsubscribe tokens -----------------------------------------------------------------------
def _mac(secret: bytes, campaign_id: int, lead_id: int) -> str:
    mac = hmac.new(secret, f"unsub/1/{campaign_id}/{lead_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")


def unsubscribe_token(secret: bytes, campaign_id: int, lead_id: int) -> str:
    """The signed token for a lead of a campaign (URL-safe, no personal data)."""
    return f"1.{campaign_id}.{lead_id}.{_mac(secret, campaign_id, lead_id)}"


class InvalidToken(UsageError):
    pass


def verify_unsubscribe_token(token: str, secret: bytes) -> tuple[int, int]:
    """``(campaign_id, lead_id)`` of a genuine token; raises :class:`InvalidToken` otherwise."""
    match = _TOKEN.fullmatch(token.strip())
    if not match:
        raise InvalidToken("not an unsubscribe token", hint="copy the whole token from the URL")
    campaign_id, lead_id = int(match[1]), int(match[2])
    if not hmac.compare_digest(match[3], _mac(secret, campaign_id, lead_id)):
        raise InvalidToken("unsubscribe token signature does not match")
    return campaign_id, lead_id


def unsubscribe_secret(backend: SecretsBackend, *, create: bool = True) -> bytes:
    """The HMAC key for unsubscribe tokens, created (32 random bytes) on first use."""
    fields = backend.get(UNSUBSCRIBE_SECRET_PATH)
    if fields is None or "key" not in fields:
        if not create:
            raise SecretError(
                f"no unsubscribe key at {UNSUBSCRIBE_SECRET_PATH}",
                hint="launch a campaign first (`penguinctl campaign launch`) to create it",
            )
        backend.put(UNSUBSCRIBE_SECRET_PATH, {"key": secrets.token_urlsafe(32)})
        fields = backend.get(UNSUBSCRIBE_SECRET_PATH)
        if fields is None or "key" not in fields:
            raise SecretError(f"could not store the unsubscribe key at {UNSUBSCRIBE_SECRET_PATH}")
    return fields["key"].reveal().encode()


def unsubscribe_url(template: str, token: str) -> str:
    return template.replace("{token}", token)


# -- composing --------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return " ".join(text.split())


def _render(
    template: str, context: dict[str, Any], seed: str, where: str, *, html: bool = False
) -> str:
    try:
        return render(template, context, seed=seed, html=html)
    except TemplateError as exc:
        raise TemplateError(
            f"{where}: {exc.message}", hint=exc.hint, variable=exc.variable
        ) from None


def _subject(
    campaign: Campaign | CampaignRef,
    spec: CampaignSpec,
    lead: Lead | LeadRef,
    step: int,
    context: dict[str, Any],
    variant: str | None = None,
) -> str:
    if variant is None:
        variant = choose_variant(campaign, lead, step, spec.steps[step])
    subject = spec.steps[step].content(variant)[0]
    if subject is None and step == 0:
        raise TemplateError(f"campaign {campaign.key}: step 1 has no subject")
    if subject is None:
        return "Re: " + _subject(campaign, spec, lead, 0, context).removeprefix("Re: ")
    where = f"campaign {campaign.key}, lead {lead.id}, step {step + 1} subject"
    return _one_line(_render(subject, context, seed_for(campaign, lead, step), where))


def compose(
    campaign: Campaign | CampaignRef,
    spec: CampaignSpec,
    lead: Lead | LeadRef,
    step: int,
    sender: str,
    sender_name: str | None,
    *,
    unsubscribe_secret: bytes,
    previous_message_ids: list[str],
    now: datetime | None = None,
    variant: str | None = None,
    message_id: str | None = None,
) -> Composed:
    """The message of ``step`` (0-based) for ``lead``, sent by ``sender``.

    ``previous_message_ids`` are the Message-IDs of the earlier steps actually sent to this lead,
    oldest first. ``variant`` and ``message_id``, when the caller has them already (a claim
    fixes both), must be :func:`choose_variant`'s and :func:`message_id_for`'s. Raises
    :class:`TemplateError` naming the variable, lead and step when a template cannot be rendered.
    """
    if not 0 <= step < len(spec.steps):
        raise PenguinError(f"campaign {campaign.key} has no step {step + 1}")
    if campaign.id is None or lead.id is None:
        raise PenguinError("compose needs a stored campaign and lead (ids are part of headers)")
    spec_step = spec.steps[step]
    if variant is None:
        variant = choose_variant(campaign, lead, step, spec_step)
    _, body, html = spec_step.content(variant)
    token = unsubscribe_token(unsubscribe_secret, campaign.id, lead.id)
    unsub = unsubscribe_url(spec.unsubscribe.url, token)
    context: dict[str, Any] = lead.context()
    context.update(
        sender_email=sender,
        sender_name=sender_name or "",
        sender_first_name=(sender_name or "").split(" ")[0],
        unsubscribe_url=unsub,
        campaign=campaign.name,
    )
    seed = seed_for(campaign, lead, step)
    where = f"campaign {campaign.key}, lead {lead.id}, step {step + 1}"
    subject = _subject(campaign, spec, lead, step, context, variant)
    text = _render(body, context, seed, f"{where} body")
    html_text = _render(html, context, seed, f"{where} html", html=True) if html else None

    if message_id is None:
        message_id = message_id_for(campaign, lead, step, sender.rpartition("@")[2])
    display = " ".join(p for p in (lead.first_name, lead.last_name) if p)
    payload = build_payload(
        sender=(sender_name or "", sender),
        recipient=(display, lead.email),
        subject=subject,
        date=format_datetime(now or clock.now()),
        message_id=message_id,
        previous=[m for m in previous_message_ids if m],
        unsubscribe=unsub,
        text=text,
        html=html_text,
    )
    return Composed(payload=payload, message_id=message_id, variant=variant, subject=subject)


# -- MIME ---------------------------------------------------------------------------------------
# The bytes are what ``EmailMessage(policy=policy.SMTP)`` with the same headers, ``set_content(
# text, cte="quoted-printable")`` (and ``add_alternative(html, ...)`` + ``set_boundary``) would
# generate, built directly: the header registry costs about 2 ms a message. A header that is
# not plainly representable (non-ASCII, quoting needed, longer than a line) is still formatted
# by the email package's own folding (``_folded``), so the result is byte-identical
# (``email_message`` keeps the reference construction, checked against this one).
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\Z")
_PLAIN = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*\Z")
_MAX_LINE = 78
_TEXT_HEADERS = (
    b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
)
_HTML_HEADERS = (
    b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
)
_MIME_VERSION = b"MIME-Version: 1.0\r\n"


def _folded(name: str, value: Any) -> bytes:
    """The header as ``EmailMessage`` stores and ``BytesGenerator`` folds it."""
    header = policy.SMTP.header_store_parse(name, value)[1]
    return policy.SMTP.fold_binary(name, header)


def _address_header(name: str, display: str, address: str) -> bytes:
    local, _, domain = address.rpartition("@")
    if (
        (not display or _ATOM.match(display))
        and _LOCAL.match(local)
        and _DOMAIN.match(domain)
        and "=?" not in display
    ):
        line = f"{name}: {display} <{address}>" if display else f"{name}: {address}"
        if len(line) <= _MAX_LINE:
            return line.encode("ascii") + b"\r\n"
    return _folded(name, Address(display_name=display, username=local, domain=domain))


def _text_header(name: str, value: str) -> bytes:
    if _PLAIN.match(value) and "=?" not in value:
        line = f"{name}: {value}"
        if len(line) <= _MAX_LINE:
            return line.encode("ascii") + b"\r\n"
        if " " not in value and len(value) + 1 <= _MAX_LINE:
            return f"{name}:\r\n {value}\r\n".encode("ascii")  # one word: on its own line
    return _folded(name, value)


def _qp_body(text: str) -> bytes:
    """``set_content(text, cte="quoted-printable")``'s encoding, with CRLF line ends."""
    lines = text.encode("utf-8").splitlines()
    body = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _MAX_LINE)
    return "\r\n".join(body.split("\n")).encode("ascii")


def build_payload(
    *,
    sender: tuple[str, str],
    recipient: tuple[str, str],
    subject: str,
    date: str,
    message_id: str,
    previous: list[str],
    unsubscribe: str,
    text: str,
    html: str | None,
) -> bytes:
    parts = [
        _address_header("From", *sender),
        _address_header("To", *recipient),
        _text_header("Subject", subject),
        _text_header("Date", date),
        _text_header("Message-ID", message_id),
    ]
    if previous:
        parts.append(_text_header("In-Reply-To", previous[-1]))
        parts.append(_text_header("References", " ".join(previous)))
    parts.append(_text_header("List-Unsubscribe", f"<{unsubscribe}>"))
    parts.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    if html is None:
        parts += [_TEXT_HEADERS, _MIME_VERSION, b"\r\n", _qp_body(text)]
        return b"".join(parts)
    boundary = "=_pc" + message_id[4:36]
    delimiter = b"\r\n--" + boundary.encode("ascii")
    parts += [
        _MIME_VERSION,
        _folded("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        b"\r\n",
        delimiter[2:],
        b"\r\n",
        _TEXT_HEADERS,
        b"\r\n",
        _qp_body(text),
        delimiter,
        b"\r\n",
        _HTML_HEADERS,
        _MIME_VERSION,
        b"\r\n",
        _qp_body(html),
        delimiter,
        b"--\r\n",
    ]
    return b"".join(parts)


def email_message(
    *,
    sender: tuple[str, str],
    recipient: tuple[str, str],
    subject: str,
    date: str,
    message_id: str,
    previous: list[str],
    unsubscribe: str,
    text: str,
    html: str | None,
) -> EmailMessage:
    """The reference construction of :func:`build_payload`'s bytes with ``EmailMessage``."""
    msg = EmailMessage(policy=policy.SMTP)
    local, _, domain = sender[1].rpartition("@")
    msg["From"] = Address(display_name=sender[0], username=local, domain=domain)
    to_local, _, to_domain = recipient[1].rpartition("@")
    msg["To"] = Address(display_name=recipient[0], username=to_local, domain=to_domain)
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = message_id
    if previous:
        msg["In-Reply-To"] = previous[-1]
        msg["References"] = " ".join(previous)
    msg["List-Unsubscribe"] = f"<{unsubscribe}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, cte="quoted-printable")
    if html is not None:
        msg.add_alternative(html, subtype="html", cte="quoted-printable")
        # Deterministic (the same message composes to the same bytes) and safe: "=_" never
        # occurs in quoted-printable text, so it cannot collide with the parts' content.
        msg.set_boundary("=_pc" + message_id[4:36])
    return msg
