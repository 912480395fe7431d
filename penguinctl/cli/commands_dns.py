"""`dns records DOMAIN`, `dns verify DOMAIN...` and `dns export --format zonefile`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from penguinctl import clock
from penguinctl.cli.conventions import examples

dns_app = typer.Typer(
    help="Expected DNS records, verification and export.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl dns records acme-mail.example",
        "penguinctl dns verify acme-mail.example --wait 10m",
        "penguinctl dns export --format zonefile --out-dir ./zones",
    ),
)


def register(app: typer.Typer) -> None:
    app.add_typer(dns_app, name="dns")


def _records(app, domains: list[str] | None) -> dict[str, list[dict]]:
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(app.read_db) as session:
        rows = repo.list_resources(session, kind="dnsrecord")
    zones: dict[str, list[dict]] = {}
    for row in rows:
        zone = row.data["zone"]
        if domains is None or zone in domains:
            zones.setdefault(zone, []).append(row.data)
    return zones


@dns_app.command("records")
def records(
    ctx: typer.Context,
    domain: Annotated[str, typer.Argument(help="The sending domain.")],
) -> None:
    """The records penguinctl publishes for DOMAIN (as recorded by the last apply)."""
    from penguinctl.cli.render import table
    from penguinctl.errors import NotFound

    app = ctx.obj
    domain = domain.lower().rstrip(".")
    recs = _records(app, [domain]).get(domain)
    if not recs:
        raise NotFound(
            f"no DNS records recorded for {domain}", hint="apply a spec containing the domain first"
        )
    recs.sort(key=lambda r: (r["name"] != "@", r["name"], r["type"]))

    def text(console) -> None:
        table(
            console,
            ["name", "type", "ttl", "value"],
            [[r["name"], r["type"], r["ttl"], "\n".join(r["values"])] for r in recs],
            title=domain,
        )

    app.emit(recs, text)


@dns_app.command("export")
def export(
    ctx: typer.Context,
    domains: Annotated[
        list[str] | None, typer.Argument(metavar="DOMAIN", help="Domains (default: all).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="Export format.")
    ] = "zonefile",
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", metavar="DIR", help="Write one <domain>.zone per domain here."),
    ] = None,
) -> None:
    """Export recorded records as RFC 1035 zone files (stdout, or one file per domain)."""

    from penguinctl.dns.zonefile import next_serial, render_zone, write_atomic
    from penguinctl.errors import NotFound, UsageError

    app = ctx.obj
    if fmt != "zonefile":
        raise UsageError(f"--format {fmt!r} is not supported", hint="use --format zonefile")
    zones = _records(app, [d.lower().rstrip(".") for d in domains] if domains else None)
    if not zones:
        raise NotFound("no DNS records recorded", hint="apply a spec first")
    serial = next_serial(None, clock.now().date())
    written = []
    for zone in sorted(zones):
        text = render_zone(zone, zones[zone], nameservers=None, hostmaster=None, serial=serial)
        if out_dir is None:
            print(text)
        else:
            from penguinctl.private_files import SHARED_DIR, make_dirs

            make_dirs(out_dir, SHARED_DIR)
            path = out_dir / f"{zone}.zone"
            write_atomic(path, text)
            written.append(str(path))
    if out_dir is not None:
        app.emit({"written": written}, lambda c: c.print(f"Wrote {len(written)} zone file(s)."))


_STYLE = {
    "ok": "green",
    "unexpected": "yellow",
    "invalid": "red",
    "missing": "red",
    "mismatch": "red",
    "error": "magenta",
}


def _short(values: list[str], width: int = 60) -> str:
    text = "\n".join(values)
    return text if len(text) <= width else text[: width - 3] + "..."


def _render_verify(console, reports, *, verbose: bool) -> None:
    from rich.markup import escape

    from penguinctl.cli.render import table

    for rep in reports:
        if rep.ok and not verbose:
            continue
        rows = []
        for c in rep.checks:
            style = _STYLE.get(c.status, "red")
            found = "" if c.ok else _short(c.found)
            rows.append(
                [
                    escape(c.name),
                    c.type,
                    f"[{style}]{c.status}[/]",
                    escape(c.detail),
                    escape(found),
                ]
            )
        servers = ", ".join(rep.servers) or "-"
        table(
            console,
            ["name", "type", "status", "detail", "found"],
            rows,
            title=f"{rep.domain} (asked {servers})",
        )
    bad = [r for r in reports if not r.ok]
    if bad:
        console.print(
            f"[red]{len(bad)} of {len(reports)} domain(s) not as expected[/]: "
            + ", ".join(r.domain for r in bad[:10])
            + (" ..." if len(bad) > 10 else "")
        )
    else:
        console.print(f"[green]All {len(reports)} domain(s) verified.[/]")


@dns_app.command("verify")
def verify(
    ctx: typer.Context,
    domains: Annotated[
        list[str] | None, typer.Argument(metavar="DOMAIN", help="Domains to verify.")
    ] = None,
    all_domains: Annotated[bool, typer.Option("--all", help="Every recorded domain.")] = False,
    wait: Annotated[
        str | None,
        typer.Option(
            "--wait",
            metavar="DURATION",
            help="Poll until everything is ok or this long passed (10m).",
        ),
    ] = None,
    interval: Annotated[
        str, typer.Option("--interval", metavar="DURATION", help="Time between polls with --wait.")
    ] = "5s",
    nameserver: Annotated[
        list[str] | None,
        typer.Option(
            "--nameserver",
            metavar="HOST[:PORT]",
            help="Ask this server instead of the zone's (HOST[:PORT]).",
        ),
    ] = None,
    resolver: Annotated[
        list[str] | None,
        typer.Option(
            "--resolver",
            metavar="HOST[:PORT]",
            help="Recursive resolver for NS, SPF, PTR (HOST[:PORT]).",
        ),
    ] = None,
    no_fcrdns: Annotated[
        bool, typer.Option("--no-fcrdns", help="Skip the reverse DNS checks.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Seconds per query.")
    ] = 2.0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show domains that are ok too.")
    ] = False,
) -> None:
    """Ask the authoritative servers for every record of DOMAIN...; exit 5 unless all are ok."""
    import time

    from penguinctl.dns.expectations import build_expectations
    from penguinctl.dns.query import Nameserver, Resolver
    from penguinctl.dns.verify import Verifier
    from penguinctl.errors import CheckFailed, UsageError
    from penguinctl.spec.durations import Duration
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    app = ctx.obj
    if not domains and not all_domains:
        raise UsageError("name the domains to verify", hint="or pass --all")
    try:
        deadline_s = Duration(wait).total_seconds() if wait else 0.0
        every = max(1.0, Duration(interval).total_seconds())
    except ValueError as exc:
        raise UsageError(f"--wait/--interval: {exc}") from None
    override = [Nameserver.parse(t) for t in nameserver or []]
    res = Resolver([Nameserver.parse(t) for t in resolver or app.settings.dns_resolvers])
    with session_scope(app.read_db) as session:
        rows = repo.list_resources(session)
    names = None if all_domains else [d.lower().rstrip(".") for d in domains or []]
    expectations = build_expectations(
        rows, names, secrets=app.secrets(), resolver=res, override=override
    )
    verifier = Verifier(res, timeout=timeout, fcrdns=not no_fcrdns)
    deadline = time.monotonic() + deadline_s
    results: dict[str, object] = {}
    todo = expectations
    while True:
        for rep in _verify_with_progress(app, verifier, todo):
            results[rep.domain] = rep
        todo = [e for e in todo if not results[e.domain].ok]
        if not todo or time.monotonic() + every > deadline:
            break
        if not app.machine:
            app.err.print(f"waiting for {len(todo)} domain(s); next check in {every:g} s")
        time.sleep(every)
        res = Resolver(
            [Nameserver.parse(t) for t in resolver or app.settings.dns_resolvers]
        )  # fresh cache per poll
        verifier.resolver = res
    reports = [results[e.domain] for e in expectations]
    bad = [r for r in reports if not r.ok]
    app.emit(
        {"ok": not bad, "domains": [r.to_json() for r in reports]},
        lambda c: _render_verify(c, reports, verbose=verbose or len(reports) == 1),
    )
    if bad:
        first = bad[0]
        check = next(c for c in first.checks if not c.ok)
        raise CheckFailed(
            f"{len(bad)} of {len(reports)} domain(s) not as expected; first: {first.domain} "
            f"{check.name} {check.type}: {check.status}"
            + (f" ({check.detail})" if check.detail else ""),
            hint="apply the spec, or wait for propagation with --wait 10m",
        )


def _verify_with_progress(app, verifier, expectations):
    if app.machine or not app.err.is_terminal or len(expectations) < 20:
        return verifier.verify(expectations)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    with Progress(
        "verifying", BarColumn(), MofNCompleteColumn(), console=app.err, transient=True
    ) as bar:
        task = bar.add_task("verify", total=len(expectations))
        return verifier.verify(expectations, progress=lambda n: bar.advance(task, n))
