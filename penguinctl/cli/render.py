"""All human-facing rendering: plans, apply summaries, tables. JSON/YAML dumps for machines."""

from __future__ import annotations

import json
from typing import Any

from penguinctl.resources import COMPUTED

_SYMBOL = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red")}


def dump(data: Any, fmt: str) -> str:
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False).rstrip()
    return json.dumps(data, indent=2, default=str)


def _fmt_value(value: Any) -> str:
    if value == COMPUTED:
        return COMPUTED
    if isinstance(value, str):
        return json.dumps(value) if len(value) <= 120 else json.dumps(value[:117] + "...")
    return json.dumps(value, default=str)


# Beyond this many changes, plan output is a summary per tenant and kind unless --detail.
PLAN_DETAIL_LIMIT = 200


def change_target(provider: str) -> str:
    """What applies a change, in words (the plan's ``provider`` tag: ``dns:local-zones``...)."""
    kind, _, name = provider.partition(":")
    if provider == "state":
        return "state store only"
    if provider == "dkim":
        return "DKIM key in the secrets backend"
    if kind == "dns":
        return f"DNS provider {name}"
    if kind == "server":
        return {
            "hostwinds": "Hostwinds order",
            "static": "server over SSH",
            "external": "state store only (external server)",
        }.get(name, f"{name} server")
    if kind == "mail":
        return f"MailU API on {name}"
    if kind == "mailstack":
        return f"MailU over SSH on {name}"
    return provider


def render_plan(console, plan, *, title: str = "Plan", detail: bool = False) -> None:
    """The plan for a person: changes grouped by tenant, each with what applies it
    (``-> DNS provider local-zones``); past ``PLAN_DETAIL_LIMIT`` changes a count per tenant,
    kind and target instead, unless ``detail``."""
    from rich.markup import escape

    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    if plan.empty:
        console.print("[green]No changes.[/] Infrastructure matches the spec.")
        return
    c = plan.counts()
    if detail or len(plan.changes) <= PLAN_DETAIL_LIMIT:
        _plan_lines(console, plan)
    else:
        _plan_summary(console, plan)
    console.print(
        f"\n{title}: [green]{c['create']} to create[/], [yellow]{c['update']} to update[/], "
        f"[red]{c['delete']} to delete[/]. Checksum {plan.checksum()[:16]}"
    )


def _tenant_heading(tenant: str) -> str:
    return f"Tenant {tenant}:" if tenant else "Shared (no tenant):"


def _plan_lines(console, plan) -> None:
    from rich.markup import escape

    by_tenant: dict[str, list] = {}
    for ch in plan.changes:
        by_tenant.setdefault(ch.key.tenant or "", []).append(ch)
    width = min(60, max(len(ch.key.address) for ch in plan.changes))
    lines = []  # one print: Rich's per-call overhead dominates for thousands of changes
    for tenant, changes in by_tenant.items():
        lines.append(f"[bold]{escape(_tenant_heading(tenant))}[/]")
        for ch in changes:
            sym, color = _SYMBOL[ch.action.value]
            lines.append(
                f"  [{color}]{sym} {ch.action.value:6}[/] {escape(ch.key.address):{width}}"
                f"  [dim]-> {escape(change_target(ch.provider))}[/]"
            )
            if ch.action.value == "update":
                before, after = ch.before or {}, ch.after or {}
                for k in sorted(set(before) | set(after)):
                    if before.get(k) != after.get(k):
                        lines.append(
                            f"        {escape(k)}: {escape(_fmt_value(before.get(k)))} -> "
                            f"{escape(_fmt_value(after.get(k)))}"
                        )
    console.print("\n".join(lines))


def _plan_summary(console, plan) -> None:
    from collections import Counter

    counts: Counter = Counter()
    for ch in plan.changes:
        counts[(ch.key.tenant or "", ch.key.kind, change_target(ch.provider), ch.action.value)] += 1
    groups: dict[tuple[str, str, str], dict[str, int]] = {}
    for (tenant, kind, target, action), n in sorted(counts.items()):
        groups.setdefault((tenant, kind, target), {})[action] = n
    console.print(
        f"{len(plan.changes)} changes, counted per tenant and kind "
        "(--detail lists every one; -o json gives them as data):"
    )
    table(
        console,
        ["tenant", "kind", "applied by", "create", "update", "delete"],
        [
            [t or "(shared)", k, target, g.get("create", 0), g.get("update", 0), g.get("delete", 0)]
            for (t, k, target), g in groups.items()
        ],
    )


def render_apply(console, report) -> None:
    data = report.to_json()
    applied = data["applied"]
    parts = [f"{applied.get(a, 0)} {a}d" for a in ("create", "update", "delete")]
    line = ", ".join(parts)
    if report.ok:
        console.print(f"[green]Apply complete:[/] {line} (run {report.run_id}).")
    else:
        console.print(
            f"[red]Apply incomplete:[/] {line}; {len(report.failed)} failed, "
            f"{len(report.skipped)} skipped (run {report.run_id})."
        )
        for ch, err in report.failed[:20]:
            console.print(f"  [red]x[/] {ch.key.address}: {err}")


def table(console, columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    """Rows for a person: a Rich table on a terminal (long values fold onto more lines, never
    cut; ``-o wide`` keeps every row on one line), tab-separated lines when stdout is not a
    terminal (header first; a cell with several lines gives one row per line, the other cells
    repeated). Cells are Rich markup (callers escape what they did not write)."""
    if not console.is_terminal:
        console.file.write("\n".join(_tsv(columns, rows)) + "\n")  # as is: print() expands tabs
        return
    from rich.table import Table

    t = Table(title=title, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*[_markup(v) for v in row])
    console.print(t)


def cell_text(value: Any) -> str:
    """A cell value as plain text: lists one item per line, mappings ``key=value``."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "\n".join(cell_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell_text(v)}" for k, v in value.items())
    return str(value)


def _markup(value: Any) -> str:
    if isinstance(value, str):
        return value
    from rich.markup import escape

    return escape(cell_text(value))


def _tsv(columns: list[str], rows: list[list[Any]]) -> list[str]:
    from rich.text import Text

    lines = ["\t".join(columns)]
    for row in rows:
        cells = [
            (Text.from_markup(v).plain if isinstance(v, str) else cell_text(v)).split("\n")
            for v in row
        ]
        height = max((len(c) for c in cells), default=1)
        for i in range(height):
            parts = [c[i] if i < len(c) else c[-1] if len(c) == 1 else "" for c in cells]
            lines.append("\t".join(p.replace("\t", " ") for p in parts))
    return lines


def csv_text(data: Any) -> str:
    """``-o csv`` of a list of mappings: one row each, the union of their keys as the header."""
    import csv
    import io

    from penguinctl.errors import UsageError

    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise UsageError("-o csv: this result is not a list of rows", hint="use -o json")
    columns: dict[str, None] = {}
    for item in data:
        columns.update(dict.fromkeys(item))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for item in data:
        writer.writerow(
            [
                json.dumps(v, default=str, separators=(",", ":"))
                if isinstance(v, dict | list)
                else cell_text(v)
                for v in (item.get(c) for c in columns)
            ]
        )
    return buf.getvalue()
