"""`worker run`: the campaign sending worker (and `worker mailboxes` / `worker resume-mailbox`)."""

from __future__ import annotations

from typing import Annotated

import typer

from penguinctl.cli.conventions import examples

worker_app = typer.Typer(
    help="The campaign sending worker.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl worker run",
        "penguinctl worker run --once --campaign acme/q4-outreach",
        "penguinctl worker mailboxes",
    ),
)


def register(app: typer.Typer) -> None:
    app.add_typer(worker_app, name="worker")


@worker_app.command("run")
def run(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Process what is due now, then exit.")
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", metavar="N", min=1, max=64, help="Sending threads.")
    ] = 1,
    campaign: Annotated[
        list[str] | None,
        typer.Option(
            "--campaign",
            metavar="CAMPAIGN",
            help="Only this campaign (NAME or TENANT/NAME; repeatable).",
        ),
    ] = None,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", metavar="SECONDS", min=0.1, help="Seconds between cycles."),
    ] = 30.0,
    inbound: Annotated[
        bool, typer.Option("--inbound/--no-inbound", help="Read replies and bounces over IMAP.")
    ] = True,
    ca_file: Annotated[
        str | None,
        typer.Option(
            "--ca-file", metavar="FILE", help="CA bundle for SMTP/IMAP TLS (default: system store)."
        ),
    ] = None,
    smtp_timeout: Annotated[
        float,
        typer.Option(
            "--smtp-timeout",
            metavar="SECONDS",
            min=1.0,
            help="Seconds to wait for an SMTP server's answer.",
        ),
    ] = 60.0,
    bounce_min_sample: Annotated[
        int,
        typer.Option(
            "--bounce-min-sample", metavar="N", min=1, help="Sends before a bounce rate can pause."
        ),
    ] = 20,
    max_sends: Annotated[
        int | None,
        typer.Option("--max-sends", metavar="N", min=1, help="Stop after this many sends."),
    ] = None,
    batch: Annotated[
        int,
        typer.Option(
            "--batch",
            metavar="N",
            min=1,
            max=500,
            help="Sends claimed per ledger transaction (a crash leaves up to twice this "
            "many reported ambiguous; 1 for one at a time).",
        ),
    ] = 20,
    in_flight: Annotated[
        int,
        typer.Option(
            "--in-flight",
            metavar="N",
            min=1,
            max=32,
            help="SMTP transactions each sending thread keeps in progress at once, each on "
            "its own connection (a mailbox opens a second one only while its first is busy).",
        ),
    ] = 4,
    per_server: Annotated[
        int,
        typer.Option(
            "--connections-per-server",
            metavar="N",
            min=1,
            max=200,
            help="SMTP connections each sending thread keeps open to one submission server "
            "(the one idle the longest is closed first; also bounds the transactions in "
            "flight to it).",
        ),
    ] = 10,
) -> int:
    """Send due campaign steps through each mailbox's SMTP submission, read replies and bounces.

    Several workers may share a PostgreSQL state store; on SQLite only one runs at a time.
    SIGTERM / Ctrl-C stop it after the messages in flight are recorded (the claims not yet sent
    are released).
    """
    import signal
    import sys
    import time

    from penguinctl.campaigns.worker import Summary, Worker, WorkerOptions

    app = ctx.obj
    options = WorkerOptions(
        once=once,
        concurrency=concurrency,
        campaigns=campaign or None,
        poll_interval=poll_interval,
        inbound=inbound,
        smtp_timeout=smtp_timeout,
        cafile=ca_file or app.env.get("PENGUINCTL_CA_FILE") or None,
        bounce_min_sample=bounce_min_sample,
        max_sends=max_sends,
        batch=batch,
        in_flight=in_flight,
        per_server=per_server,
    )
    live = not app.machine and sys.stderr.isatty()
    status = app.err.status("starting the worker") if live else None
    last = [0.0]

    def progress(summary: Summary) -> None:
        if status is None or time.monotonic() - last[0] < 0.2:
            return
        last[0] = time.monotonic()
        c = summary.counts
        status.update(
            f"cycle {summary.cycles + 1}: {c['sent']} sent, {c['failed']} failed, "
            f"{c['released']} deferred, {c['ambiguous']} ambiguous"
        )

    worker = Worker(
        app.db,
        secrets=app.secrets(),
        env=app.env,
        options=options,
        actor=app.actor(),
        on_progress=progress,
    )
    previous = {
        sig: signal.signal(sig, lambda *_: worker.stop()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        if status is not None:
            with status:
                summary = worker.run()
        else:
            summary = worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    data = summary.to_json()

    def text(console) -> None:
        console.print(
            f"worker {data['worker']}: {data['sent']} sent, {data['failed']} failed, "
            f"{data['released']} deferred, {data['ambiguous']} ambiguous"
            + (f", {data['unsent']} unsent (could not be composed)" if data["unsent"] else "")
            + f" ({data['cycles']} cycle{'s' if data['cycles'] != 1 else ''})"
        )
        for mailbox, n in data["per_mailbox"].items():
            console.print(f"  {mailbox}: {n}")
        if data["inbound"]:
            console.print("inbound: " + ", ".join(f"{k} {v}" for k, v in data["inbound"].items()))
        for a in data["recovered_ambiguous"]:
            console.print(
                f"ambiguous: send {a['send_id']} (campaign {a['campaign_id']}, lead "
                f"{a['lead_id']}, step {a['step'] + 1}, {a['mailbox']}) was in flight when a "
                "worker stopped; it is not resent (`campaign resolve` settles it)"
            )
        for p in data["paused"]:
            console.print(f"paused: {p}")
        for c in data["completed_campaigns"]:
            console.print(f"completed: {c}")
        for p in data["problems"]:
            console.print(f"problem: {p}")

    app.emit(data, text)
    return 0


@worker_app.command("mailboxes")
def mailboxes(ctx: typer.Context) -> None:
    """Sending mailboxes: status (paused and why), today's count, warmup start."""
    import sqlalchemy as sa

    from penguinctl.campaigns.ledger import MAILBOXES
    from penguinctl.cli.render import table

    app = ctx.obj
    with app.db.connect() as conn:
        rows = conn.execute(sa.select(MAILBOXES).order_by(MAILBOXES.c.address)).all()
    data = [
        {
            "tenant": r.tenant,
            "address": r.address,
            "status": r.status,
            "paused_reason": r.paused_reason,
            "day": r.day,
            "day_count": r.day_count,
            "warmup_started_at": r.warmup_started_at.isoformat() if r.warmup_started_at else None,
        }
        for r in rows
    ]

    def text(console) -> None:
        table(
            console,
            ["tenant", "mailbox", "status", "today", "reason"],
            [
                [
                    d["tenant"],
                    d["address"],
                    d["status"],
                    str(d["day_count"]),
                    d["paused_reason"] or "",
                ]
                for d in data
            ],
        )

    app.emit({"mailboxes": data}, text)


@worker_app.command("resume-mailbox")
def resume_mailbox(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The paused mailbox.")],
    tenant: Annotated[str, typer.Option("--tenant", metavar="TENANT", help="Its tenant.")],
) -> None:
    """Resume a mailbox paused for bounces or a refused login (its warmup continues where it
    stopped)."""
    from penguinctl.campaigns.mailboxes import resume_mailbox as resume
    from penguinctl.campaigns.window import SystemClock
    from penguinctl.errors import UsageError
    from penguinctl.state.audit import record
    from penguinctl.state.db import session_scope

    app = ctx.obj
    with app.db.begin() as conn:
        if not resume(conn, tenant, address.lower(), SystemClock().now()):
            raise UsageError(
                f"mailbox {address} of tenant {tenant} is not paused",
                hint="see `penguinctl worker mailboxes`",
            )
    with session_scope(app.db) as session:
        record(
            session,
            actor=app.actor(),
            tenant=tenant,
            action="campaign.mailbox.resume",
            resource=f"mailbox/{address.lower()}",
            result="ok",
        )
    app.emit({"resumed": address.lower()}, lambda c: c.print(f"resumed {address.lower()}"))
