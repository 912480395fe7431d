"""`dns records DOMAIN` and `dns export --format zonefile`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

dns_app = typer.Typer(
    help="Expected DNS records, verification and export.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    app.add_typer(dns_app, name="dns")


def _records(app, domains: list[str] | None) -> dict[str, list[dict]]:
    from penguinctl.state import repo
    from penguinctl.state.db import session_scope

    with session_scope(app.db) as session:
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
    domains: Annotated[list[str] | None, typer.Argument(help="Domains (default: all).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Export format.")] = "zonefile",
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Write one <domain>.zone per domain here.")
    ] = None,
) -> None:
    """Export recorded records as RFC 1035 zone files (stdout, or one file per domain)."""
    from datetime import UTC, datetime

    from penguinctl.dns.zonefile import next_serial, render_zone, write_atomic
    from penguinctl.errors import NotFound, UsageError

    app = ctx.obj
    if fmt != "zonefile":
        raise UsageError(f"--format {fmt!r} is not supported", hint="use --format zonefile")
    zones = _records(app, [d.lower().rstrip(".") for d in domains] if domains else None)
    if not zones:
        raise NotFound("no DNS records recorded", hint="apply a spec first")
    serial = next_serial(None, datetime.now(UTC).date())
    written = []
    for zone in sorted(zones):
        text = render_zone(zone, zones[zone], nameservers=None, hostmaster=None, serial=serial)
        if out_dir is None:
            print(text)
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"{zone}.zone"
            write_atomic(path, text)
            written.append(str(path))
    if out_dir is not None:
        app.emit({"written": written}, lambda c: c.print(f"Wrote {len(written)} zone file(s)."))
