"""`check [--all] [DOMAIN|SERVER...]`: health and reputation checks, kept as history; exit 5 on
failure; critical failures pause the campaigns sending through them; `--notify URL` delivers
the events they emit to a webhook. `check history` reads what was stored."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

import typer

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "error": "magenta"}


def register(app: typer.Typer) -> None:
    from penguinctl.cli.commands_check_history import history
    from penguinctl.cli.conventions import examples
    from penguinctl.cli.defaultgroup import DefaultGroup

    check_app = typer.Typer(
        cls=DefaultGroup,
        help="Health and reputation checks (`check run`, the default: `penguinctl check mx1` "
        "is `penguinctl check run mx1`), and their stored history.",
        rich_markup_mode=None,
        epilog=examples(
            "penguinctl check run --all --problems",
            "penguinctl check run mx1 acme-mail.example -o json",
            "penguinctl check history mx1 --since 24h --problems",
        ),
    )
    check_app.command("run")(check)
    check_app.command("history")(history)
    app.add_typer(check_app, name="check")


def _ports(items: list[str] | None) -> dict[int, int]:
    from penguinctl.errors import UsageError

    out = {}
    for item in items or []:
        left, sep, right = item.partition("=")
        if not sep or not left.isdecimal() or not right.isdecimal():
            raise UsageError(f"--port {item!r}: use STANDARD=ACTUAL, e.g. 25=2525")
        out[int(left)] = int(right)
    return out


def _lists(
    values: list[str] | None, env: str | None, default: Callable[[], Sequence[str]]
) -> tuple[str, ...]:
    if values:
        items = [v for item in values for v in item.split(",")]
    elif env:
        items = env.split(",")
    else:
        return tuple(default())
    return tuple(i.strip().strip(".") for i in items if i.strip() and i.strip() != "none")


def check(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="TARGET", help="Servers and/or domains (or --all)."),
    ] = None,
    all_targets: Annotated[
        bool, typer.Option("--all", help="Every recorded server and domain.")
    ] = False,
    resolver: Annotated[
        list[str] | None,
        typer.Option(
            "--resolver",
            metavar="HOST[:PORT]",
            help="Recursive resolver for PTR/NS/SPF (HOST[:PORT]).",
        ),
    ] = None,
    dnsbl_resolver: Annotated[
        list[str] | None,
        typer.Option(
            "--dnsbl-resolver",
            metavar="HOST[:PORT]",
            envvar="PENGUINCTL_DNSBL_RESOLVER",
            help="Resolver for block-list queries (HOST[:PORT]; default: --resolver).",
        ),
    ] = None,
    nameserver: Annotated[
        list[str] | None,
        typer.Option(
            "--nameserver", metavar="HOST[:PORT]", help="Authoritative server for the DNS records."
        ),
    ] = None,
    ip_list: Annotated[
        list[str] | None,
        typer.Option(
            "--ip-list",
            metavar="ZONE",
            help="IP block-list zones (repeat or comma-separate; 'none').",
        ),
    ] = None,
    domain_list: Annotated[
        list[str] | None,
        typer.Option(
            "--domain-list",
            metavar="ZONE",
            help="Domain block-list zones (repeat or comma-separate).",
        ),
    ] = None,
    connect: Annotated[
        str | None,
        typer.Option(
            "--connect",
            metavar="ADDRESS",
            help="Address the SMTP/TLS probes connect to (default: the IP).",
        ),
    ] = None,
    port: Annotated[
        list[str] | None,
        typer.Option(
            "--port",
            metavar="PORT=PORT",
            help="Probe another port for a standard one: 25=2525 (repeat).",
        ),
    ] = None,
    ca_file: Annotated[
        str | None,
        typer.Option(
            "--ca-file", metavar="FILE", help="Trust these CAs for the certificate checks."
        ),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip",
            metavar="FAMILY",
            help="Skip a family: dns, fcrdns, tls, dnsbl, remote, backup.",
        ),
    ] = None,
    mailu_root: Annotated[
        str,
        typer.Option(
            "--mailu-root",
            metavar="DIR",
            envvar="PENGUINCTL_MAILU_ROOT",
            help="MailU's directory on the servers.",
        ),
    ] = "/mailu",
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Seconds per probe.")
    ] = 8.0,
    notify: Annotated[
        str | None,
        typer.Option(
            "--notify",
            metavar="URL",
            help="Deliver new failures and recoveries to this webhook (signed, retried).",
        ),
    ] = None,
    notify_allow_private: Annotated[
        bool,
        typer.Option(
            "--notify-allow-private", help="The --notify URL may be on a private network."
        ),
    ] = False,
    no_pause: Annotated[
        bool, typer.Option("--no-pause", help="Do not pause campaigns on critical failures.")
    ] = False,
    problems: Annotated[
        bool, typer.Option("--problems", help="Show only checks that are not ok.")
    ] = False,
) -> int:
    """Check servers and domains: DNS records, FCrDNS, SMTP/STARTTLS and TLS with certificate
    expiry, block lists, MailU containers and disk, backup freshness. Exit 5 on any failure."""
    import sys

    from penguinctl.dns.query import Nameserver, Resolver
    from penguinctl.errors import CheckFailed, UsageError
    from penguinctl.health import dnsbl
    from penguinctl.health import notify as notifier
    from penguinctl.health.results import overall
    from penguinctl.health.runner import FAMILIES, Config, load_targets
    from penguinctl.health.service import backup_on_server, backup_schedules, check_and_record

    app = ctx.obj
    if bool(names) == all_targets:
        raise UsageError("name the servers or domains to check, or pass --all (not both)")
    bad_skip = set(skip or []) - set(FAMILIES)
    if bad_skip:
        raise UsageError(f"--skip {', '.join(sorted(bad_skip))}: use {', '.join(FAMILIES)}")
    res = Resolver(
        [Nameserver.parse(t) for t in resolver or app.settings.dns_resolvers], timeout=timeout
    )
    bl_res = (
        Resolver([Nameserver.parse(t) for t in dnsbl_resolver], timeout=timeout)
        if dnsbl_resolver
        else res
    )
    config = Config(
        resolver=res,
        dnsbl_resolver=bl_res,
        nameservers=[Nameserver.parse(t) for t in nameserver or []],
        ip_lists=_lists(
            ip_list, app.env.get("PENGUINCTL_DNSBL_IP_LISTS"), lambda: dnsbl.ip_lists(app.env)
        ),
        domain_lists=_lists(
            domain_list,
            app.env.get("PENGUINCTL_DNSBL_DOMAIN_LISTS"),
            lambda: dnsbl.domain_lists(app.env),
        ),
        connect=connect,
        ports=_ports(port),
        cafile=ca_file,
        timeout=timeout,
        root=mailu_root,
        skip=frozenset(skip or []),
    )
    hook = None
    if notify:  # fail before checking anything when the webhook cannot be signed or reached
        secret = notifier.webhook_secret(app.env, app.secrets())
        hook = notifier.endpoint_for(app, notify, secret, allow_private=notify_allow_private)
    started = app.now()
    targets = load_targets(app, None if all_targets else names)
    config.now = app.clock.now
    config.backup_schedules = backup_schedules(app, targets.servers)
    config.backup_on_server = backup_on_server(app, targets.servers)
    if not app.machine and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(console=app.err, transient=True) as bar:
            task = bar.add_task("checking", total=None)
            done = check_and_record(
                app,
                targets,
                config,
                actor=app.actor(),
                started=started,
                pause=not no_pause,
                progress=lambda d, t: bar.update(task, completed=d, total=t),
            )
    else:
        done = check_and_record(
            app, targets, config, actor=app.actor(), started=started, pause=not no_pause
        )
    results, run_id, paused, target_names = (
        done.results,
        done.run_id,
        done.paused,
        done.target_names,
    )
    failures = [r for r in results if r.failing]
    notified = notifier.deliver_now(app, hook.id) if hook is not None else None
    status = overall(results)
    data = {
        "ok": not failures,
        "status": status,
        "run_id": run_id,
        "counts": {s: sum(r.status == s for r in results) for s in _STYLE},
        "results": [r.to_json() for r in results],
        "paused_campaigns": paused,
        "notified": notified,
    }

    def text(console) -> None:
        from rich.markup import escape

        from penguinctl.cli.render import table

        shown = [r for r in results if not problems or r.status != "ok"]
        rows = [
            [
                escape(r.target),
                r.check,
                escape(r.subject),
                f"[{_STYLE[r.status]}]{r.status}[/]" + (" !" if r.critical and r.failing else ""),
                escape(r.detail),
            ]
            for r in shown
        ]
        if rows:
            table(console, ["target", "check", "subject", "status", "detail"], rows)
        c = data["counts"]
        console.print(
            f"[{_STYLE[status]}]{status}[/]: {c['ok']} ok, {c['warn']} warn, {c['fail']} fail, "
            f"{c['error']} error over {len(target_names)} target(s) (run {run_id})"
        )
        for p in paused:
            console.print(f"[red]paused[/] campaign {p['tenant']}/{p['campaign']}: {p['reason']}")

    app.emit(data, text)
    if failures:
        first = failures[0]
        raise CheckFailed(
            f"{len(failures)} check(s) failed; first: {first.target} {first.check} "
            f"{first.subject}: {first.detail}",
            hint="see the table above, or `-o json`",
        )
    return 0
