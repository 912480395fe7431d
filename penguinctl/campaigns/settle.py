"""Ambiguous sends settled by asking the tenant's own MTA (``campaign resolve --auto``, the
``campaign-settle`` job).

A send is ambiguous when a worker died (or a connection dropped) after handing the message to
the server and before hearing back (ambiguous.py). Its Message-ID is deterministic
(message.py), so the server that took the submission can be asked whether it accepted it:

- **MailU servers** (``static``/``hostwinds``: penguinctl holds their SSH key): Postfix's log,
  read over SSH. By default the ``smtp`` container's log since an hour before the oldest claim
  (``docker logs --timestamps --since``; the container's start bounds what the log covers);
  a server's ``mail.log_command`` replaces that command (any command printing a Postfix log,
  e.g. ``cat /var/log/mail.log``; the log's first entry then bounds what it covers). See
  postfix_log.py for what counts as accepted. Accepted -> ``sent``; the log covers the claim
  and shows no accepted copy -> ``unsent`` (the row goes, the next worker run sends it);
  otherwise the send stays ambiguous and the reason is reported.
- **external servers**: only when the server's data names a Sent folder (``mail.sent_folder``,
  e.g. ``Sent``): an IMAP search of that folder of the sending mailbox for the Message-ID.
  Found -> ``sent``. Not found proves nothing (a server need not keep a copy of what it relays)
  unless ``mail.sent_folder_complete: true`` says it keeps every message submitted: then, once
  the claim is older than the grace period, -> ``unsent``.

Every settled send is audited (``campaign.send.resolved``, actor, the MTA's evidence) and
settled through ambiguous.resolve, in one transaction per campaign. Per tenant: a campaign's
sends are only judged from its own tenant's servers.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from penguinctl.campaigns import ambiguous as amb
from penguinctl.campaigns import postfix_log
from penguinctl.campaigns.ambiguous import AmbiguousSend
from penguinctl.campaigns.postfix_log import Judgement
from penguinctl.state.models import ResourceRow

GRACE = timedelta(seconds=30)  # how long after a claim an MTA's log must go on to say "unsent"
LOG_TIMEOUT = 120.0
LOOKBACK = timedelta(hours=1)  # log read from this long before the oldest claim
MAX_OUTPUT = 64 * 1024 * 1024  # the log's last 64 MiB at most (older entries: not covered)
MAILU_SCRIPT = (
    'cd "$1" && cid=$(docker compose -p "$2" ps -q smtp) && '
    "started=$(docker inspect -f '{{.State.StartedAt}}' \"$cid\") && "
    'echo "$started penguinctl-log-start" && '
    f'docker logs --timestamps --since "$3" "$cid" 2>&1 | tail -c {MAX_OUTPUT}'
)


@dataclass(frozen=True)
class MtaRoute:
    """Where a mailbox's messages were submitted: its server's name, tenant and data."""

    server: str
    tenant: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        provider = self.data.get("provider")
        return "mailu" if provider in ("static", "hostwinds") else str(provider or "external")


@dataclass
class SettleReport:
    campaign: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    unsent: list[dict[str, Any]] = field(default_factory=list)
    ambiguous: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "sent": self.sent,
            "unsent": self.unsent,
            "still_ambiguous": self.ambiguous,
        }


def routes_for(conn: Any, tenant: str, mailboxes: set[str]) -> dict[str, MtaRoute | str]:
    """{mailbox: its server's route, or why there is none} (the tenant's resources only, or
    shared ones; the tenant's own win, as in senders.py)."""
    table = ResourceRow.__table__
    rows = conn.execute(
        sa.select(table.c.tenant, table.c.kind, table.c.name, table.c.data)
        .where(table.c.kind.in_(("mailbox", "domain", "server")))
        .where(table.c.tenant.in_((tenant, "")))
    ).all()
    by: dict[tuple[str, str], tuple[str, str, dict[str, Any]]] = {}
    for row in rows:
        key = (row.kind, row.name.lower())
        if key not in by or row.tenant == tenant:
            by[key] = (row.tenant or "", row.name, dict(row.data or {}))
    found: dict[str, MtaRoute | str] = {}
    for address in mailboxes:
        mailbox = by.get(("mailbox", address.lower()))
        if mailbox is None or mailbox[0] != tenant:
            found[address] = f"mailbox {address} is not recorded for tenant {tenant}"
            continue
        domain_name = str(mailbox[2].get("domain") or address.rsplit("@", 1)[-1]).lower()
        domain = by.get(("domain", domain_name))
        server = by.get(("server", str((domain or ("", "", {}))[2].get("server", "")).lower()))
        if domain is None or server is None:
            found[address] = f"mailbox {address}: domain {domain_name} or its server not recorded"
            continue
        found[address] = MtaRoute(server[1], server[0], server[2])
    return found


# -- asking the MTA -------------------------------------------------------------------------------
def read_mailu_log(app: Any, route: MtaRoute, since: datetime) -> tuple[str, datetime | None]:
    """(the Postfix log text, the time it is known complete from or None) of a MailU server,
    over SSH."""
    from penguinctl.backup.targets import Target, connect
    from penguinctl.errors import UsageError
    from penguinctl.remote.servers import endpoint_of, recorded_servers

    # the tenant's own server row (server names are unique per tenant only)
    endpoint = endpoint_of(route.server, route.data, recorded_servers(app.db), tenant=route.tenant)
    if endpoint is None:
        raise UsageError(f"server {route.server}: penguinctl has no SSH access to it")
    target = Target(route.tenant, route.server, route.data, endpoint)
    mail = route.data.get("mail") or {}
    with connect(app, target, timeout=LOG_TIMEOUT) as conn:
        if mail.get("log_command"):
            command = f"{mail['log_command']} | tail -c {MAX_OUTPUT}"
            res = conn.run(["sh", "-c", command], timeout=LOG_TIMEOUT, check=True)
            return res.stdout, None
        mailu = route.data.get("mailu") or {}
        root = str(mailu.get("root") or "/mailu")
        project = str(mailu.get("project") or "mailu")
        stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        res = conn.run(
            ["sh", "-c", MAILU_SCRIPT, "sh", root, project, stamp],
            timeout=LOG_TIMEOUT,
            check=True,
        )
    return res.stdout, since


def judge_by_log(
    log: postfix_log.PostfixLog,
    sends: list[AmbiguousSend],
    now: datetime,
    grace: timedelta,
    complete_from: datetime | None = None,
) -> dict[int, Judgement]:
    if complete_from is not None and log.first is not None:
        # docker logs --since: complete from the container's start (the script's first line)
        # or the --since time, whichever is later
        log.first = max(log.first, complete_from)
    return {
        a.send_id: postfix_log.judge(log, a.message_id, a.claimed_at, now, grace) for a in sends
    }


def judge_by_sent_folder(
    app: Any, tenant: str, mailbox: str, route: MtaRoute, sends: list[AmbiguousSend], now: datetime,
    grace: timedelta,
) -> dict[int, Judgement]:  # fmt: skip
    """Search the mailbox's Sent folder over IMAP for each Message-ID."""
    from penguinctl.campaigns.senders import load_senders

    mail = route.data.get("mail") or {}
    folder = str(mail["sent_folder"])
    complete = bool(mail.get("sent_folder_complete"))
    with app.db.connect() as conn:
        senders, problems = load_senders(conn, tenant, [mailbox])
    sender = senders.get(mailbox)
    if sender is None:
        why = problems.get(mailbox, f"mailbox {mailbox} unknown")
        return {a.send_id: Judgement(None, why) for a in sends}
    found: dict[int, Judgement] = {}
    with open_imap(app, sender) as imap:
        status, _ = imap.select(_quote(folder), readonly=True)
        if status != "OK":
            return {a.send_id: Judgement(None, f"no IMAP folder {folder!r}") for a in sends}
        for a in sends:
            status, data = imap.search(None, "HEADER", "Message-ID", _quote(a.message_id))
            hits = data[0].split() if status == "OK" and data and data[0] else []
            if hits:
                found[a.send_id] = Judgement("sent", f"a copy is in the mailbox's {folder} folder")
            elif complete and now >= a.claimed_at + grace:
                found[a.send_id] = Judgement(
                    "unsent", f"not in the mailbox's {folder} folder, which keeps every message"
                )
            else:
                found[a.send_id] = Judgement(
                    None, f"not in the mailbox's {folder} folder (it may not keep every message)"
                )
    return found


@contextlib.contextmanager
def open_imap(app: Any, sender: Any) -> Iterator[Any]:
    """A logged-in IMAP connection for ``sender`` (the worker's own way in, inbound.py);
    ``PENGUINCTL_IMAP_CAFILE`` names a CA file for a private certificate."""
    import imaplib
    import ssl

    from penguinctl.campaigns.inbound import connect
    from penguinctl.campaigns.senders import password_for

    env = getattr(app, "env", None) or {}
    cafile = env.get("PENGUINCTL_IMAP_CAFILE")
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    password = password_for(sender, app.secrets(), env)
    conn = connect(sender, password, context=context, timeout=LOG_TIMEOUT)
    try:
        yield conn
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            conn.logout()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def judge_sends(
    app: Any, tenant: str, sends: list[AmbiguousSend], now: datetime, grace: timedelta = GRACE
) -> dict[int, Judgement]:
    """What the MTAs say about each ambiguous send of one tenant's campaign."""
    by_mailbox: dict[str, list[AmbiguousSend]] = defaultdict(list)
    for a in sends:
        by_mailbox[a.mailbox.lower()].append(a)
    with app.db.connect() as conn:
        routes = routes_for(conn, tenant, set(by_mailbox))
    verdicts: dict[int, Judgement] = {}
    by_server: dict[str, tuple[MtaRoute, list[AmbiguousSend]]] = {}
    for mailbox, items in by_mailbox.items():
        route = routes[mailbox]
        if isinstance(route, str):
            verdicts.update({a.send_id: Judgement(None, route) for a in items})
        elif route.kind == "mailu":
            by_server.setdefault(route.server, (route, []))[1].extend(items)
        elif (route.data.get("mail") or {}).get("sent_folder"):
            verdicts.update(_guarded(lambda r=route, m=mailbox, i=items: judge_by_sent_folder(
                app, tenant, m, r, i, now, grace), items))  # fmt: skip
        else:
            why = (
                f"server {route.server} is {route.kind}: penguinctl cannot read its log; set "
                "mail.sent_folder to search the mailbox's Sent folder, or settle it by hand"
            )
            verdicts.update({a.send_id: Judgement(None, why) for a in items})
    for route, items in by_server.values():
        since = min(a.claimed_at for a in items) - LOOKBACK

        def ask(route: MtaRoute = route, items: list[AmbiguousSend] = items, since=since):
            text, complete_from = read_mailu_log(app, route, since)
            log = postfix_log.parse(text, now)
            return judge_by_log(log, items, now, grace, complete_from)

        verdicts.update(_guarded(ask, items))
    return verdicts


def _guarded(ask: Any, items: list[AmbiguousSend]) -> dict[int, Judgement]:
    """``ask()``, or every send still ambiguous with the error (one line, no secret)."""
    import imaplib

    from penguinctl.errors import PenguinError

    try:
        return ask()
    except (PenguinError, OSError, imaplib.IMAP4.error) as exc:
        why = f"could not ask the MTA: {str(exc).splitlines()[0][:300] if str(exc) else exc!r}"
        return {a.send_id: Judgement(None, why) for a in items}


# -- settling ------------------------------------------------------------------------------------
def settle_campaign(
    app: Any, campaign_id: int, *, now: datetime, actor: str, grace: timedelta = GRACE
) -> SettleReport:
    """Judge the campaign's ambiguous sends by their MTAs and settle those decided (audited)."""
    from penguinctl.campaigns.plans import CAMPAIGNS
    from penguinctl.state.audit import record_many

    with app.db.connect() as conn:
        tenant, name = conn.execute(
            sa.select(CAMPAIGNS.c.tenant, CAMPAIGNS.c.name).where(CAMPAIGNS.c.id == campaign_id)
        ).one()
        found = amb.list_ambiguous(conn, campaign_id)
    report = SettleReport(f"{tenant}/{name}")
    if not found:
        return report
    verdicts = judge_sends(app, tenant, found, now, grace)
    pg = app.db.dialect.name == "postgresql"
    by_id = {a.send_id: a for a in found}
    with app.db.begin() as conn:
        for verdict in ("sent", "unsent"):
            ids = [i for i, j in verdicts.items() if j.verdict == verdict]
            if not ids:
                continue
            # only those still ambiguous now (a concurrent settle may have taken some)
            still = {a.send_id for a in amb.list_ambiguous(conn, campaign_id, None)}
            ids = [i for i in ids if i in still]
            done = amb.resolve(conn, campaign_id, ids, verdict, now, pg=pg) if ids else []
            record_many(
                conn,
                [
                    {
                        "actor": actor,
                        "tenant": tenant,
                        "action": "campaign.send.resolved",
                        "resource": f"campaign/{name}",
                        "result": verdict,
                        "details": {
                            "send_id": a.send_id,
                            "lead_id": a.lead_id,
                            "step": a.step,
                            "mailbox": a.mailbox,
                            "message_id": a.message_id,
                            "by": "mta",
                            "evidence": verdicts[a.send_id].reason,
                        },
                    }
                    for a in done
                ],
            )
            target = report.sent if verdict == "sent" else report.unsent
            target.extend(_item(a, verdicts[a.send_id]) for a in done)
    for send_id, j in verdicts.items():
        if j.verdict is None:
            report.ambiguous.append(_item(by_id[send_id], j))
    return report


def _item(a: AmbiguousSend, j: Judgement) -> dict[str, Any]:
    return {"send_id": a.send_id, "step": a.step + 1, "mailbox": a.mailbox, "reason": j.reason}


def campaigns_with_ambiguous(engine: Any, tenant: str | None) -> list[int]:
    """Ids of the campaigns (of ``tenant``, or all) with ambiguous sends."""
    from penguinctl.campaigns.ledger import SENDS

    stmt = sa.select(SENDS.c.campaign_id).where(SENDS.c.status == "ambiguous").distinct()
    if tenant is not None:
        stmt = stmt.where(SENDS.c.tenant == tenant)
    with engine.connect() as conn:
        return sorted(conn.execute(stmt).scalars())
